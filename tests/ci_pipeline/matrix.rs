//! The stemcell matrix: every required profile/architecture/infrastructure is built by a
//! privileged build-stemcells step with the right agent, and uploaded with its checksums by
//! exactly one put whose s3 resource's regexp names the same file.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

use super::model::{
    all_steps, jobs, name, param, pipeline, report, root, seq, task_file, task_param, text,
    AGENT_TASK, BUILD_TASK,
};
use super::s3_paths::{glob_match, regexp_path};

pub fn the_matrix_builds_and_uploads_every_stemcell_with_its_checksums() {
    use pistemcell::pack::stemcell::image_kind;
    use pistemcell::spec::Infrastructure;

    let p = pipeline();
    let resources: BTreeMap<String, &Value> =
        seq(&p["resources"]).iter().map(|r| (name(r), r)).collect();
    let version = "1.23.0";
    let mut built = BTreeSet::new();
    let mut errors = Vec::new();
    for j in jobs(&p) {
        let job = name(j);
        let steps = all_steps(j);
        let agent_targets: BTreeSet<String> = steps
            .iter()
            .filter(|s| task_file(s).as_deref() == Some(AGENT_TASK))
            .flat_map(|s| {
                let t = text(&s["params"]["AGENT_TARGETS"])
                    .unwrap_or_else(|| task_param(AGENT_TASK, "AGENT_TARGETS"));
                t.split_whitespace().map(str::to_string).collect::<Vec<_>>()
            })
            .collect();
        let puts: Vec<(String, String)> = steps
            .iter()
            .filter_map(|s| {
                let r = s["put"].as_str()?;
                let r = s["resource"].as_str().unwrap_or(r).to_string();
                Some((
                    r,
                    s["params"]["file"].as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect();
        for s in steps
            .iter()
            .filter(|s| task_file(s).as_deref() == Some(BUILD_TASK))
        {
            let what = format!("job `{job}` task `{}`", s["task"].as_str().unwrap());
            if s["privileged"].as_bool() != Some(true) {
                errors.push(format!(
                    "{what}: needs `privileged: true` (loop devices, mounts, binfmt_misc)"
                ));
            }
            let (profile, arch, cpu) = (
                param(s, "PROFILE"),
                param(s, "ARCHITECTURE"),
                param(s, "CPU"),
            );
            if !root().join(format!("assets/os/{profile}.yml")).is_file() {
                errors.push(format!(
                    "{what}: PROFILE `{profile}` is not a profile under assets/os/"
                ));
            }
            if arch != "armhf" && arch != "arm64" {
                errors.push(format!(
                    "{what}: ARCHITECTURE `{arch}` is neither armhf nor arm64"
                ));
            }
            // The agent must be built for the stemcell's CPU floor.
            let target = match (arch.as_str(), cpu.as_str()) {
                ("arm64", _) => "arm64",
                (_, "armv6") => "armv6",
                (_, "") if profile.starts_with("raspbian") => "armv6",
                _ => "armv7",
            };
            let agent = param(s, "AGENT_BINARY");
            if agent != format!("bosh-agent-linux-{target}") {
                errors.push(format!("{what}: AGENT_BINARY is `{agent}`, but {profile} {arch} needs bosh-agent-linux-{target}"));
            }
            if !agent_targets.contains(target) {
                errors.push(format!(
                    "{what}: the job's build-agent task builds [{}], not `{target}`",
                    agent_targets.iter().cloned().collect::<Vec<_>>().join(" ")
                ));
            }
            let out_dir = s["output_mapping"]["stemcells"]
                .as_str()
                .unwrap_or("stemcells");
            let infras = param(s, "INFRASTRUCTURES");
            if infras.split_whitespace().next().is_none() {
                errors.push(format!("{what}: INFRASTRUCTURES is empty"));
            }
            for infra in infras.split_whitespace() {
                let Ok(kind) = serde_norway::from_str::<Infrastructure>(infra) else {
                    errors.push(format!(
                        "{what}: `{infra}` in INFRASTRUCTURES is not bakery, raw or warden"
                    ));
                    continue;
                };
                built.insert((profile.clone(), arch.clone(), infra.to_string()));
                let hypervisor = image_kind(kind).1;
                let file = format!(
                    "bosh-stemcell-{version}-{infra}-{hypervisor}-{profile}-{arch}-go_agent.tgz"
                );
                for ext in ["", ".sha1", ".sha256"] {
                    let local = format!("{out_dir}/{file}{ext}");
                    let matching: Vec<&(String, String)> = puts
                        .iter()
                        .filter(|(_, glob)| glob_match(glob, &local))
                        .collect();
                    if matching.len() != 1 {
                        errors.push(format!(
                            "{what}: {} put steps upload {local}, expected one",
                            matching.len()
                        ));
                        continue;
                    }
                    let (r, glob) = matching[0];
                    let source = resources.get(r).map(|r| &r["source"]);
                    let regexp = source
                        .and_then(|s| s["regexp"].as_str())
                        .unwrap_or_default();
                    match regexp_path(regexp, version) {
                        Some(remote) if remote.rsplit('/').next() == Some(&format!("{file}{ext}")) => {}
                        Some(remote) => errors.push(format!(
                            "{what}: `put: {r}` (file {glob}) uploads {file}{ext}, but the resource's regexp `{regexp}` names {remote} for version {version}: the upload would not match it"
                        )),
                        None => errors.push(format!(
                            "{what}: `put: {r}`: the resource's regexp `{regexp}` is not a literal path with one capture group (the version); escape dots as `\\.`"
                        )),
                    }
                    if resources.get(r).and_then(|r| r["type"].as_str()) != Some("s3")
                        || source.and_then(|s| s["endpoint"].as_str()).is_none()
                    {
                        errors.push(format!(
                            "{what}: `{r}` must be an s3 resource with an `endpoint`"
                        ));
                    }
                }
            }
        }
    }
    let required = [
        (
            "debian-bookworm",
            "armhf",
            ["bakery", "raw", "warden"].as_slice(),
        ),
        (
            "debian-bookworm",
            "arm64",
            ["bakery", "raw", "warden"].as_slice(),
        ),
        ("raspbian-bookworm", "armhf", ["bakery"].as_slice()),
    ];
    for (profile, arch, infras) in required {
        for infra in infras {
            if !built.contains(&(profile.to_string(), arch.to_string(), infra.to_string())) {
                errors.push(format!(
                    "no build-stemcells step builds {profile} {arch} {infra}"
                ));
            }
        }
    }
    report("the stemcell matrix", &errors);
}
