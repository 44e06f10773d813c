//! The hostile-input corpus: every case builds its careless or hostile input here (nothing is
//! checked in), runs the real command on it and asserts the outcome: a clear error naming the
//! input, nothing written outside the work dir, nothing left behind, memory and time bounded.
//! Each module is one class of issue 16; `hostile::common` holds the runner.

#[path = "hostile/common.rs"]
mod common;

#[path = "hostile/bombs.rs"]
mod bombs;
#[path = "hostile/boot.rs"]
mod boot;
#[path = "hostile/clean.rs"]
mod clean;
#[path = "hostile/interrupts.rs"]
mod interrupts;
#[path = "hostile/os_image.rs"]
mod os_image;
#[path = "hostile/outputs.rs"]
mod outputs;
#[path = "hostile/pack.rs"]
mod pack;
#[path = "hostile/small.rs"]
mod small;
#[path = "hostile/stemcells.rs"]
mod stemcells;
#[path = "hostile/stemcells_diff.rs"]
mod stemcells_diff;
#[path = "hostile/trees.rs"]
mod trees;
