//! One direction of a bridge: deliveries of one connection written into
//! another, with backpressure, and the written-up-to confirmations carried
//! back.
//!
//! Backpressure: a delivery is taken from the source connection only once
//! the one before it was written whole into the destination connection. The source's
//! receive ring then fills and its window closes, so a slow far side slows
//! the near sender down instead of filling the node.
//!
//! Confirmations (spec 8.3): the node tells the source's peer that stream
//! bytes were *written* only when the destination's peer confirmed them
//! written, watched as the destination's `stream_unconfirmed` count falling.
//! Units map one to one (a byte for a byte, the end of stream for the end of
//! stream), so "confirmed" keeps meaning "delivered" end to end.

use crate::channels::ChannelSet;
use crate::log;
use crate::service::SERVICE_CHANNEL;
use strand_link::{Connection, Instant, SendError};

/// What a relay step stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Nothing more to take, or the destination has no room.
    Idle,
    /// A request on the service channel was taken; its bytes are in
    /// [`Relay::request`]. Answer it, then step again.
    Service,
}

/// What a relay counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct RelayStats {
    /// Stream bytes written into the destination.
    pub bytes: u32,
    /// Deliveries dropped (a restarted peer's old stream, a packet that
    /// cannot cross).
    pub dropped: u32,
    /// Stream resets passed on.
    pub resets: u32,
    /// Deliveries taken from the source (each frees a slot of its window).
    pub taken: u32,
}

/// The carried delivery and what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stream { fin: bool },
    Reset,
    Packet,
}

/// One direction of a bridge. `N` bytes of carry hold one delivery (a
/// fragment is at most `N` bytes).
pub struct Relay<const N: usize> {
    carry: [u8; N],
    len: usize,
    at: usize,
    channel: u8,
    kind: Option<Kind>,
    /// Channels that carry packets rather than byte streams (the wire does
    /// not say; both ends of a channel agree on it, spec 8).
    packet_channels: ChannelSet,
    /// Per channel: the destination's `stream_unconfirmed` after our last
    /// write, so a fall is what its peer newly confirmed.
    seen: [u32; 256],
    watching: ChannelSet,
    /// The destination session `seen` belongs to.
    session: u32,
    /// Channels whose source peer restarted: the rest of its old stream is
    /// dropped until the new session's first delivery (`Delivery::restart`).
    stale: ChannelSet,
    /// Counters.
    pub stats: RelayStats,
}

impl<const N: usize> Relay<N> {
    /// A relay; `packet_channels` carry packets, all others byte streams.
    pub fn new(packet_channels: ChannelSet) -> Self {
        Relay {
            carry: [0; N],
            len: 0,
            at: 0,
            channel: 0,
            kind: None,
            packet_channels,
            seen: [0; 256],
            watching: ChannelSet::EMPTY,
            session: 0,
            stale: ChannelSet::EMPTY,
            stats: RelayStats::default(),
        }
    }

    /// A session ended on either side: drop what is carried. With
    /// `source_restarted`, also drop the rest of the source's old streams.
    pub fn reset(&mut self, source_restarted: bool) {
        self.kind = None;
        self.watching = ChannelSet::EMPTY;
        if source_restarted {
            self.stale = ChannelSet::ALL;
        }
    }

    /// The service request taken by the last step that returned
    /// [`Stop::Service`].
    pub fn request(&self) -> &[u8] {
        &self.carry[..self.len]
    }

    /// Moves deliveries from `src` into `dst` while `dst` takes them, and
    /// passes `dst`'s new written confirmations back to `src`.
    pub fn step(&mut self, now: Instant, src: &mut Connection<'_>, dst: &mut Connection<'_>) -> Stop {
        self.confirm(now, src, dst);
        loop {
            if self.kind.is_some() && !self.flush(dst) {
                return Stop::Idle;
            }
            let Some(channel) = src.peek_channel() else { return Stop::Idle };
            let (carry, stale) = (&mut self.carry, &mut self.stale);
            let taken = src.recv(|d, p| {
                if stale.contains(d.channel) && !d.restart {
                    return None;
                }
                stale.remove(d.channel);
                let n = p.len().min(N);
                carry[..n].copy_from_slice(&p[..n]);
                Some((d, n))
            });
            if taken.is_some() {
                self.stats.taken = self.stats.taken.wrapping_add(1);
            }
            let Some(Some((d, n))) = taken else {
                self.stats.dropped = self.stats.dropped.wrapping_add(1);
                continue;
            };
            (self.len, self.at, self.channel) = (n, 0, channel);
            if channel == SERVICE_CHANNEL {
                return Stop::Service;
            }
            self.kind = Some(if d.reset {
                Kind::Reset
            } else if self.packet_channels.contains(channel) {
                if d.more {
                    // Longer than one fragment: the node has no room to
                    // reassemble; the far side's packet never starts.
                    self.stats.dropped = self.stats.dropped.wrapping_add(1);
                    continue;
                }
                Kind::Packet
            } else {
                Kind::Stream { fin: d.fin }
            });
        }
    }

    /// Writes the carried delivery into `dst`; true once it is all taken.
    fn flush(&mut self, dst: &mut Connection<'_>) -> bool {
        let ch = self.channel;
        match self.kind {
            None => return true,
            Some(Kind::Reset) => {
                if !dst.abort_stream(ch, &self.carry[..self.len]) {
                    return false;
                }
                self.stats.resets = self.stats.resets.wrapping_add(1);
                log::info!("relay: stream reset on channel {}", ch);
            }
            Some(Kind::Packet) => match dst.send(ch, &self.carry[..self.len]) {
                Ok(_) => {}
                Err(SendError::WouldBlock) => return false,
                Err(SendError::TooLarge) => self.stats.dropped = self.stats.dropped.wrapping_add(1),
            },
            Some(Kind::Stream { fin }) => {
                while self.at < self.len {
                    let n = dst.write_stream(ch, &self.carry[self.at..self.len]);
                    self.track(dst);
                    if n == 0 {
                        return false;
                    }
                    self.at += n;
                    self.stats.bytes = self.stats.bytes.wrapping_add(n as u32);
                }
                if fin {
                    if !dst.finish_stream(ch) {
                        return false;
                    }
                    self.track(dst);
                }
            }
        }
        self.kind = None;
        true
    }

    /// Records `dst`'s unconfirmed count on the carried channel after a write.
    fn track(&mut self, dst: &Connection<'_>) {
        let ch = self.channel;
        self.seen[usize::from(ch)] = dst.stream_unconfirmed(ch);
        self.watching.insert(ch);
    }

    /// Passes confirmations that `dst`'s peer sent since the last step back
    /// to `src`'s peer.
    fn confirm(&mut self, now: Instant, src: &mut Connection<'_>, dst: &Connection<'_>) {
        if dst.session() != self.session {
            // A new session on the far side: its counts start again at zero
            // and say nothing about what the old one delivered.
            self.session = dst.session();
            self.watching = ChannelSet::EMPTY;
        }
        if self.watching.is_empty() {
            return;
        }
        let watching = self.watching;
        for ch in watching.iter() {
            let now_unconfirmed = dst.stream_unconfirmed(ch);
            let seen = &mut self.seen[usize::from(ch)];
            if now_unconfirmed < *seen {
                src.stream_written(now, ch, *seen - now_unconfirmed);
            }
            *seen = now_unconfirmed;
            if now_unconfirmed == 0 {
                self.watching.remove(ch);
            }
        }
    }
}
