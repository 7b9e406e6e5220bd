//! Every parser of untrusted text that recurses refuses nesting past its documented limit
//! before it recurses: fed up to 100,000 levels in every syntax it accepts, on a thread with
//! the stack of a Tokio worker (2 MiB, where the server parses), it answers `Ok` within the
//! limit and an error past it, and the process lives.

// Tests (and this measuring tool) unwrap: a failed step should stop them loudly.
#![allow(clippy::unwrap_used)]

use herald_core::inbox::body::{self, MAX_FORM_NAME_DEPTH};
use herald_core::shape::graphql::{MAX_NESTING, Query};
use herald_core::validate::{MAX_JSON_DEPTH, json_too_deep};
use proptest::prelude::*;

/// Runs `f` on a thread with a Tokio worker's stack.
fn on_a_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("a thread")
        .join()
        .expect("the parser returned instead of overflowing the stack")
}

/// Depths that matter: around each limit, and anywhere up to 100,000.
fn depth(limit: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        (1..=limit + 2),
        (limit..=limit + 1),
        (1..=100_000usize),
        Just(100_000),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Form bodies: `a[b][b]…=1` with plain or percent-encoded brackets, among other fields.
    #[test]
    fn form_field_names(depth in depth(MAX_FORM_NAME_DEPTH), encoded in any::<bool>(), append in any::<bool>(), before in 0..3usize) {
        let open_close = if encoded { "%5Bb%5D" } else { "[b]" };
        // `name[]` appends: one level more.
        let levels = depth + usize::from(append);
        let mut body = "x=1&".repeat(before);
        body.push('a');
        body.push_str(&open_close.repeat(depth - 1));
        if append {
            body.push_str(if encoded { "%5B%5D" } else { "[]" });
        }
        body.push_str("=1");
        let parsed = on_a_worker_stack(move || {
            body::parse(Some("application/x-www-form-urlencoded"), body.as_bytes()).map(drop)
        });
        prop_assert_eq!(parsed.is_ok(), levels <= MAX_FORM_NAME_DEPTH, "{} levels", levels);
    }

    /// JSON bodies (the API's and the inboxes'): arrays, objects, and the two mixed.
    #[test]
    fn json_documents(depth in depth(MAX_JSON_DEPTH), shape in 0..3u8) {
        let (open, close) = match shape {
            0 => ("[".repeat(depth), "]".repeat(depth)),
            1 => ("{\"k\":".repeat(depth), "}".repeat(depth)),
            _ => ("[{\"k\":".repeat(depth / 2 + 1), "}]".repeat(depth / 2 + 1)),
        };
        let levels = if shape == 2 { 2 * (depth / 2 + 1) } else { depth };
        let text = format!("{open}1{close}");
        prop_assert_eq!(json_too_deep(text.as_bytes(), MAX_JSON_DEPTH), levels > MAX_JSON_DEPTH);
        let parsed = on_a_worker_stack(move || body::parse(Some("application/json"), text.as_bytes()).map(drop));
        prop_assert_eq!(parsed.is_ok(), levels <= MAX_JSON_DEPTH);
    }

    /// GraphQL documents: lists and objects in arguments and in variable defaults, nested
    /// selection sets, and argument lists.
    #[test]
    fn graphql_documents(depth in depth(MAX_NESTING), shape in 0..4u8) {
        // The operation's own `{ … }` is one level.
        let inner = depth.saturating_sub(1).max(1);
        let text = match shape {
            0 => format!("query {{ a(x: {}1{}) }}", "[".repeat(inner), "]".repeat(inner)),
            1 => format!("query {{ a(x: {}1{}) }}", "{k: ".repeat(inner), "}".repeat(inner)),
            2 => format!("query {}a{}", "{ a ".repeat(depth), " }".repeat(depth)),
            _ => format!(
                "query($v: [Int] = {}1{}) {{ a }}",
                "[".repeat(depth),
                "]".repeat(depth)
            ),
        };
        let levels = match shape {
            0 | 1 => inner + 2, // the operation's braces and the argument list's parentheses
            3 => depth + 1,     // the variable list's parentheses
            _ => depth,
        };
        let parsed = on_a_worker_stack(move || Query::parse(&text).map(drop));
        prop_assert_eq!(parsed.is_ok(), levels <= MAX_NESTING, "{} levels: {:?}", levels, parsed);
    }
}
