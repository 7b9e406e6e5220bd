//! `application/x-www-form-urlencoded` bodies, for receivers that predate JSON (Electric Imp's
//! legacy option).
//!
//! A flat object becomes `key=value&…`. Nested objects and arrays use the bracket notation
//! that PHP, Rails, Express (`qs`) and most form parsers decode back into structures:
//! `{"device": {"id": 1}, "tags": ["a", "b"]}` becomes `device[id]=1&tags[0]=a&tags[1]=b`
//! (brackets percent-encoded on the wire, as every form serializer does:
//! `device%5Bid%5D=1&tags%5B0%5D=a&tags%5B1%5D=b`). Strings are written as is, numbers and
//! booleans as their JSON text, `null` as an empty value; empty objects and arrays write
//! nothing. A payload that is not an object (a bare list or scalar) is written under the key
//! `payload`. Keys keep the payload's order.

use serde_json::Value;

/// Encodes a JSON value as a form body.
pub fn encode(value: &Value) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                write(&mut out, key.clone(), value);
            }
        }
        other => write(&mut out, "payload".to_owned(), other),
    }
    out.finish()
}

fn write(out: &mut form_urlencoded::Serializer<'_, String>, key: String, value: &Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                write(out, format!("{key}[{k}]"), v);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                write(out, format!("{key}[{i}]"), v);
            }
        }
        Value::Null => {
            out.append_pair(&key, "");
        }
        Value::String(s) => {
            out.append_pair(&key, s);
        }
        Value::Bool(_) | Value::Number(_) => {
            out.append_pair(&key, &value.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flat_nested_and_odd_values() {
        assert_eq!(
            encode(&json!({"device_id": "30000c2a690a1e0b", "plan_id": "", "n": 1.5, "ok": true})),
            "device_id=30000c2a690a1e0b&plan_id=&n=1.5&ok=true"
        );
        assert_eq!(
            encode(&json!({"device": {"id": 1}, "tags": ["a", "b"], "none": null, "e": {}})),
            "device%5Bid%5D=1&tags%5B0%5D=a&tags%5B1%5D=b&none="
        );
        assert_eq!(encode(&json!({"q": "a b&c=d/é"})), "q=a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode(&json!([1, 2])), "payload%5B0%5D=1&payload%5B1%5D=2");
        assert_eq!(encode(&json!("x")), "payload=x");
    }
}
