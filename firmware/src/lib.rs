//! # strand-firmware
//!
//! strand on microcontrollers: node *roles* built on the `strand-link` core,
//! generic over the board. A board supplies ports (anything implementing the
//! non-blocking `embedded-io` traits, or a [`port::Port`] of its own such as a
//! radio), a clock ([`clock::Clock`]) and entropy for session ids; this crate
//! supplies what runs on top:
//!
//! * [`bridge`]: terminates a strand link on each of two ports and relays
//!   channel data between them with backpressure; end of stream, stream
//!   resets, restarts and the written-up-to confirmation cross it.
//! * [`loopback`]: an echo service, for tests.
//! * [`service`]: the node's counters, readable over the link.
//! * [`drive`]: the one place that drives a `Link` (feed received bytes, run
//!   timers, hand frames to the port, say when to wake). It is the piece the
//!   core's own drive step (issue 13) will replace.
//! * [`ring`] and [`clock`]: interrupt-to-main byte rings and the tickless
//!   clock arithmetic a board's drivers are built from.
//!
//! No protocol logic lives here: framing, ARQ, sessions and the stream ledger
//! are the core's. `no_std`, no allocation; host builds run the unit tests
//! against the core's simulated line.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

pub mod bridge;
pub mod channels;
pub mod clock;
pub mod drive;
mod log;
pub mod loopback;
pub mod port;
pub mod relay;
pub mod ring;
pub mod service;

pub use drive::Drive;
pub use port::{ByteStream, Port};
