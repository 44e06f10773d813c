//! Tests of the spec: parsing, defaults, overrides and validation.

use super::*;

fn load_text(text: &str, sets: &[&str]) -> Result<Resolved, SpecError> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    resolve("t.yml".into(), parse("t.yml", text, &sets)?)
}

#[test]
fn empty_spec_is_debian_bookworm_armhf_minbase() {
    let r = load_text("", &[]).unwrap();
    assert_eq!(r.profile.name, "debian-bookworm");
    assert_eq!(r.arch, Arch::Armhf);
    assert_eq!(r.cpu, Cpu::Armv7);
    assert_eq!(r.suite, "bookworm");
    assert_eq!(r.variant, VariantSpec::Minbase);
}

#[test]
fn unknown_key_is_rejected_with_line_and_column() {
    let e = load_text("architecture: arm64\nfrobnicate: 1\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("t.yml"), "{e}");
    assert!(e.contains("unknown field `frobnicate`"), "{e}");
    assert!(e.contains("line 2 column 1"), "{e}");
}

#[test]
fn bad_enum_value_names_the_choices() {
    let e = load_text("architecture: x86\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("armhf") && e.contains("arm64") && e.contains("line 1"),
        "{e}"
    );
}

#[test]
fn set_overrides_the_file() {
    let r = load_text(
        "architecture: armhf\n",
        &["architecture=arm64", "packages=[curl, less]"],
    )
    .unwrap();
    assert_eq!(r.arch, Arch::Arm64);
    assert_eq!(r.cpu, Cpu::Armv8);
    assert_eq!(r.packages, vec!["curl", "less"]);
}

#[test]
fn set_of_unknown_key_or_without_equals_is_an_error() {
    let e = load_text("", &["nope=1"]).unwrap_err().to_string();
    assert!(
        e.contains("--set nope=1") && e.contains("unknown field `nope`"),
        "{e}"
    );
    let e = load_text("", &["architecture"]).unwrap_err().to_string();
    assert!(e.contains("expected key=value"), "{e}");
}

#[test]
fn explicit_package_variant_parses() {
    let r = load_text("variant:\n  packages: [busybox, libc6]\n", &[]).unwrap();
    assert_eq!(
        r.variant,
        VariantSpec::Packages(vec!["busybox".into(), "libc6".into()])
    );
}

#[test]
fn unknown_variant_names_the_choices() {
    let e = load_text("variant: tiny\n", &[]).unwrap_err().to_string();
    assert!(
        e.contains("tiny") && e.contains("minbase") && e.contains("line 1"),
        "{e}"
    );
    let e = load_text("variant: {pkgs: [a]}\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("pkgs") && e.contains("packages"), "{e}");
    let r = load_text("", &["variant=required"]).unwrap();
    assert_eq!(r.variant, VariantSpec::Required);
}

#[test]
fn stemcell_identity_and_infrastructure_have_defaults_and_lookup() {
    let r = load_text("", &[]).unwrap();
    assert_eq!(r.infrastructure, Infrastructure::Bakery);
    assert_eq!(r.stemcell_name, "bosh-pi-bakery-debian-bookworm-armhf");
    assert_eq!(r.lookup("stemcell.version").as_deref(), Some("0.0.1"));
    let r = load_text(
        "stemcell: {version: \"1.10\"}\ninfrastructure: warden\n",
        &[],
    )
    .unwrap();
    assert_eq!(r.lookup("stemcell.version").as_deref(), Some("1.10"));
    assert_eq!(r.lookup("infrastructure").as_deref(), Some("warden"));
    assert_eq!(r.lookup("nope"), None);
    let e = load_text("stemcell: {version: \"1 0\"}\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("stemcell.version"), "{e}");
    let e = load_text("infrastructure: aws\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bakery") && e.contains("line 1"), "{e}");
}

#[test]
fn armv6_needs_raspbian() {
    let e = load_text("cpu: armv6\n", &[]).unwrap_err().to_string();
    assert!(e.contains("raspbian"), "{e}");
    let r = load_text("profile: raspbian-bookworm\n", &[]).unwrap();
    assert_eq!(r.cpu, Cpu::Armv6);
    let e = load_text("profile: raspbian-bookworm\narchitecture: arm64\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no arm64 packages"), "{e}");
}

#[test]
fn bad_values_are_named() {
    let e = load_text("packages: [Foo_Bar]\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("Foo_Bar"), "{e}");
    let e = load_text("mirror: ftp.example/debian\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("http://"), "{e}");
    let e = load_text("keyring_fingerprints: [ABCD]\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("ABCD"), "{e}");
    let e = load_text("profile: fedora\n", &[]).unwrap_err().to_string();
    assert!(e.contains("fedora"), "{e}");
}

#[test]
fn fields_table_has_exactly_the_spec_types_fields() {
    let real = reference::spec_field_paths().unwrap();
    let documented: Vec<&str> = FIELDS.iter().map(|f| f.0).collect();
    let missing: Vec<&String> = real
        .iter()
        .filter(|p| !documented.contains(&p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "src/spec/fields.rs FIELDS lacks these spec fields (add a row for each, then run \
         `PISTEMCELL_BLESS=1 cargo test --test readme`): {missing:?}"
    );
    let stale: Vec<&&str> = documented
        .iter()
        .filter(|p| !real.iter().any(|r| r == *p))
        .collect();
    assert!(
        stale.is_empty(),
        "src/spec/fields.rs FIELDS documents fields the spec types do not have: {stale:?}"
    );
    assert_eq!(documented.len(), real.len(), "FIELDS has duplicate rows");
    for (i, path) in documented.iter().enumerate() {
        assert_eq!(
            *path, real[i],
            "src/spec/fields.rs FIELDS: row {i} should be `{}` (rows follow the types' order)",
            real[i]
        );
    }
}

#[test]
fn fields_table_rows_are_filled_in() {
    for (path, ty, default, meaning) in FIELDS {
        assert!(
            !ty.trim().is_empty() && !default.trim().is_empty() && !meaning.trim().is_empty(),
            "src/spec/fields.rs: `{path}` needs a type, a default and a meaning"
        );
    }
}

#[test]
fn every_documented_path_is_a_set_key() {
    for (path, ..) in FIELDS {
        if path.contains("[]") || path.contains('*') {
            continue;
        }
        if let Err(e) = parse("t.yml", "", &[format!("{path}=x")]) {
            let e = e.to_string();
            assert!(!e.contains("unknown field"), "--set {path}=x: {e}");
        }
    }
}

#[test]
fn dev_tools_default_on_and_operating_system_names_the_architecture() {
    let r = load_text("", &[]).unwrap();
    assert!(r.dev_tools);
    assert_eq!(r.lookup("dev_tools").as_deref(), Some("true"));
    assert_eq!(r.operating_system, "debian-bookworm-armhf");
    assert_eq!(
        r.lookup("stemcell.operating_system").as_deref(),
        Some("debian-bookworm-armhf")
    );
    let r = load_text("dev_tools: false\narchitecture: arm64\n", &[]).unwrap();
    assert!(!r.dev_tools);
    assert_eq!(r.lookup("dev_tools").as_deref(), Some("false"));
    assert_eq!(r.operating_system, "debian-bookworm-arm64");
    let r = load_text("", &["stemcell.operating_system=ubuntu-jammy-pi"]).unwrap();
    assert_eq!(r.operating_system, "ubuntu-jammy-pi");
    for bad in ["''", "Debian", "deb/ian", "'a b'"] {
        let e = load_text("", &[&format!("stemcell.operating_system={bad}")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("stemcell.operating_system") && e.contains("lower-case"),
            "{bad}: {e}"
        );
    }
    let e = load_text("dev_tools: maybe\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("dev_tools") && e.contains("line 1"), "{e}");
}

#[test]
fn raw_partition_card_defaults_on_and_belongs_to_raw() {
    let r = load_text("infrastructure: raw\n", &[]).unwrap();
    assert!(r.partition_card);
    assert_eq!(r.lookup("raw.partition_card").as_deref(), Some("true"));
    let r = load_text("infrastructure: raw\nraw: {partition_card: false}\n", &[]).unwrap();
    assert!(!r.partition_card);
    let r = load_text("", &["infrastructure=raw", "raw.partition_card=false"]).unwrap();
    assert_eq!(r.lookup("raw.partition_card").as_deref(), Some("false"));
    // Another infrastructure: an error naming both, not a setting silently ignored.
    let e = load_text("raw: {partition_card: false}\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("infrastructure: raw") && e.contains("`bakery`"),
        "{e}"
    );
    let e = load_text("infrastructure: raw\nraw: {partition: false}\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("partition"), "{e}");
}
