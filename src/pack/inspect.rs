//! Reading a stemcell back (what `pistemcell inspect` and the end of every build do): every
//! member read to its end through gzip and tar, `stemcell.MF` parsed with the types BOSH needs
//! and its `sha1` checked against `image`, and the image itself checked while it streams by:
//! a disk image's partition table, FAT32 boot sector and ext4 superblock; a rootfs tarball
//! read to its end. Memory stays bounded whatever the image's size.
//!
//! The stemcell may be hostile: its members must be plain regular files, each once (see
//! [`members`]); metadata members are read under the caps of `crate::untrusted`, the manifest's
//! nesting checked before it is parsed; names are escaped wherever they are shown.

use std::io::{self, Read};
use std::path::Path;

use sha1::{Digest, Sha1};

use super::stemcell::Manifest;
use crate::untrusted::members;

/// What a stemcell holds.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The manifest.
    pub manifest: Manifest,
    /// Every member: (name escaped for display, size).
    pub members: Vec<(String, u64)>,
    /// What the image is, as checked.
    pub image: String,
    /// A summary of `provenance.json`, when the stemcell has one.
    pub provenance: Option<String>,
}

impl Inspection {
    /// The inspection as JSON (`manifest`, `members`, `image`, `ok`), for `inspect --json`.
    pub fn to_json(&self) -> String {
        let esc = crate::untrusted::json_string;
        let m = &self.manifest;
        let cp: Vec<String> = m
            .cloud_properties
            .iter()
            .map(|(k, v)| format!("{}: {}", esc(k), esc(v)))
            .collect();
        let members: Vec<String> = self
            .members
            .iter()
            .map(|(n, s)| format!("{{\"name\": {}, \"size\": {s}}}", esc(n)))
            .collect();
        let formats: Vec<String> = m.stemcell_formats.iter().map(|f| esc(f)).collect();
        format!(
            "{{\"manifest\": {{\"name\": {}, \"version\": {}, \"bosh_protocol\": {}, \"api_version\": {}, \"sha1\": {}, \"operating_system\": {}, \"stemcell_formats\": [{}], \"cloud_properties\": {{{}}}}}, \"members\": [{}], \"image\": {}, \"provenance\": {}, \"ok\": true}}",
            esc(&m.name),
            esc(&m.version),
            m.bosh_protocol,
            m.api_version,
            esc(&m.sha1),
            esc(&m.operating_system),
            formats.join(", "),
            cp.join(", "),
            members.join(", "),
            esc(&self.image),
            self.provenance.as_deref().map_or("null".to_string(), esc)
        )
    }
}

/// Watches a disk image stream: the MBR, then the first sector of partition 1 and the ext4
/// superblock of partition 2 as they pass.
#[derive(Default)]
struct DiskWatch {
    pos: u64,
    head: Vec<u8>,
    parts: Vec<crate::image::mbr::Entry>,
    boot: Vec<u8>,
    root_sb: Vec<u8>,
}

impl DiskWatch {
    fn feed(&mut self, data: &[u8]) {
        let (start, end) = (self.pos, self.pos + data.len() as u64);
        let grab = |buf: &mut Vec<u8>, at: u64, len: u64| {
            while (buf.len() as u64) < len {
                let want = at + buf.len() as u64;
                if want < start || want >= end {
                    break;
                }
                buf.push(data[(want - start) as usize]);
            }
        };
        grab(&mut self.head, 0, 512);
        if self.parts.is_empty() && self.head.len() == 512 {
            if let Some((_, p)) = crate::image::mbr::parse(&self.head) {
                self.parts = p;
            }
        }
        if let Some(p1) = self.parts.first().copied() {
            grab(&mut self.boot, p1.2, 512);
        }
        if let Some(p2) = self.parts.get(1).copied() {
            grab(&mut self.root_sb, p2.2 + 1024, 1024);
        }
        self.pos = end;
    }

    fn verdict(&self) -> Result<String, String> {
        if self.head.len() < 512 || self.head[510..512] != [0x55, 0xaa] {
            return Err("the image has no MBR".into());
        }
        if self.parts.len() < 2 {
            return Err(format!(
                "the image has {} partitions; Bakery and the Pi need 2",
                self.parts.len()
            ));
        }
        let (p1, p2) = (self.parts[0], self.parts[1]);
        if p2.2 + p2.3 > self.pos || p1.2 + p1.3 > self.pos {
            return Err(format!(
                "the partitions end beyond the image ({} bytes)",
                self.pos
            ));
        }
        if self.boot.len() < 512 || &self.boot[82..90] != b"FAT32   " {
            return Err("partition 1 holds no FAT32 filesystem".into());
        }
        if self.root_sb.len() < 1024 || self.root_sb[56..58] != [0x53, 0xef] {
            return Err("partition 2 holds no ext4 filesystem".into());
        }
        Ok(format!(
            "MBR disk image, {} MiB: p1 FAT32 {} MiB at {} MiB, p2 ext4 {} MiB at {} MiB",
            self.pos >> 20,
            p1.3 >> 20,
            p1.2 >> 20,
            p2.3 >> 20,
            p2.2 >> 20
        ))
    }
}

/// Reads `r` to its end through `watch`, returning the byte count.
fn drain(mut r: impl Read, mut watch: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf)?;
        if got == 0 {
            return Ok(n);
        }
        watch(&buf[..got]);
        n += got as u64;
    }
}

/// What an image turned out to be, by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A raw MBR disk image.
    Disk,
    /// A gzip of one.
    DiskGz,
    /// A gzip of a tar (a rootfs).
    Tarball,
}

impl Kind {
    fn format(self) -> &'static str {
        match self {
            Kind::Disk => "piimg",
            Kind::DiskGz => "rawdisk-gz",
            Kind::Tarball => "warden-tarball",
        }
    }
}

/// Reads up to `n` bytes (fewer only at the end of the stream).
fn peek(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut buf[got..])? {
            0 => break,
            k => got += k,
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Checks the image member as it streams by; what it is comes from its content (members
/// may come in any order), and is compared with the manifest's format afterwards.
fn check_image(entry: &mut dyn Read, sha: &mut Sha1) -> Result<(Kind, String), String> {
    let mut tee = Tee { inner: entry, sha };
    let rd = |e: io::Error| format!("reading image: {e}");
    let head = peek(&mut tee, 2).map_err(rd)?;
    let mut stream = io::Cursor::new(head.clone()).chain(&mut tee);
    if head != [0x1f, 0x8b] {
        let mut w = DiskWatch::default();
        drain(&mut stream, |d| w.feed(d)).map_err(rd)?;
        return Ok((Kind::Disk, w.verdict()?));
    }
    let mut gz = flate2::read::GzDecoder::new(stream);
    let first = peek(&mut gz, 512).map_err(|e| format!("reading image (gzip): {e}"))?;
    let is_disk = crate::image::mbr::parse(&first).is_some_and(|(_, p)| !p.is_empty());
    let mut inner = io::Cursor::new(first).chain(gz);
    let verdict = if is_disk {
        let mut w = DiskWatch::default();
        drain(&mut inner, |d| w.feed(d)).map_err(|e| format!("reading image (gzip): {e}"))?;
        (Kind::DiskGz, format!("gzip of an {}", w.verdict()?))
    } else {
        let mut archive = tar::Archive::new(crate::untrusted::TarGuard::new(&mut inner));
        let mut entries = 0u64;
        for e in archive
            .entries()
            .map_err(|e| format!("image (rootfs tgz): {e}"))?
        {
            let mut e = e.map_err(|e| format!("image (rootfs tgz): {e}"))?;
            io::copy(&mut e, &mut io::sink())
                .map_err(|err| format!("image (rootfs tgz) member: {err}"))?;
            entries += 1;
        }
        drain(&mut inner, |_| {}).map_err(|e| format!("reading image (gzip): {e}"))?;
        (Kind::Tarball, format!("rootfs tarball, {entries} entries"))
    };
    drain(&mut tee, |_| {}).map_err(rd)?;
    Ok(verdict)
}

struct Tee<'a> {
    inner: &'a mut dyn Read,
    sha: &'a mut Sha1,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads and checks the stemcell at `path`; the error says what is wrong.
pub fn inspect(path: &Path) -> Result<Inspection, String> {
    use crate::untrusted::{MANIFEST_MAX, RECORD_MAX};
    let file = crate::untrusted::open_regular(path).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(crate::untrusted::TarGuard::new(
        flate2::read::GzDecoder::new(io::BufReader::new(file)),
    ));
    let mut manifest: Option<Manifest> = None;
    let mut members = Vec::new();
    let mut seen = members::Members::default();
    let mut image: Option<(Kind, String, String)> = None;
    let mut provenance = None;
    let entries = archive
        .entries()
        .map_err(|e| format!("not a gzip tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading the archive: {e}"))?;
        let Some(name) = seen.check(&entry)? else {
            continue;
        };
        let size = entry.header().size().unwrap_or(0);
        match name.as_str() {
            "stemcell.MF" => {
                let text =
                    members::read_text(&mut entry, &name, MANIFEST_MAX, "a stemcell manifest")?;
                let m: Manifest = members::parse_yaml(&text, &name)?;
                if !super::stemcell::versions_quoted(&text) {
                    return Err("stemcell.MF: `version` is not quoted; some readers take 1.10 for the number 1.1".into());
                }
                manifest = Some(m);
            }
            "image" => {
                let mut sha = Sha1::new();
                let (kind, verdict) = check_image(&mut entry, &mut sha)?;
                let hex: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
                image = Some((kind, verdict, hex));
            }
            super::provenance::NAME => {
                let text = members::read_text(&mut entry, &name, RECORD_MAX, "a JSON record")?;
                let v: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| format!("member {name}: {e}"))?;
                provenance = Some(super::provenance::summary(&v));
            }
            _ => {
                io::copy(&mut entry, &mut io::sink()).map_err(|e| format!("member {name}: {e}"))?;
            }
        }
        members.push((name, size));
    }
    let manifest = manifest.ok_or("no stemcell.MF at the top of the archive")?;
    let (kind, verdict, sha1) = image.ok_or("no `image` member")?;
    check_manifest(&manifest)?;
    if manifest.stemcell_formats.first().map(String::as_str) != Some(kind.format()) {
        return Err(format!(
            "stemcell.MF says the image is {:?}, but it is a {verdict} ({})",
            manifest.stemcell_formats,
            kind.format()
        ));
    }
    if sha1 != manifest.sha1 {
        return Err(format!(
            "stemcell.MF says sha1 {}, but `image` has sha1 {sha1}",
            manifest.sha1
        ));
    }
    Ok(Inspection {
        manifest,
        members,
        image: verdict,
        provenance,
    })
}

/// What BOSH needs of the manifest beyond its types.
fn check_manifest(m: &Manifest) -> Result<(), String> {
    for (key, value) in [
        ("name", &m.name),
        ("version", &m.version),
        ("operating_system", &m.operating_system),
        ("sha1", &m.sha1),
    ] {
        if value.trim().is_empty() {
            return Err(format!("stemcell.MF: `{key}` is empty"));
        }
    }
    if m.bosh_protocol != 1 || m.api_version != 3 {
        return Err(format!(
            "stemcell.MF: bosh_protocol {} / api_version {} (BOSH reads 1 / 3)",
            m.bosh_protocol, m.api_version
        ));
    }
    for key in ["infrastructure", "hypervisor", "name", "version"] {
        if m.cloud_properties.get(key).is_none_or(|v| v.is_empty()) {
            return Err(format!("stemcell.MF: cloud_properties.{key} is missing"));
        }
    }
    let infra = &m.cloud_properties["infrastructure"];
    let want = match infra.as_str() {
        "bakery" => "piimg",
        "raw" => "rawdisk-gz",
        "warden" => "warden-tarball",
        other => {
            return Err(format!(
                "stemcell.MF: infrastructure `{other}` is not bakery, raw or warden"
            ))
        }
    };
    if m.stemcell_formats != [want] {
        return Err(format!(
            "stemcell.MF: stemcell_formats {:?}, but {infra} needs [{want}]",
            m.stemcell_formats
        ));
    }
    Ok(())
}
