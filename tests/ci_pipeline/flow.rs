//! Artifacts through a job's plan (in_parallel, do, try and hooks): every task input and put
//! input comes from a get or an earlier step's output.

use std::collections::BTreeSet;

use serde_norway::Value;

use super::model::{jobs, name, parse, pipeline, report, root, seq, split_input};

/// Walks `step` with the artifacts `avail` before it; returns the artifacts it adds and
/// records every task input nothing earlier provides.
pub fn flow(
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

pub fn every_task_input_comes_from_a_get_or_an_earlier_output() {
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
