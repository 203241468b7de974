//! The layout rules of docs/ARCHITECTURE.md, checked on the sources:
//! - inside each crate, no two top-level modules import each other, directly or through a loop
//!   (an item re-exported by the crate root counts as an import of the module defining it);
//! - one mechanism, one place: a single `fn write_atomic` in the workspace's sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    // The run-time variable (cargo sets it for `cargo test`) rather than the compile-time one,
    // which a test binary reused from a checkout at another path would carry stale.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Identifiers following `prefix` in `text` (`crate::x`, `super::x`), and the names inside a
/// `crate::{a, b::c}` group.
fn paths_after(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// Code without comments (doc examples and prose mention modules without importing them).
fn code_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("readable source")
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module graph of one crate: top-level module → the top-level modules it uses.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let root_file = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .find(|p| p.is_file());
    let Some(root_file) = root_file else {
        return BTreeMap::new();
    };
    let root = code_of(&root_file);
    // Top-level modules and the names the root re-exports from them.
    let mut modules = BTreeSet::new();
    for line in root.lines() {
        let l = line.trim();
        if let Some(name) = l
            .strip_prefix("pub mod ")
            .or_else(|| l.strip_prefix("mod "))
            .and_then(|r| r.strip_suffix(';'))
        {
            modules.insert(name.trim().to_owned());
        }
    }
    let mut reexported: BTreeMap<String, String> = BTreeMap::new();
    for stmt in root.split(';') {
        let s = stmt.trim();
        let Some(body) = s.strip_prefix("pub use ") else {
            continue;
        };
        let module: String = body
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !modules.contains(&module) {
            continue;
        }
        let names = match body.find('{') {
            Some(i) => body[i + 1..].trim_end_matches('}').to_owned(),
            None => body.rsplit("::").next().unwrap_or_default().to_owned(),
        };
        for n in names.split(',') {
            let n = n.trim().rsplit("::").next().unwrap_or_default().trim();
            if !n.is_empty() && n != "*" {
                reexported.insert(n.to_owned(), module.clone());
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        let top = parts[0].trim_end_matches(".rs").to_owned();
        if !modules.contains(&top) {
            continue;
        }
        // `super::` in `src/x.rs` or `src/x/mod.rs` is the crate root.
        let super_is_root =
            parts.len() == 1 || parts.last().is_some_and(|p| p == "mod.rs") && parts.len() == 2;
        let code = code_of(&file);
        let mut used = paths_after(&code, "crate::");
        if super_is_root {
            used.extend(paths_after(&code, "super::"));
        }
        let edges = graph.entry(top.clone()).or_default();
        for name in used {
            let target = if modules.contains(&name) {
                Some(name)
            } else {
                reexported.get(&name).cloned()
            };
            if let Some(t) = target.filter(|t| *t != top) {
                edges.insert(t);
            }
        }
    }
    graph
}

/// A cycle of the graph, if any.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut c = stack[start..].to_vec();
                    c.push(next.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_another_in_a_loop() {
    let mut checked = 0;
    for entry in std::fs::read_dir(crates_dir()).expect("crates/") {
        let dir = entry.expect("entry").path();
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = module_graph(&src);
        assert!(
            cycle(&graph).is_none(),
            "{}: modules import each other: {}",
            dir.display(),
            cycle(&graph).unwrap_or_default().join(" → ")
        );
        checked += 1;
    }
    assert!(checked >= 11, "only {checked} crates found");
}

#[test]
fn the_checker_finds_a_loop() {
    let dir = std::env::temp_dir().join(format!("facekit-arch-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\npub use c::Thing;\n").unwrap();
    std::fs::write(
        src.join("a.rs"),
        "use crate::b::x;\n// crate::c is only mentioned\n",
    )
    .unwrap();
    std::fs::write(src.join("b/mod.rs"), "mod inner;\n").unwrap();
    std::fs::write(src.join("b/inner.rs"), "use crate::{Thing, a};\nuse super::y;\n").unwrap();
    std::fs::write(src.join("c.rs"), "pub struct Thing;\n").unwrap();
    let graph = module_graph(&src);
    assert_eq!(graph["a"], BTreeSet::from(["b".to_owned()]));
    assert_eq!(graph["b"], BTreeSet::from(["a".to_owned(), "c".to_owned()]));
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()])
    );
    std::fs::write(src.join("b/inner.rs"), "use crate::Thing;\n").unwrap();
    assert_eq!(cycle(&module_graph(&src)), None);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn one_atomic_write_in_the_workspace() {
    let mut files = Vec::new();
    rust_files(&crates_dir(), &mut files);
    let defs: Vec<String> = files
        .iter()
        .filter(|f| f.components().any(|c| c.as_os_str() == "src"))
        .filter(|f| code_of(f).contains("fn write_atomic"))
        .map(|f| f.display().to_string())
        .collect();
    assert_eq!(defs.len(), 1, "{defs:?}");
    assert!(defs[0].ends_with("face-io/src/file.rs"), "{defs:?}");
}
