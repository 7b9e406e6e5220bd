//! Aligned text tables for people, and the `--json` alternative for scripts.

use std::fmt::Write as _;

use serde_json::Value;

/// Renders rows under a header, each column as wide as its widest cell, two spaces apart.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A cell for a JSON value: text as is, `null` as `-`, lists comma-separated, anything else
/// as compact JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// One object as a two-column table of its fields.
pub fn render_object(value: &Value) -> String {
    let Value::Object(map) = value else {
        return format!("{}\n", cell(value));
    };
    let rows: Vec<Vec<String>> = map.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
    render(&["FIELD", "VALUE"], &rows)
}

/// Rows of a list answer (`{"data": [...]}`), one column per field name.
pub fn render_list(answer: &Value, columns: &[(&str, &str)]) -> String {
    let rows: Vec<Vec<String>> = answer["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(_, field)| cell(&item[*field]))
                .collect()
        })
        .collect();
    let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    render(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align() {
        let text = render(
            &["ID", "NAME"],
            &[
                vec!["app_1".into(), "Acme".into()],
                vec!["app_22222".into(), "Ünïcode".into()],
            ],
        );
        assert_eq!(
            text,
            "ID         NAME\napp_1      Acme\napp_22222  Ünïcode\n"
        );
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(
            render_object(&json!({"id": "x", "n": 1})),
            "FIELD  VALUE\nid     x\nn      1\n"
        );
    }
}
