//! Declarations and the references to them: resources and jobs declared once (no merge keys),
//! task steps running task files that exist and are complete, and get/put steps naming
//! declared resources and `passed:` jobs that use them.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{
    all_steps, has_merge_key, jobs, name, parse, pipeline, report, root, seq, step_resource,
    task_file, task_files, task_steps, PIPELINE,
};

pub fn pipeline_declares_uniquely_named_resources_and_jobs_without_merge_keys() {
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

pub fn task_steps_run_task_files_that_exist_and_are_complete() {
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

pub fn steps_name_declared_resources_and_passed_jobs_that_use_them() {
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
