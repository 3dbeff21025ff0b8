//! End-to-end delivery of byte streams (spec 8.3): "acknowledged" is not
//! "written". The sender's count of unconfirmed bytes falls only as the
//! receiving application reports bytes written, confirmations lost on the
//! line are recovered, and a reset arrives after every byte sent before it.

use std::time::Duration;
use strand_link::sim::{LineConfig, Pair};
use strand_link::{Config, Instant};

type P = Pair<64, 1024>;

const SEEDS: [u64; 3] = [21, 22, 0xbeef];

fn cfg() -> Config {
    Config { min_payload: 16, ..Config::default() }
}

fn bulk(seed: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 ^ seed).wrapping_mul(0x9e37_79b9) as u8).collect()
}

#[test]
fn acknowledged_bytes_stay_unconfirmed_until_the_receiver_writes_them() {
    for seed in SEEDS {
        let line = LineConfig::clean(2_000_000, Duration::from_millis(2));
        let mut pair = P::symmetric(cfg(), line, seed);
        pair.b.stream_channels.insert(1);
        pair.b.confirm_writes = false; // B's output is stuck
        let data = bulk(seed, 50_000);
        pair.a.write_stream(1, data.clone(), true);
        assert!(pair.run_until(Duration::from_secs(10), |p| p.b.fin(1)), "seed {seed}");
        pair.run_until(Duration::from_millis(500), |_| false);
        assert!(pair.a.link().is_send_idle(), "seed {seed}: everything is acknowledged");
        assert_eq!(pair.a.link().stream_unconfirmed(1), 50_001, "seed {seed}: but nothing is written");
        // B's output drains: the count comes back without any new data.
        let now = Instant::from_micros(pair.elapsed().as_micros() as u64);
        pair.b.confirm_held(now);
        assert!(pair.run_until(Duration::from_secs(5), |p| p.a.link().unconfirmed() == 0), "seed {seed}");
        assert!(pair.b.stream(1) == &data[..], "seed {seed}");
    }
}

#[test]
fn confirmations_on_a_lossy_return_path_all_come_back() {
    for seed in SEEDS {
        // The return path loses whole bytes, so some ACKs (and the written
        // counts they carry) never arrive; the sender's POLL brings them back.
        let ab = LineConfig::clean(2_000_000, Duration::from_millis(2));
        let ba = LineConfig { drop_rate: 3e-3, ..ab.clone() };
        let mut pair = P::new(cfg(), ab, ba, seed);
        pair.b.stream_channels.insert(1);
        for round in 0..5u64 {
            let data = bulk(seed + round, 3_000);
            pair.a.write_stream(1, data, round == 4);
            assert!(
                pair.run_until(Duration::from_secs(20), |p| {
                    let (_, taken, fin) = &p.a.stream_out[&1];
                    *taken == 3_000 && !fin && p.a.link().unconfirmed() == 0 && p.a.link().is_send_idle()
                }),
                "seed {seed} round {round}: unconfirmed {}",
                pair.a.link().unconfirmed()
            );
        }
        assert_eq!(pair.b.stream(1).len(), 15_000, "seed {seed}");
        assert!(pair.b.fin(1), "seed {seed}");
    }
}

#[test]
fn a_lost_last_confirmation_is_asked_for_within_a_timeout_not_a_keepalive() {
    for seed in SEEDS {
        let line = LineConfig::clean(2_000_000, Duration::from_millis(2));
        let mut pair = P::symmetric(cfg(), line, seed);
        pair.b.stream_channels.insert(1);
        pair.b.confirm_writes = false;
        pair.a.write_stream(1, bulk(seed, 20_000), true);
        assert!(
            pair.run_until(Duration::from_secs(10), |p| p.b.fin(1) && p.a.link().is_send_idle()),
            "seed {seed}"
        );
        pair.run_until(Duration::from_millis(100), |_| false);
        // The ACK carrying B's only confirmation is lost in a short outage.
        let t = pair.elapsed();
        pair.set_outages_ba(vec![(t, t + Duration::from_millis(10))]);
        pair.b.confirm_held(Instant::from_micros(t.as_micros() as u64));
        pair.run_until(Duration::from_millis(20), |_| false);
        assert_eq!(pair.a.link().unconfirmed(), 20_001, "seed {seed}: the confirmation was lost");
        assert!(
            pair.run_until(Duration::from_millis(400), |p| p.a.link().unconfirmed() == 0),
            "seed {seed}: still {} unconfirmed",
            pair.a.link().unconfirmed()
        );
        assert!(pair.a.stats().confirm_polls >= 1, "seed {seed}: recovered by a POLL");
    }
}

#[test]
fn a_reset_arrives_after_every_byte_sent_before_it_and_ends_the_stream() {
    for seed in SEEDS {
        let line = LineConfig::clean(2_000_000, Duration::from_millis(2)).with_ber(1e-5);
        let mut pair = P::symmetric(cfg(), line, seed);
        pair.b.stream_channels.insert(1);
        let data = bulk(seed, 400_000);
        pair.a.write_stream(1, data.clone(), true);
        assert!(pair.run_until(Duration::from_secs(30), |p| p.b.stream(1).len() > 100_000), "seed {seed}");
        // A's application is interrupted: what it handed over but the core has
        // not sent is dropped, and a reset with the reason goes out.
        let taken = pair.a.stream_out[&1].1 as u64;
        pair.a.stream_out.clear();
        assert!(pair.a.link_mut().abort_stream(1, b"\x01interrupted"));
        assert!(pair.run_until(Duration::from_secs(30), |p| p.b.resets.contains_key(&1)), "seed {seed}");
        assert_eq!(pair.b.resets[&1], b"\x01interrupted", "seed {seed}");
        let got = pair.b.stream(1).len();
        assert!(!pair.b.fin(1), "seed {seed}: a reset is not an end of stream");
        assert!(got < data.len() && pair.b.stream(1) == &data[..got], "seed {seed}: a prefix, in order");
        // What B wrote is exactly what A sees confirmed; the rest is not.
        assert!(pair.run_until(Duration::from_secs(5), |p| p.a.link().is_send_idle()), "seed {seed}");
        pair.run_until(Duration::from_millis(300), |_| false);
        assert!(taken > got as u64, "seed {seed}: some bytes were queued and dropped");
        assert_eq!(pair.a.link().unconfirmed(), taken - got as u64, "seed {seed}");
    }
}
