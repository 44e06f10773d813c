//! The target root filesystem: safe extraction, mounts as RAII guards, emulation, dpkg.

pub mod binfmt;
pub mod deferred;
pub mod dpkg;
pub mod elf_interp;
pub mod extract;
pub mod host_perl;
pub mod host_tools;
pub mod hostkeys;
pub mod initramfs;
pub mod initramfs_reuse;
pub mod initramfs_scan;
pub mod mounts;
pub mod statoverride;
pub mod trace;
