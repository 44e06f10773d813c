//! The host's own tools, run natively inside a rootfs of another architecture. Under qemu-user
//! every process of a shell script starts an emulator and translates its code again:
//! `mkinitramfs`, which forks a dozen processes per kernel module, took 394–473 s emulated and
//! takes about 20 s with the host's shell, coreutils, findutils, sed, grep, cpio, compressors and
//! kmod (they only read and copy the target's files; the target's own `ldd`, `modprobe` and
//! hook scripts still run emulated, so what lands in the initramfs is the target's).
//!
//! The toolbox lives in `/.pistemcell-host` inside the rootfs while it is in use: each host
//! executable is copied there with its ELF interpreter rewritten to the copied host loader
//! (`/.pistemcell-host/ld.so`), and the host libraries they need are copied to their host
//! directory (`/usr/lib/x86_64-linux-gnu`), which must not exist in the target. Only commands
//! the target itself has are provided, so scripts take the same branches as they would
//! emulated. [`HostTools::remove`] (or drop) takes it all out again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{elf_interp, host_perl};

/// The toolbox's directory inside the rootfs.
pub const DIR: &str = ".pistemcell-host";
/// The toolbox's commands, as seen inside the rootfs.
pub const BIN: &str = "/.pistemcell-host/bin";
/// Where the host loader is copied (short enough to replace any host interpreter path).
const LOADER: &str = "/.pistemcell-host/ld.so";

/// The commands provided natively, when both the host and the target have them. `sh` is the
/// host's dash and is required; the others are what initramfs-tools and maintainer scripts
/// (ucf, ca-certificates, ...) run per module, file or line. None looks up users or groups or
/// asks what machine it runs on (no `id`, `chown`, `dpkg`, `uname`).
const TOOLS: &[(&str, &str)] = &[
    ("sh", "dash"),
    ("awk", "mawk"),
    ("bash", "bash"),
    ("cmp", "cmp"),
    ("expr", "expr"),
    ("mawk", "mawk"),
    ("md5sum", "md5sum"),
    ("rmdir", "rmdir"),
    ("run-parts", "run-parts"),
    ("sha256sum", "sha256sum"),
    ("tee", "tee"),
    ("test", "test"),
    ("[", "["),
    ("basename", "basename"),
    ("cat", "cat"),
    ("chmod", "chmod"),
    ("cp", "cp"),
    ("cpio", "cpio"),
    ("cut", "cut"),
    ("depmod", "depmod"),
    ("dirname", "dirname"),
    ("env", "env"),
    ("find", "find"),
    ("grep", "grep"),
    ("gzip", "gzip"),
    ("head", "head"),
    ("ln", "ln"),
    ("ls", "ls"),
    ("mkdir", "mkdir"),
    ("mktemp", "mktemp"),
    ("modinfo", "modinfo"),
    ("mv", "mv"),
    ("readlink", "readlink"),
    ("realpath", "realpath"),
    ("rm", "rm"),
    ("sed", "sed"),
    ("sort", "sort"),
    ("stat", "stat"),
    ("sync", "sync"),
    ("tail", "tail"),
    ("touch", "touch"),
    ("tr", "tr"),
    ("uniq", "uniq"),
    ("wc", "wc"),
    ("xargs", "xargs"),
    ("xz", "xz"),
    ("zstd", "zstd"),
];

/// Where commands are looked up, on the host and in the target.
const COMMAND_DIRS: &[&str] = &["usr/sbin", "usr/bin", "sbin", "bin"];

/// The host toolbox, installed in a rootfs; removed by [`HostTools::remove`] or on drop.
#[derive(Debug)]
pub struct HostTools {
    root: PathBuf,
    /// Directories this toolbox created in the rootfs (removed with everything in them).
    created: Vec<PathBuf>,
    /// The commands provided natively, sorted.
    pub commands: Vec<String>,
}

/// Why the host toolbox cannot be used (the work then runs emulated, as before).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

fn unavailable(why: impl Into<String>) -> Unavailable {
    Unavailable(why.into())
}

/// The host path of command `name` in the system directories, if it is there.
fn host_command(name: &str) -> Option<PathBuf> {
    COMMAND_DIRS
        .iter()
        .map(|d| Path::new("/").join(d).join(name))
        .find(|p| p.is_file())
}

/// Whether the target rootfs has command `name` in its system directories, and it is the same
/// program as the host's `host`: both, every symlink followed (the target's inside the rootfs),
/// end at a file of the same name (`sh` at `dash`, `awk` at `mawk`, `depmod` at `kmod`; a
/// target whose `awk` is gawk or whose tools are busybox links gets none of the host's).
fn target_has(root: &Path, name: &str, host: &Path) -> bool {
    let file_name = |p: &Path| p.file_name().map(|n| n.to_os_string());
    let Some(host_file) = std::fs::canonicalize(host).ok().and_then(|p| file_name(&p)) else {
        return false;
    };
    COMMAND_DIRS.iter().any(|d| {
        let rel = format!("{d}/{name}");
        match crate::inside::resolve(root, &rel) {
            Ok(Some(p)) => p.is_file() && file_name(&p) == Some(host_file.clone()),
            _ => false,
        }
    })
}

impl HostTools {
    /// Installs the toolbox in `root`, or says why it cannot: the rootfs runs natively, the host
    /// lacks dash or its loader, a library directory of the host exists in the target, or
    /// a copied tool does not start.
    pub fn install(root: &Path) -> Result<HostTools, Unavailable> {
        Self::install_inner(root, false)
    }

    /// [`HostTools::install`], and the host's perl with the target's perl programs where both
    /// perls are the same version (see `host_perl`): for dpkg runs, whose maintainer scripts
    /// call them. Copying perl's modules costs about 0.7 s.
    pub fn install_with_perl(root: &Path) -> Result<HostTools, Unavailable> {
        Self::install_inner(root, true)
    }

    fn install_inner(root: &Path, with_perl: bool) -> Result<HostTools, Unavailable> {
        let host = elf_interp::host_machine()
            .ok_or_else(|| unavailable("cannot read this program's ELF header"))?;
        let target_sh = root.join("usr/bin/dash");
        match elf_interp::machine_of_file(&target_sh) {
            Some(m) if m == host => {
                return Err(unavailable("the rootfs runs natively on this host"))
            }
            Some(_) => {}
            None => return Err(unavailable("the rootfs has no /usr/bin/dash")),
        }
        let dir = root.join(DIR);
        if std::fs::symlink_metadata(&dir).is_ok() {
            return Err(unavailable(format!(
                "{} already exists (left by a killed run?)",
                dir.display()
            )));
        }
        let mut tools = HostTools {
            root: root.to_path_buf(),
            created: Vec::new(),
            commands: Vec::new(),
        };
        let io = |what: &str, p: &Path, e: std::io::Error| {
            unavailable(format!("{what} {}: {e}", p.display()))
        };
        std::fs::create_dir(&dir).map_err(|e| io("creating", &dir, e))?;
        tools.created.push(dir.clone());
        let bin = dir.join("bin");
        std::fs::create_dir(&bin).map_err(|e| io("creating", &bin, e))?;

        let mut originals = Vec::new();
        let mut loader: Option<String> = None;
        // The host's perl where the target's is the same version (see host_perl).
        let perl = with_perl.then(host_perl::host_perl).flatten().filter(|p| {
            host_perl::target_perl_version(root).as_deref() == Some(p.version.as_str())
        });
        let candidates = TOOLS
            .iter()
            .map(|(name, host_name)| (*name, host_command(host_name)))
            .chain(perl.iter().map(|p| ("perl", Some(p.binary.clone()))));
        for (name, src) in candidates {
            let Some(src) = src else {
                continue;
            };
            if !target_has(root, name, &src) {
                continue;
            }
            let mut bytes = std::fs::read(&src).map_err(|e| io("reading", &src, e))?;
            if elf_interp::machine(&bytes) != Some(host) {
                continue;
            }
            let Some(interp) = elf_interp::interp(&bytes) else {
                continue;
            };
            match &loader {
                None => loader = Some(interp),
                Some(l) if *l == interp => {}
                Some(_) => continue,
            }
            elf_interp::set_interp(&mut bytes, LOADER)
                .map_err(|e| unavailable(format!("{}: {e}", src.display())))?;
            let dst = bin.join(name);
            write_exec(&dst, &bytes).map_err(|e| io("writing", &dst, e))?;
            tools.commands.push(name.to_string());
            originals.push(src);
        }
        if !tools.commands.iter().any(|c| c == "sh") {
            return Err(unavailable("the host has no dash to run scripts with"));
        }
        let loader = loader.ok_or_else(|| unavailable("no host tool names a loader"))?;
        let loader_src =
            std::fs::canonicalize(&loader).map_err(|e| io("finding", Path::new(&loader), e))?;
        let loader_bytes = std::fs::read(&loader_src).map_err(|e| io("reading", &loader_src, e))?;
        let loader_dst = dir.join("ld.so");
        write_exec(&loader_dst, &loader_bytes).map_err(|e| io("writing", &loader_dst, e))?;
        tools.copy_libraries(&originals)?;
        tools.smoke_test()?;
        if let Some(p) = perl.filter(|_| tools.commands.iter().any(|c| c == "perl")) {
            tools.add_perl_programs(&p);
        }
        tools.commands.sort();
        Ok(tools)
    }

    /// Gives the toolbox's perl the host's core modules and adds the target's perl programs
    /// ([`host_perl::PROGRAMS`]) run by it. When the modules do not load, perl and the programs
    /// are taken out again (they then run emulated).
    fn add_perl_programs(&mut self, perl: &host_perl::HostPerl) {
        let bin = self.root.join(DIR).join("bin");
        // Each of perl's own module directories the target has too, inside the host library
        // directory this toolbox made.
        let ready = perl.core_dirs.iter().all(|d| {
            if host_perl::target_counterpart(&self.root, d).is_none() {
                return !d.ends_with("perl-base");
            }
            let dst = self.root.join(d.strip_prefix("/").unwrap_or(d));
            self.created.iter().skip(1).any(|c| dst.starts_with(c))
                && host_perl::copy_module_dir(d, &dst).is_ok()
        }) && Command::new("chroot")
            .arg(&self.root)
            .args([&format!("{BIN}/perl"), "-e", host_perl::CHECK])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(std::process::Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if !ready {
            let _ = std::fs::remove_file(bin.join("perl"));
            self.commands.retain(|c| c != "perl");
            return;
        }
        let perl_path = format!("{BIN}/perl");
        for name in host_perl::PROGRAMS {
            let text = COMMAND_DIRS.iter().find_map(|d| {
                let p = crate::inside::resolve(&self.root, &format!("{d}/{name}")).ok()??;
                std::fs::read_to_string(p).ok()
            });
            let Some(text) = text.and_then(|t| host_perl::rewrite_shebang(&t, &perl_path)) else {
                continue;
            };
            if write_exec(&bin.join(name), text.as_bytes()).is_ok() {
                self.commands.push(name.to_string());
            }
        }
    }

    /// Copies the host libraries `originals` need (by the host's `ldd`) to their host directory
    /// inside the rootfs, creating that directory, which must be new there.
    fn copy_libraries(&mut self, originals: &[PathBuf]) -> Result<(), Unavailable> {
        let text = host_ldd(originals)?;
        let mut libs: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        for line in text.lines() {
            let Some((name, rest)) = line.trim().split_once(" => ") else {
                continue;
            };
            let path = rest.split(" (").next().unwrap_or("").trim();
            if path.is_empty() || path == "not found" {
                return Err(unavailable(format!("the host's ldd finds no {name}")));
            }
            let canon = std::fs::canonicalize(path)
                .map_err(|e| unavailable(format!("finding {path}: {e}")))?;
            let parent = canon
                .parent()
                .ok_or_else(|| unavailable(format!("{path} has no directory")))?;
            libs.insert(parent.join(name.trim()), canon);
        }
        for (dst, src) in libs {
            let rel = dst.strip_prefix("/").unwrap_or(&dst);
            let target = self.root.join(rel);
            let Some(dir) = target.parent() else { continue };
            if !self.created.iter().any(|c| c == dir) {
                if std::fs::symlink_metadata(dir).is_ok() {
                    return Err(unavailable(format!(
                        "{} exists in the rootfs: host libraries would mix with the target's",
                        dir.display()
                    )));
                }
                // One new level only: never a new top-level directory or a new tree.
                std::fs::create_dir(dir)
                    .map_err(|e| unavailable(format!("creating {}: {e}", dir.display())))?;
                self.created.push(dir.to_path_buf());
            }
            std::fs::copy(&src, &target).map_err(|e| {
                unavailable(format!(
                    "copying {} to {}: {e}",
                    src.display(),
                    target.display()
                ))
            })?;
        }
        Ok(())
    }

    /// Starts every copied tool once in the rootfs: a tool that cannot load (exit 126 or 127)
    /// makes the toolbox unavailable.
    fn smoke_test(&self) -> Result<(), Unavailable> {
        let script = format!(
            "for t in {}; do {BIN}/$t --version </dev/null >/dev/null 2>&1; \
             [ $? -lt 126 ] || echo \"$t\"; done",
            self.commands.join(" ")
        );
        let out = Command::new("chroot")
            .arg(&self.root)
            .args([&format!("{BIN}/sh"), "-c", &script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .map_err(|e| unavailable(format!("running chroot: {e}")))?;
        let failed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !failed.is_empty() {
            return Err(unavailable(format!(
                "host tools do not start in the rootfs ({}{})",
                failed.replace('\n', " "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Adds `name` to the toolbox: a copy of the target's script at `script` (inside the
    /// rootfs) run by the host's shell, with `edit` applied to its text.
    pub fn add_script(
        &self,
        name: &str,
        script: &str,
        edit: impl FnOnce(&str) -> Option<String>,
    ) -> Result<(), Unavailable> {
        let src = self.root.join(script.trim_start_matches('/'));
        let text = std::fs::read_to_string(&src)
            .map_err(|e| unavailable(format!("reading {}: {e}", src.display())))?;
        let body = text
            .strip_prefix("#!/bin/sh\n")
            .ok_or_else(|| unavailable(format!("{script} does not start with #!/bin/sh")))?;
        let edited = edit(body)
            .ok_or_else(|| unavailable(format!("{script} is not the script expected")))?;
        let dst = self.root.join(DIR).join("bin").join(name);
        write_exec(&dst, format!("#!{BIN}/sh\n{edited}").as_bytes())
            .map_err(|e| unavailable(format!("writing {}: {e}", dst.display())))
    }

    /// Takes the toolbox out of the rootfs.
    pub fn remove(mut self) -> std::io::Result<()> {
        self.remove_all()
    }

    fn remove_all(&mut self) -> std::io::Result<()> {
        let mut first_error = None;
        while let Some(dir) = self.created.pop() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for HostTools {
    fn drop(&mut self) {
        let _ = self.remove_all();
    }
}

/// A command running the shell script `script` (a path inside `root`) in the chroot, with the
/// maintainer scripts' environment: under the host's shell with the toolbox first on `PATH`
/// when `tools` is given, else the target's own way.
pub fn script_command(root: &Path, tools: Option<&HostTools>, script: &str) -> Command {
    let mut cmd = Command::new("chroot");
    cmd.arg(root).env_clear().envs(super::dpkg::script_env());
    if tools.is_some() {
        cmd.arg(format!("{BIN}/sh"))
            .arg(script)
            .env("PATH", format!("{BIN}:/usr/sbin:/usr/bin:/sbin:/bin"));
    } else {
        cmd.arg(script);
    }
    cmd
}

/// The host's `ldd` output for `originals`, run once per set of programs in a process (the
/// toolbox is set up for every dpkg run and chroot stage of a build).
fn host_ldd(originals: &[PathBuf]) -> Result<String, Unavailable> {
    static SEEN: std::sync::Mutex<Vec<(Vec<PathBuf>, String)>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, text)) = seen.iter().find(|(k, _)| k.as_slice() == originals) {
        return Ok(text.clone());
    }
    let out = Command::new("ldd")
        .args(originals)
        .env_clear()
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| unavailable(format!("running the host's ldd: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    seen.push((originals.to_vec(), text.clone()));
    Ok(text)
}

/// The maintainer scripts' `PATH` with the toolbox first.
pub fn path_with_toolbox() -> String {
    let base = super::dpkg::script_env()
        .into_iter()
        .find(|(k, _)| *k == "PATH")
        .map_or("/usr/sbin:/usr/bin:/sbin:/bin", |(_, v)| v);
    format!("{BIN}:{base}")
}

/// Writes an executable file (mode 0755).
fn write_exec(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// A rootfs whose shell is a 32-bit ARM program and which has `cp` and `cat` (as stubs).
    fn foreign_root(dir: &Path) {
        for d in ["usr/bin", "usr/sbin", "usr/lib", "etc", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for d in ["bin", "sbin", "lib"] {
            std::os::unix::fs::symlink(format!("usr/{d}"), dir.join(d)).unwrap();
        }
        foreign_root_shell(dir);
        std::os::unix::fs::symlink("dash", dir.join("usr/bin/sh")).unwrap();
        for c in ["cp", "cat"] {
            std::fs::write(dir.join("usr/bin").join(c), b"stub").unwrap();
        }
        // An awk that is not the host's mawk is never replaced.
        std::fs::create_dir_all(dir.join("etc/alternatives")).unwrap();
        std::fs::write(dir.join("usr/bin/gawk"), b"stub").unwrap();
        std::os::unix::fs::symlink("/usr/bin/gawk", dir.join("etc/alternatives/awk")).unwrap();
        std::os::unix::fs::symlink("/etc/alternatives/awk", dir.join("usr/bin/awk")).unwrap();
    }

    fn listing(dir: &Path) -> Vec<String> {
        let out = Command::new("find")
            .arg(".")
            .current_dir(dir)
            .output()
            .unwrap();
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn host_tools_run_in_a_foreign_rootfs_and_leave_nothing_behind() {
        if !is_root() {
            eprintln!("skipped: needs root (chroot)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        foreign_root(t.path());
        let before = listing(t.path());
        let tools = HostTools::install(t.path()).unwrap();
        // Only what both sides have: the target has no zstd, so neither does the toolbox; its
        // awk is gawk, which the host's mawk does not stand in for.
        assert_eq!(tools.commands, ["cat", "cp", "sh"]);
        let out = Command::new("chroot")
            .arg(t.path())
            .args([
                &format!("{BIN}/sh"),
                "-c",
                "PATH=/.pistemcell-host/bin cp --version",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("coreutils"));
        tools
            .add_script("hello", "/usr/bin/script", |b| Some(b.to_string()))
            .unwrap_err();
        std::fs::write(
            t.path().join("usr/bin/script"),
            "#!/bin/sh\necho hi from $0\n",
        )
        .unwrap();
        tools
            .add_script("hello", "/usr/bin/script", |b| {
                Some(b.replace("hi", "hello"))
            })
            .unwrap();
        let out = Command::new("chroot")
            .arg(t.path())
            .arg(format!("{BIN}/hello"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("hello from {BIN}/hello\n")
        );
        std::fs::remove_file(t.path().join("usr/bin/script")).unwrap();
        tools.remove().unwrap();
        assert_eq!(before, listing(t.path()));
    }

    #[test]
    fn refuses_where_it_would_mix_with_the_target() {
        if !is_root() {
            eprintln!("skipped: needs root (chroot)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        foreign_root(t.path());
        // A native rootfs (its shell is this host's): nothing to do.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        std::fs::write(t.path().join("usr/bin/dash"), &exe[..64]).unwrap();
        let e = HostTools::install(t.path()).unwrap_err();
        assert!(e.0.contains("natively"), "{e}");
        foreign_root_shell(t.path());
        // The host's library directory already exists in the target.
        let libc = Command::new("ldd").arg("/bin/sh").output().unwrap();
        let text = String::from_utf8_lossy(&libc.stdout).into_owned();
        let path = text
            .lines()
            .find_map(|l| {
                l.split_once(" => ")
                    .map(|(_, p)| p.split(" (").next().unwrap().to_string())
            })
            .unwrap();
        let dir = std::fs::canonicalize(path)
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        let inside = t.path().join(dir.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        let before = listing(t.path());
        let e = HostTools::install(t.path()).unwrap_err();
        assert!(e.0.contains("exists in the rootfs"), "{e}");
        assert_eq!(before, listing(t.path()));
    }

    fn foreign_root_shell(dir: &Path) {
        let mut dash = vec![0u8; 64];
        dash[..4].copy_from_slice(b"\x7fELF");
        dash[4] = 1;
        dash[5] = 1;
        dash[18..20].copy_from_slice(&40u16.to_le_bytes());
        std::fs::write(dir.join("usr/bin/dash"), dash).unwrap();
    }
}
