//! The session contract of spec 5.2-5.3 under stale, replayed and duplicated
//! HELLOs, restarts of one or both sides, and a half-open link. Every test
//! runs several seeds and names the seed in its failure message.

use std::time::Duration;
use strand_link::framing::max_raw_for_encoded;
use strand_link::sim::Node;
use strand_link::sim::{LineConfig, Pair};
use strand_link::{Config, Event, Instant};

type P = Pair<64, 1024>;

const SEEDS: [u64; 3] = [11, 12, 0xfeed];

fn cfg() -> Config {
    Config { min_payload: 16, ..Config::default() }
}

fn line() -> LineConfig {
    LineConfig::clean(2_000_000, Duration::from_millis(2))
}

fn bulk(seed: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64).wrapping_mul(seed | 1).rotate_left(7) as u8).collect()
}

/// The first frame a fresh endpoint of session `seed` sends: its HELLO, as
/// bytes on the wire (leading delimiter included). A dead session leaves
/// such frames in buffers; an attacker can copy one.
fn hello_of(seed: u64) -> Vec<u8> {
    let mut node = Node::new(cfg(), 64, max_raw_for_encoded(1024), Instant::ZERO, seed);
    node.output(Instant::ZERO).expect("a fresh node says hello")
}

fn restarts(ep: &strand_link::sim::Endpoint<64, 1024>) -> usize {
    ep.events.iter().filter(|(_, e)| *e == Event::PeerRestarted).count()
}

/// Streams `len` bytes A -> B with `disturb` called once, a quarter of the
/// way in; returns the pair once B has every byte and the end of stream.
fn stream_with(seed: u64, len: usize, mut disturb: impl FnMut(&mut P)) -> P {
    let mut pair = P::symmetric(cfg(), line(), seed);
    pair.b.stream_channels.insert(1);
    let data = bulk(seed, len);
    pair.a.write_stream(1, data.clone(), true);
    assert!(pair.run_until(Duration::from_secs(30), |p| p.b.stream(1).len() >= len / 4), "seed {seed}");
    disturb(&mut pair);
    assert!(pair.run_until(Duration::from_secs(60), |p| p.b.fin(1)), "seed {seed}: the transfer stalled");
    assert!(pair.b.stream(1) == &data[..], "seed {seed}: the stream differs");
    pair
}

#[test]
fn an_old_hello_injected_mid_transfer_does_not_end_the_session() {
    for seed in SEEDS {
        let old = hello_of(seed ^ 0x0dd);
        let pair = stream_with(seed, 300_000, |p| {
            p.inject_ab(&old);
            p.inject_ba(&old);
        });
        assert_eq!(
            (restarts(&pair.a), restarts(&pair.b)),
            (0, 0),
            "seed {seed}: a live session was torn down"
        );
        let stale = pair.a.stats().stale_hellos + pair.b.stats().stale_hellos;
        assert_eq!(stale, 2, "seed {seed}: both HELLOs recognised as stale");
    }
}

#[test]
fn a_flood_of_stale_hellos_from_dead_sessions_makes_no_restart_storm() {
    for seed in SEEDS {
        let dead: Vec<Vec<u8>> = (0..8).map(|k| hello_of(seed * 100 + k)).collect();
        let mut pair = P::symmetric(cfg(), line(), seed);
        // Before either side speaks, the line already holds a dead session's
        // HELLOs in both directions (left in the OS buffers).
        for h in dead.iter().take(4) {
            pair.inject_ab(h);
            pair.inject_ba(h);
        }
        pair.b.stream_channels.insert(1);
        let data = bulk(seed, 400_000);
        pair.a.write_stream(1, data.clone(), true);
        assert!(pair.run_until(Duration::from_secs(30), |p| p.b.stream(1).len() > 100_000), "seed {seed}");
        // And again mid-transfer, 200 of them, many per millisecond.
        for k in 0..200 {
            pair.inject_ab(&dead[k % dead.len()]);
            pair.inject_ba(&dead[(k + 3) % dead.len()]);
        }
        assert!(pair.run_until(Duration::from_secs(60), |p| p.b.fin(1)), "seed {seed}: stalled");
        assert!(pair.b.stream(1) == &data[..], "seed {seed}: the stream differs");
        assert_eq!((restarts(&pair.a), restarts(&pair.b)), (0, 0), "seed {seed}: restarts");
        // HELLO_ACKs go out at most once per hello_interval: a handful, not hundreds.
        let hellos = |ep: &strand_link::sim::Endpoint<64, 1024>| {
            let s = ep.stats();
            s.frames_tx - s.data_tx - s.retransmits - s.acks_tx
        };
        assert!(
            hellos(&pair.a) < 20 && hellos(&pair.b) < 20,
            "seed {seed}: {} / {}",
            hellos(&pair.a),
            hellos(&pair.b)
        );
    }
}

#[test]
fn a_replayed_hello_of_the_live_peer_is_answered_not_a_restart() {
    for seed in SEEDS {
        let mut pair = P::symmetric(cfg(), line(), seed);
        // A's own HELLO of this session (the pair seeds A with `seed ^ 0xa`).
        let own = hello_of(seed ^ 0xa);
        pair.b.stream_channels.insert(1);
        let data = bulk(seed, 200_000);
        pair.a.write_stream(1, data.clone(), true);
        assert!(pair.run_until(Duration::from_secs(30), |p| p.b.stream(1).len() > 50_000), "seed {seed}");
        for _ in 0..50 {
            pair.inject_ab(&own);
        }
        assert!(pair.run_until(Duration::from_secs(60), |p| p.b.fin(1)), "seed {seed}: stalled");
        assert!(pair.b.stream(1) == &data[..], "seed {seed}");
        assert_eq!((restarts(&pair.a), restarts(&pair.b)), (0, 0), "seed {seed}");
    }
}

#[test]
fn both_sides_restarting_at_once_meet_in_one_new_session() {
    for seed in SEEDS {
        let mut pair = P::symmetric(cfg(), line(), seed);
        pair.a.send(1, b"first".to_vec());
        assert!(pair.run_until(Duration::from_secs(5), |p| p.b.delivered.len() == 1), "seed {seed}");
        // Leave some of the old sessions' frames on the line, then restart both.
        pair.a.send(1, bulk(seed, 20_000));
        pair.b.send(1, bulk(seed + 1, 20_000));
        pair.run_until(Duration::from_millis(30), |_| false);
        pair.restart_a(seed ^ 0xa5a5, cfg());
        pair.restart_b(seed ^ 0x5a5a, cfg());
        pair.a.outbox.clear();
        pair.b.outbox.clear();
        pair.a.send(2, b"after".to_vec());
        let t0 = pair.elapsed();
        assert!(
            pair.run_until(Duration::from_secs(5), |p| p
                .b
                .delivered
                .iter()
                .any(|(c, d)| *c == 2 && d == b"after")),
            "seed {seed}: no new session"
        );
        assert!(pair.elapsed() - t0 < Duration::from_secs(1), "seed {seed}: took {:?}", pair.elapsed() - t0);
        assert_eq!(pair.a.link().peer_session(), Some(pair.b.link().session()), "seed {seed}");
        assert_eq!(pair.b.link().peer_session(), Some(pair.a.link().session()), "seed {seed}");
        assert!(pair.a.stats().peer_restarts + pair.b.stats().peer_restarts <= 1, "seed {seed}");
    }
}

#[test]
fn a_half_open_link_is_recovered_within_a_probation_of_the_restart() {
    for seed in SEEDS {
        let mut pair = P::symmetric(cfg(), line(), seed);
        pair.a.send(1, b"hello".to_vec());
        assert!(pair.run_until(Duration::from_secs(5), |p| p.b.delivered.len() == 1), "seed {seed}");
        // B restarts; A still holds the old session (half open) and stays idle.
        pair.run_until(Duration::from_millis(200), |_| false);
        pair.restart_b(seed ^ 0x77, cfg());
        let t0 = pair.elapsed();
        assert!(
            pair.run_until(Duration::from_secs(5), |p| restarts(&p.a) == 1 && p.a.link().is_connected()),
            "seed {seed}: A never took B's new session"
        );
        // The harness stops at the step after the condition: time it by the event.
        let (at, _) =
            *pair.a.events.iter().rev().find(|(_, e)| matches!(e, Event::Connected { .. })).unwrap();
        let took = Duration::from_micros(at.as_micros()) - t0;
        // The probation: a keepalive interval of silence from the old session.
        let probation: Duration = Config::default().keepalive.into();
        assert!(took <= probation + Duration::from_millis(100), "seed {seed}: {took:?}");
        pair.b.send(3, b"new".to_vec());
        assert!(pair.run_until(Duration::from_secs(5), |p| p.a.delivered.len() == 1), "seed {seed}");
        assert_eq!(pair.a.delivered[0], (3, b"new".to_vec()));
    }
}
