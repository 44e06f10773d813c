//! The pipeline and its task files as YAML values: loading them, walking a job's steps in
//! plan order, and the small accessors and error reporting every check uses.

use std::path::PathBuf;

use serde_norway::Value;

pub const PIPELINE: &str = "ci/pipeline.yml";
pub const BUILD_TASK: &str = "ci/tasks/build-stemcells.yml";
pub const AGENT_TASK: &str = "ci/tasks/build-agent.yml";
pub const MONIT_TASK: &str = "ci/tasks/stage-monit.yml";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

pub fn parse(rel: &str) -> Value {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

pub fn pipeline() -> Value {
    parse(PIPELINE)
}

pub fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `pistemcell/ci/tasks/x.yml` (a path inside an input) -> (`pistemcell`, `ci/tasks/x.yml`).
pub fn split_input(path: &str) -> (&str, &str) {
    path.split_once('/').unwrap_or((path, ""))
}

/// The task files under ci/tasks, by repository path.
pub fn task_files() -> Vec<String> {
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

pub fn jobs(p: &Value) -> &[Value] {
    seq(&p["jobs"])
}

pub fn name(v: &Value) -> String {
    v["name"].as_str().unwrap_or("<no name>").to_string()
}

/// The steps directly inside `step` (in_parallel, do, try and the hooks).
pub fn children(step: &Value) -> Vec<&Value> {
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
pub fn all_steps(job: &Value) -> Vec<&Value> {
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
pub fn step_resource(step: &Value) -> Option<(&'static str, String)> {
    for kind in ["get", "put"] {
        if let Some(n) = step[kind].as_str() {
            let r = step["resource"].as_str().unwrap_or(n);
            return Some((kind, r.to_string()));
        }
    }
    None
}

/// The task file a task step runs, as a repository path.
pub fn task_file(step: &Value) -> Option<String> {
    step["file"]
        .as_str()
        .filter(|_| step["task"].is_string())
        .map(|f| split_input(f).1.to_string())
}

/// Every task step of the pipeline with its job's name.
pub fn task_steps(p: &Value) -> Vec<(String, &Value)> {
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

pub fn report(what: &str, errors: &[String]) {
    assert!(errors.is_empty(), "{what}:\n  {}", errors.join("\n  "));
}

pub fn has_merge_key(v: &Value) -> bool {
    match v {
        Value::Mapping(m) => m
            .iter()
            .any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        Value::Sequence(s) => s.iter().any(has_merge_key),
        Value::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

pub fn param(step: &Value, key: &str) -> String {
    text(&step["params"][key]).unwrap_or_default()
}

/// The default of a task file's param.
pub fn task_param(rel: &str, key: &str) -> String {
    text(&parse(rel)["params"][key]).unwrap_or_default()
}
