//! Two link endpoints joined by an emulated line, stepped in simulated time:
//! the quinn-proto `Pair` idea, so a whole-protocol test is a few lines.

use super::line::{Direction, LineConfig};
use crate::{Config, Event, Instant, Link, PacketId, SendError};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// One side: a link plus a small application that feeds it and keeps
/// everything it delivered.
pub struct Endpoint<const W: usize, const N: usize> {
    /// The protocol core under test.
    pub link: Box<Link<W, N>>,
    /// Packets waiting to be handed to `link.send` (channel, bytes).
    pub outbox: VecDeque<(u8, Vec<u8>)>,
    /// Packets accepted by the link, by id.
    pub sent: BTreeMap<PacketId, (u8, Vec<u8>)>,
    /// Byte streams to write (channel -> bytes), and how much was taken.
    pub stream_out: BTreeMap<u8, (Vec<u8>, usize, bool)>,
    /// Channels whose deliveries are byte streams rather than packets.
    pub stream_channels: BTreeSet<u8>,
    /// Received stream bytes per channel, and whether FIN arrived.
    pub stream_in: BTreeMap<u8, (Vec<u8>, bool)>,
    /// Stream resets received per channel, with their payload (spec 8.3).
    pub resets: BTreeMap<u8, Vec<u8>>,
    /// The application confirms stream bytes written as it takes them
    /// (spec 8.3); false holds the confirmations back (a stuck writer) until
    /// the test confirms with [`Endpoint::confirm_held`].
    pub confirm_writes: bool,
    /// Stream units taken but not confirmed while `confirm_writes` was off.
    pub held: BTreeMap<u8, u32>,
    /// Complete packets received, in delivery order.
    pub delivered: Vec<(u8, Vec<u8>)>,
    partial: BTreeMap<u8, Vec<u8>>,
    /// Every event with the time it was polled.
    pub events: Vec<(Instant, Event)>,
    /// The application stops reading (to test flow control).
    pub paused: bool,
    buf: Vec<u8>,
}

impl<const W: usize, const N: usize> Endpoint<W, N> {
    fn new(cfg: Config, now: Instant, seed: u64) -> Self {
        Endpoint {
            link: Box::new(Link::new(cfg, now, seed)),
            outbox: VecDeque::new(),
            sent: BTreeMap::new(),
            stream_out: BTreeMap::new(),
            stream_channels: BTreeSet::new(),
            stream_in: BTreeMap::new(),
            resets: BTreeMap::new(),
            confirm_writes: true,
            held: BTreeMap::new(),
            delivered: Vec::new(),
            partial: BTreeMap::new(),
            events: Vec::new(),
            paused: false,
            buf: vec![0; Link::<W, N>::MAX_WIRE],
        }
    }

    /// Queues a packet for sending.
    pub fn send(&mut self, channel: u8, data: impl Into<Vec<u8>>) {
        self.outbox.push_back((channel, data.into()));
    }

    /// Queues a byte stream on `channel`, ended with FIN if `fin`.
    pub fn write_stream(&mut self, channel: u8, data: Vec<u8>, fin: bool) {
        self.stream_out.insert(channel, (data, 0, fin));
    }

    /// Received stream bytes on `channel`.
    pub fn stream(&self, channel: u8) -> &[u8] {
        self.stream_in.get(&channel).map_or(&[], |(b, _)| b)
    }

    /// Whether FIN arrived on `channel`.
    pub fn fin(&self, channel: u8) -> bool {
        self.stream_in.get(&channel).is_some_and(|(_, f)| *f)
    }

    /// Confirms what was held back while `confirm_writes` was off.
    pub fn confirm_held(&mut self, now: Instant) {
        for (ch, n) in std::mem::take(&mut self.held) {
            self.link.stream_written(now, ch, n);
        }
    }

    /// Ids reported with `pick`.
    pub fn reported(&self, pick: fn(&Event) -> Option<PacketId>) -> Vec<PacketId> {
        self.events.iter().filter_map(|(_, e)| pick(e)).collect()
    }

    fn feed(&mut self) {
        // Per-channel FIFO: a channel that would block does not hold up the others.
        let mut blocked = BTreeSet::new();
        let mut i = 0;
        while i < self.outbox.len() {
            let (ch, data) = &self.outbox[i];
            if blocked.contains(ch) {
                i += 1;
                continue;
            }
            match self.link.send(*ch, data) {
                Ok(id) => {
                    let p = self.outbox.remove(i).expect("index in range");
                    self.sent.insert(id, p);
                }
                Err(SendError::WouldBlock) => {
                    blocked.insert(*ch);
                    i += 1;
                }
                Err(SendError::TooLarge) => panic!("test packet larger than the window"),
            }
        }
        for (ch, (data, at, fin)) in self.stream_out.iter_mut() {
            if *at < data.len() {
                *at += self.link.write_stream(*ch, &data[*at..]);
            }
            if *at == data.len() && *fin && self.link.finish_stream(*ch) {
                *fin = false;
            }
        }
    }

    fn drain(&mut self, now: Instant) {
        while let Some(e) = self.link.poll_event() {
            self.events.push((now, e));
        }
        if self.paused {
            return;
        }
        loop {
            let (streams, stream_in, partial, delivered, resets) = (
                &self.stream_channels,
                &mut self.stream_in,
                &mut self.partial,
                &mut self.delivered,
                &mut self.resets,
            );
            let got = self.link.recv(|d, p| {
                if streams.contains(&d.channel) {
                    if d.reset {
                        resets.insert(d.channel, p.to_vec());
                        return None;
                    }
                    let s = stream_in.entry(d.channel).or_default();
                    s.0.extend_from_slice(p);
                    s.1 |= d.fin;
                    Some((d.channel, p.len() as u32 + u32::from(d.fin)))
                } else {
                    let buf = partial.entry(d.channel).or_default();
                    if d.restart {
                        // The old session's partial packet will never be completed.
                        buf.clear();
                    }
                    buf.extend_from_slice(p);
                    if !d.more {
                        delivered.push((d.channel, std::mem::take(buf)));
                    }
                    None
                }
            });
            match got {
                None => break,
                Some(Some((ch, n))) if self.confirm_writes => self.link.stream_written(now, ch, n),
                Some(Some((ch, n))) => *self.held.entry(ch).or_default() += n,
                Some(None) => {}
            }
        }
    }
}

/// Two endpoints `a` and `b` and the two directions of the line between them.
pub struct Pair<const W: usize, const N: usize> {
    /// Endpoint A.
    pub a: Endpoint<W, N>,
    /// Endpoint B.
    pub b: Endpoint<W, N>,
    /// The A -> B direction.
    pub ab: Direction,
    /// The B -> A direction.
    pub ba: Direction,
    /// Simulated time in nanoseconds.
    pub now_ns: u64,
    /// The seed everything was derived from (print it when a test fails).
    pub seed: u64,
    blocked: [bool; 2],
}

fn instant(ns: u64) -> Instant {
    Instant::from_micros(ns / 1000)
}

impl<const W: usize, const N: usize> Pair<W, N> {
    /// Builds a pair over a line with the given directions.
    pub fn new(link: Config, ab: LineConfig, ba: LineConfig, seed: u64) -> Self {
        Pair {
            a: Endpoint::new(link.clone(), Instant::ZERO, seed ^ 0xa),
            b: Endpoint::new(link, Instant::ZERO, seed ^ 0xb),
            ab: Direction::new(ab, seed.wrapping_mul(3).wrapping_add(1)),
            ba: Direction::new(ba, seed.wrapping_mul(5).wrapping_add(2)),
            now_ns: 0,
            seed,
            blocked: [false; 2],
        }
    }

    /// The same line config in both directions.
    pub fn symmetric(link: Config, line: LineConfig, seed: u64) -> Self {
        Self::new(link, line.clone(), line, seed)
    }

    /// Simulated time elapsed.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now_ns)
    }

    /// Replaces B's link with a fresh one, as if its process restarted. B's
    /// application state (what it delivered) is kept for the test to check.
    pub fn restart_b(&mut self, seed: u64, cfg: Config) {
        *self.b.link = Link::new(cfg, instant(self.now_ns), seed);
        self.b.partial.clear();
    }

    /// Puts raw bytes on the A -> B line now, as if sent by a third party (a
    /// stale frame left in a buffer, a replay).
    pub fn inject_ab(&mut self, bytes: &[u8]) {
        self.ab.write(self.now_ns, bytes);
    }

    /// The same on the B -> A line.
    pub fn inject_ba(&mut self, bytes: &[u8]) {
        self.ba.write(self.now_ns, bytes);
    }

    /// Replaces A's link with a fresh one, as [`restart_b`](Self::restart_b) does for B.
    pub fn restart_a(&mut self, seed: u64, cfg: Config) {
        *self.a.link = Link::new(cfg, instant(self.now_ns), seed);
        self.a.partial.clear();
    }

    /// Processes everything due now, then advances time to the next event.
    /// Returns false when nothing will ever happen again.
    pub fn step(&mut self) -> bool {
        self.step_within(u64::MAX)
    }

    /// [`step`](Self::step), but time advances at most to `end_ns`.
    fn step_within(&mut self, end_ns: u64) -> bool {
        let now_ns = self.now_ns;
        self.blocked[0] = Self::service(&mut self.a, &mut self.ba, &mut self.ab, now_ns);
        self.blocked[1] = Self::service(&mut self.b, &mut self.ab, &mut self.ba, now_ns);
        let mut next: Option<u64> = None;
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: u64| n.min(t)));
            }
        };
        consider(self.a.link.poll_timeout().map(|t| t.as_micros() * 1000));
        consider(self.b.link.poll_timeout().map(|t| t.as_micros() * 1000));
        consider(self.ab.next_arrival());
        consider(self.ba.next_arrival());
        if self.blocked[0] {
            consider(Some(self.ab.writable_at(1)));
        }
        if self.blocked[1] {
            consider(Some(self.ba.writable_at(1)));
        }
        match next {
            // Timers have microsecond resolution: always move at least that far.
            Some(t) => {
                self.now_ns = t.max(now_ns + 1000).min(end_ns.max(now_ns + 1000));
                true
            }
            None if end_ns != u64::MAX => {
                self.now_ns = end_ns.max(now_ns + 1000);
                true
            }
            None => false,
        }
    }

    /// Runs one endpoint at `now_ns`: input, timers, application, output.
    /// Returns whether it stopped because the line's buffer was full.
    fn service(ep: &mut Endpoint<W, N>, rx: &mut Direction, tx: &mut Direction, now_ns: u64) -> bool {
        let now = instant(now_ns);
        let bytes = rx.read(now_ns);
        if !bytes.is_empty() {
            ep.link.handle_input(now, &bytes);
        }
        ep.link.handle_timeout(now);
        ep.drain(now);
        let mut blocked = false;
        loop {
            // The link holds only a few fragments per channel: refill before each frame.
            ep.feed();
            // Like a driver holding one frame in user space: write while the
            // line's buffer has any room, so it may overshoot by one frame.
            if tx.writable(now_ns) == 0 {
                blocked = true;
                break;
            }
            match ep.link.poll_transmit(now, &mut ep.buf) {
                Some(n) => tx.write(now_ns, &ep.buf[..n]),
                None => break,
            }
        }
        ep.drain(now);
        blocked
    }

    /// Steps until `done` holds or `limit` of simulated time passes; returns
    /// whether `done` held. Time never passes the limit, so a run of a fixed
    /// length ends exactly there.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.now_ns + limit.as_nanos() as u64;
        while self.now_ns < end {
            if done(self) {
                return true;
            }
            if !self.step_within(end) {
                break;
            }
        }
        done(self)
    }

    /// Sets the outages of the B -> A direction (spec of [`LineConfig::outages`]).
    pub fn set_outages_ba(&mut self, outages: Vec<(Duration, Duration)>) {
        self.ba.set_outages(outages);
    }
}
