//! The roles on the host: simulated hosts (strand-link nodes as the host
//! builds them, with a small application) joined to a node by the core's
//! emulated serial lines, stepped in simulated time. Whatever the node does
//! wrong here, it does on a board.

use std::collections::VecDeque;
use std::time::Duration;
use strand_firmware::bridge::{node_config, Bridge, HOST_PACKET_CHANNELS};
use strand_firmware::loopback::Loopback;
use strand_firmware::memory::{stream_unit, StreamPortMemory};
use strand_firmware::port::{Capabilities, Port, Transport};
use strand_firmware::service::{self, SERVICE_CHANNEL};
use strand_link::framing::{max_raw_for_encoded, StreamFraming};
use strand_link::sim::{Direction, LineConfig, Node as HostNode};
use strand_link::{Config, Event, Instant};

/// The node's links as on the boards: 8 frames of window, payloads of 236
/// bytes (raw frames of 256), 32 stream channels.
const W: usize = 8;
const P: usize = 236;
const S: usize = 32;
const U: usize = stream_unit(P);
type Memory = StreamPortMemory<'static, W, P, S, U>;
const MAX_RAW: usize = Memory::MAX_RAW;
type Node = Bridge<'static, StreamFraming<'static>, StreamFraming<'static>, P>;
/// The hosts' links: 32 frames of up to 1024 bytes on the line.
const HOST_W: usize = 32;
const HOST_N: usize = 1024;
const PIPE: u8 = 1;
const CONTROL: u8 = 0;
const STEP_NS: u64 = 250_000;

/// A port link in leaked memory (a board's is a static).
fn memory() -> &'static mut Memory {
    Box::leak(Box::new(Memory::new()))
}

/// One port of the node: the line from a host and the line back.
struct SimPort {
    up: Direction,
    down: Direction,
    inbox: VecDeque<u8>,
    now_ns: u64,
}

impl SimPort {
    fn new(baud: u64, ber: f64, seed: u64) -> Self {
        let line = LineConfig::clean(baud, Duration::from_millis(1)).with_ber(ber);
        SimPort {
            up: Direction::new(line.clone(), seed),
            down: Direction::new(line, seed + 1000),
            inbox: VecDeque::new(),
            now_ns: 0,
        }
    }
}

impl Transport for SimPort {
    fn capabilities(&self) -> Capabilities {
        Capabilities::stream(MAX_RAW, 11_520)
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.inbox.len());
        for b in buf.iter_mut().take(n) {
            *b = self.inbox.pop_front().unwrap();
        }
        n
    }
    /// Like a UART's ring: a unit is taken only when it fits whole.
    fn ready(&self) -> bool {
        self.down.writable(self.now_ns) >= StreamFraming::unit_capacity(MAX_RAW)
    }
    fn send(&mut self, unit: &[u8]) {
        assert!(self.down.writable(self.now_ns) >= unit.len(), "a unit the port said it had no room for");
        self.down.write(self.now_ns, unit);
    }
}

impl Port for SimPort {}

/// A host: its node, a stream to send, what it received.
struct App {
    node: HostNode,
    out: Vec<u8>,
    at: usize,
    finish: bool,
    got: Vec<u8>,
    fin: bool,
    resets: Vec<Vec<u8>>,
    packets: Vec<(u8, Vec<u8>)>,
    /// Confirm stream bytes written as they are taken (spec 8.3).
    confirm: bool,
    held: u32,
    events: Vec<Event>,
}

impl App {
    fn new(seed: u64, out: Vec<u8>) -> App {
        App {
            node: HostNode::new(Config::default(), HOST_W, max_raw_for_encoded(HOST_N), Instant::ZERO, seed),
            out,
            at: 0,
            finish: true,
            got: Vec::new(),
            fin: false,
            resets: Vec::new(),
            packets: Vec::new(),
            confirm: true,
            held: 0,
            events: Vec::new(),
        }
    }

    fn link(&self) -> &strand_link::Connection<'static> {
        self.node.link()
    }

    fn link_mut(&mut self) -> &mut strand_link::Connection<'static> {
        self.node.link_mut()
    }

    fn step(&mut self, now_ns: u64, port: &mut SimPort) {
        let now = Instant::from_micros(now_ns / 1000);
        let input = port.down.read(now_ns);
        self.node.input(now, &input);
        let link = self.node.link_mut();
        if self.at < self.out.len() {
            self.at += link.write_stream(PIPE, &self.out[self.at..]);
        }
        if self.at == self.out.len() && self.finish && link.finish_stream(PIPE) {
            self.finish = false;
        }
        while port.up.writable(now_ns) > 0 {
            let Some(unit) = self.node.output(now) else { break };
            port.up.write(now_ns, &unit);
        }
        let link = self.node.link_mut();
        while let Some(e) = link.poll_event() {
            self.events.push(e);
        }
        loop {
            let (got, fin, resets, packets) =
                (&mut self.got, &mut self.fin, &mut self.resets, &mut self.packets);
            let r = link.recv(|d, p| {
                if d.channel != PIPE {
                    packets.push((d.channel, p.to_vec()));
                    0
                } else if d.reset {
                    resets.push(p.to_vec());
                    0
                } else {
                    got.extend_from_slice(p);
                    *fin |= d.fin;
                    p.len() as u32 + u32::from(d.fin)
                }
            });
            match r {
                None => break,
                Some(n) if self.confirm => {
                    link.stream_written(now, PIPE, n);
                }
                Some(n) => self.held += n,
            }
        }
    }

    fn restarted(&self) -> bool {
        self.events.contains(&Event::PeerRestarted)
    }
}

/// Host A, the node, host B.
struct World {
    node: Node,
    pa: SimPort,
    pb: SimPort,
    a: App,
    b: App,
    t: u64,
}

impl World {
    fn new(ab: Vec<u8>, ba: Vec<u8>, ber_a: f64, seed: u64) -> World {
        let cfg = node_config(115_200, MAX_RAW);
        let a = memory().link(cfg.clone(), Instant::ZERO, seed);
        let b = memory().link(cfg, Instant::ZERO, !seed);
        World {
            node: Node::new(a, b, HOST_PACKET_CHANNELS, Instant::ZERO),
            pa: SimPort::new(115_200, ber_a, seed + 1),
            pb: SimPort::new(115_200, 0.0, seed + 2),
            a: App::new(seed + 3, ab),
            b: App::new(seed + 4, ba),
            t: 0,
        }
    }

    fn step(&mut self) {
        self.t += STEP_NS;
        let t = self.t;
        for p in [&mut self.pa, &mut self.pb] {
            p.now_ns = t;
            let bytes = p.up.read(t);
            p.inbox.extend(bytes);
        }
        self.node.poll(Instant::from_micros(t / 1000), &mut self.pa, &mut self.pb);
        self.a.step(t, &mut self.pa);
        self.b.step(t, &mut self.pb);
    }

    /// Steps until `done` or `secs` of simulated time; whether `done` held.
    fn run(&mut self, secs: u64, mut done: impl FnMut(&World) -> bool) -> bool {
        let end = self.t + secs * 1_000_000_000;
        while self.t < end {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }

    fn complete(&self, ab: &[u8], ba: &[u8]) -> bool {
        self.b.got == ab && self.b.fin && self.a.got == ba && self.a.fin
    }
}

use strand_link::sim::seeded_bytes as data;

#[test]
fn streams_cross_both_ways_byte_exact_and_confirmations_come_back() {
    let (ab, ba) = (data(1, 30_000), data(2, 20_000));
    let mut w = World::new(ab.clone(), ba.clone(), 0.0, 10);
    assert!(
        w.run(30, |w| w.complete(&ab, &ba)),
        "A->B {} of {}, B->A {} of {}",
        w.b.got.len(),
        ab.len(),
        w.a.got.len(),
        ba.len()
    );
    // Every byte and both ends of stream confirmed written end to end.
    assert!(
        w.run(5, |w| w.a.link().stream_unconfirmed(PIPE) == 0 && w.b.link().stream_unconfirmed(PIPE) == 0)
    );
    let s = w.node.node_stats(Instant::ZERO);
    assert_eq!((s.relayed_ab as usize, s.relayed_ba as usize), (ab.len(), ba.len()));
}

#[test]
fn a_noisy_line_on_one_side_is_repaired() {
    let (ab, ba) = (data(3, 20_000), data(4, 20_000));
    let mut w = World::new(ab.clone(), ba.clone(), 1e-4, 20);
    assert!(
        w.run(60, |w| w.complete(&ab, &ba)),
        "A->B {} of {}, B->A {} of {}",
        w.b.got.len(),
        ab.len(),
        w.a.got.len(),
        ba.len()
    );
    let s = w.node.a.ep.stats();
    let damaged = s.crc_errors + s.fec_corrected;
    assert!(damaged > 0, "the line was meant to be noisy");
}

#[test]
fn the_node_confirms_only_what_the_far_host_wrote() {
    let ab = data(5, 8_000);
    let mut w = World::new(ab.clone(), Vec::new(), 0.0, 30);
    w.b.confirm = false; // host B's output is stuck: it holds what it took
    assert!(w.run(20, |w| w.b.got == ab && w.b.fin && w.a.link().is_send_idle()));
    w.run(2, |_| false);
    // Host A's link acknowledged everything, yet nothing counts as delivered.
    assert_eq!(w.a.link().stream_unconfirmed(PIPE), ab.len() as u32 + 1);
    let held = w.b.held;
    assert_eq!(held, ab.len() as u32 + 1);
    // Host B writes half: exactly that much comes back to host A.
    w.b.link_mut().stream_written(Instant::from_micros(w.t / 1000), PIPE, 4000);
    assert!(w.run(5, |w| w.a.link().stream_unconfirmed(PIPE) == ab.len() as u32 + 1 - 4000));
    w.b.link_mut().stream_written(Instant::from_micros(w.t / 1000), PIPE, held - 4000);
    assert!(w.run(5, |w| w.a.link().stream_unconfirmed(PIPE) == 0), "the end of stream is confirmed too");
}

#[test]
fn a_stream_reset_crosses_with_its_reason() {
    let mut w = World::new(data(6, 100_000), Vec::new(), 0.0, 40);
    w.a.finish = false;
    assert!(w.run(20, |w| w.b.got.len() > 5_000));
    assert!(w.a.link_mut().abort_stream(PIPE, b"disk full"));
    w.a.out.truncate(w.a.at); // the application stops writing
    assert!(w.run(20, |w| !w.b.resets.is_empty()));
    assert_eq!(w.b.resets, vec![b"disk full".to_vec()]);
    assert!(!w.b.fin, "a reset is not an end of stream");
    assert!(w.b.got.len() <= w.a.at && w.b.got[..] == w.a.out[..w.b.got.len()]);
}

#[test]
fn a_restarted_host_makes_the_other_host_see_a_restart() {
    let mut w = World::new(data(7, 200_000), data(8, 200_000), 0.0, 50);
    assert!(w.run(20, |w| w.b.got.len() > 10_000 && w.a.got.len() > 10_000));
    // Host A crashes and comes back: a fresh core with a new session.
    w.a = App::new(99, Vec::new());
    assert!(w.run(20, |w| w.b.restarted()), "host B must learn that the stream it was part of is gone");
    assert!(!w.b.fin);
    assert!(w.node.node_stats(Instant::ZERO).restarts >= 1);
    // And the new sessions work end to end.
    let fresh = data(9, 3_000);
    w.a.out = fresh.clone();
    w.a.finish = true;
    let before = w.b.got.len();
    assert!(w.run(20, |w| w.b.got.len() >= before + fresh.len()));
    assert_eq!(&w.b.got[before..], &fresh[..]);
}

#[test]
fn small_packets_cross_on_packet_channels_and_the_node_answers_for_its_counters() {
    let mut w = World::new(data(10, 5_000), Vec::new(), 0.0, 60);
    assert!(w.run(10, |w| w.a.link().is_connected()
        && w.node.b.conn().is_connected()
        && w.b.link().is_connected()));
    w.a.link_mut().send(CONTROL, b"open 16").unwrap();
    w.b.link_mut().send(SERVICE_CHANNEL, b"?").unwrap();
    assert!(w.run(10, |w| w.b.packets.iter().any(|p| p.0 == SERVICE_CHANNEL)
        && w.b.packets.iter().any(|p| p.0 == CONTROL)));
    assert!(w.b.packets.contains(&(CONTROL, b"open 16".to_vec())));
    let answer = &w.b.packets.iter().find(|p| p.0 == SERVICE_CHANNEL).unwrap().1;
    assert_eq!(answer[..3], [service::STATS_VERSION, service::Role::Bridge as u8, 2]);
    assert!(service::port_field(answer, 1, 1).unwrap() > 0, "port B has received frames");
    assert!(!w.a.packets.iter().any(|p| p.0 == SERVICE_CHANNEL), "the service channel is not relayed");
}

#[test]
fn the_loopback_echoes_a_stream_and_its_end() {
    let sent = data(11, 10_000);
    let link = memory().link(node_config(115_200, MAX_RAW), Instant::ZERO, 70);
    let mut node: Loopback<'static, StreamFraming<'static>, P> =
        Loopback::new(link, HOST_PACKET_CHANNELS, Instant::ZERO);
    let mut port = SimPort::new(115_200, 0.0, 71);
    let mut host = App::new(72, sent.clone());
    let mut t = 0;
    while t < 20_000_000_000 && !(host.fin && host.got == sent) {
        t += STEP_NS;
        port.now_ns = t;
        let bytes = port.up.read(t);
        port.inbox.extend(bytes);
        node.poll(Instant::from_micros(t / 1000), &mut port);
        host.step(t, &mut port);
    }
    assert_eq!(host.got, sent);
    assert!(host.fin);
}

/// The radio boards' bridge: a UART on side A, a radio on side B (datagram
/// framing, one frame per 255-byte datagram, every 15th one lost on air).
mod radio_side {
    use super::*;
    use strand_firmware::memory::DatagramPortMemory;
    use strand_firmware::port::{Datagrams, Radio};
    use strand_link::framing::DatagramFraming;
    use strand_link::wire::OVERHEAD;
    use strand_link::{Buf, ConnStorage, Connection, Driver, Endpoint};

    const MTU: usize = 255;
    const RADIO_P: usize = MTU - OVERHEAD;
    type RadioMemory = DatagramPortMemory<'static, W, RADIO_P, S, MTU>;
    type RadioNode = Bridge<'static, StreamFraming<'static>, DatagramFraming, P>;

    /// The air between the node's radio and host B's: datagrams each way.
    #[derive(Default)]
    struct Air {
        to_node: VecDeque<Vec<u8>>,
        to_host: VecDeque<Vec<u8>>,
        sent: usize,
    }

    impl Air {
        /// A datagram goes on air; every 15th is lost.
        fn carry(&mut self, d: &[u8], to_node: bool) {
            self.sent += 1;
            if self.sent % 15 == 0 {
                return;
            }
            if to_node { &mut self.to_node } else { &mut self.to_host }.push_back(d.to_vec());
        }
    }

    /// The node's radio: a queue of two datagrams to send, as on the boards.
    struct TestRadio<'a>(&'a mut Air);

    impl Radio for TestRadio<'_> {
        const MTU: usize = MTU;
        fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
            let d = self.0.to_node.pop_front()?;
            buf[..d.len()].copy_from_slice(&d);
            Some(d.len())
        }
        fn can_transmit(&self) -> bool {
            self.0.to_host.len() < 2
        }
        fn transmit(&mut self, frame: &[u8]) -> bool {
            assert!(frame.len() <= MTU);
            self.0.carry(frame, false);
            true
        }
    }

    /// Host B's radio, as a transport of its own drive step.
    struct HostRadio<'a>(&'a mut Air);

    impl Transport for HostRadio<'_> {
        fn capabilities(&self) -> Capabilities {
            Capabilities::datagram(MTU, 0, true)
        }
        fn recv(&mut self, buf: &mut [u8]) -> usize {
            self.0.to_host.pop_front().map_or(0, |d| {
                buf[..d.len()].copy_from_slice(&d);
                d.len()
            })
        }
        fn ready(&self) -> bool {
            self.0.to_node.len() < 2
        }
        fn send(&mut self, unit: &[u8]) {
            self.0.carry(unit, true);
        }
    }

    #[test]
    fn streams_cross_between_a_uart_and_a_radio() {
        let (ab, ba) = (data(20, 20_000), data(21, 10_000));
        let now = Instant::ZERO;
        let a = memory().link(node_config(115_200, MAX_RAW), now, 80);
        let radio_memory: &'static mut RadioMemory = Box::leak(Box::new(RadioMemory::new()));
        let b = radio_memory.link(Config::default(), now, 81);
        let mut node: RadioNode = Bridge::new(a, b, HOST_PACKET_CHANNELS, now);
        let mut pa = SimPort::new(115_200, 0.0, 82);
        let mut host_a = App::new(83, ab.clone());
        // Host B: an endpoint of one connection on the radio, the core's drive step.
        let conn = Connection::new(Config::default(), ConnStorage::owned(8, RADIO_P, 4), 0, now, 84);
        let mut ep_b = Endpoint::new(Config::default(), 0, Buf::from(vec![conn]), now);
        let mut driver_b = Driver::owned(DatagramFraming::new(MTU), MTU);
        let (mut b_sent, mut b_got, mut b_fin, mut b_finished) = (0, Vec::new(), false, false);
        let mut air = Air::default();
        let mut t = 0;
        while t < 60_000_000_000 && !(b_fin && b_got == ab && host_a.fin && host_a.got == ba) {
            t += STEP_NS;
            let now = Instant::from_micros(t / 1000);
            pa.now_ns = t;
            let bytes = pa.up.read(t);
            pa.inbox.extend(bytes);
            let mut pb = Datagrams::new(TestRadio(&mut air), 0);
            node.poll(now, &mut pa, &mut pb);
            host_a.step(t, &mut pa);
            let conn = ep_b.connection_mut(0);
            if b_sent < ba.len() {
                b_sent += conn.write_stream(PIPE, &ba[b_sent..]);
            } else if !b_finished {
                b_finished = conn.finish_stream(PIPE);
            }
            driver_b.step(&mut ep_b, &mut HostRadio(&mut air), now);
            let conn = ep_b.connection_mut(0);
            while let Some(n) = conn.recv(|d, p| {
                b_got.extend_from_slice(p);
                b_fin |= d.fin;
                p.len() as u32 + u32::from(d.fin)
            }) {
                conn.stream_written(now, PIPE, n);
            }
        }
        assert_eq!((b_got.len(), host_a.got.len()), (ab.len(), ba.len()));
        assert!(b_got == ab && b_fin, "A->B over the radio");
        assert!(host_a.got == ba && host_a.fin, "B->A from the radio");
        assert!(node.b.ep.stats().retransmits > 0, "the air was meant to lose frames");
    }
}
