//! An endpoint of several connections on a shared medium (spec 5.6): one node
//! and three peers on a simulated broadcast channel where every datagram
//! reaches every other node (after a latency, or not at all, by a seeded
//! draw per receiver), all four conversations streaming both ways at once.
//! Frames of other nodes' conversations, of strangers and of stale sessions
//! are dropped and counted; every transfer arrives byte-exact.

use std::collections::VecDeque;
use strand_link::drive::{Capabilities, Driver, Transport};
use strand_link::framing::DatagramFraming;
use strand_link::wire::OVERHEAD;
use strand_link::{Buf, Config, ConnStorage, Connection, Endpoint, Instant};

/// LoRa-sized datagrams.
const MTU: usize = 255;
const LATENCY_US: u64 = 5_000;

/// One node: its endpoint, drive step and the datagrams on their way to it.
struct Node {
    ep: Endpoint<'static>,
    driver: Driver<'static, DatagramFraming>,
    inbox: VecDeque<(u64, Vec<u8>)>,
}

/// The medium as one node's transport: what arrived by `now`, and what it sends.
struct Port<'a> {
    now: u64,
    inbox: &'a mut VecDeque<(u64, Vec<u8>)>,
    sent: &'a mut Vec<Vec<u8>>,
}

impl Transport for Port<'_> {
    fn capabilities(&self) -> Capabilities {
        Capabilities::datagram(MTU, 0, false)
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        match self.inbox.front() {
            Some((at, d)) if *at <= self.now => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                self.inbox.pop_front();
                n
            }
            _ => 0,
        }
    }
    fn ready(&self) -> bool {
        true
    }
    fn send(&mut self, unit: &[u8]) {
        self.sent.push(unit.to_vec());
    }
}

fn node(addr: u16, peers: &[u16], seed: u64) -> Node {
    let cfg = Config::default();
    let conns: Vec<Connection<'static>> = peers
        .iter()
        .map(|&p| {
            let storage = ConnStorage::owned(8, MTU - OVERHEAD, 4);
            Connection::new(cfg.clone(), storage, p, Instant::ZERO, seed ^ (u64::from(p) << 8))
        })
        .collect();
    let ep = Endpoint::new(cfg, addr, Buf::from(conns), Instant::ZERO);
    Node { ep, driver: Driver::owned(DatagramFraming::new(MTU), MTU), inbox: VecDeque::new() }
}

/// A tiny seeded generator (xorshift) for the losses.
struct Rng(u64);
impl Rng {
    fn chance(&mut self, p: f64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

fn bulk(seed: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(9) as u8).collect()
}

/// Streams channel 1 of connection `i` of `n`: what it still has to write
/// (from `at`), what it received, whether it ended.
#[derive(Default)]
struct Flow {
    out: Vec<u8>,
    at: usize,
    ended: bool,
    got: Vec<u8>,
    fin: bool,
}

fn pump(c: &mut Connection<'_>, f: &mut Flow, now: Instant) {
    if f.at < f.out.len() {
        f.at += c.write_stream(1, &f.out[f.at..]);
    }
    if f.at == f.out.len() && !f.ended && c.finish_stream(1) {
        f.ended = true;
    }
    while let Some((n, fin)) = c.recv(|d, p| {
        f.got.extend_from_slice(p);
        (p.len() as u32, d.fin)
    }) {
        f.fin |= fin;
        c.stream_written(now, 1, n + u32::from(fin));
    }
    while c.poll_event().is_some() {}
}

#[test]
fn one_node_and_three_peers_on_one_medium_all_transfer_at_once() {
    for seed in [1u64, 2, 3] {
        // Node 0 is address 1, with a connection to each of 2, 3, 4; each peer
        // has one connection, to 1.
        let mut nodes = [
            node(1, &[2, 3, 4], seed),
            node(2, &[1], seed + 10),
            node(3, &[1], seed + 20),
            node(4, &[1], seed + 30),
        ];
        // Flows: [node][connection].
        let mut flows: Vec<Vec<Flow>> = vec![
            (0..3).map(|k| Flow { out: bulk(seed * 7 + k, 20_000), ..Flow::default() }).collect(),
            vec![Flow { out: bulk(seed * 11 + 1, 20_000), ..Flow::default() }],
            vec![Flow { out: bulk(seed * 11 + 2, 20_000), ..Flow::default() }],
            vec![Flow { out: bulk(seed * 11 + 3, 20_000), ..Flow::default() }],
        ];
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        // A stranger's HELLO for node 1 and a DATA frame of an unknown session,
        // as bytes heard on the medium from outside.
        let stale = stranger_frames(seed);
        let mut now = 0u64;
        let done = |flows: &Vec<Vec<Flow>>| flows.iter().flatten().all(|f| f.fin && f.ended);
        while !done(&flows) && now < 120_000_000 {
            let t = Instant::from_micros(now);
            if now == 50_000 {
                for n in nodes.iter_mut() {
                    for f in &stale {
                        n.inbox.push_back((now, f.clone()));
                    }
                }
            }
            let mut sent: Vec<(usize, Vec<u8>)> = Vec::new();
            for (i, n) in nodes.iter_mut().enumerate() {
                let mut out = Vec::new();
                let mut port = Port { now, inbox: &mut n.inbox, sent: &mut out };
                let fl = &mut flows[i];
                n.driver.step_with(&mut n.ep, &mut port, t, |ep| {
                    for (k, f) in fl.iter_mut().enumerate() {
                        pump(ep.connection_mut(k), f, t);
                    }
                });
                for (k, f) in flows[i].iter_mut().enumerate() {
                    pump(n.ep.connection_mut(k), f, t);
                }
                sent.extend(out.into_iter().map(|d| (i, d)));
            }
            // Broadcast: every other node hears each datagram, or loses it (5%).
            for (from, d) in sent {
                for (j, n) in nodes.iter_mut().enumerate() {
                    if j != from && !rng.chance(0.05) {
                        n.inbox.push_back((now + LATENCY_US, d.clone()));
                    }
                }
            }
            now += 1_000;
        }
        assert!(done(&flows), "seed {seed}: not done after {} s", now / 1_000_000);
        // Every stream arrived exactly: hub connection k talks to node k+1.
        for k in 0..3 {
            assert!(flows[0][k].got == flows[k + 1][0].out, "seed {seed}: peer {} -> hub differs", k + 2);
            assert!(flows[k + 1][0].got == flows[0][k].out, "seed {seed}: hub -> peer {} differs", k + 2);
        }
        // Each peer heard the hub's conversations with the two others, and the
        // strangers: all dropped and counted, none disturbed a connection.
        for n in &nodes[1..] {
            let s = n.ep.stats();
            assert!(s.foreign_session > 0, "seed {seed}: overheard frames are counted: {s:?}");
            assert_eq!(s.peer_restarts, 0, "seed {seed}");
        }
        let hub = nodes[0].ep.stats();
        assert_eq!(hub.peer_restarts, 0, "seed {seed}");
        assert!(hub.foreign_session >= 1, "seed {seed}: the stranger's frames are counted: {hub:?}");
    }
}

/// Frames a stranger (address 9, sessions no one knows) puts on the medium:
/// a HELLO for node 1's address and a DATA frame.
fn stranger_frames(seed: u64) -> Vec<Vec<u8>> {
    use strand_link::wire::{flags, FrameType, Header, HelloRepr, HELLO_OVERHEAD, PROTOCOL};
    let hello = HelloRepr {
        min_version: PROTOCOL,
        max_version: PROTOCOL,
        max_frame: 255,
        window: 8,
        echo: 0,
        src: 9,
        dst: 1,
        flags: 0,
    };
    let mut p = [0u8; 14];
    let n = hello.emit(&mut p);
    let mut f1 = vec![0u8; HELLO_OVERHEAD + n];
    let h = Header {
        frame_type: FrameType::Hello,
        flags: 0,
        channel: 0,
        session: 0x5eed_0000 ^ seed as u32,
        seq: 0,
        ack: 0,
        counter: 0,
    };
    h.emit_frame(&p[..n], &mut f1);
    let mut f2 = vec![0u8; OVERHEAD + 5];
    let d = Header {
        frame_type: FrameType::Data,
        flags: flags::ACK,
        channel: 1,
        session: 0xbad0_0000 ^ seed as u32,
        seq: 0,
        ack: 0,
        counter: 0,
    };
    d.emit_frame(b"noise", &mut f2);
    vec![f1, f2]
}
