//! The short soak of issue 11: `strand pipe` both ways at once over an emulated 2 Mbit/s line with a
//! seeded mix of interactive-sized writes, bursts up to 256 KiB and idle gaps up to 2 s; fails on any
//! gap of more than 200 ms in delivery while data is pending (the rule is defined in
//! `strand_hil::soak`), on a non-zero exit and on a stream that is not byte-exact.
//! `streambench soak` runs the long version (30 s, also at BER 1e-4).

mod common;

use common::*;
use std::time::Duration;
use strand_hil::soak::{self, Soak, GAP_LIMIT};

#[test]
fn soak_interactive_bursts_and_idle_both_ways() {
    let seed = 11;
    let line = Linkem::start(&["--baud", "2000000", "--latency-ms", "1", "--seed", &seed.to_string()]);
    let logs = tempfile::tempdir().unwrap();
    let outcome = soak::run(&Soak {
        strand: &strand(),
        a: &line.a,
        b: &line.b,
        baud: 2_000_000,
        seed,
        secs: 10.0,
        logs: logs.path(),
        drain: Duration::from_secs(30),
    })
    .unwrap();
    for d in &outcome.directions {
        let worst = d.worst().map_or(0.0, |g| g.secs() * 1000.0);
        eprintln!(
            "seed {seed} {}: {} bytes in {} reads, worst gap while pending {worst:.1} ms",
            d.name, d.received, d.reads
        );
    }
    eprintln!("machine: {}", outcome.machine());
    let failures = outcome.failures();
    let stats: Vec<&str> = outcome.stats.iter().map(|s| s.as_deref().unwrap_or("no --stats line")).collect();
    assert!(
        failures.is_empty(),
        "seed {seed}, gap limit {GAP_LIMIT:?}:\n{}\nA: {}\nB: {}\nmachine: {}",
        failures.join("\n"),
        stats[0],
        stats[1],
        outcome.machine()
    );
}
