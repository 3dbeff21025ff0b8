//! A seeded discrete-event simulator of a LoRa mesh, the instrument strand's
//! mesh layer is measured with (docs/mesh.md).
//!
//! - [`layout`]: node positions (the five REF-30 layouts are built in).
//! - [`radio`]: path loss, shadowing, sensitivity: the run's [`radio::Links`].
//! - [`ether`]: frames on the air, collisions with capture, half duplex, CAD. A
//!   library of its own, so an "ether" process serving QEMU nodes can reuse it.
//! - [`protocol`]: the sans-IO trait a mesh protocol implements.
//! - [`flood`]: Meshtastic's managed flooding, the baseline.
//! - [`traffic`], [`scenario`]: what a run offers the mesh; [`sim`]: the event loop
//!   and the figures; [`report`]: summaries over seeds, JSON and CSV; [`plot`]: SVG.

pub mod ether;
pub mod flood;
pub mod layout;
pub mod plot;
pub mod protocol;
pub mod queue;
pub mod radio;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod traffic;

use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

/// Labels of the independent random streams drawn from a run's seed.
pub mod stream {
    /// Per-link shadowing.
    pub const SHADOWING: u64 = 1;
    /// Message arrivals and destinations.
    pub const TRAFFIC: u64 = 2;
    /// CAD false alarms.
    pub const CAD: u64 = 3;
    /// Each node's protocol.
    pub const PROTOCOL: u64 = 4;
}

/// SplitMix64 finaliser: spreads nearby inputs over the whole range.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of stream `label`, index `index`, of run `seed`.
pub fn stream_seed(seed: u64, label: u64, index: u64) -> u64 {
    mix(mix(mix(seed) ^ label.wrapping_mul(0x9e37_79b9_7f4a_7c15)) ^ index)
}

/// A PCG stream (the same numbers for the same seed on every platform and version).
pub fn stream(seed: u64, label: u64, index: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(stream_seed(seed, label, index))
}
