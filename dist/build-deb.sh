#!/usr/bin/env bash
# Builds the Debian package of strand: the release binary, then the man pages and shell
# completions it generates (into target/assets), then `cargo deb` with the metadata in
# host/Cargo.toml ([package.metadata.deb]). Needs cargo-deb (`cargo install cargo-deb`).
# Prints the path of the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p strand
bin=target/release/strand
rm -rf target/assets
mkdir -p target/assets/man target/assets/completions
"$bin" man --dir target/assets/man >/dev/null
gzip -9n target/assets/man/*.1
"$bin" completions bash > target/assets/completions/strand
"$bin" completions zsh > target/assets/completions/_strand
"$bin" completions fish > target/assets/completions/strand.fish
cargo deb -p strand --no-build --strip "$@"
