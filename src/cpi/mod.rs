//! `pistemcell cpi`: a BOSH CPI (API version 2) for ARM VMs under qemu. One call per run: a
//! JSON request on stdin, the JSON response on stdout, a log on stderr (and in the
//! response's `log`). Stemcells are our disk stemcells (bakery `piimg`, raw `rawdisk-gz`),
//! imported as raw base images; VMs boot qcow2 overlays of them with the image's own kernel,
//! through the same VM layer as `boot-test` (`crate::vm`), and run on after the call as
//! daemons; persistent disks are qcow2 files, attached by restarting the VM. The agent's
//! settings are written into the overlay where the stemcell's agent.json reads them, as
//! Bakery writes a Pi's. Everything lives under the config's `state_dir`.

pub mod config;
pub mod disks;
pub mod machine;
pub mod protocol;
pub mod records;
pub mod stemcells;
pub mod store;
pub mod vms;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use protocol::{Args, Request};
use store::Store;

/// Why a call failed; each maps to a BOSH CPI error type.
#[derive(Debug, thiserror::Error)]
pub enum CpiError {
    /// The request is malformed: not JSON, an unknown method, a wrong argument.
    #[error("{0}")]
    Request(String),
    /// The config file cannot be used.
    #[error("the CPI config {path}: {msg}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The method is not one this CPI implements (snapshots).
    #[error("{0} is not implemented by the pistemcell CPI")]
    NotImplemented(String),
    /// No VM with this id.
    #[error("VM `{0}` not found")]
    VmNotFound(String),
    /// No disk with this id.
    #[error("disk `{0}` not found")]
    DiskNotFound(String),
    /// No stemcell with this id.
    #[error("stemcell `{0}` not found")]
    StemcellNotFound(String),
    /// The cloud cannot do what was asked (a disk attached elsewhere, a stemcell in use).
    #[error("{0}")]
    Cloud(String),
    /// The VM could not be created; `bosh` may try again.
    #[error("creating the VM: {0}")]
    VmCreation(String),
    /// A record in the state dir is damaged.
    #[error("the CPI's state: {0}")]
    State(String),
    /// Reading or writing under the state dir failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The state dir is not ours.
    #[error(transparent)]
    Owned(#[from] crate::owned::OwnedError),
    /// Mounts left by a killed call could not be removed.
    #[error(transparent)]
    Mount(#[from] crate::rootfs::mounts::MountError),
    /// The VM layer failed.
    #[error(transparent)]
    Vm(#[from] crate::vm::VmError),
    /// An external tool failed.
    #[error(transparent)]
    Cmd(#[from] crate::cmd::CmdError),
}

impl CpiError {
    /// The BOSH error type the response carries.
    pub fn bosh_type(&self) -> &'static str {
        match self {
            CpiError::Request(_) | CpiError::Config { .. } => "Bosh::Clouds::CpiError",
            CpiError::NotImplemented(_) => "Bosh::Clouds::NotImplemented",
            CpiError::VmNotFound(_) => "Bosh::Clouds::VMNotFound",
            CpiError::DiskNotFound(_) => "Bosh::Clouds::DiskNotFound",
            CpiError::StemcellNotFound(_) => "Bosh::Clouds::StemcellNotFound",
            CpiError::VmCreation(_) => "Bosh::Clouds::VMCreationFailed",
            _ => "Bosh::Clouds::CloudError",
        }
    }

    /// Whether the caller may retry the call.
    pub fn ok_to_retry(&self) -> bool {
        matches!(self, CpiError::VmCreation(_))
    }
}

/// The API version this CPI speaks.
pub const API_VERSION: u64 = 2;

/// The stemcell formats it imports.
pub const STEMCELL_FORMATS: [&str; 2] = ["piimg", "rawdisk-gz"];

/// One call: the response for the request text, with the config at `config`. `log` gets each
/// log line as it is written (the CLI copies them to stderr).
pub fn call(config: &Path, request: &str, log: &mut dyn FnMut(&str)) -> Value {
    let mut lines = String::new();
    let mut logger = |l: String| {
        log(&l);
        lines.push_str(&l);
        lines.push('\n');
    };
    let result = protocol::parse(request).and_then(|req| dispatch(config, &req, &mut logger));
    match result {
        Ok(v) => protocol::ok(v, &lines),
        Err(e) => {
            logger(format!("error: {e}"));
            protocol::error(&e, &lines)
        }
    }
}

/// What a method gets: the config, the open store and the log.
pub struct Ctx<'a> {
    /// The config.
    pub config: config::Config,
    /// The locked state dir.
    pub store: Store,
    /// The log.
    pub log: &'a mut dyn FnMut(String),
}

fn dispatch(config: &Path, req: &Request, log: &mut dyn FnMut(String)) -> Result<Value, CpiError> {
    log(format!("{} (api_version {})", req.method, req.api_version));
    // `info` and the methods that need no state answer without the config's state dir.
    match req.method.as_str() {
        "info" => {
            Args::of(req, 0)?;
            return Ok(json!({"api_version": API_VERSION, "stemcell_formats": STEMCELL_FORMATS}));
        }
        "calculate_vm_cloud_properties" => {
            return vms::calculate_cloud_properties(&Args::of(req, 1)?)
        }
        "snapshot_disk" | "delete_snapshot" | "current_vm_id" => {
            return Err(CpiError::NotImplemented(req.method.clone()))
        }
        m if !KNOWN.contains(&m) => {
            return Err(CpiError::Request(format!(
                "unknown method `{m}`; this CPI answers {}",
                KNOWN.join(", ")
            )))
        }
        _ => {}
    }
    let config = config::Config::load(config)?;
    let store = Store::open(&config.state_dir, log)?;
    let mut ctx = Ctx { config, store, log };
    let n = |k| Args::of(req, k);
    match req.method.as_str() {
        "create_stemcell" => stemcells::create(&mut ctx, &n(2)?),
        "delete_stemcell" => stemcells::delete(&mut ctx, &n(1)?),
        "create_vm" => vms::create(&mut ctx, &n(6)?, req.api_version),
        "delete_vm" => vms::delete(&mut ctx, &n(1)?),
        "has_vm" => vms::has(&mut ctx, &n(1)?),
        "reboot_vm" => vms::reboot(&mut ctx, &n(1)?),
        "set_vm_metadata" => vms::set_metadata(&mut ctx, &n(2)?),
        "create_disk" => disks::create(&mut ctx, &n(3)?),
        "delete_disk" => disks::delete(&mut ctx, &n(1)?),
        "has_disk" => disks::has(&mut ctx, &n(1)?),
        "attach_disk" => disks::attach(&mut ctx, &n(2)?, req.api_version),
        "detach_disk" => disks::detach(&mut ctx, &n(2)?),
        "get_disks" => disks::get(&mut ctx, &n(1)?),
        "resize_disk" => disks::resize(&mut ctx, &n(2)?),
        "set_disk_metadata" => disks::set_metadata(&mut ctx, &n(2)?),
        other => Err(CpiError::Request(format!("unknown method `{other}`"))),
    }
}

/// Every method this CPI answers (the snapshot methods answer NotImplemented).
pub const KNOWN: [&str; 20] = [
    "info",
    "create_stemcell",
    "delete_stemcell",
    "create_vm",
    "delete_vm",
    "has_vm",
    "reboot_vm",
    "set_vm_metadata",
    "set_disk_metadata",
    "create_disk",
    "delete_disk",
    "attach_disk",
    "detach_disk",
    "has_disk",
    "get_disks",
    "resize_disk",
    "calculate_vm_cloud_properties",
    "snapshot_disk",
    "delete_snapshot",
    "current_vm_id",
];
