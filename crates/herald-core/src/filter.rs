//! Payload filters: a condition on the message payload that an endpoint's deliveries must meet,
//! decided at fan-out (a message that does not match creates no task for the endpoint).
//!
//! The syntax is a small, documented subset of MongoDB's query language, because it is the
//! one most developers can already read and it is plain JSON, so it needs no parser of its own:
//!
//! ```json
//! {"device.kind": {"$in": ["private", "local"]}, "battery": {"$lt": 20}}
//! ```
//!
//! - A filter is an object; all its entries must hold (an implicit `$and`).
//! - A key is a dotted path into the payload (`device.kind`; a numeric segment indexes an
//!   array: `readings.0.value`), or one of `$and` / `$or` (a non-empty list of filters) or
//!   `$not` (a filter).
//! - A value is either a literal (equal to the value at the path) or an object of operators:
//!   `$eq $ne $gt $gte $lt $lte` (one value), `$in $nin` (a list), `$exists` (`true` or
//!   `false`), `$not` (an operator object). Several operators in one object must all hold.
//! - Comparisons (`$gt` …) hold only between two numbers or two strings; anything else, or a
//!   missing path, does not match. Equality is JSON equality, numbers compared by value
//!   (`1` equals `1.0`). `$ne` and `$nin` match a missing path, as in MongoDB.
//!
//! No existing crate evaluates this language over `serde_json` values with validation errors
//! that name the offending part, and the whole evaluator is smaller than an adapter would be.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// Nesting limit: deeper filters are refused when saved, so evaluation cannot blow the stack.
const MAX_DEPTH: usize = 16;

/// A validated filter, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Node);

#[derive(Debug, Clone, PartialEq)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Path(Vec<String>, Condition),
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    All(Vec<Condition>),
    Eq(Value),
    Ne(Value),
    Cmp(Ordering, bool, Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    Not(Box<Condition>),
}

/// Why a filter was refused: where (a path of keys inside the filter) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {})", if .location.is_empty() { "the filter".to_owned() } else { .location.join(".") })]
pub struct FilterError {
    /// Keys from the top of the filter down to the offending part (array positions as numbers,
    /// `["$or", "1"]`); empty when the filter as a whole is wrong.
    pub location: Vec<String>,
    /// What is wrong there, for a person.
    pub message: String,
}

impl Filter {
    /// Checks and compiles a filter.
    pub fn parse(value: &Value) -> Result<Self, FilterError> {
        let mut at = Vec::new();
        parse_filter(value, &mut at, 0).map(Filter)
    }

    /// Whether the payload meets the filter.
    pub fn matches(&self, payload: &Value) -> bool {
        self.0.matches(payload)
    }
}

fn error(at: &[String], message: impl Into<String>) -> FilterError {
    FilterError {
        location: at.to_vec(),
        message: message.into(),
    }
}

fn parse_filter(value: &Value, at: &mut Vec<String>, depth: usize) -> Result<Node, FilterError> {
    if depth > MAX_DEPTH {
        return Err(error(at, format!("nested more than {MAX_DEPTH} levels")));
    }
    let Value::Object(entries) = value else {
        return Err(error(at, "a filter must be an object"));
    };
    let mut nodes = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        at.push(key.clone());
        let node = match key.as_str() {
            "$and" | "$or" => {
                let list = match value {
                    Value::Array(list) if !list.is_empty() => list,
                    _ => return Err(error(at, "must be a non-empty list of filters")),
                };
                let mut parts = Vec::with_capacity(list.len());
                for (i, item) in list.iter().enumerate() {
                    at.push(i.to_string());
                    parts.push(parse_filter(item, at, depth + 1)?);
                    at.pop();
                }
                if key == "$and" {
                    Node::All(parts)
                } else {
                    Node::Any(parts)
                }
            }
            "$not" => Node::Not(Box::new(parse_filter(value, at, depth + 1)?)),
            op if op.starts_with('$') => {
                return Err(error(
                    at,
                    "unknown operator at the top of a filter (use $and, $or, $not or a path)",
                ));
            }
            path => {
                let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
                if segments.iter().any(String::is_empty) {
                    return Err(error(at, "a path has an empty segment"));
                }
                Node::Path(segments, parse_condition(value, at, depth + 1)?)
            }
        };
        at.pop();
        nodes.push(node);
    }
    Ok(if nodes.len() == 1 {
        nodes.pop().expect("one node")
    } else {
        Node::All(nodes)
    })
}

fn parse_condition(
    value: &Value,
    at: &mut Vec<String>,
    depth: usize,
) -> Result<Condition, FilterError> {
    if depth > MAX_DEPTH {
        return Err(error(at, format!("nested more than {MAX_DEPTH} levels")));
    }
    let operators = match value {
        Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => map,
        literal => return Ok(Condition::Eq(literal.clone())),
    };
    if operators.keys().any(|k| !k.starts_with('$')) {
        return Err(error(
            at,
            "mixes operators and plain keys; compare a whole object with $eq",
        ));
    }
    let mut all = Vec::with_capacity(operators.len());
    for (op, operand) in operators {
        at.push(op.clone());
        all.push(parse_operator(op, operand, at, depth)?);
        at.pop();
    }
    Ok(if all.len() == 1 {
        all.pop().expect("one condition")
    } else {
        Condition::All(all)
    })
}

fn parse_operator(
    op: &str,
    operand: &Value,
    at: &mut Vec<String>,
    depth: usize,
) -> Result<Condition, FilterError> {
    let comparable = || match operand {
        Value::Number(_) | Value::String(_) => Ok(operand.clone()),
        _ => Err(error(at, "compares with a number or a string")),
    };
    let list = || match operand {
        Value::Array(items) => Ok(items.clone()),
        _ => Err(error(at, "takes a list")),
    };
    Ok(match op {
        "$eq" => Condition::Eq(operand.clone()),
        "$ne" => Condition::Ne(operand.clone()),
        "$gt" => Condition::Cmp(Ordering::Greater, false, comparable()?),
        "$gte" => Condition::Cmp(Ordering::Greater, true, comparable()?),
        "$lt" => Condition::Cmp(Ordering::Less, false, comparable()?),
        "$lte" => Condition::Cmp(Ordering::Less, true, comparable()?),
        "$in" => Condition::In(list()?),
        "$nin" => Condition::Nin(list()?),
        "$exists" => match operand {
            Value::Bool(b) => Condition::Exists(*b),
            _ => return Err(error(at, "takes true or false")),
        },
        "$not" => match operand {
            Value::Object(map) if !map.is_empty() && map.keys().all(|k| k.starts_with('$')) => {
                Condition::Not(Box::new(parse_condition(operand, at, depth + 1)?))
            }
            _ => {
                return Err(error(
                    at,
                    "takes an object of operators, e.g. {\"$lt\": 20}",
                ));
            }
        },
        _ => {
            return Err(error(
                at,
                "unknown operator (known: $eq $ne $gt $gte $lt $lte $in $nin $exists $not)",
            ));
        }
    })
}

impl Node {
    fn matches(&self, payload: &Value) -> bool {
        match self {
            Node::All(nodes) => nodes.iter().all(|n| n.matches(payload)),
            Node::Any(nodes) => nodes.iter().any(|n| n.matches(payload)),
            Node::Not(node) => !node.matches(payload),
            Node::Path(path, condition) => condition.holds(lookup(payload, path)),
        }
    }
}

fn lookup<'a>(mut value: &'a Value, path: &[String]) -> Option<&'a Value> {
    for segment in path {
        value = match value {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

impl Condition {
    fn holds(&self, value: Option<&Value>) -> bool {
        match self {
            Condition::All(all) => all.iter().all(|c| c.holds(value)),
            Condition::Eq(expected) => value.is_some_and(|v| json_eq(v, expected)),
            Condition::Ne(expected) => !value.is_some_and(|v| json_eq(v, expected)),
            Condition::Cmp(wanted, or_equal, operand) => value
                .and_then(|v| compare(v, operand))
                .is_some_and(|o| o == *wanted || (*or_equal && o == Ordering::Equal)),
            Condition::In(items) => value.is_some_and(|v| items.iter().any(|i| json_eq(v, i))),
            Condition::Nin(items) => !value.is_some_and(|v| items.iter().any(|i| json_eq(v, i))),
            Condition::Exists(wanted) => value.is_some() == *wanted,
            Condition::Not(inner) => !inner.holds(value),
        }
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// JSON equality with numbers compared by value.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => objects_eq(x, y),
        _ => a == b,
    }
}

fn objects_eq(x: &Map<String, Value>, y: &Map<String, Value>) -> bool {
    x.len() == y.len()
        && x.iter()
            .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(filter: Value, payload: Value) -> bool {
        Filter::parse(&filter).unwrap().matches(&payload)
    }

    #[test]
    fn the_documented_example() {
        let f = json!({"device.kind": {"$in": ["private", "local"]}, "battery": {"$lt": 20}});
        assert!(check(
            f.clone(),
            json!({"device": {"kind": "local"}, "battery": 7})
        ));
        assert!(!check(
            f.clone(),
            json!({"device": {"kind": "public"}, "battery": 7})
        ));
        assert!(!check(
            f.clone(),
            json!({"device": {"kind": "local"}, "battery": 20})
        ));
        assert!(!check(f, json!({"battery": 7})));
    }

    #[test]
    fn operators() {
        let p = json!({"n": 5, "s": "b", "list": [1, 2], "obj": {"a": 1}, "nil": null,
                       "readings": [{"v": 1.5}]});
        let cases = [
            (json!({"n": 5}), true),
            (json!({"n": 5.0}), true),
            (json!({"n": {"$eq": 4}}), false),
            (json!({"n": {"$ne": 4}}), true),
            (json!({"missing": {"$ne": 4}}), true),
            (json!({"n": {"$gt": 4, "$lte": 5}}), true),
            (json!({"n": {"$gte": 6}}), false),
            (json!({"s": {"$gt": "a"}}), true),
            (json!({"s": {"$lt": 10}}), false),
            (json!({"n": {"$in": [1, 5]}}), true),
            (json!({"n": {"$nin": [1, 5]}}), false),
            (json!({"missing": {"$nin": [1]}}), true),
            (json!({"missing": {"$exists": false}}), true),
            (json!({"nil": {"$exists": true}}), true),
            (json!({"nil": null}), true),
            (json!({"list": [1, 2]}), true),
            (json!({"obj": {"$eq": {"a": 1.0}}}), true),
            (json!({"readings.0.v": {"$gt": 1}}), true),
            (json!({"readings.1.v": {"$exists": true}}), false),
            (json!({"n": {"$not": {"$lt": 3}}}), true),
            (json!({"$or": [{"n": 1}, {"s": "b"}]}), true),
            (json!({"$and": [{"n": 5}, {"s": "c"}]}), false),
            (json!({"$not": {"n": 5}}), false),
        ];
        for (i, (filter, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                check(filter.clone(), p.clone()),
                expected,
                "case {i}: {filter}"
            );
        }
    }

    #[test]
    fn invalid_filters_name_the_place() {
        let cases = [
            (json!([1]), vec![]),
            (json!({"a": {"$gt": [1]}}), vec!["a", "$gt"]),
            (json!({"a": {"$in": 1}}), vec!["a", "$in"]),
            (json!({"a": {"$regex": "x"}}), vec!["a", "$regex"]),
            (json!({"$or": []}), vec!["$or"]),
            (json!({"$or": [{"a": 1}, 2]}), vec!["$or", "1"]),
            (json!({"$where": "x"}), vec!["$where"]),
            (json!({"a..b": 1}), vec!["a..b"]),
            (json!({"a": {"$exists": 1}}), vec!["a", "$exists"]),
            (json!({"a": {"$gt": 1, "b": 2}}), vec!["a"]),
            (json!({"a": {"$not": 3}}), vec!["a", "$not"]),
        ];
        for (filter, location) in cases {
            let e = Filter::parse(&filter).unwrap_err();
            assert_eq!(e.location, location, "{filter}: {e}");
        }
        let mut deep = json!({"a": 1});
        for _ in 0..20 {
            deep = json!({ "$not": deep });
        }
        assert!(Filter::parse(&deep).is_err());
    }
}
