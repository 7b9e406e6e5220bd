//! The request headers Herald sets itself on a delivery, which an endpoint's own headers may
//! not replace.
//!
//! One rule for both sides: the API refuses these names when an endpoint's headers (or a
//! `static-header` signature's header name) are saved, and the worker never sends a stored
//! custom header under one of them, so a value saved before a name became reserved cannot
//! shadow Herald's either.

/// Whether `name` (any case) is a header Herald sets or that belongs to the connection:
/// `webhook-*` and `svix-*` (identity, timestamp and signatures), the body's `content-type` and
/// `content-length`, `user-agent`, `host`, and the hop-by-hop headers.
pub fn is_reserved(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("webhook-")
        || name.starts_with("svix-")
        || matches!(
            name.as_str(),
            "content-type"
                | "content-length"
                | "host"
                | "user-agent"
                | "connection"
                | "transfer-encoding"
                | "te"
                | "upgrade"
                | "keep-alive"
                | "proxy-connection"
        )
}

#[cfg(test)]
mod tests {
    use super::is_reserved;

    #[test]
    fn herald_s_own_headers_are_reserved_in_any_case() {
        for name in [
            "webhook-id",
            "Webhook-Signature",
            "svix-timestamp",
            "Content-Type",
            "content-length",
            "User-Agent",
            "HOST",
            "Transfer-Encoding",
            "te",
        ] {
            assert!(is_reserved(name), "{name}");
        }
        for name in ["x-api-key", "authorization", "x-webhook-id", "tenant"] {
            assert!(!is_reserved(name), "{name}");
        }
    }
}
