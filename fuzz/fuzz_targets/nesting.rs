//! Nesting, the input that once crashed Herald: deeply nested form field names (plain and
//! percent-encoded brackets), JSON (arrays and objects) and GraphQL (lists, objects, selection
//! sets, argument lists, variable defaults), up to 100,000 levels, mixed with whatever the
//! fuzzer adds. Each input is parsed on a thread with a 1 MiB stack, half of a Tokio worker's:
//! a parser that recursed before checking depth would overflow it long before 100,000 levels.
//! Within a parser's documented limit an input may be accepted; past it, it must be refused.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use herald_core::inbox::body::{self, MAX_FORM_NAME_DEPTH};
use herald_core::shape::graphql::{MAX_NESTING, Query};
use herald_core::validate::MAX_JSON_DEPTH;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Syntax {
    FormBrackets,
    FormEncoded,
    JsonArrays,
    JsonObjects,
    GraphqlList,
    GraphqlObject,
    GraphqlSelections,
    GraphqlArguments,
    GraphqlDefault,
}

#[derive(Debug, Arbitrary)]
struct Input {
    syntax: Syntax,
    levels: u32,
    /// Text put before the nesting, in the middle and after it.
    before: String,
    middle: String,
    after: String,
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let levels = (input.levels % 100_001) as usize;
    let (text, limit) = build(&input, levels);
    let syntax = input.syntax;
    let parsed = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || parse(syntax, &text))
        .expect("a thread")
        .join()
        .expect("a parser overflowed its stack instead of refusing the input");
    // The nesting alone puts an input past its limit; fuzzer text may add more, never less.
    if levels > limit + 4 {
        assert!(!parsed, "{levels} levels accepted ({syntax:?})");
    }
});

/// The input text, and the limit its nesting counts against.
fn build(input: &Input, n: usize) -> (String, usize) {
    let (b, m, a) = (&input.before, &input.middle, &input.after);
    match input.syntax {
        // The deep name is a field of its own, whatever the fuzzer's text around it.
        Syntax::FormBrackets => (
            format!("{b}&a{}={m}&{a}", "[b]".repeat(n)),
            MAX_FORM_NAME_DEPTH,
        ),
        Syntax::FormEncoded => (
            format!("{b}&a{}={m}&{a}", "%5Bb%5D".repeat(n)),
            MAX_FORM_NAME_DEPTH,
        ),
        Syntax::JsonArrays => (
            format!("{b}{}{m}{}{a}", "[".repeat(n), "]".repeat(n)),
            MAX_JSON_DEPTH,
        ),
        Syntax::JsonObjects => (
            format!("{b}{}{m}{}{a}", "{\"k\":".repeat(n), "}".repeat(n)),
            MAX_JSON_DEPTH,
        ),
        Syntax::GraphqlList => (
            format!("query {{ a(x: {}{m}{}) }}{a}", "[".repeat(n), "]".repeat(n)),
            MAX_NESTING,
        ),
        Syntax::GraphqlObject => (
            format!("query {{ a(x: {}{m}{}) }}{a}", "{k: ".repeat(n), "}".repeat(n)),
            MAX_NESTING,
        ),
        Syntax::GraphqlSelections => (
            format!("{b}query {}{m}{}{a}", "{ a ".repeat(n), " }".repeat(n)),
            MAX_NESTING,
        ),
        Syntax::GraphqlArguments => (format!("query {{ a{}{m} }}{a}", "(x: ".repeat(n)), MAX_NESTING),
        Syntax::GraphqlDefault => (
            format!("query($v: [Int] = {}{m}{}) {{ a }}{a}", "[".repeat(n), "]".repeat(n)),
            MAX_NESTING,
        ),
    }
}

/// Whether the parser for `syntax` accepted `text`.
fn parse(syntax: Syntax, text: &str) -> bool {
    match syntax {
        Syntax::FormBrackets | Syntax::FormEncoded => body::parse_form(text.as_bytes()).is_ok(),
        Syntax::JsonArrays | Syntax::JsonObjects => {
            body::parse(Some("application/json"), text.as_bytes()).is_ok()
        }
        _ => Query::parse(text).is_ok(),
    }
}
