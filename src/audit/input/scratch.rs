//! Scratch space for reading untrusted input (`audit`, `sbom`, `diff`): directories in TMPDIR
//! named `pistemcell-audit-PID-XXXXXX` / `pistemcell-diff-PID-XXXXXX`, each holding a lock
//! file its process keeps locked (`flock`) while it lives. A killed run's directories are swept
//! by the next run: only ours (our prefix, our uid, a real directory), only when no live
//! process holds the lock (or, before the lock exists, when the PID is gone); whatever is
//! mounted there is unmounted first. Copies of disk images stay sparse (zero blocks become
//! holes), and large writes check the free space first.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::untrusted::escape_path;

/// The prefixes of our scratch directories in TMPDIR.
pub const PREFIXES: [&str; 2] = ["pistemcell-audit-", "pistemcell-diff-"];
/// The lock file each scratch directory holds.
const LOCK: &str = ".pistemcell-lock";
/// Free space left untouched on the scratch filesystem.
pub const SCRATCH_RESERVE: u64 = 64 << 20;
/// The largest apparent size of a disk image copied to scratch (holes included).
pub const IMAGE_BYTES_MAX: u64 = 32 << 30;
/// The most bytes of tar stream (headers and contents) unpacked into scratch.
pub const TREE_BYTES_MAX: u64 = 16 << 30;
/// Blocks of zeros this large become holes in a scratch copy.
const BLOCK: usize = 64 << 10;

/// A scratch directory of this process, locked while it lives, removed on drop.
pub struct Scratch {
    dir: tempfile::TempDir,
    _lock: File,
}

impl Scratch {
    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Creates a scratch directory in TMPDIR named `PREFIX PID -XXXXXX` with its lock held.
pub fn create(prefix: &str) -> Result<Scratch, String> {
    let tmp = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir_in(&tmp)
        .map_err(|e| {
            format!(
                "creating a scratch directory in {}: {e}; set TMPDIR to a writable directory",
                escape_path(&tmp)
            )
        })?;
    // The lock is taken before it gets its name: a lock file that exists is held.
    let pending = dir.path().join(".pistemcell-lock.new");
    let lock = File::create(&pending).map_err(|e| format!("{}: {e}", escape_path(&pending)))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "{}: cannot lock: {}",
            escape_path(&pending),
            std::io::Error::last_os_error()
        ));
    }
    std::fs::rename(&pending, dir.path().join(LOCK))
        .map_err(|e| format!("{}: {e}", escape_path(&pending)))?;
    Ok(Scratch { dir, _lock: lock })
}

/// The PID in a scratch directory's name, when the name is one of ours.
fn owner_pid(name: &str) -> Option<i32> {
    let rest = PREFIXES.iter().find_map(|p| name.strip_prefix(p))?;
    let (pid, suffix) = rest.split_once('-')?;
    if suffix.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|p| *p > 0)
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() != libc::ESRCH }
}

/// Whether the scratch directory `dir` (owned by `pid`) was left by a dead process; the lock,
/// when taken, is returned so nobody else starts on it meanwhile.
fn stale(dir: &Path, pid: i32) -> Option<Option<File>> {
    match crate::untrusted::open_regular(&dir.join(LOCK)) {
        Ok(f) => {
            // SAFETY: flock on a descriptor we own.
            let got = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            got.then_some(Some(f))
        }
        Err(_) => (!pid_alive(pid)).then_some(None),
    }
}

/// Removes the scratch directories a killed `audit`, `sbom` or `diff` left in `tmp` (see the
/// module's doc); returns what was removed.
pub fn sweep_stale_in(tmp: &Path) -> Vec<PathBuf> {
    let mut swept = Vec::new();
    let Ok(rd) = std::fs::read_dir(tmp) else {
        return swept;
    };
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(owner_pid) else {
            continue;
        };
        let dir = e.path();
        let Ok(m) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if !m.is_dir() || m.uid() != uid {
            continue;
        }
        let Some(_lock) = stale(&dir, pid) else {
            continue;
        };
        // Unmount first: never delete through a mount.
        let _ = crate::rootfs::mounts::sweep(&dir);
        crate::image::loopdev::sweep(&dir);
        if !crate::rootfs::mounts::mounts_under(&dir).is_empty() {
            continue;
        }
        if std::fs::remove_dir_all(&dir).is_ok() {
            swept.push(dir);
        }
    }
    swept
}

/// [`sweep_stale_in`] TMPDIR.
pub fn sweep_stale() -> Vec<PathBuf> {
    sweep_stale_in(&std::env::temp_dir())
}

/// What the first bytes of an image say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// gzip (a rootfs tarball, or a gzip of a disk image).
    Gzip,
    /// A tar stream (`ustar` at 257).
    Tar,
    /// An MBR partition table with partitions.
    Mbr,
    /// A bare ext4 filesystem.
    Ext4,
    /// None of these.
    Other,
}

/// How many first bytes [`classify`] looks at.
pub const HEAD_LEN: usize = 4096;

/// Classifies an image from its first bytes (up to [`HEAD_LEN`]).
pub fn classify(head: &[u8]) -> Head {
    if head.len() >= 2 && head[..2] == [0x1f, 0x8b] {
        Head::Gzip
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Head::Tar
    } else if head.len() >= 512
        && crate::image::mbr::parse(&head[..512]).is_some_and(|(_, p)| !p.is_empty())
    {
        Head::Mbr
    } else if head.len() >= 0x43a && head[0x438..0x43a] == [0x53, 0xef] {
        Head::Ext4
    } else {
        Head::Other
    }
}

/// The first bytes in hex, for an error.
pub fn head_hex(head: &[u8]) -> String {
    head.iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A stemcell's `image` member, classified from its first bytes (a gzip looked into): the
/// stream to read it from, gunzipped, and its label for errors.
pub enum ImageStream<'a> {
    /// A rootfs tar stream.
    Tree(Box<dyn Read + 'a>, String),
    /// A disk or ext4 image stream.
    Disk(Box<dyn Read + 'a>, String),
}

/// Classifies the `image` member `r` (`what` names it) before a byte of it is written
/// anywhere: gzip of a tar is a tree, gzip of anything else or a bare MBR/ext4 image a disk, a
/// bare tar a tree only when `plain_tar`; anything else is refused.
pub fn classify_image<'a>(
    r: &'a mut dyn Read,
    what: &str,
    plain_tar: bool,
) -> Result<ImageStream<'a>, String> {
    let head = peek(r, HEAD_LEN).map_err(|e| format!("reading {what}: {e}"))?;
    let kind = classify(&head);
    let whole = std::io::Cursor::new(head.clone()).chain(r);
    match kind {
        Head::Gzip => {
            let mut gz = flate2::read::MultiGzDecoder::new(whole);
            let inner =
                peek(&mut gz, HEAD_LEN).map_err(|e| format!("reading {what} (gzip): {e}"))?;
            let tar = classify(&inner) == Head::Tar;
            let rest = Box::new(std::io::Cursor::new(inner).chain(gz));
            Ok(if tar {
                ImageStream::Tree(rest, format!("{what} (rootfs tarball)"))
            } else {
                ImageStream::Disk(rest, format!("{what} (gzip)"))
            })
        }
        Head::Tar if plain_tar => Ok(ImageStream::Tree(Box::new(whole), format!("{what} (rootfs tar)"))),
        Head::Mbr | Head::Ext4 => Ok(ImageStream::Disk(Box::new(whole), what.to_string())),
        Head::Tar | Head::Other => Err(format!(
            "{what} is not gzip (a rootfs tarball), an MBR disk image or an ext4 image (it starts {}); refused without copying it",
            head_hex(&head)
        )),
    }
}

/// Reads up to `n` bytes (fewer only at the end of the stream).
pub fn peek(r: &mut dyn Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Copies `r` to the new file `dest`, zero blocks as holes, refusing more than
/// [`IMAGE_BYTES_MAX`] in all or more data than the free space (less [`SCRATCH_RESERVE`]);
/// `what` names the source in errors. Returns the apparent size.
pub fn copy_sparse(r: &mut dyn Read, dest: &Path, what: &str) -> Result<u64, String> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let free =
        crate::untrusted::free_bytes(dir).map_err(|e| format!("{}: {e}", escape_path(dir)))?;
    let budget = free.saturating_sub(SCRATCH_RESERVE);
    let mut f = File::create(dest).map_err(|e| format!("{}: {e}", escape_path(dest)))?;
    let werr = |e: std::io::Error| format!("writing the scratch copy {}: {e}", escape_path(dest));
    let mut buf = vec![0u8; BLOCK];
    let (mut total, mut data) = (0u64, 0u64);
    loop {
        if crate::interrupt::requested() {
            return Err(format!("copying {what}: interrupted"));
        }
        let block = peek(r, BLOCK).map_err(|e| format!("reading {what}: {e}"))?;
        if block.is_empty() {
            break;
        }
        total += block.len() as u64;
        if total > IMAGE_BYTES_MAX {
            return Err(format!(
                "{what} is larger than {} GiB, the limit for a disk image copied to scratch; it is not an image pistemcell wrote",
                IMAGE_BYTES_MAX >> 30
            ));
        }
        if block.iter().all(|b| *b == 0) {
            f.seek(SeekFrom::Current(block.len() as i64))
                .map_err(werr)?;
            continue;
        }
        data += block.len() as u64;
        if data > budget {
            return Err(format!(
                "copying {what} to {}: its data passed {} MiB, but only {} MiB are free there ({} MiB kept in reserve); free space or point TMPDIR at a larger filesystem",
                escape_path(dir),
                data >> 20,
                free >> 20,
                SCRATCH_RESERVE >> 20
            ));
        }
        buf[..block.len()].copy_from_slice(&block);
        f.write_all(&buf[..block.len()]).map_err(werr)?;
    }
    f.set_len(total).map_err(werr)?;
    Ok(total)
}

/// A reader that refuses more than [`TREE_BYTES_MAX`] bytes and checks the free space of
/// `dir` every 64 MiB while a tarball is unpacked there.
pub struct Budget<R> {
    inner: R,
    read: u64,
    next_check: u64,
    dir: PathBuf,
    what: String,
}

impl<R: Read> Budget<R> {
    /// Wraps `inner`, unpacked into `dir`; `what` names it in errors.
    pub fn new(inner: R, dir: &Path, what: &str) -> Budget<R> {
        Budget {
            inner,
            read: 0,
            next_check: 0,
            dir: dir.to_path_buf(),
            what: what.to_string(),
        }
    }
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if crate::interrupt::requested() {
            return Err(std::io::Error::other("interrupted"));
        }
        if self.read >= self.next_check {
            let free = crate::untrusted::free_bytes(&self.dir)?;
            if free < SCRATCH_RESERVE {
                return Err(std::io::Error::other(format!(
                    "unpacking {} into {}: {} MiB unpacked, only {} MiB free there ({} MiB kept in reserve); free space or point TMPDIR at a larger filesystem",
                    self.what,
                    escape_path(&self.dir),
                    self.read >> 20,
                    free >> 20,
                    SCRATCH_RESERVE >> 20
                )));
            }
            self.next_check = self.read + (64 << 20);
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > TREE_BYTES_MAX {
            return Err(std::io::Error::other(format!(
                "{} holds more than {} GiB of tar stream, the limit for a tree unpacked to scratch",
                self.what,
                TREE_BYTES_MAX >> 30
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_carry_the_pid_and_only_dead_owners_are_swept() {
        assert_eq!(owner_pid("pistemcell-audit-123-abc"), Some(123));
        assert_eq!(owner_pid("pistemcell-diff-9-x"), Some(9));
        assert_eq!(owner_pid("pistemcell-audit-abc"), None);
        assert_eq!(owner_pid("other-123-abc"), None);
        let tmp = tempfile::tempdir().unwrap();
        // A live one (this process holds its lock) stays.
        let live = {
            let d = tempfile::Builder::new()
                .prefix(&format!("pistemcell-audit-{}-", std::process::id()))
                .tempdir_in(tmp.path())
                .unwrap();
            let f = File::create(d.path().join(LOCK)).unwrap();
            assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
            (d, f)
        };
        // A dead one: its lock file is not held.
        let dead = tmp.path().join("pistemcell-diff-1-dead");
        std::fs::create_dir_all(dead.join("rootfs/etc")).unwrap();
        std::fs::write(dead.join(LOCK), "").unwrap();
        // Not ours: left alone.
        let other = tmp.path().join("pistemcell-audit-zzz");
        std::fs::create_dir(&other).unwrap();
        let swept = sweep_stale_in(tmp.path());
        assert_eq!(swept, vec![dead.clone()]);
        assert!(!dead.exists() && other.exists() && live.0.path().exists());
    }

    #[test]
    fn zero_blocks_become_holes() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("img");
        let mut data = vec![0u8; 64 << 20];
        data[1000] = 1;
        let n = copy_sparse(&mut &data[..], &dest, "test image").unwrap();
        assert_eq!(n, 64 << 20);
        let m = std::fs::metadata(&dest).unwrap();
        assert_eq!(m.len(), 64 << 20);
        assert!(m.blocks() * 512 < 1 << 20, "{} blocks", m.blocks());
        assert_eq!(std::fs::read(&dest).unwrap(), data);
    }

    #[test]
    fn images_are_classified_from_their_first_bytes() {
        assert_eq!(classify(&[0x1f, 0x8b, 8]), Head::Gzip);
        assert_eq!(classify(&[0u8; 4096]), Head::Other);
        let mut ext4 = vec![0u8; 4096];
        ext4[0x438] = 0x53;
        ext4[0x439] = 0xef;
        assert_eq!(classify(&ext4), Head::Ext4);
    }
}
