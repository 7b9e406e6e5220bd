//! Bodies as spreadsheet columns: nested fields become dotted names (`device.id`), array
//! elements their index (`tags.0`). A body that is not an object is one column, `value`.

use serde_json::Value;

/// The column a body that is not an object is written to.
pub const SCALAR_COLUMN: &str = "value";

/// The `(column, cell)` pairs of a body, in the body's own field order. `null` fields give an
/// empty cell; empty objects and arrays give nothing.
pub fn flatten(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match value {
        Value::Null => {}
        Value::Object(_) | Value::Array(_) => walk(value, "", &mut out),
        scalar => out.push((SCALAR_COLUMN.to_owned(), cell(scalar))),
    }
    out
}

fn walk(value: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    let name = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                walk(v, &name(k), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &name(&i.to_string()), out);
            }
        }
        scalar => out.push((prefix.to_owned(), cell(scalar))),
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_names_in_field_order() {
        let got = flatten(
            &json!({"device_id": "abc", "net": {"mac": "0c:2a", "up": true}, "tags": ["a", 2], "none": null, "empty": {}}),
        );
        let want: Vec<(String, String)> = [
            ("device_id", "abc"),
            ("net.mac", "0c:2a"),
            ("net.up", "true"),
            ("tags.0", "a"),
            ("tags.1", "2"),
            ("none", ""),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            flatten(&json!("text")),
            vec![("value".to_owned(), "text".to_owned())]
        );
        assert!(flatten(&Value::Null).is_empty());
    }
}
