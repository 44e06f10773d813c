//! pistemcell: builds BOSH stemcells for ARM boards, first of all the Raspberry Pi.
//!
//! The library holds every stage of the build; `main.rs` is only the command line.

pub mod archive;
pub mod atomic;
pub mod audit;
pub mod boottest;
pub mod cmd;
pub mod context;
pub mod deb;
pub mod deploy;
pub mod diff;
pub mod doctor;
pub mod image;
pub mod interrupt;
pub mod mirror;
pub mod os_image;
pub mod owned;
pub mod pack;
pub mod pipeline;
pub mod profile;
pub mod progress;
pub mod rootfs;
pub mod sbom;
pub mod spec;
pub mod steps;
pub mod untrusted;
pub mod workdir;
