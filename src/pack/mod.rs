//! Packing: the stemcell tar stream (`tarball`, written with `crate::tarwrite`), parallel gzip (`pgzip`, blocks by `deflate`), the stemcell
//! tarball (`stemcell`, `write`) and reading one back (`inspect`).

pub mod deflate;
pub mod inspect;
pub mod pgzip;
pub mod provenance;
pub mod stemcell;
pub mod tarball;
pub mod write;
