//! `((vars))`: every one the pipeline and task files use is documented in ci/README.md, and
//! the other way round.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{read, report, task_files, PIPELINE};

/// Every `((name))` in `text`.
pub fn vars_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("((") {
        rest = &rest[i + 2..];
        if let Some(j) = rest.find("))") {
            out.insert(rest[..j].trim().to_string());
            rest = &rest[j + 2..];
        }
    }
    out
}

pub fn every_var_is_documented_in_ci_readme() {
    let readme = read("ci/README.md");
    let documented = vars_in(&readme);
    let mut used = BTreeMap::new();
    for f in std::iter::once(PIPELINE.to_string()).chain(task_files()) {
        for v in vars_in(&read(&f)) {
            used.entry(v).or_insert(f.clone());
        }
    }
    assert!(
        !used.is_empty(),
        "{PIPELINE} uses no ((vars)): where do the bucket and its keys come from?"
    );
    let mut errors: Vec<String> = used
        .iter()
        .filter(|(v, _)| !documented.contains(*v))
        .map(|(v, f)| format!("(({v})) is used in {f} but not listed in ci/README.md"))
        .collect();
    errors.extend(
        documented
            .iter()
            .filter(|v| !used.contains_key(*v))
            .map(|v| format!("ci/README.md lists (({v})), which nothing uses")),
    );
    for v in used.keys() {
        if !v
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            errors.push(format!("(({v})): use lowercase letters, digits and dashes"));
        }
    }
    report("((vars))", &errors);
}
