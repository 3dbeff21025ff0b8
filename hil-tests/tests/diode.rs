//! End-to-end one-way transfer: `strand diode-tx` and `strand diode-rx` as
//! processes over a one-way `strand linkem` line, over UDP through a lossy
//! relay, and through a damaged stream file; a receiver restarted mid-transfer
//! and a receiver with the wrong key. Every random element is seeded and the
//! seed is printed on failure.

mod common;

use common::*;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A source tree: a 256 KiB random file and a small one in a subdirectory.
fn source_tree(seed: u64) -> (tempfile::TempDir, Vec<(&'static str, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let files = vec![("big.bin", data(seed, 256 * 1024)), ("sub/small.txt", data(seed + 1, 1234))];
    for (name, bytes) in &files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    (dir, files)
}

fn check_delivered(out: &Path, files: &[(&str, Vec<u8>)], seed: u64) {
    for (name, bytes) in files {
        let got = std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("seed {seed}: {name}: {e}"));
        assert_eq!(hash(&got), hash(bytes), "seed {seed}: {name} differs");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A free UDP port on loopback (bound, then released for the process that takes it).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The number before `what` in a line of `text` ("... 12 failed authentication").
fn count_before(text: &str, what: &str) -> Option<u64> {
    let at = text.find(what)?;
    text[..at].split_whitespace().last()?.parse().ok()
}

#[test]
fn one_way_serial_line_at_2_mbit_with_bit_errors() {
    let seed = 11;
    let line =
        Linkem::start(&["--baud", "2000000", "--ber", "1e-5", "--one-way", "--seed", &seed.to_string()]);
    let (src, files) = source_tree(seed);
    let out = tempfile::tempdir().unwrap();
    let rx = spawn(
        &["diode-rx", s(&line.b), "--dir", s(out.path()), "--baud", "2000000", "--exit-when-complete"],
        None,
    );
    std::thread::sleep(Duration::from_millis(300));
    let tx = spawn(&["diode-tx", s(&line.a), s(src.path()), "--baud", "2000000", "--forever"], None);
    let or = rx.finish(Duration::from_secs(90));
    tx.kill();
    assert!(or.status.success(), "seed {seed}: diode-rx failed ({:?}):\n{}", or.status, or.stderr);
    check_delivered(out.path(), &files, seed);
}

/// Relays datagrams from `from` to `to`, dropping 10%, duplicating 5% and
/// holding 10% back to send after a few later ones (reordering).
fn lossy_relay(from: UdpSocket, to: u16, seed: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut rng = Pcg64::seed_from_u64(seed);
        from.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let dest = ("127.0.0.1", to);
        let mut held: Vec<(Vec<u8>, u32)> = Vec::new();
        let mut buf = vec![0u8; 65536];
        let mut relayed = 0;
        while !stop.load(Ordering::Relaxed) {
            let Ok(n) = from.recv(&mut buf) else { continue };
            let d = buf[..n].to_vec();
            // Release held datagrams whose delay has run out.
            for h in held.iter_mut() {
                h.1 = h.1.saturating_sub(1);
            }
            for (h, _) in held.iter().filter(|h| h.1 == 0) {
                let _ = from.send_to(h, dest);
            }
            held.retain(|h| h.1 > 0);
            if rng.random_bool(0.10) {
                continue;
            }
            if rng.random_bool(0.10) {
                held.push((d, rng.random_range(1..=8u32)));
                continue;
            }
            let _ = from.send_to(&d, dest);
            if rng.random_bool(0.05) {
                let _ = from.send_to(&d, dest);
            }
            relayed += 1;
        }
        relayed
    })
}

#[test]
fn udp_through_a_lossy_reordering_relay() {
    let seed = 22;
    let (src, files) = source_tree(seed);
    let out = tempfile::tempdir().unwrap();
    let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
    let p1 = relay.local_addr().unwrap().port();
    let p2 = free_udp_port();
    let stop = Arc::new(AtomicBool::new(false));
    let relay = lossy_relay(relay, p2, seed, stop.clone());
    let listen = format!("udp-listen:127.0.0.1:{p2}");
    let rx = spawn(&["diode-rx", &listen, "--dir", s(out.path()), "--exit-when-complete"], None);
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("udp:127.0.0.1:{p1}");
    let tx = spawn(&["diode-tx", &target, s(src.path()), "--forever", "--rate", "20000000"], None);
    let or = rx.finish(Duration::from_secs(60));
    tx.kill();
    stop.store(true, Ordering::Relaxed);
    relay.join().unwrap();
    assert!(or.status.success(), "seed {seed}: diode-rx failed ({:?}):\n{}", or.status, or.stderr);
    check_delivered(out.path(), &files, seed);
}

#[test]
fn damaged_stream_file_still_delivers() {
    let seed = 33;
    let (src, files) = source_tree(seed);
    let work = tempfile::tempdir().unwrap();
    let stream = work.path().join("burnt.strand");
    let tx = spawn(&["diode-tx", s(&stream), s(src.path()), "--rounds", "2"], None)
        .finish(Duration::from_secs(60));
    assert!(tx.status.success(), "diode-tx failed: {}", tx.stderr);
    // Flip bytes at several offsets, then cut a chunk out of the middle.
    let mut bytes = std::fs::read(&stream).unwrap();
    let mut rng = Pcg64::seed_from_u64(seed);
    for _ in 0..30 {
        let at = rng.random_range(0..bytes.len());
        bytes[at] ^= rng.random_range(1..=255u8);
    }
    let cut = bytes.len() / 3;
    bytes.drain(cut..cut + 20_000);
    std::fs::write(&stream, &bytes).unwrap();
    let out = work.path().join("out");
    let rx = spawn(&["diode-rx", s(&stream), "--dir", s(&out)], None).finish(Duration::from_secs(60));
    assert!(rx.status.success(), "seed {seed}: diode-rx failed ({:?}):\n{}", rx.status, rx.stderr);
    check_delivered(&out, &files, seed);
    assert!(
        count_before(&rx.stderr, "failed CRC").unwrap_or(0) > 0,
        "seed {seed}: no damage seen:\n{}",
        rx.stderr
    );
}

/// Bytes held in the receiver's work files: source symbols in `part`, the
/// others (and a record of each source symbol) in `spool`.
fn spooled(out: &Path) -> u64 {
    let Ok(dirs) = std::fs::read_dir(out.join(".strand-diode")) else { return 0 };
    dirs.flatten()
        .flat_map(|d| ["spool", "part"].map(|f| std::fs::metadata(d.path().join(f)).map_or(0, |m| m.len())))
        .sum()
}

#[test]
fn restarted_receiver_reuses_its_spool() {
    let seed = 44;
    let src = tempfile::tempdir().unwrap();
    let content = data(seed, 2 << 20);
    std::fs::write(src.path().join("large.bin"), &content).unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let listen = format!("udp-listen:127.0.0.1:{port}");
    let rx_args = ["diode-rx", &listen, "--dir", s(out.path()), "--exit-when-complete"];
    let rx = spawn(&rx_args, None);
    std::thread::sleep(Duration::from_millis(300));
    // 4 Mbit/s: a round of 2 MiB takes about 4 s, time to interrupt the receiver.
    let target = format!("udp:127.0.0.1:{port}");
    let tx = spawn(
        &["diode-tx", &target, s(src.path().join("large.bin").as_path()), "--forever", "--rate", "4000000"],
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while spooled(out.path()) < 300_000 {
        assert!(Instant::now() < deadline, "the receiver never spooled anything");
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = rx.kill();
    assert!(!out.path().join("large.bin").exists(), "interrupted too late:\n{}", first.stderr);
    let rx = spawn(&rx_args, None);
    let second = rx.finish(Duration::from_secs(60));
    tx.kill();
    assert!(second.status.success(), "restarted diode-rx failed ({:?}):\n{}", second.status, second.stderr);
    check_delivered(out.path(), &[("large.bin", content)], seed);
    let restored = count_before(&second.stderr, "symbols restored").unwrap_or(0);
    assert!(restored >= 200, "the spool was not reused:\n{}", second.stderr);
    let kept = count_before(&second.stderr, "symbols kept").unwrap();
    // 2 MiB in 1400-byte symbols is 1498 source symbols: the restored ones are not needed again.
    assert!(kept + restored >= 1498 && kept < 1498, "kept {kept}, restored {restored}:\n{}", second.stderr);
    // Only the journal of completed objects is left in the work directory.
    let left: Vec<_> =
        out.path().join(".strand-diode").read_dir().unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["complete"], "spool left behind");
}

#[test]
fn receiver_with_the_wrong_key_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (src, _) = source_tree(55);
    let (k1, k2) = (work.path().join("k1"), work.path().join("k2"));
    std::fs::write(&k1, data(1, 32)).unwrap();
    std::fs::write(&k2, data(2, 32)).unwrap();
    let stream = work.path().join("s.strand");
    let tx = spawn(&["diode-tx", s(&stream), s(src.path()), "--key", s(&k1), "--key-id", "3"], None)
        .finish(Duration::from_secs(60));
    assert!(tx.status.success(), "diode-tx failed: {}", tx.stderr);
    let out = work.path().join("out");
    let rx = spawn(&["diode-rx", s(&stream), "--dir", s(&out), "--key", s(&k2), "--key-id", "3"], None)
        .finish(Duration::from_secs(60));
    assert_eq!(rx.status.code(), Some(3), "{}", rx.stderr);
    assert!(count_before(&rx.stderr, "failed authentication").unwrap_or(0) > 0, "{}", rx.stderr);
    let written: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.ends_with(".strand-diode"))
        .collect();
    assert!(written.is_empty(), "wrote {written:?}");
    // The right key opens the same stream.
    let rx = spawn(&["diode-rx", s(&stream), "--dir", s(&out), "--key", s(&k1), "--key-id", "3"], None)
        .finish(Duration::from_secs(60));
    assert!(rx.status.success(), "{}", rx.stderr);
}

#[test]
fn a_cut_stream_is_reported_partial_and_an_existing_file_is_kept_unless_overwrite() {
    let seed = 66;
    let (src, files) = source_tree(seed);
    let work = tempfile::tempdir().unwrap();
    let stream = work.path().join("s.strand");
    let tx = spawn(&["diode-tx", s(&stream), s(src.path()), "--redundancy", "0"], None)
        .finish(Duration::from_secs(60));
    assert!(tx.status.success(), "diode-tx failed: {}", tx.stderr);
    let bytes = std::fs::read(&stream).unwrap();

    // A quarter of a one-pass stream cut out of big.bin's frames: big.bin is
    // partial, sub/small.txt (sent after it) complete: exit 2.
    let half = work.path().join("half.strand");
    let (q, h) = (bytes.len() / 4, bytes.len() / 2);
    std::fs::write(&half, [&bytes[..q], &bytes[h..]].concat()).unwrap();
    let out = work.path().join("out");
    let rx = spawn(&["diode-rx", s(&half), "--dir", s(&out)], None).finish(Duration::from_secs(60));
    assert_eq!(rx.status.code(), Some(2), "seed {seed}:\n{}", rx.stderr);
    assert!(rx.stderr.contains("partial     big.bin: 1 of 1 blocks missing"), "seed {seed}:\n{}", rx.stderr);
    assert!(
        rx.stderr.contains("more repair per block would have finished it"),
        "seed {seed}:\n{}",
        rx.stderr
    );
    assert_eq!(std::fs::read(out.join("sub/small.txt")).unwrap(), files[1].1, "seed {seed}");
    assert!(!out.join("big.bin").exists(), "a partial file was published");

    // A different file already sits where big.bin goes: kept, reported, exit 1 ...
    std::fs::write(out.join("big.bin"), b"someone else's file").unwrap();
    let rx = spawn(&["diode-rx", s(&stream), "--dir", s(&out)], None).finish(Duration::from_secs(60));
    assert_eq!(rx.status.code(), Some(1), "seed {seed}:\n{}", rx.stderr);
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), b"someone else's file");
    // ... and replaced with --overwrite.
    let rx = spawn(&["diode-rx", s(&stream), "--dir", s(&out), "--overwrite"], None)
        .finish(Duration::from_secs(60));
    assert!(rx.status.success(), "seed {seed}:\n{}", rx.stderr);
    check_delivered(&out, &files, seed);
}

/// The stream file of one `diode-tx` pass over `src` with extra options.
fn stream_of(src: &Path, out: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["diode-tx", s(out), s(src)];
    args.extend_from_slice(extra);
    let tx = spawn(&args, None).finish(Duration::from_secs(60));
    assert!(tx.status.success(), "diode-tx failed: {}", tx.stderr);
    std::fs::read(out).unwrap()
}

#[test]
fn sigterm_prints_the_report_and_exits_non_zero() {
    let seed = 77;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("large.bin"), data(seed, 2 << 20)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let listen = format!("udp-listen:127.0.0.1:{port}");
    let rx = spawn(&["diode-rx", &listen, "--dir", s(out.path())], None);
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("udp:127.0.0.1:{port}");
    let file = src.path().join("large.bin");
    let tx = spawn(&["diode-tx", &target, s(&file), "--forever", "--rate", "4000000"], None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while spooled(out.path()) < 300_000 {
        assert!(Instant::now() < deadline, "seed {seed}: the receiver never kept anything");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(rx.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let got = rx.finish(Duration::from_secs(10));
    tx.kill();
    assert_eq!(got.status.code(), Some(2), "seed {seed}:\n{}", got.stderr);
    assert!(got.stderr.contains("stopped by SIGTERM"), "{}", got.stderr);
    assert!(got.stderr.contains("partial     large.bin: 1 of 1 blocks missing"), "{}", got.stderr);
    assert!(got.stderr.contains("frames ok"), "{}", got.stderr);
}

#[test]
fn a_restarted_receiver_counts_files_already_complete_instead_of_never_seen() {
    // A receiver that only hears the end of a pass (the sender's Done
    // heartbeats and last MANIFESTs), in a directory where an earlier run
    // published both files: complete, exit 0 (it used to say "never seen", exit 3).
    let seed = 78;
    let (src, files) = source_tree(seed);
    let work = tempfile::tempdir().unwrap();
    let stream = stream_of(src.path(), &work.path().join("s.strand"), &[]);
    let out = work.path().join("out");
    let first = spawn(&["diode-rx", s(&work.path().join("s.strand")), "--dir", s(&out)], None)
        .finish(Duration::from_secs(60));
    assert!(first.status.success(), "seed {seed}:\n{}", first.stderr);
    check_delivered(&out, &files, seed);
    let tail = work.path().join("tail.strand");
    std::fs::write(&tail, &stream[stream.len() - 2000..]).unwrap();
    let again = spawn(&["diode-rx", s(&tail), "--dir", s(&out), "--exit-when-complete"], None)
        .finish(Duration::from_secs(30));
    assert!(again.status.success(), "seed {seed}: {:?}\n{}", again.status, again.stderr);
    assert!(!again.stderr.contains("never seen"), "{}", again.stderr);
}

#[test]
fn a_carousel_says_how_each_round_went_and_how_it_was_stopped() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("small"), data(79, 20_000)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("carousel.strand");
    let file = src.path().join("small");
    // About 60 rounds a second at 1 MB/s.
    let tx = spawn(&["diode-tx", s(&out), s(&file), "--forever", "--rate", "8000000"], None);
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(tx.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let got = tx.finish(Duration::from_secs(10));
    assert!(got.status.success(), "{}", got.stderr);
    assert!(got.stderr.contains("sent: "), "no round was reported:\n{}", got.stderr);
    assert!(got.stderr.contains("stopped by SIGTERM in round"), "{}", got.stderr);
}

#[test]
fn received_files_follow_the_umask_and_are_never_world_writable() {
    use std::os::unix::fs::PermissionsExt;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("tool.sh");
    std::fs::write(&file, b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o777)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let stream = work.path().join("s.strand");
    stream_of(&file, &stream, &[]);
    let out = work.path().join("out");
    let rx = spawn(&["diode-rx", s(&stream), "--dir", s(&out)], None).finish(Duration::from_secs(30));
    assert!(rx.status.success(), "{}", rx.stderr);
    let mode = std::fs::metadata(out.join("tool.sh")).unwrap().permissions().mode() & 0o7777;
    // The test runs with the umask it was given; whatever it is, others never get write.
    let umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(umask);
    assert_eq!(mode, 0o777 & !umask.bits() & !0o002, "mode {mode:o}, umask {:o}", umask.bits());
}

/// `bytes` with the middle share `cut` (0..1) of it, starting at `from`, removed.
fn cut(bytes: &[u8], from: f64, cut: f64) -> Vec<u8> {
    let (a, b) = ((bytes.len() as f64 * from) as usize, (bytes.len() as f64 * (from + cut)) as usize);
    [&bytes[..a], &bytes[b..]].concat()
}

#[test]
fn a_second_sender_run_finishes_what_the_first_left_partial() {
    // Two one-pass runs of the same file (two sessions), each cut by a third
    // in a different place: neither alone delivers; the receiver keeps the
    // first run's symbols and the second run completes the file.
    let seed = 80;
    let src = tempfile::tempdir().unwrap();
    let content = data(seed, 1 << 20);
    let file = src.path().join("resume.bin");
    std::fs::write(&file, &content).unwrap();
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a.strand"), work.path().join("b.strand"));
    let first = cut(&stream_of(&file, &a, &["--expect-loss", "5"]), 0.2, 0.35);
    let second = cut(&stream_of(&file, &b, &["--expect-loss", "5"]), 0.5, 0.35);
    std::fs::write(&a, first).unwrap();
    std::fs::write(&b, &second).unwrap();
    let out = work.path().join("out");
    let rx = spawn(&["diode-rx", s(&a), "--dir", s(&out)], None).finish(Duration::from_secs(30));
    assert_eq!(rx.status.code(), Some(2), "seed {seed}:\n{}", rx.stderr);
    assert!(rx.stderr.contains("run diode-tx again"), "{}", rx.stderr);
    let rx = spawn(&["diode-rx", s(&b), "--dir", s(&out)], None).finish(Duration::from_secs(30));
    assert!(rx.status.success(), "seed {seed}:\n{}", rx.stderr);
    check_delivered(&out, &[("resume.bin", content)], seed);
    assert!(count_before(&rx.stderr, "taken over from earlier runs").unwrap_or(0) > 100, "{}", rx.stderr);
    // The second run alone would not have done it.
    let alone = work.path().join("alone");
    let rx = spawn(&["diode-rx", s(&b), "--dir", s(&alone)], None).finish(Duration::from_secs(30));
    assert_eq!(rx.status.code(), Some(2), "seed {seed}:\n{}", rx.stderr);
}

#[test]
fn named_links_resolve_from_the_config_file() {
    let (src, files) = source_tree(81);
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("strand.toml");
    let stream = work.path().join("named.strand");
    std::fs::write(&cfg, format!("[links.medium]\naddress = \"{}\"\n", stream.display())).unwrap();
    let tx = spawn(&["--config", s(&cfg), "diode-tx", "medium", s(src.path())], None)
        .finish(Duration::from_secs(60));
    assert!(tx.status.success(), "{}", tx.stderr);
    assert!(stream.exists() && !work.path().join("medium").exists());
    let out = work.path().join("out");
    let rx = spawn(&["--config", s(&cfg), "diode-rx", "medium", "--dir", s(&out)], None)
        .finish(Duration::from_secs(60));
    assert!(rx.status.success(), "{}", rx.stderr);
    check_delivered(&out, &files, 81);
    // A misspelt name is an error, not a new file of that name.
    let tx = spawn(&["--config", s(&cfg), "diode-tx", "mediun", s(src.path())], None)
        .finish(Duration::from_secs(60));
    assert_eq!(tx.status.code(), Some(1), "{}", tx.stderr);
    assert!(tx.stderr.contains("unknown link \"mediun\""), "{}", tx.stderr);
    assert!(!Path::new("mediun").exists());
}
