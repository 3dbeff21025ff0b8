//! What the core tells its driver.

/// Identifies a packet handed to [`Link::send`](crate::Link::send); ids count up from 0.
pub type PacketId = u32;

/// Something the application should know, returned by
/// [`Link::poll_event`](crate::Link::poll_event).
///
/// Every packet accepted by `send` is reported exactly once, as `Acked` or
/// as `Unconfirmed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed; data flows. `peer` is the peer's session id.
    Connected {
        /// The peer's session id.
        peer: u32,
    },
    /// The peer came back with a new session id: it restarted, and whatever it
    /// had not yet acknowledged of ours was reported `Unconfirmed`.
    PeerRestarted,
    /// Nothing was heard from the peer for `link_timeout` (also before any
    /// handshake). Data stays queued; retransmissions and keepalive probes go on
    /// with backoff, so the session resumes by itself when the line returns.
    LinkDown,
    /// The peer is heard again after `LinkDown`.
    LinkUp,
    /// The peer's core received this packet, and everything sent before it in
    /// sequence, and will deliver it in order.
    Acked(PacketId),
    /// The session ended while this packet was in flight: the old peer may or
    /// may not have delivered it; it will not be sent again.
    Unconfirmed(PacketId),
    /// A byte stream on this channel was cut by a session change before its
    /// FIN was acknowledged; bytes after the last acknowledged one may be lost.
    /// Queued stream data was dropped.
    StreamAborted {
        /// The channel.
        channel: u8,
    },
    /// Data is waiting but the peer's receive window is closed.
    WindowStalled,
    /// The peer's window opened again after `WindowStalled`.
    WindowOpened,
    /// The peer speaks no protocol version we speak.
    VersionMismatch {
        /// Oldest version the peer speaks.
        peer_min: u8,
        /// Newest version the peer speaks.
        peer_max: u8,
    },
}
