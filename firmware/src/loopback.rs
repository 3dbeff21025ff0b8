//! The loopback role: an echo service on one port, for tests. Every stream is
//! written back on its channel (its end of stream too) and every one-fragment
//! packet on a packet channel is sent back. A byte counts as written (spec
//! 8.3) once it is queued on the way back: the echo is its destination.
//!
//! Its whole drive loop is one [`Driver::step_with`] per poll: deliveries
//! are echoed from the step's refill hook, just before each frame is built,
//! so the echo leaves as soon as the port takes it and a window the echo
//! reopened is acknowledged in the same step.
//!
//! [`Driver::step_with`]: strand_link::Driver::step_with

use crate::channels::ChannelSet;
use crate::memory::PortLink;
use crate::port::Port;
use crate::service::{self, NodeStats, Role, SERVICE_CHANNEL};
use strand_link::framing::Framing;
use strand_link::{Connection, Endpoint, Instant, SendError};

/// The delivery being echoed. `N` bytes hold one (at least the link's
/// largest payload).
struct Echo<const N: usize> {
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

/// An echo node.
pub struct Loopback<'a, F: Framing, const N: usize> {
    /// The port's link.
    pub port: PortLink<'a, F>,
    echo: Echo<N>,
}

impl<'a, F: Framing, const N: usize> Loopback<'a, F, N> {
    /// An echo node on a link made at `now`.
    pub fn new(port: PortLink<'a, F>, packet_channels: ChannelSet, now: Instant) -> Self {
        let echo = Echo {
            packet_channels,
            carry: [0; N],
            len: 0,
            at: 0,
            channel: 0,
            fin: false,
            busy: false,
            echoed: 0,
            started: now,
        };
        Loopback { port, echo }
    }

    /// One drive step; returns when to call again at the latest.
    pub fn poll<P: Port>(&mut self, now: Instant, port: &mut P) -> Option<Instant> {
        let (PortLink { ep, driver }, echo) = (&mut self.port, &mut self.echo);
        let errors = port.errors();
        let next = driver.step_with(ep, port, now, |ep| echo.run(now, ep, errors));
        while ep.connection_mut(0).poll_event().is_some() {}
        next
    }
}

impl<const N: usize> Echo<N> {
    /// Echoes deliveries while the connection takes them.
    fn run(&mut self, now: Instant, ep: &mut Endpoint<'_>, port_errors: u32) {
        loop {
            if self.busy && !self.flush(now, ep, port_errors) {
                return;
            }
            let carry = &mut self.carry;
            let Some(Some((d, n))) = ep.connection_mut(0).recv(|d, p| {
                let n = p.len().min(N);
                carry[..n].copy_from_slice(&p[..n]);
                Some((d, n))
            }) else {
                return;
            };
            if d.reset || d.more {
                continue; // a reset ends the echo; a long packet cannot be echoed whole
            }
            (self.len, self.at, self.channel, self.fin, self.busy) = (n, 0, d.channel, d.fin, true);
        }
    }

    /// Echoes the carried delivery; true once it is all queued.
    fn flush(&mut self, now: Instant, ep: &mut Endpoint<'_>, port_errors: u32) -> bool {
        let ch = self.channel;
        if ch == SERVICE_CHANNEL {
            let node = NodeStats {
                uptime_ms: now.since(self.started).as_millis() as u32,
                relayed_ab: self.echoed,
                ..NodeStats::default()
            };
            let mut out = [0u8; service::STATS_LEN_2];
            let n = service::encode(Role::Loopback, &node, &[(ep.stats(), port_errors)], &mut out);
            if let Err(SendError::WouldBlock) = ep.connection_mut(0).send(ch, &out[..n]) {
                return false;
            }
        } else {
            let link: &mut Connection<'_> = ep.connection_mut(0);
            if self.packet_channels.contains(ch) {
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
        }
        self.busy = false;
        true
    }
}
