//! Thin libc wrappers the standard library lacks: no-follow timestamps, xattrs, mknod, linkat.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True when the process runs as root (can chown, mknod devices, set security.* xattrs).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn times(mtime: i64) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    [t, t]
}

/// Sets atime and mtime of `path` itself (a symlink is not followed).
pub(super) fn set_mtime_nofollow(path: &Path, mtime: i64) -> io::Result<()> {
    let c = cpath(path)?;
    let ts = times(mtime);
    // SAFETY: `c` is a valid NUL-terminated string and `ts` points to two timespecs.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// Sets atime and mtime of an open file.
pub(super) fn set_mtime_fd(file: &File, mtime: i64) -> io::Result<()> {
    let ts = times(mtime);
    // SAFETY: the fd is open for the lifetime of `file`; `ts` points to two timespecs.
    check(unsafe { libc::futimens(file.as_raw_fd(), ts.as_ptr()) })
}

/// Sets an extended attribute on `path` itself (a symlink is not followed).
pub(super) fn lsetxattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    let c = cpath(path)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    // SAFETY: both strings are NUL-terminated; value pointer/length describe a live slice.
    check(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// Sets an extended attribute on an open file.
pub(super) fn fsetxattr(file: &File, name: &[u8], value: &[u8]) -> io::Result<()> {
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    // SAFETY: the fd is open; the name is NUL-terminated; value describes a live slice.
    check(unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// Creates a device node or fifo; `kind` is `libc::S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
pub(super) fn mknod(path: &Path, kind: libc::mode_t, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(path)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: `c` is a valid NUL-terminated string.
    check(unsafe { libc::mknod(c.as_ptr(), kind | 0o600, dev) })
}

/// Hard-links `new` to `old` without following `old` if it is a symlink.
pub(super) fn link_nofollow(old: &Path, new: &Path) -> io::Result<()> {
    let o = cpath(old)?;
    let n = cpath(new)?;
    // SAFETY: both strings are valid and NUL-terminated.
    check(unsafe { libc::linkat(libc::AT_FDCWD, o.as_ptr(), libc::AT_FDCWD, n.as_ptr(), 0) })
}

/// Reads an extended attribute of `path` itself (used by tests).
#[cfg(test)]
pub(crate) fn lgetxattr(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let c = cpath(path)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    let mut buf = vec![0u8; 65536];
    // SAFETY: strings are NUL-terminated; buf is writable for its full length.
    let len =
        unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(len as usize);
    Ok(buf)
}
