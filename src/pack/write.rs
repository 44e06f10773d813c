//! Writing the stemcell: the image for the infrastructure, the manifest and the other members
//! in a scratch directory beside the output, packed by the deterministic writer into a
//! temporary file, read back by `inspect`, and only then renamed into place with its `.sha1`
//! and `.sha256` files. A failure leaves nothing behind.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::stemcell::{self, Packed};
use crate::image::disk::{self, ImageOptions};
use crate::spec::{Infrastructure, Resolved};

/// The kernel command line Bakery renders: the root comes over NFS from its server.
pub const BAKERY_CMDLINE: &str = "console=serial0,115200 console=tty1 root=/dev/nfs nfsroot={{.NfsServer}}:{{.NfsRoot}},vers=3 rw ip=dhcp rootwait\n";

/// Errors writing a stemcell; each names the file or step.
#[derive(Debug, thiserror::Error)]
pub enum StemcellError {
    /// The destination is not ours to replace (a device, FIFO, directory, symlink).
    #[error(transparent)]
    Owned(#[from] crate::owned::OwnedError),
    /// Making the disk image failed.
    #[error("making the disk image: {0}")]
    Image(#[from] crate::image::ImageError),
    /// Packing failed.
    #[error(transparent)]
    Pack(#[from] super::tarball::PackError),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The image's dev tools list is not a regular file.
    #[error("reading the image's dev tools list: {0}; it must be a regular file (stage 02-dev-tools writes it) or absent")]
    DevTools(#[source] crate::inside::InsideError),
    /// The SBOMs could not be made from the rootfs.
    #[error("making the SBOMs: {0}")]
    Sbom(String),
    /// The written stemcell does not read back.
    #[error("the stemcell {path} does not read back ({reason}); it was not kept")]
    Check {
        /// The stemcell.
        path: PathBuf,
        /// What `inspect` found.
        reason: String,
    },
    /// What had to pass before the stemcell is written did not (the monit proof).
    #[error("{reason}; the stemcell {path} was not written")]
    Gate {
        /// The stemcell.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// The stemcell member holding `check-os`'s report.
pub const CHECK_OS_MEMBER: &str = "check-os.json";

fn io<'a>(what: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> StemcellError + 'a {
    move |source| StemcellError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the stemcell of `spec` from the finished `rootfs` into `out_dir`.
pub fn write_stemcell(
    spec: &Resolved,
    rootfs: &Path,
    audit_json: Option<&Path>,
    out_dir: &Path,
    epoch: u64,
    threads: usize,
    stages: &[(String, String)],
) -> Result<Packed, StemcellError> {
    let ungated = || Ok(());
    write_stemcell_gated(
        spec, rootfs, audit_json, out_dir, epoch, threads, stages, &ungated,
    )
}

/// [`write_stemcell`], with `gate` called once the stemcell is written and read back and
/// before it is put in place: an error there (what ran beside the packing failed) removes it.
#[allow(clippy::too_many_arguments)]
pub fn write_stemcell_gated(
    spec: &Resolved,
    rootfs: &Path,
    audit_json: Option<&Path>,
    out_dir: &Path,
    epoch: u64,
    threads: usize,
    stages: &[(String, String)],
    gate: &(dyn Fn() -> Result<(), String> + Sync),
) -> Result<Packed, StemcellError> {
    std::fs::create_dir_all(out_dir).map_err(io("creating", out_dir))?;
    // Refused before any work: the stemcell and its sums replace only regular files.
    let final_dest = out_dir.join(stemcell::file_name(spec));
    crate::owned::check_destination(&final_dest)?;
    for ext in ["sha1", "sha256"] {
        crate::owned::check_destination(Path::new(&format!("{}.{ext}", final_dest.display())))?;
    }
    let scratch = tempfile::Builder::new()
        .prefix(crate::workdir::SCRATCH_PREFIX)
        .tempdir_in(out_dir)
        .map_err(io("creating a scratch dir in", out_dir))?;
    let members = scratch.path().join("members");
    std::fs::create_dir(&members).map_err(io("creating", &members))?;
    std::fs::set_permissions(&members, std::fs::Permissions::from_mode(0o755))
        .map_err(io("chmod", &members))?;
    let image = members.join("image");
    let seed = format!("{}/{}", spec.stemcell_name, spec.stemcell_version);
    let disk_opts = |cmdline: Option<String>, fstab: Option<String>| ImageOptions {
        seed: seed.clone(),
        boot_bytes: spec.image.boot_size_mib.unwrap_or(256) << 20,
        root_bytes: spec.image.root_size_mib.map(|m| m << 20),
        epoch,
        boot_dir: spec.profile.boot_dir.clone(),
        cmdline,
        fstab,
        method: match spec.image.method {
            Some(crate::spec::inputs::ImageMethod::Loop) => disk::Method::Loop,
            Some(crate::spec::inputs::ImageMethod::Rootless) => disk::Method::Rootless,
            None => disk::Method::default_for_host(),
        },
    };
    let mut phases = Vec::new();
    let mut clock = std::time::Instant::now();
    let mut lap = |what: &'static str| {
        phases.push((what, clock.elapsed().as_secs_f64()));
        clock = std::time::Instant::now();
    };
    if spec.infrastructure != Infrastructure::Warden {
        let dir = crate::image::boot::dir_in(rootfs, &spec.profile.boot_dir);
        crate::image::boot::check(&dir, &spec.profile.boot_dir)?;
    }
    match spec.infrastructure {
        Infrastructure::Bakery => {
            // Root over NFS: no root line in fstab, and the boot partition is served by TFTP.
            let fstab =
                "# Written by pistemcell: Bakery netboots this image, root comes over NFS.\n"
                    .to_string();
            disk::build(
                rootfs,
                &image,
                &disk_opts(Some(BAKERY_CMDLINE.into()), Some(fstab)),
            )?;
        }
        Infrastructure::Raw => {
            let raw = scratch.path().join("disk.img");
            disk::build(rootfs, &raw, &disk_opts(None, None))?;
            let mut src = std::fs::File::open(&raw).map_err(io("reading", &raw))?;
            let out = std::fs::File::create(&image).map_err(io("creating", &image))?;
            let mut gz = super::pgzip::ParallelGzip::new(std::io::BufWriter::new(out), 6, threads)
                .map_err(io("writing", &image))?;
            std::io::copy(&mut src, &mut gz).map_err(io("compressing", &raw))?;
            gz.finish()
                .and_then(|mut w| w.flush())
                .map_err(io("writing", &image))?;
            std::fs::remove_file(&raw).map_err(io("removing", &raw))?;
        }
        Infrastructure::Warden => {
            super::tarball::write_tgz(rootfs, &image, epoch, 6, threads)?;
        }
    }
    lap("image");
    let sha1 = stemcell::file_sha1(&image).map_err(io("reading", &image))?;
    lap("image sha1");
    let manifest = stemcell::manifest(spec, &sha1);
    let yaml = stemcell::manifest_yaml(&manifest).map_err(|e| StemcellError::Io {
        what: "serializing",
        path: members.join("stemcell.MF"),
        source: std::io::Error::other(e),
    })?;
    let write = |name: &str, data: &[u8]| {
        let p = members.join(name);
        std::fs::write(&p, data).map_err(io("writing", &p))
    };
    write("stemcell.MF", yaml.as_bytes())?;
    write("packages.txt", stemcell::packages_txt(rootfs).as_bytes())?;
    let dev_tools = stemcell::dev_tools_file_list(rootfs).map_err(StemcellError::DevTools)?;
    write(stemcell::DEV_TOOLS_MEMBER, &dev_tools)?;
    let inv = crate::sbom::inventory(rootfs, &spec.stemcell_name, &spec.stemcell_version, epoch)
        .map_err(|e| StemcellError::Sbom(e.to_string()))?;
    crate::sbom::write_both(&inv, &members).map_err(|e| StemcellError::Sbom(e.to_string()))?;
    lap("lists and SBOMs");
    let record = super::provenance::document(spec, rootfs, stages, epoch);
    let mut text = serde_json::to_string_pretty(&record).unwrap_or_default();
    text.push('\n');
    write(super::provenance::NAME, text.as_bytes())?;
    if let Some(a) = audit_json {
        let data = std::fs::read(a).map_err(io("reading", a))?;
        write("audit.json", &data)?;
    }
    // The hardening checks' report travels with the stemcell (the build has already failed
    // on any failure the spec does not accept).
    let os_checks = crate::checkos::run(rootfs, &spec.check_os_allow);
    write(CHECK_OS_MEMBER, os_checks.to_json().as_bytes())?;
    lap("provenance, audit and check-os");
    let dest = out_dir.join(stemcell::file_name(spec));
    let staged = scratch.path().join("stemcell.tgz");
    super::tarball::write_tgz(&members, &staged, epoch, 6, threads)?;
    lap("tgz");
    let checked = super::inspect::inspect(&staged).map_err(|reason| StemcellError::Check {
        path: dest.clone(),
        reason,
    })?;
    lap("read back");
    let (sha1, sha256) = stemcell::file_digests(&staged).map_err(io("reading", &staged))?;
    lap("digests");
    gate().map_err(|reason| StemcellError::Gate {
        path: dest.clone(),
        reason,
    })?;
    lap("waiting for the monit proof");
    crate::owned::check_destination(&dest)?;
    std::fs::rename(&staged, &dest).map_err(io("moving the stemcell to", &dest))?;
    if let Err((p, e)) = crate::atomic::write_sums(&dest, &sha1, &sha256) {
        crate::atomic::remove_with_sums(&dest);
        return Err(io("writing", &p)(e));
    }
    Ok(Packed {
        path: dest,
        sha1,
        sha256,
        manifest: checked.manifest,
        phases,
    })
}
