//! The seam between a mesh protocol and the radio it drives: a sans-IO trait
//! (frames in, frames out, timers), so managed flooding today and strand's
//! no_std mesh layer next run in the simulator exactly as they would on a node.
//!
//! The driver (the simulator, later an "ether" process feeding QEMU nodes, or
//! firmware) calls, after anything happens to a node:
//!
//! ```text
//! handle_radio(now, Received | Garbled | TxDone)   // what the radio saw
//! handle_timeout(now)                              // when poll_timeout() has passed
//! poll_transmit(now, cad, buf) -> frame            // only while the radio is idle
//! poll_delivery(buf) -> (from, payload)            // messages for the application
//! poll_settled() -> (message, acknowledged?)       // own messages it is done with
//! poll_timeout() -> next deadline
//! ```
//!
//! Nothing here allocates or needs std, so a `no_std` node implements it as is.

use core::time::Duration;

use strand_link::Instant;

/// A node's address on the mesh.
pub type NodeId = u32;

/// A message's handle at its sending node, from [`MeshProtocol::send`].
pub type MessageId = u32;

/// The address that means "every node".
pub const BROADCAST: NodeId = u32::MAX;

/// Signal quality of a received frame, as a LoRa radio reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RxInfo {
    /// Received signal strength, dBm.
    pub rssi_dbm: f32,
    /// Signal-to-noise ratio, dB.
    pub snr_db: f32,
}

/// What the radio observed.
#[derive(Debug, Clone, Copy)]
pub enum RadioEvent<'a> {
    /// A frame ended and decoded.
    Received {
        /// The frame's bytes.
        frame: &'a [u8],
        /// Its signal quality.
        info: RxInfo,
        /// Its time on air (channel-use accounting).
        airtime: Duration,
    },
    /// A frame strong enough to hear ended but did not decode (it collided).
    Garbled {
        /// Its time on air.
        airtime: Duration,
    },
    /// This node's transmission ended; the radio listens again.
    TxDone,
}

/// What an application message is, for protocols that hold back background
/// traffic when the channel is busy (Meshtastic: no node info above 40% channel
/// use, no telemetry above 25%; text messages always go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A message a person sent: never held back by channel use.
    Message,
    /// Periodic announcements (Meshtastic's node info): held back on a busy channel.
    Background,
    /// Telemetry and other periodic reports: held back first.
    Telemetry,
}

/// Why a message was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Longer than the protocol carries.
    TooLong,
    /// The regional duty cycle is used up.
    DutyCycle,
    /// The channel is too busy for this class of traffic.
    ChannelBusy,
    /// No room in the queue.
    QueueFull,
}

/// A mesh protocol endpoint, driven by a radio.
pub trait MeshProtocol {
    /// Hands an application message to the mesh, for `to` (or [`BROADCAST`]).
    /// Every accepted message is later reported by [`MeshProtocol::poll_settled`].
    fn send(
        &mut self,
        now: Instant,
        to: NodeId,
        class: Class,
        payload: &[u8],
    ) -> Result<MessageId, SendError>;

    /// Tells the protocol what the radio observed at `now`.
    fn handle_radio(&mut self, now: Instant, event: RadioEvent<'_>);

    /// Lets the protocol act on timers that are due at `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// The next instant at which [`MeshProtocol::handle_timeout`] must be called.
    fn poll_timeout(&self) -> Option<Instant>;

    /// A frame to put on the air now, written into `buf`; called only while the
    /// radio is idle. Before transmitting, the protocol may sense the channel
    /// with `cad` (channel activity detection: true if the channel is busy); the
    /// driver answers it at `now`, and a protocol that does not call it
    /// transmits blind.
    fn poll_transmit(&mut self, now: Instant, cad: &mut dyn FnMut() -> bool, buf: &mut [u8])
        -> Option<usize>;

    /// A message for this node's application: its sender, and the payload
    /// written into `buf` (its length returned).
    fn poll_delivery(&mut self, buf: &mut [u8]) -> Option<(NodeId, usize)>;

    /// A message this node sent that the protocol is done with: acknowledged
    /// (`true`) or given up (`false`).
    fn poll_settled(&mut self) -> Option<(MessageId, bool)>;
}
