//! Test support: writing fixture .deb files, including hostile ones.
//!
//! Used by unit tests and by the integration tests under `tests/`. Entry names and link
//! targets are written into the tar headers byte for byte (GNU long-name records past 100
//! bytes), so a fixture can carry `../x`, `/etc/passwd` or a hard link to `/etc/shadow`
//! exactly as an attacker would. The output is accepted by `dpkg-deb --info/--contents`.
//!
//! ```no_run
//! use pistemcell::deb::build::{DebBuilder, Packing};
//! let mut deb = DebBuilder::new("hello", "1.0", "arm64");
//! deb.dir("./", 0o755).dir("./usr/", 0o755).dir("./usr/bin/", 0o755)
//!     .file("./usr/bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
//!     .script("postinst", "#!/bin/sh\nexit 0\n")
//!     .compression(Packing::Zstd);
//! deb.write(std::path::Path::new("/tmp/hello.deb")).unwrap();
//! ```

use std::io::{self, Write};
use std::path::Path;

/// Default mtime of fixture entries (2023-11-14), so fixtures are reproducible.
pub const FIXTURE_MTIME: u64 = 1_700_000_000;

/// Compression of the tarballs written by [`DebBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// Plain `.tar`.
    None,
    /// `.tar.gz`.
    Gzip,
    /// `.tar.xz` (Debian's default).
    Xz,
    /// `.tar.zst` (Ubuntu's default).
    Zstd,
}

impl Packing {
    /// The member name suffix: "", ".gz", ".xz", ".zst".
    pub fn suffix(self) -> &'static str {
        match self {
            Packing::None => "",
            Packing::Gzip => ".gz",
            Packing::Xz => ".xz",
            Packing::Zstd => ".zst",
        }
    }

    /// Compresses `data` with this method.
    pub fn compress(self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Packing::None => Ok(data.to_vec()),
            Packing::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(data)?;
                enc.finish()
            }
            Packing::Xz => {
                let mut enc = xz2::write::XzEncoder::new(Vec::new(), 6);
                enc.write_all(data)?;
                enc.finish()
            }
            Packing::Zstd => zstd::stream::encode_all(data, 3),
        }
    }
}

/// What a tar entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file with its content.
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symbolic link to the given target text.
    Symlink(Vec<u8>),
    /// A hard link to the given archive name.
    HardLink(Vec<u8>),
    /// A named pipe.
    Fifo,
    /// A character device (major, minor).
    Char(u32, u32),
    /// A block device (major, minor).
    Block(u32, u32),
}

/// One data.tar entry as written: raw name bytes and all metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEntry {
    /// The entry name exactly as stored (e.g. `./usr/bin/x`, or hostile `../x`).
    pub name: Vec<u8>,
    /// What the entry is.
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Extended attributes, written as PAX `SCHILY.xattr.NAME` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl TestEntry {
    /// An entry owned by root with the fixture mtime and no xattrs.
    pub fn new(name: impl AsRef<[u8]>, kind: Kind, mode: u32) -> TestEntry {
        TestEntry {
            name: name.as_ref().to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: FIXTURE_MTIME,
            xattrs: Vec::new(),
        }
    }

    /// Sets the numeric owner.
    pub fn owner(mut self, uid: u64, gid: u64) -> TestEntry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Sets the mtime.
    pub fn mtime(mut self, mtime: u64) -> TestEntry {
        self.mtime = mtime;
        self
    }

    /// Adds an extended attribute (e.g. `security.capability`).
    pub fn xattr(mut self, name: &str, value: &[u8]) -> TestEntry {
        self.xattrs.push((name.to_string(), value.to_vec()));
        self
    }
}

/// One data.tar item: a described entry or a verbatim header.
#[derive(Debug, Clone)]
enum Item {
    Entry(TestEntry),
    Raw(Vec<u8>, Vec<u8>),
}

/// Builds a .deb: control fields, control files/scripts and data entries.
#[derive(Debug, Clone)]
pub struct DebBuilder {
    control: String,
    control_files: Vec<(String, Vec<u8>, u32)>,
    entries: Vec<Item>,
    control_packing: Packing,
    data_packing: Packing,
}

impl DebBuilder {
    /// A package with a minimal valid control file; no data entries yet; xz compression.
    pub fn new(package: &str, version: &str, arch: &str) -> DebBuilder {
        DebBuilder {
            control: format!(
                "Package: {package}\nVersion: {version}\nArchitecture: {arch}\n\
                 Maintainer: Test <test@example.org>\nInstalled-Size: 1\n\
                 Description: test fixture {package}\n fixture package written by pistemcell tests\n"
            ),
            control_files: Vec::new(),
            entries: Vec::new(),
            control_packing: Packing::Xz,
            data_packing: Packing::Xz,
        }
    }

    /// Replaces the whole control file text (a final newline is added if missing).
    pub fn control(&mut self, text: &str) -> &mut Self {
        self.control = text.to_string();
        if !self.control.ends_with('\n') {
            self.control.push('\n');
        }
        self
    }

    /// Appends control fields (`Depends: libc6\n…`) to the control file.
    pub fn fields(&mut self, text: &str) -> &mut Self {
        self.control.push_str(text);
        if !self.control.ends_with('\n') {
            self.control.push('\n');
        }
        self
    }

    /// Adds a maintainer script (preinst, postinst, prerm, postrm, config) with mode 0755.
    pub fn script(&mut self, name: &str, body: &str) -> &mut Self {
        self.control_file(name, body.as_bytes(), 0o755)
    }

    /// Adds any file to control.tar (conffiles, md5sums, triggers, shlibs…).
    pub fn control_file(&mut self, name: &str, content: &[u8], mode: u32) -> &mut Self {
        self.control_files
            .push((name.to_string(), content.to_vec(), mode));
        self
    }

    /// Sets the compression of both tarballs.
    pub fn compression(&mut self, packing: Packing) -> &mut Self {
        self.control_packing = packing;
        self.data_packing = packing;
        self
    }

    /// Sets the compression of data.tar only.
    pub fn data_compression(&mut self, packing: Packing) -> &mut Self {
        self.data_packing = packing;
        self
    }

    /// Adds a regular file owned by root.
    pub fn file(&mut self, name: &str, content: &[u8], mode: u32) -> &mut Self {
        self.entry(TestEntry::new(name, Kind::File(content.to_vec()), mode))
    }

    /// Adds a directory owned by root (`./usr/` style names, trailing slash optional).
    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.entry(TestEntry::new(name, Kind::Dir, mode))
    }

    /// Adds a symlink `name -> target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(TestEntry::new(
            name,
            Kind::Symlink(target.as_bytes().to_vec()),
            0o777,
        ))
    }

    /// Adds a hard link `name` to the archive member `target`.
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(TestEntry::new(
            name,
            Kind::HardLink(target.as_bytes().to_vec()),
            0o644,
        ))
    }

    /// Adds any entry, hostile ones included (raw name and link bytes).
    pub fn entry(&mut self, entry: TestEntry) -> &mut Self {
        self.entries.push(Item::Entry(entry));
        self
    }

    /// Adds a tar header exactly as given (checksum included, nothing fixed up) and its
    /// data, padded to 512 bytes: for entries no well-formed writer would produce.
    pub fn raw_header(&mut self, header: &tar::Header, data: &[u8]) -> &mut Self {
        self.entries
            .push(Item::Raw(header.as_bytes().to_vec(), data.to_vec()));
        self
    }

    /// The uncompressed control.tar.
    pub fn control_tar(&self) -> io::Result<Vec<u8>> {
        let mut tar = Vec::new();
        append(&mut tar, &TestEntry::new("./", Kind::Dir, 0o755))?;
        let control = TestEntry::new("./control", Kind::File(self.control.clone().into()), 0o644);
        append(&mut tar, &control)?;
        for (name, content, mode) in &self.control_files {
            let entry = TestEntry::new(format!("./{name}"), Kind::File(content.clone()), *mode);
            append(&mut tar, &entry)?;
        }
        tar.extend_from_slice(&[0u8; 1024]);
        Ok(tar)
    }

    /// The uncompressed data.tar.
    pub fn data_tar(&self) -> io::Result<Vec<u8>> {
        let mut tar = Vec::new();
        for item in &self.entries {
            match item {
                Item::Entry(entry) => append(&mut tar, entry)?,
                Item::Raw(header, data) => {
                    tar.extend_from_slice(header);
                    tar.extend_from_slice(data);
                    tar.resize(tar.len() + data.len().div_ceil(512) * 512 - data.len(), 0);
                }
            }
        }
        tar.extend_from_slice(&[0u8; 1024]);
        Ok(tar)
    }

    /// The whole .deb as bytes.
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        let control = self.control_packing.compress(&self.control_tar()?)?;
        let data = self.data_packing.compress(&self.data_tar()?)?;
        let control_name = format!("control.tar{}", self.control_packing.suffix());
        let data_name = format!("data.tar{}", self.data_packing.suffix());
        Ok(ar_bytes(&[
            ("debian-binary", b"2.0\n"),
            (&control_name, &control),
            (&data_name, &data),
        ]))
    }

    /// Writes the .deb to `path`.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.to_bytes()?)
    }
}

/// An ar archive of the given (name, data) members, names written as given (16 bytes max;
/// add a trailing `/` to imitate GNU ar). Lets tests make .debs with odd members.
pub fn ar_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            FIXTURE_MTIME,
            0,
            0,
            "100644",
            data.len()
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// Writes [`ar_bytes`] to `path`.
pub fn write_ar(path: &Path, members: &[(&str, &[u8])]) -> io::Result<()> {
    std::fs::write(path, ar_bytes(members))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Appends one GNU-format header (plus long-name, long-link and PAX records) and its data.
fn append(tar: &mut Vec<u8>, entry: &TestEntry) -> io::Result<()> {
    use tar::EntryType;
    let plain = |name: &[u8], kind, data: Vec<u8>| Raw {
        name: name.to_vec(),
        link: Vec::new(),
        kind,
        data,
        dev: None,
    };
    if !entry.xattrs.is_empty() {
        let mut records = Vec::new();
        for (name, value) in &entry.xattrs {
            records.extend(pax_record(&format!("SCHILY.xattr.{name}"), value));
        }
        let pax = plain(b"./PaxHeaders/x", EntryType::XHeader, records);
        push_header(tar, &pax, &TestEntry::new("", Kind::Dir, 0o644))?;
    }
    let (kind, link, data, dev) = match &entry.kind {
        Kind::File(content) => (EntryType::Regular, &[][..], &content[..], None),
        Kind::Dir => (EntryType::Directory, &[][..], &[][..], None),
        Kind::Symlink(target) => (EntryType::Symlink, &target[..], &[][..], None),
        Kind::HardLink(target) => (EntryType::Link, &target[..], &[][..], None),
        Kind::Fifo => (EntryType::Fifo, &[][..], &[][..], None),
        Kind::Char(ma, mi) => (EntryType::Char, &[][..], &[][..], Some((*ma, *mi))),
        Kind::Block(ma, mi) => (EntryType::Block, &[][..], &[][..], Some((*ma, *mi))),
    };
    let meta = TestEntry::new("", Kind::Dir, 0o644);
    if link.len() > 100 {
        let long = plain(
            b"././@LongLink",
            EntryType::GNULongLink,
            nul_terminated(link),
        );
        push_header(tar, &long, &meta)?;
    }
    if entry.name.len() > 100 {
        let long = plain(
            b"././@LongLink",
            EntryType::GNULongName,
            nul_terminated(&entry.name),
        );
        push_header(tar, &long, &meta)?;
    }
    let raw = Raw {
        name: entry.name[..entry.name.len().min(100)].to_vec(),
        link: link[..link.len().min(100)].to_vec(),
        kind,
        data: data.to_vec(),
        dev,
    };
    push_header(tar, &raw, entry)
}

/// One header as written: name/link already cut to the 100-byte fields.
struct Raw {
    name: Vec<u8>,
    link: Vec<u8>,
    kind: tar::EntryType,
    data: Vec<u8>,
    dev: Option<(u32, u32)>,
}

fn nul_terminated(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.push(0);
    v
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "LEN key=value\n" where LEN counts its own digits.
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

fn push_header(tar: &mut Vec<u8>, raw: &Raw, meta: &TestEntry) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    {
        let gnu = header
            .as_gnu_mut()
            .ok_or_else(|| invalid("GNU header expected".into()))?;
        gnu.name[..raw.name.len()].copy_from_slice(&raw.name);
        gnu.linkname[..raw.link.len()].copy_from_slice(&raw.link);
        if meta.uid == 0 {
            gnu.uname[..4].copy_from_slice(b"root");
        }
        if meta.gid == 0 {
            gnu.gname[..4].copy_from_slice(b"root");
        }
    }
    header.set_mode(meta.mode);
    header.set_uid(meta.uid);
    header.set_gid(meta.gid);
    header.set_mtime(meta.mtime);
    header.set_size(raw.data.len() as u64);
    header.set_entry_type(raw.kind);
    if let Some((major, minor)) = raw.dev {
        header.set_device_major(major)?;
        header.set_device_minor(minor)?;
    }
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    tar.extend_from_slice(&raw.data);
    let pad = raw.data.len().div_ceil(512) * 512 - raw.data.len();
    tar.resize(tar.len() + pad, 0);
    Ok(())
}
