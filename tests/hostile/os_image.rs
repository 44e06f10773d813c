//! `build --os-image-from FILE` reads an OS image someone else made: its record is one
//! regular member under the record cap, read before anything is unpacked.

use std::time::Duration;

use super::common::{tar_of, Case};

const META: &[u8] = b"var/lib/pistemcell/os-image.json";

#[test]
fn a_hostile_os_image_record_is_refused_before_anything_is_unpacked() {
    let c = Case::new();
    let reg = tar::EntryType::Regular;
    let huge = vec![b' '; 33 << 20];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "huge-record",
            tar_of(&[(META, reg, &huge, None)], true),
            "over the 33554432-byte limit for a record",
        ),
        (
            "record-symlink",
            tar_of(
                &[(META, tar::EntryType::Symlink, b"", Some(b"/dev/zero"))],
                true,
            ),
            "is not one regular file",
        ),
        (
            "record-fifo",
            tar_of(&[(META, tar::EntryType::Fifo, b"", None)], true),
            "is not one regular file",
        ),
        (
            "two-records",
            tar_of(&[(META, reg, b"{}", None), (META, reg, b"{}", None)], true),
            "is not a pistemcell OS image",
        ),
        (
            "garbage",
            b"\x1f\x8b\x08\x00garbage".to_vec(),
            "unreadable tarball",
        ),
    ];
    for (name, bytes, needle) in cases {
        let p = c.input(&format!("{name}.tgz"));
        std::fs::write(&p, bytes).unwrap();
        let r = c.run(
            &["build", "--os-image-from", p.to_str().unwrap()],
            Duration::from_secs(60),
        );
        r.fails_with(&[&format!("{name}.tgz"), needle]);
        // Nothing of it was unpacked into the work dir.
        let left: Vec<_> = std::fs::read_dir(c.root().join("work"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".partial") || n == "rootfs")
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "{name}: {left:?}");
    }
    c.tmp_is_empty();
}
