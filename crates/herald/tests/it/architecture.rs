//! ARCHITECTURE.md names the test that guards each invariant; this checks every one exists, so
//! a renamed or deleted test cannot leave an invariant claiming a guard it no longer has.
//!
//! A guard is a backticked name in an invariant's "Guarded by" sentences: `file::test` (a test
//! of `tests/it/file.rs`), `module::path::test` (a unit test, or a check of the store's
//! conformance suite, in the module of that path), a bare conformance check name, or a module
//! whose unit tests are meant (`herald_core::inbox::tree`).

use std::path::{Path, PathBuf};

/// A function found in the workspace: the module path of its file and whether it is a test (or
/// a check of the conformance suite, which its harness turns into one test per engine).
struct Found {
    module: Vec<String>,
    name: String,
    is_test: bool,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crates/herald-store/src/sqlite/faults.rs` → `[herald_store, sqlite, faults]`,
/// `crates/herald/tests/it/logs.rs` → `[herald, it, logs]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(workspace().join("crates")).unwrap();
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().replace('-', "_"))
        .filter(|p| !matches!(p.as_str(), "src" | "tests" | "mod" | "lib" | "main"))
        .collect();
    parts.dedup();
    parts
}

fn functions() -> Vec<Found> {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates"), &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let module = module_of(&file);
        let in_conformance = module.iter().any(|m| m == "conformance");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let Some(rest) = [
                "async fn ",
                "fn ",
                "pub async fn ",
                "pub fn ",
                "pub(crate) async fn ",
            ]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p)) else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let attributed = lines[i.saturating_sub(4)..i]
                .iter()
                .any(|l| l.contains("#[test]") || l.contains("::test"));
            found.push(Found {
                module: module.clone(),
                name,
                is_test: attributed || in_conformance,
            });
        }
    }
    found
}

/// The backticked names of every "Guarded by" passage of the invariants.
fn guards(text: &str) -> Vec<String> {
    let invariants = text
        .split_once("## Invariants")
        .map(|(_, rest)| rest)
        .expect("ARCHITECTURE.md has an Invariants section");
    let mut names = Vec::new();
    for paragraph in invariants.split("\n\n") {
        let Some((_, guarded)) = paragraph.split_once("Guarded by") else {
            continue;
        };
        for (i, piece) in guarded.split('`').enumerate() {
            let is_name = i % 2 == 1
                && !piece.is_empty()
                && piece
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':')
                && piece.contains('_');
            if is_name {
                names.push(piece.to_owned());
            }
        }
    }
    names
}

#[test]
fn every_guard_named_in_architecture_md_exists() {
    let text = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    let guards = guards(&text);
    assert!(guards.len() > 60, "found only {} guards", guards.len());
    let functions = functions();
    let mut missing = Vec::new();
    for guard in &guards {
        let path: Vec<&str> = guard.split("::").collect();
        let (name, module) = path.split_last().unwrap();
        let ends_with = |m: &[String], suffix: &[&str]| {
            m.len() >= suffix.len()
                && m[m.len() - suffix.len()..]
                    .iter()
                    .zip(suffix)
                    .all(|(a, b)| a == b)
        };
        let a_test = functions.iter().any(|f| {
            f.is_test
                && f.name == *name
                && (ends_with(&f.module, module)
                    // a unit test in the `tests` module of a file
                    || module.last() == Some(&"tests")
                        && ends_with(&f.module, &module[..module.len() - 1]))
        });
        // A module whose unit tests are meant.
        let a_tested_module = functions
            .iter()
            .any(|f| f.is_test && ends_with(&f.module, &path));
        if !a_test && !a_tested_module {
            missing.push(guard.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names guards that do not exist: {missing:?}"
    );
}
