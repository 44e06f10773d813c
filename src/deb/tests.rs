use super::build::{ar_bytes, DebBuilder, Kind, Packing, TestEntry};
use super::*;
use std::process::Command;

fn sample(packing: Packing) -> DebBuilder {
    let mut b = DebBuilder::new("hello", "1.0-1", "arm64");
    b.fields("Depends: libc6 (>= 2.36)\n")
        .script("postinst", "#!/bin/sh\nset -e\necho configured\n")
        .control_file("conffiles", b"/etc/hello.conf\n", 0o644)
        .control_file(
            "md5sums",
            b"d41d8cd98f00b204e9800998ecf8427e  usr/bin/hello\n",
            0o644,
        )
        .dir("./", 0o755)
        .dir("./usr/", 0o755)
        .dir("./usr/bin/", 0o755)
        .file("./usr/bin/hello", b"#!/bin/sh\necho hello\n", 0o755)
        .dir("./etc/", 0o755)
        .file("./etc/hello.conf", b"greeting=hi\n", 0o644)
        .symlink("./usr/bin/hi", "hello")
        .hardlink("./usr/bin/hello2", "./usr/bin/hello")
        .compression(packing);
    b
}

fn write(dir: &Path, name: &str, b: &DebBuilder) -> PathBuf {
    let path = dir.join(name);
    b.write(&path).unwrap();
    path
}

const ALL: [Packing; 4] = [Packing::None, Packing::Gzip, Packing::Xz, Packing::Zstd];

#[test]
fn reads_control_and_data_in_every_compression() {
    let dir = tempfile::tempdir().unwrap();
    for packing in ALL {
        let path = write(
            dir.path(),
            &format!("h{}.deb", packing.suffix()),
            &sample(packing),
        );
        let deb = Deb::open(&path).unwrap();
        assert_eq!(deb.data_member(), format!("data.tar{}", packing.suffix()));
        assert_eq!(
            deb.control_member(),
            format!("control.tar{}", packing.suffix())
        );
        let control = deb.control_text().unwrap();
        assert!(
            control.starts_with("Package: hello\nVersion: 1.0-1\n"),
            "{control}"
        );
        assert!(control.contains("Depends: libc6 (>= 2.36)\n"));
        let files = deb.control_files().unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["control", "postinst", "conffiles", "md5sums"]);
        let postinst = &files[1];
        assert_eq!(postinst.1, b"#!/bin/sh\nset -e\necho configured\n");
        assert_eq!(postinst.2 & 0o7777, 0o755);
        assert_eq!(files[2].2 & 0o7777, 0o644);
        assert_eq!(
            deb.data_paths().unwrap(),
            [
                "/.",
                "/usr",
                "/usr/bin",
                "/usr/bin/hello",
                "/etc",
                "/etc/hello.conf",
                "/usr/bin/hi",
                "/usr/bin/hello2"
            ]
        );
        let mut archive = deb.data_archive().unwrap();
        let mut found = false;
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if &*entry.path_bytes() == b"./usr/bin/hello" {
                let mut s = String::new();
                entry.read_to_string(&mut s).unwrap();
                assert_eq!(s, "#!/bin/sh\necho hello\n");
                found = true;
            }
        }
        assert!(found);
    }
}

#[test]
fn list_path_matches_dpkg() {
    assert_eq!(list_path("./"), "/.");
    assert_eq!(list_path("."), "/.");
    assert_eq!(list_path("./usr/bin/"), "/usr/bin");
    assert_eq!(list_path("usr/lib/x.so"), "/usr/lib/x.so");
    assert_eq!(list_path("./etc/a b"), "/etc/a b");
}

#[test]
fn gnu_ar_names_with_slash_and_odd_sizes_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample(Packing::Gzip);
    let control = Packing::Gzip.compress(&b.control_tar().unwrap()).unwrap();
    let data = Packing::Gzip.compress(&b.data_tar().unwrap()).unwrap();
    // An odd-sized member exercises the 2-byte alignment padding.
    let odd: &[u8] = b"odd";
    let bytes = ar_bytes(&[
        ("debian-binary/", b"2.0\n"),
        ("_extra/", odd),
        ("control.tar.gz/", &control),
        ("data.tar.gz/", &data),
    ]);
    let path = dir.path().join("gnu.deb");
    std::fs::write(&path, bytes).unwrap();
    let deb = Deb::open(&path).unwrap();
    let names: Vec<&str> = deb.members().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["debian-binary", "_extra", "control.tar.gz", "data.tar.gz"]
    );
    assert_eq!(deb.members()[1].size, 3);
    assert!(deb.control_text().unwrap().contains("Package: hello"));
    assert_eq!(deb.data_paths().unwrap().len(), 8);
}

#[test]
fn dpkg_deb_accepts_builder_output() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        eprintln!("SKIP: dpkg-deb is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for packing in ALL {
        let mut b = sample(packing);
        let long = format!("./usr/share/{}", "n".repeat(150));
        b.dir("./usr/share/", 0o755)
            .entry(TestEntry::new(&long, Kind::File(b"x".to_vec()), 0o4755).owner(0, 5))
            .entry(
                TestEntry::new("./usr/bin/cap", Kind::File(b"c".to_vec()), 0o755)
                    .xattr("user.test", b"v"),
            )
            .entry(TestEntry::new("./dev-null", Kind::Char(1, 3), 0o666))
            .entry(TestEntry::new("./fifo", Kind::Fifo, 0o600));
        let path = write(dir.path(), &format!("d{}.deb", packing.suffix()), &b);
        let info = Command::new("dpkg-deb")
            .arg("--info")
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(
            info.status.success(),
            "{packing:?}: {}",
            String::from_utf8_lossy(&info.stderr)
        );
        assert!(text.contains(" Package: hello"), "{text}");
        assert!(text.contains("postinst"), "{text}");
        let field = Command::new("dpkg-deb")
            .arg("--field")
            .arg(&path)
            .arg("Depends")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&field.stdout).trim(),
            "libc6 (>= 2.36)"
        );
        let contents = Command::new("dpkg-deb")
            .arg("--contents")
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&contents.stdout);
        assert!(
            contents.status.success(),
            "{}",
            String::from_utf8_lossy(&contents.stderr)
        );
        assert!(text.contains("./usr/bin/hello\n"), "{text}");
        assert!(text.contains("./usr/bin/hi -> hello"), "{text}");
        assert!(
            text.contains("./usr/bin/hello2 link to ./usr/bin/hello"),
            "{text}"
        );
        assert!(text.contains(&"n".repeat(150)), "{text}");
        assert!(text.contains("-rwsr-xr-x root/5"), "{text}");
        let dev = text.lines().find(|l| l.ends_with(" ./dev-null")).unwrap();
        assert!(
            dev.starts_with("crw-rw-rw- root/root") && dev.contains(" 1,3 "),
            "{dev}"
        );
        assert!(text.contains("prw-------"), "{text}");
        // dpkg-deb extracts it too (the device node needs root).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP dpkg-deb --extract: device nodes need root");
            continue;
        }
        let out = dir.path().join(format!("x{}", packing.suffix()));
        let x = Command::new("dpkg-deb")
            .arg("--extract")
            .arg(&path)
            .arg(&out)
            .output()
            .unwrap();
        assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
        let hello2 = std::fs::read(out.join("usr/bin/hello2")).unwrap();
        assert_eq!(hello2, b"#!/bin/sh\necho hello\n");
    }
}

#[test]
fn reads_a_deb_written_by_dpkg_deb() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        eprintln!("SKIP: dpkg-deb is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        "Package: real\nVersion: 2\nArchitecture: all\nMaintainer: T <t@example.org>\nDescription: d\n",
    )
    .unwrap();
    std::fs::write(tree.join("usr/bin/real"), "r").unwrap();
    for z in ["gzip", "xz", "zstd", "none"] {
        let path = dir.path().join(format!("real-{z}.deb"));
        let st = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Z", z, "--build"])
            .arg(&tree)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let deb = Deb::open(&path).unwrap();
        assert!(deb.control_text().unwrap().starts_with("Package: real\n"));
        assert_eq!(
            deb.data_paths().unwrap(),
            ["/.", "/usr", "/usr/bin", "/usr/bin/real"]
        );
    }
}

fn assert_err<T: std::fmt::Debug>(r: Result<T, DebError>, path: &Path, needle: &str) -> DebError {
    let e = r.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(needle), "expected `{needle}` in: {msg}");
    e
}

#[test]
fn not_a_deb_and_bad_members_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("text.deb");
    std::fs::write(&p, "hello world, not an archive").unwrap();
    assert!(matches!(
        assert_err(Deb::open(&p), &p, "not a .deb"),
        DebError::NotAr { .. }
    ));

    let p = dir.path().join("empty.deb");
    std::fs::write(&p, "").unwrap();
    assert_err(Deb::open(&p), &p, "not a .deb");

    let p = dir.path().join("missing.deb");
    assert!(matches!(Deb::open(&p), Err(DebError::Io { .. })));

    let p = dir.path().join("v3.deb");
    std::fs::write(&p, ar_bytes(&[("debian-binary", b"3.0\n")])).unwrap();
    assert_err(Deb::open(&p), &p, "declares format `3.0`");

    let p = dir.path().join("order.deb");
    std::fs::write(
        &p,
        ar_bytes(&[("control.tar", b""), ("debian-binary", b"2.0\n")]),
    )
    .unwrap();
    assert_err(Deb::open(&p), &p, "not the first member");

    let p = dir.path().join("nodata.deb");
    let control = sample(Packing::None).control_tar().unwrap();
    std::fs::write(
        &p,
        ar_bytes(&[("debian-binary", b"2.0\n"), ("control.tar", &control)]),
    )
    .unwrap();
    assert_err(Deb::open(&p), &p, "no `data.tar*` member");

    let p = dir.path().join("bz2.deb");
    let members: [(&str, &[u8]); 3] = [
        ("debian-binary", b"2.0\n"),
        ("control.tar", &control),
        ("data.tar.bz2", b"BZh91AY&SY"),
    ];
    std::fs::write(&p, ar_bytes(&members)).unwrap();
    let e = assert_err(
        Deb::open(&p),
        &p,
        "`data.tar.bz2` uses an unsupported compression",
    );
    assert!(matches!(e, DebError::Unsupported { .. }));

    let p = dir.path().join("liar.deb");
    let members: [(&str, &[u8]); 3] = [
        ("debian-binary", b"2.0\n"),
        ("control.tar", &control),
        ("data.tar.xz", b"this is not xz at all"),
    ];
    std::fs::write(&p, ar_bytes(&members)).unwrap();
    let deb = Deb::open(&p).unwrap();
    assert_err(deb.data_paths(), &p, "`data.tar.xz` is corrupt");

    let p = dir.path().join("badsize.deb");
    let mut bytes = ar_bytes(&[("debian-binary", b"2.0\n")]);
    bytes[8 + 48] = b'x';
    std::fs::write(&p, bytes).unwrap();
    assert_err(Deb::open(&p), &p, "bad size field");
}

#[test]
fn hostile_control_member_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = sample(Packing::Gzip);
    b.control_file("../../etc/evil", b"x", 0o755);
    let p = write(dir.path(), "evilctl.deb", &b);
    let deb = Deb::open(&p).unwrap();
    assert_err(deb.control_files(), &p, "not a plain file name");
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for packing in ALL {
        let mut b = sample(packing);
        b.file("./usr/bin/big", &vec![7u8; 20_000], 0o644);
        let full = b.to_bytes().unwrap();
        let p = dir.path().join("cut.deb");
        std::fs::write(&p, &full).unwrap();
        // Only the final alignment byte (if any) may go missing without harm.
        let last = Deb::open(&p).unwrap().members().last().cloned().unwrap();
        let end = (last.offset + last.size) as usize;
        let mut len = 0;
        while len < end {
            std::fs::write(&p, &full[..len]).unwrap();
            let result = Deb::open(&p).and_then(|d| {
                d.control_files()?;
                d.data_paths()
            });
            let e = result.expect_err(&format!("{packing:?}: cut at {len} was accepted"));
            assert!(e.to_string().contains(&p.display().to_string()), "{e}");
            len += if len < 200 { 1 } else { 97 };
        }
    }
}

#[test]
fn corrupted_compressed_data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // Incompressible content so a flipped byte lands in real data.
    let mut noise = Vec::with_capacity(100_000);
    let mut x: u32 = 12345;
    for _ in 0..100_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push((x >> 16) as u8);
    }
    for packing in [Packing::Gzip, Packing::Xz] {
        let mut b = sample(packing);
        b.file("./usr/bin/noise", &noise, 0o644);
        let mut bytes = b.to_bytes().unwrap();
        let p = dir.path().join("corrupt.deb");
        std::fs::write(&p, &bytes).unwrap();
        let deb = Deb::open(&p).unwrap();
        let data = deb
            .members()
            .iter()
            .find(|m| m.name.starts_with("data"))
            .unwrap();
        let mid = (data.offset + data.size / 2) as usize;
        bytes[mid] ^= 0x55;
        std::fs::write(&p, &bytes).unwrap();
        let deb = Deb::open(&p).unwrap();
        let member = deb.data_member().to_string();
        assert_err(deb.data_paths(), &p, &format!("`{member}` is corrupt"));
    }
}
