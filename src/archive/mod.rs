//! The Debian-format archive client: signed Release files, Packages indices, dependency
//! resolution, and parallel verified downloads into a content-addressed cache.

pub mod cache;
pub mod client;
pub mod download;
pub mod http;
pub mod packages;
pub mod release;
pub mod resolve;
pub mod signature;
pub mod version;
