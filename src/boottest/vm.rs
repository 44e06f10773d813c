//! The VM: qemu-system-arm (armhf) or qemu-system-aarch64 (arm64) on the `virt` machine,
//! software emulation on every core, the overlay as a virtio disk (or, for a raw SD-card
//! stemcell, as an SD card on an SDHCI controller: `/dev/mmcblk0`, as a Pi sees its card) and
//! an empty ephemeral disk as a virtio disk where the image's agent wants one,
//! user-mode networking with the guest's 6868 forwarded to 127.0.0.1 only, the serial console
//! and the probe's two virtio serial ports written to files the host follows. The VM is a guard:
//! powered off (killed) on drop, whatever happened.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::guest;
use super::BootTestError;

/// What the VM boots.
pub struct VmConfig {
    /// `armhf` or `arm64`.
    pub arch: String,
    /// The kernel and initramfs files.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initramfs: PathBuf,
    /// The root partition's PARTUUID.
    pub root_partuuid: String,
    /// The qcow2 overlay.
    pub overlay: PathBuf,
    /// Whether the overlay is an SD card (`/dev/mmcblk0`) instead of a virtio disk (`/dev/vda`).
    pub root_on_sd: bool,
    /// The empty ephemeral disk (raw), if the image's agent is given one.
    pub ephemeral: Option<PathBuf>,
    /// The host port forwarded to the guest's 6868 (on 127.0.0.1).
    pub mbus_port: u16,
    /// A persistent disk (raw), given after the ephemeral disk: `vdc` in the guest.
    pub persistent: Option<PathBuf>,
    /// More forwards: host port (on 127.0.0.1) to guest port.
    pub forwards: Vec<(u16, u16)>,
    /// Whether the probe gets a control port (a unix socket in `dir`) to power the guest off.
    pub control: bool,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: usize,
    /// Where the console and port logs go.
    pub dir: PathBuf,
}

/// The emulator and CPU for an architecture: the Pi's own CPU model where qemu has it.
pub fn machine(arch: &str) -> Result<(&'static str, &'static str, &'static str), BootTestError> {
    match arch {
        // Pi 2 (BCM2836) is a Cortex-A7: the armv7 floor. highmem=off: armmp has no LPAE.
        "armhf" => Ok(("qemu-system-arm", "virt,highmem=off", "cortex-a7")),
        // Pi 3 (BCM2837) is a Cortex-A53.
        "arm64" => Ok(("qemu-system-aarch64", "virt", "cortex-a53")),
        other => Err(BootTestError::Unsupported(format!(
            "architecture `{other}`: boot-test boots armhf and arm64 stemcells"
        ))),
    }
}

/// The qemu command line.
pub fn command(c: &VmConfig) -> Result<Command, BootTestError> {
    let (qemu, machine, cpu) = machine(&c.arch)?;
    let mut cmd = Command::new(qemu);
    let d = |n: &str| c.dir.join(n).display().to_string();
    cmd.args(["-M", machine, "-cpu", cpu])
        // A 256 MiB translation cache instead of qemu's 1 GiB default: the peak memory matters on a Pi.
        .args(["-accel", "tcg,thread=multi,tb-size=256"])
        .arg("-smp")
        .arg(c.cpus.to_string())
        .arg("-m")
        .arg(c.memory_mib.to_string())
        .args([
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
            "-nodefaults",
        ])
        .arg("-kernel")
        .arg(&c.kernel)
        .arg("-initrd")
        .arg(&c.initramfs)
        .arg("-append")
        .arg(format!(
            "root=PARTUUID={} rw rootwait console=ttyAMA0 panic=-1",
            c.root_partuuid
        ))
        // On virt the last virtio disk given is vda: the persistent disk and the ephemeral
        // disk first, so root is vda (see `persistent_device`).
        .args(c.persistent.iter().flat_map(|p| {
            [
                "-drive".to_string(),
                format!("if=none,id=pers,format=raw,file={}", p.display()),
                "-device".to_string(),
                format!(
                    "virtio-blk-device,drive=pers,serial={}",
                    guest::PERSISTENT_SERIAL
                ),
            ]
        }))
        .args(c.ephemeral.iter().flat_map(|e| {
            [
                "-drive".to_string(),
                format!("if=none,id=eph,format=raw,file={}", e.display()),
                "-device".to_string(),
                format!(
                    "virtio-blk-device,drive=eph,serial={}",
                    guest::EPHEMERAL_SERIAL
                ),
            ]
        }))
        .arg("-drive")
        .arg(format!(
            "if=none,id=root,format=qcow2,file={}",
            c.overlay.display()
        ))
        .args(root_device_args(c))
        .arg("-netdev")
        .arg(format!(
            "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:6868{}",
            c.mbus_port,
            c.forwards
                .iter()
                .map(|(h, g)| format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"))
                .collect::<String>()
        ))
        .arg("-device")
        .arg(format!(
            "virtio-net-device,netdev=net0,mac={}",
            guest::GUEST_MAC
        ))
        .arg("-serial")
        .arg(format!("file:{}", d("console.log")))
        .args(["-device", "virtio-serial-device"])
        .arg("-chardev")
        .arg(format!("file,id=probe,path={}", d("probe.log")))
        .arg("-device")
        .arg(format!(
            "virtserialport,chardev=probe,name={}",
            guest::PORT_PROBE
        ))
        .arg("-chardev")
        .arg(format!("file,id=agentlog,path={}", d("agent.log")))
        .arg("-device")
        .arg(format!(
            "virtserialport,chardev=agentlog,name={}",
            guest::PORT_AGENT_LOG
        ))
        .args(control_args(c)?)
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            File::create(c.dir.join("qemu.log"))
                .map_err(|e| BootTestError::Vm(format!("qemu.log: {e}")))?,
        ))
        .stderr(Stdio::from(
            File::create(c.dir.join("qemu.err"))
                .map_err(|e| BootTestError::Vm(format!("qemu.err: {e}")))?,
        ));
    Ok(cmd)
}

/// The root disk's device: a virtio disk, or an SD card on a PCI SDHCI controller (the
/// kernel's sdhci-pci and mmc_block name it `/dev/mmcblk0`, as a Pi's own card).
fn root_device_args(c: &VmConfig) -> Vec<String> {
    match c.root_on_sd {
        true => vec![
            "-device".into(),
            "sdhci-pci,id=sdhci".into(),
            "-device".into(),
            "sd-card,drive=root".into(),
        ],
        false => vec!["-device".into(), "virtio-blk-device,drive=root".into()],
    }
}

impl VmConfig {
    /// The guest's device for the persistent disk: virtio disks are named in the reverse of
    /// the order given, and the persistent disk is given first.
    pub fn persistent_device(&self) -> String {
        let after = usize::from(self.ephemeral.is_some()) + usize::from(!self.root_on_sd);
        format!("/dev/vd{}", char::from(b'a' + after as u8))
    }

    /// The guest's device for the root disk.
    pub fn root_device(&self) -> &'static str {
        match self.root_on_sd {
            true => "/dev/mmcblk0",
            false => "/dev/vda",
        }
    }
}

/// The unix socket (in the log directory) that reaches the probe's control port.
pub const CONTROL_SOCKET: &str = "control.sock";

fn control_args(c: &VmConfig) -> Result<Vec<String>, BootTestError> {
    if !c.control {
        return Ok(Vec::new());
    }
    let sock = c.dir.join(CONTROL_SOCKET);
    // sockaddr_un holds 108 bytes with the terminating NUL.
    if sock.as_os_str().len() > 107 {
        return Err(BootTestError::Vm(format!(
            "the control socket {} is longer than a unix socket path may be (107 bytes); give a shorter --work-dir",
            sock.display()
        )));
    }
    Ok(vec![
        "-chardev".into(),
        format!(
            "socket,id=control,path={},server=on,wait=off",
            sock.display()
        ),
        "-device".into(),
        format!(
            "virtserialport,chardev=control,name={}",
            guest::PORT_CONTROL
        ),
    ])
}

/// A running VM; powered off on drop.
pub struct Vm {
    child: Child,
    /// The qemu command line, for the report.
    pub argv: String,
    peak_kib: u64,
}

impl Vm {
    /// Powers the VM on.
    pub fn start(c: &VmConfig) -> Result<Vm, BootTestError> {
        let mut cmd = command(c)?;
        let argv = crate::cmd::argv_of(&cmd);
        let child = cmd.spawn().map_err(|source| crate::cmd::CmdError::Spawn {
            argv: argv.clone(),
            source,
        })?;
        Ok(Vm {
            child,
            argv,
            peak_kib: 0,
        })
    }

    /// The exit status, once qemu has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.sample_memory();
        self.child.try_wait().ok().flatten()
    }

    /// Reads qemu's peak resident memory (VmHWM) while it runs.
    fn sample_memory(&mut self) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()));
        if let Some(kib) = status.ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        }) {
            self.peak_kib = self.peak_kib.max(kib);
        }
    }

    /// qemu's peak resident memory so far, KiB.
    pub fn peak_kib(&self) -> u64 {
        self.peak_kib
    }

    /// Asks the guest to power itself off through the probe's control port (its filesystems
    /// written and unmounted, as a real VM's reboot does) and waits up to `grace` for qemu to
    /// exit; returns whether it did. `dir` is the VM's log directory.
    pub fn shutdown(&mut self, dir: &Path, grace: std::time::Duration) -> bool {
        use std::io::Write;
        let Ok(mut control) = std::os::unix::net::UnixStream::connect(dir.join(CONTROL_SOCKET))
        else {
            return false;
        };
        // The guest reads the port only while a host is connected, and opens it anew each
        // second: the connection stays open and the command is repeated until qemu exits.
        let until = std::time::Instant::now() + grace;
        let mut next = std::time::Instant::now();
        while std::time::Instant::now() < until {
            if self.exited().is_some() {
                return true;
            }
            if std::time::Instant::now() >= next {
                let _ = control.write_all(b"poweroff\n");
                next = std::time::Instant::now() + std::time::Duration::from_secs(2);
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        false
    }

    /// Stops qemu with SIGTERM, which flushes its disk images (a qcow2 overlay killed hard
    /// may lose what the guest wrote), waiting up to `grace` before it is killed. The guest
    /// itself gets no shutdown: its filesystems recover from their journals, as after a power cut.
    pub fn stop(&mut self, grace: std::time::Duration) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our own child's pid with a valid signal number.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let until = std::time::Instant::now() + grace;
            while std::time::Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        self.power_off();
    }

    /// Powers the VM off (kills qemu) and waits for it.
    pub fn power_off(&mut self) {
        self.sample_memory();
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.power_off();
    }
}

/// Follows a growing file, handing out whole lines.
pub struct Follow {
    path: PathBuf,
    pos: u64,
    partial: String,
    /// Every line read so far (bounded to the last `KEEP`).
    pub lines: std::collections::VecDeque<String>,
}

/// How many lines a follower keeps for the report.
const KEEP: usize = 400;

impl Follow {
    /// Follows `path` (which may not exist yet).
    pub fn new(path: &Path) -> Follow {
        Follow {
            path: path.to_path_buf(),
            pos: 0,
            partial: String::new(),
            lines: Default::default(),
        }
    }

    /// The new complete lines since the last call.
    pub fn poll(&mut self) -> Vec<String> {
        let Ok(mut f) = File::open(&self.path) else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.pos)).is_err() || f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.pos += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let mut out = Vec::new();
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            let line = strip_ansi(line.trim_end_matches(['\n', '\r']));
            self.lines.push_back(line.clone());
            if self.lines.len() > KEEP {
                self.lines.pop_front();
            }
            out.push(line);
        }
        out
    }

    /// The last `n` lines, with an unfinished last line.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let mut v: Vec<String> = self.lines.iter().rev().take(n).rev().cloned().collect();
        if !self.partial.trim().is_empty() {
            v.push(strip_ansi(self.partial.trim_end()));
        }
        v
    }
}

/// Removes terminal colour sequences (systemd colours its console status lines).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, BootTestError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BootTestError::Vm(format!("finding a free port on 127.0.0.1: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| BootTestError::Vm(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(
            strip_ansi("[\u{1b}[0;32m  OK  \u{1b}[0m] Started \u{1b}[0;1;39mx\u{1b}[0m.\r"),
            "[  OK  ] Started x."
        );
    }

    #[test]
    fn a_follower_hands_out_whole_lines_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut f = Follow::new(&p);
        assert!(f.poll().is_empty());
        std::fs::write(&p, "one\ntw").unwrap();
        assert_eq!(f.poll(), ["one"]);
        std::fs::write(&p, "one\ntwo\n").unwrap();
        assert_eq!(f.poll(), ["two"]);
        assert!(f.poll().is_empty());
        assert_eq!(f.tail(5), ["one", "two"]);
    }

    #[test]
    fn the_command_boots_root_from_the_overlay_as_vda() {
        let c = VmConfig {
            arch: "armhf".into(),
            kernel: "k".into(),
            initramfs: "i".into(),
            root_partuuid: "c84cad11-02".into(),
            overlay: "o.qcow2".into(),
            root_on_sd: false,
            ephemeral: Some("e.raw".into()),
            mbus_port: 4242,
            persistent: None,
            forwards: Vec::new(),
            control: false,
            memory_mib: 1024,
            cpus: 2,
            dir: std::env::temp_dir(),
        };
        let argv = crate::cmd::argv_of(&command(&c).unwrap());
        assert!(argv.starts_with("qemu-system-arm -M virt,highmem=off -cpu cortex-a7 -accel tcg,thread=multi,tb-size=256"));
        assert!(argv.contains("root=PARTUUID=c84cad11-02 rw"));
        assert!(argv.contains("hostfwd=tcp:127.0.0.1:4242-:6868 "));
        assert!(argv.find("drive=eph").unwrap() < argv.find("drive=root").unwrap());
        assert!(!argv.contains("drive=pers"));
        assert!(machine("mips").is_err());

        // The deploy proof's VM: the persistent disk before the others (so it is vdc), and
        // every forward on 127.0.0.1 only.
        let d = VmConfig {
            persistent: Some("p.raw".into()),
            forwards: vec![(5000, 2345)],
            control: true,
            ..c
        };
        let argv = crate::cmd::argv_of(&command(&d).unwrap());
        let pers = argv.find("drive=pers,serial=pstc-persistent").unwrap();
        assert!(pers < argv.find("drive=eph").unwrap());
        assert!(argv.contains("hostfwd=tcp:127.0.0.1:4242-:6868,hostfwd=tcp:127.0.0.1:5000-:2345"));
        assert_eq!(
            argv.matches("hostfwd=tcp:").count(),
            argv.matches("hostfwd=tcp:127.0.0.1:").count()
        );
        assert_eq!(d.persistent_device(), "/dev/vdc");

        // A raw SD-card stemcell: the overlay is the card, no ephemeral disk; the persistent
        // disk is then the only virtio disk.
        let r = VmConfig {
            root_on_sd: true,
            ephemeral: None,
            ..d
        };
        let argv = crate::cmd::argv_of(&command(&r).unwrap());
        assert!(argv.contains("-device sdhci-pci,id=sdhci -device sd-card,drive=root"));
        assert!(!argv.contains("drive=eph") && !argv.contains("virtio-blk-device,drive=root"));
        assert_eq!(r.persistent_device(), "/dev/vda");
        assert_eq!(r.root_device(), "/dev/mmcblk0");
    }
}
