//! The deploy proof's test release, generated here (no checked-in tarball): the package
//! `pstc-hello` (a C program built with `make` by its `packaging` script) and the job
//! `pstc-web` that runs it under monit. It yields the blobs and the mbus arguments a director
//! would send for it.
//!
//! Formats, read from bosh-agent (commit 232dc82f):
//! - **Source package blob** (`agent/compiler/concrete_compiler.go`, `compiler_unix.go`): a
//!   tgz unpacked into `/var/vcap/data/compile/NAME`; when it holds `packaging` at its top
//!   the agent runs `bash -x packaging` there with `BOSH_COMPILE_TARGET` (that directory),
//!   `BOSH_INSTALL_TARGET` (`/var/vcap/packages/NAME`, a link into `/var/vcap/data/packages`),
//!   `BOSH_PACKAGE_NAME` and `BOSH_PACKAGE_VERSION`; it then tars the install target, puts it
//!   in the blobstore and answers its id and SHA-1.
//! - **compile_package arguments** (`agent/action/compile_package.go`): `[blobstore_id,
//!   multiple digest, name, version, deps]`, deps a map of name to `{name, version, sha1,
//!   blobstore_id}` of compiled packages.
//! - **Apply spec** (`agent/applier/applyspec/v1_apply_spec.go` and its siblings): jobs come
//!   only from `rendered_templates_archive` (`{blobstore_id, sha1}`), a tgz holding one
//!   `JOB/` directory per entry of `job.templates` (`[{name, version}]`); the agent installs
//!   `JOB/` into `/var/vcap/data/jobs/JOB/VERSION-…` linked from `/var/vcap/jobs/JOB`, makes
//!   `bin/*` mode 0750 and the rest 0640, owner root:vcap (`agent/applier/jobs/owner_fix.go`),
//!   and adds `monit` (and `*.monit`) to monit. No job template blob is fetched. `packages`
//!   maps a name to `{name, version, sha1, blobstore_id}` of a compiled package, installed in
//!   `/var/vcap/data/packages/NAME/VERSION-SHA1` linked from `/var/vcap/packages/NAME`.
//!   `apply` installs nothing unless `configuration_hash` is non-empty
//!   (`agent/action/apply.go`); `deployment`, `name`, `index`, `id`, `az` go to
//!   `/var/vcap/instance`; `networks` is kept as given.

use serde_json::{json, Value};

use super::director::BlobRef;
use super::release_files as files;

/// The package's name.
pub const PACKAGE: &str = "pstc-hello";
/// The package's version.
pub const PACKAGE_VERSION: &str = "0.1";
/// The job's name.
pub const JOB: &str = "pstc-web";
/// The job's version.
pub const JOB_VERSION: &str = "0.1";
/// The deployment's name in the apply spec.
pub const DEPLOYMENT: &str = "pstc-deploy-proof";
/// The instance id in the apply spec.
pub const INSTANCE_ID: &str = "0d4c5e1f-7a2b-4c3d-8e9f-000000000001";
/// Where the job keeps its marker, on the persistent disk once one is mounted.
pub const MARKER_PATH: &str = "/var/vcap/store/pstc-web/marker";
/// The modification time of every tarball entry (2024-01-01T00:00:00Z).
pub const MTIME: u64 = 1_704_067_200;

/// One entry of a generated tarball: a directory (`None`) or a file with its mode.
struct Entry<'a> {
    path: String,
    mode: u32,
    data: Option<&'a [u8]>,
}

fn dir(path: &str) -> Entry<'static> {
    Entry {
        path: format!("{path}/"),
        mode: 0o755,
        data: None,
    }
}

fn file<'a>(path: &str, mode: u32, data: &'a [u8]) -> Entry<'a> {
    Entry {
        path: path.to_string(),
        mode,
        data: Some(data),
    }
}

/// A gzipped tar of `entries` in the given order, root-owned, with [`MTIME`] and a gzip header
/// without time or name: the same bytes on every run.
fn tgz(entries: &[Entry]) -> Vec<u8> {
    let gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        let data = e.data.unwrap_or_default();
        h.set_entry_type(if e.data.is_some() {
            tar::EntryType::Regular
        } else {
            tar::EntryType::Directory
        });
        h.set_size(data.len() as u64);
        // Names are ours and short; writing into a Vec cannot fail.
        h.set_path(&e.path).expect("a short relative tar path");
        h.set_cksum();
        b.append(&h, data).expect("writing a tar into memory");
    }
    let gz = b.into_inner().expect("finishing a tar in memory");
    gz.finish().expect("finishing a gzip in memory")
}

/// The test release for one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRelease {
    port: u16,
}

impl TestRelease {
    /// The release whose job listens on `port` (in the guest, on every address).
    pub fn new(port: u16) -> TestRelease {
        TestRelease { port }
    }

    /// The port the job listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The line the job answers when its marker holds `marker` (`None`: no marker yet).
    pub fn expected_answer(marker: Option<&str>) -> String {
        format!("pstc-hello {}", marker.unwrap_or("none"))
    }

    /// The package's source blob: `packaging`, `pstc-hello/hello.c`, `pstc-hello/Makefile`.
    pub fn package_source_tgz(&self) -> Vec<u8> {
        tgz(&[
            file("packaging", 0o644, files::PACKAGING.as_bytes()),
            dir(PACKAGE),
            file("pstc-hello/Makefile", 0o644, files::MAKEFILE.as_bytes()),
            file("pstc-hello/hello.c", 0o644, files::HELLO_C.as_bytes()),
        ])
    }

    /// The rendered templates archive: `pstc-web/{monit, bin/ctl, bin/pre-start, bin/drain,
    /// config/port}`.
    pub fn rendered_templates_tgz(&self) -> Vec<u8> {
        let port = format!("{}\n", self.port);
        tgz(&[
            dir(JOB),
            file("pstc-web/monit", 0o644, files::MONIT.as_bytes()),
            dir("pstc-web/bin"),
            file("pstc-web/bin/ctl", 0o755, files::CTL.as_bytes()),
            file("pstc-web/bin/drain", 0o755, files::DRAIN.as_bytes()),
            file("pstc-web/bin/pre-start", 0o755, files::PRE_START.as_bytes()),
            dir("pstc-web/config"),
            file("pstc-web/config/port", 0o644, port.as_bytes()),
        ])
    }

    /// The `compile_package` arguments for the source blob stored as `blob_id` with SHA-1
    /// `sha1` (hex): `[blob_id, sha1, "pstc-hello", "0.1", {}]`.
    pub fn compile_args(&self, blob_id: &str, sha1: &str) -> Value {
        json!([blob_id, sha1, PACKAGE, PACKAGE_VERSION, {}])
    }

    /// The apply spec installing the compiled package `compiled` (what `compile_package`
    /// returned) and the job from the rendered templates archive `rendered`. Its `networks`
    /// is a manual network at qemu's user-network address 10.0.2.15; replace it to match the
    /// VM's settings.
    pub fn apply_spec(&self, compiled: &BlobRef, rendered: &BlobRef) -> Value {
        json!({
            "deployment": DEPLOYMENT,
            "name": JOB,
            "index": 0,
            "id": INSTANCE_ID,
            "az": "z1",
            "job": {
                "name": JOB,
                "release": "pstc",
                "template": JOB,
                "version": JOB_VERSION,
                "templates": [{"name": JOB, "version": JOB_VERSION}],
            },
            "packages": {
                PACKAGE: {
                    "name": PACKAGE,
                    "version": PACKAGE_VERSION,
                    "sha1": compiled.sha1,
                    "blobstore_id": compiled.blobstore_id,
                }
            },
            "rendered_templates_archive": {
                "blobstore_id": rendered.blobstore_id,
                "sha1": rendered.sha1,
            },
            // Non-empty, or the agent records the spec without installing anything.
            "configuration_hash": rendered.sha1_hex().unwrap_or(&rendered.sha1),
            "networks": {
                "default": {
                    "type": "manual",
                    "ip": "10.0.2.15",
                    "netmask": "255.255.255.0",
                    "gateway": "10.0.2.2",
                    "default": ["dns", "gateway"],
                    "dns": ["10.0.2.3"],
                }
            },
            "properties": {"logging": {"max_log_file_size": ""}},
            "persistent_disk": 1024,
            "resource_pool": {},
        })
    }
}

#[cfg(test)]
#[path = "release_tests.rs"]
mod tests;
