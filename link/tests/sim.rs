//! Whole-protocol simulation tests: two cores over an emulated serial line.
//! Every test runs several seeds and names the seed in its failure message.

use std::collections::BTreeMap;
use std::time::Duration;
use strand_link::fec::Strength;
use strand_link::sim::{GilbertElliott, LineConfig, Pair};
use strand_link::stats::Stats;
use strand_link::{Config, Event, PacketId};

type P = Pair<64, 1024>;

const SEEDS: [u64; 3] = [1, 2, 0xdecafbad];

fn cfg() -> Config {
    Config { min_payload: 16, ..Config::default() }
}

fn line(ber: f64) -> LineConfig {
    LineConfig::clean(2_000_000, Duration::from_millis(2)).with_ber(ber)
}

/// `n` packets with unique, seed-dependent contents: a 4-byte counter, then
/// pseudo-random bytes, sizes 0..max (so many are fragmented).
fn packets(seed: u64, n: usize, max: usize) -> Vec<(u8, Vec<u8>)> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    (0..n)
        .map(|i| {
            let len = 4 + next() % max;
            let mut p = (i as u32).to_be_bytes().to_vec();
            p.extend((4..len).map(|_| next() as u8));
            (1 + (i % 2) as u8, p)
        })
        .collect()
}

fn bulk(seed: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 ^ seed).wrapping_mul(2654435761) as u8).collect()
}

fn per_channel(list: &[(u8, Vec<u8>)]) -> BTreeMap<u8, Vec<Vec<u8>>> {
    let mut m: BTreeMap<u8, Vec<Vec<u8>>> = BTreeMap::new();
    for (ch, p) in list {
        m.entry(*ch).or_default().push(p.clone());
    }
    m
}

/// Sends `pkts` from A to B plus a bulk stream both ways, and checks every
/// packet and byte arrived exactly once, in order, and every packet was
/// reported `Acked`.
fn transfer(mut pair: P, pkts: Vec<(u8, Vec<u8>)>, stream_len: usize, limit: Duration) {
    let seed = pair.seed;
    for (ch, p) in &pkts {
        pair.a.send(*ch, p.clone());
    }
    let data_ab = bulk(seed, stream_len);
    let data_ba = bulk(seed + 1, stream_len / 2);
    pair.a.write_stream(3, data_ab.clone(), true);
    pair.b.write_stream(3, data_ba.clone(), true);
    pair.a.stream_channels.insert(3);
    pair.b.stream_channels.insert(3);
    let n = pkts.len();
    let done = pair.run_until(limit, |p| {
        p.b.delivered.len() == n
            && p.b.fin(3)
            && p.a.fin(3)
            && p.a.link().is_send_idle()
            && p.b.link().is_send_idle()
    });
    let (sa, sb) = (pair.a.stats(), pair.b.stats());
    assert!(
        done,
        "seed {seed}: not done after {:?}: delivered {}/{n}, stream {}/{} and {}/{}\nA {sa:?}\nB {sb:?}\nline ab {:?}\nline ba {:?}",
        pair.elapsed(),
        pair.b.delivered.len(),
        pair.b.stream(3).len(),
        data_ab.len(),
        pair.a.stream(3).len(),
        data_ba.len(),
        pair.ab.counters,
        pair.ba.counters
    );
    assert_eq!(per_channel(&pair.b.delivered), per_channel(&pkts), "seed {seed}: packets differ");
    assert!(pair.b.stream(3) == &data_ab[..], "seed {seed}: A->B stream differs");
    assert!(pair.a.stream(3) == &data_ba[..], "seed {seed}: B->A stream differs");
    let acked = pair.a.reported(|e| if let Event::Acked(id) = e { Some(*id) } else { None });
    let ids: Vec<PacketId> = pair.a.sent.keys().copied().collect();
    let mut sorted = acked.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "seed {seed}: each packet reported Acked exactly once");
    assert_eq!(sa.peer_restarts + sb.peer_restarts, 0, "seed {seed}");
}

#[test]
fn clean_line() {
    for seed in SEEDS {
        let pair = P::symmetric(cfg(), line(0.0), seed);
        transfer(pair, packets(seed, 300, 3000), 200_000, Duration::from_secs(30));
    }
}

#[test]
fn clean_line_uses_the_line_efficiently() {
    // 400 KB one way on a clean 2 Mbit/s line: at least 95% of 200,000 B/s.
    let mut pair = P::symmetric(cfg(), line(0.0), 5);
    let data = bulk(5, 400_000);
    pair.a.write_stream(1, data.clone(), true);
    pair.b.stream_channels.insert(1);
    assert!(pair.run_until(Duration::from_secs(10), |p| p.b.fin(1)));
    let rate = data.len() as f64 / pair.elapsed().as_secs_f64() / 200_000.0;
    assert!(rate > 0.95, "goodput {rate:.3} of the line");
    assert_eq!(pair.b.stream(1), &data[..]);
}

#[test]
fn bit_errors_1e6_1e5_1e4() {
    for ber in [1e-6, 1e-5, 1e-4] {
        for seed in SEEDS {
            let pair = P::symmetric(cfg(), line(ber), seed);
            transfer(pair, packets(seed, 200, 2000), 200_000, Duration::from_secs(60));
        }
    }
}

#[test]
fn bit_errors_1e3() {
    for seed in SEEDS {
        // 1% of bytes hit: slow by nature (in-frame FEC is what fixes speed), but exact.
        let pair = P::symmetric(cfg(), line(1e-3), seed);
        transfer(pair, packets(seed, 30, 400), 10_000, Duration::from_secs(300));
    }
}

#[test]
fn burst_errors_gilbert_elliott() {
    for seed in SEEDS {
        let mut l = line(1e-7);
        // Bursts of ~1000 bits at BER 0.05, entered every ~2 Mbit on average.
        l.burst = Some(GilbertElliott { p_enter_bad: 5e-7, p_leave_bad: 1e-3, ber_bad: 0.05 });
        let pair = P::symmetric(cfg(), l, seed);
        transfer(pair, packets(seed, 200, 2000), 200_000, Duration::from_secs(60));
    }
}

#[test]
fn dropped_duplicated_inserted_and_truncated_bytes() {
    for seed in SEEDS {
        let l = LineConfig {
            drop_rate: 2e-5,
            dup_rate: 2e-5,
            insert_rate: 2e-5,
            truncate_rate: 1e-5,
            ..line(0.0)
        };
        let pair = P::symmetric(cfg(), l, seed);
        transfer(pair, packets(seed, 200, 2000), 200_000, Duration::from_secs(60));
    }
}

#[test]
fn asymmetric_loss_each_direction() {
    for seed in SEEDS {
        // Noisy forward path, clean return; then the reverse.
        let pair = P::new(cfg(), line(1e-4), line(0.0), seed);
        transfer(pair, packets(seed, 100, 2000), 100_000, Duration::from_secs(60));
        let pair = P::new(cfg(), line(0.0), line(3e-4), seed);
        transfer(pair, packets(seed, 100, 2000), 100_000, Duration::from_secs(60));
    }
}

#[test]
fn long_outage_reports_link_down_then_resumes() {
    for seed in SEEDS {
        let mut l = line(0.0);
        l.outages = vec![(Duration::from_millis(300), Duration::from_millis(8300))];
        let mut pair = P::symmetric(cfg(), l, seed);
        let data = bulk(seed, 600_000);
        pair.a.write_stream(1, data.clone(), true);
        pair.b.stream_channels.insert(1);
        assert!(pair.run_until(Duration::from_secs(60), |p| p.b.fin(1)), "seed {seed}");
        assert_eq!(pair.b.stream(1), &data[..], "seed {seed}");
        for ep in [&pair.a, &pair.b] {
            let evs: Vec<Event> = ep
                .events
                .iter()
                .map(|(_, e)| *e)
                .filter(|e| matches!(e, Event::LinkDown | Event::LinkUp))
                .collect();
            assert_eq!(evs, vec![Event::LinkDown, Event::LinkUp], "seed {seed}");
        }
        let (down, _) = pair.a.events.iter().find(|(_, e)| *e == Event::LinkDown).copied().unwrap();
        let ms = down.as_micros() / 1000;
        // The last frame before the outage arrived just before 300 ms; the timeout is 5 s.
        assert!((5200..5400).contains(&ms), "seed {seed}: link down reported at {ms} ms");
    }
}

#[test]
fn receiver_restart_mid_transfer_loses_nothing_silently() {
    for seed in SEEDS {
        let mut pair = P::symmetric(cfg(), line(1e-5), seed);
        let pkts = packets(seed, 400, 1500);
        for (ch, p) in &pkts {
            pair.a.send(*ch, p.clone());
        }
        pair.run_until(Duration::from_millis(600), |_| false);
        let before = pair.b.delivered.len();
        assert!(before > 0 && before < pkts.len(), "seed {seed}: restart should land mid-transfer");
        pair.restart_b(seed ^ 0xffff, cfg());
        let all_reported =
            |p: &P| p.a.outbox.is_empty() && p.a.link().is_send_idle() && p.a.link().is_connected();
        assert!(pair.run_until(Duration::from_secs(60), all_reported), "seed {seed}");
        let acked = pair.a.reported(|e| if let Event::Acked(id) = e { Some(*id) } else { None });
        let unconfirmed = pair.a.reported(|e| if let Event::Unconfirmed(id) = e { Some(*id) } else { None });
        assert!(pair.a.events.iter().any(|(_, e)| *e == Event::PeerRestarted), "seed {seed}");
        let mut all: Vec<PacketId> = acked.iter().chain(&unconfirmed).copied().collect();
        all.sort();
        let ids: Vec<PacketId> = pair.a.sent.keys().copied().collect();
        assert_eq!(all, ids, "seed {seed}: every packet reported exactly once");
        let count = |p: &Vec<u8>| pair.b.delivered.iter().filter(|(_, d)| d == p).count();
        for id in &acked {
            assert_eq!(count(&pair.a.sent[id].1), 1, "seed {seed}: acked packet {id} delivered once");
        }
        for id in &unconfirmed {
            assert!(count(&pair.a.sent[id].1) <= 1, "seed {seed}: unconfirmed packet {id} duplicated");
        }
        // Per channel, deliveries keep the send order.
        for (ch, got) in per_channel(&pair.b.delivered) {
            let order: Vec<usize> = got
                .iter()
                .map(|g| pkts.iter().position(|(c, p)| *c == ch && p == g).expect("a sent packet"))
                .collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "seed {seed}: channel {ch} out of order");
        }
        assert!(!unconfirmed.is_empty() || acked.len() == pkts.len(), "seed {seed}");
    }
}

#[test]
fn sender_restart_is_detected_and_new_session_flows() {
    for seed in SEEDS {
        let mut pair = P::symmetric(cfg(), line(0.0), seed);
        pair.a.send(1, b"before".to_vec());
        assert!(pair.run_until(Duration::from_secs(5), |p| p.b.delivered.len() == 1), "seed {seed}");
        let old = pair.b.link().peer_session();
        // Swap roles: restart B, which then sends to A.
        pair.restart_b(seed.wrapping_add(1000), cfg());
        pair.b.send(2, b"after".to_vec());
        assert!(pair.run_until(Duration::from_secs(5), |p| p.a.delivered.len() == 1), "seed {seed}");
        assert_eq!(pair.a.delivered[0], (2, b"after".to_vec()));
        assert!(pair.a.events.iter().any(|(_, e)| *e == Event::PeerRestarted), "seed {seed}");
        assert_ne!(pair.b.link().peer_session(), old);
        assert_ne!(pair.a.link().peer_session(), None);
    }
}

#[test]
fn flow_control_stalls_and_resumes() {
    let seed = 11;
    let mut pair = P::symmetric(cfg(), line(0.0), seed);
    pair.b.paused = true;
    let pkts = packets(seed, 200, 900);
    for (ch, p) in &pkts {
        pair.a.send(*ch, p.clone());
    }
    pair.run_until(Duration::from_secs(3), |_| false);
    assert!(pair.b.delivered.is_empty());
    assert!(pair.a.events.iter().any(|(_, e)| *e == Event::WindowStalled), "seed {seed}");
    assert!(pair.a.link().is_up(), "a closed window is not a dead link");
    pair.b.paused = false;
    assert!(pair.run_until(Duration::from_secs(20), |p| p.b.delivered.len() == pkts.len()), "seed {seed}");
    assert!(pair.a.events.iter().any(|(_, e)| *e == Event::WindowOpened), "seed {seed}");
    assert_eq!(per_channel(&pair.b.delivered), per_channel(&pkts));
}

#[test]
fn interactive_channel_overtakes_queued_bulk() {
    let seed = 12;
    let mut pair = P::symmetric(cfg(), line(0.0), seed);
    assert!(pair.run_until(Duration::from_secs(1), |p| p.a.link().is_connected()));
    // Fill the pool with bulk on channel 2, then send one keystroke on channel 1.
    let bulk_pkts: Vec<Vec<u8>> = (0..60u8).map(|i| vec![i; 1000]).collect();
    for p in &bulk_pkts {
        pair.a.send(2, p.clone());
    }
    pair.step();
    pair.a.send(1, b"k".to_vec());
    assert!(pair.run_until(Duration::from_secs(5), |p| p.b.delivered.iter().any(|(c, _)| *c == 1)));
    let pos = pair.b.delivered.iter().position(|(c, _)| *c == 1).unwrap();
    // Only what was already on the wire or in the line buffer may precede it.
    assert!(pos < 12, "keystroke delivered after {pos} bulk packets");
}

#[test]
fn garbage_peer_never_connects_and_is_reported_down() {
    let mut pair = P::symmetric(cfg(), line(0.0), 13);
    // B's output is replaced by noise: cut B->A and inject random bytes instead.
    pair.ba = strand_link::sim::Direction::new(LineConfig { cut: true, ..line(0.0) }, 1);
    let noise: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    pair.a.node.input(strand_link::Instant::ZERO, &noise);
    pair.run_until(Duration::from_secs(6), |_| false);
    let s = pair.a.stats();
    assert!(!pair.a.link().is_connected());
    assert!(s.crc_errors + s.framing_errors > 0, "{s:?}");
    assert!(pair.a.events.iter().any(|(_, e)| *e == Event::LinkDown));
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut pair = P::symmetric(cfg(), line(1e-4), seed);
        pair.a.write_stream(1, bulk(seed, 100_000), true);
        pair.b.stream_channels.insert(1);
        pair.run_until(Duration::from_secs(30), |p| p.b.fin(1));
        (pair.elapsed(), pair.a.stats(), pair.b.stats())
    };
    assert_eq!(run(21), run(21));
}

#[test]
fn sender_restart_mid_packet_never_glues_fragments() {
    for seed in SEEDS {
        let mut pair = P::symmetric(cfg(), line(1e-5), seed);
        // B sends multi-fragment packets to A and restarts in the middle.
        let pkts = packets(seed, 200, 6000);
        for (ch, p) in &pkts {
            pair.b.send(*ch, p.clone());
        }
        pair.run_until(Duration::from_millis(150), |_| false);
        pair.restart_b(seed.wrapping_add(99), cfg());
        pair.b.outbox.clear();
        let after = packets(seed + 1, 20, 3000);
        for (ch, p) in &after {
            pair.b.send(*ch, p.clone());
        }
        let n = after.len();
        let ok = pair.run_until(Duration::from_secs(30), |p| {
            p.a.delivered.iter().filter(|(c, d)| after.iter().any(|(ac, ap)| ac == c && ap == d)).count() == n
        });
        assert!(ok, "seed {seed}: new session's packets did not all arrive");
        for (ch, d) in &pair.a.delivered {
            assert!(
                pkts.iter().chain(&after).any(|(c, p)| c == ch && p == d),
                "seed {seed}: a delivered packet of {} bytes on channel {ch} was never sent (glued?)",
                d.len()
            );
        }
        assert!(pair.a.events.iter().any(|(_, e)| *e == Event::PeerRestarted), "seed {seed}");
    }
}

#[test]
fn big_frame_host_never_overruns_a_small_frame_peer() {
    use strand_link::framing::max_raw_for_encoded;
    use strand_link::sim::{Direction, Node};
    use strand_link::Instant;
    // A host with 4 KiB frames and a LoRa-sized node (255-byte frames) on one line.
    let line = LineConfig::clean(115_200, Duration::from_millis(5));
    let (mut ab, mut ba) = (Direction::new(line.clone(), 1), Direction::new(line, 2));
    let mut a = Node::new(cfg(), 16, max_raw_for_encoded(4096), Instant::ZERO, 1);
    let mut b = Node::new(cfg(), 16, max_raw_for_encoded(255), Instant::ZERO, 2);
    // Queued before the handshake, when the node's limit is not yet known.
    let early: Vec<u8> = (0..200u8).collect();
    let id_early = a.link_mut().send(1, &early).unwrap();
    let (mut got, mut partial) = (Vec::new(), Vec::new());
    let mut later = Some(vec![7u8; 3000]);
    let mut t = 0u64;
    while got.len() < 2 && t < 30_000_000_000 {
        let now = Instant::from_micros(t / 1000);
        let from_b = ba.read(t);
        a.input(now, &from_b);
        let from_a = ab.read(t);
        b.input(now, &from_a);
        if a.link().is_connected() {
            if let Some(p) = later.take() {
                if a.link_mut().send(1, &p).is_err() {
                    later = Some(p);
                }
            }
        }
        while ab.writable(t) > 0 {
            let Some(unit) = a.output(now) else { break };
            ab.write(t, &unit);
        }
        while ba.writable(t) > 0 {
            let Some(unit) = b.output(now) else { break };
            ba.write(t, &unit);
        }
        while b
            .link_mut()
            .recv(|d, p| {
                partial.extend_from_slice(p);
                if !d.more {
                    got.push(std::mem::take(&mut partial));
                }
            })
            .is_some()
        {}
        while a.link_mut().poll_event().is_some() {}
        while b.link_mut().poll_event().is_some() {}
        t += 1_000_000;
    }
    assert_eq!(got, vec![early, vec![7u8; 3000]]);
    let s = b.ep.stats();
    assert_eq!((s.framing_errors, s.crc_errors, s.invalid_frames), (0, 0, 0), "{s:?}");
    // The node's largest raw frame is 255 - ceil(255/254) = 253 bytes: 237 of payload.
    assert!(a.link().max_payload() <= 237, "payload {} fits the node", a.link().max_payload());
    let _ = id_early;
}

/// Streams `len` bytes from a to b over `line` and checks they arrive
/// whole and exact; returns both sides' counters.
fn stream_over(cfg: Config, line: LineConfig, seed: u64, len: usize, budget: Duration) -> (Stats, Stats) {
    let mut pair = P::symmetric(cfg, line, seed);
    let data = bulk(seed, len);
    pair.a.write_stream(1, data.clone(), true);
    pair.b.stream_channels.insert(1);
    assert!(pair.run_until(budget, |p| p.b.fin(1)), "seed {seed}");
    assert!(pair.b.stream(1) == &data[..], "seed {seed}: stream differs");
    (pair.a.stats(), pair.b.stats())
}

#[test]
fn fec_switches_on_for_a_noisy_line_and_repairs_frames() {
    for seed in SEEDS {
        let (a, b) = stream_over(Config::default(), line(1e-4), seed, 400_000, Duration::from_secs(60));
        assert!(
            a.fec_frames_tx > 0 && a.fec_strength != Strength::Off,
            "seed {seed}: FEC never switched on: {a:?}"
        );
        assert!(b.fec_corrected > 0, "seed {seed}: nothing corrected: {b:?}");
        assert!(b.fec_frames_rx >= a.fec_frames_tx / 2, "seed {seed}");
    }
}

#[test]
fn frame_wide_fec_is_chosen_at_ber_1e5_and_repairs_frames() {
    // BER 1e-5 is ~1e-4 damaged bytes, a few per 4 KiB frame: one frame-wide
    // codeword with 8 or 16 parity bytes (wide2, wide4) repairs nearly every
    // frame, where the interleaved thin code would spend 68.
    for seed in SEEDS {
        let (a, b) = stream_over(Config::default(), line(1e-5), seed, 600_000, Duration::from_secs(60));
        assert!(
            matches!(a.fec_strength, Strength::Wide2 | Strength::Wide4),
            "seed {seed}: frame-wide parity not in use at the end: {a:?}"
        );
        assert!(a.fec_frames_tx * 2 > a.data_tx, "seed {seed}: most frames protected: {a:?}");
        assert!(b.fec_corrected > 0, "seed {seed}: nothing corrected: {b:?}");
        // Repaired frames are not resent: only the few that parity cannot mend are.
        assert!(b.fec_failed * 50 < b.fec_frames_rx, "seed {seed}: {b:?}");
        assert!(a.retransmits * 20 < a.data_tx, "seed {seed}: {a:?}");
    }
}

#[test]
fn line_turning_bad_mid_transfer_still_delivers() {
    // Frames in flight keep the size they were cut at. Cut at the full 4 KiB on a clean line, a
    // frame must still fit the strongest code once the line turns to BER 1e-3, where a plain
    // 4 KiB frame gets through about once in 1e14 tries; it stalled for good before. Then the
    // receiver's report must follow the change (the clean past averaged it down for ~10 s), and
    // a frame lost twice gets the strongest code that fits: 21% of the line after the turn with
    // neither, 73-75% with both (a steady 1e-3 line gives ~77%).
    type Host = Pair<256, 4096>;
    for seed in SEEDS {
        let line = LineConfig::clean(2_000_000, Duration::from_millis(1));
        let mut pair = Host::symmetric(Config::for_serial_line(2_000_000, 10, 4096), line, seed);
        let data = bulk(seed, 1 << 20);
        pair.a.write_stream(1, data.clone(), true);
        pair.b.stream_channels.insert(1);
        assert!(pair.run_until(Duration::from_secs(10), |p| p.b.stream(1).len() > 200_000), "seed {seed}");
        assert!(pair.a.stats().payload_size > 3000, "seed {seed}: frames not long on the clean line");
        pair.ab.set_ber(1e-3);
        pair.ba.set_ber(1e-3);
        let (turned, at) = (pair.elapsed(), pair.b.stream(1).len());
        assert!(
            pair.run_until(Duration::from_secs(60), |p| p.b.fin(1)),
            "seed {seed}: stalled at {} bytes once the line turned bad: {:?}",
            pair.b.stream(1).len(),
            pair.a.stats()
        );
        assert!(pair.b.stream(1) == &data[..], "seed {seed}: stream differs");
        let a = pair.a.stats();
        assert_ne!(a.fec_strength, Strength::Off, "seed {seed}: {a:?}");
        let rate = (data.len() - at) as f64 / (pair.elapsed() - turned).as_secs_f64() / 200_000.0;
        eprintln!("seed {seed}: {rate:.3} of the line after it turned bad");
        assert!(rate > 0.6, "seed {seed}: {rate:.3} of the line after it turned bad: {a:?}");
    }
}

#[test]
fn fec_stays_off_on_a_clean_line() {
    let (a, _) = stream_over(Config::default(), line(0.0), 4, 400_000, Duration::from_secs(10));
    assert_eq!(a.fec_frames_tx, 0);
}

#[test]
fn fec_can_be_switched_off() {
    let cfg = Config { fec: false, ..Config::default() };
    let (a, _) = stream_over(cfg, line(1e-4), 5, 100_000, Duration::from_secs(60));
    assert_eq!(a.fec_frames_tx, 0);
}

#[test]
fn a_peer_without_fec_is_sent_plain_frames_on_a_noisy_line() {
    // B stands for a node built without the FEC decoder: its HELLO says NO_FEC
    // (4.1), and A, which would protect its frames on this line (the test
    // above), sends it plain ones that the ARQ alone carries across.
    for seed in SEEDS {
        let mut pair = P::symmetric(Config::default(), line(1e-4), seed);
        pair.restart_b(seed, Config { fec: false, ..Config::default() });
        let data = bulk(seed, 200_000);
        pair.a.write_stream(1, data.clone(), true);
        pair.b.stream_channels.insert(1);
        assert!(pair.run_until(Duration::from_secs(60), |p| p.b.fin(1)), "seed {seed}");
        assert!(pair.b.stream(1) == &data[..], "seed {seed}: stream differs");
        let (a, b) = (pair.a.stats(), pair.b.stats());
        assert_eq!((a.fec_frames_tx, b.fec_frames_rx), (0, 0), "seed {seed}: {a:?}");
        assert!(a.retransmits > 0, "seed {seed}: the line was not noisy: {a:?}");
    }
}

#[test]
fn slow_line_with_rate_derived_settings_sends_nothing_twice() {
    // 115,200 bit/s with what a driver that knows the rate sets (host: config_for_serial):
    // 50 ms frames, ~200 ms of data in flight, no timeout before a frame can be acknowledged.
    // Without the RTO floor the first RTT sample (a tiny HELLO) set a timeout shorter than a
    // frame's own time on the line, and Karn's rule never got a sample to correct it.
    let cfg = Config {
        max_payload: 576,
        max_in_flight_bytes: 2304,
        min_rto: strand_link::time::Duration::from_millis(170),
        ..Config::default()
    };
    let mut pair = P::symmetric(cfg, LineConfig::clean(115_200, Duration::from_millis(1)), 6);
    let pkts: Vec<(u8, Vec<u8>)> = (0..4u8).map(|i| (2, vec![i; 16 * 1024])).collect();
    for (ch, p) in &pkts {
        pair.a.send(*ch, p.clone());
    }
    assert!(pair.run_until(Duration::from_secs(30), |p| p.b.delivered.len() == pkts.len()));
    assert_eq!(pair.b.delivered, pkts);
    assert_eq!(pair.a.stats().retransmits, 0, "{:?}", pair.a.stats());
    let rate = 64.0 * 1024.0 / pair.elapsed().as_secs_f64() / 11_520.0;
    assert!(rate > 0.8, "{rate:.2} of the line");
}

/// Window and frame capacity for the 115,200 bit/s tests: the host's 4 KiB frames, fewer slots.
type Slow = Pair<32, 4096>;

/// 115,200 bit/s, 1 ms latency, with the settings the host uses for it, and a driver that runs
/// up to 8 KiB ahead of the wire (a pty plus `strand linkem`'s FIFO).
fn slow_pair(ber: f64, seed: u64) -> Slow {
    let mut line = LineConfig::clean(115_200, Duration::from_millis(1)).with_ber(ber);
    line.buffer = 8192;
    Slow::symmetric(Config::for_serial_line(115_200, 10, 4096), line, seed)
}

#[test]
fn slow_line_at_ber_1e3_repeats_lost_frames_not_every_frame() {
    // Each frame waits behind up to ~200 ms of bytes queued ahead of it. With its timer counted
    // from when it was queued (`line_rate` 0), the timer fires before nearly every ACK (seed 1:
    // 264 duplicates at the receiver for 158 frames) and Karn's rule gets no sample to learn from.
    // Counted from when the frame leaves: no duplicates, 62-66% of the line.
    for seed in [1, 2, 3] {
        let mut pair = slow_pair(1e-3, seed);
        let data = bulk(seed, 64 * 1024);
        pair.a.write_stream(2, data.clone(), true);
        pair.b.stream_channels.insert(2);
        assert!(pair.run_until(Duration::from_secs(60), |p| p.b.fin(2)), "seed {seed}");
        assert_eq!(pair.b.stream(2), &data[..], "seed {seed}");
        let (a, b) = (pair.a.stats(), pair.b.stats());
        assert!(
            b.duplicates * 20 < a.data_tx,
            "seed {seed}: {} duplicates of {} frames",
            b.duplicates,
            a.data_tx
        );
        let rate = data.len() as f64 / pair.elapsed().as_secs_f64() / 11_520.0;
        assert!(rate > 0.55, "seed {seed}: {rate:.3} of the line");
    }
}

#[test]
fn slow_line_carries_bulk_packets_in_long_frames() {
    // The file transfer's 32 KiB packets. Cut into fragments when queued, the first one went out
    // in the sizer's starting 256-byte frames (with 50 ms frames, 128 KiB took 95.4% of the line);
    // cut when each fragment is first sent, they follow the sizer up to 200 ms frames, as one
    // channel has the line alone.
    let mut pair = slow_pair(0.0, 7);
    let data = bulk(7, 128 * 1024);
    for chunk in data.chunks(32 * 1024) {
        pair.a.send(2, chunk.to_vec());
    }
    assert!(pair.run_until(Duration::from_secs(30), |p| p.b.delivered.len() == 4));
    assert_eq!(pair.b.delivered.iter().flat_map(|(_, p)| p.clone()).collect::<Vec<u8>>(), data);
    let rate = data.len() as f64 / pair.elapsed().as_secs_f64() / 11_520.0;
    assert!(rate > 0.975, "{rate:.4} of the line");
    assert_eq!(pair.a.stats().retransmits, 0);
}

/// Keystrokes (8-byte packets on channel 1) beside a bulk stream on channel 2 at 115,200 bit/s:
/// for each seed, one after 2 s of bulk alone and one 300 ms later. Returns the mean and the
/// worst wait of the first keystrokes and of the later ones.
fn keystroke_waits(cfg: &Config, seeds: u64) -> [(Duration, Duration); 2] {
    let mut waits = [(Duration::ZERO, Duration::ZERO); 2];
    for seed in 0..seeds {
        let mut line = LineConfig::clean(115_200, Duration::from_millis(1));
        line.buffer = 8192;
        let mut pair = Slow::symmetric(cfg.clone(), line, seed);
        pair.a.write_stream(2, bulk(seed, 128 * 1024), true);
        pair.b.stream_channels.insert(2);
        // Different phases of the bulk frames for different seeds.
        pair.run_until(Duration::from_millis(2000 + seed * 37), |_| false);
        for (k, w) in waits.iter_mut().enumerate() {
            let start = pair.elapsed();
            pair.a.send(1, vec![b'k'; 8]);
            assert!(pair.run_until(Duration::from_secs(3), |p| p.b.delivered.len() == k + 1), "seed {seed}");
            let took = pair.elapsed() - start;
            w.0 += took / seeds as u32;
            w.1 = w.1.max(took);
            pair.run_until(Duration::from_millis(300), |_| false);
        }
    }
    waits
}

#[test]
fn slow_line_keystrokes_beside_bulk_wait_for_short_frames() {
    // The bulk stream has the line alone: 200 ms frames, handed to the driver at most 50 ms ahead
    // of the wire. The first keystroke waits for what was handed out (at most 50 ms of queue and
    // the 200 ms frame behind it); from then on frames are short, so the next one waits for at most
    // 50 ms of queue and a 50 ms frame. Before: 50 ms frames throughout, and only ~200 ms of
    // unacknowledged data to bound the queue.
    let now = Config::for_serial_line(115_200, 10, 4096);
    let before = Config {
        max_payload: 576,
        shared_payload: 0,
        max_queue: strand_link::time::Duration::ZERO,
        max_in_flight_bytes: 2304,
        ..now.clone()
    };
    let [(first, first_worst), (later, later_worst)] = keystroke_waits(&now, 20);
    let [(old_first, old_worst), (old_later, _)] = keystroke_waits(&before, 20);
    eprintln!(
        "keystroke waits, mean / worst: first {first:?} / {first_worst:?}, later {later:?} / {later_worst:?}; \
         before: first {old_first:?} / {old_worst:?}, later {old_later:?}"
    );
    assert!(first_worst < Duration::from_millis(260), "first keystroke took up to {first_worst:?}");
    assert!(later_worst < Duration::from_millis(110), "later keystrokes took up to {later_worst:?}");
    assert!(first < old_first && later < old_later, "keystrokes wait longer than before");
}
