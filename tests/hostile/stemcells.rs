//! Hostile stemcells for `inspect` and `audit` (issue 16, classes 4, 5, 6b, 7, 9a): members
//! that escape or are not regular files, oversized or deeply nested metadata, an `image` that
//! would fill the disk, scratch left by a killed run, names that drive a terminal. Each case
//! builds its stemcell here and runs the real binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha1::{Digest, Sha1};
use tar::EntryType as T;

use crate::common::{tar_of, Case};

/// The time bound of one run.
pub const LIMIT: Duration = Duration::from_secs(120);

/// One raw member: (name, type, data, link target).
pub type Member<'a> = (&'a [u8], T, &'a [u8], Option<&'a [u8]>);

/// A rootfs tarball (gzip) holding one file per (name, data).
pub fn rootfs_tgz(files: &[(&[u8], &[u8])]) -> Vec<u8> {
    let entries: Vec<Member> = files
        .iter()
        .map(|(n, d)| (*n, T::Regular, *d, None))
        .collect();
    tar_of(&entries, true)
}

/// A manifest BOSH and `inspect` accept for a warden stemcell whose image has `sha1`.
pub fn manifest(sha1: &str) -> String {
    format!(
        "name: bosh-pi\nversion: '1.0'\nbosh_protocol: 1\napi_version: 3\nsha1: {sha1}\noperating_system: debian-bookworm\nstemcell_formats:\n- warden-tarball\ncloud_properties:\n  infrastructure: warden\n  hypervisor: warden\n  name: bosh-pi\n  version: '1.0'\n"
    )
}

/// The hex sha1 of `data`.
pub fn sha1_hex(data: &[u8]) -> String {
    Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A valid warden stemcell's members (manifest and image) followed by `extra`.
pub fn valid_with(image: &[u8], extra: &[Member]) -> Vec<u8> {
    let mf = manifest(&sha1_hex(image));
    let mut entries: Vec<Member> = vec![
        (b"image", T::Regular, image, None),
        (b"stemcell.MF", T::Regular, mf.as_bytes(), None),
    ];
    entries.extend_from_slice(extra);
    tar_of(&entries, true)
}

/// Writes `bytes` to the case's input `name`.
pub fn put(case: &Case, name: &str, bytes: &[u8]) -> PathBuf {
    let p = case.input(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Writes a stemcell (gzip tar) whose `image` member is `len` bytes: `head` then zeros,
/// streamed so the test never holds it in memory.
pub fn stemcell_with_big_image(path: &Path, head: &[u8], len: u64) {
    let f = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mf = manifest("0");
    let mut h = tar::Header::new_gnu();
    h.set_path("stemcell.MF").unwrap();
    h.set_size(mf.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, mf.as_bytes()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("image").unwrap();
    h.set_size(len);
    h.set_mode(0o644);
    h.set_cksum();
    let data = std::io::Read::chain(
        head,
        std::io::Read::take(std::io::repeat(0), len - head.len() as u64),
    );
    b.append(&h, data).unwrap();
    b.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

/// An MBR sector with one Linux (type 83) partition at 1 MiB, `sectors` long.
pub fn mbr(sectors: u32) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    let e = &mut s[446..462];
    e[4] = 0x83;
    e[8..12].copy_from_slice(&2048u32.to_le_bytes());
    e[12..16].copy_from_slice(&sectors.to_le_bytes());
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// Runs `args` in `case` while sampling the disk use of its TMPDIR; returns the run and the
/// peak disk use seen.
pub fn run_measured(case: &Case, args: &[&str]) -> (crate::common::Run, u64) {
    let tmp = case.tmp();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while !s2.load(std::sync::atomic::Ordering::SeqCst) {
            peak = peak.max(du(&tmp));
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    });
    let r = case.run(args, LIMIT);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    (r, sampler.join().unwrap())
}

/// Disk use of `dir` in bytes (allocated blocks, as du counts).
pub fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if let Ok(m) = std::fs::symlink_metadata(e.path()) {
                total += m.blocks() * 512;
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    total
}

/// The hostile member sets every stemcell reader must refuse: (label, members, what the error
/// must name).
pub fn escaping_members() -> Vec<(&'static str, Vec<Member<'static>>, &'static str)> {
    let mf: &'static [u8] = b"name: x\n";
    let img: &'static [u8] = b"\x1f\x8b";
    vec![
        ("dot-dot", vec![(b"../x", T::Regular, b"x", None)], "`../x`"),
        (
            "absolute",
            vec![(b"/etc/cron.d/x", T::Regular, b"x", None)],
            "`/etc/cron.d/x`",
        ),
        (
            "inner dot-dot",
            vec![(b"a/../../x", T::Regular, b"x", None)],
            "`a/../../x`",
        ),
        (
            "manifest symlink",
            vec![(b"stemcell.MF", T::Symlink, b"", Some(b"/etc/passwd"))],
            "a symlink to `/etc/passwd`",
        ),
        (
            "image hard link",
            vec![(b"image", T::Link, b"", Some(b"/etc/shadow"))],
            "a hard link to `/etc/shadow`",
        ),
        (
            "manifest char device",
            vec![(b"stemcell.MF", T::Char, b"", None)],
            "a character device",
        ),
        (
            "manifest fifo",
            vec![(b"stemcell.MF", T::Fifo, b"", None)],
            "a FIFO",
        ),
        (
            "duplicate manifest",
            vec![
                (b"stemcell.MF", T::Regular, mf, None),
                (b"./stemcell.MF", T::Regular, mf, None),
            ],
            "`stemcell.MF` appears twice",
        ),
        (
            "escape sequence in name",
            vec![(b"../\x1b[2Jx\n", T::Regular, b"x", None)],
            "`../\\x1b[2Jx\\n`",
        ),
        (
            "image directory",
            vec![
                (b"image/", T::Directory, b"", None),
                (b"image/x", T::Regular, img, None),
            ],
            "`image/` is a directory",
        ),
    ]
}

/// Asserts a clean refusal of `file`'s run naming `needle`, TMPDIR left empty.
#[track_caller]
fn refused(case: &Case, args: &[&str], needle: &str) {
    let r = case.run(args, LIMIT);
    r.fails_with(&[needle]);
    assert!(
        !r.stderr().contains('\x1b'),
        "raw escape in: {}",
        r.stderr()
    );
    case.tmp_is_empty();
}

#[test]
fn inspect_refuses_members_that_escape_or_are_not_regular_files() {
    let mut n = 0;
    for (label, members, needle) in escaping_members() {
        let case = Case::new();
        let img = rootfs_tgz(&[(b"etc/x", b"1")]);
        let p = put(&case, "s.tgz", &valid_with(&img, &members));
        eprintln!("case: {label}");
        refused(&case, &["inspect", p.to_str().unwrap()], needle);
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn audit_refuses_a_stemcell_whose_members_escape() {
    for (label, members, needle) in escaping_members() {
        // audit reads no member past `image`: the hostile ones come before it.
        let case = Case::new();
        let img = rootfs_tgz(&[(b"etc/x", b"1")]);
        let mut entries = members.clone();
        entries.push((b"image", T::Regular, &img, None));
        let p = put(&case, "s.tgz", &tar_of(&entries, true));
        eprintln!("case: {label}");
        refused(&case, &["audit", p.to_str().unwrap()], needle);
    }
}

#[test]
fn inspect_caps_the_manifest_and_names_member_and_limit() {
    let case = Case::new();
    let big = vec![b' '; 2 << 20];
    let img = rootfs_tgz(&[(b"etc/x", b"1")]);
    let p = put(
        &case,
        "s.tgz",
        &tar_of(
            &[
                (b"stemcell.MF", T::Regular, &big, None),
                (b"image", T::Regular, &img, None),
            ],
            true,
        ),
    );
    refused(
        &case,
        &["inspect", p.to_str().unwrap()],
        "member stemcell.MF: 2097152 bytes, over the 1048576-byte limit",
    );
}

#[test]
fn inspect_caps_provenance_json() {
    let case = Case::new();
    let big = vec![b' '; 40 << 20];
    let img = rootfs_tgz(&[(b"etc/x", b"1")]);
    let p = put(
        &case,
        "s.tgz",
        &valid_with(&img, &[(b"provenance.json", T::Regular, &big, None)]),
    );
    refused(
        &case,
        &["inspect", p.to_str().unwrap()],
        "member provenance.json: 41943040 bytes, over the 33554432-byte limit",
    );
}

#[test]
fn inspect_refuses_deeply_nested_manifest_before_parsing() {
    for (label, yaml) in [
        ("flow", format!("name: {}\n", "[".repeat(100_000))),
        (
            "block",
            (0..200)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect::<String>(),
        ),
    ] {
        let case = Case::new();
        let img = rootfs_tgz(&[(b"etc/x", b"1")]);
        let p = put(
            &case,
            "s.tgz",
            &tar_of(
                &[
                    (b"image", T::Regular, &img, None),
                    (b"stemcell.MF", T::Regular, yaml.as_bytes(), None),
                ],
                true,
            ),
        );
        let r = case.run(&["inspect", p.to_str().unwrap()], Duration::from_secs(20));
        eprintln!("case: {label}");
        r.fails_with(&["member stemcell.MF", "nested deeper than 64 levels"]);
        assert!(r.took < Duration::from_secs(10), "{label}: {:?}", r.took);
        case.tmp_is_empty();
    }
}

#[test]
fn inspect_refuses_a_fifo_or_device_given_as_the_stemcell() {
    let case = Case::new();
    let fifo = case.input("s.tgz");
    crate::common::mkfifo(&fifo);
    let r = case.run(
        &["inspect", fifo.to_str().unwrap()],
        Duration::from_secs(20),
    );
    r.fails_with(&["s.tgz", "is a FIFO, not a regular file"]);
    let r = case.run(&["inspect", "/dev/zero"], Duration::from_secs(20));
    r.fails_with(&["/dev/zero", "is a character device"]);
    case.tmp_is_empty();
}

#[test]
fn inspect_prints_member_names_escaped() {
    let case = Case::new();
    let img = rootfs_tgz(&[(b"etc/x", b"1")]);
    let name: &[u8] = b"notes\n  image (0 bytes)\nok: forged\x1b[2J\xff";
    let p = put(
        &case,
        "s.tgz",
        &valid_with(&img, &[(name, T::Regular, b"n", None)]),
    );
    let r = case.run(&["inspect", p.to_str().unwrap()], LIMIT);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let out = r.stdout();
    assert!(
        out.contains("  notes\\n  image (0 bytes)\\nok: forged\\x1b[2J\\xff (1 bytes)\n"),
        "{out}"
    );
    assert!(!out.contains('\x1b'));
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok:")).count(),
        1,
        "{out}"
    );
    let r = case.run(&["inspect", "--json", p.to_str().unwrap()], LIMIT);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert!(v["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "notes\\n  image (0 bytes)\\nok: forged\\x1b[2J\\xff"));
    case.tmp_is_empty();
}

#[test]
fn audit_refuses_a_zero_image_from_its_first_bytes_without_writing_it() {
    let case = Case::new();
    let p = case.input("zero.tgz");
    stemcell_with_big_image(&p, &[], 2 << 30);
    let r = case.run(&["audit", p.to_str().unwrap()], LIMIT);
    r.fails_with(&[
        "`image` of stemcell",
        "zero.tgz",
        "refused without copying it",
        "it starts 00 00",
    ]);
    case.tmp_is_empty();
}

/// Mounts a tmpfs of `mib` over the case's TMPDIR (root only); unmounted on drop.
pub struct SmallTmp(PathBuf);

impl SmallTmp {
    /// `None` when not root.
    pub fn mount(case: &Case, mib: u64) -> Option<SmallTmp> {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: a small TMPDIR needs root (tmpfs)");
            return None;
        }
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(case.tmp())
            .status()
            .unwrap();
        assert!(st.success());
        Some(SmallTmp(case.tmp()))
    }
}

impl Drop for SmallTmp {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn audit_keeps_a_sparse_disk_image_sparse() {
    // 2 GiB apparent, one sector of data: copied as holes, a few MiB of disk at most.
    let case = Case::new();
    let p = case.input("sparse.tgz");
    stemcell_with_big_image(&p, &mbr(1 << 20), 2 << 30);
    let (r, peak) = run_measured(&case, &["audit", p.to_str().unwrap()]);
    // The partition holds no filesystem: mounting it fails (or, not root, is not tried).
    r.fails_with(&["disk image", "sparse.tgz"]);
    assert!(!r.stderr().contains("free there"), "{}", r.stderr());
    assert!(peak < 16 << 20, "TMPDIR peaked at {peak} bytes");
    case.tmp_is_empty();
}

#[test]
fn audit_checks_free_space_before_filling_a_small_tmpdir() {
    // 300 MiB of data that cannot be holes, on a 128 MiB TMPDIR: refused with the figures.
    let case = Case::new();
    let p = case.input("full.tgz");
    let head: Vec<u8> = mbr(1 << 20)
        .into_iter()
        .chain(std::iter::repeat_n(1u8, 300 << 20))
        .collect();
    stemcell_with_big_image(&p, &head, 301 << 20);
    let Some(_tmp) = SmallTmp::mount(&case, 128) else {
        return;
    };
    let r = case.run(&["audit", p.to_str().unwrap()], LIMIT);
    r.fails_with(&[
        "full.tgz",
        "MiB are free there",
        "kept in reserve",
        "TMPDIR",
    ]);
    case.tmp_is_empty();
}

#[test]
fn a_600_mib_long_name_header_is_refused_before_it_is_held_in_memory() {
    // A GNU long-name record the tar reader would hold in memory whole: every reader refuses
    // it from its header (untrusted::TarGuard), naming the limit.
    let case = Case::new();
    let p = case.input("longname.tgz");
    {
        let f = std::fs::File::create(&p).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(T::GNULongName);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_size(600 << 20);
        h.set_cksum();
        b.append(&h, std::io::Read::take(std::io::repeat(b'a'), 600 << 20))
            .unwrap();
        b.into_inner().unwrap().finish().unwrap().flush().unwrap();
    }
    let s = p.to_str().unwrap();
    for args in [vec!["inspect", s], vec!["diff", s, s], vec!["audit", s]] {
        let r = case.run(&args, LIMIT);
        r.fails_with(&["longname.tgz", "over the 1048576-byte limit"]);
        case.tmp_is_empty();
    }
    let r = case.run(&["boot-test", s], LIMIT);
    r.fails_with(&["longname.tgz", "over the 1048576-byte limit"]);
}
