//! Two point-to-point endpoints joined by an emulated line, stepped in
//! simulated time: the quinn-proto `Pair` idea, so a whole-protocol test is
//! a few lines. Each side runs the same drive step as the host and the
//! firmware (`crate::drive`) over a [`Direction`] pair.

use super::line::{Direction, LineConfig};
use crate::conn::{ConnStorage, Connection};
use crate::drive::{Capabilities, Driver, Transport};
use crate::framing::{max_raw_for_encoded, Framing, StreamFraming};
use crate::packet::{Reassembled, Reassembly};
use crate::storage::Buf;
use crate::wire::OVERHEAD;
use crate::{Config, Event, Instant, PacketId, SendError};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// Largest packet a simulated application takes: larger ones fail the test.
const MAX_PACKET: usize = 1 << 20;

/// One side: a point-to-point endpoint, its drive step, and a small
/// application. `W` is the window in frames and `N` the frame capacity on
/// the line (COBS-encoded), as the host sizes them.
pub struct Endpoint<const W: usize, const N: usize> {
    /// The node under test.
    pub node: Node,
    /// The application.
    pub app: App,
}

/// A point-to-point node as the host builds one: an endpoint of one
/// connection with a window of `window` frames, raw frames of up to
/// `max_raw` bytes, stream framing, and its drive step.
pub struct Node {
    /// The endpoint.
    pub ep: crate::Endpoint<'static>,
    driver: Driver<'static, StreamFraming<'static>>,
}

impl Node {
    /// A node whose line frames hold `max_raw` raw bytes.
    pub fn new(cfg: Config, window: usize, max_raw: usize, now: Instant, seed: u64) -> Node {
        let idle_resync = cfg.idle_resync;
        let storage = ConnStorage::owned(window, max_raw - OVERHEAD, 256);
        let conn = Connection::new(cfg.clone(), storage, 0, now, seed);
        let ep = crate::Endpoint::new(cfg, 0, Buf::from(vec![conn]), now);
        let driver = Driver::owned(StreamFraming::owned(max_raw, idle_resync), 64 * 1024);
        Node { ep, driver }
    }

    /// Its connection.
    pub fn link(&self) -> &Connection<'static> {
        self.ep.connection(0)
    }

    /// Its connection, to change.
    pub fn link_mut(&mut self) -> &mut Connection<'static> {
        self.ep.connection_mut(0)
    }

    /// Feeds bytes from the line.
    pub fn input(&mut self, now: Instant, bytes: &[u8]) {
        self.driver.framing.input(&mut self.ep, now, bytes);
        self.ep.handle_timeout(now);
    }

    /// The next unit for the line, if any (its bytes).
    pub fn output(&mut self, now: Instant) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; self.driver.framing.max_unit()];
        let n = self.driver.framing.output(&mut self.ep, now, &mut buf)?;
        buf.truncate(n);
        Some(buf)
    }
}

impl<const W: usize, const N: usize> Deref for Endpoint<W, N> {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl<const W: usize, const N: usize> DerefMut for Endpoint<W, N> {
    fn deref_mut(&mut self) -> &mut App {
        &mut self.app
    }
}

/// A small application that feeds a connection and keeps everything it delivered.
#[derive(Default)]
pub struct App {
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
    partial: BTreeMap<u8, Reassembly<'static>>,
    /// Every event with the time it was polled.
    pub events: Vec<(Instant, Event)>,
    /// The application stops reading (to test flow control).
    pub paused: bool,
}

impl<const W: usize, const N: usize> Endpoint<W, N> {
    fn new(cfg: Config, now: Instant, seed: u64) -> Self {
        let app = App { confirm_writes: true, ..App::default() };
        Endpoint { node: Node::new(cfg, W, max_raw_for_encoded(N), now, seed), app }
    }

    /// The connection under test.
    pub fn link(&self) -> &Connection<'static> {
        self.node.link()
    }

    /// The connection under test, to change.
    pub fn link_mut(&mut self) -> &mut Connection<'static> {
        self.node.link_mut()
    }

    /// Confirms what was held back while `confirm_writes` was off.
    pub fn confirm_held(&mut self, now: Instant) {
        let Endpoint { node, app } = self;
        app.confirm_held(node.link_mut(), now);
    }

    /// The line's and the connection's counters.
    pub fn stats(&self) -> crate::Stats {
        self.node.ep.stats()
    }

    /// Replaces the endpoint with a fresh one, as if its process restarted;
    /// the application's record of what it delivered is kept.
    fn restart(&mut self, seed: u64, cfg: Config, now: Instant) {
        self.node = Node::new(cfg, W, max_raw_for_encoded(N), now, seed);
        self.app.partial.clear();
    }
}

impl App {
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
    pub fn confirm_held(&mut self, link: &mut Connection<'_>, now: Instant) {
        for (ch, n) in std::mem::take(&mut self.held) {
            link.stream_written(now, ch, n);
        }
    }

    /// Ids reported with `pick`.
    pub fn reported(&self, pick: fn(&Event) -> Option<PacketId>) -> Vec<PacketId> {
        self.events.iter().filter_map(|(_, e)| pick(e)).collect()
    }

    fn feed(&mut self, link: &mut Connection<'_>) {
        // Per-channel FIFO: a channel that would block does not hold up the others.
        let mut blocked = BTreeSet::new();
        let mut i = 0;
        while i < self.outbox.len() {
            let (ch, data) = &self.outbox[i];
            if blocked.contains(ch) {
                i += 1;
                continue;
            }
            match link.send(*ch, data) {
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
                *at += link.write_stream(*ch, &data[*at..]);
            }
            if *at == data.len() && *fin && link.finish_stream(*ch) {
                *fin = false;
            }
        }
    }

    fn drain(&mut self, link: &mut Connection<'_>, now: Instant) {
        while let Some(e) = link.poll_event() {
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
            let got = link.recv(|d, p| {
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
                    let r = partial.entry(d.channel).or_insert_with(|| Reassembly::with_limit(MAX_PACKET));
                    match r.push(&d, p) {
                        Reassembled::Packet(packet) => delivered.push((d.channel, packet.to_vec())),
                        Reassembled::TooLong { len } => {
                            panic!("a {len}-byte packet on channel {}", d.channel)
                        }
                        Reassembled::Partial => {}
                    }
                    None
                }
            });
            match got {
                None => break,
                Some(Some((ch, n))) if self.confirm_writes => {
                    link.stream_written(now, ch, n);
                }
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

    /// Replaces B's endpoint with a fresh one, as if its process restarted.
    /// B's application state (what it delivered) is kept for the test to check.
    pub fn restart_b(&mut self, seed: u64, cfg: Config) {
        self.b.restart(seed, cfg, instant(self.now_ns));
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

    /// Replaces A's endpoint with a fresh one, as [`restart_b`](Self::restart_b) does for B.
    pub fn restart_a(&mut self, seed: u64, cfg: Config) {
        self.a.restart(seed, cfg, instant(self.now_ns));
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
        consider(self.a.node.ep.poll_timeout().map(|t| t.as_micros() * 1000));
        consider(self.b.node.ep.poll_timeout().map(|t| t.as_micros() * 1000));
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

    /// Runs one endpoint at `now_ns`: the drive step (input, timers, output,
    /// the application topping up its queue before each frame), and the
    /// application's deliveries. Returns whether it stopped because the
    /// line's buffer was full.
    fn service(side: &mut Endpoint<W, N>, rx: &mut Direction, tx: &mut Direction, now_ns: u64) -> bool {
        let now = instant(now_ns);
        let Endpoint { node: Node { ep, driver }, app } = side;
        let mut line = SimLine { inbox: rx.read(now_ns), at: 0, tx, now_ns };
        // Deliveries first: a consumer that keeps up frees the window before
        // the acknowledgements of this step go out.
        driver.receive(ep, &mut line, now);
        app.drain(ep.connection_mut(0), now);
        driver.transmit(ep, &mut line, now, |ep| app.feed(ep.connection_mut(0)));
        app.drain(ep.connection_mut(0), now);
        line.tx.writable(now_ns) == 0
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

/// One side's view of the line as a transport: what arrived by now, and the
/// outgoing direction (written while its buffer has any room, so a driver
/// may run over by one frame, like one holding a frame in user space).
struct SimLine<'d> {
    inbox: Vec<u8>,
    at: usize,
    tx: &'d mut Direction,
    now_ns: u64,
}

impl Transport for SimLine<'_> {
    fn capabilities(&self) -> Capabilities {
        Capabilities::stream(self.tx.config().buffer, (self.tx.config().byte_rate()) as u32)
    }

    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = (self.inbox.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.inbox[self.at..self.at + n]);
        self.at += n;
        n
    }

    fn ready(&self) -> bool {
        self.tx.writable(self.now_ns) > 0
    }

    fn send(&mut self, unit: &[u8]) {
        self.tx.write(self.now_ns, unit);
    }
}
