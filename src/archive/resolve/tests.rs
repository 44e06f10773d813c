//! Tests for `resolve`.

use super::*;
use crate::archive::packages::parse_relations;

/// A package `name` at `version` with Depends `deps` and Provides `provides`.
fn pkg(name: &str, version: &str, deps: &str, provides: &str) -> Package {
    Package {
        name: name.into(),
        version: version.into(),
        architecture: "arm64".into(),
        priority: Some("optional".into()),
        essential: false,
        depends: parse_relations(deps).unwrap(),
        pre_depends: Vec::new(),
        provides: parse_relations(provides)
            .unwrap()
            .into_iter()
            .flatten()
            .collect(),
        filename: format!("pool/{name}_{version}.deb"),
        size: 1,
        sha256: "0".repeat(64),
        multi_arch: None,
        source: None,
    }
}

fn names(set: &[Package]) -> Vec<&str> {
    set.iter().map(|p| p.name.as_str()).collect()
}

fn list(names: &[&str]) -> Variant {
    Variant::Packages(names.iter().map(|s| s.to_string()).collect())
}

fn problems(err: ResolveError) -> Vec<String> {
    let ResolveError::Unsatisfiable { problems } = err;
    problems
}

#[test]
fn universe_keeps_newest_of_arch_or_all() {
    let mut other = pkg("a", "9", "", "");
    other.architecture = "armhf".into();
    let mut indep = pkg("b", "2", "", "");
    indep.architecture = "all".into();
    let u = Universe::new(
        vec![
            pkg("a", "1.0", "", ""),
            pkg("a", "1.0~rc1", "", ""),
            other,
            indep,
        ],
        "arm64",
    );
    assert_eq!(u.get("a").unwrap().version, "1.0");
    assert_eq!(u.get("b").unwrap().version, "2");
    assert_eq!(u.len(), 2);
}

#[test]
fn first_satisfiable_alternative_is_chosen() {
    let u = Universe::new(
        vec![
            pkg("top", "1", "x | y", ""),
            pkg("x", "1", "", ""),
            pkg("y", "1", "", ""),
        ],
        "arm64",
    );
    assert_eq!(
        names(&resolve(&u, &list(&["top"]), &[], &[]).unwrap()),
        ["top", "x"]
    );
}

#[test]
fn already_selected_alternative_is_preferred() {
    let u = Universe::new(
        vec![
            pkg("top", "1", "x | y", ""),
            pkg("x", "1", "", ""),
            pkg("y", "1", "", ""),
        ],
        "arm64",
    );
    let set = resolve(&u, &list(&["top"]), &["y".to_string()], &[]).unwrap();
    assert_eq!(names(&set), ["top", "y"]);
    // Also when the other alternative is pulled in by a plain dependency elsewhere.
    let u = Universe::new(
        vec![
            pkg("a", "1", "x | y", ""),
            pkg("b", "1", "y", ""),
            pkg("x", "1", "", ""),
            pkg("y", "1", "", ""),
        ],
        "arm64",
    );
    assert_eq!(
        names(&resolve(&u, &list(&["a", "b"]), &[], &[]).unwrap()),
        ["a", "b", "y"]
    );
}

#[test]
fn versioned_constraint_skips_too_old_alternative() {
    let u = Universe::new(
        vec![
            pkg("top", "1", "x (>= 2) | y (>= 1)", ""),
            pkg("x", "1.5", "", ""),
            pkg("y", "1", "", ""),
        ],
        "arm64",
    );
    assert_eq!(
        names(&resolve(&u, &list(&["top"]), &[], &[]).unwrap()),
        ["top", "y"]
    );
}

#[test]
fn virtual_packages_resolve_through_provides() {
    let u = Universe::new(
        vec![
            pkg("top", "1", "mail-transport-agent, awk (>= 2)", ""),
            pkg("postfix", "3", "", "mail-transport-agent"),
            pkg("exim4", "4", "", "mail-transport-agent"),
            pkg("mawk", "1.3", "", "awk"),
            pkg("gawk", "5", "", "awk (= 5)"),
        ],
        "arm64",
    );
    // First provider by name; versioned dependency only matches the versioned Provides.
    assert_eq!(
        names(&resolve(&u, &list(&["top"]), &[], &[]).unwrap()),
        ["exim4", "gawk", "top"]
    );
    // A provider already selected is preferred.
    let set = resolve(&u, &list(&["top"]), &["postfix".to_string()], &[]).unwrap();
    assert_eq!(names(&set), ["gawk", "postfix", "top"]);
}

#[test]
fn unsatisfiable_dependencies_are_all_reported_by_name() {
    let u = Universe::new(
        vec![
            pkg("foo", "1", "bar (>= 2), baz", ""),
            pkg("bar", "1.0", "", ""),
            pkg("qux", "1", "old (>= 3) | gone", ""),
            pkg("old", "2", "", ""),
        ],
        "arm64",
    )
    .with_label("bookworm main");
    let err = resolve(&u, &list(&["foo", "qux", "nosuch"]), &[], &[]).unwrap_err();
    let msg = err.to_string();
    let p = problems(err);
    assert_eq!(p.len(), 4, "{p:?}");
    assert!(
        p.contains(&"`foo` depends on `bar (>= 2)` but bookworm main has bar 1.0".to_string()),
        "{p:?}"
    );
    assert!(
        p.contains(
            &"`foo` depends on `baz`, which no package in bookworm main provides".to_string()
        ),
        "{p:?}"
    );
    assert!(
        p.iter().any(|m| m.contains("`nosuch` was requested")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("`qux`") && m.contains("old 2") && m.contains("gone")),
        "{p:?}"
    );
    assert!(msg.contains("  - `foo` depends on `baz`"), "{msg}");
}

#[test]
fn required_variant_adds_essential_and_required_and_minbase_adds_apt() {
    let mut base = pkg("base-files", "12", "", "");
    base.priority = Some("required".into());
    let mut dpkg = pkg("dpkg", "1.21", "tar", "");
    dpkg.essential = true;
    let mut ifup = pkg("ifupdown", "0.8", "", "");
    ifup.priority = Some("important".into());
    let all = vec![
        base,
        dpkg,
        pkg("tar", "1.34", "", ""),
        pkg("apt", "2.6", "gpgv", ""),
        pkg("gpgv", "2.2", "", ""),
        ifup,
    ];
    let u = Universe::new(all, "arm64");
    assert_eq!(
        names(&resolve(&u, &Variant::Required, &[], &[]).unwrap()),
        ["base-files", "dpkg", "tar"]
    );
    assert_eq!(
        names(&resolve(&u, &Variant::Minbase, &[], &[]).unwrap()),
        ["apt", "base-files", "dpkg", "gpgv", "tar"]
    );
    assert_eq!(
        names(&resolve(&u, &Variant::Important, &[], &[]).unwrap()),
        ["apt", "base-files", "dpkg", "gpgv", "ifupdown", "tar"]
    );
}

#[test]
fn excluded_packages_are_never_selected() {
    let u = Universe::new(
        vec![
            pkg("top", "1", "x | y, z", ""),
            pkg("x", "1", "", ""),
            pkg("y", "1", "", ""),
            pkg("z", "1", "", ""),
        ],
        "arm64",
    );
    let ex = ["x".to_string(), "z".to_string()];
    assert_eq!(
        names(&resolve(&u, &list(&["top"]), &[], &ex).unwrap()),
        ["top", "y"]
    );
}

#[test]
fn pre_depends_are_followed_and_result_is_sorted() {
    let mut top = pkg("top", "1", "", "");
    top.pre_depends = parse_relations("zlib").unwrap();
    let u = Universe::new(
        vec![top, pkg("zlib", "1", "aaa", ""), pkg("aaa", "1", "", "")],
        "arm64",
    );
    assert_eq!(
        names(&resolve(&u, &list(&["top"]), &[], &[]).unwrap()),
        ["aaa", "top", "zlib"]
    );
}
