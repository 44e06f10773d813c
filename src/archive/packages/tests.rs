//! Tests for `packages`.

use super::*;
use std::io::Write;

const INDEX: &str = "\
Package: libc6
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4
Architecture: arm64
Priority: optional
Multi-Arch: same
Depends: libgcc-s1
Description: GNU C Library
 Contains the standard libraries.
 .
 More text.
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u4_arm64.deb
Size: 2321456
SHA256: 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef

Package: dpkg
Version: 1.21.22
Architecture: arm64
Essential: yes
Priority: required
Pre-Depends: libc6 (>= 2.34), liblzma5 (>= 5.4.0), libzstd1 (>= 1.5.2)
Depends: tar (>= 1.28-1)
Provides: dpkg-dev-tools (= 1.21.22), foo
Filename: pool/main/d/dpkg/dpkg_1.21.22_arm64.deb
Size: 1500000
SHA256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
";

#[test]
fn paragraphs_keep_order_and_join_continuations() {
    let paras = parse_paragraphs("A: 1\nB:\n x\n  y\n\n\n# comment\nC: 3  \n");
    assert_eq!(paras.len(), 2);
    assert_eq!(
        paras[0],
        vec![("A".into(), "1".into()), ("B".into(), "x\n y".into())]
    );
    assert_eq!(field(&paras[1], "c"), Some("3"));
    assert_eq!(field(&paras[1], "A"), None);
}

#[test]
fn relations_parse_alternatives_constraints_and_qualifiers() {
    let r = parse_relations(
        "a (>= 1.0), b | c:any (<< 2~), d [amd64 arm64] <!nocheck>, e:native (=1), f (<2), g (>3),",
    )
    .unwrap();
    assert_eq!(r.len(), 6);
    assert_eq!(
        r[0],
        vec![Dep {
            name: "a".into(),
            arch: None,
            constraint: Some((Relation::Ge, "1.0".into()))
        }]
    );
    assert_eq!(
        r[1][1],
        Dep {
            name: "c".into(),
            arch: Some("any".into()),
            constraint: Some((Relation::Lt, "2~".into()))
        }
    );
    assert_eq!(
        r[2],
        vec![Dep {
            name: "d".into(),
            arch: None,
            constraint: None
        }]
    );
    assert_eq!(r[3][0].arch.as_deref(), Some("native"));
    assert_eq!(r[3][0].constraint, Some((Relation::Eq, "1".into())));
    assert_eq!(r[4][0].constraint, Some((Relation::Le, "2".into())));
    assert_eq!(r[5][0].constraint, Some((Relation::Ge, "3".into())));
    assert_eq!(r[1][1].to_string(), "c:any (<< 2~)");
}

#[test]
fn bad_relations_are_errors() {
    for bad in [
        "a (>= 1.0",
        "a (~ 1)",
        "a (>= )",
        "a b",
        "(>= 1)",
        "a [amd64",
        "a | | b",
    ] {
        assert!(parse_relations(bad).is_err(), "{bad} should fail");
    }
}

#[test]
fn satisfied_by_applies_each_relation() {
    let dep = |rel, v: &str| Dep {
        name: "x".into(),
        arch: None,
        constraint: Some((rel, v.into())),
    };
    assert!(dep(Relation::Ge, "1.0").satisfied_by("1.0"));
    assert!(!dep(Relation::Ge, "1.0").satisfied_by("1.0~rc1"));
    assert!(dep(Relation::Lt, "2").satisfied_by("1.9"));
    assert!(!dep(Relation::Lt, "2").satisfied_by("2"));
    assert!(dep(Relation::Le, "2").satisfied_by("2"));
    assert!(dep(Relation::Eq, "1:2").satisfied_by("1:2"));
    assert!(!dep(Relation::Gt, "1:2").satisfied_by("1:2"));
    assert!(Dep {
        name: "x".into(),
        arch: None,
        constraint: None
    }
    .satisfied_by("0"));
}

#[test]
fn packages_index_parses_all_fields() {
    let pkgs = parse_packages(INDEX, "test-index").unwrap();
    assert_eq!(pkgs.len(), 2);
    let libc = &pkgs[0];
    assert_eq!(libc.name, "libc6");
    assert_eq!(libc.source.as_deref(), Some("glibc (2.36-9+deb12u4)"));
    assert_eq!(libc.multi_arch.as_deref(), Some("same"));
    assert_eq!(libc.size, 2321456);
    assert_eq!(
        libc.sha256,
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert!(!libc.essential);
    let dpkg = &pkgs[1];
    assert!(dpkg.essential);
    assert_eq!(dpkg.priority.as_deref(), Some("required"));
    assert_eq!(dpkg.pre_depends.len(), 3);
    assert_eq!(dpkg.depends[0][0].name, "tar");
    assert_eq!(dpkg.provides.len(), 2);
    assert_eq!(
        dpkg.provides[0].constraint,
        Some((Relation::Eq, "1.21.22".into()))
    );
}

#[test]
fn missing_fields_name_origin_and_package() {
    let text = INDEX.replace("Size: 1500000\n", "");
    let msg = parse_packages(&text, "http://mirror.invalid/Packages.xz")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("http://mirror.invalid/Packages.xz"), "{msg}");
    assert!(msg.contains("`dpkg`") && msg.contains("Size"), "{msg}");

    let text = INDEX.replace("Depends: tar (>= 1.28-1)", "Depends: tar (>= 1.28-1");
    let msg = parse_packages(&text, "idx").unwrap_err().to_string();
    assert!(msg.contains("`dpkg`") && msg.contains("Depends"), "{msg}");

    let msg = parse_packages("Version: 1\n", "idx")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("paragraph 1"), "{msg}");

    let text = INDEX.replace("SHA256: aaaa", "SHA256: zzzz");
    assert!(matches!(
        parse_packages(&text, "idx"),
        Err(PackagesError::InvalidField {
            field: "SHA256",
            ..
        })
    ));
}

#[test]
fn decompress_by_suffix() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(INDEX.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(decompress_index("Packages.gz", &gz).unwrap(), INDEX);

    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(INDEX.as_bytes()).unwrap();
    let xz = xz.finish().unwrap();
    assert_eq!(
        decompress_index("main/binary-arm64/Packages.xz", &xz).unwrap(),
        INDEX
    );

    assert_eq!(
        decompress_index("Packages", INDEX.as_bytes()).unwrap(),
        INDEX
    );
    let err = decompress_index("Packages.xz", b"not xz").unwrap_err();
    assert!(err.to_string().contains("Packages.xz"), "{err}");
    assert!(matches!(
        decompress_index("Packages.bz2", b""),
        Err(PackagesError::UnsupportedCompression { .. })
    ));
}
