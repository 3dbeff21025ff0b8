//! `strand diode-tx --spool` and `strand diode-rx --spool`: an nncp-xfer spool carried one way, as
//! processes over a one-way `strand linkem` line and over UDP. A real NNCP round trip
//! (`nncp-file` -> `nncp-xfer -tx` -> diode-tx --spool -> one-way line -> diode-rx --spool ->
//! `nncp-xfer -rx` -> `nncp-toss`), then the same packets sent again after NNCP took them: not
//! placed twice. A receiver killed mid-carousel and restarted while a consumer empties its spool
//! and a new packet appears: every packet once. Names that are not packets refused;
//! `--remove-sent`. The NNCP test reports itself skipped where NNCP is not installed.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes `bytes` at `rel` below `dir`, creating directories.
fn put(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A free UDP port on loopback (bound, then released for the process that takes it).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Bytes held in a receiver's work files (objects in progress).
fn in_progress(dir: &Path) -> u64 {
    let Ok(objects) = std::fs::read_dir(dir.join(".strand-diode")) else { return 0 };
    objects
        .flatten()
        .flat_map(|o| ["spool", "part"].map(|f| std::fs::metadata(o.path().join(f)).map_or(0, |m| m.len())))
        .sum()
}

/// Moves every packet of `from` to the same path below `to`, as a consumer (`nncp-xfer -rx`) takes
/// them away; returns their names.
fn consume(from: &Path, to: &Path) -> Vec<String> {
    let names: Vec<String> = packets(from).into_keys().collect();
    for name in &names {
        let dest = to.join(name);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::rename(from.join(name), dest).unwrap();
    }
    names
}

fn sigterm(pid: u32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
}

#[test]
#[cfg_attr(not(have_nncp), ignore = "NNCP is not installed (apt-get install nncp)")]
fn nncp_packets_cross_a_one_way_line_and_are_not_placed_again_once_taken() {
    let work = tempfile::tempdir().unwrap();
    let (alice_node, bob_node) = strand_hil::nncp::pair(work.path()).unwrap();
    let (alice, bob) = (alice_node.dir.clone(), bob_node.dir.clone());
    let out = mkdirs(&alice, &["xfer-out"]).remove(0);
    let inbox = mkdirs(&bob, &["xfer-in"]).remove(0);
    let (ca, cb) = (alice_node.cfg.clone(), bob_node.cfg.clone());
    let (report, note) = (data(61, 300_000), data(62, 2_000));
    std::fs::write(work.path().join("report.bin"), &report).unwrap();
    std::fs::write(work.path().join("note.txt"), &note).unwrap();
    nncp(&["nncp-file", s(&work.path().join("report.bin")), "bob:"], &ca);
    nncp(&["nncp-file", s(&work.path().join("note.txt")), "bob:"], &ca);
    nncp(&["nncp-xfer", "-tx", "-mkdir", s(&out)], &ca);
    let queued = packets(&out);
    assert_eq!(queued.len(), 2, "nncp-xfer -tx wrote a packet per file");

    // A one-way 2 Mbit/s line with bit errors: nothing written on B reaches A.
    let line = Linkem::start(&["--baud", "2000000", "--ber", "1e-5", "--one-way", "--seed", "61"]);
    let carry = |what: &str| {
        let rx = spawn(
            &["diode-rx", s(&line.b), "--baud", "2000000", "--spool", s(&inbox), "--exit-when-complete"],
            None,
        );
        std::thread::sleep(Duration::from_millis(300));
        let tx = spawn(&["diode-tx", s(&line.a), "--baud", "2000000", "--spool", s(&out), "--forever"], None);
        let got = rx.finish(Duration::from_secs(90));
        let sent = tx.kill();
        assert!(got.status.success(), "{what}: diode-rx failed ({:?}):\n{}", got.status, got.stderr);
        assert!(sent.stderr.contains("2 object(s)"), "{what}: {}", sent.stderr);
        got
    };
    carry("first");
    assert_eq!(packets(&inbox), queued, "the packets arrived under their paths, intact");
    assert_eq!(packets(&out), queued, "nothing comes back: the sender keeps its packets");

    nncp(&["nncp-xfer", "-rx", s(&inbox)], &cb);
    nncp(&["nncp-toss"], &cb);
    assert!(packets(&inbox).is_empty(), "nncp-xfer -rx took the packets");
    assert_eq!(hash(&std::fs::read(bob.join("in/report.bin")).unwrap()), hash(&report));
    assert_eq!(std::fs::read(bob.join("in/note.txt")).unwrap(), note);

    // The sender, knowing nothing, sends them again: the receiver's journal knows them.
    let again = carry("again");
    assert!(again.stderr.contains("was received before"), "{}", again.stderr);
    assert!(packets(&inbox).is_empty(), "a packet NNCP took was placed a second time");
    nncp(&["nncp-xfer", "-rx", s(&inbox)], &cb);
    nncp(&["nncp-toss"], &cb);
    let delivered: Vec<String> = packets(&bob.join("in")).into_keys().collect();
    assert_eq!(delivered, ["note.txt", "report.bin"], "each file delivered once");
}

#[test]
fn a_receiver_restarted_mid_carousel_places_each_packet_once() {
    let work = tempfile::tempdir().unwrap();
    let dirs = mkdirs(work.path(), &["a", "b", "consumed"]);
    let (a, b, consumed) = (&dirs[0], &dirs[1], &dirs[2]);
    let mut sent = BTreeMap::new();
    for i in 0..3u64 {
        let name = format!("BOBNODE/ALICENODE/PACKET{i}");
        let content = data(70 + i, 600_000);
        put(a, &name, &content);
        sent.insert(name, content);
    }
    // Not packets: never sent.
    put(a, "BOBNODE/ALICENODE/nncpxfer1234", b"nncp-xfer -tx is writing this");
    put(a, "BOBNODE/ALICENODE/.partial", b"hidden");
    put(a, "A/B/C/too-deep", b"four levels");
    std::os::unix::fs::symlink("/etc/passwd", a.join("BOBNODE/ALICENODE/link")).unwrap();

    let port = free_udp_port();
    let listen = format!("udp-listen:127.0.0.1:{port}");
    let rx_args = ["diode-rx", &listen, "--spool", s(b)];
    let rx = spawn(&rx_args, None);
    std::thread::sleep(Duration::from_millis(300));
    // 4 Mbit/s: a pass over 1.8 MB takes about 4 s.
    let target = format!("udp:127.0.0.1:{port}");
    let tx = spawn(&["diode-tx", &target, "--spool", s(a), "--forever", "--rate", "4000000"], None);
    let deadline = Instant::now() + Duration::from_secs(40);
    while packets(b).is_empty() || in_progress(b) < 100_000 {
        assert!(Instant::now() < deadline, "no packet arrived in time");
        std::thread::sleep(Duration::from_millis(10));
    }
    let first = rx.kill();
    assert!(!first.status.success());
    // A consumer empties the spool while the receiver is down, and a new packet is queued.
    let early = consume(b, consumed);
    assert!((1..3).contains(&early.len()), "killed mid-pass: {early:?}");
    let late = ("BOBNODE/ALICENODE/PACKET3".to_string(), data(73, 50_000));
    put(a, &late.0, &late.1);
    sent.insert(late.0.clone(), late.1.clone());

    let rx = spawn(&rx_args, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    let all = |b: &Path| {
        let mut got = packets(consumed);
        got.extend(packets(b));
        got
    };
    while all(b).len() < sent.len() {
        assert!(Instant::now() < deadline, "not every packet arrived: {:?}", all(b).keys());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Another pass or two of the carousel: what was consumed is sent again, and not placed.
    std::thread::sleep(Duration::from_secs(6));
    sigterm(rx.id());
    let second = rx.finish(Duration::from_secs(10));
    let tx = tx.kill();
    assert_eq!(second.status.code(), Some(0), "{}", second.stderr);
    assert!(tx.stderr.contains("the spool changed"), "the new packet started a new session:\n{}", tx.stderr);
    let placed = packets(b);
    for name in &early {
        assert!(!placed.contains_key(name), "{name} was placed twice (consumed, then again)");
    }
    assert_eq!(all(b), sent, "every packet arrived once, intact, and nothing else");
    assert!(second.stderr.contains("symbols restored"), "the partial packet was resumed:\n{}", second.stderr);
    assert!(a.join("BOBNODE/ALICENODE/PACKET0").exists(), "the sender keeps its packets");
}

#[test]
fn names_that_are_not_packets_are_refused_and_remove_sent_deletes_what_was_sent() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // A plain diode-tx of a tree sends names a spool must not take.
    put(&w.join("tree"), "R/S/ok", b"a packet");
    put(&w.join("tree"), "A/B/C/D", b"four levels");
    put(&w.join("tree"), "R/.hidden/x", b"hidden");
    let stream = w.join("tree.strand");
    let tx = spawn(&["diode-tx", s(&stream), s(&w.join("tree"))], None).finish(Duration::from_secs(30));
    assert!(tx.status.success(), "{}", tx.stderr);
    let b = w.join("b");
    let rx = spawn(&["diode-rx", s(&stream), "--spool", s(&b)], None).finish(Duration::from_secs(30));
    assert_eq!(rx.status.code(), Some(1), "a refused name is an error:\n{}", rx.stderr);
    assert!(rx.stderr.contains("\"A/B/C/D\" is not a spool packet's name"), "{}", rx.stderr);
    assert_eq!(packets(&b).into_keys().collect::<Vec<_>>(), ["R/S/ok"]);
    assert!(!b.join("R/.hidden").exists() && !b.join("A").exists());

    // One batch of two passes, then the packets go; nncp-xfer's file in the making stays.
    let a = w.join("a");
    put(&a, "R/S/P1", &data(81, 40_000));
    put(&a, "R/S/P2", &data(82, 1_000));
    put(&a, "R/S/nncpxfer77", b"in the making");
    let stream = w.join("batch.strand");
    let tx = spawn(&["diode-tx", s(&stream), "--spool", s(&a), "--remove-sent", "--rounds", "2"], None)
        .finish(Duration::from_secs(30));
    assert!(tx.status.success(), "{}", tx.stderr);
    assert!(tx.stderr.contains("2 packet(s) removed"), "{}", tx.stderr);
    assert_eq!(packets(&a).into_keys().collect::<Vec<_>>(), ["R/S/nncpxfer77"]);
    let b2 = w.join("b2");
    let rx = spawn(&["diode-rx", s(&stream), "--spool", s(&b2)], None).finish(Duration::from_secs(30));
    assert!(rx.status.success(), "{}", rx.stderr);
    assert_eq!(packets(&b2).into_keys().collect::<Vec<_>>(), ["R/S/P1", "R/S/P2"]);
    assert_eq!(packets(&b2)["R/S/P1"], data(81, 40_000));

    // An empty spool: nothing to send, and that is no error.
    let tx = spawn(&["diode-tx", s(&w.join("empty.strand")), "--spool", s(&b2.join("R/S/none"))], None)
        .finish(Duration::from_secs(30));
    assert_eq!(tx.status.code(), Some(1), "a missing spool directory is an error:\n{}", tx.stderr);
    std::fs::create_dir_all(w.join("nothing")).unwrap();
    let tx = spawn(&["diode-tx", s(&w.join("empty.strand")), "--spool", s(&w.join("nothing"))], None)
        .finish(Duration::from_secs(30));
    assert!(tx.status.success() && tx.stderr.contains("nothing to send"), "{}", tx.stderr);
    // A carousel has no last pass to count.
    let tx = spawn(&["diode-tx", s(&stream), "--spool", s(&a), "--forever", "--rounds", "2"], None)
        .finish(Duration::from_secs(30));
    assert_eq!(tx.status.code(), Some(2), "{}", tx.stderr);

    // One receiver per spool directory: once the first holds the lock, a second is refused.
    let port = free_udp_port();
    let listen = format!("udp-listen:127.0.0.1:{port}");
    let holder = spawn(&["diode-rx", &listen, "--spool", s(&b2)], None);
    let lock = b2.join(".strand-spool/lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let f = std::fs::File::open(&lock).unwrap();
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Err(_) => break,
            Ok(ours) => drop(ours),
        }
        assert!(Instant::now() < deadline, "the first receiver never locked its spool");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = spawn(&["diode-rx", s(&stream), "--spool", s(&b2)], None).finish(Duration::from_secs(30));
    assert_eq!(second.status.code(), Some(1), "{}", second.stderr);
    assert!(second.stderr.contains("is using it"), "{}", second.stderr);
    holder.kill();
}
