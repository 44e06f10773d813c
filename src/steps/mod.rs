//! The built-in stages written in Rust, and what they share.

pub mod agent;
pub mod agent_build;
pub mod agent_fetch;
pub mod artifact;
pub mod audit;
pub mod blobstore;
pub mod bootstrap;
pub mod go_source;
pub mod gobuild;
pub mod monit;
pub mod monit_build;
pub mod monit_http;
pub mod monit_proof;
pub mod packages;
pub mod record;
