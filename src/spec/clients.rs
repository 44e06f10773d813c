//! `blobstore_clients:`: the BOSH blobstore clients (`bosh-blobstore-PROVIDER`) the agent runs
//! for the director's blobstore. Upstream installs amd64 builds; nobody publishes ARM ones, so
//! by default each is built from its repository at the commit upstream's stemcells pin, exactly
//! as the agent is. Each provider takes the agent's inputs (`source` or `binary`), or
//! `skip: true` to leave it out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::go_source::{resolve, AgentSource};
use super::inputs::{Agent, Artifact};

/// One blobstore provider: its client's name, repository, pinned release and build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// The provider as the director names it (`dav`).
    pub name: &'static str,
    /// The repository the default client is fetched from.
    pub git: &'static str,
    /// The pinned commit (upstream's release tag).
    pub rev: &'static str,
    /// The release's version (its tag without the `v`).
    pub version: &'static str,
    /// What the repository's `go.mod` module line names.
    pub module: &'static str,
    /// The package `go build` compiles, relative to the tree.
    pub main_package: &'static str,
}

impl Provider {
    /// The client's file name in `/var/vcap/bosh/bin` (`bosh-blobstore-dav`).
    pub fn program(&self) -> String {
        format!("bosh-blobstore-{}", self.name)
    }

    /// The spec field of this provider (`blobstore_clients.dav`).
    pub fn field(&self) -> String {
        format!("blobstore_clients.{}", self.name)
    }
}

/// The providers the agent runs an external client for, with the releases
/// bosh-linux-stemcell-builder's `blobstore_clis` stage pins (all `-X main.version`).
pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "dav",
        git: "https://github.com/cloudfoundry/bosh-davcli",
        rev: "66a1ceb053a0cd5cb990f879917a58c4d8b471b0",
        version: "0.0.372",
        module: "bosh-davcli",
        main_package: "./main",
    },
    Provider {
        name: "s3",
        git: "https://github.com/cloudfoundry/bosh-s3cli",
        rev: "bdf420a57c41610a0bdf3349ab26b97902c1f4aa",
        version: "0.0.324",
        module: "bosh-s3cli",
        main_package: ".",
    },
    Provider {
        name: "gcs",
        git: "https://github.com/cloudfoundry/bosh-gcscli",
        rev: "5da69abeba8845db5faec2a9af4830194d9fa9e3",
        version: "0.0.255",
        module: "bosh-gcscli",
        main_package: ".",
    },
    Provider {
        name: "azure-storage",
        git: "https://github.com/cloudfoundry/bosh-azure-storage-cli",
        rev: "d64577714a6007ec84a40a77072f9b3373dc879c",
        version: "0.0.120",
        module: "bosh-azure-storage-cli",
        main_package: ".",
    },
];

/// The known provider names, for messages: `dav, s3, gcs, azure-storage`.
pub fn known() -> String {
    PROVIDERS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One provider's client as written: the agent's shape, plus `skip`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// A prebuilt client for the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<Artifact>,
    /// The client's source tree, cross-compiled with the host's Go toolchain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<AgentSource>,
    /// Leave this provider's client out of the image.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip: bool,
}

/// A resolved client: the provider and its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The provider.
    pub provider: Provider,
    /// A prebuilt binary or a source tree (the agent's input types).
    pub input: Agent,
}

/// Resolves `blobstore_clients:`: every known provider not skipped, in [`PROVIDERS`]' order;
/// one not mentioned is its pinned release by git. An unknown provider is refused with the
/// known ones.
pub fn resolve_clients(spec: &BTreeMap<String, ClientSpec>) -> Result<Vec<Client>, String> {
    if let Some(bad) = spec
        .keys()
        .find(|k| !PROVIDERS.iter().any(|p| p.name == k.as_str()))
    {
        return Err(format!(
            "`blobstore_clients.{bad}`: no such blobstore provider; the providers are {} (give `{{skip: true}}` to leave one out)",
            known()
        ));
    }
    let mut out = Vec::new();
    for p in PROVIDERS {
        let c = spec.get(p.name).cloned().unwrap_or_default();
        let field = p.field();
        let input = match (c.skip, c.binary, c.source) {
            (true, None, None) => continue,
            (true, ..) => {
                return Err(format!(
                    "`{field}` gives `skip: true` and an input; keep one (remove `skip`, or the `binary`/`source`)"
                ))
            }
            (false, Some(_), Some(_)) => {
                return Err(format!("`{field}` gives both `binary` and `source`; keep one"))
            }
            (false, Some(b), None) => {
                b.check(&format!("{field}.binary"))?;
                Agent::Binary(b)
            }
            (false, None, s) => {
                let mut s = resolve(s.unwrap_or_default(), &field, (p.git, p.rev, p.version))?;
                // The pinned commit from another repository (a mirror) is the same release.
                if s.rev.as_deref() == Some(p.rev) {
                    s.version.get_or_insert_with(|| p.version.into());
                }
                Agent::Source(s)
            }
        };
        out.push(Client {
            provider: *p,
            input,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, c: ClientSpec) -> BTreeMap<String, ClientSpec> {
        BTreeMap::from([(name.to_string(), c)])
    }

    #[test]
    fn the_defaults_are_upstreams_pins_by_git() {
        let all = resolve_clients(&BTreeMap::new()).unwrap();
        let names: Vec<_> = all.iter().map(|c| c.provider.program()).collect();
        assert_eq!(
            names,
            [
                "bosh-blobstore-dav",
                "bosh-blobstore-s3",
                "bosh-blobstore-gcs",
                "bosh-blobstore-azure-storage"
            ]
        );
        for c in &all {
            let Agent::Source(s) = &c.input else {
                panic!("{c:?}")
            };
            assert_eq!(s.git_rev(), Some((c.provider.git, c.provider.rev)));
            assert_eq!(s.version.as_deref(), Some(c.provider.version));
            assert!(super::super::go_source::is_commit_id(c.provider.rev));
        }
    }

    #[test]
    fn a_provider_is_skipped_or_given_a_path_or_a_binary() {
        let skip = ClientSpec {
            skip: true,
            ..Default::default()
        };
        let all = resolve_clients(&with("gcs", skip.clone())).unwrap();
        assert!(all.iter().all(|c| c.provider.name != "gcs") && all.len() == 3);
        let path = ClientSpec {
            source: Some(AgentSource {
                path: "/src/davcli".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let all = resolve_clients(&with("dav", path.clone())).unwrap();
        assert!(
            matches!(&all[0].input, Agent::Source(s) if s.path == "/src/davcli" && s.git.is_none() && s.version.is_none())
        );
        let e = resolve_clients(&with("dav", ClientSpec { skip: true, ..path })).unwrap_err();
        assert!(
            e.contains("`blobstore_clients.dav` gives `skip: true` and an input"),
            "{e}"
        );
        let bad = ClientSpec {
            binary: Some(Artifact {
                path: Some("/x".into()),
                sha256: "zz".into(),
                url: None,
            }),
            ..Default::default()
        };
        let e = resolve_clients(&with("s3", bad)).unwrap_err();
        assert!(e.contains("blobstore_clients.s3.binary.sha256"), "{e}");
    }

    #[test]
    fn a_mirror_of_the_pinned_commit_reports_the_pinned_version() {
        let mirror = |rev: &str| ClientSpec {
            source: Some(AgentSource {
                git: Some("file:///srv/mirror/bosh-s3cli".into()),
                rev: Some(rev.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let version = |c: ClientSpec| match &resolve_clients(&with("s3", c)).unwrap()[1].input {
            Agent::Source(s) => s.version.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            version(mirror(PROVIDERS[1].rev)).as_deref(),
            Some("0.0.324")
        );
        assert_eq!(version(mirror(&"a".repeat(40))), None);
    }

    #[test]
    fn unknown_providers_and_bad_sources_name_the_field() {
        let e = resolve_clients(&with("local", ClientSpec::default())).unwrap_err();
        assert!(
            e.contains("`blobstore_clients.local`") && e.contains("dav, s3, gcs, azure-storage"),
            "{e}"
        );
        let tag = ClientSpec {
            source: Some(AgentSource {
                git: Some("https://example.org/davcli".into()),
                rev: Some("v0.0.372".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = resolve_clients(&with("dav", tag)).unwrap_err();
        assert!(
            e.contains("`blobstore_clients.dav.source.rev: v0.0.372` is not a full commit id"),
            "{e}"
        );
        let local = ClientSpec {
            source: Some(AgentSource {
                git: Some("/src/davcli".into()),
                rev: Some(PROVIDERS[0].rev.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = resolve_clients(&with("dav", local)).unwrap_err();
        assert!(e.contains("`blobstore_clients.dav.source.path`"), "{e}");
    }
}
