//! Request bodies as an inbox keeps them: JSON and form-urlencoded bodies are parsed into JSON
//! values; anything else is kept as a JSON string, the text itself when it is UTF-8 and base64
//! otherwise. The encoding is stored with the entry, so a reader knows how to take it back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// How a stored entry's body was received, and so how to give it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No body (the value is `null`).
    Empty,
    /// A JSON body, kept as the value it parsed to.
    Json,
    /// `application/x-www-form-urlencoded`, parsed into an object.
    Form,
    /// UTF-8 text kept as a string.
    Text,
    /// Bytes kept as a base64 string.
    Base64,
}

impl Encoding {
    /// The name stored with the entry (`empty`, `json`, `form`, `text`, `base64`).
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Empty => "empty",
            Encoding::Json => "json",
            Encoding::Form => "form",
            Encoding::Text => "text",
            Encoding::Base64 => "base64",
        }
    }

    /// Parses the name [`Encoding::as_str`] gives; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Encoding::Empty,
            Encoding::Json,
            Encoding::Form,
            Encoding::Text,
            Encoding::Base64,
        ]
        .into_iter()
        .find(|e| e.as_str() == text)
    }
}

/// The media type without parameters, lowercased.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Parses a body by its `Content-Type`. JSON that does not parse under a JSON content type is an
/// error; without a content type, a body that parses as JSON is JSON.
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<(Value, Encoding), String> {
    if bytes.is_empty() {
        return Ok((Value::Null, Encoding::Empty));
    }
    let essence = content_type.map(essence);
    let read_as_json = match essence.as_deref() {
        Some(e) => e == "application/json" || e.ends_with("+json") || e == FORM,
        None => true,
    };
    if read_as_json && crate::validate::json_too_deep(bytes, crate::validate::MAX_JSON_DEPTH) {
        return Err(format!(
            "the body nests arrays and objects deeper than {} levels",
            crate::validate::MAX_JSON_DEPTH
        ));
    }
    match essence.as_deref() {
        Some(e) if e == "application/json" || e.ends_with("+json") => serde_json::from_slice(bytes)
            .map(|v| (v, Encoding::Json))
            .map_err(|e| format!("malformed JSON body: {e}")),
        // `curl -d '{"a": 1}'` sends JSON labelled as a form; Firebase takes it as JSON, and so
        // does an inbox when the whole body is a JSON object or array.
        Some(FORM) => match json_document(bytes) {
            Some(value) => Ok((value, Encoding::Json)),
            None => Ok((parse_form(bytes)?, Encoding::Form)),
        },
        None if serde_json::from_slice::<Value>(bytes).is_ok() => Ok((
            serde_json::from_slice(bytes).expect("just parsed"),
            Encoding::Json,
        )),
        _ => Ok(match std::str::from_utf8(bytes) {
            Ok(text) => (Value::String(text.to_owned()), Encoding::Text),
            Err(_) => (Value::String(STANDARD.encode(bytes)), Encoding::Base64),
        }),
    }
}

/// The body as JSON when it is a whole JSON object or array.
fn json_document(bytes: &[u8]) -> Option<Value> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if !matches!(first, b'{' | b'[') {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

/// Most levels a form field name may nest (`a[b][c]` is three): with the array a repeated name
/// makes, the value stays within [`crate::validate::MAX_JSON_DEPTH`], like a JSON body.
pub const MAX_FORM_NAME_DEPTH: usize = crate::validate::MAX_JSON_DEPTH - 1;

/// Decodes a form: `a=1&b=2` into `{"a": "1", "b": "2"}`; a repeated name collects its values
/// in an array; bracket names nest (`device[id]=1` → `{"device": {"id": "1"}}`,
/// `tags[]=a&tags[]=b` → `{"tags": ["a", "b"]}`), the way PHP, Rails and Express read them (and
/// the way Herald's own form encoding writes them). A name nesting deeper than
/// [`MAX_FORM_NAME_DEPTH`] levels (brackets plain or percent-encoded alike) refuses the whole
/// body, before anything is built from it.
pub fn parse_form(bytes: &[u8]) -> Result<Value, String> {
    let mut root = Map::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        let (head, rest) = match name.find('[') {
            Some(i) if name.ends_with(']') && i > 0 => (&name[..i], &name[i + 1..name.len() - 1]),
            _ => (name.as_ref(), ""),
        };
        let nested = !rest.is_empty() || name.ends_with("[]");
        // Counted before splitting: the check costs one pass, whatever the name.
        let depth = 1 + if nested {
            rest.matches("][").count() + 1
        } else {
            0
        };
        if depth > MAX_FORM_NAME_DEPTH {
            return Err(format!(
                "a form field name nests deeper than {MAX_FORM_NAME_DEPTH} levels"
            ));
        }
        let mut path: Vec<&str> = vec![head];
        if nested {
            path.extend(rest.split("]["));
        }
        insert(&mut root, &path, Value::String(value.into_owned()));
    }
    Ok(Value::Object(root))
}

fn insert(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        match map.get_mut(*first) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let previous = existing.take();
                *existing = Value::Array(vec![previous, value]);
            }
            None => {
                map.insert((*first).to_owned(), value);
            }
        }
        return;
    }
    if rest == [""] {
        // `name[]`: append.
        match map
            .entry((*first).to_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(items) => items.push(value),
            other => *other = Value::Array(vec![other.take(), value]),
        }
        return;
    }
    let slot = map
        .entry((*first).to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(child) = slot {
        insert(child, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_by_content_type() {
        assert_eq!(
            parse(Some("application/json; charset=utf-8"), br#"{"a":1}"#).unwrap(),
            (json!({"a": 1}), Encoding::Json)
        );
        assert!(parse(Some("application/json"), b"{nope").is_err());
        assert_eq!(
            parse(None, b"[1,2]").unwrap(),
            (json!([1, 2]), Encoding::Json)
        );
        assert_eq!(
            parse(Some("text/plain"), b"{\"a\":1}").unwrap(),
            (json!("{\"a\":1}"), Encoding::Text)
        );
        assert_eq!(
            parse(Some("application/octet-stream"), &[0xff, 0x00]).unwrap(),
            (json!("/wA="), Encoding::Base64)
        );
        assert_eq!(parse(None, b"").unwrap(), (Value::Null, Encoding::Empty));
        assert_eq!(Encoding::parse("form"), Some(Encoding::Form));
        // Too deep to be walked safely later, whatever labels it as JSON; as text it is text.
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(parse(Some("application/json"), deep.as_bytes()).is_err());
        assert!(parse(None, deep.as_bytes()).is_err());
        assert_eq!(
            parse(Some("text/plain"), deep.as_bytes()).unwrap().1,
            Encoding::Text
        );
    }

    #[test]
    fn json_sent_as_a_form_is_json() {
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(
            parse(form, br#"{"a": 1}"#).unwrap(),
            (json!({"a": 1}), Encoding::Json)
        );
        assert_eq!(
            parse(form, b"a=1").unwrap(),
            (json!({"a": "1"}), Encoding::Form)
        );
    }

    #[test]
    fn forms_nest_up_to_a_limit_checked_before_building() {
        let form = Some("application/x-www-form-urlencoded");
        let name = |depth: usize| format!("a{}", "[b]".repeat(depth - 1));
        let deepest = format!("{}=1", name(MAX_FORM_NAME_DEPTH));
        let (value, _) = parse(form, deepest.as_bytes()).unwrap();
        assert!(!crate::validate::json_too_deep(
            value.to_string().as_bytes(),
            crate::validate::MAX_JSON_DEPTH
        ));
        // Repeated, it becomes an array: still within the JSON limit.
        let twice = format!("{deepest}&{deepest}");
        let (value, _) = parse(form, twice.as_bytes()).unwrap();
        assert!(!crate::validate::json_too_deep(
            value.to_string().as_bytes(),
            crate::validate::MAX_JSON_DEPTH
        ));
        for too_deep in [
            format!("{}=1", name(MAX_FORM_NAME_DEPTH + 1)),
            format!("{}[]=1", name(MAX_FORM_NAME_DEPTH)),
            format!("a{}=1", "%5Bb%5D".repeat(MAX_FORM_NAME_DEPTH)),
            format!("ok=1&a{}=1", "[b]".repeat(100_000)),
        ] {
            assert!(
                parse(form, too_deep.as_bytes()).is_err(),
                "{}",
                &too_deep[..40]
            );
        }
    }

    #[test]
    fn forms_nest_and_repeat() {
        assert_eq!(
            parse(
                Some("application/x-www-form-urlencoded"),
                b"device%5Bid%5D=1&device%5Bkind%5D=imp&tags[]=a&tags[]=b&x=1&x=2&ok=true"
            )
            .unwrap()
            .0,
            json!({"device": {"id": "1", "kind": "imp"}, "tags": ["a", "b"], "x": ["1", "2"], "ok": "true"})
        );
    }
}
