//! strand's hardware-in-the-loop tests and benchmarks.
//!
//! The link benchmark (`linkbench`) over the emulated serial line of `strand_link::sim`; [`mesh`], the
//! LoRa mesh simulator behind `meshsim`; and what the benchmarks and the end-to-end tests that drive
//! real programs share: [`procs`] (process groups with deadlines), [`line`] (`strand linkem` as a
//! process), [`testdata`] (seeded data, hashes), [`report`] (CSV, order statistics), [`nncp`] (NNCP
//! nodes and a call over FIFOs) and [`soak`] (the mixed-traffic soak of `strand pipe` and its
//! delivery-gap rule). Firmware under qemu-system-arm and real devices (named by environment
//! variables) join as those parts land.

pub mod line;
pub mod mesh;
pub mod nncp;
pub mod procs;
pub mod report;
pub mod soak;
pub mod testdata;
