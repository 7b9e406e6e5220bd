//! An inbox's data as a collapsible tree, the way the Firebase console shows a database:
//! nested `<details>`, so it opens and closes without JavaScript.
//!
//! The tree comes from the API's `format=tree` export (bounded by the read's budget); what is
//! drawn of it is bounded again, so the page stays small whatever the inbox holds: at most
//! [`MAX_CHILDREN`] children of any node (then "…N more"), at most [`MAX_NODES`] nodes in all,
//! and at most [`MAX_DEPTH`] levels.

use maud::{Markup, html};
use serde_json::Value;

/// Children of one node drawn before "…more".
pub const MAX_CHILDREN: usize = 50;
/// Nodes drawn in all.
pub const MAX_NODES: usize = 1_000;
/// Levels drawn; deeper values are shown as their JSON text, shortened.
pub const MAX_DEPTH: usize = 40;

/// The tree of `value`, whose root is named `root` (the path it was read at, or the inbox).
pub fn render(root: &str, value: &Value) -> Markup {
    let mut budget = MAX_NODES;
    html! {
        @if value.is_null() {
            p.empty { "Nothing stored here." }
        } @else {
            ul.tree { (node(root, value, 0, &mut budget, true)) }
        }
    }
}

fn node(key: &str, value: &Value, depth: usize, budget: &mut usize, open: bool) -> Markup {
    *budget = budget.saturating_sub(1);
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    if children.is_empty() || depth >= MAX_DEPTH {
        return html! {
            li { code { (key) } ": " span.mono { (leaf(value)) } }
        };
    }
    let total = children.len();
    let mut drawn = Vec::new();
    for (k, v) in children.into_iter().take(MAX_CHILDREN) {
        if *budget == 0 {
            break;
        }
        drawn.push(node(&k, v, depth + 1, budget, false));
    }
    let more = total - drawn.len();
    html! {
        li {
            details open[open] {
                summary { code { (key) } " " span.hint { "(" (total) ")" } }
                ul {
                    @for child in &drawn { (child) }
                    @if more > 0 { li.hint { "…" (more) " more" } }
                }
            }
        }
    }
}

/// A value drawn on one line: its JSON text, at most 120 characters.
fn leaf(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 120 {
        text
    } else {
        format!("{}…", text.chars().take(120).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trees_are_drawn_within_bounds() {
        let html = render("factory", &json!({"blessing": {"-a": {"mac": "0c2a"}}})).into_string();
        assert!(html.contains("<details open>"), "{html}");
        assert!(html.contains("<code>blessing</code>"), "{html}");
        assert!(html.contains("&quot;0c2a&quot;"), "{html}");

        let wide: serde_json::Map<String, Value> =
            (0..120).map(|i| (format!("k{i:03}"), json!(i))).collect();
        let html = render("wide", &Value::Object(wide)).into_string();
        assert!(html.contains("…70 more"), "{html}");
        assert_eq!(html.matches("<li>").count(), MAX_CHILDREN + 1);

        // However many nodes the tree holds, at most MAX_NODES are drawn.
        let big: serde_json::Map<String, Value> = (0..60)
            .map(|i| {
                let inner: serde_json::Map<String, Value> =
                    (0..60).map(|j| (format!("c{j}"), json!(j))).collect();
                (format!("p{i}"), Value::Object(inner))
            })
            .collect();
        let html = render("big", &Value::Object(big)).into_string();
        assert!(html.matches("<li").count() <= MAX_NODES + 60, "bounded");
        assert!(render("x", &Value::Null).into_string().contains("Nothing"));
    }
}
