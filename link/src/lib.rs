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
//! (5.6), [`packet`] (8.2), [`drive`]. [`lora`] is the LoRa physical-layer arithmetic radio
//! nodes and the mesh simulator share: time on air, duty-cycle accounting,
//! regional plans.
//!
//! ## The core in one picture
//!
//! Two nodes over an in-memory datagram wire; a serial line would use a
//! [`framing::StreamFraming`] instead, firmware static arrays for the buffers
//! (`Buf::Borrowed`), and all of them the same [`Driver::step`]:
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use std::collections::VecDeque;
//! use strand_link::drive::{Capabilities, Driver, Transport};
//! use strand_link::framing::DatagramFraming;
//! use strand_link::wire::OVERHEAD;
//! use strand_link::{Buf, Config, ConnStorage, Connection, Endpoint, Instant};
//!
//! /// One direction of an in-memory wire per node: what it sends, what it hears.
//! struct Wire<'q> { tx: &'q mut VecDeque<Vec<u8>>, rx: &'q mut VecDeque<Vec<u8>> }
//! impl Transport for Wire<'_> {
//!     fn capabilities(&self) -> Capabilities { Capabilities::datagram(255, 0, false) }
//!     fn recv(&mut self, buf: &mut [u8]) -> usize {
//!         self.rx.pop_front().map_or(0, |d| { buf[..d.len()].copy_from_slice(&d); d.len() })
//!     }
//!     fn ready(&self) -> bool { true }
//!     fn send(&mut self, unit: &[u8]) { self.tx.push_back(unit.to_vec()) }
//! }
//!
//! // A node: an endpoint holding one connection (window of 8 frames of up to
//! // 255 bytes, 2 streams' ledger), and a driver with its framing.
//! let node = |seed| {
//!     let conn = Connection::new(Config::default(), ConnStorage::owned(8, 255 - OVERHEAD, 2), 0, Instant::ZERO, seed);
//!     let ep = Endpoint::new(Config::default(), 0, Buf::from(vec![conn]), Instant::ZERO);
//!     (ep, Driver::owned(DatagramFraming::new(255), 255))
//! };
//! let ((mut a, mut da), (mut b, mut db)) = (node(1), node(2));
//! let (mut ab, mut ba) = (VecDeque::new(), VecDeque::new());
//! a.connection_mut(0).send(7, b"hello over anything").unwrap();
//!
//! let mut got = None;
//! for ms in 0..100 {
//!     let now = Instant::from_millis(ms);
//!     da.step(&mut a, &mut Wire { tx: &mut ab, rx: &mut ba }, now);
//!     db.step(&mut b, &mut Wire { tx: &mut ba, rx: &mut ab }, now);
//!     // The application: deliveries in order per channel, and events
//!     // (Connected, Acked(id), LinkDown, PeerRestarted, ...).
//!     while let Some(d) = b.connection_mut(0).recv(|d, bytes| (d.channel, bytes.to_vec())) {
//!         got = Some(d);
//!     }
//!     while let Some(_event) = a.connection_mut(0).poll_event() {}
//!     // A real driver sleeps until the step's answer, input, or new data.
//! }
//! assert_eq!(got, Some((7, b"hello over anything".to_vec())));
//! # }
//! ```
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
pub mod packet;
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
pub use packet::{Reassembled, Reassembly};
pub use stats::Stats;
pub use storage::Buf;
pub use time::Instant;
