//! Event types from an OpenAPI document's webhooks (`webhooks` in OpenAPI 3.1, `x-webhooks`
//! before it), for `POST /api/v1/event-type/import/openapi`.
//!
//! Each webhook becomes an event type named by its key. Its operation (`post`, or the first
//! one present) gives the description (`description`, else `summary`), `deprecated`, Svix's
//! extensions `x-svix-group-name` and `x-svix-feature-flags` (or `x-svix-feature-flag`), and
//! the schema of its JSON request body, which becomes the event type's schema version `"1"`.
//!
//! Schemas are made self-contained: every local `$ref` (`#/components/…`, any JSON pointer into
//! the document) is replaced by what it points to. The walk is bounded before it recurses: at
//! most [`MAX_DEPTH`] levels (nesting and references together), at most [`MAX_NODES`] values
//! produced for the whole document (references that fan out cannot multiply without end), and a
//! reference that leads back to itself is refused by name instead of followed.

use serde_json::{Map, Value};

/// Webhooks one document may hold.
pub const MAX_WEBHOOKS: usize = 1000;
/// Levels of nesting a schema may reach once its references are inlined.
pub const MAX_DEPTH: usize = 64;
/// Values all the inlined schemas of one document may hold together.
pub const MAX_NODES: usize = 200_000;

/// One event type read from a webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEventType {
    /// The webhook's key.
    pub name: String,
    /// The operation's `description`, else its `summary`, else empty.
    pub description: String,
    /// The JSON request body's schema, references inlined.
    pub schema: Option<Value>,
    /// The operation's `deprecated`.
    pub deprecated: bool,
    /// `x-svix-group-name`.
    pub group_name: Option<String>,
    /// `x-svix-feature-flags` (or the single `x-svix-feature-flag`).
    pub feature_flags: Option<Vec<String>>,
}

/// Why a document cannot be imported: where in it (`loc`, keys from its root) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", loc.join("."))]
pub struct ImportError {
    /// The path in the document.
    pub loc: Vec<String>,
    /// What is wrong there.
    pub message: String,
}

fn error(loc: &[&str], message: impl Into<String>) -> ImportError {
    ImportError {
        loc: loc.iter().map(|s| (*s).to_owned()).collect(),
        message: message.into(),
    }
}

/// Operations looked for in a webhook, in this order.
const METHODS: [&str; 8] = [
    "post", "put", "patch", "get", "delete", "head", "options", "trace",
];

/// The event types of every webhook of `spec`, in document order.
pub fn webhooks(spec: &Value) -> Result<Vec<WebhookEventType>, ImportError> {
    let Some(root) = spec.as_object() else {
        return Err(error(&[], "the document must be a JSON (or YAML) object"));
    };
    let mut found = Vec::new();
    for section in ["webhooks", "x-webhooks"] {
        match root.get(section) {
            None => {}
            Some(Value::Object(hooks)) => found.extend(hooks.iter().map(|(k, v)| (section, k, v))),
            Some(_) => return Err(error(&[section], "must be an object of webhooks")),
        }
    }
    if found.is_empty() {
        return Err(error(
            &[],
            "the document has no webhooks (`webhooks`, or `x-webhooks` before OpenAPI 3.1)",
        ));
    }
    if found.len() > MAX_WEBHOOKS {
        return Err(error(
            &["webhooks"],
            format!("at most {MAX_WEBHOOKS} webhooks per import"),
        ));
    }
    let mut budget = MAX_NODES;
    let mut out: Vec<WebhookEventType> = Vec::with_capacity(found.len());
    for (section, name, item) in found {
        if out.iter().any(|et| &et.name == name) {
            return Err(error(&[section, name], "this webhook is defined twice"));
        }
        let loc = [section, name.as_str()];
        let item = follow(spec, item, &loc)?;
        let Some(item) = item.as_object() else {
            return Err(error(&loc, "must be a path item object"));
        };
        let Some((method, op)) = METHODS.iter().find_map(|m| item.get(*m).map(|op| (*m, op)))
        else {
            return Err(error(&loc, "has no operation (`post`, …)"));
        };
        let op_loc = [section, name.as_str(), method];
        let Some(op) = op.as_object() else {
            return Err(error(&op_loc, "must be an operation object"));
        };
        out.push(WebhookEventType {
            name: name.clone(),
            description: text(op, "description")
                .or_else(|| text(op, "summary"))
                .or_else(|| text(item, "description"))
                .or_else(|| text(item, "summary"))
                .unwrap_or_default(),
            schema: request_schema(spec, op, &op_loc, &mut budget)?,
            deprecated: op
                .get("deprecated")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            group_name: text(op, "x-svix-group-name"),
            feature_flags: feature_flags(op, &op_loc)?,
        });
    }
    Ok(out)
}

fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn feature_flags(
    op: &Map<String, Value>,
    loc: &[&str],
) -> Result<Option<Vec<String>>, ImportError> {
    if let Some(list) = op.get("x-svix-feature-flags") {
        let flags = list.as_array().and_then(|items| {
            items
                .iter()
                .map(|f| f.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        });
        return match flags {
            Some(flags) => Ok(Some(flags)),
            None => Err(error(
                &[loc, &["x-svix-feature-flags"]].concat(),
                "must be a list of strings",
            )),
        };
    }
    Ok(text(op, "x-svix-feature-flag").map(|flag| vec![flag]))
}

/// A value, or what its `$ref` points to (one level: path items and request bodies).
fn follow<'a>(spec: &'a Value, value: &'a Value, loc: &[&str]) -> Result<&'a Value, ImportError> {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => target(spec, reference, loc),
        None => Ok(value),
    }
}

fn target<'a>(spec: &'a Value, reference: &str, loc: &[&str]) -> Result<&'a Value, ImportError> {
    let Some(pointer) = reference.strip_prefix('#') else {
        return Err(error(
            loc,
            format!(
                "`{reference}` is not a reference within the document (only `#/…` is followed)"
            ),
        ));
    };
    spec.pointer(pointer)
        .ok_or_else(|| error(loc, format!("`{reference}` points to nothing")))
}

/// The JSON schema of the operation's request body, references inlined; `None` without one.
fn request_schema(
    spec: &Value,
    op: &Map<String, Value>,
    loc: &[&str],
    budget: &mut usize,
) -> Result<Option<Value>, ImportError> {
    let Some(body) = op.get("requestBody") else {
        return Ok(None);
    };
    let body_loc = [loc, &["requestBody"]].concat();
    let body = follow(spec, body, &body_loc)?;
    let Some(content) = body.get("content").and_then(Value::as_object) else {
        return Ok(None);
    };
    let json = content.get("application/json").or_else(|| {
        content
            .iter()
            .find(|(media, _)| media.ends_with("+json") || media.ends_with("/json"))
            .map(|(_, v)| v)
    });
    let Some(schema) = json.and_then(|media| media.get("schema")) else {
        return Ok(None);
    };
    let mut stack = Vec::new();
    let schema = inline(
        spec,
        schema,
        0,
        budget,
        &mut stack,
        &[&body_loc[..], &["schema"]].concat(),
    )?;
    Ok(Some(schema))
}

/// `value` with every `$ref` replaced by its target, checking depth, size and cycles before
/// each step down.
fn inline(
    spec: &Value,
    value: &Value,
    depth: usize,
    budget: &mut usize,
    stack: &mut Vec<String>,
    loc: &[&str],
) -> Result<Value, ImportError> {
    if depth > MAX_DEPTH {
        return Err(error(
            loc,
            format!(
                "the schema is nested deeper than {MAX_DEPTH} levels once its references are inlined"
            ),
        ));
    }
    if *budget == 0 {
        return Err(error(
            loc,
            format!(
                "the schemas hold more than {MAX_NODES} values once their references are inlined"
            ),
        ));
    }
    *budget -= 1;
    match value {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                if stack.iter().any(|seen| seen == reference) {
                    return Err(error(
                        loc,
                        format!(
                            "`{reference}` refers back to itself; recursive schemas cannot be inlined"
                        ),
                    ));
                }
                let found = target(spec, reference, loc)?;
                stack.push(reference.to_owned());
                let mut resolved = inline(spec, found, depth + 1, budget, stack, loc);
                stack.pop();
                // Keywords beside `$ref` (OpenAPI 3.1 allows them) refine what it points to.
                if let Ok(Value::Object(target)) = &mut resolved {
                    for (key, sibling) in map.iter().filter(|(k, _)| *k != "$ref") {
                        let sibling = inline(spec, sibling, depth + 1, budget, stack, loc)?;
                        target.insert(key.clone(), sibling);
                    }
                }
                return resolved;
            }
            let mut out = Map::with_capacity(map.len());
            for (key, child) in map {
                out.insert(
                    key.clone(),
                    inline(spec, child, depth + 1, budget, stack, loc)?,
                );
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|child| inline(spec, child, depth + 1, budget, stack, loc))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::String(text) => {
            // A string costs its length too: a reference to a long string, repeated, must not
            // copy it without bound (one value per 16 bytes).
            let cost = text.len() / 16;
            if *budget < cost {
                return Err(error(
                    loc,
                    format!(
                        "the schemas hold more than {MAX_NODES} values once their references are inlined"
                    ),
                ));
            }
            *budget -= cost;
            Ok(value.clone())
        }
        scalar => Ok(scalar.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({
            "openapi": "3.1.0",
            "webhooks": {
                "pet.new": {"post": {
                    "summary": "A pet was added",
                    "x-svix-group-name": "pets",
                    "x-svix-feature-flags": ["beta"],
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}
                }},
                "pet.gone": {"post": {"description": "A pet left", "deprecated": true}}
            },
            "x-webhooks": {
                "legacy.ping": {"post": {"requestBody": {"$ref": "#/components/requestBodies/Ping"}}}
            },
            "components": {
                "schemas": {
                    "Pet": {"type": "object", "properties": {"id": {"type": "integer"}, "tag": {"$ref": "#/components/schemas/Tag"}}},
                    "Tag": {"type": "string"}
                },
                "requestBodies": {"Ping": {"content": {"application/json": {"schema": {"type": "object"}}}}}
            }
        })
    }

    #[test]
    fn webhooks_become_event_types_with_inlined_schemas() {
        let found = webhooks(&spec()).unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].name, "pet.new");
        assert_eq!(found[0].description, "A pet was added");
        assert_eq!(found[0].group_name.as_deref(), Some("pets"));
        assert_eq!(found[0].feature_flags, Some(vec!["beta".to_owned()]));
        assert_eq!(
            found[0].schema,
            Some(
                json!({"type": "object", "properties": {"id": {"type": "integer"}, "tag": {"type": "string"}}})
            )
        );
        assert!(found[1].deprecated);
        assert_eq!(found[1].description, "A pet left");
        assert_eq!(found[1].schema, None);
        assert_eq!(found[2].name, "legacy.ping");
        assert_eq!(found[2].schema, Some(json!({"type": "object"})));
    }

    #[test]
    fn documents_without_webhooks_or_with_bad_references_are_refused() {
        assert!(webhooks(&json!({"openapi": "3.1.0", "paths": {}})).is_err());
        assert!(webhooks(&json!([])).is_err());
        let external = json!({"webhooks": {"a": {"post": {"requestBody": {"content": {
            "application/json": {"schema": {"$ref": "https://example.com/s.json"}}}}}}}});
        assert!(
            webhooks(&external)
                .unwrap_err()
                .message
                .contains("within the document")
        );
        let dangling = json!({"webhooks": {"a": {"post": {"requestBody": {"content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}}}}}}});
        assert!(
            webhooks(&dangling)
                .unwrap_err()
                .message
                .contains("points to nothing")
        );
    }

    #[test]
    fn a_recursive_schema_is_refused_not_followed() {
        let cyclic = json!({
            "webhooks": {"tree": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Node"}}}}}}},
            "components": {"schemas": {"Node": {"type": "object", "properties": {
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}}
        });
        let err = webhooks(&cyclic).unwrap_err();
        assert!(err.message.contains("refers back to itself"), "{err}");
        assert_eq!(
            err.loc,
            ["webhooks", "tree", "post", "requestBody", "schema"]
        );
    }

    /// References that fan out (each level pointing four times to the next) would build 4^12
    /// (16 million) schemas from a document of a few lines; the budget stops them.
    #[test]
    fn references_that_fan_out_exhaust_the_budget() {
        let mut schemas = Map::new();
        for level in 0..12 {
            let next = json!({"$ref": format!("#/components/schemas/L{}", level + 1)});
            schemas.insert(
                format!("L{level}"),
                json!({"type": "object", "properties": {"a": next, "b": next, "c": next, "d": next}}),
            );
        }
        schemas.insert("L12".into(), json!({"type": "string"}));
        let bomb = json!({
            "webhooks": {"bomb": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/L0"}}}}}}},
            "components": {"schemas": schemas}
        });
        let err = webhooks(&bomb).unwrap_err();
        assert!(err.message.contains("values"), "{err}");
    }

    /// A chain of references deeper than the bound is refused before the walk goes deeper.
    /// A long string repeated by references counts by its length: 4^6 copies of 64 KiB would
    /// be 256 MiB.
    #[test]
    fn long_strings_repeated_by_references_exhaust_the_budget() {
        let mut schemas = Map::new();
        for level in 0..6 {
            let next = json!({"$ref": format!("#/components/schemas/L{}", level + 1)});
            schemas.insert(format!("L{level}"), json!([next, next, next, next]));
        }
        schemas.insert("L6".into(), Value::from("x".repeat(64 * 1024)));
        let bomb = json!({
            "webhooks": {"bomb": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/L0"}}}}}}},
            "components": {"schemas": schemas}
        });
        let err = webhooks(&bomb).unwrap_err();
        assert!(err.message.contains("values"), "{err}");
    }

    #[test]
    fn a_long_reference_chain_is_bounded() {
        let mut schemas = Map::new();
        for level in 0..200 {
            schemas.insert(
                format!("L{level}"),
                json!({"$ref": format!("#/components/schemas/L{}", level + 1)}),
            );
        }
        schemas.insert("L200".into(), json!({"type": "string"}));
        let chain = json!({
            "webhooks": {"deep": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/L0"}}}}}}},
            "components": {"schemas": schemas}
        });
        let err = webhooks(&chain).unwrap_err();
        assert!(err.message.contains("deeper"), "{err}");
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            "[a-z#/$]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(8, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("$ref".to_owned()),
                        Just("webhooks".to_owned()),
                        Just("post".to_owned()),
                        Just("requestBody".to_owned()),
                        Just("content".to_owned()),
                        Just("application/json".to_owned()),
                        Just("schema".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever the document, the import answers (a list or an error) and never panics or
        /// overflows its stack.
        #[test]
        fn any_document_is_answered(doc in arbitrary_json(), pointer in "#(/[a-z$]{0,8}){0,4}") {
            let _ = webhooks(&doc);
            let wrapped = json!({"webhooks": {"x": {"post": {"requestBody": {"content": {
                "application/json": {"schema": {"$ref": pointer}}}}}}}, "components": doc});
            let _ = webhooks(&wrapped);
        }
    }
}
