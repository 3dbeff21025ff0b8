//! LoRa physical-layer arithmetic a node and a simulator share: time on air
//! ([`airtime`]), duty-cycle accounting over a rolling hour ([`duty_cycle`]),
//! regional plans ([`region`]: EU868 sub-bands, US915 dwell time) and
//! Meshtastic's modem presets ([`preset`]).
//!
//! All integer arithmetic on caller-supplied time ([`crate::Instant`]): no
//! clock, no allocation, no libm, so the same code decides on a Cortex-M0 node
//! what the mesh simulator measures.

pub mod airtime;
pub mod duty_cycle;
pub mod preset;
pub mod region;

pub use airtime::{CodingRate, LowDataRate, Modulation, ModulationError};
pub use duty_cycle::{DutyCycle, HOUR, NO_LIMIT_PPM};
pub use preset::Preset;
pub use region::{Region, RegionDutyCycle, RegionError, SubBand};
