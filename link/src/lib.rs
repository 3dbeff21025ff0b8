//! # strand-link
//!
//! The protocol core of strand: it turns an unreliable, possibly noisy byte
//! pipe into reliable, ordered packets and byte streams.
//!
//! * `#![no_std]`, no allocation: every buffer is a fixed array sized by const
//!   generics (`W` frames of window, `N` bytes of frame capacity).
//! * Sans-IO, like quinn-proto and smoltcp: the caller feeds received bytes and
//!   the current time ([`Link::handle_input`], [`Link::handle_timeout`]) and
//!   collects bytes to send ([`Link::poll_transmit`]), deliveries
//!   ([`Link::recv`]), events ([`Link::poll_event`]) and the next deadline
//!   ([`Link::poll_timeout`]). No threads, no clocks, no I/O.
//! * Deterministic: the same inputs, times and seed give the same outputs.
//!
//! Modules mirror the sections of `docs/protocol.md`: [`framing`] (2),
//! [`wire`] (3-4), the handshake and session logic in `Link` (5), the ARQ in
//! `send`/`recv`/[`rtt`]/[`sizing`] (6), flow control (7) and channels (8).
//! [`lora`] is the LoRa physical-layer arithmetic radio nodes and the mesh
//! simulator share: time on air, duty-cycle accounting, regional plans.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "diode")]
extern crate alloc;

pub mod config;
#[cfg(feature = "diode")]
pub mod diode;
pub mod event;
pub mod fec;
pub mod framing;
mod link;
pub mod lora;
mod math;
mod pacer;
mod recv;
pub mod rtt;
mod send;
pub mod sizing;
pub mod stats;
mod stream;
pub mod time;
pub mod wire;

#[cfg(feature = "sim")]
pub mod sim;

pub use config::Config;
pub use event::{Event, PacketId};
pub use link::Link;
pub use recv::Delivery;
pub use send::SendError;
pub use stats::Stats;
pub use time::Instant;
