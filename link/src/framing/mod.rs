//! Spec section 2: how frames travel. The connection speaks frames (header,
//! payload, CRC); a framing turns them into what a transport carries and back:
//!
//! | framing | transport | what |
//! |---|---|---|
//! | [`StreamFraming`] | a byte stream: serial line, pty, TCP, stdio | COBS and a delimiter per frame, in-frame FEC on noisy lines (2, 2.1) |
//! | [`DatagramFraming`] | datagrams: UDP, a radio packet | one frame per datagram, as it is |
//! | [`KissFraming`] | a KISS TNC (RNode, a packet modem) | FEND/FESC escaping and the command byte (2.2) |
//!
//! Each is small, no_std, owns no memory of its own (the caller's buffers),
//! and has a fuzz target. The drive step (`crate::drive`) calls the one its
//! transport needs.

pub mod cobs;
mod datagram;
pub mod kiss;
mod stream;

pub use cobs::{encode, max_raw_for_encoded, wire_len, DeframeError, Deframer, FeedResult, DELIMITER};
pub use datagram::DatagramFraming;
pub use kiss::KissFraming;
pub use stream::StreamFraming;

use crate::endpoint::Endpoint;
use crate::time::Instant;

/// A way frames travel on a transport.
pub trait Framing {
    /// Feeds what the transport delivered: bytes of a stream, in any chunks,
    /// or one whole datagram. Every frame found goes to `ep`.
    fn input(&mut self, ep: &mut Endpoint<'_>, now: Instant, data: &[u8]);

    /// Writes the next unit for the transport into `out` (at least
    /// [`max_unit`](Self::max_unit) bytes): the endpoint's next frame, framed.
    /// `None` when the endpoint has nothing to send now.
    fn output(&mut self, ep: &mut Endpoint<'_>, now: Instant, out: &mut [u8]) -> Option<usize>;

    /// The largest unit `output` writes.
    fn max_unit(&self) -> usize;

    /// Forgets a partial frame (the line was reopened).
    fn reset(&mut self) {}
}
