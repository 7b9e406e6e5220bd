//! The Firebase-style tree of an inbox, and how writes change it.
//!
//! The tree is never stored whole. Each accepted write is a row holding one JSON value at one
//! location (`path` + `key`): POST adds a child with a generated key under the path written to,
//! PUT and PATCH write at the path itself. The tree is the union of the rows' values, each placed
//! at its location, and the store keeps one rule that makes that union well defined:
//!
//! **every place in the tree is set by at most one row.** A write removes what it replaces
//! before its row is added: the rows at and below its location (PUT; PATCH for the children it
//! names), and the replaced parts of the values of rows above it ([`prune`]), which are deleted
//! when nothing is left of them. A PATCH merges into the row at its location, which it
//! supersedes.
//!
//! Reading a subtree is then: the parts of the rows above it that fall inside it
//! ([`extract`]), plus every row inside it placed at its relative location ([`place`]). Arrays
//! are values like strings: a write below an array replaces it with an object (Firebase turns
//! arrays into objects keyed by index; Herald keeps them as sent).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Deepest location accepted (Firebase's limit too).
pub const MAX_DEPTH: usize = 32;
/// Longest path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 768;

/// A place in an inbox's tree: its segments from the root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location(Vec<String>);

/// Checks one path segment: Firebase's rules (no `.` `$` `#` `[` `]` `/`, no control
/// characters).
pub fn check_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() {
        return Err("a path segment is empty".into());
    }
    if let Some(bad) = segment
        .chars()
        .find(|c| matches!(c, '.' | '$' | '#' | '[' | ']' | '/') || c.is_control())
    {
        return Err(format!(
            "path segment {segment:?} contains {bad:?}; segments may not contain . $ # [ ] / or control characters"
        ));
    }
    Ok(())
}

impl Location {
    /// The top of the tree: no segments.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Parses a request path (already percent-decoded): `a/b/c.json`. A trailing `.json` is
    /// optional, as in Firebase; empty segments (`a//b`, a trailing `/`) are ignored.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.strip_suffix(".json").unwrap_or(raw);
        if raw.len() > MAX_PATH_BYTES {
            return Err(format!("the path is longer than {MAX_PATH_BYTES} bytes"));
        }
        let segments: Vec<String> = raw
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if segments.len() > MAX_DEPTH {
            return Err(format!("the path is deeper than {MAX_DEPTH} levels"));
        }
        for s in &segments {
            check_segment(s)?;
        }
        Ok(Self(segments))
    }

    /// A location from segments known to be valid (read back from storage).
    pub fn from_segments(segments: Vec<String>) -> Self {
        Self(segments)
    }

    /// The location of a stored row: its `path` (slash-joined, empty at the root) and `key`.
    pub fn of_row(path: &str, key: &str) -> Self {
        let mut segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        segments.push(key.to_owned());
        Self(segments)
    }

    /// The segments from the root (empty at the root).
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// Whether this is the top of the tree.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// How many segments down from the root (0 at the root).
    pub fn depth(&self) -> usize {
        self.0.len()
    }

    /// The location one level down, at `key` (not checked: the caller passes a valid segment).
    pub fn child(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(key.to_owned());
        Self(segments)
    }

    /// The slash-joined location (`""` at the root): the `path` of the rows directly below.
    pub fn joined(&self) -> String {
        self.0.join("/")
    }

    /// The `(path, key)` of the row that would sit here; `None` at the root.
    pub fn row_address(&self) -> Option<(String, String)> {
        let (key, parent) = self.0.split_last()?;
        Some((parent.join("/"), key.clone()))
    }

    /// The `(path, key)` of every location from the first level down to this one: where the
    /// rows above (and at) this location can be.
    pub fn ancestors_or_self(&self) -> Vec<(String, String)> {
        (1..=self.0.len())
            .map(|n| (self.0[..n - 1].join("/"), self.0[n - 1].clone()))
            .collect()
    }

    /// The part of `other` below this location, when `other` is at or below it.
    pub fn relative<'a>(&self, other: &'a Location) -> Option<&'a [String]> {
        other.0.strip_prefix(self.0.as_slice())
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}", self.0.join("/"))
    }
}

/// Whether a value holds nothing (Firebase stores neither nulls nor empty objects).
pub fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.values().all(is_empty),
        _ => false,
    }
}

/// Removes what sits at `rel` inside `value`, because a write there replaces it. A scalar or
/// array on the way is replaced too (writing below it turns it into an object). Returns whether
/// anything was removed; emptied objects are removed with it.
pub fn prune(value: &mut Value, rel: &[String]) -> bool {
    let Some((first, rest)) = rel.split_first() else {
        let had = !value.is_null();
        *value = Value::Null;
        return had;
    };
    match value {
        Value::Null => false,
        Value::Object(map) => {
            let Some(child) = map.get_mut(first) else {
                return false;
            };
            let changed = prune(child, rest);
            if changed && is_empty(child) {
                map.shift_remove(first);
            }
            changed
        }
        _ => {
            *value = Value::Null;
            true
        }
    }
}

/// What sits at `rel` inside `value` (array elements by index), if anything.
pub fn extract<'a>(value: &'a Value, rel: &[String]) -> Option<&'a Value> {
    rel.iter().try_fold(value, |node, segment| match node {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Puts `value` at `rel` inside `tree`, creating objects on the way and merging objects with
/// what is there (rows never overlap, so a merge never has to choose).
pub fn place(tree: &mut Value, rel: &[String], value: Value) {
    if is_empty(&value) {
        return;
    }
    let mut node = tree;
    for segment in rel {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else {
            unreachable!("just made an object")
        };
        node = map.entry(segment.clone()).or_insert(Value::Null);
    }
    merge(node, value);
}

fn merge(into: &mut Value, value: Value) {
    match (into, value) {
        (Value::Object(target), Value::Object(source)) => {
            for (k, v) in source {
                merge(target.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, value) => *slot = value,
    }
}

/// Drops nulls and empty objects, as a Firebase read shows the tree.
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .into_iter()
                .map(|(k, v)| (k, normalize(v)))
                .filter(|(_, v)| !v.is_null())
                .collect();
            if kept.is_empty() {
                Value::Null
            } else {
                Value::Object(kept)
            }
        }
        other => other,
    }
}

/// Firebase's `shallow=true`: a primitive as it is; an object as its keys, each mapped to
/// `true` (an array, which Herald keeps as sent, as its indexes).
pub fn shallow(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, _)| (k, Value::Bool(true)))
                .collect(),
        ),
        Value::Array(items) => Value::Object(
            (0..items.len())
                .map(|i| (i.to_string(), Value::Bool(true)))
                .collect(),
        ),
        primitive => primitive,
    }
}

/// Orders every object's keys as byte strings (the order of `orderBy="$key"`, and of push
/// ids by time), so a read or an export lists children the same way every time.
pub fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// A write at one location.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// POST (at a fresh key) and PUT: the value replaces whatever is at the location.
    Put(Value),
    /// PATCH: each named child is replaced (removed when `null`); the others stay.
    Patch(Map<String, Value>),
}

/// A row at or above a write's location, as the store found it.
#[derive(Debug, Clone, PartialEq)]
pub struct RowAbove {
    /// The row's entry id in the store.
    pub id: String,
    /// Where the row's value sits in the tree.
    pub location: Location,
    /// The row's stored value.
    pub value: Value,
}

/// What a write does to the rows at and above its location.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Rows whose value loses the replaced parts: `(id, new value)`.
    pub update: Vec<(String, Value)>,
    /// Rows left with nothing, or superseded by the new row.
    pub delete: Vec<String>,
    /// The value of the new row at the write's location.
    pub value: Value,
    /// The children of the location whose rows (and rows below them) the write replaces; `None`
    /// for all of them (PUT).
    pub replaced_children: Option<Vec<String>>,
}

/// Plans a write at `at` given the rows at and above it (`rows`).
pub fn plan(at: &Location, write: &Write, rows: Vec<RowAbove>) -> Plan {
    let mut plan = Plan {
        value: Value::Null,
        replaced_children: match write {
            Write::Put(_) => None,
            Write::Patch(children) => Some(children.keys().cloned().collect()),
        },
        ..Plan::default()
    };
    let mut merged_base: Option<Value> = None;
    for mut row in rows {
        let Some(rel) = row.location.relative(at).map(<[String]>::to_vec) else {
            continue;
        };
        let at_location = rel.is_empty();
        if at_location {
            // The new row takes this one's place.
            plan.delete.push(row.id);
            if let Write::Patch(_) = write {
                merged_base = Some(row.value);
            }
            continue;
        }
        let changed = match write {
            Write::Put(_) => prune(&mut row.value, &rel),
            Write::Patch(children) => {
                let mut changed = false;
                for child in children.keys() {
                    let mut target = rel.clone();
                    target.push(child.clone());
                    changed |= prune(&mut row.value, &target);
                }
                changed
            }
        };
        if changed {
            if is_empty(&row.value) {
                plan.delete.push(row.id);
            } else {
                plan.update.push((row.id, row.value));
            }
        }
    }
    plan.value = match write {
        Write::Put(value) => value.clone(),
        Write::Patch(children) => {
            let mut base = match merged_base {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            for (k, v) in children {
                if v.is_null() {
                    base.shift_remove(k);
                } else {
                    base.insert(k.clone(), v.clone());
                }
            }
            Value::Object(base)
        }
    };
    plan
}

/// Which children of a location a tree read returns: Firebase's `orderBy="$key"` with
/// `startAt`, `endAt` (inclusive) and `limitToFirst` or `limitToLast`. Keys compare as byte
/// strings (generated keys sort in the order they were made).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChildQuery {
    /// Only keys at or after this one (`startAt`); `None` for no lower bound.
    pub start_at: Option<String>,
    /// Only keys at or before this one (`endAt`); `None` for no upper bound.
    pub end_at: Option<String>,
    /// At most this many keys from one end of the range (`limitToFirst`, `limitToLast`); `None`
    /// for all of them.
    pub limit: Option<Limit>,
}

/// How many children a [`ChildQuery`] keeps, and from which end of its key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The first `n` keys (`limitToFirst`).
    First(usize),
    /// The last `n` keys (`limitToLast`).
    Last(usize),
}

impl ChildQuery {
    /// Whether the query selects every child (no bounds, no limit).
    pub fn is_everything(&self) -> bool {
        self.start_at.is_none() && self.end_at.is_none() && self.limit.is_none()
    }

    /// Whether `key` lies within `startAt`..=`endAt`.
    pub fn in_range(&self, key: &str) -> bool {
        self.start_at.as_deref().is_none_or(|s| key >= s)
            && self.end_at.as_deref().is_none_or(|e| key <= e)
    }

    /// The keys a read returns, out of all the children's keys (in range or not).
    pub fn select(&self, keys: impl IntoIterator<Item = String>) -> BTreeSet<String> {
        let in_range: BTreeSet<String> = keys.into_iter().filter(|k| self.in_range(k)).collect();
        match self.limit {
            None => in_range,
            Some(Limit::First(n)) => in_range.into_iter().take(n).collect(),
            Some(Limit::Last(n)) => {
                let skip = in_range.len().saturating_sub(n);
                in_range.into_iter().skip(skip).collect()
            }
        }
    }

    /// Applies the query to an assembled subtree: an object keeps the selected children in key
    /// order; any other value is returned as is.
    pub fn apply(&self, value: Value) -> Value {
        let Value::Object(map) = value else {
            return value;
        };
        let keep = self.select(map.keys().cloned());
        let mut entries: Vec<(String, Value)> =
            map.into_iter().filter(|(k, _)| keep.contains(k)).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        if entries.is_empty() {
            Value::Null
        } else {
            Value::Object(entries.into_iter().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn loc(s: &str) -> Location {
        Location::parse(s).unwrap()
    }

    fn segs(s: &str) -> Vec<String> {
        loc(s).segments().to_vec()
    }

    #[test]
    fn parses_paths_like_firebase() {
        assert_eq!(loc("blessing.json").segments(), ["blessing"]);
        assert_eq!(loc("/a//b/").segments(), ["a", "b"]);
        assert!(loc(".json").is_root());
        assert!(Location::parse("a.b/c").is_err());
        assert!(Location::parse("a/$x").is_err());
        assert!(Location::parse(&"a/".repeat(40)).is_err());
        let l = loc("a/b/c");
        assert_eq!(l.row_address(), Some(("a/b".into(), "c".into())));
        assert_eq!(
            l.ancestors_or_self(),
            vec![
                ("".into(), "a".into()),
                ("a".into(), "b".into()),
                ("a/b".into(), "c".into())
            ]
        );
        assert_eq!(Location::of_row("", "a"), loc("a"));
        assert_eq!(Location::of_row("a/b", "c"), l);
        assert_eq!(loc("a").relative(&l), Some(&segs("b/c")[..]));
        assert_eq!(l.relative(&loc("a")), None);
    }

    #[test]
    fn prune_removes_replaced_parts_and_scalars_on_the_way() {
        let mut v = json!({"abc": {"a": 1, "b": 2}, "x": 1});
        assert!(prune(&mut v, &segs("abc/b")));
        assert_eq!(v, json!({"abc": {"a": 1}, "x": 1}));
        assert!(prune(&mut v, &segs("abc/a")));
        assert_eq!(v, json!({"x": 1}), "emptied objects go");
        assert!(!prune(&mut v, &segs("nothing/here")));
        let mut scalar = json!({"x": 5});
        assert!(prune(&mut scalar, &segs("x/y")));
        assert_eq!(scalar, json!({}));
        let mut null = Value::Null;
        assert!(!prune(&mut null, &segs("a")));
    }

    #[test]
    fn place_merges_and_extract_reads() {
        let mut tree = Value::Null;
        place(&mut tree, &segs("a/b"), json!({"c": 1}));
        place(&mut tree, &segs("a/b/d"), json!(2));
        place(&mut tree, &segs("a/e"), Value::Null);
        place(&mut tree, &[], json!({"z": true}));
        assert_eq!(tree, json!({"a": {"b": {"c": 1, "d": 2}}, "z": true}));
        assert_eq!(extract(&tree, &segs("a/b/d")), Some(&json!(2)));
        assert_eq!(
            extract(&json!({"t": [5, 6]}), &segs("t/1")),
            Some(&json!(6))
        );
        assert_eq!(extract(&tree, &segs("a/q")), None);
        assert_eq!(
            normalize(json!({"a": {}, "b": null, "c": {"d": {}}, "e": 1})),
            json!({"e": 1})
        );
    }

    #[test]
    fn shallow_reads_and_sorted_keys() {
        assert_eq!(
            shallow(json!({"b": {"x": 1}, "a": 2})),
            json!({"b": true, "a": true})
        );
        assert_eq!(shallow(json!([5, 6])), json!({"0": true, "1": true}));
        assert_eq!(shallow(json!("text")), json!("text"));
        assert_eq!(shallow(Value::Null), Value::Null);
        let mut v = json!({"b": {"z": 1, "-a": [{"y": 1, "x": 2}]}, "a": 1});
        sort_keys(&mut v);
        assert_eq!(v.to_string(), r#"{"a":1,"b":{"-a":[{"x":2,"y":1}],"z":1}}"#);
    }

    fn row(id: &str, at: &str, value: Value) -> RowAbove {
        RowAbove {
            id: id.into(),
            location: loc(at),
            value,
        }
    }

    #[test]
    fn put_prunes_rows_above_and_replaces_the_row_at_its_location() {
        let at = loc("devices/abc");
        let rows = vec![
            row("1", "devices", json!({"abc": {"t": 1}, "def": {"t": 2}})),
            row("2", "devices/abc", json!({"old": true})),
        ];
        let p = plan(&at, &Write::Put(json!({"t": 3})), rows);
        assert_eq!(p.update, vec![("1".into(), json!({"def": {"t": 2}}))]);
        assert_eq!(p.delete, vec!["2".to_owned()]);
        assert_eq!(p.value, json!({"t": 3}));
        assert_eq!(p.replaced_children, None);

        // A row above left empty is deleted.
        let p = plan(
            &at,
            &Write::Put(json!(1)),
            vec![row("1", "devices", json!({"abc": 1}))],
        );
        assert_eq!(p.delete, vec!["1".to_owned()]);
        assert!(p.update.is_empty());
    }

    #[test]
    fn patch_merges_into_the_row_at_its_location() {
        let at = loc("devices/abc");
        let patch: Map<String, Value> =
            serde_json::from_value(json!({"b": 3, "gone": null})).unwrap();
        let rows = vec![
            row("1", "devices", json!({"abc": {"b": 1, "keep": 1}})),
            row("2", "devices/abc", json!({"a": 1, "b": 2, "gone": 0})),
        ];
        let p = plan(&at, &Write::Patch(patch), rows);
        assert_eq!(p.update, vec![("1".into(), json!({"abc": {"keep": 1}}))]);
        assert_eq!(p.delete, vec!["2".to_owned()]);
        assert_eq!(p.value, json!({"a": 1, "b": 3}));
        assert_eq!(
            p.replaced_children,
            Some(vec!["b".to_owned(), "gone".to_owned()])
        );
        // Over a scalar, PATCH starts from an empty object.
        let patch: Map<String, Value> = serde_json::from_value(json!({"x": 1})).unwrap();
        let p = plan(
            &at,
            &Write::Patch(patch),
            vec![row("2", "devices/abc", json!(7))],
        );
        assert_eq!(p.value, json!({"x": 1}));
    }

    #[test]
    fn child_queries_select_by_key() {
        let keys = || ["a", "b", "c", "d"].map(String::from);
        let q = ChildQuery {
            start_at: Some("b".into()),
            end_at: None,
            limit: Some(Limit::First(2)),
        };
        assert_eq!(q.select(keys()), ["b", "c"].map(String::from).into());
        let q = ChildQuery {
            limit: Some(Limit::Last(3)),
            end_at: Some("c".into()),
            ..Default::default()
        };
        assert_eq!(q.select(keys()), ["a", "b", "c"].map(String::from).into());
        assert_eq!(
            q.apply(json!({"d": 4, "c": 3, "a": 1})),
            json!({"a": 1, "c": 3})
        );
        assert_eq!(q.apply(json!(5)), json!(5));
        assert!(ChildQuery::default().is_everything());
    }
}
