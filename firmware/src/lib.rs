//! # strand-firmware
//!
//! strand on microcontrollers: node *roles* built on the `strand-link` core,
//! generic over the board. A board supplies ports (transports for the core's
//! drive step: a UART through [`port::ByteStream`], a radio through
//! [`port::Datagrams`], or a [`port::Port`] of its own), static memory for
//! each port's link ([`memory`]), a clock ([`clock::Clock`]) and entropy for
//! session ids; this crate supplies what runs on top:
//!
//! * [`bridge`]: terminates a strand link on each of two ports and relays
//!   channel data between them with backpressure; end of stream, stream
//!   resets, restarts and the written-up-to confirmation cross it.
//! * [`loopback`]: an echo service, for tests.
//! * [`service`]: the node's counters, readable over the link.
//! * [`memory`]: a port's link — an endpoint of one connection and the
//!   core's `Driver` with the port's framing — in caller-owned static memory.
//! * [`ring`] and [`clock`]: interrupt-to-main byte rings and the tickless
//!   clock arithmetic a board's drivers are built from.
//!
//! No protocol logic lives here and no drive loop of its own: framing, ARQ,
//! sessions, the stream ledger and the drive step (`strand_link::Driver`)
//! are the core's, the same the host and the simulator run. `no_std`, no
//! allocation; host builds run the unit tests against the core's simulated
//! line.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

pub mod bridge;
pub mod channels;
pub mod clock;
mod log;
pub mod loopback;
pub mod memory;
pub mod port;
pub mod relay;
pub mod ring;
pub mod service;

pub use memory::{DatagramPortMemory, PortLink, StreamPortMemory};
pub use port::{ByteStream, Port};
