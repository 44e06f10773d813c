//! Reading input nobody here made (stemcells, images, trees given to `inspect`, `diff`,
//! `audit`, `sbom`): regular files only, never through a final symlink, never blocking on a
//! FIFO, each read under a size cap named in its error; YAML refused past a nesting cap before
//! any parser sees it; names printed escaped. The caps are listed in the README ("Limits").

pub mod members;
pub mod tar_guard;

pub use tar_guard::TarGuard;

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The most bytes read of a stemcell's `stemcell.MF`.
pub const MANIFEST_MAX: u64 = 1 << 20;
/// The most bytes read of a JSON or text record in a stemcell or image (`provenance.json`,
/// `packages.txt`, `audit.json`, dpkg `.list` files).
pub const RECORD_MAX: u64 = 32 << 20;
/// The most bytes read of a dpkg database (`var/lib/dpkg/status`).
pub const DPKG_STATUS_MAX: u64 = 64 << 20;
/// The most bytes read of a copyright file or a component record.
pub const SMALL_MAX: u64 = 4 << 20;
/// The most entries of a rootfs tarball from elsewhere unpacked or compared (a Debian rootfs
/// has tens of thousands).
pub const TREE_ENTRIES_MAX: u64 = 1_000_000;
/// The deepest nesting a YAML document may have (flow or block).
pub const YAML_DEPTH_MAX: usize = 64;

/// Why an untrusted file was not read.
#[derive(Debug, thiserror::Error)]
pub enum UntrustedError {
    /// It could not be opened or read.
    #[error("{}: {source}", escape_path(path))]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// It is not a regular file (a device, FIFO, socket, directory or symlink).
    #[error(
        "{}: is {kind}, not a regular file; only regular files are read",
        escape_path(path)
    )]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// It is larger than the cap for what it is.
    #[error(
        "{}: {size} bytes, over the {cap}-byte limit for {what}; refused",
        escape_path(path)
    )]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// Its size, or the cap plus one when it grew while being read.
        size: u64,
        /// The cap.
        cap: u64,
        /// What the file should be.
        what: &'static str,
    },
}

/// What the file type of `m` is, in words.
pub fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_file() {
        "a regular file"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symlink"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "an unknown file type"
    }
}

/// Opens `path` for reading only when it is a regular file: a final symlink is not followed
/// (`O_NOFOLLOW`), a FIFO does not block (`O_NONBLOCK`), and the type is checked on the open
/// descriptor, so nothing can be swapped in between.
pub fn open_regular(path: &Path) -> Result<File, UntrustedError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| match std::fs::symlink_metadata(path) {
            Ok(m) if !m.is_file() => UntrustedError::NotRegular {
                path: path.to_path_buf(),
                kind: kind_of(m.file_type()),
            },
            _ => UntrustedError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
    let m = f.metadata().map_err(|source| UntrustedError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !m.is_file() {
        return Err(UntrustedError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(m.file_type()),
        });
    }
    Ok(f)
}

/// Reads the regular file `path` whole when it holds at most `cap` bytes (`what` names the
/// file's role in the error).
pub fn read_capped(path: &Path, cap: u64, what: &'static str) -> Result<Vec<u8>, UntrustedError> {
    let f = open_regular(path)?;
    let too_large = |size| UntrustedError::TooLarge {
        path: path.to_path_buf(),
        size,
        cap,
        what,
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > cap {
        return Err(too_large(len));
    }
    read_stream_capped(f, cap).map_err(|e| match e {
        CappedRead::Io(source) => UntrustedError::Io {
            path: path.to_path_buf(),
            source,
        },
        CappedRead::TooLarge => too_large(cap + 1),
    })
}

/// Reads the regular file `path` as text (invalid UTF-8 replaced), capped like
/// [`read_capped`].
pub fn read_text(path: &Path, cap: u64, what: &'static str) -> Result<String, UntrustedError> {
    let bytes = read_capped(path, cap, what)?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Why a capped stream read stopped.
#[derive(Debug)]
pub enum CappedRead {
    /// The stream failed.
    Io(std::io::Error),
    /// It held more than the cap.
    TooLarge,
}

/// Reads `r` to its end, refusing more than `cap` bytes (a tar member, a file).
pub fn read_stream_capped(r: impl Read, cap: u64) -> Result<Vec<u8>, CappedRead> {
    let mut out = Vec::new();
    r.take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(CappedRead::Io)?;
    if out.len() as u64 > cap {
        return Err(CappedRead::TooLarge);
    }
    Ok(out)
}

/// Refuses YAML nested deeper than `max` (flow brackets and block indentation levels), before
/// a parser spends time or stack on it. Quoted scalars and comments are skipped.
pub fn check_yaml_depth(text: &str, max: usize) -> Result<(), String> {
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        if flow == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            // Block nesting: each deeper indentation opens a level; `- ` items nest too.
            let mut indent = line.len() - trimmed.len();
            let mut rest = trimmed;
            loop {
                while indents.last().is_some_and(|&i| i > indent) {
                    indents.pop();
                }
                if indents.last() != Some(&indent) {
                    indents.push(indent);
                }
                let Some(after) = rest.strip_prefix("- ").or(rest.strip_prefix("? ")) else {
                    break;
                };
                let inner = after.trim_start_matches(' ');
                indent += 2 + (after.len() - inner.len());
                rest = inner;
            }
            if indents.len() + flow > max {
                return Err(depth_error(lineno, max));
            }
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for c in line.chars() {
            match (quote, c) {
                (Some('"'), '\\') if prev != '\\' => {}
                (Some(q), c) if c == q && !(q == '"' && prev == '\\') => quote = None,
                (Some(_), _) => {}
                (None, '#') if prev == ' ' || prev == '\t' => break,
                (None, '"' | '\'') if prev == ' ' || "[{,:-".contains(prev) => quote = Some(c),
                (None, '[' | '{') => {
                    flow += 1;
                    if indents.len() + flow > max {
                        return Err(depth_error(lineno, max));
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            prev = if prev == '\\' && c == '\\' { ' ' } else { c };
        }
    }
    Ok(())
}

fn depth_error(lineno: usize, max: usize) -> String {
    format!(
        "line {}: nested deeper than {max} levels, the limit for YAML read here",
        lineno + 1
    )
}

/// `s` with control characters, backslashes and non-printing characters escaped (`\n`,
/// `\x1b`, `\u{202e}`), so a name cannot forge report lines or drive a terminal.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_invisible(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Bidirectional controls, C1 controls and other characters that change how text displays.
fn is_invisible(c: char) -> bool {
    matches!(c as u32, 0x80..=0x9f | 0x200b..=0x200f | 0x202a..=0x202e | 0x2066..=0x2069 | 0xfeff)
}

/// Raw name bytes escaped for display: valid UTF-8 as [`escape`], every other byte `\xNN`.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// A path escaped for display (see [`escape_bytes`]).
pub fn escape_path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    escape_bytes(p.as_os_str().as_bytes())
}

/// Free bytes for an unprivileged writer on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("the path holds a NUL byte"))?;
    // SAFETY: statvfs with a valid C string and an out-parameter we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// A JSON string literal of `s` (quotes, backslashes and control characters escaped).
pub fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_under_the_cap_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "hello").unwrap();
        assert_eq!(read_capped(&f, 5, "x").unwrap(), b"hello");
        let e = read_capped(&f, 4, "a manifest").unwrap_err().to_string();
        assert!(e.contains("over the 4-byte limit for a manifest"), "{e}");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("z")).unwrap();
        let e = read_capped(&dir.path().join("z"), 4, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a symlink"), "{e}");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = read_capped(&fifo, 4, "x").unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
        let e = read_capped(Path::new("/dev/zero"), 4, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a character device"), "{e}");
        let e = read_capped(dir.path(), 4, "x").unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn deep_yaml_is_refused_before_parsing() {
        assert!(check_yaml_depth("a: 1\nb:\n  c: [1, {d: 2}]\n  e:\n    - f\n", 8).is_ok());
        let deep = "[".repeat(100);
        let e = check_yaml_depth(&deep, 64).unwrap_err();
        assert!(e.contains("nested deeper than 64"), "{e}");
        let block: String = (0..80).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert!(check_yaml_depth(&block, 64).is_err());
        let dashes = format!("{}x\n", "- ".repeat(80));
        assert!(check_yaml_depth(&dashes, 64).is_err());
        // Brackets inside quotes and comments are not nesting.
        let quoted = format!(
            "a: '{}'\nb: \"{}\" # {}\n",
            "[".repeat(99),
            "{".repeat(99),
            "[".repeat(99)
        );
        assert!(check_yaml_depth(&quoted, 8).is_ok());
    }

    #[test]
    fn names_are_escaped_for_display() {
        assert_eq!(escape("a\nb\x1b[31m\\"), "a\\nb\\x1b[31m\\\\");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape_bytes(b"caf\xe9"), "caf\\xe9");
        assert_eq!(escape("plain/ütf-8"), "plain/ütf-8");
    }
}
