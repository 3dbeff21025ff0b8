//! Real serial hardware, when attached: two ports cross-wired (TX to RX both
//! ways, ground to ground), e.g. two USB-serial adapters with a null-modem
//! cable, named by environment variables:
//!
//! ```sh
//! STRAND_TEST_PORT_A=/dev/ttyUSB0 STRAND_TEST_PORT_B=/dev/ttyUSB1 \
//!   STRAND_TEST_BAUD=2000000 cargo test -p strand-hil --test hardware
//! ```
//!
//! Without them (when the tests are built) each test is ignored, and the summary says why; run with
//! `--include-ignored` to try anyway. Built with them but run without, a test says it was skipped.

mod common;

use common::*;
use std::time::Duration;

fn ports() -> Option<(String, String, String)> {
    let a = std::env::var("STRAND_TEST_PORT_A").ok()?;
    let b = std::env::var("STRAND_TEST_PORT_B").ok()?;
    let baud = std::env::var("STRAND_TEST_BAUD").unwrap_or_else(|_| "2000000".into());
    Some((a, b, baud))
}

fn skipped(test: &str) {
    skip_at_run_time(
        test,
        "hardware",
        "no hardware attached (set STRAND_TEST_PORT_A and STRAND_TEST_PORT_B to two cross-wired ports)",
    );
}

#[test]
#[cfg_attr(
    not(have_hw_ports),
    ignore = "no hardware attached: set STRAND_TEST_PORT_A and STRAND_TEST_PORT_B"
)]
fn pipe_across_a_real_cable() {
    let Some((a, b, baud)) = ports() else { return skipped("pipe_across_a_real_cable") };
    let (ab, ba) = (data(11, 4 << 20), data(12, 1 << 20));
    let pa = spawn(&["pipe", &a, "--baud", &baud, "--stats"], Some(ab.clone()));
    let pb = spawn(&["pipe", &b, "--baud", &baud, "--stats"], Some(ba.clone()));
    let (oa, ob) = (pa.finish(Duration::from_secs(300)), pb.finish(Duration::from_secs(300)));
    eprintln!("A: {}\nB: {}", oa.stderr.trim(), ob.stderr.trim());
    assert!(oa.status.success() && ob.status.success());
    assert_eq!(hash(&ob.stdout), hash(&ab));
    assert_eq!(hash(&oa.stdout), hash(&ba));
}

#[test]
#[cfg_attr(
    not(have_hw_ports),
    ignore = "no hardware attached: set STRAND_TEST_PORT_A and STRAND_TEST_PORT_B"
)]
fn send_recv_across_a_real_cable() {
    let Some((a, b, baud)) = ports() else { return skipped("send_recv_across_a_real_cable") };
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let content = data(13, 8 << 20);
    let file = work.path().join("cable.bin");
    std::fs::write(&file, &content).unwrap();
    let rx = spawn(&["recv", &b, "--baud", &baud, "--dir", out.to_str().unwrap()], None);
    let tx = spawn(&["send", &a, "--baud", &baud, "--stats", file.to_str().unwrap()], None);
    let (ot, or) = (tx.finish(Duration::from_secs(600)), rx.finish(Duration::from_secs(600)));
    eprintln!("{}", ot.stderr.trim());
    assert!(ot.status.success() && or.status.success(), "{} / {}", ot.stderr, or.stderr);
    assert_eq!(hash(&std::fs::read(out.join("cable.bin")).unwrap()), hash(&content));
}
