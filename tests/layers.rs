//! Dependencies point down: every import under `src/` goes to a module on a lower row of the
//! layer table in `src/lib.rs`'s doc comment, and the parts of one module import each other
//! without a cycle. Imports are read from the source itself: every `use` line and every
//! `crate::`, `super::` and `self::` path, with comments, strings and characters left out and
//! inline modules (`mod tests { ... }`) followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path below the crate root (`["image", "disk"]`).
type ModPath = Vec<String>;

/// One import: which module, in which file, names which path.
#[derive(Debug, Clone)]
struct Import {
    file: PathBuf,
    from: ModPath,
    to: ModPath,
    text: String,
}

/// The layer table: each top-level module's row (0 is the top).
fn layers(lib_rs: &str) -> Result<BTreeMap<String, usize>, String> {
    let mut rows = BTreeMap::new();
    let mut row = 0;
    for line in lib_rs.lines() {
        let Some(cells) = line.strip_prefix("//! |") else {
            continue;
        };
        let cols: Vec<&str> = cells.split('|').collect();
        if cols.len() < 2 || cols[1].trim().starts_with("---") || cols[1].trim() == "modules" {
            continue;
        }
        let names: Vec<&str> = cols[1].split('`').skip(1).step_by(2).collect();
        if names.is_empty() {
            return Err(format!("a layer row names no module: {line}"));
        }
        for n in names {
            if rows.insert(n.to_string(), row).is_some() {
                return Err(format!("`{n}` is on two rows of the layer table"));
            }
        }
        row += 1;
    }
    Ok(rows)
}

/// The source with comments, string, byte-string, raw-string and character literals blanked
/// out (replaced by spaces, so positions and braces outside them stay as they are).
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[char]| {
        for ch in s {
            out.push(if *ch == '\n' { '\n' } else { ' ' });
        }
    };
    while i < c.len() {
        let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            let end = c[i..]
                .iter()
                .position(|&x| x == '\n')
                .map_or(c.len(), |p| i + p);
            blank(&mut out, &c[i..end]);
            i = end;
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < c.len() && depth > 0 {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &c[i..j]);
            i = j;
        } else if !ident_before && (c[i] == 'r' || (c[i] == 'b' && c.get(i + 1) == Some(&'r'))) && {
            let k = if c[i] == 'b' { i + 2 } else { i + 1 };
            let hashes = c[k..].iter().take_while(|&&x| x == '#').count();
            c.get(k + hashes) == Some(&'"')
        } {
            let k = if c[i] == 'b' { i + 2 } else { i + 1 };
            let hashes = c[k..].iter().take_while(|&&x| x == '#').count();
            let mut j = k + hashes + 1;
            while j < c.len() {
                if c[j] == '"'
                    && c[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&x| x == '#')
                        .count()
                        == hashes
                {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            blank(&mut out, &c[i..j.min(c.len())]);
            i = j.min(c.len());
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(c.len());
            blank(&mut out, &c[i..end]);
            i = end;
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{1F}'), or a lifetime ('a, 'static).
            let end = if c.get(i + 1) == Some(&'\\') {
                c[i + 2..]
                    .iter()
                    .position(|&x| x == '\'')
                    .map(|p| i + 2 + p + 1)
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(e) => {
                    blank(&mut out, &c[i..e]);
                    i = e;
                }
                None => {
                    out.push(c[i]);
                    i += 1;
                }
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// The inline modules of a file: (start, end, name) byte ranges of `mod NAME { ... }`.
fn inline_modules(code: &str) -> Vec<(usize, usize, String)> {
    let b = code.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(p) = code[at..].find("mod ") {
        let start = at + p;
        at = start + 4;
        if start > 0 && is_ident(b[start - 1] as char) {
            continue;
        }
        let rest = &code[at..];
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|&ch| is_ident(ch))
            .collect();
        let after = rest.trim_start()[name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = code.len() - after.len();
        let mut depth = 0;
        let mut end = code.len();
        for (k, &ch) in b.iter().enumerate().skip(open) {
            match ch {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        found.push((start, end, name));
    }
    found
}

/// Expands a use tree (`a::{b, c::{d, e}}`, whitespace removed) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_string()];
    };
    let prefix = &tree[..open];
    let close = tree.rfind('}').unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for ch in inner.chars() {
        match ch {
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            '{' => {
                depth += 1;
                cur.push(ch);
            }
            '}' => {
                depth -= 1;
                cur.push(ch);
            }
            _ => cur.push(ch),
        }
    }
    parts.push(cur);
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |x| format!("{prefix}{x}")))
        .collect()
}

/// Every `crate::`/`super::`/`self::` path in `code` with its position: from `use` trees and
/// from paths written inline.
fn paths(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let b = code.as_bytes();
    let mut at = 0;
    while let Some(p) = code[at..].find("use ") {
        let start = at + p;
        at = start + 4;
        if start > 0 && (is_ident(b[start - 1] as char) || b[start - 1] == b'$') {
            continue;
        }
        let Some(semi) = code[at..].find(';') else {
            break;
        };
        let tree: String = code[at..at + semi]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        for path in expand(&tree) {
            let path = path.split(" as ").next().unwrap_or_default().to_string();
            out.push((start, path));
        }
    }
    for root in ["crate::", "super::", "self::"] {
        let mut at = 0;
        while let Some(p) = code[at..].find(root) {
            let start = at + p;
            at = start + root.len();
            let before = code[..start].chars().next_back();
            if before.is_some_and(|ch| is_ident(ch) || ch == '$' || ch == ':') {
                continue;
            }
            let path: String = code[start..]
                .chars()
                .take_while(|&ch| is_ident(ch) || ch == ':')
                .collect();
            out.push((start, path.trim_end_matches(':').to_string()));
        }
    }
    out
}

/// The module a file is (`src/image/disk.rs` is `image::disk`, `src/image/mod.rs` is `image`).
fn file_module(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: ModPath = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts
}

/// Resolves `path` written in module `here` to a module path, cut to the longest module that
/// exists (`crate::image::disk::build` is `image::disk`). None for paths outside the crate.
fn resolve(here: &[String], path: &str, modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let comps: Vec<&str> = path.split("::").filter(|c| !c.is_empty()).collect();
    let (mut base, mut rest): (ModPath, &[&str]) = match comps.first() {
        Some(&"crate") => (Vec::new(), &comps[1..]),
        Some(&"self") => (here.to_vec(), &comps[1..]),
        Some(&"super") => (here.to_vec(), &comps[..]),
        _ => return None,
    };
    while let Some((&"super", more)) = rest.split_first() {
        base.pop();
        rest = more;
    }
    for c in rest {
        let mut next = base.clone();
        next.push(c.to_string());
        if !modules.contains(&next) {
            break;
        }
        base = next;
    }
    Some(base)
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()) {
            if e.is_dir() {
                stack.push(e);
            } else if e.extension().is_some_and(|x| x == "rs") {
                out.push(e);
            }
        }
    }
    out.sort();
    out
}

/// The library's imports under `src` (the command line's own files, `main.rs` and the modules
/// it declares, are left out: they sit above everything).
fn imports(src: &Path) -> (BTreeSet<ModPath>, Vec<Import>) {
    let main = std::fs::read_to_string(src.join("main.rs")).unwrap_or_default();
    let binary: BTreeSet<String> = main
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod "))
        .map(|m| m.trim_end_matches(';').trim().to_string())
        .chain(["main".to_string()])
        .collect();
    let files: Vec<(PathBuf, ModPath, String)> = rust_files(src)
        .into_iter()
        .map(|f| {
            let m = file_module(src, &f);
            let code = code_only(&std::fs::read_to_string(&f).unwrap());
            (f, m, code)
        })
        .filter(|(_, m, _)| !(m.len() == 1 && binary.contains(&m[0])))
        .collect();
    let mut modules = BTreeSet::new();
    for (_, m, code) in &files {
        for k in 0..=m.len() {
            modules.insert(m[..k].to_vec());
        }
        for (_, _, name) in inline_modules(code) {
            let mut inner = m.clone();
            inner.push(name);
            modules.insert(inner);
        }
    }
    let mut out = Vec::new();
    for (file, m, code) in &files {
        let inline = inline_modules(code);
        for (pos, text) in paths(code) {
            let mut here = m.clone();
            let mut scopes: Vec<&(usize, usize, String)> = inline
                .iter()
                .filter(|(s, e, _)| *s <= pos && pos < *e)
                .collect();
            scopes.sort_by_key(|(s, _, _)| *s);
            here.extend(scopes.iter().map(|(_, _, n)| n.clone()));
            if let Some(to) = resolve(&here, &text, &modules) {
                out.push(Import {
                    file: file.clone(),
                    from: here,
                    to,
                    text,
                });
            }
        }
    }
    (modules, out)
}

/// Every breach of the layer table and every cycle between the parts of one module.
fn breaches(src: &Path) -> Vec<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let rows = match layers(&lib) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let mut found = Vec::new();
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            l.strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))
        })
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    for m in &declared {
        if !rows.contains_key(m) {
            found.push(format!(
                "module `{m}` has no row in the layer table of src/lib.rs"
            ));
        }
    }
    for m in rows.keys() {
        if !declared.contains(m) {
            found.push(format!(
                "the layer table names `{m}`, which src/lib.rs does not declare"
            ));
        }
    }
    let (modules, imports) = imports(src);
    let mut siblings: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for i in &imports {
        let (Some(a), Some(b)) = (i.from.first(), i.to.first()) else {
            continue;
        };
        if a != b {
            if let (Some(ra), Some(rb)) = (rows.get(a), rows.get(b)) {
                if rb <= ra {
                    found.push(format!(
                        "{}: `{}` imports `{}` ({}), which is not on a lower row",
                        i.file.display(),
                        i.from.join("::"),
                        i.to.join("::"),
                        i.text
                    ));
                }
            }
            continue;
        }
        // The deepest common parent, and the two children of it the import runs between.
        let common = i.from.iter().zip(&i.to).take_while(|(x, y)| x == y).count();
        if let (Some(x), Some(y)) = (i.from.get(common), i.to.get(common)) {
            let parent = i.from[..common].to_vec();
            if modules.contains(&i.from[..=common]) {
                siblings
                    .entry(parent)
                    .or_default()
                    .entry(x.clone())
                    .or_default()
                    .insert(y.clone());
            }
        }
    }
    for (parent, graph) in &siblings {
        for cycle in cycles(graph) {
            found.push(format!(
                "the parts of `{}` import each other in a cycle, among: {}",
                if parent.is_empty() {
                    "crate".to_string()
                } else {
                    parent.join("::")
                },
                cycle.join(", ")
            ));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The sets of nodes that reach each other (strongly connected, more than one node), sorted.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for m in graph.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if done.contains(n) {
            continue;
        }
        let fwd = reach(n);
        if !fwd.contains(n) {
            continue;
        }
        let set: Vec<String> = fwd.into_iter().filter(|m| reach(m).contains(n)).collect();
        done.extend(set.iter().cloned());
        out.push(set);
    }
    out
}

#[test]
fn every_import_points_down_and_no_module_parts_form_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // The reader sees the imports that are there: the image writer reads its result back.
    let (_, seen) = imports(&src);
    assert!(
        seen.iter()
            .any(|i| i.from == ["image", "disk"] && i.to == ["image", "verify"]),
        "{} imports read, none from image::disk to image::verify",
        seen.len()
    );
    let found = breaches(&src);
    assert!(
        found.is_empty(),
        "{} breaches of the layer order (src/lib.rs):\n{}",
        found.len(),
        found.join("\n")
    );
}

/// A crate written for the checker: `lib.rs` with a table, and modules in files.
fn fake_crate(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

const TABLE: &str = "//! | layer | modules | what |\n//! |---|---|---|\n//! | top | `top` | a |\n//! | low | `low` `side` | b |\npub mod low;\npub mod side;\npub mod top;\n";

#[test]
fn the_checker_finds_upward_imports_peer_imports_and_cycles_and_ignores_comments_and_strings() {
    let dir = fake_crate(&[
        ("lib.rs", TABLE),
        (
            "top.rs",
            "use crate::low::{a, b::{c, d}};\nfn f() { crate::side::g(); }\n",
        ),
        (
            "low/mod.rs",
            "pub mod a;\npub mod b;\n// crate::top::x\nconst S: &str = \"crate::top::y\";\nconst C: char = '{';\n",
        ),
        ("low/a.rs", "use super::b::Thing;\n"),
        (
            "low/b.rs",
            "fn f<'a>(x: &'a str) {}\nmod tests {\n    use super::super::a::X;\n    use crate::top::T;\n}\n",
        ),
        ("side.rs", "use crate::low::a;\n"),
    ]);
    let found = breaches(dir.path());
    let text = found.join("\n");
    assert_eq!(found.len(), 3, "{text}");
    assert!(
        text.contains("`low::b::tests` imports `top` (crate::top::T)"),
        "{text}"
    );
    assert!(
        text.contains("`side` imports `low::a` (crate::low::a)"),
        "{text}"
    );
    assert!(
        text.contains("the parts of `low` import each other in a cycle, among: a, b"),
        "{text}"
    );
}

#[test]
fn the_checker_wants_every_module_in_the_table() {
    let dir = fake_crate(&[
        ("lib.rs", &format!("{TABLE}pub mod extra;\n")),
        ("top.rs", ""),
        ("low/mod.rs", ""),
        ("side.rs", ""),
        ("extra.rs", ""),
    ]);
    let found = breaches(dir.path());
    assert_eq!(
        found,
        ["module `extra` has no row in the layer table of src/lib.rs"]
    );
}
