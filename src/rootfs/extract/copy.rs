//! Copying an entry's data into its new file: a GNU sparse entry's holes stay holes (its real
//! size can dwarf the archive, which holds only its data).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Why a copy stopped.
pub(super) enum CopyError {
    /// Reading the entry failed (a corrupt archive).
    Read(io::Error),
    /// Writing the file failed.
    Write(io::Error),
}

/// Copies `entry` into `file`; returns the bytes copied (holes included).
pub(super) fn copy(entry: &mut impl Read, file: &mut File, sparse: bool) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut written = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        if sparse && buf[..n].iter().all(|b| *b == 0) {
            file.seek(SeekFrom::Current(n as i64))
                .map_err(CopyError::Write)?;
        } else {
            file.write_all(&buf[..n]).map_err(CopyError::Write)?;
        }
        written += n as u64;
    }
    if sparse {
        file.set_len(written).map_err(CopyError::Write)?;
    }
    Ok(written)
}
