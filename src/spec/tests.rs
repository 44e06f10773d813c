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
fn fields_table_documents_every_spec_field() {
    let full = Spec {
        profile: Some("x".into()),
        architecture: Some(Arch::Arm64),
        cpu: Some(Cpu::Armv8),
        suite: Some("s".into()),
        components: Some(vec![]),
        mirror: Some("m".into()),
        keyring: Some("k".into()),
        keyring_fingerprints: Some(vec![]),
        extra_archives: Some(vec![]),
        archive_pin: Some(Default::default()),
        variant: Some(VariantSpec::Minbase),
        packages: vec!["p".into()],
        infrastructure: Some(Infrastructure::Raw),
        stemcell: Some(StemcellSpec {
            name: Some("n".into()),
            version: Some("1.10".into()),
        }),
        monit: Some(MonitSpec {
            version: Some("5.2.5".into()),
            ..Default::default()
        }),
        agent: Some(AgentSpec::default()),
        replacements: [("/x".to_string(), Artifact::default())].into(),
        audit: Some(AuditSpec::default()),
        image: Some(ImageSpec::default()),
    };
    let v = serde_norway::to_value(&full).unwrap();
    let keys: Vec<String> = v
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let documented: Vec<String> = FIELDS.iter().map(|f| f.0.to_string()).collect();
    assert_eq!(keys, documented);
}

#[test]
fn readme_documents_every_spec_field() {
    let readme = include_str!("../../README.md");
    for (name, ..) in super::FIELDS {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "README.md's spec reference lacks `{name}`"
        );
    }
}
