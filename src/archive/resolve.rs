//! Choosing the package set of a root filesystem, like debootstrap: seed packages from the
//! variant, then the transitive closure over Depends and Pre-Depends.
//!
//! How debootstrap's own resolver differs (read from debootstrap 1.0.128's `functions` and
//! `scripts/debian-common`; the integration test compares our minbase set to its output):
//! - `pkgdetails GETDEPS` keeps only the FIRST alternative of each `a | b` group and drops
//!   version constraints and arch qualifiers; `PKGS REAL` then silently drops names that are
//!   not real packages, so virtual dependencies are never resolved through Provides, and
//!   versions are never checked.
//! - We honour versions (an alternative too old for its constraint is skipped for the next
//!   one; versioned dependencies only match versioned Provides), resolve virtual names to
//!   a provider, and report every unsatisfiable dependency at once instead of ignoring it.
//! - We settle dependencies with a single candidate first and only then choose among
//!   alternatives, so an alternative that something else pulls in anyway is used rather
//!   than adding the first one too.
//! - debootstrap's `--exclude` only edits its seed lists, so a dependency can bring an
//!   excluded package back. Here an excluded package is never selected, and a dependency
//!   only excluded packages could satisfy counts as satisfied (the user removed it on
//!   purpose). This is also how debootstrap's internal `EXCLUDE_DEPENDENCY` behaves.
//! - Suite quirk the caller must reproduce: for bookworm debootstrap adds `usr-is-merged`
//!   to the required seeds and, for bookworm and later, excludes `usrmerge` as a dependency
//!   (it merges /usr itself). With `extra = [usr-is-merged]`, `exclude = [usrmerge]` our
//!   minbase and default (`Important`) sets for bookworm amd64 were identical to
//!   `debootstrap --print-debs` (88 and 156 packages); without them `init-system-helpers`'
//!   `usrmerge | usr-is-merged` pulls in usrmerge and perl.
//! - Seeds: debootstrap's required set is `Priority: required` only; ours adds every
//!   `Essential: yes` package (in Debian these are all required anyway). `Minbase` adds
//!   `apt` (`--variant=minbase`); `Important` adds every `Priority: important` package
//!   (debootstrap's default variant).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::packages::{Alternatives, Dep, Package};
use super::version;

/// Errors resolving a package set.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Some requested packages or dependencies cannot be satisfied by the archive.
    #[error(
        "cannot work out the package set:\n{}\ncheck the package names in the spec, the suite, \
         the components and the mirror (`--mirror`), or exclude the package that needs them",
        bullets(.problems)
    )]
    Unsatisfiable {
        /// One message per problem, each naming the packages involved.
        problems: Vec<String>,
    },
}

/// Formats problems as an indented bullet list.
fn bullets(problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The packages available for one architecture, newest version of each name, with Provides indexed.
#[derive(Debug, Clone)]
pub struct Universe {
    arch: String,
    label: String,
    packages: BTreeMap<String, Package>,
    /// Virtual name → (provider name, provided version) sorted by provider name.
    providers: BTreeMap<String, Vec<(String, Option<String>)>>,
}

impl Universe {
    /// Keeps, for each name, the highest version whose Architecture is `arch` or `all`
    /// (on a tie the first seen), and indexes their Provides.
    pub fn new(packages: Vec<Package>, arch: &str) -> Universe {
        let mut best: BTreeMap<String, Package> = BTreeMap::new();
        for pkg in packages {
            if pkg.architecture != arch && pkg.architecture != "all" {
                continue;
            }
            match best.get(&pkg.name) {
                Some(old) if version::compare(&pkg.version, &old.version).is_le() => {}
                _ => {
                    best.insert(pkg.name.clone(), pkg);
                }
            }
        }
        let mut providers: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
        for pkg in best.values() {
            for p in &pkg.provides {
                let version = p.constraint.as_ref().map(|(_, v)| v.clone());
                providers
                    .entry(p.name.clone())
                    .or_default()
                    .push((pkg.name.clone(), version));
            }
        }
        for list in providers.values_mut() {
            list.sort();
            list.dedup();
        }
        Universe {
            arch: arch.to_string(),
            label: "the archive".to_string(),
            packages: best,
            providers,
        }
    }

    /// Sets how the archive is named in problem messages (e.g. `bookworm main`).
    pub fn with_label(mut self, label: &str) -> Universe {
        self.label = label.to_string();
        self
    }

    /// The architecture this universe was built for.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The package called `name`, if the archive has it.
    pub fn get(&self, name: &str) -> Option<&Package> {
        self.packages.get(name)
    }

    /// All packages, sorted by name.
    pub fn packages(&self) -> impl Iterator<Item = &Package> {
        self.packages.values()
    }

    /// How many package names the universe holds.
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    /// Whether the universe holds no packages.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// The packages that provide `name` (sorted by name), each with the version it provides.
    pub fn providers(&self, name: &str) -> &[(String, Option<String>)] {
        self.providers.get(name).map_or(&[], Vec::as_slice)
    }
}

/// Which packages seed the root filesystem.
#[derive(Debug, Clone)]
pub enum Variant {
    /// Every `Priority: required` and every `Essential: yes` package.
    Required,
    /// Required plus `apt` (debootstrap `--variant=minbase`).
    Minbase,
    /// Minbase plus every `Priority: important` package (debootstrap's default).
    Important,
    /// Exactly the listed packages.
    Packages(Vec<String>),
}

/// Resolves the variant's seeds plus `extra`, minus `exclude`, to a package set sorted by name.
pub fn resolve(
    universe: &Universe,
    variant: &Variant,
    extra: &[String],
    exclude: &[String],
) -> Result<Vec<Package>, ResolveError> {
    let priority = |p: &Package, want: &str| {
        p.priority
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case(want))
    };
    let mut seeds: BTreeSet<String> = BTreeSet::new();
    match variant {
        Variant::Required | Variant::Minbase | Variant::Important => {
            for p in universe.packages() {
                let important = matches!(variant, Variant::Important) && priority(p, "important");
                if p.essential || priority(p, "required") || important {
                    seeds.insert(p.name.clone());
                }
            }
            if !matches!(variant, Variant::Required) {
                seeds.insert("apt".to_string());
            }
        }
        Variant::Packages(list) => seeds.extend(list.iter().cloned()),
    }
    seeds.extend(extra.iter().cloned());

    let mut state = State {
        universe,
        exclude: exclude.iter().map(String::as_str).collect(),
        selected: BTreeMap::new(),
        pending: VecDeque::new(),
        problems: Vec::new(),
    };
    for name in &seeds {
        state.request(name);
    }
    state.run();
    if !state.problems.is_empty() {
        let mut problems = state.problems;
        problems.sort();
        problems.dedup();
        return Err(ResolveError::Unsatisfiable { problems });
    }
    Ok(state.selected.into_values().cloned().collect())
}

/// What one dependency group needs.
enum Need<'u> {
    /// A selected package satisfies it already.
    Satisfied,
    /// Only excluded packages could satisfy it: treated as satisfied.
    Excluded,
    /// These packages (in preference order) would satisfy it.
    Candidates(Vec<&'u Package>),
    /// Nothing satisfies it; the message explains why.
    Unsatisfiable(String),
}

/// The resolver's working state.
struct State<'u> {
    universe: &'u Universe,
    exclude: BTreeSet<&'u str>,
    selected: BTreeMap<&'u str, &'u Package>,
    /// Dependency groups not yet looked at, with the package that has them.
    pending: VecDeque<(&'u Package, &'u Alternatives)>,
    problems: Vec<String>,
}

impl<'u> State<'u> {
    /// Selects a requested (seed) package, real or virtual with a provider.
    fn request(&mut self, name: &str) {
        if self.exclude.contains(name) {
            return;
        }
        if let Some(pkg) = self.universe.get(name) {
            self.select(pkg);
            return;
        }
        let providers = self.universe.providers(name);
        let chosen = providers
            .iter()
            .find(|(p, _)| self.selected.contains_key(p.as_str()))
            .or_else(|| {
                providers
                    .iter()
                    .find(|(p, _)| !self.exclude.contains(p.as_str()))
            })
            .and_then(|(p, _)| self.universe.get(p));
        match chosen {
            Some(pkg) => self.select(pkg),
            None if !providers.is_empty() => {}
            None => self.problems.push(format!(
                "`{name}` was requested but is not in {}; check the name, the suite and the components",
                self.universe.label
            )),
        }
    }

    /// Adds a package to the set and queues its Pre-Depends and Depends.
    fn select(&mut self, pkg: &'u Package) {
        if self.selected.insert(pkg.name.as_str(), pkg).is_none() {
            for group in pkg.pre_depends.iter().chain(&pkg.depends) {
                self.pending.push_back((pkg, group));
            }
        }
    }

    /// Settles single-candidate dependencies first, then chooses among alternatives, until done.
    fn run(&mut self) {
        let mut deferred: VecDeque<(&'u Package, &'u Alternatives)> = VecDeque::new();
        loop {
            while let Some((owner, group)) = self.pending.pop_front() {
                match self.need(owner, group) {
                    Need::Satisfied | Need::Excluded => {}
                    Need::Unsatisfiable(msg) => self.problems.push(msg),
                    Need::Candidates(c) if c.len() == 1 => self.select(c[0]),
                    Need::Candidates(_) => deferred.push_back((owner, group)),
                }
            }
            let mut chose = false;
            while let Some((owner, group)) = deferred.pop_front() {
                if let Need::Candidates(c) = self.need(owner, group) {
                    self.select(c[0]);
                    chose = true;
                    break;
                }
            }
            if !chose {
                break;
            }
        }
    }

    /// Works out what `owner`'s dependency `group` needs given the current selection.
    fn need(&self, owner: &Package, group: &'u Alternatives) -> Need<'u> {
        let mut candidates: Vec<&'u Package> = Vec::new();
        let mut any_excluded = false;
        for dep in group {
            for pkg in self.satisfiers(dep) {
                if self.selected.contains_key(pkg.name.as_str()) {
                    return Need::Satisfied;
                }
                if self.exclude.contains(pkg.name.as_str()) {
                    any_excluded = true;
                } else if !candidates.iter().any(|c| c.name == pkg.name) {
                    candidates.push(pkg);
                }
            }
        }
        if !candidates.is_empty() {
            Need::Candidates(candidates)
        } else if any_excluded {
            Need::Excluded
        } else {
            Need::Unsatisfiable(self.explain(owner, group))
        }
    }

    /// Packages satisfying `dep`: the real package first, then providers by name.
    fn satisfiers(&self, dep: &Dep) -> Vec<&'u Package> {
        let universe: &'u Universe = self.universe;
        let mut out: Vec<&'u Package> = Vec::new();
        if let Some(real) = universe.get(&dep.name) {
            if dep.satisfied_by(&real.version) {
                out.push(real);
            }
        }
        for (name, provided) in universe.providers(&dep.name) {
            let ok = match (&dep.constraint, provided) {
                (None, _) => true,
                (Some(_), Some(v)) => dep.satisfied_by(v),
                (Some(_), None) => false,
            };
            if let Some(pkg) = universe.get(name).filter(|_| ok) {
                if !out.iter().any(|p| p.name == pkg.name) {
                    out.push(pkg);
                }
            }
        }
        out
    }

    /// Explains why no alternative of `group` can be satisfied.
    fn explain(&self, owner: &Package, group: &Alternatives) -> String {
        let label = &self.universe.label;
        let why = |dep: &Dep| -> String {
            let providers = self.universe.providers(&dep.name);
            match self.universe.get(&dep.name) {
                Some(real) => format!("{label} has {} {}", real.name, real.version),
                None if providers.is_empty() => {
                    format!("no package in {label} provides {}", dep.name)
                }
                None => {
                    let list: Vec<String> = providers
                        .iter()
                        .map(|(p, v)| {
                            v.as_ref()
                                .map_or_else(|| p.clone(), |v| format!("{p} (= {v})"))
                        })
                        .collect();
                    format!(
                        "{label} only has providers {} that do not satisfy the version",
                        list.join(", ")
                    )
                }
            }
        };
        let text = group
            .iter()
            .map(Dep::to_string)
            .collect::<Vec<_>>()
            .join(" | ");
        match group.as_slice() {
            [dep]
                if self.universe.get(&dep.name).is_none()
                    && self.universe.providers(&dep.name).is_empty() =>
            {
                format!(
                    "`{}` depends on `{text}`, which no package in {label} provides",
                    owner.name
                )
            }
            [dep] => format!("`{}` depends on `{text}` but {}", owner.name, why(dep)),
            _ => {
                let reasons: Vec<String> = group.iter().map(why).collect();
                format!(
                    "`{}` depends on `{text}`, which nothing in {label} satisfies ({})",
                    owner.name,
                    reasons.join("; ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests;
