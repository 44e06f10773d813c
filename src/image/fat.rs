//! The boot partition: FAT32 written by the `fatfs` crate into a partition file, with a
//! fixed volume id and label and every timestamp at the DOS epoch (1980-01-01), so the same
//! files give the same bytes. Files are added in name order.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
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
    let mut buf = positioned::At::new(&file);
    fatfs::format_volume(&mut buf, opts).map_err(io("formatting FAT32 in", part))?;
    buf.flush().map_err(io("writing", part))?;
    let fs = fatfs::FileSystem::new(positioned::At::new(&file), fatfs::FsOptions::new())
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
mod positioned {
    use std::fs::File;
    use std::io::{self, Read, Seek, SeekFrom, Write};

    /// Positioned reads and writes on a shared file handle.
    pub struct At<'a> {
        file: &'a File,
        pos: u64,
    }

    impl<'a> At<'a> {
        pub fn new(file: &'a File) -> Self {
            At { file, pos: 0 }
        }
    }

    impl Read for At<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            use std::os::unix::fs::FileExt;
            let n = self.file.read_at(buf, self.pos)?;
            self.pos += n as u64;
            Ok(n)
        }
    }

    impl Write for At<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            use std::os::unix::fs::FileExt;
            let n = self.file.write_at(buf, self.pos)?;
            self.pos += n as u64;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for At<'_> {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            let len = self.file.metadata()?.len();
            let new = match to {
                SeekFrom::Start(n) => Some(n),
                SeekFrom::End(d) => len.checked_add_signed(d),
                SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            };
            self.pos = new.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "seek before the start")
            })?;
            Ok(self.pos)
        }
    }
}
