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
