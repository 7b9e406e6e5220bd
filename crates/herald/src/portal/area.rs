//! The two halves of the site: the customers' portal and the operator's console.

use crate::api::api_key::ApiKeyKind;
use crate::api::session::WhoAmIOut;

/// Which half of the site a request is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// `/portal`: one application's customer.
    Portal,
    /// `/admin`: the operator.
    Admin,
}

impl Area {
    pub fn base(self) -> &'static str {
        match self {
            Area::Portal => "/portal",
            Area::Admin => "/admin",
        }
    }

    pub(super) fn cookie(self) -> &'static str {
        match self {
            Area::Portal => "herald_portal",
            Area::Admin => "herald_admin",
        }
    }

    pub(super) fn of_path(path: &str) -> Option<Area> {
        let under = |base: &str| {
            path.strip_prefix(base)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/portal") {
            Some(Area::Portal)
        } else if under("/admin") {
            Some(Area::Admin)
        } else {
            None
        }
    }

    /// Whether a token the API described may hold a session here: customers' sessions are
    /// limited to their application, operators' are not limited to any.
    pub(super) fn admits(self, who: &WhoAmIOut) -> bool {
        matches!(who.kind, Some(ApiKeyKind::Portal))
            && match self {
                Area::Portal => who.app_id.is_some(),
                Area::Admin => who.app_id.is_none(),
            }
    }
}
