//! What the boot test writes into the overlay before power-on: the agent's settings (one
//! preconfigured network, the ephemeral disk, an HTTPS mbus with a freshly made certificate)
//! and a probe that reports, over two virtio serial ports, what the host cannot see from
//! outside: the root mount, the agent's process, the ephemeral disk's mount, monit, and the
//! agent's log as it is written (a VM that is killed may never flush it to its disk).

use serde_json::json;

/// The probe's path in the image.
pub const PROBE: &str = "usr/local/sbin/pistemcell-boot-probe";
/// The probe's systemd unit.
pub const UNIT: &str = "etc/systemd/system/pistemcell-boot-probe.service";
/// Where the unit is enabled (a symlink to it).
pub const UNIT_LINK: &str =
    "etc/systemd/system/multi-user.target.wants/pistemcell-boot-probe.service";
/// The probe's mode file: `agent` (observe) or `no-agent` (start monit as the agent would).
pub const MODE: &str = "var/lib/pistemcell/boot-test/mode";
/// The virtio serial port the probe reports on.
pub const PORT_PROBE: &str = "pistemcell.probe";
/// The virtio serial port the agent's log streams on.
pub const PORT_AGENT_LOG: &str = "pistemcell.agentlog";
/// The virtio serial port the host sends the probe commands on (`poweroff`).
pub const PORT_CONTROL: &str = "pistemcell.control";
/// The prefix of every probe line.
pub const TAG: &str = "PSTC";
/// The guest's address on qemu's user network.
pub use crate::vm::settings::GUEST_IP;
/// The serial number of the ephemeral disk (`/sys/block/vdX/serial`, `/dev/disk/by-id/virtio-…`).
pub const EPHEMERAL_SERIAL: &str = "pstc-ephemeral";
/// The serial number of the deploy proof's persistent disk.
pub const PERSISTENT_SERIAL: &str = "pstc-persistent";
/// The unix socket (in the scratch dir) that reaches the probe's control port.
pub const CONTROL_SOCKET: &str = "control.sock";

/// The udev rule that turns discard off for the emulated SD card (see [`NO_DISCARD_RULE`]).
pub const NO_DISCARD: &str = "etc/udev/rules.d/99-pistemcell-boot-test-no-discard.rules";

/// qemu's SD card carries out an erase by writing every erased block through the image (about
/// 12 MB/s here): mke2fs's discard of a new data partition would write gigabytes. A real card
/// erases inside its controller. The rule sets the card's discard limit to 0, so the kernel
/// refuses discards and mke2fs goes on without one; written only into the boot test's overlay.
pub const NO_DISCARD_RULE: &str = "# Written by `pistemcell boot-test` into its overlay only; never part of a stemcell.\n\
    ACTION==\"add|change\", SUBSYSTEM==\"block\", KERNEL==\"mmcblk[0-9]\", ATTR{queue/discard_max_bytes}=\"0\"\n";

/// The unit that starts the probe as soon as the root filesystem is up.
pub fn unit() -> String {
    format!(
        "# Written by `pistemcell boot-test` into its overlay only; never part of a stemcell.\n\
         [Unit]\nDescription=pistemcell boot-test probe\nDefaultDependencies=no\n\
         After=local-fs.target\n\n[Service]\nType=simple\nExecStart=/{PROBE}\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    )
}

/// The probe: reports `PSTC key fields…` lines every two seconds while the VM runs.
pub fn probe() -> String {
    format!(
        r#"#!/bin/bash
# Written by `pistemcell boot-test` into its overlay only; never part of a stemcell.
# Reports what it sees on the virtio port {PORT_PROBE}; streams the agent's log on {PORT_AGENT_LOG}.
mode=$(cat /{MODE} 2>/dev/null || echo agent)
port() {{
  for _ in $(seq 1 150); do
    [ -e "/dev/virtio-ports/$1" ] && {{ echo "/dev/virtio-ports/$1"; return; }}
    for n in /sys/class/virtio-ports/*/name; do
      [ "$(cat "$n" 2>/dev/null)" = "$1" ] && {{ d=${{n%/name}}; echo "/dev/${{d##*/}}"; return; }}
    done
    sleep 0.2
  done
  echo /dev/null
}}
exec 3>"$(port {PORT_PROBE})"
say() {{ echo "{TAG} $*" >&3; }}
( exec >"$(port {PORT_AGENT_LOG})"; mkdir -p /var/vcap/bosh/log
  exec tail -n +1 -F /var/vcap/bosh/log/current 2>/dev/null ) &
# Commands from the host: `poweroff` shuts the guest down cleanly (its disks written), as a
# reboot of a real VM does. A virtio port reads as end-of-file while no host is connected to
# it: read it again every second.
( control=$(port {PORT_CONTROL})
  [ "$control" = /dev/null ] && exit 0
  while sleep 1; do
    while read -r cmd; do
      case "$cmd" in
        # --force: processes killed and filesystems unmounted without stopping each unit (a
        # unit's stop timeout under emulation is minutes); sync first all the same.
        poweroff) say poweroff-requested; sync; systemctl --force poweroff || poweroff -f ;;
      esac
    done <"$control"
  done ) &
say probe started uptime=$(cut -d' ' -f1 /proc/uptime)
say root source=$(findmnt -no SOURCE /) fstype=$(findmnt -no FSTYPE /) options=$(findmnt -no OPTIONS /)
say kernel $(uname -r)
agent=/var/vcap/bosh/bin/bosh-agent
say agent-elf machine=$(od -An -tu2 -j18 -N2 "$agent" 2>/dev/null | tr -d ' ') \
  class=$(od -An -tu1 -j4 -N1 "$agent" 2>/dev/null | tr -d ' ')
pid_of() {{
  for p in $(pgrep -x "${{1##*/}}"); do
    [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$1" ] && {{ echo "$p"; return; }}
  done
}}
monit_started=
monit_seen=
layout_src=
while true; do
  up=$(cut -d' ' -f1 /proc/uptime)
  a=$(pid_of "$agent")
  if [ -n "$a" ]; then
    say agent pid=$a age=$(ps -o etimes= -p "$a" | tr -d ' ') uptime=$up
  else
    say agent none sv=$(sv status /etc/sv/agent 2>&1 | head -1 | cut -d';' -f1 | tr ' ' '_') uptime=$up
  fi
  if [ "$mode" = no-agent ] && [ -z "$monit_started" ] && pgrep -x runsvdir >/dev/null; then
    # What the agent does at start: the monit user, then /etc/service/monit, then sv up.
    [ -s /var/vcap/monit/monit.user ] || {{
      echo "vcap:$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/var/vcap/monit/monit.user
      chmod 0600 /var/vcap/monit/monit.user; }}
    ln -sfn /etc/sv/monit /etc/service/monit
    for _ in $(seq 1 20); do sv up /etc/service/monit >/dev/null 2>&1 && break; sleep 0.5; done
    monit_started=1
    say monit-started-by-probe
  fi
  m=$(pid_of /var/vcap/bosh/bin/monit)
  if [ -n "$m" ] && [ "$m" != "$monit_seen" ]; then
    v=$(/var/vcap/bosh/bin/monit -V 2>/dev/null | grep -o 'version [0-9][0-9.]*' | head -1 | cut -d' ' -f2)
    code=none
    if [ -s /var/vcap/monit/monit.user ] && exec 4<>/dev/tcp/127.0.0.1/2822; then
      auth=$(tr -d '\n' </var/vcap/monit/monit.user | base64 -w0)
      printf 'GET /_status2?format=xml HTTP/1.0\r\nAuthorization: Basic %s\r\n\r\n' "$auth" >&4
      code=$(timeout 5 head -1 <&4 | cut -d' ' -f2)
      exec 4>&-
    fi
    say monit pid=$m version=$v http=$code uptime=$up
    [ "$code" = 200 ] && monit_seen=$m
  fi
  src=$(findmnt -no SOURCE /var/vcap/data 2>/dev/null)
  if [ -n "$src" ]; then
    disk=$(lsblk -no PKNAME "$src" 2>/dev/null | head -1)
    say data source=$src fstype=$(findmnt -no FSTYPE /var/vcap/data) disk=$disk \
      serial=$(cat /sys/block/$disk/serial 2>/dev/null) swap=$(swapon --show=NAME --noheadings | tr '\n' ',')
    # The data disk's partitions (number:start:sectors:MBR type:filesystem), once per mount.
    if [ "$src" != "$layout_src" ]; then
      parts=
      for d in /sys/block/$disk/$disk*; do
        [ -r "$d/partition" ] || continue
        p=/dev/${{d##*/}}
        parts="$parts$(cat "$d/partition"):$(cat "$d/start"):$(cat "$d/size"):$(blkid -p -s PART_ENTRY_TYPE -o value "$p" 2>/dev/null):$(blkid -p -s TYPE -o value "$p" 2>/dev/null),"
      done
      say layout disk=$disk parts=${{parts%,}}
      layout_src=$src
    fi
  fi
  sleep 2
done
"#
    )
}

/// The throwaway mbus certificate: a CA and the agent's certificate it signs (for 127.0.0.1,
/// the host end of the forwarded port, and the guest's address).
pub struct MbusCert {
    /// The CA certificate (PEM): the only root the host's client trusts.
    pub ca: String,
    /// The agent's certificate (PEM).
    pub certificate: String,
    /// The agent's private key (PEM).
    pub private_key: String,
}

/// Makes a fresh CA and agent certificate.
pub fn mbus_cert() -> Result<MbusCert, rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "pistemcell boot-test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        GUEST_IP.to_string(),
        "localhost".to_string(),
    ])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "pistemcell boot-test agent");
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;
    Ok(MbusCert {
        ca: ca_cert.pem(),
        certificate: cert.pem(),
        private_key: key.serialize_pem(),
    })
}

/// The disks the settings name: the system disk's device, and the ephemeral disk's device
/// when the VM has one (found by its serial).
pub struct GuestDisks {
    /// `/dev/vda` or `/dev/mmcblk0`.
    pub system: String,
    /// The ephemeral disk's device (`/dev/vdb`), or `None`: the agent has only the system disk.
    pub ephemeral: Option<String>,
}

/// The agent's settings: the agent id, one preconfigured network on qemu's user network, the
/// disks, the HTTPS mbus, and the blobstore: the agent's own local one, or `blobstore` (the
/// deploy proof's dav server).
pub fn settings(
    agent_id: &str,
    user: &str,
    password: &str,
    cert: &MbusCert,
    disks: &GuestDisks,
    blobstore: Option<serde_json::Value>,
) -> String {
    let networks = json!({"default": {
        "type": "manual", "ip": GUEST_IP, "netmask": "255.255.255.0",
        "gateway": "10.0.2.2", "dns": ["10.0.2.3"], "default": ["dns", "gateway"],
    }});
    let mut env = json!({"bosh": {
        "mbus": {"cert": {"ca": cert.ca, "certificate": cert.certificate, "private_key": cert.private_key}},
    }});
    if blobstore.is_some() {
        // A compilation VM keeps its compilers (the director sets this for every other VM).
        env["bosh"]["remove_dev_tools"] = json!(false);
    }
    let local = json!({"provider": "local", "options": {"blobstore_path": "/var/vcap/micro_bosh/data/cache"}});
    let mbus = format!("https://{user}:{password}@0.0.0.0:6868");
    let v = crate::vm::settings::agent_settings(
        agent_id,
        agent_id,
        &crate::vm::settings::Agent {
            mbus: &mbus,
            blobstore: blobstore.as_ref().unwrap_or(&local),
            ntp: &[],
        },
        networks
            .as_object()
            .cloned()
            .as_ref()
            .unwrap_or(&Default::default()),
        &env,
        &crate::vm::settings::Disks {
            system: disks.system.clone(),
            ephemeral: disks
                .ephemeral
                .clone()
                .map(|path| (EPHEMERAL_SERIAL.to_string(), path)),
            persistent: Vec::new(),
        },
    );
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// One line the probe reported: its key and `name=value` fields (other words under `_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeLine {
    /// `root`, `agent`, `monit`, `data`, …
    pub key: String,
    /// The fields.
    pub fields: std::collections::BTreeMap<String, String>,
    /// The words after the key that are not `name=value`.
    pub words: Vec<String>,
}

impl ProbeLine {
    /// A field's value, or "".
    pub fn get(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

/// Parses a `PSTC key …` line (anything else is `None`: the port may carry noise).
pub fn parse_line(line: &str) -> Option<ProbeLine> {
    let rest = line.trim().strip_prefix(TAG)?.trim_start();
    let mut it = rest.split_whitespace();
    let key = it.next()?.to_string();
    let mut fields = std::collections::BTreeMap::new();
    let mut words = Vec::new();
    for w in it {
        match w.split_once('=') {
            Some((k, v)) => {
                fields.insert(k.to_string(), v.to_string());
            }
            None => words.push(w.to_string()),
        }
    }
    Some(ProbeLine { key, fields, words })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lines_parse_and_noise_is_ignored() {
        let l = parse_line("PSTC agent pid=612 age=11 uptime=40.2").unwrap();
        assert_eq!(
            (l.key.as_str(), l.get("pid"), l.get("age")),
            ("agent", "612", "11")
        );
        let r = parse_line("PSTC monit-started-by-probe now").unwrap();
        assert_eq!(r.words, ["now"]);
        assert_eq!(parse_line("bosh-stemcell login:"), None);
        assert_eq!(parse_line("PSTC"), None);
    }

    #[test]
    fn the_probe_is_valid_bash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("probe");
        std::fs::write(&p, probe()).unwrap();
        let st = std::process::Command::new("bash")
            .arg("-n")
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn settings_carry_the_mbus_and_the_certificate() {
        let c = mbus_cert().unwrap();
        assert!(c.ca.contains("BEGIN CERTIFICATE") && c.private_key.contains("PRIVATE KEY"));
        let disks = GuestDisks {
            system: "/dev/vda".into(),
            ephemeral: Some("/dev/vdb".into()),
        };
        let s: serde_json::Value =
            serde_json::from_str(&settings("id-1", "u", "p", &c, &disks, None)).unwrap();
        assert_eq!(s["mbus"], "https://u:p@0.0.0.0:6868");
        assert_eq!(s["env"]["bosh"]["mbus"]["cert"]["ca"], c.ca.as_str());
        assert_eq!(s["networks"]["default"]["preconfigured"], true);
        assert_eq!(s["disks"]["ephemeral"]["id"], EPHEMERAL_SERIAL);
        assert_eq!(s["disks"]["ephemeral"]["path"], "/dev/vdb");
        // A Pi's card alone: no ephemeral disk at all (the agent then partitions the card).
        let card = GuestDisks {
            system: "/dev/mmcblk0".into(),
            ephemeral: None,
        };
        let s: serde_json::Value =
            serde_json::from_str(&settings("id-1", "u", "p", &c, &card, None)).unwrap();
        assert_eq!(s["disks"]["system"], "/dev/mmcblk0");
        assert!(s["disks"].get("ephemeral").is_none(), "{s}");
    }
}
