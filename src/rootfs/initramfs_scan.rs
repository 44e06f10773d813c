//! Proof that an initramfs holds no program of a foreign machine: it is decompressed (gzip,
//! zstd, xz or none; concatenated archives are followed), its `newc` cpio members are walked,
//! and every regular file that starts as ELF has its machine compared. Used after every
//! initramfs build, and the reason the host toolbox may be used to build one.

use std::io::Read;

/// Largest initramfs (uncompressed) read, so a broken build cannot exhaust memory.
pub const MAX_UNCOMPRESSED: u64 = 1 << 30;

/// What reading an initramfs found wrong.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A member is an ELF file for the wrong machine.
    #[error("the initramfs holds {member}, a program for ELF machine {machine}, not the target's")]
    Foreign {
        /// The member's path in the archive.
        member: String,
        /// Its `e_machine`.
        machine: u16,
    },
    /// The archive cannot be read.
    #[error("the initramfs cannot be read: {0}")]
    Unreadable(String),
}

/// Reads `data` (a whole initramfs file) and checks that no ELF member has a machine in
/// `forbidden`. Returns the number of members seen.
pub fn check(data: &[u8], forbidden: &[u16]) -> Result<usize, ScanError> {
    let mut seen = 0;
    let mut rest = data;
    loop {
        rest = skip_zeros(rest);
        if rest.is_empty() {
            return Ok(seen);
        }
        if is_cpio(rest) {
            // An uncompressed archive (an early one), maybe followed by others.
            let (members, used) = walk(rest, forbidden)?;
            seen += members;
            rest = &rest[used..];
        } else {
            // A compressed archive runs to the end of the file.
            let plain = decompress(rest)?;
            let mut inner = &plain[..];
            loop {
                inner = skip_zeros(inner);
                if inner.is_empty() {
                    return Ok(seen);
                }
                let (members, used) = walk(inner, forbidden)?;
                seen += members;
                inner = &inner[used..];
            }
        }
    }
}

fn skip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| c != 0).unwrap_or(b.len());
    &b[start..]
}

fn is_cpio(b: &[u8]) -> bool {
    b.starts_with(b"070701") || b.starts_with(b"070702")
}

/// The uncompressed bytes of a compressed archive.
fn decompress(data: &[u8]) -> Result<Vec<u8>, ScanError> {
    let limit = MAX_UNCOMPRESSED;
    let bad = |e: std::io::Error| ScanError::Unreadable(e.to_string());
    let mut out = Vec::new();
    if data.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(data)
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(bad)?;
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(data)
            .map_err(bad)?
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(bad)?;
    } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        xz2::read::XzDecoder::new_multi_decoder(data)
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(bad)?;
    } else {
        let magic: Vec<String> = data.iter().take(6).map(|b| format!("{b:02x}")).collect();
        return Err(ScanError::Unreadable(format!(
            "unknown compression (starts {}); set COMPRESS=zstd, gzip or xz in \
             /etc/initramfs-tools/initramfs.conf",
            magic.join(" ")
        )));
    }
    if out.len() as u64 > limit {
        return Err(ScanError::Unreadable(format!(
            "larger than {limit} bytes uncompressed"
        )));
    }
    Ok(out)
}

/// Walks one `newc` archive from the start of `b` to its trailer; returns the number of
/// members and the bytes used.
fn walk(b: &[u8], forbidden: &[u16]) -> Result<(usize, usize), ScanError> {
    let short = || ScanError::Unreadable("a cpio header runs past the end".into());
    let mut at = 0usize;
    let mut members = 0;
    loop {
        let add = |a: usize, n: usize| a.checked_add(n).ok_or_else(short);
        let h = b.get(at..add(at, 110)?).ok_or_else(short)?;
        if &h[..6] != b"070701" && &h[..6] != b"070702" {
            return Err(ScanError::Unreadable(format!(
                "no cpio header at byte {at}"
            )));
        }
        let field = |i: usize| -> Result<usize, ScanError> {
            let s = std::str::from_utf8(&h[6 + i * 8..14 + i * 8])
                .map_err(|_| ScanError::Unreadable(format!("bad cpio header at byte {at}")))?;
            usize::from_str_radix(s, 16)
                .map_err(|_| ScanError::Unreadable(format!("bad cpio header at byte {at}")))
        };
        let mode = field(1)?;
        let size = field(6)?;
        let namesize = field(11)?;
        let name_end = add(add(at, 110)?, namesize)?;
        let name_bytes = b.get(at + 110..name_end).ok_or_else(short)?;
        let name = String::from_utf8_lossy(name_bytes.strip_suffix(&[0]).unwrap_or(name_bytes))
            .into_owned();
        let data_at = add(name_end, 3)? & !3;
        let data_end = add(data_at, size)?;
        let data = b.get(data_at..data_end).ok_or_else(short)?;
        at = add(data_end, 3)? & !3;
        if name == "TRAILER!!!" {
            return Ok((members, at.min(b.len())));
        }
        members += 1;
        let regular = mode & 0o170000 == 0o100000;
        if regular {
            if let Some(machine) = super::elf_interp::machine(data) {
                if forbidden.contains(&machine) {
                    return Err(ScanError::Foreign {
                        member: name,
                        machine,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn member(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
        let namesize = name.len() + 1;
        let fields = [
            0,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            namesize as u32,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }

    fn elf(machine: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b
    }

    fn archive(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        member(&mut out, "usr", 0o040755, b"");
        for (n, d) in files {
            member(&mut out, n, 0o100755, d);
        }
        member(&mut out, "TRAILER!!!", 0, b"");
        out
    }

    #[test]
    fn finds_a_foreign_program_in_any_compression() {
        let good = archive(&[("usr/bin/busybox", elf(183)), ("etc/x", b"hi".to_vec())]);
        let bad = archive(&[("usr/bin/busybox", elf(183)), ("usr/bin/cp", elf(62))]);
        let gz = |d: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(d).unwrap();
            e.finish().unwrap()
        };
        let zst = |d: &[u8]| zstd::stream::encode_all(d, 1).unwrap();
        let xz = |d: &[u8]| {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(d).unwrap();
            e.finish().unwrap()
        };
        for (label, f) in [
            (
                "plain",
                &(|d: &[u8]| d.to_vec()) as &dyn Fn(&[u8]) -> Vec<u8>,
            ),
            ("gzip", &gz),
            ("zstd", &zst),
            ("xz", &xz),
        ] {
            assert_eq!(check(&f(&good), &[62, 3]).unwrap(), 3, "{label}");
            match check(&f(&bad), &[62, 3]) {
                Err(ScanError::Foreign { member, machine }) => {
                    assert_eq!((member.as_str(), machine), ("usr/bin/cp", 62), "{label}")
                }
                other => panic!("{label}: {other:?}"),
            }
        }
    }

    #[test]
    fn follows_an_early_archive_and_rejects_garbage() {
        // An uncompressed early cpio (as x86 microcode is) followed by a compressed one.
        let mut data = archive(&[("kernel/x", b"microcode".to_vec())]);
        data.extend_from_slice(&[0; 512]);
        let main = archive(&[("usr/bin/cp", elf(62))]);
        data.extend(zstd::stream::encode_all(&main[..], 1).unwrap());
        assert!(matches!(
            check(&data, &[62]),
            Err(ScanError::Foreign { .. })
        ));
        let e = check(b"BZh91AY&SY", &[62]).unwrap_err().to_string();
        assert!(
            e.contains("unknown compression") && e.contains("COMPRESS="),
            "{e}"
        );
        let mut cut = archive(&[("a", b"x".to_vec())]);
        cut.truncate(150);
        assert!(check(&cut, &[62]).is_err());
    }
}
