#!/usr/bin/env bash
# Flash and static RAM of each board's ELF, from its section headers
# (readelf, so no ARM binutils are needed). Flash: vector table, boot2,
# code, read-only data and the initial values of .data. Static RAM: .data,
# .bss and .uninit; the stack comes on top (see docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/target"
printf '%-22s %-22s %10s %10s\n' board target "flash (B)" "RAM (B)"
for elf in thumbv7m-none-eabi/release/qemu-mps2-an385 thumbv7em-none-eabihf/release/qemu-mps2-an386 \
  thumbv6m-none-eabi/release/core-footprint thumbv6m-none-eabi/release/rp2040-rfm95 \
  thumbv7em-none-eabihf/release/rak4631 thumbv7em-none-eabihf/release/nucleo-f411re-sx1276; do
  [ -f "$elf" ] || continue
  flash=0 ram=0
  while read -r sec size; do
    size=$((16#$size))
    case "$sec" in
      .vector_table | .boot2 | .text | .rodata | .gnu.sgstubs) flash=$((flash + size)) ;;
      .data) flash=$((flash + size)) ram=$((ram + size)) ;;
      .bss | .uninit) ram=$((ram + size)) ;;
    esac
  done < <(readelf -SW "$elf" | sed 's/\[ */[/' | awk '$1 ~ /^\[[0-9]+\]$/ && $2 ~ /^\./ { print $2, $6 }')
  printf '%-22s %-22s %10d %10d\n' "${elf##*/}" "${elf%%/*}" "$flash" "$ram"
done
