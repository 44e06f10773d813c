//! Packing: the deterministic tar writer (`tarball`) and parallel gzip (`pgzip`); the
//! stemcell tarball and its inspection build on them.

pub mod pgzip;
pub mod tarball;
