//! Reading .deb files: the ar container, the control tarball and the data tarball.
//!
//! A .deb is an ar archive (`!<arch>\n`) whose first member is `debian-binary` (`2.0\n`),
//! followed by `control.tar[.gz|.xz|.zst]` and `data.tar[.gz|.xz|.zst]`. [`Deb::open`] reads
//! only the member table; the tarballs are streamed and decompressed on demand, so a package
//! of any size costs a few kilobytes of memory. Every failure is a [`DebError`] naming the
//! .deb file and the member, never a panic.

pub mod build;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Largest single file accepted from control.tar (md5sums of huge packages stay far below).
const MAX_CONTROL_FILE: u64 = 64 * 1024 * 1024;
/// Largest `debian-binary` member accepted (it is normally 4 bytes: `2.0\n`).
const MAX_DEBIAN_BINARY: u64 = 4096;

/// Errors from reading a .deb file; each names the file, the member and a way out.
#[derive(Debug, Error)]
pub enum DebError {
    /// The file could not be opened or read at the ar level.
    #[error("cannot read .deb {path}: {source}; check that the file exists and is readable")]
    Io {
        /// The .deb file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file does not start with the ar magic.
    #[error("{path} is not a .deb (no `!<arch>` ar header); the file is corrupt or not a Debian package: download it again")]
    NotAr {
        /// The .deb file.
        path: PathBuf,
    },
    /// An ar member header is malformed.
    #[error("{path}: malformed ar member header at byte {offset}: {detail}; the .deb is corrupt: download it again")]
    BadHeader {
        /// The .deb file.
        path: PathBuf,
        /// Byte offset of the header in the file.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// The file ends before a member header or member data ends.
    #[error("{path} is truncated: ar member `{member}` {detail}; the download was cut short: download it again")]
    Truncated {
        /// The .deb file.
        path: PathBuf,
        /// The member being read (or the last one seen).
        member: String,
        /// What is missing.
        detail: String,
    },
    /// A required member is missing.
    #[error("{path} has no `{member}` member; it is not a valid Debian binary package: download it again")]
    MissingMember {
        /// The .deb file.
        path: PathBuf,
        /// The missing member (`debian-binary`, `control.tar*`, `data.tar*`).
        member: String,
    },
    /// `debian-binary` is not first or does not declare format 2.x.
    #[error("{path}: member `debian-binary` {detail}; only format 2.x .debs are supported: rebuild the package with dpkg-deb")]
    BadFormat {
        /// The .deb file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The member uses a compression this program does not read.
    #[error("{path}: member `{member}` uses an unsupported compression (supported: none, gz, xz, zst); repack it with `dpkg-deb -Zxz`")]
    Unsupported {
        /// The .deb file.
        path: PathBuf,
        /// The member name.
        member: String,
    },
    /// A member's content could not be decompressed or parsed as tar.
    #[error("{path}: member `{member}` is corrupt: {detail}; download the package again")]
    Corrupt {
        /// The .deb file.
        path: PathBuf,
        /// The member name.
        member: String,
        /// What failed.
        detail: String,
    },
    /// control.tar holds an entry this program refuses (bad name, too large, no ./control).
    #[error("{path}: member `{member}`, entry `{entry}`: {detail}; the package is malformed: report it to its maintainer")]
    BadControl {
        /// The .deb file.
        path: PathBuf,
        /// The control member name.
        member: String,
        /// The entry inside control.tar.
        entry: String,
        /// What is wrong.
        detail: String,
    },
    /// A path in data.tar is not valid UTF-8.
    #[error("{path}: member `{member}`, entry `{entry}`: path is not valid UTF-8; report the package to its maintainer")]
    NonUtf8 {
        /// The .deb file.
        path: PathBuf,
        /// The data member name.
        member: String,
        /// The entry, lossily decoded.
        entry: String,
    },
}

/// One member of the ar container: its name and where its data lies in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member name without GNU ar's trailing `/` or padding.
    pub name: String,
    /// Offset of the member's data in the file.
    pub offset: u64,
    /// Size of the member's data in bytes.
    pub size: u64,
}

/// Compression of a control or data tarball, taken from the member name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain `*.tar`.
    None,
    /// `*.tar.gz`.
    Gzip,
    /// `*.tar.xz`.
    Xz,
    /// `*.tar.zst` (Ubuntu's default).
    Zstd,
}

/// An opened .deb: its path and ar member table; tarballs are read on demand.
#[derive(Debug, Clone)]
pub struct Deb {
    path: PathBuf,
    members: Vec<Member>,
    control: usize,
    data: usize,
}

/// Reader type of a decompressed member: owns its file handle, borrows nothing but `&Deb`.
pub type MemberReader<'a> = Box<dyn Read + 'a>;

impl Deb {
    /// Opens `path`, reads the ar member table and checks `debian-binary` is format 2.x.
    pub fn open(path: &Path) -> Result<Deb, DebError> {
        let io_err = |source| DebError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let members = read_members(path, &mut file, len)?;
        let first = members.first().ok_or_else(|| DebError::MissingMember {
            path: path.to_path_buf(),
            member: "debian-binary".into(),
        })?;
        if first.name != "debian-binary" {
            return Err(DebError::BadFormat {
                path: path.to_path_buf(),
                detail: format!("is not the first member (found `{}`)", first.name),
            });
        }
        if first.size > MAX_DEBIAN_BINARY {
            return Err(DebError::BadFormat {
                path: path.to_path_buf(),
                detail: format!("is {} bytes long", first.size),
            });
        }
        let mut version = vec![0u8; first.size as usize];
        file.seek(SeekFrom::Start(first.offset))
            .and_then(|_| file.read_exact(&mut version))
            .map_err(io_err)?;
        if !version.starts_with(b"2.") {
            return Err(DebError::BadFormat {
                path: path.to_path_buf(),
                detail: format!(
                    "declares format `{}`",
                    String::from_utf8_lossy(&version).trim()
                ),
            });
        }
        let find = |prefix: &str| {
            members
                .iter()
                .position(|m| m.name == prefix || m.name.starts_with(&format!("{prefix}.")))
                .ok_or_else(|| DebError::MissingMember {
                    path: path.to_path_buf(),
                    member: format!("{prefix}*"),
                })
        };
        let control = find("control.tar")?;
        let data = find("data.tar")?;
        for index in [control, data] {
            if compression_of(&members[index].name).is_none() {
                return Err(DebError::Unsupported {
                    path: path.to_path_buf(),
                    member: members[index].name.clone(),
                });
            }
        }
        Ok(Deb {
            path: path.to_path_buf(),
            members,
            control,
            data,
        })
    }

    /// The path this .deb was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every ar member, in file order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Name of the data member, e.g. `data.tar.xz` (for messages).
    pub fn data_member(&self) -> &str {
        &self.members[self.data].name
    }

    /// Name of the control member, e.g. `control.tar.zst` (for messages).
    pub fn control_member(&self) -> &str {
        &self.members[self.control].name
    }

    /// Streams the decompressed control.tar.
    pub fn control_reader(&self) -> Result<MemberReader<'_>, DebError> {
        self.member_reader(self.control)
    }

    /// Streams the decompressed data.tar; the reader owns its own file handle.
    pub fn data_reader(&self) -> Result<MemberReader<'_>, DebError> {
        self.member_reader(self.data)
    }

    /// The decompressed data.tar as a `tar::Archive`; read errors surface as `io::Error`
    /// while iterating (wrap them with [`Deb::corrupt`]).
    pub fn data_archive(&self) -> Result<tar::Archive<MemberReader<'_>>, DebError> {
        Ok(tar::Archive::new(self.data_reader()?))
    }

    /// Reads what is left of the data stream after the tar end marker, so the compressor's
    /// integrity check (gzip CRC, xz check) runs; call it after iterating all entries.
    pub fn finish_data(&self, archive: tar::Archive<MemberReader<'_>>) -> Result<(), DebError> {
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink())
            .map(|_| ())
            .map_err(|e| self.corrupt(&e))
    }

    /// Builds the [`DebError::Corrupt`] for an `io::Error` met while reading the data member.
    pub fn corrupt(&self, err: &io::Error) -> DebError {
        self.corrupt_member(self.data, err)
    }

    /// The `./control` file from control.tar, as text.
    pub fn control_text(&self) -> Result<String, DebError> {
        let member = self.control_member().to_string();
        let files = self.control_files()?;
        let (_, bytes, _) = files
            .into_iter()
            .find(|(name, _, _)| name == "control")
            .ok_or_else(|| DebError::BadControl {
                path: self.path.clone(),
                member: member.clone(),
                entry: "./control".into(),
                detail: "missing".into(),
            })?;
        String::from_utf8(bytes).map_err(|_| DebError::BadControl {
            path: self.path.clone(),
            member,
            entry: "./control".into(),
            detail: "not valid UTF-8".into(),
        })
    }

    /// Every regular file in control.tar as (name without `./`, content, mode), in archive
    /// order: control, md5sums, conffiles, preinst, postinst, triggers, shlibs, …
    /// Names are plain file names; an entry with `/` or `..` in its name is an error.
    pub fn control_files(&self) -> Result<Vec<(String, Vec<u8>, u32)>, DebError> {
        let member = self.control_member().to_string();
        let bad = |entry: &str, detail: &str| DebError::BadControl {
            path: self.path.clone(),
            member: member.clone(),
            entry: entry.to_string(),
            detail: detail.to_string(),
        };
        let mut archive = tar::Archive::new(self.control_reader()?);
        let entries = archive
            .entries()
            .map_err(|e| self.corrupt_member(self.control, &e))?;
        let mut out = Vec::new();
        for entry in entries {
            let mut entry = entry.map_err(|e| self.corrupt_member(self.control, &e))?;
            let kind = entry.header().entry_type();
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            if kind.is_dir() || kind.is_pax_global_extensions() {
                continue;
            }
            if !(kind.is_file() || kind.is_contiguous()) {
                return Err(bad(&shown, "is not a regular file"));
            }
            let name = std::str::from_utf8(&raw)
                .map_err(|_| bad(&shown, "name is not valid UTF-8"))?
                .trim_start_matches("./");
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                return Err(bad(&shown, "name is not a plain file name"));
            }
            let size = entry.size();
            if size > MAX_CONTROL_FILE {
                return Err(bad(
                    &shown,
                    &format!("is {size} bytes, over the 64 MiB limit"),
                ));
            }
            let mode = entry
                .header()
                .mode()
                .map_err(|e| self.corrupt_member(self.control, &e))?;
            let mut content = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut content)
                .map_err(|e| self.corrupt_member(self.control, &e))?;
            if (content.len() as u64) != size {
                return Err(self.corrupt_member(
                    self.control,
                    &io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("`{shown}` is cut short"),
                    ),
                ));
            }
            out.push((name.to_string(), content, mode));
        }
        io::copy(&mut archive.into_inner(), &mut io::sink())
            .map_err(|e| self.corrupt_member(self.control, &e))?;
        Ok(out)
    }

    /// Paths in data.tar as dpkg lists them in `info/PKG.list` (`/.`, `/usr`, `/usr/bin/x`,
    /// no trailing slash), in archive order.
    pub fn data_paths(&self) -> Result<Vec<String>, DebError> {
        let mut archive = self.data_archive()?;
        let entries = archive.entries().map_err(|e| self.corrupt(&e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.corrupt(&e))?;
            if entry.header().entry_type().is_pax_global_extensions() {
                continue;
            }
            let raw = entry.path_bytes();
            let name = std::str::from_utf8(&raw).map_err(|_| DebError::NonUtf8 {
                path: self.path.clone(),
                member: self.data_member().to_string(),
                entry: String::from_utf8_lossy(&raw).into_owned(),
            })?;
            out.push(list_path(name));
        }
        self.finish_data(archive)?;
        Ok(out)
    }

    fn corrupt_member(&self, index: usize, err: &io::Error) -> DebError {
        DebError::Corrupt {
            path: self.path.clone(),
            member: self.members[index].name.clone(),
            detail: err.to_string(),
        }
    }

    fn member_reader(&self, index: usize) -> Result<MemberReader<'_>, DebError> {
        let member = &self.members[index];
        let compression = compression_of(&member.name).ok_or_else(|| DebError::Unsupported {
            path: self.path.clone(),
            member: member.name.clone(),
        })?;
        let io_err = |source| DebError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(io_err)?;
        file.seek(SeekFrom::Start(member.offset)).map_err(io_err)?;
        let mut magic = [0u8; 6];
        let got = read_up_to(&mut file, &mut magic).map_err(io_err)?;
        let expected: &[u8] = match compression {
            Compression::None => &[],
            Compression::Gzip => &[0x1f, 0x8b],
            Compression::Xz => &[0xfd, b'7', b'z', b'X', b'Z', 0],
            Compression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
        };
        if (member.size as usize) < expected.len() || !magic[..got].starts_with(expected) {
            return Err(DebError::Corrupt {
                path: self.path.clone(),
                member: member.name.clone(),
                detail: "the compressed stream does not start with the magic its name announces"
                    .into(),
            });
        }
        file.seek(SeekFrom::Start(member.offset)).map_err(io_err)?;
        let raw = BufReader::new(file.take(member.size));
        let reader: MemberReader<'_> = match compression {
            Compression::None => Box::new(raw),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(raw)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(raw)
                    .map_err(|e| self.corrupt_member(index, &e))?,
            ),
        };
        Ok(reader)
    }
}

/// Turns a data.tar entry name into dpkg's `.list` form: `./usr/bin/` → `/usr/bin`, `./` → `/.`.
pub fn list_path(name: &str) -> String {
    let mut rest = name;
    loop {
        if let Some(r) = rest.strip_prefix("./") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix('/') {
            rest = r;
        } else {
            break;
        }
    }
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest == "." {
        "/.".to_string()
    } else {
        format!("/{rest}")
    }
}

/// The compression a member name announces; `None` for unsupported ones (`.bz2`, `.lzma`).
pub fn compression_of(member: &str) -> Option<Compression> {
    let suffix = member
        .strip_prefix("control.tar")
        .or_else(|| member.strip_prefix("data.tar"))?;
    match suffix {
        "" => Some(Compression::None),
        ".gz" => Some(Compression::Gzip),
        ".xz" => Some(Compression::Xz),
        ".zst" => Some(Compression::Zstd),
        _ => None,
    }
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn parse_decimal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?.trim_end_matches(' ');
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Reads the ar member table of `file` (length `len`), checking every member fits the file.
fn read_members(path: &Path, file: &mut File, len: u64) -> Result<Vec<Member>, DebError> {
    let io_err = |source| DebError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut magic = [0u8; 8];
    let got = read_up_to(file, &mut magic).map_err(io_err)?;
    if got < 8 || &magic != b"!<arch>\n" {
        return Err(DebError::NotAr {
            path: path.to_path_buf(),
        });
    }
    let mut members = Vec::new();
    let mut pos = 8u64;
    let mut last = String::from("(header)");
    while pos < len {
        file.seek(SeekFrom::Start(pos)).map_err(io_err)?;
        let mut header = [0u8; 60];
        let got = read_up_to(file, &mut header).map_err(io_err)?;
        if got == 1 && header[0] == b'\n' {
            break; // a stray alignment byte at the very end
        }
        if got < 60 {
            return Err(DebError::Truncated {
                path: path.to_path_buf(),
                member: last,
                detail: format!("is followed by a cut header ({got} of 60 bytes)"),
            });
        }
        let bad = |detail: String| DebError::BadHeader {
            path: path.to_path_buf(),
            offset: pos,
            detail,
        };
        if &header[58..60] != b"`\n" {
            return Err(bad("missing the `\\n terminator".into()));
        }
        let raw_name = std::str::from_utf8(&header[..16])
            .map_err(|_| bad("member name is not ASCII".into()))?
            .trim_end_matches(' ');
        let size = parse_decimal(&header[48..58]).ok_or_else(|| {
            bad(format!(
                "bad size field {:?}",
                String::from_utf8_lossy(&header[48..58])
            ))
        })?;
        let mut offset = pos + 60;
        let mut size_left = size;
        let name = if let Some(n) = raw_name.strip_prefix("#1/") {
            // BSD ar: the name is stored in the first n bytes of the data.
            let n = parse_decimal(n.as_bytes())
                .filter(|n| *n <= size && *n <= 4096)
                .ok_or_else(|| bad(format!("bad BSD long name `{raw_name}`")))?;
            let mut buf = vec![0u8; n as usize];
            let got = read_up_to(file, &mut buf).map_err(io_err)?;
            if got < buf.len() {
                return Err(DebError::Truncated {
                    path: path.to_path_buf(),
                    member: raw_name.to_string(),
                    detail: "has its name cut short".into(),
                });
            }
            offset += n;
            size_left -= n;
            String::from_utf8_lossy(&buf)
                .trim_end_matches('\0')
                .to_string()
        } else if raw_name == "/" || raw_name == "//" {
            raw_name.to_string() // GNU symbol / long-name tables: kept, never matched
        } else {
            raw_name.trim_end_matches('/').to_string()
        };
        let end = offset
            .checked_add(size_left)
            .ok_or_else(|| bad("size overflows".into()))?;
        if end > len {
            return Err(DebError::Truncated {
                path: path.to_path_buf(),
                member: name,
                detail: format!(
                    "needs {size_left} bytes but the file ends {} bytes early",
                    end - len
                ),
            });
        }
        last = name.clone();
        members.push(Member {
            name,
            offset,
            size: size_left,
        });
        pos = end + (end % 2);
    }
    Ok(members)
}
