//! The summary every data command ends with: a line on stderr (what moved, bytes, time, rate,
//! retransmissions, FEC repairs), or with `--json` one JSON object on stdout, for a failure too.
//! (`spool --json` is checked in spool.rs, `list --json` in terminal.rs.)

mod common;

use common::*;
use std::time::Duration;

fn json(o: &Outcome) -> serde_json::Value {
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {text:?}"))
}

#[test]
fn send_and_recv_summaries_as_lines_and_as_json() {
    let line = Linkem::start(&["--baud", "2000000", "--ber", "1e-5", "--seed", "51"]);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let file = work.path().join("doc.bin");
    std::fs::write(&file, data(51, 300_000)).unwrap();
    let (a, b) = (line.a.to_str().unwrap(), line.b.to_str().unwrap());
    let (f, o) = (file.to_str().unwrap(), out.to_str().unwrap());

    let rx = spawn(&["recv", b, "--baud", "2000000", "--dir", o], None);
    let tx = spawn(&["send", a, "--baud", "2000000", f], None);
    let (tx, rx) = (tx.finish(Duration::from_secs(60)), rx.finish(Duration::from_secs(60)));
    assert!(tx.status.success() && rx.status.success(), "{} / {}", tx.stderr, rx.stderr);
    let sent = tx.stderr.lines().last().unwrap_or_default();
    assert!(sent.starts_with("strand send: sent 1 file; 293.0 KiB in "), "{sent}");
    assert!(
        sent.contains(" KiB/s); ")
            && sent.contains(" retransmissions, ")
            && sent.ends_with(" symbols repaired by FEC"),
        "{sent}"
    );
    let received = rx.stderr.lines().last().unwrap_or_default();
    assert!(received.starts_with("strand recv: received 1 file; 293.0 KiB in "), "{received}");
    assert!(!received.contains("resumed"), "nothing was resumed: {received}");
    assert!(tx.stdout.is_empty() && rx.stdout.is_empty(), "lines go to stderr");

    // The same file again, with --json: the receiver has it already.
    let rx = spawn(&["recv", b, "--baud", "2000000", "--dir", o, "--json"], None);
    let tx = spawn(&["send", a, "--baud", "2000000", f, "--json"], None);
    let (tx, rx) = (tx.finish(Duration::from_secs(60)), rx.finish(Duration::from_secs(60)));
    assert!(tx.status.success() && rx.status.success(), "{} / {}", tx.stderr, rx.stderr);
    let (s, r) = (json(&tx), json(&rx));
    assert_eq!((s["command"].as_str(), s["ok"].as_bool()), (Some("send"), Some(true)), "{s}");
    assert_eq!((s["files"].as_u64(), s["bytes_sent"].as_u64()), (Some(1), Some(0)), "{s}");
    assert_eq!(s["bytes_already_there"].as_u64(), Some(300_000), "{s}");
    assert!(s["seconds"].as_f64().is_some_and(|t| t > 0.0) && s["link"]["retransmissions"].is_u64(), "{s}");
    assert_eq!((r["command"].as_str(), r["files"].as_u64()), (Some("recv"), Some(0)), "{r}");
    assert_eq!(r["files_already_here"].as_u64(), Some(1), "{r}");
    assert!(r["link"]["fec_symbols_repaired"].is_u64(), "{r}");
}

#[test]
fn a_failure_is_json_too() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "52"]);
    let work = tempfile::tempdir().unwrap();
    let o = work.path().to_str().unwrap();
    // Nobody at the other end.
    let rx = spawn(&["recv", line.b.to_str().unwrap(), "--connect-timeout", "1", "--dir", o, "--json"], None);
    let rx = rx.finish(Duration::from_secs(20));
    assert_eq!(rx.status.code(), Some(1), "{}", rx.stderr);
    let v = json(&rx);
    assert_eq!(
        (v["command"].as_str(), v["ok"].as_bool(), v["exit_status"].as_u64()),
        (Some("recv"), Some(false), Some(1))
    );
    assert!(v["error"].as_str().is_some_and(|e| e.contains("no strand peer answered")), "{v}");
    assert!(rx.stderr.starts_with("strand: no strand peer answered"), "the one line stays: {}", rx.stderr);
}

#[test]
fn stats_interval_prints_json_lines_while_a_forwarder_runs() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "53"]);
    let a =
        spawn(&["forward", line.a.to_str().unwrap(), "--baud", "2000000", "--stats-interval", "0.2"], None);
    let b = spawn(&["forward", line.b.to_str().unwrap(), "--baud", "2000000"], None);
    std::thread::sleep(Duration::from_millis(1500));
    let (a, _) = (a.kill(), b.kill());
    let lines: Vec<serde_json::Value> = a
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "a line every 0.2 s for 1.5 s: {}", a.stderr);
    let frames: Vec<u64> = lines.iter().map(|v| v["link"]["frames_received"].as_u64().unwrap()).collect();
    assert!(frames.windows(2).all(|w| w[0] <= w[1]) && frames.last() > Some(&0), "{frames:?}");
    let secs: Vec<f64> = lines.iter().map(|v| v["seconds"].as_f64().unwrap()).collect();
    assert!(secs.windows(2).all(|w| w[0] < w[1]), "{secs:?}");
}
