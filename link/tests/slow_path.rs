//! A path slower than anything the link was told (spec 6.8): the host's link
//! over TCP (no line rate known) through a relay that carries 10,000 bytes/s
//! each way, with megabytes of socket buffers in front of it — ser2net before
//! a slow UART, or QEMU's UART. Queueing delay must not be taken for loss.

use std::time::Duration;
use strand_link::sim::{LineConfig, Pair};
use strand_link::Config;

/// The host's link: 256 frames of 8 KiB.
type Host = Pair<256, 8192>;

fn bulk(seed: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 ^ seed).wrapping_mul(0x2545_f491_4f6c_dd1d).rotate_left(11) as u8).collect()
}

#[test]
fn a_path_of_10_000_bytes_per_second_behind_deep_buffers_carries_both_ways() {
    // The 10,000 B/s, a faster relay, and a slow one with latency.
    for (seed, rate, latency) in [(1u64, 10_000u64, 1), (2, 50_000, 1), (3, 4_000, 30)] {
        let mut line = LineConfig::clean(rate * 10, Duration::from_millis(latency));
        line.buffer = 4 << 20; // socket buffers on both sides of the relay
        let mut pair = Host::symmetric(Config::default(), line, seed);
        let len = if rate < 10_000 { 40_000 } else { 100_000 };
        let (ab, ba) = (bulk(seed, len), bulk(seed + 7, len));
        pair.a.write_stream(1, ab.clone(), true);
        pair.b.write_stream(1, ba.clone(), true);
        pair.a.stream_channels.insert(1);
        pair.b.stream_channels.insert(1);
        let line_time = Duration::from_secs_f64(len as f64 / rate as f64);
        let done = pair.run_until(2 * line_time, |p| {
            p.a.fin(1) && p.b.fin(1) && p.a.link().unconfirmed() == 0 && p.b.link().unconfirmed() == 0
        });
        let (sa, sb) = (pair.a.stats(), pair.b.stats());
        assert!(
            done,
            "seed {seed}: not done in {:?}: A got {} B got {}\nA {sa:?}\nB {sb:?}",
            2 * line_time,
            pair.a.stream(1).len(),
            pair.b.stream(1).len()
        );
        assert!(pair.b.stream(1) == &ab[..] && pair.a.stream(1) == &ba[..], "seed {seed}: differs");
        let wire = |s: &strand_link::Stats| s.bytes_tx as f64;
        let resent = |s: &strand_link::Stats| s.retransmitted_bytes as f64 / len as f64;
        eprintln!(
            "seed {seed}: {:.1} s (line time {line_time:?}); A sent {:.0} bytes, payload bytes resent {:.1}% of the payload; B {:.0}, {:.1}%",
            pair.elapsed().as_secs_f64(),
            wire(&sa),
            100.0 * resent(&sa),
            wire(&sb),
            100.0 * resent(&sb)
        );
        assert!(resent(&sa) < 0.05 && resent(&sb) < 0.05, "seed {seed}: retransmissions\nA {sa:?}\nB {sb:?}");
    }
}
