//! Stage `02-dev-tools` in the default stemcell: gcc, g++, make and patch under `/usr/bin`,
//! `/var/vcap/bosh/etc/dev_tools_file_list` listing their files (never a directory: the agent
//! runs `rm -rf` on each line), the static libraries' list, and the stemcell's
//! `dev_tools_file_list.txt` equal to the image's list.

use std::path::Path;

use super::{check, Root, F};

/// Stage 02-dev-tools (the default spec has `dev_tools: true`): the compilers a compilation VM
/// runs, and the list of their files the agent deletes for `env.bosh.remove_dev_tools`.
#[rustfmt::skip]
pub fn assert_dev_tools(r: &Root) {
    for tool in ["gcc", "g++", "cc", "make", "patch", "ld", "bison", "flex", "cmake"] {
        let path = r.resolve(&format!("/usr/bin/{tool}"));
        check(r.path(&path).is_file(), format!("/usr/bin/{tool} is missing ({path})"));
    }
    let list_path = "/var/vcap/bosh/etc/dev_tools_file_list";
    r.node(list_path, F, 0o644, "root", "root");
    let list = r.read(list_path);
    let lines: Vec<&str> = list.lines().collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(lines, sorted, "{list_path} must be sorted and unique");
    for must in ["/usr/bin/gcc", "/usr/bin/g++", "/usr/bin/make", "/usr/bin/patch"] {
        check(lines.contains(&must), format!("{list_path} lacks {must}"));
    }
    // gcc's own files: the versioned driver and its compiler proper.
    check(lines.iter().any(|l| l.starts_with("/usr/bin/gcc-")), format!("{list_path} lists no /usr/bin/gcc-N"));
    check(lines.iter().any(|l| l.starts_with("/usr/lib/gcc/") && l.ends_with("/cc1")), format!("{list_path} lists no cc1"));
    for line in &lines {
        check(line.starts_with('/'), format!("{list_path}: `{line}` is not an absolute path"));
        // The agent runs `rm -rf` on each line: never a directory (nor /lib -> usr/lib).
        check(!r.path(&r.resolve(line)).is_dir(), format!("{list_path} lists the directory {line}"));
    }
    for runtime in ["/usr/bin/perl", "/bin/bash", "/usr/bin/bash"] {
        check(!lines.contains(&runtime), format!("{list_path} lists {runtime}"));
    }
    let libs = r.read("/var/vcap/bosh/etc/static_libraries_list");
    check(libs.lines().all(|l| l.ends_with(".a")), "static_libraries_list lists only *.a");
    check(libs.lines().any(|l| l.ends_with("/libc.a")), "static_libraries_list lacks libc.a");
}

/// The stemcell's `dev_tools_file_list.txt` is the image's list, and its manifest's
/// `operating_system` names the architecture.
pub fn assert_stemcell_lists(stemcell: &Path, rootfs: &Path, dir: &Path) {
    let x = dir.join("members");
    check(
        super::stemcell_image::extract_members(
            stemcell,
            &x,
            &["dev_tools_file_list.txt", "stemcell.MF"],
        ),
        "the stemcell has no dev_tools_file_list.txt",
    );
    let member = std::fs::read_to_string(x.join("dev_tools_file_list.txt")).unwrap();
    let image = Root::new(rootfs).read("/var/vcap/bosh/etc/dev_tools_file_list");
    check(
        !member.is_empty() && member == image,
        "dev_tools_file_list.txt differs from the image's list",
    );
    let mf = std::fs::read_to_string(x.join("stemcell.MF")).unwrap();
    check(
        mf.lines()
            .any(|l| l == "operating_system: debian-bookworm-armhf"),
        format!("stemcell.MF: {mf}"),
    );
}
