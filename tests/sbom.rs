//! SBOMs made from a rootfs: exactly the packages dpkg has installed (not those only
//! configured or removed), their source package, the license their machine-readable copyright
//! file states (and none where it states none), purls with epochs and `+` encoded, and monit
//! and the agent from their records with the sha256 of the installed file. Both documents are
//! checked by the reference validators (spdx-tools' `pyspdxtools`, cyclonedx-python-lib's
//! strict JSON schema validator) when `PISTEMCELL_TEST_SBOM_PYTHON` names a Python that has
//! them (`.ci/run` makes one); without it those checks skip with the reason.

mod support;

use std::path::Path;
use std::process::Command;

fn rootfs(root: &Path) {
    for d in ["var/lib/dpkg", "etc", "var/vcap/bosh/bin"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("var/lib/dpkg/status"),
        "Package: libstdc++6\nStatus: install ok installed\nArchitecture: armhf\nSource: gcc-12 (12.2.0-14)\nVersion: 1:12.2.0-14+deb12u1\n\n\
         Package: bash\nStatus: install ok installed\nArchitecture: armhf\nVersion: 5.2.15-2+b2\n\n\
         Package: base-files\nStatus: install ok installed\nArchitecture: armhf\nVersion: 12.4\n\n\
         Package: gone\nStatus: deinstall ok config-files\nArchitecture: armhf\nVersion: 1\n\n\
         Package: half\nStatus: install ok half-configured\nArchitecture: armhf\nVersion: 1\n",
    )
    .unwrap();
    let doc = |name: &str, text: &str| {
        let d = root.join("usr/share/doc").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("copyright"), text).unwrap();
    };
    doc(
        "bash",
        "Format: https://example.invalid/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: 1987-2022 Free Software Foundation\nLicense: GPL-3+\n",
    );
    doc(
        "libstdc++6",
        "Format: https://example.invalid/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-3+ with GCC-exception-3.1\n",
    );
    doc(
        "base-files",
        "This is the Debian prepackaged version of base-files.\n",
    );
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Debian GNU/Linux\"\nID=debian\n",
    )
    .unwrap();
    std::fs::write(root.join("var/vcap/bosh/bin/monit"), b"monit binary").unwrap();
    pistemcell::record::write(
        root,
        &pistemcell::record::Component {
            name: "monit".into(),
            version: "5.2.5".into(),
            path: "/var/vcap/bosh/bin/monit".into(),
            kind: "source".into(),
            origin: "https://example.invalid/monit-5.2.5.tar.gz".into(),
            input_sha256: "ab".repeat(32),
            patches: Vec::new(),
        },
    )
    .unwrap();
}

#[test]
fn the_sboms_list_what_dpkg_installed_and_the_recorded_components() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    rootfs(&root);
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .args(["-q", "sbom"])
        .arg(&root)
        .arg("-o")
        .arg(&out)
        .args(["--stemcell-name", "bosh-pi", "--stemcell-version", "1.5"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let spdx_path = out.join("sbom.spdx.json");
    let cdx_path = out.join("sbom.cdx.json");
    let spdx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spdx_path).unwrap()).unwrap();
    let cdx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cdx_path).unwrap()).unwrap();

    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert_eq!(spdx["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let pkgs = spdx["packages"].as_array().unwrap();
    let names: Vec<&str> = pkgs.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["base-files", "bash", "libstdc++6", "monit"]);
    let by = |n: &str| pkgs.iter().find(|p| p["name"] == n).unwrap();
    assert_eq!(by("bash")["licenseDeclared"], "GPL-3.0-or-later");
    assert_eq!(by("libstdc++6")["licenseDeclared"], "NOASSERTION");
    assert_eq!(by("base-files")["licenseDeclared"], "NOASSERTION");
    assert_eq!(
        by("libstdc++6")["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/libstdc%2B%2B6@1%3A12.2.0-14%2Bdeb12u1?arch=armhf"
    );
    assert_eq!(
        by("libstdc++6")["sourceInfo"],
        "built package from: gcc-12 12.2.0-14"
    );
    let monit_sha =
        pistemcell::archive::cache::file_sha256(&root.join("var/vcap/bosh/bin/monit")).unwrap();
    assert_eq!(
        by("monit")["checksums"][0]["checksumValue"],
        monit_sha.as_str()
    );
    assert_eq!(
        by("monit")["downloadLocation"],
        "https://example.invalid/monit-5.2.5.tar.gz"
    );

    assert_eq!(cdx["specVersion"], "1.5");
    let comps = cdx["components"].as_array().unwrap();
    assert_eq!(comps.len(), 4);
    let monit = comps.iter().find(|c| c["name"] == "monit").unwrap();
    assert_eq!(monit["hashes"][0]["content"], monit_sha.as_str());
    assert_eq!(monit["type"], "application");
    let bash = comps.iter().find(|c| c["name"] == "bash").unwrap();
    assert_eq!(bash["licenses"][0]["license"]["id"], "GPL-3.0-or-later");

    // The same rootfs gives the same files.
    let again = dir.path().join("again");
    let o = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .args(["-q", "sbom"])
        .arg(&root)
        .arg("-o")
        .arg(&again)
        .args(["--stemcell-name", "bosh-pi", "--stemcell-version", "1.5"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success());
    for f in ["sbom.spdx.json", "sbom.cdx.json"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap()
        );
    }
    support::validate_sboms(&spdx_path, &cdx_path);

    // Not a rootfs: the error names the dpkg database it looked for.
    let o = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .args(["sbom"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("var/lib/dpkg/status"));
}
