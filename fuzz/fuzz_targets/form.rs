//! Form bodies, both ways: `herald_core::shape::form::encode` (deliveries to `encoding: form`
//! endpoints) on any JSON payload, and `herald_core::inbox::body::parse_form` (inbox writes) on
//! any bytes. What the encoder writes must read back, through the inbox's decoder, as the same
//! structure: arrays as objects keyed by index, scalars as their text, `null` as `""`, empty
//! objects and arrays gone (the bracket notation cannot say more than that).
#![no_main]

use arbitrary::Arbitrary;
use herald_core::inbox::body::{self, Encoding};
use herald_core::shape::form;
use herald_fuzz::Json;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

#[derive(Debug, Arbitrary)]
struct Input {
    payload: Json,
    content_type: Option<String>,
    raw: Vec<u8>,
}

fuzz_target!(|input: Input| {
    // Decoding: any body, under any content type.
    if let Ok(decoded) = body::parse_form(&input.raw) {
        assert!(decoded.is_object());
    }
    if let Ok((value, encoding)) = body::parse(input.content_type.as_deref(), &input.raw) {
        assert_eq!(
            Encoding::parse(encoding.as_str()),
            Some(encoding),
            "encodings are stored by name"
        );
        if encoding == Encoding::Form {
            assert!(value.is_object());
        }
    }

    // Encoding, and reading back.
    let payload = &input.payload.0;
    let encoded = form::encode(payload);
    assert!(encoded.is_ascii(), "form bodies are percent-encoded");
    let root = match payload {
        Value::Object(_) => payload.clone(),
        other => Value::Object(Map::from_iter([("payload".to_owned(), other.clone())])),
    };
    if plain_keys(&root) {
        let mut expected = Map::new();
        if let Value::Object(map) = &root {
            for (k, v) in map {
                if let Some(v) = as_form(v) {
                    expected.insert(k.clone(), v);
                }
            }
        }
        // Payloads here nest at most 24 levels: well within what a form name may.
        assert_eq!(
            body::parse_form(encoded.as_bytes()),
            Ok(Value::Object(expected)),
            "{encoded}"
        );
    }
});

/// Keys that the bracket notation can carry unambiguously: not empty (`a[]` appends), no
/// brackets.
fn plain_keys(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .all(|(k, v)| !k.is_empty() && !k.contains(['[', ']']) && plain_keys(v)),
        Value::Array(items) => items.iter().all(plain_keys),
        _ => true,
    }
}

/// What a value becomes after a trip through a form body; `None` when it writes nothing.
fn as_form(value: &Value) -> Option<Value> {
    match value {
        Value::Null => Some(Value::String(String::new())),
        Value::String(s) => Some(Value::String(s.clone())),
        Value::Bool(_) | Value::Number(_) => Some(Value::String(value.to_string())),
        Value::Array(items) => {
            let map: Map<String, Value> = items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| Some((i.to_string(), as_form(v)?)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        Value::Object(map) => {
            let map: Map<String, Value> = map
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), as_form(v)?)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
    }
}
