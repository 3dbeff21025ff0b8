//! The discrete-event simulator: nodes running a [`MeshProtocol`] over the
//! [`Ether`], driven by an [`EventQueue`] (message arrivals, protocol timers, frame
//! ends), measured as REF-30 defines it.
//!
//! Everything random comes from the run's seed through separate streams (links,
//! traffic, CAD false alarms, each node's protocol), so two protocols run on the
//! same seed meet the same links and are offered the same messages.

use std::collections::HashMap;
use std::time::{Duration, Instant as Wall};

use rand_pcg::Pcg64Mcg;

use strand_link::lora::DutyCycle;
use strand_link::Instant;

use super::ether::{Ether, FrameId, Outcome};
use super::protocol::{Class, MeshProtocol, MessageId, NodeId, RadioEvent, RxInfo, BROADCAST};
use super::queue::EventQueue;
use super::radio::Links;
use super::scenario::{Arrivals, Scenario};
use super::traffic::{self, Message};
use super::{stream, stream_seed};

/// What happens next.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// Message `i` of the run (drawn in advance) is handed to its origin.
    Generate(usize),
    /// Closed-loop arrivals: node `i` draws and sends its next message now.
    Arrive(usize),
    /// A node's protocol timer (valid only if the generation still matches).
    Timer(usize, u64),
    /// A frame leaves the air.
    FrameEnd(FrameId),
}

/// Figures of one run, as REF-30 defines them.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Layout name.
    pub layout: String,
    /// The run's seed.
    pub seed: u64,
    /// Messages offered.
    pub messages: u64,
    /// Messages the protocol refused (duty cycle, channel busy).
    pub refused: u64,
    /// (message, intended receiver) pairs.
    pub intended: u64,
    /// Pairs whose receiver decoded a copy.
    pub delivered: u64,
    /// Payload bytes per message.
    pub payload_len: usize,
    /// Time on air of every transmission of every node.
    pub airtime: Duration,
    /// Transmissions.
    pub transmissions: u64,
    /// First decode minus generation, seconds, one per delivered pair.
    pub latencies: Vec<f64>,
    /// (frame, receiver) pairs heard but lost to a collision.
    pub collisions: u64,
    /// (frame, receiver) pairs heard but missed because the receiver was transmitting.
    pub deaf: u64,
    /// Transmissions after which the node's rolling hour exceeded the duty cycle.
    pub duty_cycle_violations: u64,
    /// Each node's transmit airtime.
    pub node_airtime: Vec<Duration>,
    /// Deliveries whose payload or sender did not match the message (must be 0).
    pub corrupt: u64,
    /// Simulated time.
    pub duration: Duration,
    /// Events processed.
    pub events: u64,
    /// Wall-clock time of the run.
    pub wall: Duration,
}

impl RunResult {
    /// Share of intended (message, receiver) pairs delivered.
    pub fn delivery_ratio(&self) -> f64 {
        if self.intended == 0 {
            0.0
        } else {
            self.delivered as f64 / self.intended as f64
        }
    }

    /// Airtime of every transmission per delivered payload byte, ms.
    pub fn airtime_ms_per_delivered_byte(&self) -> f64 {
        let bytes = self.delivered as f64 * self.payload_len as f64;
        if bytes == 0.0 {
            f64::INFINITY
        } else {
            self.airtime.as_secs_f64() * 1000.0 / bytes
        }
    }

    /// Each node's transmit share of the run, percent.
    pub fn node_channel_use_percent(&self) -> Vec<f64> {
        self.node_airtime.iter().map(|a| a.as_secs_f64() * 100.0 / self.duration.as_secs_f64()).collect()
    }
}

/// One run in progress.
pub struct Simulation<P> {
    sc: Scenario,
    seed: u64,
    ether: Ether,
    nodes: Vec<P>,
    messages: Vec<Message>,
    queue: EventQueue<Event>,
    timer_at: Vec<Option<Instant>>,
    timer_gen: Vec<u64>,
    duty: Vec<DutyCycle<4096>>,
    /// First decode of message m at node i: `first[m * n + i]`.
    first: Vec<Option<Instant>>,
    /// Which message a node's protocol handle stands for.
    handles: HashMap<(usize, MessageId), usize>,
    /// Each node's interval and destination stream (closed-loop arrivals).
    traffic_rng: Vec<Pcg64Mcg>,
    buf: Vec<u8>,
    /// Every transmission: (start, node, frame length).
    log: Vec<(Instant, usize, usize)>,
    result: RunResult,
}

impl<P: MeshProtocol> Simulation<P> {
    /// A run of `sc` with `seed`: links and traffic drawn from the seed, node `i`'s
    /// protocol built by `make(i, seed_for_node_i)`.
    pub fn new(sc: &Scenario, seed: u64, make: impl FnMut(usize, u64) -> P) -> Self {
        let links = Links::new(&sc.layout, &sc.radio, seed);
        let traffic_seed = stream_seed(seed, stream::TRAFFIC, 0);
        let messages = match sc.arrivals {
            Arrivals::Poisson => traffic::generate(
                sc.layout.len(),
                sc.traffic,
                sc.mean_interval,
                sc.traffic_time,
                traffic_seed,
            ),
            Arrivals::AfterSettled => Vec::new(),
        };
        let mut sim = Self::with(sc, seed, links, messages, make);
        if sc.arrivals == Arrivals::AfterSettled {
            for i in 0..sim.nodes.len() {
                sim.traffic_rng[i] = traffic::node_stream(traffic_seed, i);
                sim.schedule_arrival(Instant::ZERO, i);
            }
        }
        sim
    }

    /// A run over given links and messages (tests: a line of three nodes, one message).
    pub fn with(
        sc: &Scenario,
        seed: u64,
        links: Links,
        messages: Vec<Message>,
        mut make: impl FnMut(usize, u64) -> P,
    ) -> Self {
        let n = links.len();
        let nodes = (0..n).map(|i| make(i, stream_seed(seed, stream::PROTOCOL, i as u64))).collect();
        let mut queue = EventQueue::new();
        for (i, m) in messages.iter().enumerate() {
            queue.push(m.at, Event::Generate(i));
        }
        let result = RunResult {
            layout: sc.layout.name.clone(),
            seed,
            messages: 0,
            refused: 0,
            intended: 0,
            delivered: 0,
            payload_len: sc.payload_len,
            airtime: Duration::ZERO,
            transmissions: 0,
            latencies: Vec::new(),
            collisions: 0,
            deaf: 0,
            duty_cycle_violations: 0,
            node_airtime: vec![Duration::ZERO; n],
            corrupt: 0,
            duration: sc.duration(),
            events: 0,
            wall: Duration::ZERO,
        };
        Simulation {
            ether: Ether::new(sc.radio.clone(), links, stream_seed(seed, stream::CAD, 0)),
            sc: sc.clone(),
            seed,
            nodes,
            first: vec![None; messages.len() * n],
            handles: HashMap::new(),
            traffic_rng: (0..n).map(|i| traffic::node_stream(0, i)).collect(),
            messages,
            queue,
            timer_at: vec![None; n],
            timer_gen: vec![0; n],
            duty: (0..n).map(|_| DutyCycle::per_hour(sc.duty_cycle_ppm)).collect(),
            buf: vec![0; 256],
            log: Vec::new(),
            result,
        }
    }

    /// Closed-loop arrivals: node `i`'s next message, one interval after `now`,
    /// unless that is past the traffic time.
    fn schedule_arrival(&mut self, now: Instant, i: usize) {
        let at = now + traffic::next_interval(&mut self.traffic_rng[i], self.sc.mean_interval);
        if at < Instant::ZERO + self.sc.traffic_time {
            self.queue.push(at, Event::Arrive(i));
        }
    }

    /// The nodes' protocols (their state after the run, for tests and reports).
    pub fn nodes(&self) -> &[P] {
        &self.nodes
    }

    /// The medium.
    pub fn ether(&self) -> &Ether {
        &self.ether
    }

    /// Every transmission so far: (start, node, frame length).
    pub fn transmissions(&self) -> &[(Instant, usize, usize)] {
        &self.log
    }

    /// The messages offered so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// When node `i` first decoded message `m`.
    pub fn first_decode(&self, m: usize, i: usize) -> Option<Instant> {
        self.first.get(m * self.nodes.len() + i).copied().flatten()
    }

    /// Runs to the end of the scenario and returns its figures.
    pub fn run(&mut self) -> RunResult {
        let started = Wall::now();
        let end = Instant::ZERO + self.sc.duration();
        let mut last = (Instant::ZERO, 0u64);
        while let Some((now, event)) = self.queue.pop() {
            if now > end {
                break;
            }
            self.result.events += 1;
            // A protocol that keeps asking for the same instant without progress would hang the run.
            last = if last.0 == now { (now, last.1 + 1) } else { (now, 0) };
            assert!(
                last.1 < 1_000_000,
                "no progress at {now:?} (seed {}, {})",
                self.seed,
                self.sc.layout.name
            );
            match event {
                Event::Generate(m) => self.generate(now, m),
                Event::Arrive(i) => {
                    let dest =
                        traffic::destination(&mut self.traffic_rng[i], self.sc.traffic, self.nodes.len(), i);
                    let index = self.messages.len() as u32;
                    self.messages.push(Message { index, origin: i, dest, at: now });
                    self.first.extend(std::iter::repeat_n(None, self.nodes.len()));
                    self.generate(now, index as usize);
                }
                Event::Timer(i, gen) => {
                    if gen == self.timer_gen[i] {
                        self.timer_at[i] = None;
                        self.nodes[i].handle_timeout(now);
                        self.service(now, i);
                    }
                }
                Event::FrameEnd(id) => self.frame_end(now, id),
            }
        }
        self.finish(Wall::now() - started)
    }

    fn generate(&mut self, now: Instant, m: usize) {
        let msg = self.messages[m];
        let payload = traffic::payload(msg.index, self.sc.payload_len);
        let to = msg.dest.map_or(BROADCAST, |d| d as NodeId);
        match self.nodes[msg.origin].send(now, to, Class::Message, &payload) {
            Ok(handle) => {
                self.handles.insert((msg.origin, handle), m);
            }
            Err(_) => {
                self.result.refused += 1;
                if self.sc.arrivals == Arrivals::AfterSettled {
                    self.schedule_arrival(now, msg.origin);
                }
            }
        }
        self.service(now, msg.origin);
    }

    fn frame_end(&mut self, now: Instant, id: FrameId) {
        let ended = self.ether.end(now, id);
        self.nodes[ended.tx].handle_radio(now, RadioEvent::TxDone);
        self.service(now, ended.tx);
        for r in &ended.receptions {
            match r.outcome {
                Outcome::Received => {
                    let info = RxInfo {
                        rssi_dbm: r.rssi_dbm as f32,
                        snr_db: (r.rssi_dbm - self.sc.radio.noise_floor_dbm) as f32,
                    };
                    let ev = RadioEvent::Received { frame: &ended.bytes, info, airtime: ended.airtime };
                    self.nodes[r.rx].handle_radio(now, ev);
                }
                Outcome::Collided => {
                    self.result.collisions += 1;
                    self.nodes[r.rx].handle_radio(now, RadioEvent::Garbled { airtime: ended.airtime });
                }
                Outcome::Deaf => {
                    self.result.deaf += 1;
                    continue;
                }
            }
            self.service(now, r.rx);
        }
    }

    /// After anything happened at node `i`: collect its deliveries, let it
    /// transmit if its radio is idle, and re-arm its timer.
    fn service(&mut self, now: Instant, i: usize) {
        self.deliveries(now, i);
        if !self.ether.is_transmitting(i) {
            let Simulation { ether, nodes, buf, .. } = self;
            let mut cad = || ether.cad_busy(now, i);
            if let Some(len) = nodes[i].poll_transmit(now, &mut cad, buf) {
                let airtime = self.sc.radio.modulation.time_on_air(len);
                if !self.duty[i].allows(now, airtime) {
                    self.result.duty_cycle_violations += 1;
                }
                self.duty[i].record(now, airtime);
                self.result.airtime += airtime;
                self.result.node_airtime[i] += airtime;
                self.result.transmissions += 1;
                self.log.push((now, i, len));
                let id = self.ether.start(now, i, &self.buf[..len], airtime);
                self.queue.push(now + airtime, Event::FrameEnd(id));
            }
        }
        self.deliveries(now, i);
        while let Some((handle, _acked)) = self.nodes[i].poll_settled() {
            if self.handles.remove(&(i, handle)).is_some() && self.sc.arrivals == Arrivals::AfterSettled {
                self.schedule_arrival(now, i);
            }
        }
        let next = self.nodes[i].poll_timeout();
        if next != self.timer_at[i] {
            self.timer_gen[i] += 1;
            self.timer_at[i] = next;
            if let Some(t) = next {
                self.queue.push(t.max(now), Event::Timer(i, self.timer_gen[i]));
            }
        }
    }

    fn deliveries(&mut self, now: Instant, i: usize) {
        let mut buf = [0u8; 256];
        while let Some((from, len)) = self.nodes[i].poll_delivery(&mut buf) {
            let got = &buf[..len];
            let msg = traffic::index_of(got).and_then(|m| self.messages.get(m as usize)).copied();
            let intact = msg.is_some_and(|m| {
                m.origin as NodeId == from && got == traffic::payload(m.index, self.sc.payload_len).as_slice()
            });
            match msg {
                Some(m) if intact => {
                    let slot = &mut self.first[m.index as usize * self.nodes.len() + i];
                    if slot.is_none() {
                        *slot = Some(now);
                    }
                }
                _ => self.result.corrupt += 1,
            }
        }
    }

    fn finish(&self, wall: Duration) -> RunResult {
        let n = self.nodes.len();
        let mut r = self.result.clone();
        r.wall = wall;
        r.messages = self.messages.len() as u64;
        for m in &self.messages {
            let intended: Vec<usize> = match m.dest {
                Some(d) => vec![d],
                None => (0..n).filter(|&i| i != m.origin).collect(),
            };
            r.intended += intended.len() as u64;
            for i in intended {
                if let Some(t) = self.first[m.index as usize * n + i] {
                    r.delivered += 1;
                    r.latencies.push(t.since(m.at).as_secs_f64());
                }
            }
        }
        r
    }
}

/// Runs `sc` with `seed`, node `i` built by `make(i, node_seed)`.
pub fn run<P: MeshProtocol>(sc: &Scenario, seed: u64, make: impl FnMut(usize, u64) -> P) -> RunResult {
    Simulation::new(sc, seed, make).run()
}

/// A node's random stream from the seed [`Simulation`] hands its protocol.
pub fn node_rng(node_seed: u64) -> rand_pcg::Pcg64Mcg {
    stream(node_seed, stream::PROTOCOL, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::flood::{FloodNode, FloodParams};
    use crate::mesh::scenario::LIGHT;
    use crate::mesh::traffic::Traffic;
    use strand_link::lora::Preset;

    /// REF-30 layout 1, shortened to ten minutes of heavy traffic so the test is quick.
    fn short(traffic: Traffic, arrivals: Arrivals) -> Scenario {
        let mut sc = Scenario::ref30(1, traffic, Duration::from_secs(100)).unwrap();
        sc.traffic_time = Duration::from_secs(600);
        sc.arrivals = arrivals;
        sc
    }

    fn flood(sc: &Scenario, seed: u64) -> Simulation<FloodNode> {
        let p = FloodParams::meshtasticator(Preset::LongFast);
        let mut sim = Simulation::new(sc, seed, |i, s| FloodNode::new(i as u32, p.clone(), node_rng(s)));
        sim.run();
        sim
    }

    #[test]
    fn the_same_seed_gives_the_same_run_and_another_seed_another() {
        let sc = short(Traffic::Broadcast, Arrivals::Poisson);
        let (a, b, c) = (flood(&sc, 4), flood(&sc, 4), flood(&sc, 5));
        assert_eq!(a.transmissions(), b.transmissions(), "seed 4 twice");
        assert_eq!(a.result.collisions, b.result.collisions);
        assert_ne!(a.transmissions(), c.transmissions(), "seeds 4 and 5");
    }

    #[test]
    fn figures_add_up() {
        let sc = short(Traffic::Broadcast, Arrivals::Poisson);
        let sim = flood(&sc, 2);
        let r = sim.finish(Duration::ZERO);
        assert_eq!(r.corrupt, 0, "seed 2");
        assert!(r.messages > 100, "seed 2: {} messages in 10 min of heavy traffic", r.messages);
        // Every frame is a 40-byte message under a 16-byte header: 681.984 ms each.
        assert!(sim.transmissions().iter().all(|t| t.2 == 56));
        assert_eq!(r.airtime, Duration::from_micros(681_984) * r.transmissions as u32);
        assert_eq!(r.node_airtime.iter().sum::<Duration>(), r.airtime);
        assert_eq!(r.intended, r.messages * 29, "broadcast: every other node is a receiver");
        assert_eq!(r.latencies.len() as u64, r.delivered);
        assert!(r.delivery_ratio() > 0.5 && r.delivery_ratio() <= 1.0, "seed 2: {}", r.delivery_ratio());
        // Nobody decodes a copy before the first frame carrying it has ended.
        assert!(r.latencies.iter().all(|&l| l >= 0.681_984), "seed 2");
    }

    #[test]
    fn direct_messages_count_only_their_destination() {
        let sc = short(Traffic::Direct, Arrivals::Poisson);
        let sim = flood(&sc, 3);
        let r = sim.finish(Duration::ZERO);
        assert_eq!(r.intended, r.messages);
        // ACKs are 18-byte frames.
        assert!(sim.transmissions().iter().any(|t| t.2 == 18), "seed 3: no ACK was sent");
        for (m, msg) in sim.messages().iter().enumerate() {
            for i in 0..30 {
                if Some(i) != msg.dest && i != msg.origin {
                    assert!(sim.first_decode(m, i).is_none(), "seed 3: message {m} delivered to relay {i}");
                }
            }
        }
    }

    #[test]
    fn closed_loop_arrivals_wait_for_the_previous_message_to_settle() {
        // Every message takes at least one retransmission timeout (8.6 s) to settle, so a
        // node offers fewer messages than the open Poisson process would.
        let mut open = short(Traffic::Broadcast, Arrivals::Poisson);
        open.mean_interval = Duration::from_secs(10);
        let mut closed = open.clone();
        closed.arrivals = Arrivals::AfterSettled;
        let (o, c) = (flood(&open, 6).finish(Duration::ZERO), flood(&closed, 6).finish(Duration::ZERO));
        assert!(c.messages * 3 < o.messages * 2, "seed 6: {} closed vs {} open", c.messages, o.messages);
        // And a node's next message comes only after the previous one settled (>= 8.6 s later).
        let sim = flood(&closed, 6);
        let mut last = vec![None::<Instant>; 30];
        for m in sim.messages() {
            if let Some(prev) = last[m.origin] {
                assert!(
                    Duration::from(m.at.since(prev)) >= Duration::from_millis(8_600),
                    "seed 6: node {}",
                    m.origin
                );
            }
            last[m.origin] = Some(m.at);
        }
    }

    #[test]
    fn light_load_full_run_is_deterministic_per_layout() {
        // One full two-hour REF-30 light run, to make sure nothing drifts over long runs.
        let sc = Scenario::ref30(3, Traffic::Broadcast, LIGHT).unwrap();
        let r = flood(&sc, 3).finish(Duration::ZERO);
        assert_eq!(r.corrupt, 0);
        assert!(r.delivery_ratio() > 0.7, "seed 3: {}", r.delivery_ratio());
        assert!(r.events > 10_000, "seed 3: {} events", r.events);
    }
}
