//! `ci/`: the product's own Concourse pipeline, checked without `fly` (which needs a Concourse
//! to talk to): the pipeline and every task file parse, every task file and script a step
//! names exists (scripts executable, `bash -n` and, when installed, `shellcheck -x` clean),
//! every resource and job a step names is declared, every task's inputs come from an earlier
//! step, every stemcell of the matrix is built and uploaded with its checksums, the pinned
//! inputs match the code's, and every `((var))` is documented in `ci/README.md`.
//!
//! This file holds the tests; the checks live in `ci_pipeline/`: `model` (loading the YAML and
//! walking steps), `declarations`, `scripts`, `flow` (task inputs), `vars`, `matrix`, `pins`,
//! and `s3_paths` (the s3 resource's glob and regexp semantics the matrix and pins rely on).

use serde_norway::Value;

#[path = "ci_pipeline/declarations.rs"]
mod declarations;
#[path = "ci_pipeline/flow.rs"]
mod flow;
#[path = "ci_pipeline/matrix.rs"]
mod matrix;
#[path = "ci_pipeline/model.rs"]
mod model;
#[path = "ci_pipeline/pins.rs"]
mod pins;
#[path = "ci_pipeline/s3_paths.rs"]
mod s3_paths;
#[path = "ci_pipeline/scripts.rs"]
mod scripts;
#[path = "ci_pipeline/vars.rs"]
mod vars;

use model::split_input;
use s3_paths::{glob_match, regexp_path};
use vars::vars_in;

#[test]
fn pipeline_declares_uniquely_named_resources_and_jobs_without_merge_keys() {
    declarations::pipeline_declares_uniquely_named_resources_and_jobs_without_merge_keys();
}

#[test]
fn task_steps_run_task_files_that_exist_and_are_complete() {
    declarations::task_steps_run_task_files_that_exist_and_are_complete();
}

#[test]
fn task_scripts_exist_are_executable_strict_bash_and_parse() {
    scripts::task_scripts_exist_are_executable_strict_bash_and_parse();
}

#[test]
fn task_scripts_pass_shellcheck() {
    scripts::task_scripts_pass_shellcheck();
}

#[test]
fn steps_name_declared_resources_and_passed_jobs_that_use_them() {
    declarations::steps_name_declared_resources_and_passed_jobs_that_use_them();
}

#[test]
fn every_task_input_comes_from_a_get_or_an_earlier_output() {
    flow::every_task_input_comes_from_a_get_or_an_earlier_output();
}

#[test]
fn every_var_is_documented_in_ci_readme() {
    vars::every_var_is_documented_in_ci_readme();
}

#[test]
fn the_matrix_builds_and_uploads_every_stemcell_with_its_checksums() {
    matrix::the_matrix_builds_and_uploads_every_stemcell_with_its_checksums();
}

#[test]
fn pinned_inputs_match_the_code_and_the_version_is_a_semver_resource() {
    pins::pinned_inputs_match_the_code_and_the_version_is_a_semver_resource();
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
