//! Archives that unpack to far more than they hold, and names that try to forge report lines.

use std::time::Duration;

use super::common::Case;

/// A gzip tar holding one GNU sparse file of `real` bytes: one 512-byte chunk at its end.
fn sparse_tarball(real: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(512);
    {
        let g = h.as_gnu_mut().unwrap();
        g.set_real_size(real);
        g.sparse[0].set_offset(real - 512);
        g.sparse[0].set_length(512);
    }
    h.as_old_mut().name[..8].copy_from_slice(b"disk.img");
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &[b'x'; 512][..]).unwrap();
    let raw = b.into_inner().unwrap();
    use std::io::Write;
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    g.write_all(&raw).unwrap();
    g.finish().unwrap()
}

/// Disk blocks in use under `dir`, in bytes.
fn used(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.metadata().unwrap();
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

#[test]
fn a_terabyte_sparse_file_is_refused_from_its_header() {
    let c = Case::new();
    let p = c.input("bomb.tgz");
    std::fs::write(&p, sparse_tarball(1 << 40)).unwrap();
    for args in [
        vec!["audit", p.to_str().unwrap()],
        vec![
            "sbom",
            p.to_str().unwrap(),
            "-o",
            c.root().join("out").to_str().unwrap(),
        ],
        vec!["diff", p.to_str().unwrap(), p.to_str().unwrap()],
    ] {
        let r = c.run(&args, Duration::from_secs(60));
        r.fails_with(&["bomb.tgz", "a sparse file of 1099511627776 bytes, over the"]);
        c.tmp_is_empty();
    }
}

#[test]
fn a_sparse_file_under_the_cap_is_unpacked_with_its_holes() {
    let c = Case::new();
    let p = c.input("sparse.tgz");
    std::fs::write(&p, sparse_tarball(4 << 30)).unwrap();
    // audit unpacks it to scratch; watch the scratch's real size while it runs.
    let tmp = c.tmp();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(used(&tmp));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        }
    });
    let r = c.run(&["audit", p.to_str().unwrap()], Duration::from_secs(120));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak = peak.join().unwrap();
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        peak < 64 << 20,
        "a 4 GiB sparse file took {peak} bytes of scratch"
    );
    c.tmp_is_empty();
}

#[test]
fn audit_prints_a_hostile_file_name_escaped() {
    let c = Case::new();
    let t = c.input("tree");
    std::fs::create_dir_all(t.join("usr/bin")).unwrap();
    // Any x86 ELF fails an ARM audit: the host's own `true` will do.
    let elf = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    let name = "ok\nFAIL forged-line \u{1b}[2J";
    std::fs::copy(elf, t.join("usr/bin").join(name)).unwrap();
    let r = c.run(&["audit", t.to_str().unwrap()], Duration::from_secs(60));
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let out = r.stdout();
    assert!(
        out.contains("/usr/bin/ok\\nFAIL forged-line \\x1b[2J"),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'), "{out}");
    assert!(
        !out.lines().any(|l| l.starts_with("FAIL forged-line")),
        "{out}"
    );
    let r = c.run(
        &["audit", "--json", t.to_str().unwrap()],
        Duration::from_secs(60),
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert!(r.stdout().contains("ok\\\\nFAIL"), "{}", r.stdout());
    assert!(v.is_object() || v.is_array());
}
