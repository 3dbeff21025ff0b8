//! Spec section 2.2: frames through a KISS TNC (RNode, a packet modem): each
//! frame is `FEND, command, escaped frame, FEND`, where FEND (0xC0) and FESC
//! (0xDB) inside the frame become `FESC TFEND` and `FESC TFESC`. Command 0x00
//! is data on port 0; other commands (TNC settings) are not frames and are
//! skipped. Garbage between FENDs costs at most the frame it touches.

use super::Framing;
use crate::endpoint::{Endpoint, Reception};
use crate::storage::Buf;
use crate::time::Instant;

/// Frame end.
pub const FEND: u8 = 0xC0;
/// Frame escape.
pub const FESC: u8 = 0xDB;
/// Escaped FEND.
pub const TFEND: u8 = 0xDC;
/// Escaped FESC.
pub const TFESC: u8 = 0xDD;
/// The command byte of a data frame on port 0.
pub const DATA: u8 = 0x00;

/// Bytes a KISS unit of a `len`-byte frame can take at most: every byte
/// escaped, the command and two FENDs.
pub const fn unit_len(len: usize) -> usize {
    2 * len + 3
}

/// Escapes `frame` into `out` as one KISS data unit; returns its length, or
/// `None` if `out` is too small.
pub fn encode(frame: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    let mut put = |b: u8| -> Option<()> {
        *out.get_mut(n)? = b;
        n += 1;
        Some(())
    };
    put(FEND)?;
    put(DATA)?;
    for &b in frame {
        match b {
            FEND => {
                put(FESC)?;
                put(TFEND)?;
            }
            FESC => {
                put(FESC)?;
                put(TFESC)?;
            }
            b => put(b)?,
        }
    }
    put(FEND)?;
    Some(n)
}

/// Where the accumulator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: waiting for the command byte after a FEND.
    Command,
    /// In a data frame.
    Data,
    /// After FESC in a data frame.
    Escape,
    /// In a frame to skip (a TNC command, an overflow, a bad escape).
    Skip,
}

/// Frames through a KISS TNC.
pub struct KissFraming<'a> {
    /// The unescaped frame arriving.
    buf: Buf<'a, u8>,
    len: usize,
    state: State,
    /// Raw frames out, at most this long.
    mtu: usize,
    frame: Buf<'a, u8>,
}

impl<'a> KissFraming<'a> {
    /// A framing over the caller's buffers: `accumulator` and `frame` hold
    /// one raw frame each (their length is the largest frame).
    pub fn new(accumulator: Buf<'a, u8>, frame: Buf<'a, u8>) -> Self {
        let mtu = frame.len();
        KissFraming { buf: accumulator, len: 0, state: State::Skip, mtu, frame }
    }

    /// A framing owning its buffers, for frames of up to `mtu` bytes.
    #[cfg(feature = "alloc")]
    pub fn owned(mtu: usize) -> KissFraming<'static> {
        KissFraming::new(Buf::filled(mtu, 0), Buf::filled(mtu, 0))
    }

    fn push(&mut self, b: u8) {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = b;
                self.len += 1;
            }
            None => self.state = State::Skip,
        }
    }
}

impl Framing for KissFraming<'_> {
    fn input(&mut self, ep: &mut Endpoint<'_>, now: Instant, bytes: &[u8]) {
        ep.bytes_received(bytes.len());
        for &b in bytes {
            if b == FEND {
                if self.state == State::Data && self.len > 0 {
                    let len = self.len;
                    ep.handle_frame(now, &self.buf[..len], Reception { wire_len: len, corrected: None });
                } else if self.state == State::Escape {
                    ep.framing_error();
                }
                self.state = State::Command;
                self.len = 0;
                continue;
            }
            self.state = match self.state {
                State::Command if b & 0x0F == DATA => State::Data,
                State::Command | State::Skip => State::Skip,
                State::Data if b == FESC => State::Escape,
                State::Data => {
                    self.push(b);
                    if self.state == State::Skip {
                        ep.framing_error();
                        continue;
                    }
                    State::Data
                }
                State::Escape => match b {
                    TFEND | TFESC => {
                        self.push(if b == TFEND { FEND } else { FESC });
                        if self.state == State::Skip {
                            ep.framing_error();
                            continue;
                        }
                        State::Data
                    }
                    _ => {
                        ep.framing_error();
                        State::Skip
                    }
                },
            };
        }
    }

    fn output(&mut self, ep: &mut Endpoint<'_>, now: Instant, out: &mut [u8]) -> Option<usize> {
        let o = ep.poll_frame(now, &mut self.frame)?;
        let n = encode(&self.frame[..o.len], out)?;
        ep.frame_sent(now, &o, n, false);
        Some(n)
    }

    fn max_unit(&self) -> usize {
        unit_len(self.mtu)
    }

    fn reset(&mut self) {
        self.len = 0;
        self.state = State::Skip;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_bytes_are_escaped_and_framed() {
        let mut out = [0u8; 16];
        let n = encode(&[1, FEND, 2, FESC, 3], &mut out).unwrap();
        assert_eq!(&out[..n], &[FEND, DATA, 1, FESC, TFEND, 2, FESC, TFESC, 3, FEND]);
        assert_eq!(encode(&[FEND; 4], &mut out[..10]), None, "too small for the escapes");
        assert!(unit_len(4) >= 11);
    }
}
