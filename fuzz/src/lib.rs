//! What the fuzz targets share: JSON values built from the fuzzer's bytes.
//!
//! Mutating JSON text wastes most executions on syntax errors that `serde_json` (not Herald)
//! rejects, so the targets that take payloads and filters build `serde_json::Value`s directly.
//! Object keys come half the time from a small vocabulary (filter operators, dotted paths,
//! array indexes, `__typename`, bracket names): random strings would almost never hit the
//! code that treats those specially.

use arbitrary::{Arbitrary, Result, Unstructured};
use serde_json::{Map, Number, Value};

/// Deeper than Herald's own limits (16 for filters), shallow enough that the recursive
/// evaluators cannot overflow the fuzzer's stack on the values themselves.
const MAX_DEPTH: usize = 24;

const KEYS: &[&str] = &[
    "$and",
    "$or",
    "$not",
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$regex",
    "a",
    "b",
    "a.b",
    "a.0",
    "a.b.c",
    "0",
    "1",
    "",
    ".",
    "a..b",
    "__typename",
    "id",
    "kind",
    "a[b]",
    "a[]",
    "[",
    "]",
    "payload",
    "é",
    "a b",
];

/// A JSON value for a fuzz input.
#[derive(Debug, Clone)]
pub struct Json(pub Value);

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        value(u, 0).map(Json)
    }
}

fn value(u: &mut Unstructured<'_>, depth: usize) -> Result<Value> {
    let last_kind = if depth >= MAX_DEPTH { 3 } else { 5 };
    Ok(match u.int_in_range(0..=last_kind)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => number(u)?,
        3 => Value::String(string(u)?),
        4 => {
            let len = u.int_in_range(0..=4)?;
            Value::Array(
                (0..len)
                    .map(|_| value(u, depth + 1))
                    .collect::<Result<_>>()?,
            )
        }
        _ => {
            let len = u.int_in_range(0..=4)?;
            let mut map = Map::new();
            for _ in 0..len {
                map.insert(string(u)?, value(u, depth + 1)?);
            }
            Value::Object(map)
        }
    })
}

fn number(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Value::from(u.int_in_range(-3i64..=25)?),
        1 => Value::from(u.arbitrary::<i64>()?),
        2 => Value::from(u.arbitrary::<u64>()?),
        // NaN and infinities are not JSON.
        _ => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
    })
}

/// A string or object key: from the vocabulary, or any string.
fn string(u: &mut Unstructured<'_>) -> Result<String> {
    if u.arbitrary()? {
        Ok((*u.choose(KEYS)?).to_owned())
    } else {
        u.arbitrary()
    }
}
