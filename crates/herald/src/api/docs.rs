//! `/docs`: the OpenAPI document rendered as one self-contained HTML page.
//!
//! The usual API viewers load their scripts from a CDN, which fails on an offline or
//! locked-down host. This renders the document on the server instead: plain HTML with inline
//! CSS, no JavaScript, readable anywhere the server is.

use std::fmt::Write;

use serde_json::Value;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The component name of a `$ref`, if `schema` is one.
fn ref_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.rsplit('/').next()
}

/// A short type label: `ApplicationOut`, `string (date-time)`, `array of EndpointOut`, …
fn type_label(schema: &Value) -> String {
    if let Some(name) = ref_name(schema) {
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let labels: Vec<String> = options
                .iter()
                .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                .map(type_label)
                .collect();
            let nullable = options.len() > labels.len();
            return format!(
                "{}{}",
                labels.join(" | "),
                if nullable { " | null" } else { "" }
            );
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_owned(),
    };
    if ty.starts_with("array")
        && let Some(items) = schema.get("items")
    {
        return format!("{ty} of {}", type_label(items));
    }
    match schema.get("format").and_then(Value::as_str) {
        Some(format) => format!("{} ({})", esc(&ty), esc(format)),
        None => esc(&ty),
    }
}

fn properties_table(out: &mut String, schema: &Value) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        let _ = write!(out, "<p>{}</p>", type_label(schema));
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>");
    for (name, prop) in props {
        let description = prop
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        let _ = write!(
            out,
            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            if required.contains(&name.as_str()) {
                " <em>required</em>"
            } else {
                ""
            },
            type_label(prop),
            esc(description)
        );
    }
    out.push_str("</table>");
}

/// Renders `doc` (an OpenAPI 3 document) as a complete HTML page.
pub fn render(doc: &Value) -> String {
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let version = doc["info"]["version"].as_str().unwrap_or("");
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} {v}</title><style>{STYLE}</style></head><body><main>\
         <h1>{t} <small>{v}</small></h1><p>{d}</p>\
         <p>Machine-readable: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a></p>",
        t = esc(title),
        v = esc(version),
        d = esc(doc["info"]["description"].as_str().unwrap_or("")),
    );

    out.push_str("<h2>Operations</h2>");
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "post", "put", "patch", "delete", "head"] {
                let Some(op) = item.get(method) else { continue };
                operation(&mut out, method, path, op);
            }
        }
    }

    out.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            let _ = write!(out, "<section id=\"schema-{0}\"><h3>{0}</h3>", esc(name));
            if let Some(d) = schema.get("description").and_then(Value::as_str) {
                let _ = write!(out, "<p>{}</p>", esc(d));
            }
            if let Some(values) = schema.get("enum").and_then(Value::as_array) {
                let list: Vec<String> = values.iter().map(|v| esc(&v.to_string())).collect();
                let _ = write!(
                    out,
                    "<p>One of: <code>{}</code></p>",
                    list.join("</code>, <code>")
                );
            } else {
                properties_table(&mut out, schema);
            }
            out.push_str("</section>");
        }
    }
    out.push_str("</main></body></html>");
    out
}

fn operation(out: &mut String, method: &str, path: &str, op: &Value) {
    let id = op["operationId"].as_str().unwrap_or("");
    let _ = write!(
        out,
        "<section class=\"op\" id=\"{id}\"><h3><span class=\"m {method}\">{M}</span> <code>{p}</code></h3>",
        id = esc(id),
        method = method,
        M = method.to_uppercase(),
        p = esc(path)
    );
    for key in ["summary", "description"] {
        if let Some(text) = op.get(key).and_then(Value::as_str) {
            let _ = write!(out, "<p>{}</p>", esc(text));
        }
    }
    if let Some(params) = op.get("parameters").and_then(Value::as_array) {
        out.push_str("<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th><th>Description</th></tr>");
        for p in params {
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                if p["required"].as_bool() == Some(true) {
                    " <em>required</em>"
                } else {
                    ""
                },
                esc(p["in"].as_str().unwrap_or("")),
                type_label(&p["schema"]),
                esc(p["description"].as_str().unwrap_or(""))
            );
        }
        out.push_str("</table>");
    }
    if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
        let _ = write!(out, "<h4>Request body</h4><p>{}</p>", type_label(schema));
    }
    if let Some(responses) = op.get("responses").and_then(Value::as_object) {
        out.push_str("<h4>Responses</h4><ul>");
        for (status, response) in responses {
            let schema = response
                .pointer("/content/application~1json/schema")
                .map(type_label)
                .unwrap_or_default();
            let _ = write!(
                out,
                "<li><code>{}</code> {} {}</li>",
                esc(status),
                esc(response["description"].as_str().unwrap_or("")),
                schema
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;color:#1a1a1a;background:#fff;margin:0}\
main{max-width:60rem;margin:auto;padding:1rem 2rem}h1 small{color:#555;font-size:60%}\
section.op{border-top:1px solid #ccc;padding:.5rem 0}\
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}\
code{background:#f2f2f2;padding:0 .2rem}.m{display:inline-block;min-width:4.5rem;font-weight:bold}\
.get{color:#0b5394}.post{color:#1b6b2f}.put,.patch{color:#7a4b00}.delete{color:#a00}a{color:#0b5394}";

#[cfg(test)]
mod tests {
    #[test]
    fn renders_and_escapes() {
        let doc = serde_json::json!({
            "info": {"title": "T<x>", "version": "1"},
            "paths": {"/a": {"get": {"operationId": "op", "summary": "Get <a>",
                "responses": {"200": {"description": "ok", "content": {"application/json":
                    {"schema": {"$ref": "#/components/schemas/Thing"}}}}}}}},
            "components": {"schemas": {"Thing": {"type": "object",
                "properties": {"id": {"type": "string"}}, "required": ["id"]}}}
        });
        let html = super::render(&doc);
        assert!(html.contains("T&lt;x&gt;"));
        assert!(html.contains("Get &lt;a&gt;"));
        assert!(html.contains("href=\"#schema-Thing\""));
        assert!(html.contains("<code>id</code> <em>required</em>"));
        assert!(!html.contains("<script"));
    }
}
