//! The deploy proof's host side, the parts that need no VM: the director's blobstore
//! ([`dav`]), a small generated test release ([`release`]) and the director's half of the
//! agent's mbus protocol ([`director`]). `boot-test --deploy` joins them to a booted VM.

pub mod dav;
pub mod director;
pub(crate) mod http;
pub mod release;
pub mod release_files;

#[cfg(test)]
mod flow_tests;
