//! The bridge role: a strand link terminated on each of two ports, channel
//! data relayed between them (see [`crate::relay`] for backpressure and the
//! written-up-to confirmations).
//!
//! Sessions share their fate: when the peer on one side restarts, the node
//! starts a new session on the other side too, so the host there sees
//! "peer restarted" and fails its transfer, instead of waiting for the rest
//! of a stream that will never come or taking the next session's bytes as
//! its continuation. A node that reboots is seen as restarted on both sides
//! for the same reason: nothing it held survives.

use crate::drive::{earliest, Drive};
use crate::log;
use crate::port::Port;
use crate::relay::{Relay, Stop};
use crate::service::{self, NodeStats, Role, SERVICE_CHANNEL};
use strand_link::{Config, Event, Instant, Link};

pub use crate::channels::ChannelSet;

/// Channels the host's commands use for packets rather than byte streams:
/// control (0) and file transfer (2). See `host/src/driver.rs`.
pub const HOST_PACKET_CHANNELS: ChannelSet = ChannelSet::of(&[0, 2]);

/// Link settings for a node port: the defaults with frames of at most the
/// node's capacity (the core caps them), and the line rate when known (a
/// UART at `baud`, 8N1), so timers start when a frame leaves, not when it is
/// queued, and frames are handed out at most 50 ms ahead of the wire.
/// `baud` 0: unknown (USB-CDC); a port whose rate is only roughly known
/// (QEMU's UART) does better with a nominal one than with none.
pub fn node_config(baud: u32, frame_capacity: usize) -> Config {
    if baud == 0 {
        Config::default()
    } else {
        Config::for_serial_line(baud, 10, frame_capacity)
    }
}

/// Two links and the relays between them.
pub struct Bridge<const W: usize, const N: usize, const T: usize> {
    /// Port A's link.
    pub a: Drive<W, N, T>,
    /// Port B's link.
    pub b: Drive<W, N, T>,
    ab: Relay<N>,
    ba: Relay<N>,
    config_a: Config,
    config_b: Config,
    rng: u64,
    restarts: u32,
    started: Instant,
    port_errors: [u32; 2],
}

/// SplitMix64: one seed from the board's entropy gives every session id.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<const W: usize, const N: usize, const T: usize> Bridge<W, N, T> {
    /// A bridge whose links start now. `seed` must differ between boots (it
    /// makes the session ids by which hosts tell that the node restarted).
    pub fn new(
        config_a: Config,
        config_b: Config,
        packet_channels: ChannelSet,
        now: Instant,
        seed: u64,
    ) -> Self {
        let mut rng = seed;
        let a = Link::new(config_a.clone(), now, splitmix(&mut rng));
        let b = Link::new(config_b.clone(), now, splitmix(&mut rng));
        Bridge {
            a: Drive::new(a),
            b: Drive::new(b),
            ab: Relay::new(packet_channels),
            ba: Relay::new(packet_channels),
            config_a,
            config_b,
            rng,
            restarts: 0,
            started: now,
            port_errors: [0; 2],
        }
    }

    /// One pass: take what both ports received, relay, answer service
    /// requests, send. Returns when to call again at the latest; call it
    /// sooner whenever a port has received bytes or has room again.
    pub fn poll<A: Port, B: Port>(&mut self, now: Instant, pa: &mut A, pb: &mut B) -> Option<Instant> {
        self.a.receive(now, pa);
        self.b.receive(now, pb);
        self.a.link.handle_timeout(now);
        self.b.link.handle_timeout(now);
        self.events(now);
        while self.ab.step(now, &mut self.a.link, &mut self.b.link) == Stop::Service {
            self.answer(now, Side::A);
        }
        while self.ba.step(now, &mut self.b.link, &mut self.a.link) == Stop::Service {
            self.answer(now, Side::B);
        }
        self.a.transmit(now, pa);
        self.b.transmit(now, pb);
        self.port_errors = [pa.errors(), pb.errors()];
        earliest(self.a.deadline(), self.b.deadline())
    }

    /// Whether a frame waits for room in a port: wake when there is some.
    pub fn is_blocked(&self) -> bool {
        self.a.is_blocked() || self.b.is_blocked()
    }

    /// The node's counters.
    pub fn node_stats(&self, now: Instant) -> NodeStats {
        NodeStats {
            uptime_ms: (now.since(self.started).as_millis() as u64) as u32,
            relayed_ab: self.ab.stats.bytes,
            relayed_ba: self.ba.stats.bytes,
            dropped: self.ab.stats.dropped.wrapping_add(self.ba.stats.dropped),
            resets: self.ab.stats.resets.wrapping_add(self.ba.stats.resets),
            restarts: self.restarts,
        }
    }

    fn events(&mut self, now: Instant) {
        let mut restarted = [false; 2];
        for (side, drive) in [(0, &mut self.a), (1, &mut self.b)] {
            while let Some(e) = drive.link.poll_event() {
                match e {
                    Event::PeerRestarted => restarted[side] = true,
                    Event::Connected { peer } => log::info!("port {}: connected to {=u32:x}", side, peer),
                    Event::LinkDown => log::warning!("port {}: peer silent", side),
                    _ => {}
                }
            }
        }
        if restarted[0] {
            log::warning!("port A's peer restarted: new session on port B");
            self.ab.reset(true);
            self.ba.reset(false);
            let seed = splitmix(&mut self.rng);
            self.b.replace(Link::new(self.config_b.clone(), now, seed));
            self.restarts = self.restarts.wrapping_add(1);
        }
        if restarted[1] {
            log::warning!("port B's peer restarted: new session on port A");
            self.ba.reset(true);
            self.ab.reset(false);
            let seed = splitmix(&mut self.rng);
            self.a.replace(Link::new(self.config_a.clone(), now, seed));
            self.restarts = self.restarts.wrapping_add(1);
        }
    }

    /// Answers a service request that arrived on `side` with the counters.
    fn answer(&mut self, now: Instant, side: Side) {
        let mut out = [0u8; service::STATS_LEN_2];
        let ports = [(self.a.link.stats(), self.port_errors[0]), (self.b.link.stats(), self.port_errors[1])];
        let n = service::encode(Role::Bridge, &self.node_stats(now), &ports, &mut out);
        let link = match side {
            Side::A => &mut self.a.link,
            Side::B => &mut self.b.link,
        };
        // A full send window drops the answer: the host asks again.
        let _ = link.send(SERVICE_CHANNEL, &out[..n]);
    }
}

#[derive(Clone, Copy)]
enum Side {
    A,
    B,
}
