//! The bridge role: a strand link terminated on each of two ports, channel
//! data relayed between them (see [`crate::relay`] for backpressure and the
//! written-up-to confirmations).
//!
//! Each port's link is driven by the core's drive step, as on a host: every
//! poll runs [`Driver::receive`] on both ports (frames in, timers), relays
//! what arrived, then [`Driver::transmit`] on both (frames out while the
//! port takes them), topping up the destination's queue from the other
//! connection between frames. Receiving both ports before either transmits
//! lets what one port brought leave on the other in the same poll.
//!
//! Sessions share their fate: when the peer on one side restarts, the node
//! restarts its session on the other side too
//! ([`Connection::restart_session`]), so the host there sees "peer
//! restarted" and fails its transfer, instead of waiting for the rest of a
//! stream that will never come or taking the next session's bytes as its
//! continuation. A node that reboots is seen as restarted on both sides for
//! the same reason: nothing it held survives.
//!
//! [`Driver::receive`]: strand_link::Driver::receive
//! [`Driver::transmit`]: strand_link::Driver::transmit

use crate::log;
use crate::memory::PortLink;
use crate::port::Port;
use crate::relay::{Relay, RelayStats, Stop};
use crate::service::{self, NodeStats, Role, SERVICE_CHANNEL};
use strand_link::framing::Framing;
use strand_link::{Config, Connection, Endpoint, Event, Instant};

pub use crate::channels::ChannelSet;

/// Channels the host's commands use for packets rather than byte streams:
/// control (0) and file transfer (2). See `host/src/driver.rs`.
pub const HOST_PACKET_CHANNELS: ChannelSet = ChannelSet::of(&[0, 2]);

/// Transmit rounds per poll at most: another round follows only when
/// relaying during the last one took deliveries from port A (reopening its
/// window, so its acknowledgement is due at once).
const ROUNDS: usize = 4;

/// Link settings for a node port: the defaults with frames of at most
/// `max_raw` bytes (the core caps them), and the line rate when known (a
/// UART at `baud`, 8N1), so timers start when a frame leaves, not when it is
/// queued, and frames are handed out at most 50 ms ahead of the wire.
/// `baud` 0: unknown (USB-CDC); a port whose rate is only roughly known
/// (QEMU's UART) does better with a nominal one than with none.
pub fn node_config(baud: u32, max_raw: usize) -> Config {
    if baud == 0 {
        Config::default()
    } else {
        Config::for_serial_line(baud, 10, max_raw)
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

/// What the node counts besides its links.
struct Counters {
    started: Instant,
    restarts: u32,
    port_errors: [u32; 2],
}

impl Counters {
    fn node(&self, now: Instant, ab: &RelayStats, ba: &RelayStats) -> NodeStats {
        NodeStats {
            uptime_ms: now.since(self.started).as_millis() as u32,
            relayed_ab: ab.bytes,
            relayed_ba: ba.bytes,
            dropped: ab.dropped.wrapping_add(ba.dropped),
            resets: ab.resets.wrapping_add(ba.resets),
            restarts: self.restarts,
        }
    }
}

/// Two port links and the relays between them. `N` bytes of carry per
/// direction hold one delivery: at least the links' largest payload.
pub struct Bridge<'a, FA: Framing, FB: Framing, const N: usize> {
    /// Port A's link.
    pub a: PortLink<'a, FA>,
    /// Port B's link.
    pub b: PortLink<'a, FB>,
    ab: Relay<N>,
    ba: Relay<N>,
    counters: Counters,
}

impl<'a, FA: Framing, FB: Framing, const N: usize> Bridge<'a, FA, FB, N> {
    /// A bridge between two links made at `now` (their memory is the
    /// board's, see [`crate::memory`]).
    pub fn new(a: PortLink<'a, FA>, b: PortLink<'a, FB>, packet_channels: ChannelSet, now: Instant) -> Self {
        Bridge {
            a,
            b,
            ab: Relay::new(packet_channels),
            ba: Relay::new(packet_channels),
            counters: Counters { started: now, restarts: 0, port_errors: [0; 2] },
        }
    }

    /// One pass: the drive step's input half on both ports, sessions,
    /// relaying and service requests, then its output half on both. Returns
    /// when to call again at the latest; call it sooner whenever a port has
    /// received bytes or has room again.
    pub fn poll<A: Port, B: Port>(&mut self, now: Instant, pa: &mut A, pb: &mut B) -> Option<Instant> {
        let Bridge { a, b, ab, ba, counters } = self;
        a.driver.receive(&mut a.ep, pa, now);
        b.driver.receive(&mut b.ep, pb, now);
        counters.port_errors = [pa.errors(), pb.errors()];
        Self::events(now, a.conn_mut(), b.conn_mut(), ab, ba, counters);
        pump(now, ab, ba, &mut a.ep, &mut b.ep, counters, true);
        pump(now, ba, ab, &mut b.ep, &mut a.ep, counters, false);
        for _ in 0..ROUNDS {
            a.driver.transmit(&mut a.ep, pa, now, |ep| pump(now, ba, ab, &mut b.ep, ep, counters, false));
            let taken = ab.stats.taken;
            b.driver.transmit(&mut b.ep, pb, now, |ep| pump(now, ab, ba, &mut a.ep, ep, counters, true));
            if ab.stats.taken == taken {
                break;
            }
        }
        earliest(a.ep.poll_timeout(), b.ep.poll_timeout())
    }

    /// The node's counters.
    pub fn node_stats(&self, now: Instant) -> NodeStats {
        self.counters.node(now, &self.ab.stats, &self.ba.stats)
    }

    fn events(
        now: Instant,
        a: &mut Connection<'a>,
        b: &mut Connection<'a>,
        ab: &mut Relay<N>,
        ba: &mut Relay<N>,
        counters: &mut Counters,
    ) {
        let mut restarted = [false; 2];
        for (side, conn) in [(0usize, &mut *a), (1, &mut *b)] {
            while let Some(e) = conn.poll_event() {
                match e {
                    Event::PeerRestarted => restarted[side] = true,
                    Event::Connected { peer } => log::info!("port {}: connected to {=u32:x}", side, peer),
                    Event::LinkDown => log::warning!("port {}: peer silent", side),
                    _ => {}
                }
            }
        }
        // The old session's undelivered streams of both sides end here: the
        // side whose peer restarted keeps in-order data of the old session,
        // and so does the side the node restarts.
        if restarted[0] {
            log::warning!("port A's peer restarted: new session on port B");
            b.restart_session(now);
        }
        if restarted[1] {
            log::warning!("port B's peer restarted: new session on port A");
            a.restart_session(now);
        }
        if restarted[0] || restarted[1] {
            ab.reset(true);
            ba.reset(true);
            let n = u32::from(restarted[0]) + u32::from(restarted[1]);
            counters.restarts = counters.restarts.wrapping_add(n);
        }
    }
}

/// Moves deliveries of `src` into `dst` through `relay` while `dst` takes
/// them, answering service requests that arrive on `src` (`src_is_a`: port
/// A) with the node's counters.
fn pump<const N: usize>(
    now: Instant,
    relay: &mut Relay<N>,
    other: &Relay<N>,
    src: &mut Endpoint<'_>,
    dst: &mut Endpoint<'_>,
    counters: &Counters,
    src_is_a: bool,
) {
    while relay.step(now, src.connection_mut(0), dst.connection_mut(0)) == Stop::Service {
        let ((sa, sb), (ab, ba)) = if src_is_a {
            ((src.stats(), dst.stats()), (&relay.stats, &other.stats))
        } else {
            ((dst.stats(), src.stats()), (&other.stats, &relay.stats))
        };
        let node = counters.node(now, ab, ba);
        let mut out = [0u8; service::STATS_LEN_2];
        let ports = [(sa, counters.port_errors[0]), (sb, counters.port_errors[1])];
        let n = service::encode(Role::Bridge, &node, &ports, &mut out);
        // A full send window drops the answer: the host asks again.
        let _ = src.connection_mut(0).send(SERVICE_CHANNEL, &out[..n]);
    }
}
