//! GraphQL selections over a message payload (Ideavate's per-subscriber queries).
//!
//! A subscriber picks the fields it wants with a GraphQL query. Herald parses the query when
//! the endpoint is saved (so a typo is a 422 with line and column, not a failed delivery days
//! later) and, at delivery, either evaluates its selection set against the payload itself or
//! sends it to the application's GraphQL API (remote mode, done by the worker; this module
//! supplies the variables).
//!
//! Local evaluation treats the payload as the query root: fields, aliases, nested objects,
//! lists, named and inline fragments and `@include`/`@skip` work as in GraphQL; a field that
//! the payload lacks is `null`; field arguments are ignored (there is no resolver to give them
//! to). One exception serves Ideavate's data-model queries (`energySwitch(id: $id) { … }`): a
//! top-level field with arguments and a selection, absent from the payload, is answered from
//! the payload itself (the payload is the object such a lookup finds); a payload that holds the
//! field answers from that field as usual. A fragment's type condition applies when the object has no `__typename` or a matching
//! one. `@include(if: $v)` with `$v` unset or not a boolean excludes the field; `@skip` with
//! it unset keeps it.
//!
//! Work is bounded: a query may select at most [`MAX_EXPANDED_FIELDS`] fields with its
//! fragments expanded (checked when saved), and one evaluation at most [`MAX_SELECTED_FIELDS`]
//! (lists in the payload multiply the query's fields), so neither a query nor a payload can
//! keep a delivery worker busy indefinitely.
//!
//! Variables are, from weakest to strongest: the query's declared defaults, the payload's
//! top-level values named like the declared variables (`$id` ← `payload.id`), the endpoint's
//! configured `variables`.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use async_graphql_parser::types::{
    Directive, DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType,
    Selection, SelectionSet, TypeCondition,
};
use async_graphql_parser::{Positioned, parse_query};
use async_graphql_value::{Name, Value as GqlValue};
use serde_json::{Map, Value};

/// A parsed, checked query.
#[derive(Debug, Clone)]
pub struct Query {
    doc: ExecutableDocument,
}

/// Why a query was refused, with its place in the query text when known (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", .line.map(|l| format!(" (line {l}, column {})", .column.unwrap_or(1))).unwrap_or_default())]
pub struct QueryError {
    /// What is wrong, for a person.
    pub message: String,
    /// The line of the query text where the problem is (1-based), when known.
    pub line: Option<usize>,
    /// The column on that line (1-based), when known.
    pub column: Option<usize>,
}

impl QueryError {
    fn at(message: impl Into<String>, pos: async_graphql_parser::Pos) -> Self {
        Self {
            message: message.into(),
            line: Some(pos.line),
            column: Some(pos.column),
        }
    }
}

/// Longest query text accepted.
pub const MAX_QUERY_LENGTH: usize = 16 * 1024;

/// Most fields a query may select once its fragments are expanded. A fragment that spreads
/// another twice doubles the work: forty such fragments fit in 1.5 kB and would select 2^40
/// fields, so the length limit alone does not bound evaluation.
pub const MAX_EXPANDED_FIELDS: usize = 10_000;

/// Deepest nesting of `{`, `[` and `(` in a query's text (selection sets, list and object
/// values, arguments), checked by scanning before the text is parsed: the parser recurses once
/// per level, and a few thousand levels would overflow a worker thread's stack.
pub const MAX_NESTING: usize = 64;

/// Deepest a query's selections may go, counting each field, inline fragment and fragment
/// spread on the way down: evaluation recurses once per level, and a chain of fragments that
/// spread each other nests without a bracket.
pub const MAX_SELECTION_DEPTH: usize = 64;

/// Most fields one evaluation produces: a query selects each of its fields once per element of
/// every list it walks through, so the payload multiplies what the query asks for.
pub const MAX_SELECTED_FIELDS: usize = 1_000_000;

impl Query {
    /// Parses and checks a query: one `query` operation, every fragment defined and acyclic,
    /// every variable used declared, `@include`/`@skip` given an `if`, at most
    /// [`MAX_EXPANDED_FIELDS`] fields with fragments expanded.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        if text.len() > MAX_QUERY_LENGTH {
            return Err(QueryError {
                message: format!("longer than {MAX_QUERY_LENGTH} bytes"),
                line: None,
                column: None,
            });
        }
        if let Some((line, column)) = nesting_beyond(text, MAX_NESTING) {
            return Err(QueryError {
                message: format!("nests `{{`, `[` and `(` deeper than {MAX_NESTING} levels"),
                line: Some(line),
                column: Some(column),
            });
        }
        let doc = parse_query(text).map_err(|e| {
            let pos = e.positions().next();
            QueryError {
                message: e.to_string().trim().replace('\n', " "),
                line: pos.map(|p| p.line),
                column: pos.map(|p| p.column),
            }
        })?;
        let query = Query { doc };
        query.check()?;
        Ok(query)
    }

    fn operation(&self) -> &Positioned<async_graphql_parser::types::OperationDefinition> {
        match &self.doc.operations {
            DocumentOperations::Single(op) => op,
            DocumentOperations::Multiple(ops) => ops.values().next().expect("checked: one"),
        }
    }

    fn check(&self) -> Result<(), QueryError> {
        if let DocumentOperations::Multiple(ops) = &self.doc.operations
            && ops.len() != 1
        {
            let pos = ops.values().map(|o| o.pos).max().unwrap_or_default();
            return Err(QueryError::at("give exactly one operation", pos));
        }
        let op = self.operation();
        if op.node.ty != OperationType::Query {
            return Err(QueryError::at(
                "only `query` operations are allowed: a delivery must not change data",
                op.pos,
            ));
        }
        let declared: HashSet<&str> = op
            .node
            .variable_definitions
            .iter()
            .map(|v| v.node.name.node.as_str())
            .collect();
        let mut checker = Checker {
            doc: &self.doc,
            declared,
            visiting: Vec::new(),
            sizes: HashMap::new(),
        };
        let (fields, height) = checker.selection_set(&op.node.selection_set.node, 0)?;
        if height > MAX_SELECTION_DEPTH {
            return Err(QueryError::at(
                format!(
                    "nests selections deeper than {MAX_SELECTION_DEPTH} levels once its \
                     fragments are spread"
                ),
                op.pos,
            ));
        }
        if fields > MAX_EXPANDED_FIELDS {
            return Err(QueryError::at(
                format!(
                    "selects more than {MAX_EXPANDED_FIELDS} fields once its fragments are \
                     expanded"
                ),
                op.pos,
            ));
        }
        for (name, fragment) in &self.doc.fragments {
            checker.fragment(name, fragment, 0)?;
        }
        Ok(())
    }

    /// The variables declared by the operation, with their defaults.
    fn declared(&self) -> impl Iterator<Item = (&str, Option<Value>)> {
        self.operation().node.variable_definitions.iter().map(|v| {
            let default = v
                .node
                .default_value
                .as_ref()
                .and_then(|d| d.node.clone().into_json().ok());
            (v.node.name.node.as_str(), default)
        })
    }

    /// The variables a run uses: declared defaults < the payload's values of the same names <
    /// the endpoint's configured variables. Only declared names are taken from the payload.
    pub fn variables(
        &self,
        payload: &Value,
        configured: &Map<String, Value>,
    ) -> Map<String, Value> {
        let mut vars = Map::new();
        for (name, default) in self.declared() {
            if let Some(value) = payload.get(name) {
                vars.insert(name.to_owned(), value.clone());
            } else if let Some(default) = default {
                vars.insert(name.to_owned(), default);
            }
        }
        for (name, value) in configured {
            vars.insert(name.clone(), value.clone());
        }
        vars
    }

    /// Evaluates the selection set against the payload: the `data` a GraphQL server whose
    /// root is the payload would answer. Refused when it would select more than
    /// [`MAX_SELECTED_FIELDS`] fields.
    pub fn evaluate(
        &self,
        payload: &Value,
        variables: &Map<String, Value>,
    ) -> Result<Value, QueryError> {
        self.evaluate_within(payload, variables, MAX_SELECTED_FIELDS)
    }

    fn evaluate_within(
        &self,
        payload: &Value,
        variables: &Map<String, Value>,
        max_fields: usize,
    ) -> Result<Value, QueryError> {
        let run = Run {
            fragments: &self.doc.fragments,
            variables,
            budget: Cell::new(Some(max_fields)),
        };
        let mut data = Map::new();
        run.select_into(
            &self.operation().node.selection_set.node,
            payload,
            &mut data,
            Level::Root,
        );
        if run.budget.get().is_none() {
            return Err(QueryError {
                message: format!(
                    "the selection would hold more than {max_fields} fields for this payload"
                ),
                line: None,
                column: None,
            });
        }
        Ok(Value::Object(data))
    }
}

struct Checker<'a> {
    doc: &'a ExecutableDocument,
    declared: HashSet<&'a str>,
    visiting: Vec<&'a str>,
    /// What each checked fragment selects, fragments it spreads expanded: its fields and how
    /// deep its selections go.
    sizes: HashMap<&'a str, (usize, usize)>,
}

impl<'a> Checker<'a> {
    /// Checks a fragment spread `depth` levels down; returns how many fields it selects and
    /// how deep its selections go.
    fn fragment(
        &mut self,
        name: &'a Name,
        fragment: &'a Positioned<FragmentDefinition>,
        depth: usize,
    ) -> Result<(usize, usize), QueryError> {
        if let Some(&size) = self.sizes.get(name.as_str()) {
            return Ok(size);
        }
        if self.visiting.contains(&name.as_str()) {
            return Err(QueryError::at(
                format!("fragment `{name}` spreads itself"),
                fragment.pos,
            ));
        }
        self.visiting.push(name.as_str());
        self.directives(&fragment.node.directives)?;
        let size = self.selection_set(&fragment.node.selection_set.node, depth)?;
        self.visiting.pop();
        self.sizes.insert(name.as_str(), size);
        Ok(size)
    }

    /// Checks a selection set `depth` levels down; returns how many fields it selects,
    /// fragments expanded (saturating: only whether it exceeds the limit matters), and how
    /// many levels its selections go below it. Refused past [`MAX_SELECTION_DEPTH`] levels
    /// before going further, so the check's own recursion is bounded too.
    fn selection_set(
        &mut self,
        set: &'a SelectionSet,
        depth: usize,
    ) -> Result<(usize, usize), QueryError> {
        let mut fields: usize = 0;
        let mut height = 0;
        for item in &set.items {
            if depth + 1 > MAX_SELECTION_DEPTH {
                return Err(QueryError::at(
                    format!(
                        "nests selections deeper than {MAX_SELECTION_DEPTH} levels once its \
                         fragments are spread"
                    ),
                    item.pos,
                ));
            }
            let (size, below) = match &item.node {
                Selection::Field(field) => {
                    self.directives(&field.node.directives)?;
                    for (_, value) in &field.node.arguments {
                        self.value(&value.node, value.pos)?;
                    }
                    let (size, below) =
                        self.selection_set(&field.node.selection_set.node, depth + 1)?;
                    (1usize.saturating_add(size), below)
                }
                Selection::FragmentSpread(spread) => {
                    self.directives(&spread.node.directives)?;
                    let name = &spread.node.fragment_name.node;
                    let Some((name, fragment)) = self.doc.fragments.get_key_value(name) else {
                        return Err(QueryError::at(
                            format!("unknown fragment `{name}`"),
                            spread.pos,
                        ));
                    };
                    self.fragment(name, fragment, depth + 1)?
                }
                Selection::InlineFragment(inline) => {
                    self.directives(&inline.node.directives)?;
                    self.selection_set(&inline.node.selection_set.node, depth + 1)?
                }
            };
            fields = fields.saturating_add(size);
            height = height.max(below + 1);
        }
        Ok((fields, height))
    }

    fn directives(&self, directives: &[Positioned<Directive>]) -> Result<(), QueryError> {
        for d in directives {
            let name = d.node.name.node.as_str();
            if matches!(name, "include" | "skip")
                && !d
                    .node
                    .arguments
                    .iter()
                    .any(|(n, _)| n.node.as_str() == "if")
            {
                return Err(QueryError::at(
                    format!("@{name} needs an `if` argument"),
                    d.pos,
                ));
            }
            for (_, value) in &d.node.arguments {
                self.value(&value.node, value.pos)?;
            }
        }
        Ok(())
    }

    fn value(&self, value: &GqlValue, pos: async_graphql_parser::Pos) -> Result<(), QueryError> {
        match value {
            GqlValue::Variable(name) if !self.declared.contains(name.as_str()) => Err(
                QueryError::at(format!("variable `${name}` is not declared"), pos),
            ),
            GqlValue::List(items) => items.iter().try_for_each(|v| self.value(v, pos)),
            GqlValue::Object(fields) => fields.values().try_for_each(|v| self.value(v, pos)),
            _ => Ok(()),
        }
    }
}

/// Where a selection set sits: the operation's own (whose fields a data-model lookup may
/// answer from the payload itself), or below a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Nested,
}

struct Run<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    variables: &'a Map<String, Value>,
    /// Fields still allowed; `None` once one more was wanted: the run stops selecting and its
    /// result is refused.
    budget: Cell<Option<usize>>,
}

impl Run<'_> {
    fn select(&self, set: &SelectionSet, value: &Value) -> Map<String, Value> {
        let mut out = Map::new();
        self.select_into(set, value, &mut out, Level::Nested);
        out
    }

    fn select_into(
        &self,
        set: &SelectionSet,
        value: &Value,
        out: &mut Map<String, Value>,
        level: Level,
    ) {
        for item in &set.items {
            if self.budget.get().is_none() {
                return;
            }
            if !self.included(item.node.directives()) {
                continue;
            }
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    let key = field.alias.as_ref().map_or(name, |a| a.node.as_str());
                    self.budget
                        .set(self.budget.get().and_then(|b| b.checked_sub(1)));
                    if self.budget.get().is_none() {
                        return;
                    }
                    let found = match value.get(name) {
                        Some(found) => found,
                        // A data-model lookup (`energySwitch(id: $id) { … }`) on a payload
                        // that is that object: the payload answers it.
                        None if level == Level::Root
                            && !field.arguments.is_empty()
                            && !field.selection_set.node.items.is_empty()
                            && value.is_object() =>
                        {
                            value
                        }
                        None => &Value::Null,
                    };
                    merge(out, key, self.resolve(found, &field.selection_set.node));
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = self.fragments.get(&spread.node.fragment_name.node)
                        && self.included(&fragment.node.directives)
                        && applies(Some(&fragment.node.type_condition), value)
                    {
                        self.select_into(&fragment.node.selection_set.node, value, out, level);
                    }
                }
                Selection::InlineFragment(inline) => {
                    if applies(inline.node.type_condition.as_ref(), value) {
                        self.select_into(&inline.node.selection_set.node, value, out, level);
                    }
                }
            }
        }
    }

    fn resolve(&self, value: &Value, set: &SelectionSet) -> Value {
        if set.items.is_empty() {
            return value.clone();
        }
        match value {
            Value::Object(_) => Value::Object(self.select(set, value)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.resolve(v, set)).collect())
            }
            // A selection on a scalar has nothing to select.
            _ => Value::Null,
        }
    }

    fn included(&self, directives: &[Positioned<Directive>]) -> bool {
        directives.iter().all(|d| {
            let condition = d
                .node
                .arguments
                .iter()
                .find(|(n, _)| n.node.as_str() == "if")
                .and_then(|(_, v)| match &v.node {
                    GqlValue::Boolean(b) => Some(*b),
                    GqlValue::Variable(name) => self.variables.get(name.as_str())?.as_bool(),
                    _ => None,
                });
            match d.node.name.node.as_str() {
                "include" => condition == Some(true),
                "skip" => condition != Some(true),
                _ => true,
            }
        })
    }
}

fn applies(condition: Option<&Positioned<TypeCondition>>, value: &Value) -> bool {
    match (condition, value.get("__typename").and_then(Value::as_str)) {
        (Some(c), Some(typename)) => c.node.on.node.as_str() == typename,
        _ => true,
    }
}

/// GraphQL merges fields selected twice under one key (`a { x } a { y }` gives `a { x y }`).
fn merge(out: &mut Map<String, Value>, key: &str, value: Value) {
    match (out.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(new)) => {
            for (k, v) in new {
                merge(existing, &k, v);
            }
        }
        (_, value) => {
            out.insert(key.to_owned(), value);
        }
    }
}

/// Where a query's text first nests `{`, `[` and `(` deeper than `max` (line and column,
/// 1-based), ignoring strings, block strings and comments; `None` within the limit.
fn nesting_beyond(text: &str, max: usize) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    let mut chars = text.char_indices().peekable();
    let next_is = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, c: char| {
        chars.peek().is_some_and(|&(_, next)| next == c)
    };
    while let Some((at, c)) = chars.next() {
        match c {
            // A comment runs to the end of the line.
            '#' => while chars.next_if(|&(_, c)| c != '\n').is_some() {},
            '"' if next_is(&mut chars, '"') && text[at..].starts_with("\"\"\"") => {
                chars.next();
                chars.next();
                // A block string runs to the next `"""`; `\"""` does not end it.
                let mut quotes = 0;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' if next_is(&mut chars, '"') => {
                            chars.next();
                            quotes = 0;
                        }
                        '"' => {
                            quotes += 1;
                            if quotes == 3 {
                                break;
                            }
                        }
                        _ => quotes = 0,
                    }
                }
            }
            '"' => {
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '{' | '[' | '(' => {
                depth += 1;
                if depth > max {
                    let before = &text[..at];
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                    return Some((line, column));
                }
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(query: &str, payload: Value, configured: Value) -> Value {
        let q = Query::parse(query).unwrap();
        let configured = configured.as_object().cloned().unwrap_or_default();
        let vars = q.variables(&payload, &configured);
        q.evaluate(&payload, &vars).unwrap()
    }

    /// Ideavate's data-model queries look an object up by id; with no GraphQL API the payload
    /// is that object (or holds it under the field's name).
    #[test]
    fn a_data_model_lookup_is_answered_from_the_payload() {
        let query = "query($id: ID!) { energySwitch(id: $id) { id status supplier { name } } }";
        let switch =
            json!({"id": "sw-1", "status": "commissioned", "supplier": {"name": "Octo"}, "x": 1});
        assert_eq!(
            run(query, switch.clone(), json!({})),
            json!({"energySwitch": {"id": "sw-1", "status": "commissioned", "supplier": {"name": "Octo"}}})
        );
        assert_eq!(
            run(
                query,
                json!({"energySwitch": {"id": "sw-2", "status": "new"}}),
                json!({})
            ),
            json!({"energySwitch": {"id": "sw-2", "status": "new", "supplier": null}}),
            "the payload's own object of that name comes first"
        );
        // Without arguments, or below the top level, a missing field stays null.
        assert_eq!(
            run("{ energySwitch { id } }", switch.clone(), json!({})),
            json!({"energySwitch": null})
        );
        assert_eq!(
            run("{ supplier { owner(id: 1) { id } } }", switch, json!({})),
            json!({"supplier": {"owner": null}})
        );
    }

    #[test]
    fn alias_fragment_and_include() {
        let payload = json!({
            "__typename": "SwitchEvent",
            "id": "sw-1",
            "switch": {"__typename": "EnergySwitch", "id": "sw-1", "status": "commissioned",
                       "supplier": {"name": "Octo", "tariff": "fix"}, "secret": "x"},
            "readings": [{"kwh": 1, "at": "a"}, {"kwh": 2, "at": "b"}]
        });
        let query = r#"
            query Switch($full: Boolean = false, $id: ID) {
              sw: switch { ...Basic supplier { name tariff @include(if: $full) } }
              readings { kwh }
              missing
              ... on Other { id }
            }
            fragment Basic on EnergySwitch { id status }
        "#;
        assert_eq!(
            run(query, payload.clone(), json!({"full": true})),
            json!({
                "sw": {"id": "sw-1", "status": "commissioned",
                       "supplier": {"name": "Octo", "tariff": "fix"}},
                "readings": [{"kwh": 1}, {"kwh": 2}],
                "missing": null
            })
        );
        // The default `$full: false` drops the tariff; `$id` comes from the payload.
        let q = Query::parse(query).unwrap();
        let vars = q.variables(&payload, &Map::new());
        assert_eq!(
            vars,
            *json!({"full": false, "id": "sw-1"}).as_object().unwrap()
        );
        assert_eq!(
            q.evaluate(&payload, &vars).unwrap()["sw"]["supplier"],
            json!({"name": "Octo"})
        );
    }

    #[test]
    fn skip_inline_fragments_merging_and_scalars() {
        let payload = json!({"a": {"x": 1, "y": 2}, "n": 5, "list": [1, {"z": 1}]});
        assert_eq!(
            run(
                "{ a { x } a { y } n @skip(if: true) ... @include(if: true) { list { z } } n2: n { q } }",
                payload,
                json!({})
            ),
            json!({"a": {"x": 1, "y": 2}, "list": [null, {"z": 1}], "n2": null})
        );
    }

    /// Runs `f` on a thread with the stack of a Tokio worker (2 MiB), where the server parses.
    fn on_a_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn nesting_is_refused_before_parsing_in_every_syntax() {
        let near = MAX_NESTING - 2;
        let within = [
            format!(
                "query {{ a(x: {}1{}) }}",
                "[".repeat(near),
                "]".repeat(near)
            ),
            format!(
                "query {{ a(x: {}1{}) }}",
                "{k: ".repeat(near),
                "}".repeat(near)
            ),
            format!(
                "query($v: [Int] = {}1{}) {{ a }}",
                "[".repeat(near),
                "]".repeat(near)
            ),
            format!(
                "query {}a{}",
                "{ a ".repeat(near + 1),
                " }".repeat(near + 1)
            ),
        ];
        for text in within {
            let parsed = on_a_worker_stack(move || Query::parse(&text).map(drop));
            assert!(parsed.is_ok(), "{parsed:?}");
        }
        for levels in [MAX_NESTING + 1, 1_000, 100_000] {
            let texts = [
                format!(
                    "query {{ a(x: {}1{}) }}",
                    "[".repeat(levels),
                    "]".repeat(levels)
                ),
                format!(
                    "query {{ a(x: {}1{}) }}",
                    "{k: ".repeat(levels),
                    "}".repeat(levels)
                ),
                format!(
                    "query($v: [Int] = {}) {{ a }}",
                    "[".repeat(levels) + &"]".repeat(levels)
                ),
                format!("query {}a{}", "{ a ".repeat(levels), " }".repeat(levels)),
                format!("query {{ a{} }}", "(x: 1".repeat(levels)),
            ];
            for text in texts {
                let refused = on_a_worker_stack(move || Query::parse(&text).map(drop));
                let err = refused.unwrap_err();
                assert!(
                    err.message.contains("deeper than") || err.message.contains("longer than"),
                    "{err}"
                );
            }
        }
        // Brackets in strings, block strings and comments do not count.
        let quiet = "[".repeat(200);
        let text = format!(
            "query {{ a(x: \"{quiet}\", y: \"\"\"{quiet} \\\"\"\" {quiet}\"\"\") # {quiet}\n b }}"
        );
        assert!(Query::parse(&text).is_ok(), "{text}");
        let err = Query::parse(&format!("query {{\n  a{}", "(".repeat(70))).unwrap_err();
        assert_eq!((err.line, err.column), (Some(2), Some(3 + MAX_NESTING)));
    }

    #[test]
    fn chains_of_fragments_are_as_deep_as_their_nesting() {
        let chain = |n: usize| {
            let mut text = String::from("query { ...F0 }\n");
            for i in 0..n {
                text.push_str(&format!("fragment F{i} on T {{ a ...F{} }}\n", i + 1));
            }
            text.push_str(&format!("fragment F{n} on T {{ a }}\n"));
            text
        };
        assert!(Query::parse(&chain(MAX_SELECTION_DEPTH - 2)).is_ok());
        for n in [MAX_SELECTION_DEPTH, 500] {
            let text = chain(n);
            let err = on_a_worker_stack(move || Query::parse(&text).map(drop)).unwrap_err();
            assert!(err.message.contains("deeper than"), "{err}");
        }
        // Fragments defined in another order than spread, and a fragment reached both shallow
        // and deep, are measured from where they are spread.
        for spreads in ["...Deep ...Leaf", "...Leaf ...Deep"] {
            let mut text = format!("query {{ {spreads} }}\n");
            text.push_str(&format!(
                "fragment Deep on T {{ {} ...Leaf {} }}\n",
                "x { ".repeat(MAX_SELECTION_DEPTH - 3),
                "} ".repeat(MAX_SELECTION_DEPTH - 3)
            ));
            text.push_str(&format!(
                "fragment Leaf on T {{ {} y {} }}\n",
                "z { ".repeat(5),
                "} ".repeat(5)
            ));
            let err = Query::parse(&text).unwrap_err();
            assert!(err.message.contains("deeper than"), "{spreads}: {err}");
        }
    }

    #[test]
    fn fragments_that_multiply_are_refused() {
        // Found by the `graphql` fuzz target (a timeout): each fragment spreads the next twice,
        // so 40 of them (1.4 kB) selected 2^40 fields and evaluation never finished.
        let mut query = "{ ...F0 }\n".to_owned();
        for i in 0..40 {
            query += &format!("fragment F{i} on T {{ ...F{n} ...F{n} }}\n", n = i + 1);
        }
        query += "fragment F40 on T { a }";
        let e = Query::parse(&query).unwrap_err();
        assert!(
            e.message.contains("fields once its fragments are expanded"),
            "{e}"
        );
        assert_eq!((e.line, e.column), (Some(1), Some(1)));
        // Reusing a fragment is fine while the expansion stays small.
        let reused = "{ a { ...F } b { ...F } }\nfragment F on T { x y }";
        assert_eq!(
            run(reused, json!({"a": {"x": 1}}), json!({})),
            json!({"a": {"x": 1, "y": null}, "b": null})
        );
    }

    #[test]
    fn selections_that_the_payload_multiplies_are_refused() {
        // `list` and ten fields per element: 1 + 10 * 9 = 91 fields.
        let query = Query::parse("{ list { a b c d e f g h i j } }").unwrap();
        let nine = json!({ "list": vec![json!({}); 9] });
        assert!(query.evaluate_within(&nine, &Map::new(), 91).is_ok());
        let e = query.evaluate_within(&nine, &Map::new(), 90).unwrap_err();
        assert!(e.message.contains("more than 90 fields"), "{e}");
        assert_eq!(e.line, None);
    }

    #[test]
    fn refused_queries_say_where() {
        let cases = [
            ("{ a ", 1),
            ("query { a }\nmutation { b }", 2),
            ("mutation { a }", 1),
            ("{ ...Missing }", 1),
            ("{ a @include }", 1),
            ("{ a @include(if: $nope) }", 1),
            (
                "{ ...A }\nfragment A on T { ...B }\nfragment B on T { ...A }",
                2,
            ),
        ];
        for (query, line) in cases {
            let e = Query::parse(query).unwrap_err();
            assert_eq!(e.line, Some(line), "{query}: {e}");
            assert!(e.column.is_some(), "{query}");
        }
    }
}
