//! No import cycle between the modules of `crates/herald/src`.
//!
//! Every source file is parsed (with `syn`, test modules left out) and each path it names
//! through `crate::`, `super::` or `self::` (in `use` items, in code and in macro invocations)
//! is resolved to the module it lands in. A reference from module `a::x::…` to `a::y::…` is an
//! edge `a::x → a::y` between siblings under their common parent `a`; at every level the
//! siblings' edges must form no cycle. A module using its parent's items, or a parent its
//! children's, is how Rust modules nest and is not counted.
//!
//! Why: a cycle means neither module can be understood, tested or changed without the other
//! (the portal once reached into the API's state, and the API built the portal).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

type ModPath = Vec<String>;

/// Every module of the library with its file (`lib.rs` is the root, `main.rs` another crate).
fn modules(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: ModPath = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match parts.last().map(String::as_str) {
                Some("main") if parts.len() == 1 => continue,
                Some("lib") if parts.len() == 1 => parts.clear(),
                Some("mod") => {
                    parts.pop();
                }
                _ => {}
            }
            found.insert(parts, path);
        }
    }
    found
}

/// Collects the module paths a file names, resolved against the file's own module.
struct References<'a> {
    here: &'a [String],
    found: Vec<ModPath>,
}

impl References<'_> {
    /// `segments` as written (`crate`, `super`, `self` first); `None` for paths that do not
    /// start at a module Herald names (`std::…`, a local, a child module by its bare name).
    fn resolve(&self, segments: &[String]) -> Option<ModPath> {
        let mut base: ModPath;
        let mut rest = segments;
        match segments.first().map(String::as_str) {
            Some("crate") => {
                base = Vec::new();
                rest = &segments[1..];
            }
            Some("self") => {
                base = self.here.to_vec();
                rest = &segments[1..];
            }
            Some("super") => {
                base = self.here.to_vec();
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            _ => return None,
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn add(&mut self, segments: Vec<String>) {
        if let Some(path) = self.resolve(&segments) {
            self.found.push(path);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                if n.ident != "self" {
                    full.push(n.ident.to_string());
                }
                self.add(full);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                full.push(r.ident.to_string());
                self.add(full);
            }
            syn::UseTree::Glob(_) => self.add(prefix.clone()),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta.require_list().is_ok_and(|l| {
                l.tokens
                    .to_string()
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w == "test")
            })
    })
}

impl<'ast> Visit<'ast> for References<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test_only(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.add(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Macro arguments are tokens, not syntax: find `crate :: a :: b` runs in them.
        let tokens = m.tokens.to_string();
        let words: Vec<&str> = tokens.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if *w == "crate" || *w == "super" {
                let mut path = vec![(*w).to_owned()];
                let mut j = i + 1;
                while words.get(j) == Some(&"::") {
                    let Some(next) = words.get(j + 1) else { break };
                    path.push(
                        next.trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
                            .to_owned(),
                    );
                    j += 2;
                }
                if path.len() > 1 {
                    self.add(path);
                }
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

/// The module a resolved path lands in: its longest prefix that is a module.
fn owning_module(path: &[String], modules: &BTreeMap<ModPath, PathBuf>) -> ModPath {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains_key(p))
        .unwrap_or_default()
}

/// Cycles among one parent's children (Tarjan's strongly connected components).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn connect(s: &mut State<'_>, v: &str) {
        s.index.insert(v.to_owned(), s.next);
        s.low.insert(v.to_owned(), s.next);
        s.next += 1;
        s.stack.push(v.to_owned());
        let targets: Vec<String> = s.edges.get(v).into_iter().flatten().cloned().collect();
        for w in targets {
            if !s.index.contains_key(&w) {
                connect(s, &w);
                let low = s.low[v].min(s.low[&w]);
                s.low.insert(v.to_owned(), low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[&w]);
                s.low.insert(v.to_owned(), low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                let done = w == v;
                component.push(w);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            connect(&mut state, v);
        }
    }
    state.found
}

#[test]
fn no_import_cycle_between_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    assert!(modules.len() > 50, "found only {} modules", modules.len());
    // parent → (child → children it uses), with one example reference per edge.
    let mut siblings: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut examples: BTreeMap<(ModPath, String, String), String> = BTreeMap::new();
    for (here, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        let syntax = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut refs = References {
            here,
            found: Vec::new(),
        };
        refs.visit_file(&syntax);
        for target in refs.found {
            let there = owning_module(&target, &modules);
            let common = here.iter().zip(&there).take_while(|(a, b)| a == b).count();
            if common == here.len() || common == there.len() {
                continue; // the same module, an ancestor or a descendant
            }
            let parent = here[..common].to_vec();
            let (from, to) = (here[common].clone(), there[common].clone());
            examples
                .entry((parent.clone(), from.clone(), to.clone()))
                .or_insert_with(|| format!("{} names {}", file.display(), target.join("::")));
            siblings
                .entry(parent)
                .or_default()
                .entry(from)
                .or_default()
                .insert(to);
        }
    }
    let mut report = Vec::new();
    for (parent, edges) in &siblings {
        for cycle in cycles(edges) {
            let at = if parent.is_empty() {
                "crate".to_owned()
            } else {
                parent.join("::")
            };
            let mut line = format!("in {at}: {}", cycle.join(" ↔ "));
            for from in &cycle {
                for to in edges[from].iter().filter(|t| cycle.contains(t)) {
                    let example = &examples[&(parent.clone(), from.clone(), to.clone())];
                    line.push_str(&format!("\n    {from} → {to}: {example}"));
                }
            }
            report.push(line);
        }
    }
    assert!(report.is_empty(), "import cycles:\n{}", report.join("\n"));
}
