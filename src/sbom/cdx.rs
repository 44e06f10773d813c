//! The CycloneDX 1.5 JSON document of an [`Inventory`].

use serde_json::{json, Value};

use super::{generic_purl, purl, rfc3339, Inventory};

/// The document.
pub fn document(inv: &Inventory) -> Value {
    let mut components = Vec::new();
    for p in &inv.packages {
        let purl = purl(&inv.distro, p);
        let mut c = json!({
            "type": "library",
            "bom-ref": purl,
            "name": p.name,
            "version": p.version,
            "purl": purl,
            "properties": [
                { "name": "pistemcell:architecture", "value": p.arch },
                { "name": "pistemcell:source-package", "value": format!("{} {}", p.source.0, p.source.1) },
            ],
        });
        if let Some(l) = &p.license {
            c["licenses"] = if l.contains(' ') {
                json!([{ "expression": l }])
            } else {
                json!([{ "license": { "id": l } }])
            };
        }
        components.push(c);
    }
    for i in &inv.components {
        let r = &i.record;
        let purl = generic_purl(r);
        let mut c = json!({
            "type": "application",
            "bom-ref": purl,
            "name": r.name,
            "version": r.version,
            "purl": purl,
            "properties": [
                { "name": "pistemcell:path", "value": r.path },
                { "name": "pistemcell:input", "value": format!("{} {}", r.kind, r.origin) },
                { "name": "pistemcell:input-sha256", "value": r.input_sha256 },
            ],
        });
        if let Some(sha) = &i.sha256 {
            c["hashes"] = json!([{ "alg": "SHA-256", "content": sha }]);
        }
        if r.origin.contains("://") {
            c["externalReferences"] = json!([{ "type": "distribution", "url": r.origin }]);
        }
        if !r.patches.is_empty() {
            // The project's own changes to upstream's source, each with its sha256.
            let patches: Vec<_> = r
                .patches
                .iter()
                .map(|p| {
                    let name = p.split(' ').next().unwrap_or(p);
                    json!({ "type": "unofficial", "diff": { "url": format!("assets/agent/patches/{name}") } })
                })
                .collect();
            c["pedigree"] = json!({ "patches": patches, "notes": format!("patched by pistemcell: {}", r.patches.join("; ")) });
        }
        components.push(c);
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", super::spdx::fingerprint(inv)),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(inv.epoch),
            "tools": { "components": [{
                "type": "application",
                "name": "pistemcell",
                "version": env!("CARGO_PKG_VERSION"),
            }] },
            "component": {
                "type": "operating-system",
                "bom-ref": "stemcell",
                "name": inv.name,
                "version": inv.version,
            },
        },
        "components": components,
    })
}
