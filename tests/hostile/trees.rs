//! Classes 3 and 4 for `sbom` and `audit`: a tree (or a tarball of one) whose dpkg database,
//! copyright files, component records and dpkg file lists point at host files, at devices or
//! FIFOs, or are huge. Every case: exit 1 with the file named (or exit 0 with nothing of the
//! host's in the output), no hang, nothing left in TMPDIR.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use super::common::{tar_of, Case, RawEntry};

const T: Duration = Duration::from_secs(60);

/// A host file's content no output may carry.
const HOST_SECRET: &str = "host-secret-7f3a9c\n";
/// A license only the host's copyright file states.
const HOST_LICENSE: &str = "WTFPL";

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A small valid rootfs: one package with a DEP-5 copyright, its file list, os-release.
fn tree(case: &Case) -> std::path::PathBuf {
    let root = case.input("rootfs");
    write(
        &root,
        "var/lib/dpkg/status",
        "Package: bash\nStatus: install ok installed\nArchitecture: armhf\nVersion: 5.2\n",
    );
    write(
        &root,
        "usr/share/doc/bash/copyright",
        "Format: https://example.invalid/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-3+\n",
    );
    write(&root, "var/lib/dpkg/info/bash.list", "/.\n/usr/bin/bash\n");
    write(&root, "etc/os-release", "ID=debian\n");
    root
}

/// A host file outside the tree, and a host "package doc dir" with a DEP-5 copyright.
fn host_files(case: &Case) -> (std::path::PathBuf, std::path::PathBuf) {
    let secret = case.input("secret");
    std::fs::write(&secret, HOST_SECRET).unwrap();
    let doc = case.input("hostdoc");
    std::fs::create_dir_all(&doc).unwrap();
    std::fs::write(
        doc.join("copyright"),
        format!("Format: https://example.invalid/copyright-format/1.0/\n\nFiles: *\nLicense: {HOST_LICENSE}\n"),
    )
    .unwrap();
    (secret, doc)
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

use super::common::mkfifo;

/// A character device like /dev/zero (1, 5); false when not root (the case is skipped).
fn mkzero(p: &Path) -> bool {
    if !is_root() {
        eprintln!("SKIPPED: mknod needs root");
        return false;
    }
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(p);
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let dev = libc::makedev(1, 5);
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, dev) },
        0
    );
    true
}

fn record(root: &Path, name: &str, path: &str) {
    write(
        root,
        &format!("var/lib/pistemcell/components/{name}"),
        &format!(
            "Name: {name}\nVersion: 1\nPath: {path}\nKind: binary\nOrigin: x\nInput-SHA256: {}\n",
            "ab".repeat(32)
        ),
    );
}

/// Runs `sbom ROOT -o OUT`; returns the run and everything written to OUT.
fn sbom(case: &Case, input: &Path) -> (super::common::Run, String) {
    let out = case.root().join("out");
    let run = case.run(
        &[
            "-q",
            "sbom",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        T,
    );
    let mut written = String::new();
    for e in std::fs::read_dir(&out).unwrap() {
        written.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap_or_default());
    }
    (run, written)
}

/// Asserts a clean sbom failure naming `needles`, with no output and nothing left behind.
#[track_caller]
fn sbom_fails(case: &Case, input: &Path, needles: &[&str]) {
    let (run, written) = sbom(case, input);
    run.fails_with(needles);
    assert!(
        written.is_empty(),
        "sbom wrote output on failure: {written}"
    );
    case.tmp_is_empty();
}

#[test]
fn sbom_refuses_package_names_that_are_paths_or_not_debian_names() {
    // (Package field, what the error says): each a case.
    let cases: &[(&str, &str)] = &[
        ("HOSTDOC", "is not a Debian package name"),
        ("../../../in/hostdoc", "is not a Debian package name"),
        ("", "without a `Package:` name"),
        ("Bash", "is not a Debian package name"),
        ("a", "is not a Debian package name"),
        ("x\u{1b}[31mred", "x\\x1b[31mred"),
        ("-x", "is not a Debian package name"),
    ];
    for (name, needle) in cases {
        let case = Case::new();
        let root = tree(&case);
        let (_, doc) = host_files(&case);
        let name = name.replace("HOSTDOC", doc.to_str().unwrap());
        write(
            &root,
            "var/lib/dpkg/status",
            &format!("Package: bash\nStatus: install ok installed\nArchitecture: armhf\nVersion: 5.2\n\nPackage: {name}\nStatus: install ok installed\nArchitecture: armhf\nVersion: 1\n"),
        );
        let (run, written) = sbom(&case, &root);
        run.fails_with(&["paragraph 2", needle, "var/lib/dpkg/status"]);
        assert!(!run.stderr().contains('\u{1b}'), "raw escape in the error");
        assert!(!written.contains(HOST_LICENSE), "{written}");
        assert!(written.is_empty());
        case.tmp_is_empty();
    }
}

#[test]
fn sbom_refuses_a_record_path_that_leaves_the_image() {
    for path in ["../../..", "/../../../../in/secret", "/a/../../in/secret"] {
        let case = Case::new();
        let root = tree(&case);
        host_files(&case);
        record(&root, "monit", path);
        sbom_fails(&case, &root, &["component record", "monit"]);
    }
}

#[test]
fn sbom_resolves_links_of_the_image_inside_it() {
    // Absolute links to host files resolve inside the tree: absent, so nothing of the host's
    // (its license, its file's sha256, its records) gets into the SBOM.
    let case = Case::new();
    let root = tree(&case);
    let (secret, doc) = host_files(&case);
    std::fs::remove_dir_all(root.join("usr/share/doc/bash")).unwrap();
    symlink(&doc, root.join("usr/share/doc/bash")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    symlink(&secret, root.join("usr/bin/monit")).unwrap();
    record(&root, "monit", "/usr/bin/monit");
    let (run, written) = sbom(&case, &root);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(written.contains("\"bash\""), "{written}");
    assert!(!written.contains(HOST_LICENSE), "{written}");
    let host_sha = sha256_hex(HOST_SECRET.as_bytes());
    assert!(
        !written.contains(&host_sha),
        "the host file's sha256 is in the SBOM"
    );
    case.tmp_is_empty();

    // The records directory itself a link to the host's: resolved inside, absent.
    let case = Case::new();
    let root = tree(&case);
    let host_records = case.input("host-records");
    std::fs::create_dir_all(&host_records).unwrap();
    std::fs::write(host_records.join("hostcomp"), "Name: hostcomp\nPath: /x\n").unwrap();
    std::fs::create_dir_all(root.join("var/lib/pistemcell")).unwrap();
    symlink(&host_records, root.join("var/lib/pistemcell/components")).unwrap();
    let (run, written) = sbom(&case, &root);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(!written.contains("hostcomp"), "{written}");
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn sbom_reads_only_regular_files_of_the_image() {
    // (file made special, how, what the error names): each a case.
    type Make = fn(&Path) -> bool;
    let fifo: Make = |p| {
        mkfifo(p);
        true
    };
    let zero: Make = mkzero;
    let link_zero: Make = |p| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(p);
        symlink("/dev/zero", p).unwrap();
        true
    };
    let cases: &[(&str, Make, &[&str])] = &[
        ("var/lib/dpkg/status", fifo, &["dpkg database", "is a FIFO"]),
        (
            "var/lib/dpkg/status",
            zero,
            &["dpkg database", "is a character device"],
        ),
        // /dev/zero of the image: absent there, so no dpkg database.
        ("var/lib/dpkg/status", link_zero, &["has no dpkg database"]),
        (
            "usr/share/doc/bash/copyright",
            fifo,
            &["copyright file of package bash", "is a FIFO"],
        ),
        (
            "usr/share/doc/bash/copyright",
            zero,
            &["copyright file of package bash", "is a character device"],
        ),
        (
            "var/lib/pistemcell/components/monit",
            fifo,
            &["component record", "is a FIFO"],
        ),
        (
            "var/lib/pistemcell/components/monit",
            link_zero,
            &["component record", "is a symlink"],
        ),
        (
            "usr/bin/monit",
            fifo,
            &["component record", "monit", "is a FIFO"],
        ),
        (
            "usr/bin/monit",
            zero,
            &["component record", "monit", "is a character device"],
        ),
        ("etc/os-release", fifo, &["/etc/os-release", "is a FIFO"]),
    ];
    for (rel, make, needles) in cases {
        let case = Case::new();
        let root = tree(&case);
        if !rel.starts_with("var/lib/pistemcell") {
            record(&root, "monit", "/usr/bin/monit");
            write(&root, "usr/bin/monit", "monit");
        }
        if !make(&root.join(rel)) {
            continue;
        }
        let (run, written) = sbom(&case, &root);
        assert!(run.took < Duration::from_secs(20), "{rel}: {:?}", run.took);
        run.fails_with(needles);
        assert!(written.is_empty(), "{rel}: {written}");
        case.tmp_is_empty();
    }
}

#[test]
fn sbom_refuses_a_dpkg_database_over_its_cap() {
    let case = Case::new();
    let root = tree(&case);
    // Sparse: 65 MiB on paper, nothing on disk.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("var/lib/dpkg/status"))
        .unwrap();
    f.set_len(65 << 20).unwrap();
    sbom_fails(&case, &root, &["dpkg database", "over the", "limit"]);
}

#[test]
fn sbom_refuses_an_os_release_id_that_is_no_id() {
    let case = Case::new();
    let root = tree(&case);
    write(&root, "etc/os-release", "ID=\"x/../../y?a=b\"\n");
    sbom_fails(&case, &root, &["os-release", "is not an os-release ID"]);
}

#[test]
fn sbom_of_a_tarball_with_special_files_fails_cleanly() {
    let status =
        b"Package: bash\nStatus: install ok installed\nArchitecture: armhf\nVersion: 5.2\n";
    // (name, type, link, what the error says): what stands at a metadata path in the tarball.
    type Special<'a> = (&'a [u8], tar::EntryType, Option<&'a [u8]>, &'a str);
    let cases: &[Special] = &[
        (
            b"var/lib/dpkg/status",
            tar::EntryType::Fifo,
            None,
            "is a FIFO",
        ),
        (
            b"var/lib/dpkg/status",
            tar::EntryType::Symlink,
            Some(b"/etc/passwd"),
            "has no dpkg database",
        ),
        (
            b"usr/share/doc/bash/copyright",
            tar::EntryType::Fifo,
            None,
            "is a FIFO",
        ),
        (
            b"usr/share/doc/bash/copyright",
            tar::EntryType::Char,
            None,
            "is a character device",
        ),
    ];
    for (name, kind, link, needle) in cases {
        if *kind == tar::EntryType::Char && !is_root() {
            continue;
        }
        let case = Case::new();
        let mut entries: Vec<RawEntry> = vec![
            (b"var/", tar::EntryType::Directory, b"", None),
            (b"var/lib/", tar::EntryType::Directory, b"", None),
            (b"var/lib/dpkg/", tar::EntryType::Directory, b"", None),
            (b"usr/", tar::EntryType::Directory, b"", None),
            (b"usr/share/", tar::EntryType::Directory, b"", None),
            (b"usr/share/doc/", tar::EntryType::Directory, b"", None),
            (b"usr/share/doc/bash/", tar::EntryType::Directory, b"", None),
        ];
        if *name != b"var/lib/dpkg/status" {
            entries.push((
                b"var/lib/dpkg/status",
                tar::EntryType::Regular,
                status,
                None,
            ));
        }
        entries.push((name, *kind, b"", *link));
        let tgz = case.input("rootfs.tgz");
        std::fs::write(&tgz, tar_of(&entries, true)).unwrap();
        let (run, written) = sbom(&case, &tgz);
        run.fails_with(&[needle]);
        assert!(!written.contains("root:"), "{written}");
        assert!(written.is_empty());
        case.tmp_is_empty();
    }
}

#[test]
fn audit_reads_only_regular_dpkg_file_lists() {
    type Make = fn(&Path) -> bool;
    let fifo: Make = |p| {
        mkfifo(p);
        true
    };
    let zero: Make = mkzero;
    let link_zero: Make = |p| {
        let _ = std::fs::remove_file(p);
        symlink("/dev/zero", p).unwrap();
        true
    };
    for (make, needle) in [
        (fifo, "is a FIFO"),
        (zero, "is a character device"),
        (link_zero, "is a symlink"),
    ] {
        let case = Case::new();
        let root = tree(&case);
        if !make(&root.join("var/lib/dpkg/info/bash.list")) {
            continue;
        }
        let run = case.run(&["-q", "audit", root.to_str().unwrap()], T);
        assert!(run.took < Duration::from_secs(20), "{:?}", run.took);
        run.fails_with(&["bash.list", needle]);
        case.tmp_is_empty();
    }
}

#[test]
fn audit_resolves_the_dpkg_info_directory_inside_the_tree() {
    // The image's /var/lib/dpkg/info is a link to a host directory whose list claims the
    // image's x86 program: resolved inside, absent, so no host package is named.
    let case = Case::new();
    let root = tree(&case);
    std::fs::remove_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    let host_info = case.input("host-info");
    std::fs::create_dir_all(&host_info).unwrap();
    std::fs::write(host_info.join("hostpkg.list"), "/usr/bin/prog\n").unwrap();
    symlink(&host_info, root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let host_true = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    std::fs::copy(host_true, root.join("usr/bin/prog")).unwrap();
    // A FIFO among the programs is not opened (no hang).
    mkfifo(&root.join("usr/bin/fifo"));
    let run = case.run(&["-q", "audit", root.to_str().unwrap()], T);
    assert!(run.took < Duration::from_secs(20), "{:?}", run.took);
    assert!(run.code() == 0 || run.code() == 1, "{}", run.stderr());
    assert!(!run.stderr().contains("panicked"));
    assert!(!run.stdout().contains("hostpkg"), "{}", run.stdout());
    if std::env::consts::ARCH != "arm" {
        assert!(
            run.stdout().contains("/usr/bin/prog (not from a package)"),
            "{}",
            run.stdout()
        );
    }
    case.tmp_is_empty();
}

#[test]
fn audit_of_a_tarball_with_a_fifo_list_fails_cleanly() {
    let case = Case::new();
    let entries: Vec<RawEntry> = vec![
        (b"var/", tar::EntryType::Directory, b"", None),
        (b"var/lib/", tar::EntryType::Directory, b"", None),
        (b"var/lib/dpkg/", tar::EntryType::Directory, b"", None),
        (b"var/lib/dpkg/info/", tar::EntryType::Directory, b"", None),
        (
            b"var/lib/dpkg/info/bash.list",
            tar::EntryType::Fifo,
            b"",
            None,
        ),
    ];
    let tar = case.input("rootfs.tar");
    std::fs::write(&tar, tar_of(&entries, false)).unwrap();
    let run = case.run(&["-q", "audit", tar.to_str().unwrap()], T);
    run.fails_with(&["bash.list", "is a FIFO"]);
    case.tmp_is_empty();
}

#[test]
fn sbom_refuses_more_installed_packages_than_its_cap() {
    let case = Case::new();
    let root = tree(&case);
    let status: String = (0..50_001)
        .map(|i| format!("Package: p{i}\nStatus: install ok installed\nVersion: 1\n\n"))
        .collect();
    write(&root, "var/lib/dpkg/status", &status);
    sbom_fails(
        &case,
        &root,
        &["paragraph 50001", "more than 50000 installed packages"],
    );
}

#[test]
fn audit_refuses_file_lists_naming_more_paths_than_its_cap() {
    // 1,000,001 short lines (about 8 MB, under the list's size cap): refused by count.
    let case = Case::new();
    let root = tree(&case);
    let list: String = (0..1_000_001).map(|i| format!("/{i:x}\n")).collect();
    write(&root, "var/lib/dpkg/info/bash.list", &list);
    let run = case.run(&["-q", "audit", root.to_str().unwrap()], T);
    run.fails_with(&["bash.list", "more than 1000000 paths"]);
    case.tmp_is_empty();
}
