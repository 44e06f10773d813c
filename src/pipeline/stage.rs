//! Data stages: `stages/NN-name/stage.yml` plus `apply.sh` and `files/`, loaded and checked
//! when the pipeline is built, so a bad stage fails before anything runs.
//!
//! ```yaml
//! description: one line            # required
//! run: chroot                      # chroot (default) | host
//! packages: [openssh-server]       # installed before apply.sh, by the runner
//! when:                            # a stage applies when every given list holds the build's value
//!   profiles: [debian-bookworm]
//!   distros: [debian, raspbian]
//!   architectures: [armhf]
//!   infrastructures: [bakery, raw, warden]
//!   init: [systemd, upstart]
//!   spec: {dev_tools: true}         # spec key: value (or list of values) it must have
//! reads: [infrastructure, stemcell.version]   # spec values the script sees as SPEC_<KEY>
//! assets: [infrastructure/bakery]  # files or directories under assets/ the script reads
//! ```
//!
//! `assets:` is optional: without it the whole `assets/` directory is the stage's input (its
//! cache key changes with any asset); with it, only the listed paths are hashed **and only they
//! are present** under `$ASSETS`, so an undeclared read fails instead of caching stale results.
//! The script's environment is [`super::STAGE_ENV`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{key, PipelineError, StageSource};
use crate::context::BuildContext;
use crate::spec::{Infrastructure, Resolved};

/// Documentation of every `stage.yml` field: (name, YAML type, default, meaning).
pub const STAGE_FIELDS: &[(&str, &str, &str, &str)] = &[
    ("description", "string", "required", "one line saying what the stage does"),
    ("run", "chroot | host", "chroot", "where apply.sh runs: chrooted into the rootfs (emulated on a foreign host) or on the build host"),
    ("packages", "list of strings", "[]", "packages installed (with their dependencies) before apply.sh; a stage may have only packages"),
    ("when.profiles", "list of strings", "any", "OS profiles the stage applies to"),
    ("when.distros", "list of strings", "any", "distributions (debian, raspbian, ubuntu)"),
    ("when.architectures", "list of strings", "any", "architectures (armhf, arm64)"),
    ("when.infrastructures", "list of strings", "any", "infrastructures (bakery, raw, warden)"),
    ("when.init", "list of strings", "any", "init systems (systemd, upstart)"),
    ("when.spec", "map of spec key to value or list", "any", "spec values the stage applies to, e.g. `{dev_tools: true}`; keys as in `reads:`"),
    ("reads", "list of spec keys", "[]", "spec values apply.sh reads as SPEC_<KEY>; part of the cache key; `builder.commit` is pistemcell's own commit (`+` when its tree has changes, `unknown` outside a git checkout)"),
    ("assets", "list of paths", "all of assets/", "files or directories under assets/ apply.sh reads; only these are hashed and copied to $ASSETS"),
];

/// Where a stage's script runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunIn {
    /// Inside the rootfs (`chroot ROOT /bin/bash …`), emulated on a foreign host.
    #[default]
    Chroot,
    /// On the build host, with `ROOTFS` naming the rootfs.
    Host,
}

/// The `when:` filters of a stage; an absent list does not filter.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// OS profile names.
    pub profiles: Option<Vec<String>>,
    /// Profile distributions (`debian`, `raspbian`, `ubuntu`).
    pub distros: Option<Vec<String>>,
    /// Architectures (`armhf`, `arm64`).
    pub architectures: Option<Vec<String>>,
    /// Infrastructures (`bakery`, `raw`, `warden`).
    pub infrastructures: Option<Vec<String>>,
    /// Init systems (`systemd`, `upstart`).
    pub init: Option<Vec<String>>,
    /// Spec keys (`dev_tools`, `stemcell.version`) and the values, as text, they must have.
    #[serde(default, deserialize_with = "spec_conditions")]
    pub spec: Option<BTreeMap<String, Vec<String>>>,
}

/// Reads `when.spec`: each key's value is a scalar or a list of scalars, kept as text (`true`,
/// `1.0`, `bakery`) to compare with the spec's value as stages read it (`SPEC_<KEY>`).
fn spec_conditions<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, Vec<String>>>, D::Error> {
    use serde::de::Error;
    use serde_norway::Value;
    let scalar = |key: &str, v: &Value| match v {
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(s.clone()),
        _ => Err(D::Error::custom(format!(
            "when.spec.{key}: expected a value or a list of values (e.g. `dev_tools: true`)"
        ))),
    };
    let map = BTreeMap::<String, Value>::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (key, value) in &map {
        let values = match value {
            Value::Sequence(list) => list
                .iter()
                .map(|v| scalar(key, v))
                .collect::<Result<_, _>>()?,
            v => vec![scalar(key, v)?],
        };
        out.insert(key.clone(), values);
    }
    Ok(Some(out))
}

/// `stage.yml` as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StageFile {
    /// One line for humans.
    pub description: String,
    /// Where `apply.sh` runs.
    #[serde(default)]
    pub run: RunIn,
    /// Packages installed before `apply.sh`.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Which builds the stage applies to.
    #[serde(default)]
    pub when: When,
    /// Spec keys the script reads (`SPEC_<KEY>`).
    #[serde(default)]
    pub reads: Vec<String>,
    /// Paths under `assets/` the script reads; `None`: all of `assets/`.
    #[serde(default)]
    pub assets: Option<Vec<String>>,
}

/// A loaded, checked data stage.
#[derive(Debug, Clone)]
pub struct DataStage {
    /// `NN-name`.
    pub name: String,
    /// The stage directory.
    pub dir: PathBuf,
    /// The repository's `assets/` directory.
    pub assets_dir: PathBuf,
    /// The parsed `stage.yml`.
    pub file: StageFile,
    /// Whether `apply.sh` exists.
    pub has_script: bool,
}

/// Whether `name` is a valid stage directory name: `NN-name`, lower-case letters, digits, `-`.
pub fn valid_stage_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 3
        && b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && b[2] == b'-'
        && b[3..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !name.ends_with('-')
}

/// The values a `when:` list may hold, per list (for validation and messages).
pub fn when_choices() -> BTreeMap<&'static str, Vec<String>> {
    let profiles: Vec<_> = crate::profile::names()
        .into_iter()
        .filter_map(|n| crate::profile::load(n).ok())
        .collect();
    let mut distros: Vec<String> = profiles.iter().map(|p| p.distro.clone()).collect();
    let mut init: Vec<String> = profiles.iter().map(|p| p.init.clone()).collect();
    distros.sort();
    distros.dedup();
    init.sort();
    init.dedup();
    let infra = [
        Infrastructure::Bakery,
        Infrastructure::Raw,
        Infrastructure::Warden,
    ];
    BTreeMap::from([
        (
            "profiles",
            profiles.iter().map(|p| p.name.clone()).collect(),
        ),
        ("distros", distros),
        ("architectures", vec!["armhf".into(), "arm64".into()]),
        (
            "infrastructures",
            infra.iter().map(|i| i.name().to_string()).collect(),
        ),
        ("init", init),
    ])
}

impl When {
    /// (list name, its values, the build's value) for every given list.
    fn lists<'a>(&'a self, spec: &Resolved) -> Vec<(&'static str, &'a [String], String)> {
        let mut out = Vec::new();
        let mut add = |name, list: &'a Option<Vec<String>>, value: String| {
            if let Some(l) = list {
                out.push((name, l.as_slice(), value));
            }
        };
        add("profiles", &self.profiles, spec.profile.name.clone());
        add("distros", &self.distros, spec.profile.distro.clone());
        add(
            "architectures",
            &self.architectures,
            spec.arch.debian().to_string(),
        );
        add(
            "infrastructures",
            &self.infrastructures,
            spec.infrastructure.name().to_string(),
        );
        add("init", &self.init, spec.profile.init.clone());
        out
    }

    /// Why the stage does not apply to `spec` (`None` when it does).
    pub fn excludes(&self, spec: &Resolved) -> Option<String> {
        let lists = self
            .lists(spec)
            .into_iter()
            .map(|(n, l, v)| (n.to_string(), l, v));
        let conditions = self.spec.iter().flatten().map(|(key, list)| {
            let value = spec.lookup(key).unwrap_or_default();
            (format!("spec.{key}"), list.as_slice(), value)
        });
        lists
            .chain(conditions)
            .find(|(_, list, value)| !list.contains(value))
            .map(|(name, list, value)| {
                format!("when.{name} [{}] excludes {value}", list.join(", "))
            })
    }

    /// Checks `when.spec` against the spec's keys: each key exists, and a yes/no key is given
    /// `true` or `false`.
    fn check_spec(&self, spec: &Resolved) -> Result<(), String> {
        for (key, values) in self.spec.iter().flatten() {
            let Some(now) = spec.lookup(key) else {
                return Err(format!(
                    "`when.spec` names `{key}`, which is not a spec key (see README.md, \"Spec reference\"; nested keys are written `stemcell.version`)"
                ));
            };
            let yes_no = |v: &str| v == "true" || v == "false";
            if values.is_empty() {
                return Err(format!("`when.spec.{key}` lists no values"));
            }
            if let Some(v) = values.iter().find(|v| yes_no(&now) && !yes_no(v)) {
                return Err(format!(
                    "`when.spec.{key}` value `{v}` can never match: `{key}` is true or false"
                ));
            }
        }
        Ok(())
    }
}

impl DataStage {
    /// Loads and checks `dir` (a stage directory) against `spec`.
    pub fn load(
        dir: &Path,
        source: &StageSource,
        spec: &Resolved,
    ) -> Result<DataStage, PipelineError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bad = |reason: String| PipelineError::StageDir {
            path: dir.to_path_buf(),
            reason,
        };
        if !valid_stage_name(&name) {
            return Err(bad(
                "a stage directory is named NN-name: two digits, a dash, lower-case letters, digits and dashes (e.g. 20-users)".into(),
            ));
        }
        let yml = dir.join("stage.yml");
        let text = std::fs::read_to_string(&yml).map_err(|e| {
            bad(format!(
                "cannot read stage.yml ({e}); every stage needs one with at least `description:`"
            ))
        })?;
        let file: StageFile =
            serde_norway::from_str(&text).map_err(|source| PipelineError::StageYml {
                path: yml.clone(),
                source,
            })?;
        let has_script = dir.join("apply.sh").is_file();
        let stage = DataStage {
            name,
            dir: dir.to_path_buf(),
            assets_dir: source.assets_dir.clone(),
            file,
            has_script,
        };
        stage.check(spec)?;
        Ok(stage)
    }

    fn check(&self, spec: &Resolved) -> Result<(), PipelineError> {
        let invalid = |reason: String| PipelineError::Invalid {
            stage: self.name.clone(),
            path: self.dir.join("stage.yml"),
            reason,
        };
        let f = &self.file;
        if f.description.trim().is_empty() || f.description.contains('\n') {
            return Err(invalid("`description:` must be one non-empty line".into()));
        }
        if !self.has_script && f.packages.is_empty() {
            return Err(invalid(
                "the stage has no apply.sh and no `packages:`: add apply.sh next to stage.yml"
                    .into(),
            ));
        }
        if let Some(p) = f
            .packages
            .iter()
            .find(|p| !crate::spec::valid_package_name(p))
        {
            return Err(invalid(format!(
                "`packages:` entry `{p}` is not a valid Debian package name"
            )));
        }
        if let Some(r) = f.reads.iter().find(|r| spec.lookup(r).is_none()) {
            return Err(invalid(format!(
                "`reads:` names `{r}`, which is not a spec key (see README.md, \"Spec reference\"; nested keys are written `stemcell.version`)"
            )));
        }
        let choices = when_choices();
        for (list, values, _) in f.when.lists(spec) {
            let allowed = &choices[list];
            if let Some(v) = values.iter().find(|v| !allowed.contains(v)) {
                return Err(invalid(format!(
                    "`when.{list}` value `{v}` is unknown; choose from: {}",
                    allowed.join(", ")
                )));
            }
        }
        f.when.check_spec(spec).map_err(invalid)?;
        for a in f.assets.iter().flatten() {
            let ok = !a.is_empty()
                && !a.starts_with('/')
                && !a.split('/').any(|c| c == ".." || c == ".")
                && std::fs::symlink_metadata(self.assets_dir.join(a)).is_ok();
            if !ok {
                return Err(invalid(format!(
                    "`assets:` entry `{a}` is not a file or directory under {}",
                    self.assets_dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Why the stage does not apply to this build (`None` when it does).
    pub fn skip_reason(&self, spec: &Resolved) -> Option<String> {
        self.file.when.excludes(spec)
    }

    /// The asset paths (relative to `assets/`) the stage receives: declared, or all.
    pub fn asset_paths(&self) -> Vec<String> {
        match &self.file.assets {
            Some(list) => list.clone(),
            None => vec![String::new()],
        }
    }

    /// The stage's named inputs: every file of its directory, its assets, the spec values it
    /// reads, and the build values every script sees.
    pub fn inputs(&self, ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        let mut inputs = key::Inputs::new();
        key::add_tree(&self.dir, "", &mut inputs)?;
        for a in self.asset_paths() {
            let prefix = if a.is_empty() {
                "assets".to_string()
            } else {
                let a = a.trim_end_matches('/');
                inputs.insert(
                    format!("assets/{a}"),
                    describe_root(&self.assets_dir.join(a))?,
                );
                format!("assets/{a}")
            };
            key::add_tree(
                &self.assets_dir.join(a.trim_end_matches('/')),
                &prefix,
                &mut inputs,
            )?;
        }
        for r in &self.file.reads {
            inputs.insert(format!("spec.{r}"), ctx.spec.lookup(r).unwrap_or_default());
        }
        for (name, value) in super::env::build_values(&ctx.spec) {
            inputs.insert(format!("env.{name}"), value);
        }
        Ok(inputs.into_iter().collect())
    }
}

/// The input value of an asset named directly (a file's digest; a directory's mode).
fn describe_root(path: &Path) -> Result<String, PipelineError> {
    let meta = std::fs::symlink_metadata(path).map_err(|source| PipelineError::Io {
        what: "inspect",
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_file() {
        Ok(key::file_input(path)?)
    } else {
        Ok("dir".into())
    }
}

/// Loads every stage directory under `source.stages_dir`, sorted by name. Files (a README)
/// and hidden entries are ignored; a directory with a bad name is an error.
pub fn load_all(source: &StageSource, spec: &Resolved) -> Result<Vec<DataStage>, PipelineError> {
    let dir = &source.stages_dir;
    let entries = std::fs::read_dir(dir).map_err(|e| PipelineError::StageDir {
        path: dir.clone(),
        reason: format!(
            "cannot list the stages directory ({e}); pass --stages-dir or set PISTEMCELL_STAGES_DIR"
        ),
    })?;
    let mut dirs = Vec::new();
    for e in entries {
        let e = e.map_err(|source| PipelineError::Io {
            what: "list",
            path: dir.clone(),
            source,
        })?;
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if !hidden && e.path().is_dir() {
            dirs.push(e.path());
        }
    }
    dirs.sort();
    dirs.iter()
        .map(|d| DataStage::load(d, source, spec))
        .collect()
}
