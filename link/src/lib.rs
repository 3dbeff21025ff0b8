//! # strand-link
//!
//! The protocol core of strand: it turns unreliable, possibly noisy frames
//! into reliable, ordered packets and byte streams between nodes.
//!
//! * `#![no_std]`, no allocation on the core path: every buffer is the
//!   caller's ([`storage`]) — static arrays on a microcontroller, `Vec`s on a
//!   host (feature `alloc`) — initialised in place.
//! * Sans-IO, like quinn-proto and smoltcp: a [`Connection`] is fed frames
//!   and the current time and gives frames to send, deliveries and events;
//!   an [`Endpoint`] holds the connections of a node and routes frames among
//!   them; a [`framing`] turns frames into what a transport carries; and the
//!   one [`drive`] step does all of that for every driver — host, simulator,
//!   firmware. No threads, no clocks, no I/O.
//! * Deterministic: the same inputs, times and seed give the same outputs.
//!
//! Modules mirror the sections of `docs/protocol.md`: [`framing`] (2),
//! [`wire`] (3-4), [`conn`] (5-8: [`conn::session`] 5, the ARQ in `conn::tx`,
//! `conn::rx`, [`rtt`], [`sizing`] 6, [`conn::ledger`] 8.3), [`endpoint`]
//! (5.6), [`drive`]. [`lora`] is the LoRa physical-layer arithmetic radio
//! nodes and the mesh simulator share: time on air, duty-cycle accounting,
//! regional plans.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod config;
pub mod conn;
#[cfg(feature = "diode")]
pub mod diode;
pub mod drive;
pub mod endpoint;
pub mod event;
pub mod fec;
pub mod framing;
pub mod lora;
mod math;
mod pacer;
pub mod rtt;
pub mod seal;
pub mod sizing;
pub mod stats;
pub mod storage;
pub mod time;
pub mod wire;

#[cfg(feature = "sim")]
pub mod sim;

pub use config::Config;
pub use conn::ledger::StreamEntry;
pub use conn::rx::{Delivery, RxSlot};
pub use conn::tx::{SendError, TxSlot};
pub use conn::{ConnStorage, Connection};
pub use drive::{Capabilities, Driver, Transport};
pub use endpoint::Endpoint;
pub use event::{Event, PacketId};
pub use stats::Stats;
pub use storage::Buf;
pub use time::Instant;
