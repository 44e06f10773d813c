#!/usr/bin/env bash
# Compiles pistemcell (release, exactly the committed Cargo.lock) into the `pistemcell-bin`
# output, for the build tasks. Cargo's registry and target dir live in the task's caches, so
# a commit that changes little recompiles little.
set -euo pipefail

root=$PWD
out="$root/pistemcell-bin"
# The image's toolchain stays where it is (rustup's proxies find it through RUSTUP_HOME); only
# the downloaded crates move into the cache.
export CARGO_HOME="$root/cargo-home"
export CARGO_TARGET_DIR="$root/cargo-target"
export CARGO_TERM_COLOR=never

cargo --version
rustc --version

cd "$root/pistemcell"
cargo build --release --locked --bin pistemcell

install -m 0755 "$CARGO_TARGET_DIR/release/pistemcell" "$out/pistemcell"
(cd "$out" && sha256sum pistemcell >pistemcell.sha256)
"$out/pistemcell" --version
cat "$out/pistemcell.sha256"
