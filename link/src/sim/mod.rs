//! A seeded serial-line emulator and a two-endpoint harness (feature `sim`).
//!
//! Faults live here, wrapped around the link the way smoltcp's fault injector
//! wraps a device — never as special cases inside the protocol. The same line
//! model drives the simulation tests, the benchmark and (later) `strand linkem`.
//! Every random choice comes from one seeded PCG stream per direction, so a
//! failing run is reproduced by its seed.

mod line;
mod pair;

pub use line::{Direction, GilbertElliott, LineConfig, LineCounters};
pub use pair::{App, Endpoint, Node, Pair};

use alloc::vec::Vec;

/// `len` pseudo-random bytes for `seed` (xorshift64: the same bytes on every
/// machine), the test data of the end-to-end tests, the firmware tests, the
/// benchmarks and `strand demo`.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
