//! Closed networks and the OS image, through the command line on the first build's cache: a
//! build whose monit and agent cannot be had runs the OS stages and stops before `55-monit`
//! naming the `--set` flags; `build --os-image --json` packs the OS stages alone; a stemcell
//! built `--os-image-from` it has the same files as one built straight through.

use std::path::{Path, PathBuf};

use super::builtins::pistemcell;

fn json(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "--json printed no JSON ({e}):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Checks a `--json` file entry: the file exists with that sha256 and size, and a `.sha256`
/// file beside it says the same.
fn check_file(entry: &serde_json::Value) -> PathBuf {
    let path = PathBuf::from(entry["path"].as_str().unwrap());
    let sha = pistemcell::archive::cache::file_sha256(&path).unwrap();
    assert_eq!(entry["sha256"].as_str(), Some(sha.as_str()), "{entry}");
    assert_eq!(
        entry["size"].as_u64(),
        Some(std::fs::metadata(&path).unwrap().len())
    );
    let side = std::fs::read_to_string(format!("{}.sha256", path.display())).unwrap();
    assert!(side.starts_with(&sha), "{side}");
    path
}

/// The closed-network stop, the OS image and a stemcell from it.
pub fn check(work: &Path, cache: &Path, mirror: &str, sets: &[String], tmp: &Path) {
    // monit's tarball and the agent cannot be had: the OS stages run, the build stops.
    let mut closed: Vec<String> = sets
        .iter()
        .filter(|s| !s.starts_with("monit.") && !s.starts_with("agent."))
        .cloned()
        .collect();
    closed.extend([
        "monit.version=5.2.5".to_string(),
        "monit.source.url=http://127.0.0.1:9/monit-5.2.5.tar.gz".to_string(),
        format!("monit.source.sha256={}", "ab".repeat(32)),
        "agent.binary.path=/nonexistent/bosh-agent".to_string(),
        format!("agent.binary.sha256={}", "cd".repeat(32)),
    ]);
    let o = pistemcell(
        work,
        cache,
        mirror,
        &closed,
        &["build", "--from", "54-initramfs", "--json"],
    );
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{e}");
    // --json: the failure is a JSON object on stdout too.
    let j = json(&o);
    assert!(
        j["error"]
            .as_str()
            .is_some_and(|m| m.contains("stopped before stage 55-monit")),
        "{j}"
    );
    for want in [
        "54-initramfs: done",
        "the build stopped before stage 55-monit",
        "monit.source: cannot get http://127.0.0.1:9/monit-5.2.5.tar.gz",
        "--set monit.source.path=FILE",
        "/nonexistent/bosh-agent",
        "through 54-initramfs",
        "pistemcell build --os-image",
    ] {
        assert!(e.contains(want), "`{want}` missing from:\n{e}");
    }
    assert!(!e.contains("55-monit: running"), "{e}");
    // The run's log has every line and the error.
    let log = e
        .lines()
        .find_map(|l| l.split("build log: ").nth(1))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no build log named:\n{e}"));
    assert!(log.starts_with(work.join("logs")), "{}", log.display());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("54-initramfs: done")
            && text.contains("error: ")
            && text.contains("the build stopped before stage 55-monit"),
        "{text}"
    );

    // The OS image alone, with neither monit nor the agent.
    let images = tmp.join("os-images");
    let o = pistemcell(
        work,
        cache,
        mirror,
        &closed,
        &[
            "build",
            "--os-image",
            "--json",
            "--stemcell-dir",
            images.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert!(j["stemcell"].is_null(), "{j}");
    let image = check_file(&j["os_image"]);
    assert_eq!(
        image.file_name().unwrap().to_str(),
        Some("pistemcell-os-image-debian-bookworm-armhf-0.0.1.tgz")
    );
    let stages = j["stages"].as_array().unwrap();
    assert_eq!(stages.last().unwrap()["name"], "54-initramfs", "{j}");
    // Every OS stage was cached; the other boot stages (arm64's kernel, Raspbian's) are skipped.
    let applied = stages.iter().filter(|s| s["outcome"] != "skipped").count();
    assert_eq!(j["cache_hits"].as_u64(), Some(applied as u64), "{j}");
    assert_eq!(stages.len() - applied, 2, "{j}");

    // A stemcell from it, and one built straight through: the same files. (Bakery's, as the
    // OS image was built: it holds the kernel and firmware stages, which disk stemcells have.)
    let from_dir = tmp.join("from-os-image");
    let o = pistemcell(
        work,
        cache,
        mirror,
        sets,
        &[
            "build",
            "--os-image-from",
            image.to_str().unwrap(),
            "--json",
            "--stemcell-dir",
            from_dir.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    let from_image = check_file(&j["stemcell"]);
    let names: Vec<&str> = j["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["outcome"] != "skipped")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[..3], ["00-os-image", "55-monit", "56-agent"], "{j}");
    assert!(names.contains(&"95-audit"), "{j}");
    let straight_dir = tmp.join("straight");
    let o = pistemcell(
        work,
        cache,
        mirror,
        sets,
        &["build", "--stemcell-dir", straight_dir.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let straight = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    let d = pistemcell(
        work,
        cache,
        mirror,
        &[],
        &[
            "diff",
            straight.to_str().unwrap(),
            from_image.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&d.stdout);
    assert!(
        text.contains("packages: 0 added, 0 removed, 0 upgraded, 0 downgraded")
            && text.contains("files: 0 added, 0 removed, 0 changed"),
        "{text}"
    );
}
