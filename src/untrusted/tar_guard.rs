//! A reader between a decompressor and `tar::Archive` that bounds what the tar reader would
//! hold in memory: it follows the tar stream's headers as the bytes pass and refuses a GNU
//! long name or link, or a PAX extension, larger than [`EXTENSION_MAX`] (the tar crate reads
//! each one whole into memory before the entry it describes), a GNU sparse file whose real
//! size is over [`SPARSE_MAX`] (a few bytes of archive that unpack to terabytes of zeros), and,
//! when asked, more entries than a limit (what a tree of them costs grows with their number).

use std::io::{self, Read};

/// The largest tar header extension (GNU long name/link, PAX record) let through.
pub const EXTENSION_MAX: u64 = 1 << 20;

/// The largest real size of a GNU sparse file let through (a disk image's, at most).
pub const SPARSE_MAX: u64 = 64 << 30;

const BLOCK: u64 = 512;

#[derive(Debug)]
enum State {
    /// Collecting the 512-byte header that starts at `at`.
    Header,
    /// Collecting a GNU sparse header's extension block.
    SparseExt,
    /// Passing an entry's data up to the next header; PAX data is kept to read its `size`.
    Data { pax: bool },
    /// After the end-of-archive block: nothing more is followed.
    Done,
}

/// See the module documentation.
pub struct TarGuard<R> {
    inner: R,
    pos: u64,
    next: u64,
    state: State,
    block: Vec<u8>,
    pax: Vec<u8>,
    pax_size: Option<u64>,
    entries: u64,
    entry_limit: Option<(u64, &'static str)>,
}

impl<R: Read> TarGuard<R> {
    /// Guards the tar stream `inner`.
    pub fn new(inner: R) -> TarGuard<R> {
        TarGuard {
            inner,
            pos: 0,
            next: 0,
            state: State::Header,
            block: Vec::with_capacity(BLOCK as usize),
            pax: Vec::new(),
            pax_size: None,
            entries: 0,
            entry_limit: None,
        }
    }

    /// Refuses more than `max` entries; `what` names the archive's role in the error.
    pub fn limit_entries(mut self, max: u64, what: &'static str) -> TarGuard<R> {
        self.entry_limit = Some((max, what));
        self
    }

    /// The guarded reader (to read what follows the archive).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Follows `bytes`, which start at stream offset `self.pos`.
    fn follow(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.state {
                State::Done => return Ok(()),
                State::Data { pax } => {
                    let left = self.next.saturating_sub(self.pos);
                    let n = (left.min(bytes.len() as u64)) as usize;
                    if pax {
                        self.pax.extend_from_slice(&bytes[..n]);
                    }
                    self.pos += n as u64;
                    bytes = &bytes[n..];
                    if self.pos >= self.next {
                        if pax {
                            self.pax_size = pax_size(&self.pax);
                            self.pax.clear();
                        }
                        self.state = State::Header;
                    }
                }
                State::Header | State::SparseExt => {
                    let n = (BLOCK as usize - self.block.len()).min(bytes.len());
                    self.block.extend_from_slice(&bytes[..n]);
                    self.pos += n as u64;
                    bytes = &bytes[n..];
                    if self.block.len() == BLOCK as usize {
                        let block = std::mem::take(&mut self.block);
                        self.block.reserve(BLOCK as usize);
                        if matches!(self.state, State::SparseExt) {
                            self.sparse_ext(&block);
                        } else {
                            self.header(&block)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn header(&mut self, h: &[u8]) -> io::Result<()> {
        if h.iter().all(|b| *b == 0) {
            self.state = State::Done;
            return Ok(());
        }
        let kind = h[156];
        let size = numeric(&h[124..136]).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "a tar header with an unreadable size",
            )
        })?;
        let extension = matches!(kind, b'L' | b'K' | b'x' | b'g');
        if extension && size > EXTENSION_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a tar header extension (GNU long name or link, or PAX record) of {size} bytes, over the {EXTENSION_MAX}-byte limit"
                ),
            ));
        }
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
        if !extension {
            self.entries += 1;
            if let Some((max, what)) = self.entry_limit.filter(|(max, _)| self.entries > *max) {
                return Err(invalid(format!(
                    "more than {max} entries, the limit for {what}"
                )));
            }
        }
        if kind == b'S' {
            let real = numeric(&h[483..495]).unwrap_or(u64::MAX);
            if real > SPARSE_MAX {
                return Err(invalid(format!(
                    "a sparse file of {real} bytes, over the {SPARSE_MAX}-byte limit"
                )));
            }
        }
        // A PAX `size` applies to the next entry that is not itself an extension.
        let data = if extension {
            size
        } else {
            self.pax_size.take().unwrap_or(size)
        };
        self.next = self.pos + data.div_ceil(BLOCK) * BLOCK;
        self.state = if kind == b'S' && h[482] != 0 {
            State::SparseExt
        } else {
            self.data_state(kind == b'x')
        };
        Ok(())
    }

    fn sparse_ext(&mut self, block: &[u8]) {
        // The data starts after the extension blocks.
        self.next += BLOCK;
        if block[504] == 0 {
            self.state = self.data_state(false);
        }
    }

    fn data_state(&self, pax: bool) -> State {
        if self.pos >= self.next {
            State::Header
        } else {
            State::Data { pax }
        }
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.follow(&buf[..n])?;
        Ok(n)
    }
}

/// A tar numeric field: octal text, or base-256 when the high bit of its first byte is set.
fn numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .filter(|b| *b != 0 && *b != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

/// The `size` of PAX records (`LEN size=N\n`), when given.
fn pax_size(data: &[u8]) -> Option<u64> {
    let mut size = None;
    for rec in data.split(|b| *b == b'\n') {
        let Some(sp) = rec.iter().position(|b| *b == b' ') else {
            continue;
        };
        if let Some(v) = rec[sp + 1..].strip_prefix(b"size=") {
            size = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
        }
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8]) -> Result<Vec<String>, String> {
        let mut a = tar::Archive::new(TarGuard::new(data));
        let mut names = Vec::new();
        for e in a.entries().map_err(|e| e.to_string())? {
            let mut e = e.map_err(|e| e.to_string())?;
            names.push(e.path().map_err(|e| e.to_string())?.display().to_string());
            std::io::copy(&mut e, &mut std::io::sink()).map_err(|e| e.to_string())?;
        }
        Ok(names)
    }

    #[test]
    fn ordinary_long_names_pax_and_sparse_pass_and_huge_extensions_do_not() {
        let long = format!("{}/file", "d".repeat(300));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(1000);
        h.set_mode(0o644);
        b.append_pax_extensions([("SCHILY.xattr.user.x", &b"v"[..])])
            .unwrap();
        b.append_data(&mut h, "pax", &[7u8; 1000][..]).unwrap();
        let data = b.into_inner().unwrap();
        assert_eq!(read_all(&data).unwrap(), [long.as_str(), "pax"]);

        // A PAX `size` overrides the header's: followed, the next header is still found.
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("size", &b"1024"[..])]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_path("big").unwrap();
        h.set_cksum();
        b.append(&h, &[1u8; 1024][..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        b.append_data(&mut h, "after", &b"z"[..]).unwrap();
        assert_eq!(
            read_all(&b.into_inner().unwrap()).unwrap(),
            ["big", "after"]
        );

        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_size(EXTENSION_MAX + 1);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, std::io::repeat(b'a').take(EXTENSION_MAX + 1))
            .unwrap();
        let e = read_all(&b.into_inner().unwrap()).unwrap_err();
        assert!(e.contains("over the 1048576-byte limit"), "{e}");
    }

    #[test]
    fn gnu_sparse_files_with_extension_blocks_are_followed() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir(&root).unwrap();
        // Ten data segments separated by holes: more than a GNU header's four slots, so the
        // writer adds extension blocks.
        let mut f = std::fs::File::create(root.join("disk")).unwrap();
        for i in 0..10u64 {
            f.seek(SeekFrom::Start(i * (1 << 20))).unwrap();
            f.write_all(&[1u8; 4096]).unwrap();
        }
        f.set_len(11 << 20).unwrap();
        std::fs::write(root.join("zz-after"), "tail").unwrap();
        let mut b = tar::Builder::new(Vec::new());
        crate::tarwrite::write_tree(&root, &mut b).unwrap();
        let mut raw = b.into_inner().unwrap();
        let names = read_all(&raw).unwrap();
        assert_eq!(names, ["./", "disk", "zz-after"]);
        // Followed exactly: a huge extension after the sparse entry is still caught.
        while raw.len() >= 512 && raw[raw.len() - 512..].iter().all(|b| *b == 0) {
            raw.truncate(raw.len() - 512);
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_size(EXTENSION_MAX + 1);
        h.set_cksum();
        raw.extend_from_slice(h.as_bytes());
        raw.extend(std::iter::repeat_n(b'a', EXTENSION_MAX as usize + 512));
        let e = read_all(&raw).unwrap_err();
        assert!(e.contains("over the 1048576-byte limit"), "{e}");
    }

    #[test]
    fn entry_counts_and_sparse_sizes_are_bounded() {
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..5 {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            b.append_data(&mut h, format!("f{i}"), &[][..]).unwrap();
        }
        let data = b.into_inner().unwrap();
        let mut a = tar::Archive::new(TarGuard::new(&data[..]).limit_entries(4, "a test"));
        let e = a
            .entries()
            .unwrap()
            .find_map(|e| e.err())
            .unwrap()
            .to_string();
        assert!(
            e.contains("more than 4 entries, the limit for a test"),
            "{e}"
        );
        assert!(read_all(&data).is_ok());

        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_size(0);
        h.as_gnu_mut().unwrap().set_real_size(SPARSE_MAX + 1);
        h.as_old_mut().name[..4].copy_from_slice(b"bomb");
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &[][..]).unwrap();
        let e = read_all(&b.into_inner().unwrap()).unwrap_err();
        assert!(e.contains("a sparse file of 68719476737 bytes"), "{e}");
    }

    #[test]
    fn numeric_fields() {
        assert_eq!(numeric(b"00000001750\0"), Some(1000));
        assert_eq!(numeric(b"       \0\0\0\0\0"), Some(0));
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 2;
        f[10] = 1;
        assert_eq!(numeric(&f), Some(258));
    }
}
