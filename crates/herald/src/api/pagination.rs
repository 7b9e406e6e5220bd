//! The list request parameters and the `{data, iterator, prevIterator, done}` envelope.

use herald_core::page::{Cursor, DEFAULT_LIMIT, ListParams, MAX_LIMIT, Order, Page};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};

/// Sorting order of a list.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    Ascending,
    Descending,
}

impl From<Ordering> for Order {
    fn from(o: Ordering) -> Self {
        match o {
            Ordering::Ascending => Order::Ascending,
            Ordering::Descending => Order::Descending,
        }
    }
}

/// `limit` and `iterator`, shared by every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Number of items per page (up to 250; 0 or absent: 50).
    pub limit: Option<u64>,
    /// An `iterator` (next page) or `prevIterator` (previous page) from an earlier answer.
    pub iterator: Option<String>,
}

/// `limit`, `iterator` and `order`, for lists that may be sorted either way.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderedPageQuery {
    /// Number of items per page (1 to 250, default 50).
    pub limit: Option<u64>,
    /// An `iterator` (next page) or `prevIterator` (previous page) from an earlier answer.
    pub iterator: Option<String>,
    /// Sorting order (default ascending).
    pub order: Option<Ordering>,
}

impl PageQuery {
    pub fn params(&self, order: Order) -> ApiResult<ListParams> {
        list_params(self.limit, self.iterator.as_deref(), order)
    }
}

impl OrderedPageQuery {
    pub fn params(&self) -> ApiResult<ListParams> {
        list_params(
            self.limit,
            self.iterator.as_deref(),
            self.order.map(Order::from).unwrap_or(Order::Ascending),
        )
    }
}

fn list_params(limit: Option<u64>, iterator: Option<&str>, order: Order) -> ApiResult<ListParams> {
    let limit = match limit {
        // The reference API allows 0; it means "the default", not an empty page.
        None | Some(0) => DEFAULT_LIMIT,
        Some(n) if n > MAX_LIMIT as u64 => {
            return Err(ApiError::invalid(
                &["query", "limit"],
                format!("must be at most {MAX_LIMIT}"),
            ));
        }
        Some(n) => n as usize,
    };
    let cursor = match iterator {
        None | Some("") => None,
        Some(text) => match Cursor::parse(text) {
            Some(cursor) if cursor.key.len() <= 256 => Some(cursor),
            _ => {
                return Err(ApiError::invalid(
                    &["query", "iterator"],
                    "not an iterator this server handed out: pass `iterator` or `prevIterator` \
                     from an earlier page of this list",
                ));
            }
        },
    };
    Ok(ListParams {
        limit,
        cursor,
        order,
    })
}

/// One page of a list (`ListResponse_…Out_` in the Svix API).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T: ToSchema> {
    pub data: Vec<T>,
    /// Pass as `iterator` to get the next page.
    pub iterator: Option<String>,
    /// Pass as `iterator` to get the previous page.
    pub prev_iterator: Option<String>,
    /// `true` when no items follow this page.
    pub done: bool,
}

impl<T: ToSchema> ListResponse<T> {
    /// Builds the envelope from a page whose items are keyed by `key` (the column the store
    /// paginated on).
    pub fn new<R>(
        page: Page<R>,
        params: &ListParams,
        key: impl Fn(&R) -> String,
        out: impl FnMut(R) -> T,
    ) -> Self {
        let done = page.done();
        let first = page.items.first().map(&key);
        let last = page.items.last().map(&key);
        // With an empty page keep the client's position, so that polling with the last
        // iterator picks up items created later.
        let position = params.cursor.as_ref().map(|c| c.key.clone());
        Self {
            iterator: last
                .or_else(|| position.clone())
                .map(|k| Cursor::next_iterator(&k)),
            prev_iterator: first.or(position).map(|k| Cursor::prev_iterator(&k)),
            done,
            data: page.items.into_iter().map(out).collect(),
        }
    }
}
