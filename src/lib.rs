//! pistemcell: builds BOSH stemcells for ARM boards, first of all the Raspberry Pi.
//!
//! The library holds every stage of the build; `main.rs` (with `build.rs`, `doctor_cmd.rs` and
//! `artifacts.rs`) is only the command line, on top of everything below.
//!
//! # Layers
//!
//! Dependencies point down. A module imports only modules on rows below its own, and modules
//! on one row do not import each other. Inside a module, its parts import each other without a
//! cycle. `tests/layers.rs` reads every `use` line and `crate::` path under `src/` and checks
//! both against this table: a new module needs a row here before it builds.
//!
//! | layer | modules | what they are |
//! |---|---|---|
//! | commands | `boottest` `cpi` `diff` `doctor` `os_image` | `boot-test` (and the deploy proof), the BOSH CPI, `diff`, `doctor`, `build --os-image` |
//! | VMs | `vm` | a stemcell's disk, overlays, qemu VMs (guarded or detached) and their logs: what boot-test and the CPI share |
//! | stemcell | `pack` `deploy` | the stemcell tarball: writing, inspecting, verifying; the director's side of the deploy proof |
//! | sbom | `sbom` | SPDX and CycloneDX documents made from a rootfs |
//! | built-in stages | `steps` | bootstrap, monit, agent, blobstore clients and audit stages, and the whole stage list |
//! | pipeline | `pipeline` | the `Stage` trait, data stages, cache keys, snapshots, resume |
//! | bootstrap | `bootstrap` | a configured rootfs from the archive, and package installs into one |
//! | build context | `context` | the resolved spec, settings and the archive, shared by every stage |
//! | work dir | `workdir` | one run at a time, and the sweep of what a killed run left |
//! | audit | `audit` `checkos` | the ELF audit, and reading stemcells, images and trees to audit; the hardening checks |
//! | image | `image` | disk images: MBR, FAT, ext4, loop devices, read-back |
//! | rootfs | `rootfs` | extraction, mounts, emulation, dpkg, the initramfs |
//! | timestamp | `epoch` | the build's one timestamp (`SOURCE_DATE_EPOCH` or the archive's date) |
//! | records | `record` | what the build records inside the rootfs (components, .debs, the archive) |
//! | archive, mirror | `archive` `mirror` | the signed Debian archive client; choosing the mirror |
//! | spec | `spec` | the stemcell spec: YAML, defaults, validation, `--set` |
//! | profiles | `profile` | OS profiles: archive, keyring, suite |
//! | rules | `rules` | named checks and the allow-list entries that excuse them |
//! | formats | `deb` `atomic` | reading .deb files; files written whole or not at all |
//! | ownership | `owned` | what is ours to delete or overwrite |
//! | paths inside a root | `inside` | resolving and reading paths inside a tree without leaving it |
//! | untrusted input | `untrusted` | capped reads, escaping, guarded tar reading of hostile input |
//! | helpers | `tarwrite` `progress` `cmd` `interrupt` | the tree walk and deterministic tar writer; progress; external programs; Ctrl-C |

pub mod archive;
pub mod atomic;
pub mod audit;
pub mod bootstrap;
pub mod boottest;
pub mod checkos;
pub mod cmd;
pub mod context;
pub mod cpi;
pub mod deb;
pub mod deploy;
pub mod diff;
pub mod doctor;
pub mod epoch;
pub mod image;
pub mod inside;
pub mod interrupt;
pub mod mirror;
pub mod os_image;
pub mod owned;
pub mod pack;
pub mod pipeline;
pub mod profile;
pub mod progress;
pub mod record;
pub mod rootfs;
pub mod rules;
pub mod sbom;
pub mod spec;
pub mod steps;
pub mod tarwrite;
pub mod untrusted;
pub mod vm;
pub mod workdir;
