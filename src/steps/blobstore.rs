//! The built-in `57-blobstore-clients` stage: an ARM `bosh-blobstore-PROVIDER` in
//! `/var/vcap/bosh/bin` (mode 0755, root) for each provider of `blobstore_clients:` (`dav`,
//! `s3`, `gcs`, `azure-storage` unless skipped), as upstream's `blobstore_clis` stage installs
//! its amd64 builds. The agent runs them for the director's blobstore as
//! `bosh-blobstore-PROVIDER -c CONFIG METHOD SRC DST` and refuses to start without the one its
//! settings name. Each is a prebuilt binary (path or URL with sha256) or built from its source
//! tree exactly as the agent is ([`super::gobuild`], [`super::go_source`]): by default the
//! commit upstream pins, fetched by git once into `CACHE/blobstore-src/COMMIT`. Every binary
//! must be an ELF executable for the target and its CPU floor, and is recorded as a component
//! (provenance and SBOMs). The clients' config files are written by the agent at run time.

use std::path::{Path, PathBuf};

use crate::context::BuildContext;
use crate::pipeline::{PipelineError, Stage};
use crate::spec::clients::{Client, Provider};
use crate::spec::inputs::AgentSource;
use crate::spec::Agent;
use crate::steps::agent::{go_env_text, misfit_of, needed};
use crate::steps::artifact::{self, ArtifactError};
use crate::steps::go_source::{FetchError, Origin};
use crate::steps::gobuild::{self, GoBuildError, GoProgram};

/// The stage's name: after the agent, before the infrastructure stages.
pub const NAME: &str = "57-blobstore-clients";
/// Where the clients live in the image.
pub const BIN_DIR: &str = "/var/vcap/bosh/bin";
/// The cache kind fetched client trees are kept under.
pub const SRC_KIND: &str = "blobstore-src";
/// Bumped when the stage's behaviour changes (part of its cache key).
const FORMAT: &str = "1";

/// Errors of the blobstore clients stage.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An unusable input, tree or toolchain.
    #[error("{0}")]
    Input(String),
    /// A binary could not be fetched.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// A source tree could not be fetched by git.
    #[error(transparent)]
    Fetch(Box<FetchError>),
    /// Building from source failed.
    #[error(transparent)]
    Build(#[from] GoBuildError),
    /// The binary is not for the target.
    #[error("{given} is not a bosh-blobstore-{provider} this image can run: {why}\n  give one built for {needed}: `blobstore_clients.{provider}.source.path` (its source tree, built here with {goenv}), or `blobstore_clients.{provider}.binary`, or leave the provider out with `blobstore_clients.{provider}.skip: true`")]
    Misfit {
        /// What was given.
        given: String,
        /// The provider (`dav`).
        provider: &'static str,
        /// What is wrong with it.
        why: String,
        /// What the target needs.
        needed: String,
        /// The Go environment that builds one.
        goenv: String,
    },
    /// Installing failed.
    #[error("installing {path}: {reason}")]
    Install {
        /// The path in the image.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl From<FetchError> for ClientError {
    fn from(e: FetchError) -> Self {
        ClientError::Fetch(Box::new(e))
    }
}

/// What a closed network can do instead of fetching `p`'s client.
pub fn offline_hint(p: &Provider) -> String {
    let f = p.field();
    format!(
        "on a closed network give a local checkout: --set {f}.source.path=DIR (a {} tree with vendor/) --set {f}.source.go=GO, or --set {f}.binary.path=FILE --set {f}.binary.sha256=HEX, or leave it out: --set {f}.skip=true",
        p.module
    )
}

/// Where `p`'s fetched tree is kept, and its messages.
pub fn origin(p: &Provider) -> Origin {
    Origin {
        kind: SRC_KIND.into(),
        field: format!("{}.source", p.field()),
        hint: offline_hint(p),
    }
}

/// `p`'s client as a Go program (no patches; `-X main.version`, as upstream's CI builds it).
pub fn program(p: &Provider) -> GoProgram {
    GoProgram {
        name: p.program(),
        field: p.field(),
        module: p.module.into(),
        main_package: p.main_package.into(),
        version_var: "main.version".into(),
        cache_kind: format!("blobstore-clients/{}", p.name),
        origin: origin(p),
        patches: Vec::new(),
        patches_digest: String::new(),
    }
}

/// The client's path in the image.
pub fn install_path(p: &Provider) -> String {
    format!("{BIN_DIR}/{}", p.program())
}

/// Checks that the client at `path` runs on the target; `given` describes it for messages.
pub fn check_binary(
    p: &Provider,
    path: &Path,
    given: &str,
    ctx: &BuildContext,
) -> Result<(), ClientError> {
    let (arch, cpu) = (ctx.spec.arch, ctx.spec.cpu);
    match misfit_of(path, given, arch, cpu).map_err(ClientError::Input)? {
        None => Ok(()),
        Some(why) => Err(ClientError::Misfit {
            given: given.into(),
            provider: p.name,
            why,
            needed: needed(arch, cpu),
            goenv: go_env_text(arch, cpu),
        }),
    }
}

/// The built-in blobstore clients stage.
#[derive(Debug, Clone, Default)]
pub struct BlobstoreClientsStage;

fn wrap(e: ClientError) -> PipelineError {
    PipelineError::Build {
        stage: NAME.into(),
        source: Box::new(e),
    }
}

fn local(ctx: &BuildContext, c: &Client, s: &AgentSource) -> Result<AgentSource, ClientError> {
    Ok(super::go_source::localize(
        &ctx.cache_dir,
        &origin(&c.provider),
        s,
    )?)
}

/// The client's binary (fetched or built) and what it was, for messages.
fn binary_of(ctx: &BuildContext, c: &Client) -> Result<(PathBuf, String), ClientError> {
    let field = c.provider.field();
    Ok(match &c.input {
        Agent::Binary(a) => (
            artifact::fetch(&ctx.cache_dir, &format!("{field}.binary"), a)?,
            format!("{field}.binary {}", a.location()),
        ),
        Agent::Source(s) => {
            let l = local(ctx, c, s)?;
            (
                gobuild::build(ctx, &program(&c.provider), &l)?,
                format!("the {} built from {}", c.provider.program(), s.describe()),
            )
        }
    })
}

/// The component record of an installed client.
fn component(ctx: &BuildContext, c: &Client) -> crate::record::Component {
    let (p, path) = (&c.provider, install_path(&c.provider));
    match &c.input {
        Agent::Binary(a) => crate::record::Component {
            name: p.program(),
            version: "unknown".into(),
            path,
            kind: "binary".into(),
            origin: crate::record::origin_of(a),
            input_sha256: a.digest(),
            patches: Vec::new(),
        },
        Agent::Source(s) => crate::record::Component {
            name: p.program(),
            version: gobuild::version_label(s),
            path,
            kind: "go build".into(),
            origin: super::agent::tree_origin(s, p.module),
            input_sha256: local(ctx, c, s)
                .ok()
                .and_then(|l| gobuild::tree_digest(Path::new(&l.path)).ok())
                .unwrap_or_default(),
            patches: Vec::new(),
        },
    }
}

impl Stage for BlobstoreClientsStage {
    fn stemcell_input(&self) -> bool {
        true
    }
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "the BOSH blobstore clients for the target (bosh-blobstore-dav, -s3, -gcs, -azure-storage: checked ARM binaries, or cross-compiled with the host's Go from their pinned commits)"
    }
    fn applies(&self, ctx: &BuildContext) -> bool {
        !ctx.spec.blobstore_clients.is_empty()
    }
    fn skip_reason(&self, ctx: &BuildContext) -> Option<String> {
        (!self.applies(ctx)).then(|| "every provider of `blobstore_clients` is skipped".to_string())
    }
    fn manifest(&self, ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        let spec = &ctx.spec;
        let mut out = vec![
            ("blobstore-clients-format".into(), FORMAT.into()),
            ("target".into(), go_env_text(spec.arch, spec.cpu)),
        ];
        for c in &spec.blobstore_clients {
            // As the agent's: a commit pins the tree; a local tree is hashed whole. The Go
            // version is part of the built binary's cache key (gobuild).
            let input = match &c.input {
                Agent::Binary(a) => format!("binary sha256={}", a.digest()),
                Agent::Source(s) => format!(
                    "source {} version={}",
                    match s.git_rev() {
                        Some((g, r)) => format!("git={g} rev={r}"),
                        None => format!(
                            "tree={}",
                            gobuild::tree_digest(Path::new(&s.path))
                                .unwrap_or_else(|e| format!("unreadable ({e})"))
                        ),
                    },
                    gobuild::version_label(s),
                ),
            };
            out.push((c.provider.program(), input));
        }
        Ok(out)
    }
    fn prepare(&self, ctx: &BuildContext) -> Result<(), PipelineError> {
        // Every provider's problems at once: a closed network names every flag to set.
        let mut problems = Vec::new();
        for c in &ctx.spec.blobstore_clients {
            match &c.input {
                Agent::Binary(a) => {
                    let field = format!("{}.binary", c.provider.field());
                    if let Err(e) = artifact::fetch(&ctx.cache_dir, &field, a) {
                        problems.push(e.to_string());
                    }
                }
                Agent::Source(s) => {
                    if let Some((g, r)) = s.git_rev() {
                        if super::go_source::cached(&ctx.cache_dir, &origin(&c.provider), r)
                            .is_none()
                        {
                            ctx.reporter.step(&format!(
                                "{}: fetching {g} at commit {r}",
                                c.provider.program()
                            ));
                        }
                    }
                    problems.extend(gobuild::problems(&ctx.cache_dir, &program(&c.provider), s));
                }
            }
        }
        problems.dedup();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(wrap(ClientError::Input(problems.join("; also: "))))
        }
    }
    fn has_prebuild(&self) -> bool {
        true
    }
    fn prebuild(&self, ctx: &BuildContext) {
        for c in &ctx.spec.blobstore_clients {
            if crate::interrupt::requested() {
                return;
            }
            let _ = binary_of(ctx, c);
        }
    }
    fn run(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        for c in &ctx.spec.blobstore_clients {
            let (binary, given) = binary_of(ctx, c).map_err(wrap)?;
            check_binary(&c.provider, &binary, &given, ctx).map_err(wrap)?;
            let path = install_path(&c.provider);
            let install = |reason: String| {
                wrap(ClientError::Install {
                    path: path.clone(),
                    reason,
                })
            };
            artifact::install_into(root, &path, &binary, 0o755, 0, 0).map_err(install)?;
            crate::record::write(root, &component(ctx, c)).map_err(install)?;
            ctx.reporter
                .detail(&format!("installed {path} from {given}"));
        }
        Ok(())
    }
}
