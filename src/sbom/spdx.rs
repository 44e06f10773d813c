//! The SPDX 2.3 JSON document of an [`Inventory`].

use serde_json::{json, Value};

use super::{generic_purl, purl, rfc3339, Inventory};

/// A valid SPDX element id from `parts` (letters, digits, `.` and `-` only).
fn spdx_id(parts: &[&str]) -> String {
    let body: String = parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{body}")
}

/// A deterministic identity of the inventory (for the namespace and serial number).
pub fn fingerprint(inv: &Inventory) -> String {
    let mut text = format!("{}\n{}\n", inv.name, inv.version);
    for p in &inv.packages {
        text.push_str(&format!("{} {} {}\n", p.name, p.version, p.arch));
    }
    for c in &inv.components {
        text.push_str(&format!("{} {:?}\n", c.record.name, c.sha256));
    }
    crate::image::uuid_from(&text)
}

/// The document.
pub fn document(inv: &Inventory) -> Value {
    let mut packages = Vec::new();
    let mut relationships = Vec::new();
    for (i, p) in inv.packages.iter().enumerate() {
        let id = spdx_id(&["Package", &i.to_string(), &p.name, &p.arch]);
        packages.push(json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "supplier": "NOASSERTION",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": p.license.as_deref().unwrap_or("NOASSERTION"),
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("built package from: {} {}", p.source.0, p.source.1),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl(&inv.distro, p),
            }],
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": id,
        }));
    }
    for (i, c) in inv.components.iter().enumerate() {
        let r = &c.record;
        let id = spdx_id(&["Component", &i.to_string(), &r.name]);
        let download = if r.origin.contains("://") {
            r.origin.clone()
        } else {
            "NOASSERTION".into()
        };
        let mut pkg = json!({
            "SPDXID": id,
            "name": r.name,
            "versionInfo": r.version,
            "supplier": "NOASSERTION",
            "downloadLocation": download,
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("{} from {} (input sha256 {}){}, installed as {}", r.kind, r.origin, r.input_sha256, patched(&r.patches), r.path),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": generic_purl(r),
            }],
        });
        if let Some(sha) = &c.sha256 {
            pkg["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": sha }]);
        }
        packages.push(pkg);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}", inv.name, inv.version),
        "documentNamespace": format!(
            "https://pistemcell.invalid/spdx/{}-{}-{}",
            inv.name,
            inv.version,
            fingerprint(inv)
        ),
        "creationInfo": {
            "created": rfc3339(inv.epoch),
            "creators": [format!("Tool: pistemcell-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// `, patched with NAME sha256:HEX; …` for a component built with the project's patches.
fn patched(patches: &[String]) -> String {
    match patches.is_empty() {
        true => String::new(),
        false => format!(", patched with {}", patches.join("; ")),
    }
}
