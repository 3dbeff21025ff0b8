//! The one place in the firmware that drives a `strand_link::Link`: feed what
//! the port received, run the timers, hand frames to the port as it takes
//! them, and say when to wake next. Roles call these steps and never talk to
//! a port themselves, so this module is what the core's own drive step (issue
//! 13, core 2.0) replaces.

use crate::port::Port;
use strand_link::{Instant, Link};

/// Bytes read from a port per `recv` call: a radio datagram fits whole.
const RX_CHUNK: usize = 256;

/// A link and the frame it is handing to its port.
///
/// `T` is the capacity of the transmit staging buffer and must be at least
/// `N + 2` (`Link::MAX_WIRE`: a leading delimiter, the frame, the trailing
/// one); it is a separate parameter only because stable Rust cannot write
/// `[u8; N + 2]`.
pub struct Drive<const W: usize, const N: usize, const T: usize> {
    /// The protocol core.
    pub link: Link<W, N>,
    tx: [u8; T],
    tx_len: usize,
    tx_at: usize,
}

impl<const W: usize, const N: usize, const T: usize> Drive<W, N, T> {
    const VALID: () = assert!(T >= N + 2, "Drive's T must be at least N + 2 (Link::MAX_WIRE)");

    /// Drives `link`.
    pub fn new(link: Link<W, N>) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID;
        Drive { link, tx: [0; T], tx_len: 0, tx_at: 0 }
    }

    /// Replaces the link (a new session) and drops the frame being sent.
    pub fn replace(&mut self, link: Link<W, N>) {
        self.link = link;
        self.tx_len = 0;
        self.tx_at = 0;
    }

    /// Feeds everything the port has received to the link; returns how many
    /// bytes that was. A datagram is followed by a delimiter, so a truncated
    /// one cannot run into the next.
    pub fn receive<P: Port>(&mut self, now: Instant, port: &mut P) -> usize {
        let mut buf = [0u8; RX_CHUNK];
        let mut total = 0;
        loop {
            let n = port.recv(&mut buf);
            if n == 0 {
                return total;
            }
            self.link.handle_input(now, &buf[..n]);
            if P::DATAGRAM {
                self.link.handle_input(now, &[strand_link::framing::DELIMITER]);
            }
            total += n;
        }
    }

    /// Runs due timers and hands frames to the port while it takes them. A
    /// frame the port cannot take whole yet stays staged here (one frame at
    /// most, so the link's pacing and priorities still hold).
    pub fn transmit<P: Port>(&mut self, now: Instant, port: &mut P) {
        self.link.handle_timeout(now);
        loop {
            while self.tx_at < self.tx_len {
                let n = port.send(&self.tx[self.tx_at..self.tx_len]);
                if n == 0 {
                    return;
                }
                self.tx_at += n;
            }
            match self.link.poll_transmit(now, &mut self.tx) {
                Some(n) => {
                    self.tx_len = n;
                    self.tx_at = 0;
                }
                None => {
                    self.tx_len = 0;
                    self.tx_at = 0;
                    return;
                }
            }
        }
    }

    /// Whether a frame is staged that the port has not taken yet: the node
    /// must wake when the port has room again.
    pub fn is_blocked(&self) -> bool {
        self.tx_at < self.tx_len
    }

    /// When the link next needs `transmit` (its timers), if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.link.poll_timeout()
    }
}

/// The earlier of two optional deadlines.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
