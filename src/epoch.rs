//! The build's one timestamp: every mtime a stemcell carries (rootfs files written by dpkg,
//! the initramfs, tar members, image inodes, SBOM dates) is `SOURCE_DATE_EPOCH` when it is set,
//! else the `Date` of the archive the rootfs was bootstrapped from (`record::ARCHIVE_RECORD`),
//! else 0.

use std::path::Path;

use crate::record::ARCHIVE_RECORD;

/// `SOURCE_DATE_EPOCH` from the environment, when set to a number.
pub fn source_date_epoch() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}

/// The time a tree's archives, images and SBOMs carry: `SOURCE_DATE_EPOCH`, else the date of
/// the archive the tree was bootstrapped from, else 0.
pub fn epoch_for(root: &Path) -> u64 {
    source_date_epoch()
        .or_else(|| recorded_epoch(root))
        .unwrap_or(0)
}

/// The `Date` of the archive the rootfs at `root` was bootstrapped from, in seconds since the
/// epoch: the default `SOURCE_DATE_EPOCH` of its stemcell.
pub fn recorded_epoch(root: &Path) -> Option<u64> {
    // Any tree may be asked (sbom and pack take trees nobody here built): read inside it.
    let text = crate::inside::read_text(
        root,
        ARCHIVE_RECORD,
        crate::untrusted::SMALL_MAX,
        "the archive record",
    )
    .ok()??;
    let date = text.lines().find_map(|l| l.strip_prefix("Date: "))?;
    crate::archive::release::parse_date(date.trim()).and_then(|t| u64::try_from(t).ok())
}
