//! GraphQL selections (`herald_core::shape::graphql`): any text is parsed as a query and, when
//! accepted, evaluated locally against any JSON payload with any configured variables.
//!
//! The input is the query text, a NUL byte, then the bytes the payload and variables are built
//! from, so seed queries are plain text files and the dictionary (`graphql.dict`) applies to the
//! query.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use herald_core::shape::graphql::Query;
use herald_fuzz::Json;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (text, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let query = match Query::parse(text) {
        Ok(query) => query,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let mut u = Unstructured::new(rest);
    let payload = Json::arbitrary(&mut u).map(|j| j.0).unwrap_or(Value::Null);
    let configured = match Json::arbitrary(&mut u).map(|j| j.0) {
        Ok(Value::Object(map)) => map,
        _ => Default::default(),
    };
    let variables = query.variables(&payload, &configured);
    // Configured variables win over everything else.
    for (name, value) in &configured {
        assert_eq!(variables.get(name), Some(value));
    }
    // Refused only when the payload multiplies the selection past the limit.
    let Ok(data) = query.evaluate(&payload, &variables) else {
        return;
    };
    assert!(data.is_object());
    // Delivery serialises the selection; it must be JSON that reads back the same.
    let text = serde_json::to_string(&data).unwrap();
    let _: Value = serde_json::from_str(&text).unwrap();
});
