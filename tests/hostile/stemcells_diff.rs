//! Hostile stemcells for `diff`, and the scratch sweep of `audit`, `sbom` and `diff` (issue
//! 16, classes 4, 5, 6b, 7): oversized metadata, an `image` that would fill the disk, names
//! that collapse when read lossily or forge report lines, scratch a killed run left.

use std::os::unix::io::AsRawFd;
use std::time::Duration;

use tar::EntryType as T;

use crate::common::{tar_of, Case};
use crate::stemcells::{
    escaping_members, mbr, put, rootfs_tgz, run_measured, stemcell_with_big_image, valid_with,
    LIMIT,
};

/// A second, harmless stemcell to diff against.
fn plain(case: &Case) -> String {
    let img = rootfs_tgz(&[(b"etc/x", b"1")]);
    put(case, "plain.tgz", &valid_with(&img, &[]))
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn diff_refuses_members_that_escape_or_are_not_regular_files() {
    let mut n = 0;
    for (label, members, needle) in escaping_members() {
        let case = Case::new();
        let img = rootfs_tgz(&[(b"etc/x", b"1")]);
        let p = put(&case, "s.tgz", &valid_with(&img, &members));
        eprintln!("case: {label}");
        let r = case.run(&["diff", &plain(&case), p.to_str().unwrap()], LIMIT);
        r.fails_with(&["s.tgz", needle]);
        assert!(!r.stderr().contains('\x1b'));
        case.tmp_is_empty();
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn diff_caps_every_metadata_member() {
    let img = rootfs_tgz(&[(b"etc/x", b"1")]);
    let big = vec![b' '; 33 << 20];
    for (name, needle) in [
        (
            "stemcell.MF",
            "member stemcell.MF: 34603008 bytes, over the 1048576-byte limit",
        ),
        (
            "packages.txt",
            "member packages.txt: 34603008 bytes, over the 33554432-byte limit",
        ),
        (
            "audit.json",
            "member audit.json: 34603008 bytes, over the 33554432-byte limit",
        ),
    ] {
        let case = Case::new();
        let raw = tar_of(
            &[
                (b"image", T::Regular, &img, None),
                (name.as_bytes(), T::Regular, &big, None),
            ],
            true,
        );
        let p = put(&case, "s.tgz", &raw);
        let r = case.run(&["diff", &plain(&case), p.to_str().unwrap()], LIMIT);
        r.fails_with(&["s.tgz", needle]);
        case.tmp_is_empty();
    }
}

#[test]
fn diff_refuses_a_deeply_nested_manifest() {
    let case = Case::new();
    let img = rootfs_tgz(&[(b"etc/x", b"1")]);
    let yaml = format!("a: {}\n", "{b: ".repeat(50_000));
    let raw = tar_of(
        &[
            (b"image", T::Regular, &img, None),
            (b"stemcell.MF", T::Regular, yaml.as_bytes(), None),
        ],
        true,
    );
    let p = put(&case, "s.tgz", &raw);
    let r = case.run(
        &["diff", &plain(&case), p.to_str().unwrap()],
        Duration::from_secs(30),
    );
    r.fails_with(&["member stemcell.MF", "nested deeper than 64 levels"]);
    case.tmp_is_empty();
}

#[test]
fn diff_refuses_a_zero_image_from_its_first_bytes() {
    let case = Case::new();
    let p = case.input("zero.tgz");
    stemcell_with_big_image(&p, &[], 2 << 30);
    let r = case.run(&["diff", &plain(&case), p.to_str().unwrap()], LIMIT);
    r.fails_with(&["zero.tgz", "refused without copying it", "it starts 00 00"]);
    case.tmp_is_empty();
}

#[test]
fn diff_copies_a_sparse_disk_image_sparse() {
    let case = Case::new();
    let p = case.input("sparse.tgz");
    stemcell_with_big_image(&p, &mbr(1 << 20), 2 << 30);
    let a = plain(&case);
    let (r, peak) = run_measured(&case, &["diff", &a, p.to_str().unwrap()]);
    r.fails_with(&["disk image", "sparse.tgz"]);
    assert!(!r.stderr().contains("free there"), "{}", r.stderr());
    assert!(peak < 16 << 20, "TMPDIR peaked at {peak} bytes");
    case.tmp_is_empty();
}

#[test]
fn diff_compares_non_utf8_names_as_bytes() {
    // Two names that a lossy reading makes one (`x\u{fffd}`): B changes only the second.
    let case = Case::new();
    let a = rootfs_tgz(&[(b"x\xff", b"same"), (b"x\xfe", b"old")]);
    let b = rootfs_tgz(&[(b"x\xff", b"same"), (b"x\xfe", b"new")]);
    let pa = put(&case, "a.tgz", &valid_with(&a, &[]));
    let pb = put(&case, "b.tgz", &valid_with(&b, &[]));
    let r = case.run(&["diff", pa.to_str().unwrap(), pb.to_str().unwrap()], LIMIT);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        r.stdout().contains("files: 0 added, 0 removed, 1 changed"),
        "{}",
        r.stdout()
    );
    assert!(
        r.stdout().contains("~ /x\\xfe: content\n"),
        "{}",
        r.stdout()
    );
    let r = case.run(
        &["diff", "--json", pa.to_str().unwrap(), pb.to_str().unwrap()],
        LIMIT,
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    let changed = v["files"]["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{v}");
    assert_eq!(changed[0]["path_hex"], "2f78fe");
    assert_eq!(changed[0]["path"], "/x\\xfe");
    case.tmp_is_empty();
}

#[test]
fn diff_text_cannot_be_forged_by_a_file_name() {
    let case = Case::new();
    let a = rootfs_tgz(&[(b"etc/x", b"1")]);
    let evil: &[u8] = b"etc/y\nfiles: 0 added, 0 removed, 0 changed\n\x1b]0;pwned\x07\x1b[2J";
    let b = rootfs_tgz(&[(b"etc/x", b"1"), (evil, b"2")]);
    let pa = put(&case, "a.tgz", &valid_with(&a, &[]));
    let pb = put(&case, "b.tgz", &valid_with(&b, &[]));
    let r = case.run(&["diff", pa.to_str().unwrap(), pb.to_str().unwrap()], LIMIT);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let out = r.stdout();
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("files:")).count(),
        1,
        "{out}"
    );
    assert!(out.contains("+ /etc/y\\nfiles: 0 added, 0 removed, 0 changed\\n\\x1b]0;pwned\\x07\\x1b[2J (1 bytes)"), "{out}");
    // JSON carries the name exactly.
    let r = case.run(
        &["diff", "--json", pa.to_str().unwrap(), pb.to_str().unwrap()],
        LIMIT,
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(
        v["files"]["added"][0]["path"].as_str().unwrap().as_bytes()[1..],
        *evil
    );
    case.tmp_is_empty();
}

/// A scratch directory as a run killed in the middle leaves it: pid, lock file, a tree.
fn leave_scratch(case: &Case, prefix: &str, pid: u32) -> std::path::PathBuf {
    let d = case.tmp().join(format!("{prefix}{pid}-AbC123"));
    std::fs::create_dir_all(d.join("rootfs/etc")).unwrap();
    std::fs::write(d.join("rootfs/etc/passwd"), "root:x:0:0\n").unwrap();
    std::fs::write(d.join(".pistemcell-lock"), "").unwrap();
    d
}

/// A PID that is certainly dead: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn the_next_audit_sbom_or_diff_sweeps_what_a_killed_run_left() {
    for cmd in ["audit", "sbom", "diff"] {
        let case = Case::new();
        let stale = leave_scratch(&case, "pistemcell-audit-", dead_pid());
        let stale2 = leave_scratch(&case, "pistemcell-diff-", dead_pid());
        // Killed before its lock existed: swept because the pid is gone.
        let nolock = case
            .tmp()
            .join(format!("pistemcell-audit-{}-x", dead_pid()));
        std::fs::create_dir(&nolock).unwrap();
        // Live (its lock is held here) or not ours: kept.
        let live = leave_scratch(&case, "pistemcell-diff-", std::process::id());
        let lock = std::fs::File::open(live.join(".pistemcell-lock")).unwrap();
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let other = case.tmp().join("pistemcell-audit-notapid");
        std::fs::create_dir(&other).unwrap();
        let tree = case.input("tree");
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        let t = tree.to_str().unwrap();
        let out = case.root().join("out").join("sbom");
        let args: Vec<&str> = match cmd {
            "audit" => vec!["audit", t],
            "sbom" => vec!["sbom", t, "-o", out.to_str().unwrap()],
            _ => vec!["diff", t, t],
        };
        let r = case.run(&args, LIMIT);
        assert_ne!(r.code(), 101, "{cmd}: {}", r.stderr());
        assert!(
            !stale.exists() && !stale2.exists() && !nolock.exists(),
            "{cmd}: not swept"
        );
        assert!(
            live.exists() && other.exists(),
            "{cmd}: swept what was not stale"
        );
        drop(lock);
        std::fs::remove_dir_all(&live).unwrap();
        std::fs::remove_dir_all(&other).unwrap();
        case.tmp_is_empty();
    }
}

#[test]
fn a_killed_audit_leaves_scratch_the_next_run_removes() {
    // A rootfs tarball large enough that the audit is still unpacking when it is killed.
    let case = Case::new();
    let names: Vec<Vec<u8>> = (0..20_000)
        .map(|i| format!("usr/share/f{i}").into_bytes())
        .collect();
    let files: Vec<(&[u8], &[u8])> = names.iter().map(|n| (&n[..], &b"data"[..])).collect();
    let p = put(&case, "big.tgz", &rootfs_tgz(&files));
    let bin = env!("CARGO_BIN_EXE_pistemcell");
    let mut child = std::process::Command::new(bin)
        .args(["audit", p.to_str().unwrap()])
        .env("TMPDIR", case.tmp())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    let left = loop {
        let dirs: Vec<_> = std::fs::read_dir(case.tmp()).unwrap().flatten().collect();
        if let Some(d) = dirs.first() {
            if d.path().join("rootfs").exists() {
                break d.path();
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no scratch dir appeared"
        );
        if child.try_wait().unwrap().is_some() {
            eprintln!("SKIPPED: the audit finished before it could be killed");
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(left.exists(), "a killed run cannot clean up");
    let tree = case.input("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    let r = case.run(&["audit", tree.to_str().unwrap()], LIMIT);
    assert_ne!(r.code(), 101, "{}", r.stderr());
    assert!(
        !left.exists(),
        "the next run did not sweep {}",
        left.display()
    );
    case.tmp_is_empty();
}

#[test]
fn audit_and_diff_refuse_a_stemcell_without_leaving_scratch() {
    // An `image` that is a gzip of garbage: refused while reading, scratch removed.
    let case = Case::new();
    let mut junk = vec![0x1f, 0x8b, 8, 0];
    junk.extend(std::iter::repeat_n(0xa5u8, 10_000));
    let p = put(&case, "junk.tgz", &valid_with(&junk, &[]));
    let r = case.run(&["audit", p.to_str().unwrap()], LIMIT);
    r.fails_with(&["junk.tgz"]);
    case.tmp_is_empty();
    let r = case.run(&["diff", &plain(&case), p.to_str().unwrap()], LIMIT);
    r.fails_with(&["junk.tgz"]);
    case.tmp_is_empty();
}

#[test]
fn diff_of_trees_refuses_a_dpkg_database_that_is_not_a_regular_file() {
    let case = Case::new();
    let mut args = Vec::new();
    for (name, make) in [("fifo", "fifo"), ("dir", "dir"), ("huge", "huge")] {
        let t = case.input(name);
        std::fs::create_dir_all(t.join("var/lib/dpkg")).unwrap();
        let status = t.join("var/lib/dpkg/status");
        match make {
            "fifo" => crate::common::mkfifo(&status),
            "dir" => std::fs::create_dir(&status).unwrap(),
            _ => std::fs::File::create(&status)
                .unwrap()
                .set_len(65 << 20)
                .unwrap(),
        }
        args.push((t, make));
    }
    let plain = case.input("plain");
    std::fs::create_dir_all(&plain).unwrap();
    for (t, kind) in &args {
        let r = case.run(
            &["diff", plain.to_str().unwrap(), t.to_str().unwrap()],
            Duration::from_secs(60),
        );
        let needle = match *kind {
            "fifo" => "is a FIFO",
            "dir" => "is a directory",
            _ => "over the 67108864-byte limit for a dpkg database",
        };
        r.fails_with(&["var/lib/dpkg/status", needle]);
    }
    // A tree without a dpkg database simply has no packages.
    let r = case.run(
        &["diff", plain.to_str().unwrap(), plain.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
}
