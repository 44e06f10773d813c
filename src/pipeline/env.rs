//! The environment a stage's `apply.sh` runs with.
//!
//! | variable | value |
//! |---|---|
//! | `ROOTFS` | the rootfs: `/` in chroot stages, its host path in host stages |
//! | `STAGE_DIR` | a copy of the stage's directory (`files/` is `$STAGE_DIR/files`); in chroot stages under `/tmp/pistemcell-stage/`, removed afterwards |
//! | `ASSETS` | a copy of the repository's `assets/` (only the declared `assets:` paths when the stage lists them); likewise inside the rootfs for chroot stages |
//! | `STAGE_NAME` | the stage's name, `NN-name` |
//! | `PROFILE`, `DISTRO`, `SUITE`, `ARCH`, `INIT` | the OS profile's name, distribution, archive suite, Debian architecture and init system |
//! | `SPEC_<KEY>` | each spec value listed in `reads:` (`stemcell.version` → `SPEC_STEMCELL_VERSION`) |
//! | `INFRASTRUCTURE` | the infrastructure, only for stages that list `infrastructure` in `reads:` |
//! | `SOURCE_DATE_EPOCH` | the build's epoch: the caller's `SOURCE_DATE_EPOCH`, else the date of the archive the rootfs came from |
//! | `PATH`, `LANG`, `LC_ALL`, `HOME`, `DEBIAN_FRONTEND`, … | fixed, as for maintainer scripts (`rootfs::dpkg::script_env`) |
//!
//! Nothing else of the caller's environment reaches the script. The script runs as
//! `bash -euo pipefail apply.sh`: in chroot stages `chroot ROOT /bin/bash -euo pipefail
//! /tmp/pistemcell-stage/NAME/apply.sh` (working directory `/`), in host stages with the
//! working directory `$STAGE_DIR`.

use crate::spec::Resolved;

/// Every variable a stage script receives: (name, meaning), for generated documentation.
pub const STAGE_ENV: &[(&str, &str)] = &[
    ("ROOTFS", "the rootfs: `/` in chroot stages, its host path in host stages"),
    ("STAGE_DIR", "a copy of the stage's directory (`files/` is `$STAGE_DIR/files`); in chroot stages under `/tmp/pistemcell-stage/`, removed afterwards"),
    ("ASSETS", "a copy of the repository's `assets/` (only the paths listed in `assets:` when the stage lists them); inside the rootfs for chroot stages"),
    ("STAGE_NAME", "the stage's name (`NN-name`)"),
    ("PROFILE", "the OS profile (`debian-bookworm`)"),
    ("DISTRO", "the profile's distribution (`debian`, `raspbian`, `ubuntu`)"),
    ("SUITE", "the archive suite (`bookworm`)"),
    ("ARCH", "the Debian architecture (`armhf`, `arm64`)"),
    ("INIT", "the profile's init system (`systemd`, `upstart`)"),
    ("SPEC_<KEY>", "each spec value listed in `reads:`, dots as `_`, upper-case (`stemcell.version` → `SPEC_STEMCELL_VERSION`)"),
    ("INFRASTRUCTURE", "the infrastructure (`bakery`, `raw`, `warden`), only for stages that list `infrastructure` in `reads:` (so OS stages are cached once for every infrastructure)"),
    ("SOURCE_DATE_EPOCH", "the build's epoch: the caller's `SOURCE_DATE_EPOCH`, else the date of the archive the rootfs was bootstrapped from (unset before the bootstrap has recorded it)"),
    ("PATH, LANG, LC_ALL, HOME, DEBIAN_FRONTEND, DEBCONF_NONINTERACTIVE_SEEN, DEBIAN_PRIORITY", "fixed, as for maintainer scripts"),
];

/// `SOURCE_DATE_EPOCH` for a script working on the rootfs at `root` (none when unknown).
pub fn epoch_var(root: &std::path::Path) -> Option<(String, String)> {
    match crate::epoch::epoch_for(root) {
        0 => None,
        e => Some(("SOURCE_DATE_EPOCH".into(), e.to_string())),
    }
}

/// The build values every script sees (part of every data stage's cache key).
pub fn build_values(spec: &Resolved) -> Vec<(&'static str, String)> {
    vec![
        ("PROFILE", spec.profile.name.clone()),
        ("DISTRO", spec.profile.distro.clone()),
        ("SUITE", spec.suite.clone()),
        ("ARCH", spec.arch.debian().to_string()),
        ("INIT", spec.profile.init.clone()),
    ]
}

/// The variable name of a spec key: `stemcell.version` → `SPEC_STEMCELL_VERSION`.
pub fn spec_var(key: &str) -> String {
    format!(
        "SPEC_{}",
        key.chars()
            .map(|c| if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            })
            .collect::<String>()
    )
}

/// The complete environment of a stage script.
pub fn script_env(
    spec: &Resolved,
    stage: &str,
    reads: &[String],
    rootfs: &str,
    stage_dir: &str,
    assets: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = crate::rootfs::dpkg::script_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in [
        ("ROOTFS", rootfs),
        ("STAGE_DIR", stage_dir),
        ("ASSETS", assets),
        ("STAGE_NAME", stage),
    ] {
        env.push((k.into(), v.into()));
    }
    for (k, v) in build_values(spec) {
        env.push((k.into(), v));
    }
    for r in reads {
        let value = spec.lookup(r).unwrap_or_default();
        if r == "infrastructure" {
            env.push(("INFRASTRUCTURE".into(), value.clone()));
        }
        env.push((spec_var(r), value));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_keys_become_upper_case_variables() {
        assert_eq!(spec_var("stemcell.version"), "SPEC_STEMCELL_VERSION");
        assert_eq!(spec_var("infrastructure"), "SPEC_INFRASTRUCTURE");
    }

    #[test]
    fn the_table_documents_every_variable_a_script_gets() {
        let spec = crate::spec::resolve("t".into(), Default::default()).unwrap();
        let env = script_env(
            &spec,
            "20-x",
            &["infrastructure".into(), "stemcell.version".into()],
            "/",
            "/s",
            "/a",
        );
        let documented: Vec<&str> = STAGE_ENV.iter().flat_map(|(n, _)| n.split(", ")).collect();
        for (name, _) in &env {
            let ok = documented.contains(&name.as_str())
                || (name.starts_with("SPEC_") && documented.contains(&"SPEC_<KEY>"));
            assert!(ok, "{name} is not in STAGE_ENV");
        }
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("SPEC_STEMCELL_VERSION"), Some("0.0.1"));
        assert_eq!(get("INFRASTRUCTURE"), Some("bakery"));
        assert_eq!(get("ARCH"), Some("armhf"));
        let plain = script_env(&spec, "20-x", &[], "/", "/s", "/a");
        assert!(plain.iter().all(|(n, _)| n != "INFRASTRUCTURE"));
    }
}
