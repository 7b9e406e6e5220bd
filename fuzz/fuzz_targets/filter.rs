//! Payload filters (`herald_core::filter`): any JSON is parsed as a filter and, when accepted,
//! evaluated against any JSON payload. Besides not panicking, evaluation must agree with the
//! language's own logic: `$not` negates, `$and`/`$or` of one filter is that filter.
#![no_main]

use arbitrary::Arbitrary;
use herald_core::filter::Filter;
use herald_fuzz::Json;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

#[derive(Debug, Arbitrary)]
struct Input {
    filter: Json,
    payload: Json,
}

fuzz_target!(|input: Input| {
    let (filter, payload) = (&input.filter.0, &input.payload.0);
    let parsed = match Filter::parse(filter) {
        Ok(parsed) => parsed,
        Err(e) => {
            // The message names a place inside the filter.
            let _ = e.to_string();
            return;
        }
    };
    let holds = parsed.matches(payload);
    // Each wrapper adds one level; at the depth limit it is refused, which is fine.
    if let Ok(not) = Filter::parse(&json!({ "$not": filter })) {
        assert_eq!(not.matches(payload), !holds, "$not of {filter}");
    }
    for op in ["$and", "$or"] {
        if let Ok(single) = Filter::parse(&json!({ op: [filter] })) {
            assert_eq!(single.matches(payload), holds, "{op} of {filter}");
        }
    }
});
