//! The ELF audit: every ELF file in a rootfs must run on the target board. Checks are a
//! registry of named rules with a severity ([`CHECKS`]); each finding names the file, what
//! it is, what the target needs and the package that installed it.
//!
//! Firmware for other processors (`/lib/firmware`, `/usr/lib/firmware`, `/boot/firmware`) is
//! not code for the CPU and is not audited.

pub mod elf;
pub mod input;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use elf::{ElfInfo, EF_ARM_ABI_FLOAT_HARD, EF_ARM_ABI_FLOAT_SOFT, EM_AARCH64, EM_ARM};

use crate::spec::{Arch, Cpu};

pub use crate::rules::{Severity, CHECKS};

/// Directories holding firmware for other processors, not audited.
pub const NOT_FOR_THE_CPU: &[&str] = &[
    "/lib/firmware",
    "/usr/lib/firmware",
    "/boot/firmware",
    // raspi-firmware keeps the GPU firmware here and copies it to /boot/firmware.
    "/usr/lib/raspi-firmware",
];

/// One file that does not fit the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Path inside the rootfs (`/usr/bin/x`).
    pub path: String,
    /// The check's name (see [`CHECKS`]).
    pub check: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// What the file is.
    pub found: String,
    /// What the target needs.
    pub needed: String,
    /// The package that installed it, or None when no package did.
    pub package: Option<String>,
    /// Why the finding is accepted (an `audit.allow` entry's reason), when it is.
    pub allowed: Option<String>,
}

/// What an audit found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Regular files looked at.
    pub files: usize,
    /// ELF files among them.
    pub elf_files: usize,
    /// Every finding, sorted by path.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Findings that fail a build (failing checks not accepted by an allow entry).
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Fail && f.allowed.is_none())
    }

    /// Marks the findings `allow` accepts with the entry's reason (the first entry wins).
    pub fn apply_allow(&mut self, allow: &[crate::spec::AllowEntry]) {
        for f in &mut self.findings {
            if let Some(e) = allow.iter().find(|e| e.accepts(&f.path, f.check)) {
                f.allowed = Some(e.reason.clone());
            }
        }
    }

    /// How many files have at least one failing finding.
    pub fn failing_files(&self) -> usize {
        let paths: std::collections::BTreeSet<&str> =
            self.failures().map(|f| f.path.as_str()).collect();
        paths.len()
    }
}

/// Errors walking the tree.
#[derive(Debug, thiserror::Error)]
#[error("auditing {}: {reason}", crate::untrusted::escape_path(path))]
pub struct AuditError {
    /// The path that could not be read.
    pub path: PathBuf,
    /// What went wrong (the I/O error, or why the file is refused).
    pub reason: String,
}

impl AuditError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
        move |e| AuditError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }
}

/// The highest `Tag_CPU_arch`, `Tag_FP_arch` and NEON a CPU floor runs, for 32-bit ARM code.
fn arm_limits(cpu: Cpu) -> (&'static [u64], u64, bool) {
    match cpu {
        // ARM1176JZF-S: ARMv6KZ with VFPv2, no Thumb-2 (v6T2), no NEON.
        Cpu::Armv6 => (&[0, 1, 2, 3, 4, 5, 6, 7, 9], 2, false),
        // Cortex-A7 and later: ARMv7 with VFPv4 and NEON.
        Cpu::Armv7 => (&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], 6, true),
        Cpu::Armv8 => (&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], 8, true),
    }
}

fn describe(info: &ElfInfo) -> String {
    format!(
        "{}-bit {} {}",
        info.bits,
        if info.little_endian { "LE" } else { "BE" },
        elf::machine_name(info.machine)
    )
}

/// Checks one ELF file against the target: (check, found, needed) for each rule it breaks.
pub fn check(info: &ElfInfo, arch: Arch, cpu: Cpu) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    let (bits, machine) = match arch {
        Arch::Armhf => (32, EM_ARM),
        Arch::Arm64 => (64, EM_AARCH64),
    };
    let need = format!("{bits}-bit LE {}", elf::machine_name(machine));
    if info.bits != bits || !info.little_endian || info.machine != machine {
        // A 32-bit ARM helper on an arm64 image is still ARM code; everything else is foreign.
        let armhf_on_arm64 = arch == Arch::Arm64 && info.machine == EM_ARM && info.little_endian;
        if !armhf_on_arm64 {
            out.push(("machine", describe(info), need));
            return out;
        }
    }
    if info.machine != EM_ARM {
        return out;
    }
    let is_program = matches!(info.kind, 2 | 3);
    if info.flags & EF_ARM_ABI_FLOAT_SOFT != 0 || (info.flags >> 24) < 5 && is_program {
        out.push((
            "float-abi",
            format!("soft-float or old-ABI ARM (e_flags {:#x})", info.flags),
            "hard-float EABI5 (armhf)".into(),
        ));
    } else if info.flags & EF_ARM_ABI_FLOAT_HARD == 0 && is_program {
        out.push((
            "float-abi-unknown",
            format!("no float ABI recorded (e_flags {:#x})", info.flags),
            "hard-float EABI5 (armhf)".into(),
        ));
    }
    let (cpus, fp_max, neon) = arm_limits(cpu);
    let floor = format!("{cpu:?}").to_lowercase();
    if let Some(why) = &info.attributes_unreadable {
        out.push((
            "attributes",
            format!("ARM build attributes that cannot be read: {why}"),
            format!("readable attributes showing code for {floor} or older"),
        ));
    }
    if let Some(v) = info.cpu_arch.filter(|v| !cpus.contains(v)) {
        out.push((
            "cpu-arch",
            format!("built for {}", elf::cpu_arch_name(v)),
            format!("code for {floor} or older"),
        ));
    }
    if let Some(v) = info.fp_arch.filter(|v| *v > fp_max) {
        out.push((
            "fp-arch",
            format!("Tag_FP_arch {v}"),
            format!("at most {fp_max} for {floor}"),
        ));
    }
    if let Some(v) = info.simd_arch.filter(|v| *v > 0 && !neon) {
        out.push((
            "neon",
            format!("uses NEON (Tag_Advanced_SIMD_arch {v})"),
            format!("no NEON on {floor}"),
        ));
    }
    out
}

fn severity_of(check: &str) -> Severity {
    CHECKS
        .iter()
        .find(|c| c.0 == check)
        .map_or(Severity::Fail, |c| c.1)
}

/// Audits every regular file under `root` (symlinks are not followed; `/proc`, `/sys`, `/dev`
/// and firmware directories are skipped). The tree may be hostile: files are opened only when
/// regular (never through a symlink, never blocking on a FIFO), and only bounded parts of
/// each are read.
pub fn audit_tree(root: &Path, arch: Arch, cpu: Cpu) -> Result<Report, AuditError> {
    let owners = owners(root)?;
    let mut report = Report::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(AuditError::io(&dir))?;
        for e in rd {
            let e = e.map_err(AuditError::io(&dir))?;
            let path = e.path();
            // Names are kept escaped (`untrusted::escape_bytes`): lossless for any bytes, and
            // a newline or escape sequence in a name cannot forge a report line. Plain UTF-8
            // names, which is every name dpkg lists, are unchanged.
            let rel = {
                use std::os::unix::ffi::OsStrExt;
                let r = path.strip_prefix(root).unwrap_or(&path);
                format!(
                    "/{}",
                    crate::untrusted::escape_bytes(r.as_os_str().as_bytes())
                )
            };
            let ft = e.file_type().map_err(AuditError::io(&path))?;
            if ft.is_dir() {
                let skip = ["/proc", "/sys", "/dev"].contains(&rel.as_str())
                    || NOT_FOR_THE_CPU.contains(&rel.as_str());
                if !skip {
                    stack.push(path);
                }
                continue;
            }
            if !ft.is_file() {
                continue;
            }
            report.files += 1;
            // Checked again on the descriptor: a file swapped for a FIFO is refused.
            let mut f = crate::untrusted::open_regular(&path).map_err(|e| AuditError {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let Some(mut info) = elf::read(&mut f).map_err(AuditError::io(&path))? else {
                continue;
            };
            report.elf_files += 1;
            if info.machine == EM_ARM && info.cpu_arch.is_none() {
                info.cpu_arch = go_cpu_arch(&mut f).map_err(AuditError::io(&path))?;
            }
            for (check, found, needed) in check(&info, arch, cpu) {
                report.findings.push(Finding {
                    package: owners.get(&rel).cloned(),
                    path: rel.clone(),
                    check,
                    severity: severity_of(check),
                    found,
                    needed,
                    allowed: None,
                });
            }
        }
    }
    report
        .findings
        .sort_by(|a, b| a.path.cmp(&b.path).then(a.check.cmp(b.check)));
    Ok(report)
}

/// The `Tag_CPU_arch` equivalent of a Go program's `GOARM` (Go records no ARM build
/// attributes, but its build information names GOARM): 5 → ARMv5TE, 6 → ARMv6, 7 → ARMv7.
/// The file is scanned in 1 MiB chunks: memory stays bounded whatever its size.
pub fn go_cpu_arch<R: std::io::Read + std::io::Seek>(file: &mut R) -> std::io::Result<Option<u64>> {
    const CHUNK: usize = 1 << 20;
    // `\tGOARM=` and its digit: a match may straddle two chunks, so keep the last bytes.
    const KEEP: usize = 8;
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut buf = vec![0u8; CHUNK + KEEP];
    let mut kept = 0;
    loop {
        let n = file.read(&mut buf[kept..])?;
        if n == 0 {
            return Ok(None);
        }
        let have = kept + n;
        let needle = b"\tGOARM=";
        if let Some(i) = memchr::memmem::find(&buf[..have], needle) {
            match buf[..have].get(i + needle.len()) {
                Some(d) if d.is_ascii_digit() => {
                    return Ok(match d - b'0' {
                        5 => Some(4),
                        6 => Some(6),
                        7 => Some(10),
                        _ => None,
                    })
                }
                Some(_) => return Ok(None),
                // The digit is in the next chunk: keep the needle.
                None => {}
            }
        }
        let from = have.saturating_sub(KEEP);
        buf.copy_within(from..have, 0);
        kept = have - from;
    }
}

/// The most paths the dpkg file lists of a tree may name together (a rootfs holds a few
/// hundred thousand files): bounds the memory of the path-to-package map.
pub const OWNED_PATHS_MAX: usize = 1_000_000;

/// Maps each path installed by a package (as found on disk, merged-/usr links resolved) to
/// the package's name, from the rootfs's dpkg database. The `info` directory is resolved
/// inside the tree; each `.list` must be a regular file under `untrusted::RECORD_MAX`.
pub fn owners(root: &Path) -> Result<HashMap<String, String>, AuditError> {
    // Top-level links such as /bin -> usr/bin: packages list /bin/x, the file is /usr/bin/x.
    let mut links: Vec<(String, String)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                let t = target.to_string_lossy().trim_start_matches('/').to_string();
                links.push((
                    format!("/{}/", e.file_name().to_string_lossy()),
                    format!("/{t}/"),
                ));
            }
        }
    }
    let mut map = HashMap::new();
    let rel = "var/lib/dpkg/info";
    let info = crate::inside::resolve(root, rel).map_err(|e| AuditError {
        path: root.join(rel),
        reason: e.to_string(),
    })?;
    let Some(rd) = info.and_then(|i| std::fs::read_dir(i).ok()) else {
        return Ok(map);
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pkg) = name.strip_suffix(".list") else {
            continue;
        };
        let pkg = pkg.split(':').next().unwrap_or(pkg).to_string();
        let text = crate::untrusted::read_text(
            &e.path(),
            crate::untrusted::RECORD_MAX,
            "a dpkg file list",
        )
        .map_err(|err| AuditError {
            path: e.path(),
            reason: format!("{err}; the image's dpkg database is damaged or hostile"),
        })?;
        for line in text.lines() {
            if map.len() == OWNED_PATHS_MAX {
                return Err(AuditError {
                    path: e.path(),
                    reason: format!(
                        "the dpkg file lists name more than {OWNED_PATHS_MAX} paths, the limit; the image's dpkg database is damaged or hostile"
                    ),
                });
            }
            let mut p = line.to_string();
            if let Some((from, to)) = links.iter().find(|(from, _)| p.starts_with(from.as_str())) {
                p = format!("{to}{}", &p[from.len()..]);
            }
            map.insert(p, pkg.clone());
        }
    }
    Ok(map)
}

/// Renders a report for people: one line per finding (`FAIL`, `warn`, or `ok` when an allow
/// entry accepts it, with its reason), then a summary naming `what` was audited.
pub fn to_text(report: &Report, what: &str, arch: Arch, cpu: Cpu) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let sev = match (f.allowed.is_some(), f.severity) {
            (true, _) => "ok  ",
            (false, Severity::Fail) => "FAIL",
            (false, Severity::Warn) => "warn",
        };
        let pkg = f
            .package
            .as_deref()
            .map_or("not from a package".into(), crate::untrusted::escape);
        let allowed = f
            .allowed
            .as_deref()
            .map_or(String::new(), |r| format!(" [allowed: {r}]"));
        out.push_str(&format!(
            "{sev} {:<18} {} ({pkg}): {}, needs {}{allowed}\n",
            f.check, f.path, f.found, f.needed
        ));
    }
    out.push_str(&format!(
        "{what}: {} files, {} ELF, {} that cannot run on {} {}\n",
        report.files,
        report.elf_files,
        report.failing_files(),
        arch.debian(),
        format!("{cpu:?}").to_lowercase()
    ));
    out
}

/// Renders a report as JSON (for `--json` and `audit.json`).
pub fn to_json(report: &Report, arch: Arch, cpu: Cpu) -> String {
    let esc = crate::untrusted::json_string;
    let items: Vec<String> = report
        .findings
        .iter()
        .map(|f| {
            format!(
                "    {{\"path\": {}, \"check\": {}, \"severity\": {}, \"found\": {}, \"needed\": {}, \"package\": {}, \"allowed\": {}}}",
                esc(&f.path),
                esc(f.check),
                esc(if f.severity == Severity::Fail { "fail" } else { "warn" }),
                esc(&f.found),
                esc(&f.needed),
                f.package.as_deref().map_or("null".to_string(), esc),
                f.allowed.as_deref().map_or("null".to_string(), esc)
            )
        })
        .collect();
    format!(
        "{{\n  \"architecture\": {},\n  \"cpu\": {},\n  \"files\": {},\n  \"elf_files\": {},\n  \"failing_files\": {},\n  \"findings\": [\n{}\n  ]\n}}\n",
        esc(arch.debian()),
        esc(&format!("{cpu:?}").to_lowercase()),
        report.files,
        report.elf_files,
        report.failing_files(),
        items.join(",\n")
    )
}

#[cfg(test)]
mod tests;
