//! The built-in stages written in Rust.

pub mod bootstrap;
pub mod packages;
