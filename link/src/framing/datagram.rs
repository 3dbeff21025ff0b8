//! Frames as datagrams (UDP, a radio's packets): one frame per datagram,
//! nothing added — the transport delimits them, and a datagram that is not
//! a frame fails its CRC like any damaged frame.

use super::Framing;
use crate::endpoint::{Endpoint, Reception};
use crate::time::Instant;

/// One frame per datagram.
#[derive(Debug, Clone, Copy)]
pub struct DatagramFraming {
    mtu: usize,
}

impl DatagramFraming {
    /// Datagrams of at most `mtu` bytes (the largest raw frame).
    pub const fn new(mtu: usize) -> Self {
        DatagramFraming { mtu }
    }
}

impl Framing for DatagramFraming {
    fn input(&mut self, ep: &mut Endpoint<'_>, now: Instant, datagram: &[u8]) {
        ep.bytes_received(datagram.len());
        ep.handle_frame(now, datagram, Reception { wire_len: datagram.len(), corrected: None });
    }

    fn output(&mut self, ep: &mut Endpoint<'_>, now: Instant, out: &mut [u8]) -> Option<usize> {
        let room = out.len().min(self.mtu);
        let o = ep.poll_frame(now, &mut out[..room])?;
        ep.frame_sent(now, &o, o.len, false);
        Some(o.len)
    }

    fn max_unit(&self) -> usize {
        self.mtu
    }
}
