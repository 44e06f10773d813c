//! The target root filesystem: safe extraction, mounts as RAII guards, emulation, dpkg.

pub mod binfmt;
pub mod dpkg;
pub mod extract;
pub mod initramfs;
pub mod inside;
pub mod mounts;
