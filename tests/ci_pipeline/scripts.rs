//! The task scripts: each exists under ci/scripts/ in one of its task's inputs, is executable,
//! strict bash that `bash -n` parses and (when installed) `shellcheck -x` passes.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::model::{parse, read, report, root, seq, split_input, task_files};

/// Each task file's script: (task file, run.path, repository path).
pub fn scripts() -> Vec<(String, String, String)> {
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

pub fn task_scripts_exist_are_executable_strict_bash_and_parse() {
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

pub fn task_scripts_pass_shellcheck() {
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
