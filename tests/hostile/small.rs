//! Class 9 (smaller ones): an ARM ELF whose attributes cannot be read, keyrings that are
//! directories, devices or garbage, one-word spec fields given as lists, deeply nested spec
//! YAML, and `doctor --mirror`. Each case builds its input and runs the real command.

use std::path::Path;
use std::time::Duration;

use super::common::Case;

const T: Duration = Duration::from_secs(60);

/// A 32-bit little-endian hard-float ARM executable: header, then `attrs` (the
/// `.ARM.attributes` content), then a section table of a null entry and the attributes entry.
/// `table` overrides (e_shoff, e_shentsize, e_shnum) to damage it.
fn arm_elf(attrs: &[u8], table: Option<(u32, u16, u16)>) -> Vec<u8> {
    let mut f = vec![0u8; 52];
    f[..7].copy_from_slice(b"\x7fELF\x01\x01\x01");
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&40u16.to_le_bytes()); // EM_ARM
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[36..40].copy_from_slice(&0x0500_0400u32.to_le_bytes()); // EABI5, hard float
    f[40..42].copy_from_slice(&52u16.to_le_bytes());
    let attrs_off = f.len() as u32;
    f.extend_from_slice(attrs);
    while !f.len().is_multiple_of(4) {
        f.push(0);
    }
    let shoff = f.len() as u32;
    f.extend_from_slice(&[0u8; 40]);
    let mut sh = [0u8; 40];
    sh[4..8].copy_from_slice(&0x7000_0003u32.to_le_bytes());
    sh[16..20].copy_from_slice(&attrs_off.to_le_bytes());
    sh[20..24].copy_from_slice(&(attrs.len() as u32).to_le_bytes());
    f.extend_from_slice(&sh);
    let (off, entsize, num) = table.unwrap_or((shoff, 40, 2));
    f[32..36].copy_from_slice(&off.to_le_bytes());
    f[46..48].copy_from_slice(&entsize.to_le_bytes());
    f[48..50].copy_from_slice(&num.to_le_bytes());
    f
}

/// A well-formed attributes section saying Tag_CPU_arch `cpu`.
fn attrs_for(cpu: u8) -> Vec<u8> {
    let tags = [6u8, cpu];
    let mut file_sub = vec![1u8];
    file_sub.extend_from_slice(&((tags.len() + 5) as u32).to_le_bytes());
    file_sub.extend_from_slice(&tags);
    let mut sub = b"aeabi\0".to_vec();
    sub.extend_from_slice(&file_sub);
    let mut data = vec![b'A'];
    data.extend_from_slice(&((sub.len() + 4) as u32).to_le_bytes());
    data.extend_from_slice(&sub);
    data
}

fn audit_one(case: &Case, elf: &[u8]) -> super::common::Run {
    let root = case.input("rootfs");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("usr/bin/prog"), elf).unwrap();
    case.run(
        &["-q", "audit", root.to_str().unwrap(), "--cpu", "armv6"],
        T,
    )
}

#[test]
fn an_arm_elf_with_readable_attributes_is_judged_by_them() {
    let case = Case::new();
    let run = audit_one(&case, &arm_elf(&attrs_for(6), None));
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
    let case = Case::new();
    let run = audit_one(&case, &arm_elf(&attrs_for(10), None));
    assert_eq!(run.code(), 1);
    assert!(run.stdout().contains("cpu-arch"), "{}", run.stdout());
}

#[test]
fn an_arm_elf_whose_attributes_cannot_be_read_fails_the_floor() {
    let good = attrs_for(6);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("is malformed", arm_elf(b"B-not-attributes", None)),
        ("is malformed", arm_elf(&good[..good.len() - 3], None)),
        ("ends past the file", arm_elf(&good, Some((1 << 30, 40, 2)))),
        (
            "fewer than ELF's 40",
            arm_elf(&good, Some((0, 8, 2))).into_iter().collect(),
        ),
        ("over the", arm_elf(&good, Some((60, 0xffff, 0xffff)))),
    ];
    for (i, (needle, mut elf)) in cases.into_iter().enumerate() {
        if needle.starts_with("fewer") {
            // e_shoff must be set for the table to count as present.
            elf[32..36].copy_from_slice(&60u32.to_le_bytes());
        }
        let case = Case::new();
        let run = audit_one(&case, &elf);
        let out = run.stdout();
        assert_eq!(run.code(), 1, "case {i}: {out}{}", run.stderr());
        assert!(out.contains("FAIL attributes"), "case {i}: {out}");
        assert!(out.contains(needle), "case {i} lacks `{needle}`: {out}");
        assert!(!run.stderr().contains("panicked"));
        case.tmp_is_empty();
    }
}

#[test]
fn a_huge_sparse_arm_program_is_scanned_in_bounded_memory() {
    // 1 GiB on paper (nothing on disk), no attributes: the Go GOARM scan reads it in chunks
    // under the 512 MiB address-space limit.
    let case = Case::new();
    let root = case.input("rootfs");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let p = root.join("usr/bin/big");
    let mut elf = arm_elf(b"", Some((0, 0, 0)));
    elf[36..40].copy_from_slice(&0x0500_0002u32.to_le_bytes()); // Go's: no float ABI flag
    std::fs::write(&p, &elf).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(1 << 30).unwrap();
    let run = case.run(&["-q", "audit", root.to_str().unwrap()], T);
    assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
    assert!(
        run.stdout().contains("float-abi-unknown"),
        "{}",
        run.stdout()
    );
    case.tmp_is_empty();
}

fn spec_with(case: &Case, text: &str) -> String {
    let p = case.input("spec.yml");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Runs `doctor SPEC` and returns its `keyring` line.
fn doctor_keyring_line(case: &Case, keyring: &str) -> (super::common::Run, String) {
    let spec = spec_with(case, &format!("keyring: {keyring}\n"));
    let run = case.run(&["doctor", &spec], T);
    let line = run
        .stdout()
        .lines()
        .find(|l| l.contains("keyring"))
        .unwrap_or_default()
        .to_string();
    (run, line)
}

#[test]
fn a_keyring_that_is_not_a_file_is_named_for_what_it_is() {
    let case = Case::new();
    let dir = case.input("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = case.input("keys.fifo");
    crate::common::mkfifo(&fifo);
    for (key, needle) in [
        (dir.to_str().unwrap(), "is a directory, not a key file"),
        ("/dev/zero", "is a character device, not a key file"),
        (fifo.to_str().unwrap(), "is a FIFO, not a key file"),
    ] {
        let (run, line) = doctor_keyring_line(&case, key);
        assert_eq!(run.code(), 1);
        assert!(line.starts_with("FAIL"), "{line}");
        assert!(line.contains(needle) && line.contains(key), "{line}");
        assert!(!line.contains("missing"), "{line}");
        assert!(run.took < Duration::from_secs(30));
    }
    case.tmp_is_empty();
}

#[test]
fn a_garbage_key_file_is_not_an_openpgp_key_not_a_missing_tool() {
    let case = Case::new();
    // (content, what the message says): a public-key packet tag then junk, plain junk, empty,
    // an armored block of junk.
    let cases: &[(&[u8], &str)] = &[
        (b"\x99\x00\x0dgarbage-after-a-key-tag", "gpg found no usable OpenPGP public key"),
        (b"just some text\n", "neither an armored nor a binary OpenPGP public key"),
        (b"", "neither an armored nor a binary OpenPGP public key"),
        (
            b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nZ2FyYmFnZQ==\n-----END PGP PUBLIC KEY BLOCK-----\n",
            "not a usable OpenPGP public keyring",
        ),
    ];
    for (i, (content, needle)) in cases.iter().enumerate() {
        let key = case.input(&format!("key{i}.gpg"));
        std::fs::write(&key, content).unwrap();
        let (run, line) = doctor_keyring_line(&case, key.to_str().unwrap());
        assert_eq!(run.code(), 1, "case {i}");
        assert!(line.starts_with("FAIL"), "case {i}: {line}");
        assert!(
            line.contains("not a usable OpenPGP public keyring"),
            "case {i}: {line}"
        );
        assert!(line.contains(needle), "case {i}: {line}");
        assert!(!line.contains("install gnupg"), "case {i}: {line}");
    }
    case.tmp_is_empty();
}

#[test]
fn one_word_spec_fields_name_the_accepted_words() {
    // (spec text, the field, the words): each given a list or a map.
    let cases: &[(&str, &str, &str)] = &[
        (
            "architecture: [armhf]\n",
            "architecture",
            "`armhf` or `arm64`",
        ),
        (
            "architecture: {armhf: 1}\n",
            "architecture",
            "`armhf` or `arm64`",
        ),
        ("cpu: [armv6]\n", "cpu", "`armv6`, `armv7` or `armv8`"),
        (
            "infrastructure: [raw]\n",
            "infrastructure",
            "`bakery`, `raw` or `warden`",
        ),
        (
            "image: {method: [loop]}\n",
            "image.method",
            "`loop` or `rootless`",
        ),
        (
            "architecture: armel\n",
            "architecture",
            "`armhf` or `arm64`",
        ),
    ];
    for (text, field, words) in cases {
        let case = Case::new();
        let spec = spec_with(&case, text);
        let run = case.run(&["stages", &spec], T);
        run.fails_with(&[field, words, "spec.yml"]);
        assert!(!run.stderr().contains("YAML tag"), "{}", run.stderr());
    }
    let case = Case::new();
    let run = case.run(&["stages", "--set", "architecture=[armhf]"], T);
    run.fails_with(&["--set architecture=[armhf]", "`armhf` or `arm64`"]);
}

#[test]
fn deeply_nested_spec_yaml_is_refused_before_parsing() {
    let deep_flow = format!("packages: {}\n", "[".repeat(5000));
    let deep_block: String = (0..200).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
    for text in [deep_flow.as_str(), deep_block.as_str()] {
        let case = Case::new();
        let spec = spec_with(&case, text);
        let run = case.run(&["stages", &spec], T);
        run.fails_with(&["spec.yml", "nested deeper than 64 levels"]);
        assert!(run.took < Duration::from_secs(10), "{:?}", run.took);
    }
    let case = Case::new();
    let value = format!("packages={}", "[".repeat(5000));
    let run = case.run(&["stages", "--set", &value], T);
    run.fails_with(&["--set packages=", "nested deeper than 64 levels"]);
}

#[test]
fn a_spec_path_that_is_not_a_file_is_named() {
    let case = Case::new();
    let dir = case.input("a-dir");
    std::fs::create_dir_all(&dir).unwrap();
    for (path, needle) in [
        ("/dev/zero", "is a character device"),
        (dir.to_str().unwrap(), "is a directory"),
    ] {
        let run = case.run(&["stages", path], T);
        run.fails_with(&[path, needle]);
    }
    let big = case.input("big.yml");
    std::fs::write(&big, "# x\n".repeat(300_000)).unwrap();
    let run = case.run(&["stages", big.to_str().unwrap()], T);
    run.fails_with(&["big.yml", "limit for a spec"]);
}

#[test]
fn doctor_reports_the_mirror_given_with_dash_dash_mirror() {
    let case = Case::new();
    let mirror = "http://127.0.0.1:9/my-mirror";
    let run = case.run(&["--mirror", mirror, "doctor"], T);
    let line = run
        .stdout()
        .lines()
        .find(|l| l.contains(" mirror ") && l.contains("from"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains(&format!("from --mirror: {mirror}")),
        "{}",
        run.stdout()
    );
    assert!(
        !run.stdout().contains("host's apt sources"),
        "{}",
        run.stdout()
    );
    let run = case.run(&["--mirror", "ftp://nowhere", "doctor"], T);
    assert!(run.stdout().contains("FAIL mirror"), "{}", run.stdout());
    assert_eq!(run.code(), 1);
    assert!(Path::new(&case.tmp()).exists());
}
