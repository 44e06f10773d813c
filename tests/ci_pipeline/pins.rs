//! Pinned inputs: the bosh-agent git resource and Go image, monit's version and checksum as
//! the code pins them, the semver `version` resource, and what the build script passes pistemcell.

use super::model::{
    all_steps, jobs, name, parse, pipeline, read, report, root, seq, task_param, AGENT_TASK,
    BUILD_TASK, MONIT_TASK, PIPELINE,
};
use super::s3_paths::regexp_path;

pub fn pinned_inputs_match_the_code_and_the_version_is_a_semver_resource() {
    use pistemcell::spec::inputs::{MONIT_DEFAULT_SHA256, MONIT_DEFAULT_VERSION};

    let p = pipeline();
    let resource = |n: &str| {
        seq(&p["resources"])
            .iter()
            .find(|r| name(r) == n)
            .unwrap_or_else(|| panic!("{PIPELINE}: no resource `{n}`"))
            .clone()
    };
    let mut errors = Vec::new();

    let agent = resource("bosh-agent");
    if agent["type"].as_str() != Some("git")
        || agent["source"]["uri"].as_str() != Some("https://github.com/cloudfoundry/bosh-agent")
        || agent["source"]["tag_filter"].as_str().is_none()
    {
        errors.push("resource `bosh-agent`: a git resource on https://github.com/cloudfoundry/bosh-agent pinned with `tag_filter`".into());
    }
    let go_tag = parse(AGENT_TASK)["image_resource"]["source"]["tag"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let go: Vec<u32> = go_tag
        .split(['.', '-'])
        .take(2)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    if go.len() < 2 || (go[0], go[1]) < (1, 25) {
        errors.push(format!(
            "{AGENT_TASK}: image tag `{go_tag}`: bosh-agent needs Go >= 1.25"
        ));
    }
    let patches = root().join("assets/agent/patches");
    let has_patch = std::fs::read_dir(&patches)
        .map(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".patch"))
        })
        .unwrap_or(false);
    let agent_script = read("ci/scripts/build-agent.sh");
    if !has_patch || !agent_script.contains("assets/agent/patches") {
        errors.push("build-agent.sh must apply assets/agent/patches/*.patch for 32-bit ARM".into());
    }
    for flag in ["CGO_ENABLED=0", "-trimpath", "-buildvcs=false", "GOARM"] {
        if !agent_script.contains(flag) {
            errors.push(format!("ci/scripts/build-agent.sh: no `{flag}`"));
        }
    }

    let monit = resource("monit-tarball");
    let monit_version = task_param(MONIT_TASK, "MONIT_VERSION");
    let monit_sha = task_param(MONIT_TASK, "MONIT_SHA256");
    if monit_version != MONIT_DEFAULT_VERSION || monit_sha != MONIT_DEFAULT_SHA256 {
        errors.push(format!(
            "{MONIT_TASK}: pins monit {monit_version} {monit_sha}; pistemcell pins {MONIT_DEFAULT_VERSION} {MONIT_DEFAULT_SHA256}"
        ));
    }
    let tarball = format!("monit-{MONIT_DEFAULT_VERSION}.tar.gz");
    let regexp = monit["source"]["regexp"].as_str().unwrap_or_default();
    let found = regexp_path(regexp, MONIT_DEFAULT_VERSION);
    if monit["type"].as_str() != Some("s3")
        || !(found
            .as_deref()
            .is_some_and(|p| p.ends_with(&format!("/{tarball}")))
            || monit["source"]["versioned_file"].as_str().is_some())
    {
        errors.push(format!("resource `monit-tarball`: an s3 resource for {tarball} (regexp `{regexp}` gives {found:?})"));
    }

    let version = resource("version");
    if version["type"].as_str() != Some("semver")
        || version["source"]["driver"].as_str() != Some("s3")
    {
        errors.push("resource `version`: a semver resource with `driver: s3`".into());
    }
    let bumped = jobs(&p).iter().flat_map(all_steps).any(|s| {
        s["get"].as_str() == Some("version") && s["params"]["bump"].is_string()
            || s["put"].as_str() == Some("version") && s["params"]["bump"].is_string()
    });
    let saved = jobs(&p)
        .iter()
        .flat_map(all_steps)
        .any(|s| s["put"].as_str() == Some("version"));
    if !bumped || !saved {
        errors.push("the `version` resource must be bumped (params.bump) and put back".into());
    }

    let build = read("ci/scripts/build-stemcells.sh");
    for needed in [
        "doctor",
        "--fix --yes",
        "stemcell.version=",
        "agent.binary.path=",
        "agent.binary.sha256=",
        "monit.source.path=",
        "monit.source.sha256=",
        "--cache-dir",
        "--stemcell-dir",
        "--json",
        "inspect --json",
        "PISTEMCELL_STAGES_DIR",
        "PISTEMCELL_ASSETS_DIR",
    ] {
        if !build.contains(needed) {
            errors.push(format!("ci/scripts/build-stemcells.sh: no `{needed}`"));
        }
    }
    let build_task = parse(BUILD_TASK);
    if seq(&build_task["caches"]).is_empty() {
        errors.push(format!(
            "{BUILD_TASK}: no `caches:` for pistemcell's --cache-dir"
        ));
    }
    report("pinned inputs", &errors);
}
