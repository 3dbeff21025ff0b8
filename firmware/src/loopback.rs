//! The loopback role: an echo service on one port, for tests. Every stream is
//! written back on its channel (its end of stream too) and every one-fragment
//! packet on a packet channel is sent back. A byte counts as written (spec
//! 8.3) once it is queued on the way back: the echo is its destination.

use crate::channels::ChannelSet;
use crate::drive::Drive;
use crate::port::Port;
use crate::service::{self, NodeStats, Role, SERVICE_CHANNEL};
use strand_link::{Config, Instant, Link, SendError};

/// An echo node.
pub struct Loopback<const W: usize, const N: usize, const T: usize> {
    /// The port's link.
    pub port: Drive<W, N, T>,
    packet_channels: ChannelSet,
    carry: [u8; N],
    len: usize,
    at: usize,
    channel: u8,
    fin: bool,
    busy: bool,
    echoed: u32,
    started: Instant,
}

impl<const W: usize, const N: usize, const T: usize> Loopback<W, N, T> {
    /// An echo node whose link starts now; `seed` must differ between boots.
    pub fn new(config: Config, packet_channels: ChannelSet, now: Instant, seed: u64) -> Self {
        Loopback {
            port: Drive::new(Link::new(config, now, seed)),
            packet_channels,
            carry: [0; N],
            len: 0,
            at: 0,
            channel: 0,
            fin: false,
            busy: false,
            echoed: 0,
            started: now,
        }
    }

    /// One pass; returns when to call again at the latest.
    pub fn poll<P: Port>(&mut self, now: Instant, port: &mut P) -> Option<Instant> {
        self.port.receive(now, port);
        self.port.link.handle_timeout(now);
        while self.port.link.poll_event().is_some() {}
        loop {
            if self.busy && !self.flush(now) {
                break;
            }
            let (carry, link) = (&mut self.carry, &mut self.port.link);
            let Some(Some((d, n))) = link.recv(|d, p| {
                let n = p.len().min(N);
                carry[..n].copy_from_slice(&p[..n]);
                Some((d, n))
            }) else {
                break;
            };
            if d.reset || d.more {
                continue; // a reset ends the echo; a long packet cannot be echoed whole
            }
            (self.len, self.at, self.channel, self.fin, self.busy) = (n, 0, d.channel, d.fin, true);
        }
        self.port.transmit(now, port);
        self.port.deadline()
    }

    /// Echoes the carried delivery; true once it is all queued.
    fn flush(&mut self, now: Instant) -> bool {
        let (ch, link) = (self.channel, &mut self.port.link);
        if ch == SERVICE_CHANNEL {
            let node = NodeStats {
                uptime_ms: now.since(self.started).as_millis() as u32,
                relayed_ab: self.echoed,
                ..NodeStats::default()
            };
            let mut out = [0u8; service::STATS_LEN_2];
            let n = service::encode(Role::Loopback, &node, &[(link.stats(), 0)], &mut out);
            if let Err(SendError::WouldBlock) = link.send(ch, &out[..n]) {
                return false;
            }
        } else if self.packet_channels.contains(ch) {
            if let Err(SendError::WouldBlock) = link.send(ch, &self.carry[..self.len]) {
                return false;
            }
        } else {
            while self.at < self.len {
                let n = link.write_stream(ch, &self.carry[self.at..self.len]);
                if n == 0 {
                    return false;
                }
                self.at += n;
                self.echoed = self.echoed.wrapping_add(n as u32);
                link.stream_written(now, ch, n as u32);
            }
            if self.fin {
                if !link.finish_stream(ch) {
                    return false;
                }
                link.stream_written(now, ch, 1);
            }
        }
        self.busy = false;
        true
    }
}
