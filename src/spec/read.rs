//! Reading the spec file: a YAML file of bounded size, never a directory or a device.

use std::path::Path;

use super::SpecError;

/// The most bytes read of a spec file (a spec is a few KiB).
pub const SPEC_MAX: u64 = 1 << 20;

/// Reads the spec file at `p`: a regular file (or a pipe, as `<(...)` gives) of at most
/// [`SPEC_MAX`] bytes; a directory or a device is refused by name.
pub(super) fn read_spec(p: &Path) -> Result<String, SpecError> {
    use std::os::unix::fs::FileTypeExt;
    let read_err = |source| SpecError::Read {
        path: p.to_path_buf(),
        source,
    };
    let m = std::fs::metadata(p).map_err(read_err)?;
    let ft = m.file_type();
    if !(ft.is_file() || ft.is_fifo()) {
        return Err(read_err(std::io::Error::other(format!(
            "it is {}, not a YAML file; give the path of the spec file",
            crate::untrusted::kind_of(ft)
        ))));
    }
    let f = std::fs::File::open(p).map_err(read_err)?;
    let bytes = crate::untrusted::read_stream_capped(f, SPEC_MAX).map_err(|e| match e {
        crate::untrusted::CappedRead::Io(source) => read_err(source),
        crate::untrusted::CappedRead::TooLarge => read_err(std::io::Error::other(format!(
            "it is over the {SPEC_MAX}-byte limit for a spec; is it the right file?"
        ))),
    })?;
    String::from_utf8(bytes).map_err(|_| read_err(std::io::Error::other("it is not UTF-8 text")))
}
