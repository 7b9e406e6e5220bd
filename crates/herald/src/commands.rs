//! Subcommands that need no server: `verify` (`secrets rotate-key` lives in `bootstrap`, next
//! to the keyring it changes).

use herald_core::signing::{self, Scheme, SignatureConfig, Verification};

use crate::cli::VerifyArgs;

/// Checks a delivery: `Ok` when it verifies, otherwise the reason. Bad arguments are errors too.
pub fn verify(args: &VerifyArgs, body: &[u8], now: i64) -> Result<(), VerifyFailure> {
    let scheme = Scheme::parse(&args.scheme).ok_or_else(|| {
        VerifyFailure::Usage(format!(
            "unknown --scheme {:?} (standard-v1, standard-v1a, hmac-sha1-hex, hmac-sha256-hex, \
             static-header, none)",
            args.scheme
        ))
    })?;
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| VerifyFailure::Usage(format!("--header {h:?} is not `name: value`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = SignatureConfig {
        scheme,
        header: args.signature_header.clone(),
        prefix: args.prefix.clone(),
    };
    let check = Verification {
        config: &config,
        secret: &args.secret,
        now_and_tolerance: (args.tolerance > 0).then_some((now, args.tolerance)),
    };
    signing::verify(&check, &headers, body).map_err(|e| VerifyFailure::Rejected(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Rejected(String),
}
