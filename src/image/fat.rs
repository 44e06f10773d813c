//! The boot partition: FAT32 written by the `fatfs` crate into a partition file, with a
//! fixed volume id and label and every timestamp at the DOS epoch (1980-01-01), so the same
//! files give the same bytes. Files are added in name order.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{io_err as io, ImageError};

/// The label Raspberry Pi OS gives its boot partition.
pub const LABEL: &[u8; 11] = b"BOOTFS     ";

/// Makes `part` (created, `len` bytes) a FAT32 filesystem holding the tree under `from`
/// (when it exists) and `extra` files (name, contents) at its root.
pub fn make(
    part: &Path,
    len: u64,
    volume_id: u32,
    from: Option<&Path>,
    extra: &[(&str, Vec<u8>)],
) -> Result<(), ImageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(part)
        .map_err(io("creating", part))?;
    file.set_len(len).map_err(io("sizing", part))?;
    let opts = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat32)
        .volume_id(volume_id)
        .volume_label(*LABEL);
    let mut buf = Window::new(&file, 0, len);
    fatfs::format_volume(&mut buf, opts).map_err(io("formatting FAT32 in", part))?;
    buf.flush().map_err(io("writing", part))?;
    let fs = fatfs::FileSystem::new(Window::new(&file, 0, len), fatfs::FsOptions::new())
        .map_err(io("opening the FAT32 in", part))?;
    {
        let root = fs.root_dir();
        if let Some(dir) = from.filter(|d| d.is_dir()) {
            copy_dir(dir, &root, part)?;
        }
        for (name, data) in extra {
            let mut f = root.create_file(name).map_err(io("writing into", part))?;
            f.truncate().map_err(io("writing into", part))?;
            f.write_all(data).map_err(io("writing into", part))?;
        }
    }
    fs.unmount().map_err(io("closing the FAT32 in", part))?;
    Ok(())
}

fn copy_dir<T: fatfs::ReadWriteSeek>(
    from: &Path,
    to: &fatfs::Dir<'_, T>,
    part: &Path,
) -> Result<(), ImageError> {
    let mut names: Vec<_> = std::fs::read_dir(from)
        .map_err(io("reading", from))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let src = from.join(&name);
        let n = name.to_string_lossy();
        let meta = std::fs::metadata(&src).map_err(io("reading", &src))?;
        if meta.is_dir() {
            let sub = to.create_dir(&n).map_err(io("writing into", part))?;
            copy_dir(&src, &sub, part)?;
        } else if meta.is_file() {
            let mut data = Vec::new();
            File::open(&src)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(io("reading", &src))?;
            let mut f = to.create_file(&n).map_err(io("writing into", part))?;
            f.truncate().map_err(io("writing into", part))?;
            f.write_all(&data).map_err(io("writing into", part))?;
        }
    }
    Ok(())
}

/// `Read + Write + Seek` over a shared file handle, by position (`pread`/`pwrite`), for fatfs.
/// A window of a shared file handle (`len` bytes from `start`), read and written at positions
/// (`read_at`/`write_at`): the filesystem of one partition inside a disk image for fatfs.
pub struct Window<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> Window<'a> {
    /// `len` bytes of `file` from `start`.
    pub fn new(file: &'a File, start: u64, len: u64) -> Self {
        Window {
            file,
            start,
            len,
            pos: 0,
        }
    }

    fn room(&self, want: usize) -> usize {
        (want as u64).min(self.len.saturating_sub(self.pos)) as usize
    }
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.room(buf.len());
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Write for Window<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.room(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(std::io::Error::other("write past the end of the partition"));
        }
        let put = self.file.write_at(&buf[..n], self.start + self.pos)?;
        self.pos += put as u64;
        Ok(put)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_reads_and_seeks_within_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let f = File::open(&p).unwrap();
        let mut w = Window::new(&f, 3, 4);
        let mut s = String::new();
        w.read_to_string(&mut s).unwrap();
        assert_eq!(s, "3456");
        w.seek(SeekFrom::End(-1)).unwrap();
        s.clear();
        w.read_to_string(&mut s).unwrap();
        assert_eq!(s, "6");
    }
}
