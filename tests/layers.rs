//! The floor plan of `src/` holds (docs/architecture.md, "Source layout"): imports between the
//! crate's top-level modules (`crate::name` paths outside `#[cfg(test)] mod tests`) form no
//! circle, the bottom floor (`config`, `geometry`, `clock`, `codec`, `detection`) imports
//! nothing above it, the analyzer imports only its settings and plain types, and only the
//! commands on top import the API. A new upward import fails here, naming the circle or the
//! import.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its non-test code names.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_owned).unwrap_or(name)
        })
        .filter(|m| m != "main" && m != "lib")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let top = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
            let Some(edges) = graph.get_mut(&top) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("\n#[cfg(test)]\nmod tests").next().unwrap();
            let mut named = Vec::new();
            for piece in code.split("crate::").skip(1) {
                named.push(leading_name(piece));
                // `use crate::{a::X, b}`: every name in the group.
                if let Some(group) = piece.strip_prefix('{') {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    named.extend(group.split(',').map(|p| leading_name(p.trim())));
                }
            }
            for m in named {
                if modules.contains(&m) && m != top {
                    edges.insert(m);
                }
            }
        }
    }
    graph
}

fn leading_name(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .collect()
}

/// The strongly connected components of more than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for next in &w.graph[v] {
            let next = next.as_str();
            if !w.index.contains_key(next) {
                visit(w, next);
                let l = w.low[v].min(w.low[next]);
                w.low.insert(v, l);
            } else if w.stack.contains(&next) {
                let l = w.low[v].min(w.index[next]);
                w.low.insert(v, l);
            }
        }
        if w.low[v] == w.index[v] {
            let mut component = Vec::new();
            while let Some(top) = w.stack.pop() {
                component.push(top.to_owned());
                if top == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                w.found.push(component);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.found
}

#[test]
fn imports_between_modules_point_one_way() {
    let graph = imports(&common::root().join("src"));
    assert!(graph.len() > 20, "modules found: {:?}", graph.keys());
    let found = circles(&graph);
    assert!(
        found.is_empty(),
        "import circles among src/ modules (each must point one way): {found:?}"
    );
    let only = |module: &str, allowed: &[&str]| {
        let above: Vec<&String> = graph[module]
            .iter()
            .filter(|m| !allowed.contains(&m.as_str()))
            .collect();
        assert!(
            above.is_empty(),
            "{module} imports {above:?}: it may use only {allowed:?}"
        );
    };
    for bottom in ["geometry", "clock", "codec"] {
        only(bottom, &[]);
    }
    only("detection", &["geometry"]);
    only("config", &["geometry", "clock"]);
    only("analyze", &["config", "geometry", "detection", "clock"]);
    let api_users: Vec<&String> = graph
        .iter()
        .filter(|(m, uses)| uses.contains("api") && !["app", "probe"].contains(&m.as_str()))
        .map(|(m, _)| m)
        .collect();
    assert!(
        api_users.is_empty(),
        "{api_users:?} import api: only the commands on top (app, probe) may"
    );
}

#[test]
fn a_circle_is_found_and_named() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, uses)| (m.to_owned(), uses.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
}
