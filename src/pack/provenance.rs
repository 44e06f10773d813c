//! `provenance.json`, the build record in every stemcell: pistemcell's version, the spec as
//! given and as resolved, the archive state the rootfs came from (suite, the signed Release's
//! sha256 and `Date`, the keys allowed to sign it, extra archives), the sha256 of every .deb
//! installed, monit's and the agent's inputs, every stage's cache key and `SOURCE_DATE_EPOCH`.
//! The archive state, the .debs and the components are read from the records the stages leave
//! in the rootfs (`record::ARCHIVE_RECORD`, `record::DEBS`), so a build served
//! entirely from cache records the same as the one that ran.

use std::path::Path;

use serde_json::{json, Value};

use crate::spec::Resolved;

/// The member's name in a stemcell.
pub const NAME: &str = "provenance.json";

fn fields(text: &str) -> serde_json::Map<String, Value> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase().replace('-', "_"), json!(v.trim())))
        .collect()
}

/// The record of the build of `spec` whose rootfs is `rootfs`; `stages` are (name, cache key).
pub fn document(spec: &Resolved, rootfs: &Path, stages: &[(String, String)], epoch: u64) -> Value {
    let archive = std::fs::read_to_string(rootfs.join(crate::record::ARCHIVE_RECORD))
        .map(|t| fields(&t))
        .unwrap_or_default();
    let debs: Vec<Value> = std::fs::read_to_string(rootfs.join(crate::record::DEBS))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [n, v, a, sha] => {
                    Some(json!({"name": n, "version": v, "architecture": a, "sha256": sha}))
                }
                _ => None,
            }
        })
        .collect();
    let components: Vec<Value> = crate::record::read_all(rootfs)
        .into_iter()
        .map(|c| {
            json!({
                "name": c.name, "version": c.version, "path": c.path, "kind": c.kind,
                "origin": c.origin, "input_sha256": c.input_sha256, "patches": c.patches,
            })
        })
        .collect();
    let extra: Vec<Value> = spec
        .extra_archives
        .iter()
        .map(|a| {
            json!({"name": a.name, "mirror": a.mirror, "suite": a.suite,
                   "components": a.components, "signing_keys": a.keyring.fingerprints})
        })
        .collect();
    json!({
        "pistemcell": env!("CARGO_PKG_VERSION"),
        "source_date_epoch": epoch,
        "spec": serde_json::to_value(&spec.raw).unwrap_or(Value::Null),
        "resolved": {
            "profile": spec.profile.name,
            "architecture": spec.arch.debian(),
            "cpu": spec.lookup("cpu"),
            "suite": spec.suite,
            "components": spec.components,
            "infrastructure": spec.infrastructure.name(),
            "stemcell": {"name": spec.stemcell_name, "version": spec.stemcell_version,
                         "operating_system": spec.operating_system},
            "dev_tools": spec.dev_tools,
        },
        "archive": {
            "recorded": archive,
            "signing_keys": spec.fingerprints,
            "extra_archives": extra,
        },
        "debs": debs,
        "components": components,
        "stages": stages.iter().map(|(n, k)| json!({"name": n, "key": k})).collect::<Vec<_>>(),
    })
}

/// One line for `inspect`: who built it, from which archive state, with how many .debs.
pub fn summary(v: &Value) -> String {
    let a = &v["archive"]["recorded"];
    let s = |x: &Value| x.as_str().unwrap_or("?").to_string();
    format!(
        "pistemcell {}; {} {} dated {} (Release sha256 {}); {} .debs, {} components, {} stages; SOURCE_DATE_EPOCH {}",
        s(&v["pistemcell"]),
        s(&a["profile"]),
        s(&a["suite"]),
        s(&a["date"]),
        s(&a["release_sha256"]),
        v["debs"].as_array().map_or(0, Vec::len),
        v["components"].as_array().map_or(0, Vec::len),
        v["stages"].as_array().map_or(0, Vec::len),
        v["source_date_epoch"]
    )
}
