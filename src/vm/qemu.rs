//! The VM: qemu-system-arm (armhf) or qemu-system-aarch64 (arm64) on the `virt` machine, with
//! KVM where the host can run the guest natively and software emulation (TCG) on every core
//! otherwise. The overlay is the root disk (a virtio disk, or for a raw SD-card stemcell an SD
//! card on an SDHCI controller: `/dev/mmcblk0`, as a Pi sees its card); more disks follow as
//! virtio disks, each with a serial the guest finds it by. User-mode networking with chosen
//! guest ports forwarded from 127.0.0.1 only, the serial console and virtio serial ports
//! written to files the host follows. [`Vm`] is a guard: powered off (killed) on drop,
//! whatever happened; `detached` starts the same command as a daemon instead.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::VmError;

/// A disk after the root disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drive {
    /// The image file.
    pub path: PathBuf,
    /// `raw` or `qcow2`.
    pub format: &'static str,
    /// The serial the guest sees (`/dev/disk/by-id/virtio-SERIAL`); virtio keeps 20 bytes.
    pub serial: String,
}

/// How the CPU is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation on every core.
    Tcg,
    /// The host's KVM (an arm64 host running an arm64 guest).
    Kvm,
}

impl Accel {
    /// KVM when `/dev/kvm` can be opened and the host runs `arch` natively, TCG otherwise.
    pub fn best_for(arch: &str) -> Accel {
        let native = std::env::consts::ARCH == "aarch64" && arch == "arm64";
        let kvm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        match native && kvm {
            true => Accel::Kvm,
            false => Accel::Tcg,
        }
    }

    /// In words, for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "TCG (software emulation)",
            Accel::Kvm => "KVM",
        }
    }
}

/// What the VM boots.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// `armhf` or `arm64`.
    pub arch: String,
    /// TCG or KVM.
    pub accel: Accel,
    /// The kernel.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initramfs: PathBuf,
    /// The root partition's PARTUUID.
    pub root_partuuid: String,
    /// The qcow2 overlay.
    pub overlay: PathBuf,
    /// Whether the overlay is an SD card (`/dev/mmcblk0`) instead of a virtio disk (`/dev/vda`).
    pub root_on_sd: bool,
    /// The virtio disks after the root disk, in the order the guest names them (`vdb`, `vdc`,
    /// ... after a virtio root; from `vda` when root is an SD card).
    pub disks: Vec<Drive>,
    /// Forwards from 127.0.0.1: host port to guest port.
    pub forwards: Vec<(u16, u16)>,
    /// Whether the guest is cut off from the host and the outside (qemu's `restrict=on`): it
    /// can only answer on its forwards, and none of its own connections or DNS queries leave
    /// qemu's user network.
    pub restrict: bool,
    /// The guest's network card's MAC address.
    pub mac: String,
    /// Virtio serial ports written to files: the port's name and the file.
    pub ports: Vec<(String, PathBuf)>,
    /// A virtio serial port reached through a unix socket: its name and the socket.
    pub control: Option<(String, PathBuf)>,
    /// A unix socket (telnet) that reaches the serial console's input, for SysRq; the output
    /// still goes to `console.log`, appended across boots.
    pub console_input: Option<PathBuf>,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: usize,
    /// Where the console (`console.log`) and qemu's own output go.
    pub dir: PathBuf,
}

/// The emulator, machine and CPU for an architecture: the Pi's own CPU model where qemu has it.
pub fn machine(
    arch: &str,
    accel: Accel,
) -> Result<(&'static str, &'static str, &'static str), VmError> {
    match (arch, accel) {
        // Pi 2 (BCM2836) is a Cortex-A7: the armv7 floor. highmem=off: armmp has no LPAE.
        ("armhf", Accel::Tcg) => Ok(("qemu-system-arm", "virt,highmem=off", "cortex-a7")),
        // Pi 3 (BCM2837) is a Cortex-A53.
        ("arm64", Accel::Tcg) => Ok(("qemu-system-aarch64", "virt", "cortex-a53")),
        ("arm64", Accel::Kvm) => Ok(("qemu-system-aarch64", "virt", "host")),
        ("armhf", Accel::Kvm) => Err(VmError::Unsupported(
            "armhf under KVM: 32-bit guests run under TCG here".into(),
        )),
        (other, _) => Err(VmError::Unsupported(format!(
            "architecture `{other}`: VMs are armhf or arm64"
        ))),
    }
}

fn accel_args(accel: Accel) -> [&'static str; 2] {
    match accel {
        // A 256 MiB translation cache instead of qemu's 1 GiB default: the peak memory matters on a Pi.
        Accel::Tcg => ["-accel", "tcg,thread=multi,tb-size=256"],
        Accel::Kvm => ["-accel", "kvm"],
    }
}

/// The qemu command line (without how its output is kept: see [`Vm::start`] and `detached`).
pub fn command(c: &VmConfig) -> Result<Command, VmError> {
    let (qemu, machine, cpu) = machine(&c.arch, c.accel)?;
    let mut cmd = Command::new(qemu);
    cmd.args(["-M", machine, "-cpu", cpu])
        .args(accel_args(c.accel))
        .arg("-smp")
        .arg(c.cpus.to_string())
        .arg("-m")
        .arg(c.memory_mib.to_string())
        .args(["-display", "none", "-no-reboot"])
        .args(["-monitor", "none", "-nodefaults"])
        .arg("-kernel")
        .arg(&c.kernel)
        .arg("-initrd")
        .arg(&c.initramfs)
        .arg("-append")
        .arg(format!(
            "root=PARTUUID={} rw rootwait console=ttyAMA0 panic=-1",
            c.root_partuuid
        ));
    // On virt the last virtio disk given is vda: the other disks in reverse, then root.
    for (i, d) in c.disks.iter().enumerate().rev() {
        cmd.arg("-drive")
            .arg(format!(
                "if=none,id=disk{i},format={},file={}",
                d.format,
                d.path.display()
            ))
            .arg("-device")
            .arg(format!(
                "virtio-blk-device,drive=disk{i},serial={}",
                d.serial
            ));
    }
    cmd.arg("-drive")
        .arg(format!(
            "if=none,id=root,format=qcow2,file={}",
            c.overlay.display()
        ))
        .args(root_device_args(c))
        .arg("-netdev")
        .arg(format!(
            "user,id=net0{}{}",
            if c.restrict { ",restrict=on" } else { "" },
            c.forwards
                .iter()
                .map(|(h, g)| format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"))
                .collect::<String>()
        ))
        .arg("-device")
        .arg(format!("virtio-net-device,netdev=net0,mac={}", c.mac))
        .args(console_args(c)?);
    if !c.ports.is_empty() || c.control.is_some() {
        cmd.args(["-device", "virtio-serial-device"]);
    }
    for (i, (name, file)) in c.ports.iter().enumerate() {
        cmd.arg("-chardev")
            .arg(format!("file,id=port{i},path={}", file.display()))
            .arg("-device")
            .arg(format!("virtserialport,chardev=port{i},name={name}"));
    }
    if let Some((name, sock)) = &c.control {
        cmd.args(control_args(name, sock)?);
    }
    Ok(cmd)
}

/// The serial console: written to `console.log`, or (with `console_input`) a telnet socket
/// whose output is logged there too, across boots.
fn console_args(c: &VmConfig) -> Result<Vec<String>, VmError> {
    let log = c.dir.join("console.log");
    let Some(sock) = &c.console_input else {
        return Ok(vec!["-serial".into(), format!("file:{}", log.display())]);
    };
    check_socket_path(sock)?;
    Ok(vec![
        "-chardev".into(),
        format!(
            "socket,id=console,path={},server=on,wait=off,telnet=on,logfile={},logappend=on",
            sock.display(),
            log.display()
        ),
        "-serial".into(),
        "chardev:console".into(),
    ])
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
    /// The guest's device for `disks[i]`: virtio disks are named in the reverse of the order
    /// given on the command line, and root (when it is a virtio disk) is given last.
    pub fn disk_device(&self, i: usize) -> String {
        let n = i + usize::from(!self.root_on_sd);
        let mut name = String::new();
        let mut k = n;
        // vda..vdz, then vdaa, as the kernel's sd_format_disk_name does.
        loop {
            name.insert(0, char::from(b'a' + (k % 26) as u8));
            if k < 26 {
                break;
            }
            k = k / 26 - 1;
        }
        format!("/dev/vd{name}")
    }

    /// The guest's device for the root disk.
    pub fn root_device(&self) -> &'static str {
        match self.root_on_sd {
            true => "/dev/mmcblk0",
            false => "/dev/vda",
        }
    }
}

/// sockaddr_un holds 108 bytes with the terminating NUL.
pub const SOCKET_PATH_MAX: usize = 107;

fn check_socket_path(sock: &Path) -> Result<(), VmError> {
    match sock.as_os_str().len() > SOCKET_PATH_MAX {
        true => Err(VmError::Vm(format!(
            "the socket {} is longer than a unix socket path may be ({SOCKET_PATH_MAX} bytes); choose a shorter directory",
            sock.display()
        ))),
        false => Ok(()),
    }
}

fn control_args(name: &str, sock: &Path) -> Result<Vec<String>, VmError> {
    check_socket_path(sock)?;
    Ok(vec![
        "-chardev".into(),
        format!(
            "socket,id=control,path={},server=on,wait=off",
            sock.display()
        ),
        "-device".into(),
        format!("virtserialport,chardev=control,name={name}"),
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
    /// Powers the VM on; qemu's own output goes to `qemu.log` and `qemu.err` in the VM's dir.
    pub fn start(c: &VmConfig) -> Result<Vm, VmError> {
        let mut cmd = command(c)?;
        let out =
            |n: &str| File::create(c.dir.join(n)).map_err(|e| VmError::Vm(format!("{n}: {e}")));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out("qemu.log")?))
            .stderr(Stdio::from(out("qemu.err")?));
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
        if let Some(kib) = peak_kib_of(self.child.id()) {
            self.peak_kib = self.peak_kib.max(kib);
        }
    }

    /// qemu's peak resident memory so far, KiB.
    pub fn peak_kib(&self) -> u64 {
        self.peak_kib
    }

    /// Asks the guest to power itself off by writing `poweroff` to the control port (the
    /// socket `sock`), its filesystems written and unmounted as a real VM's reboot does, and
    /// waits up to `grace` for qemu to exit; returns whether it did.
    pub fn shutdown(&mut self, sock: &Path, grace: std::time::Duration) -> bool {
        use std::io::Write;
        let Ok(mut control) = std::os::unix::net::UnixStream::connect(sock) else {
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

/// A process's peak resident memory (VmHWM), KiB.
pub fn peak_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, VmError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| VmError::Vm(format!("finding a free port on 127.0.0.1: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| VmError::Vm(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(path: &str, serial: &str) -> Drive {
        Drive {
            path: path.into(),
            format: "raw",
            serial: serial.into(),
        }
    }

    #[test]
    fn the_command_boots_root_from_the_overlay_as_vda() {
        let c = VmConfig {
            arch: "armhf".into(),
            accel: Accel::Tcg,
            kernel: "k".into(),
            initramfs: "i".into(),
            root_partuuid: "c84cad11-02".into(),
            overlay: "o.qcow2".into(),
            root_on_sd: false,
            disks: vec![drive("e.raw", "eph")],
            forwards: vec![(4242, 6868)],
            restrict: true,
            mac: "52:54:00:12:34:56".into(),
            ports: Vec::new(),
            control: None,
            console_input: None,
            memory_mib: 1024,
            cpus: 2,
            dir: std::env::temp_dir(),
        };
        let argv = crate::cmd::argv_of(&command(&c).unwrap());
        assert!(argv.starts_with("qemu-system-arm -M virt,highmem=off -cpu cortex-a7 -accel tcg,thread=multi,tb-size=256"));
        assert!(argv.contains("root=PARTUUID=c84cad11-02 rw"));
        assert!(argv.contains("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:4242-:6868 "));
        assert!(argv.find("drive=disk0").unwrap() < argv.find("drive=root").unwrap());
        assert!(!argv.contains("virtio-serial-device"));
        assert_eq!(c.disk_device(0), "/dev/vdb");
        assert!(machine("mips", Accel::Tcg).is_err());
        assert!(machine("armhf", Accel::Kvm).is_err());
        assert_eq!(machine("arm64", Accel::Kvm).unwrap().2, "host");

        // The deploy proof's VM: the persistent disk after the ephemeral one (so it is vdc,
        // given first), every forward on 127.0.0.1 only, the ports and the control socket.
        let d = VmConfig {
            disks: vec![drive("e.raw", "eph"), drive("p.raw", "pers")],
            forwards: vec![(4242, 6868), (5000, 2345)],
            restrict: false,
            ports: vec![("probe".into(), "/x/probe.log".into())],
            control: Some(("ctl".into(), "/x/control.sock".into())),
            ..c.clone()
        };
        let argv = crate::cmd::argv_of(&command(&d).unwrap());
        let pers = argv.find("drive=disk1,serial=pers").unwrap();
        assert!(pers < argv.find("drive=disk0,serial=eph").unwrap());
        assert!(argv.contains(
            "user,id=net0,hostfwd=tcp:127.0.0.1:4242-:6868,hostfwd=tcp:127.0.0.1:5000-:2345"
        ));
        assert_eq!(
            argv.matches("hostfwd=tcp:").count(),
            argv.matches("hostfwd=tcp:127.0.0.1:").count()
        );
        assert!(argv.contains(
            "file,id=port0,path=/x/probe.log -device virtserialport,chardev=port0,name=probe"
        ));
        assert!(argv.contains("socket,id=control,path=/x/control.sock,server=on,wait=off"));
        assert!(argv.contains(&format!("-serial file:{}/console.log", d.dir.display())));
        let t = VmConfig {
            console_input: Some("/x/console.sock".into()),
            ..d.clone()
        };
        let argv = crate::cmd::argv_of(&command(&t).unwrap());
        assert!(argv.contains(&format!("socket,id=console,path=/x/console.sock,server=on,wait=off,telnet=on,logfile={}/console.log,logappend=on -serial chardev:console", t.dir.display())), "{argv}");
        assert_eq!(d.disk_device(1), "/dev/vdc");

        // A raw SD-card stemcell: the overlay is the card; the persistent disk is then the
        // only virtio disk.
        let r = VmConfig {
            root_on_sd: true,
            disks: vec![drive("p.raw", "pers")],
            ..d
        };
        let argv = crate::cmd::argv_of(&command(&r).unwrap());
        assert!(argv.contains("-device sdhci-pci,id=sdhci -device sd-card,drive=root"));
        assert!(!argv.contains("virtio-blk-device,drive=root"));
        assert_eq!(r.disk_device(0), "/dev/vda");
        assert_eq!(r.root_device(), "/dev/mmcblk0");
        let many = VmConfig {
            root_on_sd: false,
            ..r
        };
        assert_eq!(many.disk_device(25), "/dev/vdaa");
    }

    #[test]
    fn a_long_control_socket_is_refused() {
        let long = format!("/{}", "d".repeat(SOCKET_PATH_MAX + 1));
        assert!(control_args("c", Path::new(&long)).is_err());
        assert!(check_socket_path(Path::new("/short")).is_ok());
    }
}
