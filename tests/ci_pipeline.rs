//! `ci/`: the product's own Concourse pipeline, checked without `fly` (which needs a Concourse
//! to talk to): the pipeline and every task file parse, every task file and script a step
//! names exists (scripts executable, `bash -n` and, when installed, `shellcheck -x` clean),
//! every resource and job a step names is declared, every task's inputs come from an earlier
//! step, every stemcell of the matrix is built and uploaded with its checksums, the pinned
//! inputs match the code's, and every `((var))` is documented in `ci/README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use serde_norway::Value;

const PIPELINE: &str = "ci/pipeline.yml";
const BUILD_TASK: &str = "ci/tasks/build-stemcells.yml";
const AGENT_TASK: &str = "ci/tasks/build-agent.yml";
const MONIT_TASK: &str = "ci/tasks/stage-monit.yml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn parse(rel: &str) -> Value {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

fn pipeline() -> Value {
    parse(PIPELINE)
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `pistemcell/ci/tasks/x.yml` (a path inside an input) -> (`pistemcell`, `ci/tasks/x.yml`).
fn split_input(path: &str) -> (&str, &str) {
    path.split_once('/').unwrap_or((path, ""))
}

/// The task files under ci/tasks, by repository path.
fn task_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("ci/tasks"))
        .expect("ci/tasks must exist")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
        .map(|n| format!("ci/tasks/{n}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "ci/tasks has no task files");
    files
}

fn jobs(p: &Value) -> &[Value] {
    seq(&p["jobs"])
}

fn name(v: &Value) -> String {
    v["name"].as_str().unwrap_or("<no name>").to_string()
}

/// The steps directly inside `step` (in_parallel, do, try and the hooks).
fn children(step: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    match &step["in_parallel"] {
        Value::Sequence(s) => out.extend(s),
        m @ Value::Mapping(_) => out.extend(seq(&m["steps"])),
        _ => {}
    }
    out.extend(seq(&step["do"]));
    for hook in [
        "try",
        "on_success",
        "on_failure",
        "on_abort",
        "on_error",
        "ensure",
    ] {
        if step[hook].is_mapping() {
            out.push(&step[hook]);
        }
    }
    out
}

/// Every step of a job, depth-first in plan order.
fn all_steps(job: &Value) -> Vec<&Value> {
    fn walk<'a>(step: &'a Value, out: &mut Vec<&'a Value>) {
        out.push(step);
        for c in children(step) {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    for s in seq(&job["plan"]) {
        walk(s, &mut out);
    }
    out
}

/// The resource a get or put step uses (`resource:` overrides the step name).
fn step_resource(step: &Value) -> Option<(&'static str, String)> {
    for kind in ["get", "put"] {
        if let Some(n) = step[kind].as_str() {
            let r = step["resource"].as_str().unwrap_or(n);
            return Some((kind, r.to_string()));
        }
    }
    None
}

/// The task file a task step runs, as a repository path.
fn task_file(step: &Value) -> Option<String> {
    step["file"]
        .as_str()
        .filter(|_| step["task"].is_string())
        .map(|f| split_input(f).1.to_string())
}

/// Every task step of the pipeline with its job's name.
fn task_steps(p: &Value) -> Vec<(String, &Value)> {
    jobs(p)
        .iter()
        .flat_map(|j| {
            all_steps(j)
                .into_iter()
                .filter(|s| s["task"].is_string())
                .map(move |s| (name(j), s))
        })
        .collect()
}

fn report(what: &str, errors: &[String]) {
    assert!(errors.is_empty(), "{what}:\n  {}", errors.join("\n  "));
}

fn has_merge_key(v: &Value) -> bool {
    match v {
        Value::Mapping(m) => m
            .iter()
            .any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        Value::Sequence(s) => s.iter().any(has_merge_key),
        Value::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

#[test]
fn pipeline_declares_uniquely_named_resources_and_jobs_without_merge_keys() {
    let p = pipeline();
    let mut errors = Vec::new();
    for key in ["resources", "jobs"] {
        let items = seq(&p[key]);
        if items.is_empty() {
            errors.push(format!("{PIPELINE}: no `{key}:`"));
        }
        let mut seen = BTreeSet::new();
        for item in items {
            let n = name(item);
            if !seen.insert(n.clone()) {
                errors.push(format!("{PIPELINE}: {key} `{n}` is declared twice"));
            }
            if key == "resources"
                && (item["type"].as_str().is_none() || !item["source"].is_mapping())
            {
                errors.push(format!(
                    "{PIPELINE}: resource `{n}` needs a `type` and a `source`"
                ));
            }
            if key == "jobs" && seq(&item["plan"]).is_empty() {
                errors.push(format!("{PIPELINE}: job `{n}` has no plan"));
            }
        }
    }
    // Concourse 7.14 and 8.0 changed how `<<:` merges parse; plain anchors/aliases are stable.
    if has_merge_key(&p) {
        errors.push(format!(
            "{PIPELINE}: uses YAML merge keys (`<<:`); write the keys out"
        ));
    }
    for f in task_files() {
        if has_merge_key(&parse(&f)) {
            errors.push(format!("{f}: uses YAML merge keys (`<<:`)"));
        }
    }
    report("the pipeline's declarations", &errors);
}

#[test]
fn task_steps_run_task_files_that_exist_and_are_complete() {
    let p = pipeline();
    let mut errors = Vec::new();
    let mut used = BTreeSet::new();
    for (job, step) in task_steps(&p) {
        let task = step["task"].as_str().unwrap();
        match task_file(step) {
            None if step["config"].is_mapping() => {}
            None => errors.push(format!("job `{job}` task `{task}`: neither `file:` nor `config:`")),
            Some(f) if !root().join(&f).is_file() => errors.push(format!(
                "job `{job}` task `{task}`: file {} is {f} in this repository, which does not exist",
                step["file"].as_str().unwrap()
            )),
            Some(f) => {
                used.insert(f);
            }
        }
    }
    for f in task_files() {
        let t = parse(&f);
        if t["platform"].as_str() != Some("linux") {
            errors.push(format!("{f}: `platform: linux` missing"));
        }
        let image = &t["image_resource"];
        if image["type"].as_str().is_none() || image["source"]["repository"].as_str().is_none() {
            errors.push(format!(
                "{f}: `image_resource` needs `type` and `source.repository`"
            ));
        }
        if t["run"]["path"].as_str().is_none() {
            errors.push(format!("{f}: `run.path` missing"));
        }
        for key in ["inputs", "outputs", "caches"] {
            for item in seq(&t[key]) {
                let field = if key == "caches" { "path" } else { "name" };
                if item[field].as_str().is_none() {
                    errors.push(format!("{f}: an entry of `{key}` has no `{field}`"));
                }
            }
        }
        if !used.contains(&f) {
            errors.push(format!("{f}: no step of {PIPELINE} runs it"));
        }
    }
    report("task steps and task files", &errors);
}

/// Each task file's script: (task file, run.path, repository path).
fn scripts() -> Vec<(String, String, String)> {
    task_files()
        .into_iter()
        .filter_map(|f| {
            let t = parse(&f);
            let run = t["run"]["path"].as_str()?.to_string();
            let rel = split_input(&run).1.to_string();
            Some((f, run, rel))
        })
        .collect()
}

#[test]
fn task_scripts_exist_are_executable_strict_bash_and_parse() {
    let mut errors = Vec::new();
    let mut used = BTreeSet::new();
    for (f, run, rel) in scripts() {
        let t = parse(&f);
        let (input, _) = split_input(&run);
        if !seq(&t["inputs"])
            .iter()
            .any(|i| i["name"].as_str() == Some(input))
        {
            errors.push(format!(
                "{f}: run.path {run} is in `{input}`, which is not an input of the task"
            ));
        }
        if !rel.starts_with("ci/scripts/") {
            errors.push(format!(
                "{f}: run.path {run} is not a script under ci/scripts/"
            ));
        }
        let path = root().join(&rel);
        let Ok(meta) = std::fs::metadata(&path) else {
            errors.push(format!(
                "{f}: run.path {run} is {rel}, which does not exist"
            ));
            continue;
        };
        used.insert(rel.clone());
        if meta.permissions().mode() & 0o111 != 0o111 {
            errors.push(format!(
                "{rel}: mode {:o}, not executable (chmod 755, and commit it as 100755)",
                meta.permissions().mode() & 0o7777
            ));
        }
        let body = read(&rel);
        if !body.starts_with("#!/usr/bin/env bash\n") && !body.starts_with("#!/bin/bash\n") {
            errors.push(format!("{rel}: does not start with a bash shebang"));
        }
        if !body.lines().any(|l| l.trim() == "set -euo pipefail") {
            errors.push(format!("{rel}: no `set -euo pipefail`"));
        }
        let out = Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("running bash -n");
        if !out.status.success() {
            errors.push(format!(
                "{rel}: bash -n fails: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    for entry in std::fs::read_dir(root().join("ci/scripts")).expect("ci/scripts must exist") {
        let n = entry.unwrap().file_name().to_string_lossy().into_owned();
        let rel = format!("ci/scripts/{n}");
        if n.ends_with(".sh") && !used.contains(&rel) {
            errors.push(format!("{rel}: no task runs it"));
        }
    }
    report("task scripts", &errors);
}

#[test]
fn task_scripts_pass_shellcheck() {
    let found = Command::new("shellcheck").arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        println!("SKIPPED shellcheck: not installed");
        return;
    }
    let mut errors = Vec::new();
    for (_, _, rel) in scripts() {
        let out = Command::new("shellcheck")
            .arg("-x")
            .arg(&rel)
            .current_dir(root())
            .output()
            .expect("running shellcheck");
        if !out.status.success() {
            errors.push(format!(
                "shellcheck -x {rel}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    report("shellcheck", &errors);
}

#[test]
fn steps_name_declared_resources_and_passed_jobs_that_use_them() {
    let p = pipeline();
    let declared: BTreeSet<String> = seq(&p["resources"]).iter().map(name).collect();
    // Which resources each job gets or puts.
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for j in jobs(&p) {
        let set = uses.entry(name(j)).or_default();
        for s in all_steps(j) {
            if let Some((_, r)) = step_resource(s) {
                set.insert(r);
            }
        }
    }
    let mut errors = Vec::new();
    let mut used = BTreeSet::new();
    for j in jobs(&p) {
        let job = name(j);
        for s in all_steps(j) {
            let Some((kind, r)) = step_resource(s) else {
                continue;
            };
            used.insert(r.clone());
            if !declared.contains(&r) {
                errors.push(format!(
                    "job `{job}`: `{kind}: {r}` names a resource not under `resources:`"
                ));
            }
            for passed in seq(&s["passed"]) {
                let pj = passed.as_str().unwrap_or("<not a string>");
                match uses.get(pj) {
                    None => errors.push(format!("job `{job}`: `{kind}: {r}` passed: [{pj}]: no such job")),
                    Some(set) if !set.contains(&r) => errors.push(format!(
                        "job `{job}`: `{kind}: {r}` passed: [{pj}]: job `{pj}` neither gets nor puts `{r}`"
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    for r in declared.difference(&used) {
        errors.push(format!("resource `{r}` is declared but no step uses it"));
    }
    report("resources and passed constraints", &errors);
}

/// Walks `step` with the artifacts `avail` before it; returns the artifacts it adds and
/// records every task input nothing earlier provides.
fn flow(
    step: &Value,
    avail: &BTreeSet<String>,
    job: &str,
    errors: &mut Vec<String>,
) -> BTreeSet<String> {
    let mut added = BTreeSet::new();
    if let Some(n) = step["get"].as_str().or(step["put"].as_str()) {
        for input in seq(&step["inputs"]) {
            let i = input.as_str().unwrap_or_default();
            if !avail.contains(i) {
                errors.push(format!(
                    "job `{job}`: `put: {n}` takes input `{i}`, which no earlier step provides"
                ));
            }
        }
        added.insert(n.to_string());
    }
    if let Some(task) = step["task"].as_str() {
        let config = if let Some(file) = step["file"].as_str() {
            let (input, rel) = split_input(file);
            if !avail.contains(input) {
                errors.push(format!("job `{job}` task `{task}`: its file {file} is in `{input}`, which no earlier step provides"));
            }
            root().join(rel).is_file().then(|| parse(rel))
        } else {
            Some(step["config"].clone())
        };
        if let Some(config) = config {
            for input in seq(&config["inputs"]) {
                let n = input["name"].as_str().unwrap_or_default();
                let mapped = step["input_mapping"][n].as_str().unwrap_or(n);
                if input["optional"].as_bool() != Some(true) && !avail.contains(mapped) {
                    errors.push(format!(
                        "job `{job}` task `{task}`: input `{n}`{} is not provided by a get or an earlier task's output (have: {})",
                        if mapped == n { String::new() } else { format!(" (mapped to `{mapped}`)") },
                        avail.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            for output in seq(&config["outputs"]) {
                let n = output["name"].as_str().unwrap_or_default();
                added.insert(step["output_mapping"][n].as_str().unwrap_or(n).to_string());
            }
        }
    }
    let parallel: Vec<&Value> = match &step["in_parallel"] {
        Value::Sequence(s) => s.iter().collect(),
        m @ Value::Mapping(_) => seq(&m["steps"]).iter().collect(),
        _ => Vec::new(),
    };
    for s in parallel {
        // Siblings run at once: none sees another's outputs.
        added.extend(flow(s, avail, job, errors));
    }
    let mut seen = avail.clone();
    for s in seq(&step["do"]) {
        let out = flow(s, &seen, job, errors);
        seen.extend(out.iter().cloned());
        added.extend(out);
    }
    if step["try"].is_mapping() {
        added.extend(flow(&step["try"], avail, job, errors));
    }
    let after: BTreeSet<String> = avail.union(&added).cloned().collect();
    for hook in ["on_success", "on_failure", "on_abort", "on_error", "ensure"] {
        if step[hook].is_mapping() {
            flow(&step[hook], &after, job, errors);
        }
    }
    added
}

#[test]
fn every_task_input_comes_from_a_get_or_an_earlier_output() {
    let p = pipeline();
    let mut errors = Vec::new();
    for j in jobs(&p) {
        let job = name(j);
        let mut avail = BTreeSet::new();
        for s in seq(&j["plan"]) {
            let out = flow(s, &avail, &job, &mut errors);
            avail.extend(out);
        }
    }
    report("task inputs", &errors);
}

/// Every `((name))` in `text`.
fn vars_in(text: &str) -> BTreeSet<String> {
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

#[test]
fn every_var_is_documented_in_ci_readme() {
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

/// A bash glob with `*` and `?` (the s3 resource's `file:` syntax) against `s`.
fn glob_match(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The object path an s3 resource's `regexp` gives `version`: the regexp must be literal apart
/// from one capture group (the version) and `\`-escapes. None when it is not of that form.
fn regexp_path(regexp: &str, version: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = regexp.chars();
    let mut groups = 0;
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '(' => {
                let mut depth = 1;
                for g in chars.by_ref() {
                    depth += match g {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    if depth == 0 {
                        break;
                    }
                }
                groups += 1;
                out.push_str(version);
            }
            '.' | '*' | '+' | '?' | '[' | ']' | '{' | '}' | '|' | '^' | '$' | ')' => return None,
            c => out.push(c),
        }
    }
    (groups == 1).then_some(out)
}

fn param(step: &Value, key: &str) -> String {
    text(&step["params"][key]).unwrap_or_default()
}

/// The default of a task file's param.
fn task_param(rel: &str, key: &str) -> String {
    text(&parse(rel)["params"][key]).unwrap_or_default()
}

#[test]
fn the_matrix_builds_and_uploads_every_stemcell_with_its_checksums() {
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

#[test]
fn pinned_inputs_match_the_code_and_the_version_is_a_semver_resource() {
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

#[test]
fn the_checkers_match_what_the_s3_resource_and_bash_do() {
    assert!(glob_match(
        "stemcells/bosh-stemcell-*-raw-pi-x-go_agent.tgz",
        "stemcells/bosh-stemcell-1.2-raw-pi-x-go_agent.tgz"
    ));
    assert!(!glob_match(
        "stemcells/bosh-stemcell-*-go_agent.tgz",
        "stemcells/bosh-stemcell-1.2-go_agent.tgz.sha1"
    ));
    assert!(glob_match("a?c*", "abcdef"));
    assert_eq!(
        regexp_path(
            r"stemcells/bosh-stemcell-(.*)-raw-go_agent\.tgz\.sha1",
            "1.2.0"
        )
        .as_deref(),
        Some("stemcells/bosh-stemcell-1.2.0-raw-go_agent.tgz.sha1")
    );
    assert_eq!(
        regexp_path(r"stemcells/x-(.*)-y.tgz", "1"),
        None,
        "an unescaped `.` is not literal"
    );
    assert_eq!(
        regexp_path(r"stemcells/x\.tgz", "1"),
        None,
        "no capture group: no version"
    );
    assert_eq!(
        vars_in("a: ((one))\nb: x-((two-2))-y ((one))"),
        ["one", "two-2"].iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(
        split_input("pistemcell/ci/tasks/x.yml"),
        ("pistemcell", "ci/tasks/x.yml")
    );
    let p: Value = serde_norway::from_str("a: &x {k: 1}\nb: *x\n").unwrap();
    assert_eq!(p["b"]["k"].as_i64(), Some(1), "aliases resolve");
}
