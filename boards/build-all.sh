#!/usr/bin/env bash
# Builds every board as CI does (`cargo build --release` inside its folder),
# timing each, then prints the flash and static RAM of each ELF.
# Usage: boards/build-all.sh [--clippy]
set -euo pipefail
cd "$(dirname "$0")"
boards=(qemu-mps2-an385 qemu-mps2-an386 core-footprint rp2040-rfm95 rak4631 nucleo-f411re-sx1276)
for b in "${boards[@]}"; do
  start=$SECONDS
  (cd "$b" && cargo build --release --quiet)
  if [ "${1:-}" = "--clippy" ]; then
    (cd "$b" && cargo clippy --release --quiet -- -D warnings)
  fi
  echo "built $b in $((SECONDS - start)) s"
done
echo
./footprint.sh
