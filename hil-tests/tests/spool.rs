//! `strand spool` end to end over `strand linkem` on an emulated noisy 2 Mbit/s line: a real NNCP
//! round trip (`nncp-file` -> `nncp-xfer -tx` -> strand spool -> `nncp-xfer -rx` -> `nncp-toss`,
//! both ways at once), and a sender killed mid-sync and restarted while a consumer empties the
//! receiving spool: nothing lost, nothing delivered twice. The NNCP test reports itself skipped
//! where NNCP is not installed (`.ci/run` installs it).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use strand_hil::nncp;

/// A noisy 2 Mbit/s line, the same for every test here.
fn line(seed: &str) -> Linkem {
    Linkem::start(&["--baud", "2000000", "--ber", "1e-5", "--latency-ms", "1", "--seed", seed])
}

/// `strand spool` on `link` between `out` and `in_dir`, with a JSON summary.
fn spool(link: &Path, out: &Path, in_dir: &Path) -> Running {
    spool_with(link, out, in_dir, &[])
}

fn spool_with(link: &Path, out: &Path, in_dir: &Path, extra: &[&str]) -> Running {
    let mut args = vec![
        "spool",
        link.to_str().unwrap(),
        "--baud",
        "2000000",
        "--connect-timeout",
        "20",
        "--out",
        out.to_str().unwrap(),
        "--in",
        in_dir.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    spawn(&args, None)
}

/// The JSON summary a successful spool printed.
fn summary(o: &Outcome, who: &str) -> serde_json::Value {
    assert!(o.status.success(), "{who}'s spool failed ({:?}): {}", o.status, o.stderr);
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{who}'s summary is not JSON ({e}): {text}"))
}

#[test]
#[cfg_attr(not(have_nncp), ignore = "NNCP is not installed (apt-get install nncp)")]
fn nncp_packets_round_trip_through_strand_spool_on_a_noisy_line() {
    let work = tempfile::tempdir().unwrap();
    let (alice_node, bob_node) = nncp::pair(work.path()).unwrap();
    let (alice, bob) = (alice_node.dir.clone(), bob_node.dir.clone());
    for d in [&alice, &bob] {
        mkdirs(d, &["xfer-out", "xfer-in"]);
    }
    let (ca, cb) = (alice_node.cfg.clone(), bob_node.cfg.clone());
    let (to_bob, to_alice) = (data(21, 300_000), data(22, 120_000));
    std::fs::write(work.path().join("report.bin"), &to_bob).unwrap();
    std::fs::write(work.path().join("reply.bin"), &to_alice).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    nncp(&["nncp-file", &path(&work.path().join("report.bin")), "bob:"], &ca);
    nncp(&["nncp-file", &path(&work.path().join("reply.bin")), "alice:"], &cb);
    // The sneakernet step, into the directories strand spool carries.
    nncp(&["nncp-xfer", "-tx", "-mkdir", &path(&alice.join("xfer-out"))], &ca);
    nncp(&["nncp-xfer", "-tx", "-mkdir", &path(&bob.join("xfer-out"))], &cb);
    let queued_a = packets(&alice.join("xfer-out"));
    let queued_b = packets(&bob.join("xfer-out"));
    assert_eq!((queued_a.len(), queued_b.len()), (1, 1), "nncp-xfer -tx wrote one packet each");

    let line = line("31");
    let a = spool(&line.a, &alice.join("xfer-out"), &alice.join("xfer-in"));
    let b = spool(&line.b, &bob.join("xfer-out"), &bob.join("xfer-in"));
    let (a, b) = (a.finish(Duration::from_secs(60)), b.finish(Duration::from_secs(60)));
    let (sa, sb) = (summary(&a, "alice"), summary(&b, "bob"));
    for (s, sent, received) in [(&sa, 300_000, 120_000), (&sb, 120_000, 300_000)] {
        assert_eq!(s["command"], "spool");
        assert_eq!((s["packets_sent"].as_u64(), s["packets_received"].as_u64()), (Some(1), Some(1)), "{s}");
        // Packets are the files plus NNCP's headers and encryption.
        let (bs, br) = (s["bytes_sent"].as_u64().unwrap(), s["bytes_received"].as_u64().unwrap());
        assert!(bs > sent && bs < sent + 4096 && br > received && br < received + 4096, "{s}");
    }
    assert!(packets(&alice.join("xfer-out")).is_empty(), "alice's packet left her spool once confirmed");
    assert!(packets(&bob.join("xfer-out")).is_empty(), "bob's packet left his spool once confirmed");
    assert_eq!(packets(&bob.join("xfer-in")), queued_a, "the packet arrived under the same path, intact");
    assert_eq!(packets(&alice.join("xfer-in")), queued_b);

    // NNCP's own tools take it from there.
    nncp(&["nncp-xfer", "-rx", &path(&bob.join("xfer-in"))], &cb);
    nncp(&["nncp-toss"], &cb);
    nncp(&["nncp-xfer", "-rx", &path(&alice.join("xfer-in"))], &ca);
    nncp(&["nncp-toss"], &ca);
    let got = std::fs::read(bob.join("in/report.bin")).expect("report.bin reached bob's incoming directory");
    assert_eq!(hash(&got), hash(&to_bob));
    let got =
        std::fs::read(alice.join("in/reply.bin")).expect("reply.bin reached alice's incoming directory");
    assert_eq!(hash(&got), hash(&to_alice));
    assert!(packets(&bob.join("xfer-in")).is_empty(), "nncp-xfer -rx took the packet");
}

#[test]
fn spool_killed_mid_sync_and_restarted_loses_and_duplicates_nothing() {
    let work = tempfile::tempdir().unwrap();
    let dirs = mkdirs(work.path(), &["a-out", "a-in", "b-out", "b-in", "consumed"]);
    let (a_out, a_in, b_out, b_in, consumed) = (&dirs[0], &dirs[1], &dirs[2], &dirs[3], &dirs[4]);
    let mut sent = BTreeMap::new();
    for i in 0..4u64 {
        let name = format!("BOBNODE/ALICENODE/PACKET{i}");
        let content = data(40 + i, 200_000);
        std::fs::create_dir_all(a_out.join(&name).parent().unwrap()).unwrap();
        std::fs::write(a_out.join(&name), &content).unwrap();
        sent.insert(name, content);
    }
    let reply = ("ALICENODE/BOBNODE/REPLY".to_string(), data(50, 30_000));
    std::fs::create_dir_all(b_out.join("ALICENODE/BOBNODE")).unwrap();
    std::fs::write(b_out.join(&reply.0), &reply.1).unwrap();

    let line = line("32");
    let b = spool(&line.b, b_out, b_in);
    let a = spool(&line.a, a_out, a_in);
    // Kill alice once bob has placed a packet and is part way into the next one.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let placed = packets(b_in).len();
        let partial = std::fs::read_dir(b_in.join(".strand-partial"))
            .map(|d| d.filter_map(|e| e.ok()).any(|e| e.metadata().is_ok_and(|m| m.len() > 10_000)))
            .unwrap_or(false);
        if placed >= 1 && partial {
            break;
        }
        assert!(Instant::now() < deadline, "no packet arrived in time");
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = a.kill();
    assert!(!killed.status.success());
    // A consumer (nncp-xfer -rx) empties bob's spool before alice comes back.
    for (name, _) in packets(b_in) {
        let to = consumed.join(&name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(b_in.join(&name), to).unwrap();
    }
    let left = packets(a_out).len();
    assert!((1..4).contains(&left), "alice was killed mid-sync ({left} of 4 packets left)");

    let a = spool(&line.a, a_out, a_in);
    let (a, b) = (a.finish(Duration::from_secs(60)), b.finish(Duration::from_secs(60)));
    summary(&a, "restarted alice");
    summary(&b, "bob");
    assert!(packets(a_out).is_empty(), "every packet left alice's spool");
    let (early, late) = (packets(consumed), packets(b_in));
    for name in early.keys() {
        assert!(!late.contains_key(name), "{name} was delivered twice (consumed, then again)");
    }
    let mut all = early;
    all.extend(late);
    assert_eq!(all.keys().collect::<Vec<_>>(), sent.keys().collect::<Vec<_>>(), "every packet arrived");
    for (name, content) in &sent {
        assert_eq!(hash(&all[name]), hash(content), "{name} intact");
    }
    assert_eq!(packets(a_in), BTreeMap::from([reply]), "bob's packet reached alice once");
    assert!(packets(b_out).is_empty());
}

#[test]
fn ordered_spool_numbers_packets_across_sessions() {
    let work = tempfile::tempdir().unwrap();
    let dirs = mkdirs(work.path(), &["a-out", "a-in", "b-out", "b-in"]);
    let (a_out, a_in, b_out, b_in) = (&dirs[0], &dirs[1], &dirs[2], &dirs[3]);
    let put = |name: &str, seed: u64| {
        let p = a_out.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data(seed, 20_000)).unwrap();
        // Spooled in this order: mtimes a second apart.
        let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seed);
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
    };
    put("Q/first", 1);
    put("Q/second", 2);
    let line = line("33");
    let session = || {
        let b = spool_with(&line.b, b_out, b_in, &["--ordered"]);
        let a = spool_with(&line.a, a_out, a_in, &["--ordered"]);
        let (a, b) = (a.finish(Duration::from_secs(60)), b.finish(Duration::from_secs(60)));
        summary(&a, "alice");
        summary(&b, "bob");
    };
    session();
    put("Q/third", 3);
    session();
    let got: Vec<String> = packets(b_in).into_keys().collect();
    assert_eq!(got, ["Q/000000000001.first", "Q/000000000002.second", "Q/000000000003.third"]);
    assert_eq!(packets(&b_in.join("Q"))["000000000003.third"], data(3, 20_000));
    assert!(packets(a_out).is_empty());
}
