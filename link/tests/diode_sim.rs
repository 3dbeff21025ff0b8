//! One-way transfer through seeded lossy channels (spec section 13): random
//! frame loss, long bursts, bit errors on a byte stream, reordering and
//! duplicates, a receiver restarted mid-object, a sender restarted under a new
//! session, and objects of 0 bytes to 100 MiB. Every test prints its seed on
//! failure.

use rand::{Rng, RngExt, SeedableRng};
use rand_pcg::Pcg64;
use strand_link::diode::{
    AuthKey, Layout, Limits, Manifest, MemStore, Outcome, Outgoing, Poll, Receiver, Redundancy, Sender,
    SenderConfig, Status,
};
use strand_link::time::Instant;

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

fn outgoing(name: &str, bytes: &[u8], symbol: u16) -> Outgoing {
    let layout = Layout::choose(bytes.len() as u64, symbol).unwrap();
    Outgoing {
        manifest: Manifest {
            object: 0,
            objects: 0,
            size: bytes.len() as u64,
            mode: 0o644,
            mtime: 0,
            hash: Some(*blake3::hash(bytes).as_bytes()),
            name: name.into(),
        },
        layout,
    }
}

/// Runs a sender over `files` and hands every frame it emits to `channel`,
/// which returns the frames that reach the receiver (possibly none, several,
/// damaged or later). Stops when the receiver holds every file or the sender
/// is done. Returns frames sent.
struct Run<'a> {
    files: &'a [(&'a str, Vec<u8>)],
    symbol: u16,
    config: SenderConfig,
    session: u32,
    key: Option<AuthKey>,
    /// After this many frames the receiver "crashes" and a new one restores from the store.
    restart_rx_at: Option<u64>,
}

impl Run<'_> {
    fn go(
        &self,
        rx: &mut Receiver,
        store: &mut MemStore,
        mut channel: impl FnMut(Vec<u8>) -> Vec<Vec<u8>>,
        mut stop_after: impl FnMut(u64) -> bool,
    ) -> u64 {
        let objects = self.files.iter().map(|(n, b)| outgoing(n, b, self.symbol)).collect();
        let mut tx = Sender::new(self.session, objects, self.config, self.key.clone()).unwrap();
        let mut out = vec![0u8; 10_000];
        let mut now = Instant::ZERO;
        loop {
            if self.files.iter().all(|(n, b)| store.files.get(*n) == Some(b)) || stop_after(tx.frames_sent())
            {
                return tx.frames_sent();
            }
            if self.restart_rx_at == Some(tx.frames_sent()) {
                *rx = restored(store);
            }
            match tx.poll_frame(now, &mut out) {
                Poll::Done => return tx.frames_sent(),
                Poll::NeedBlock { object, block, offset, len } => {
                    let bytes = &self.files[usize::from(object)].1[offset as usize..(offset + len) as usize];
                    tx.provide_block(object, block, bytes).unwrap();
                }
                Poll::NeedRepair { object, block } => tx.encode_repair(object, block).unwrap(),
                Poll::NeedHash { object } => {
                    tx.set_hash(object, *blake3::hash(&self.files[usize::from(object)].1).as_bytes())
                }
                Poll::Wait(t) => now = t,
                Poll::Frame(n) => {
                    now = Instant::from_micros(now.as_micros() + 500);
                    for f in channel(out[..n].to_vec()) {
                        let _ = rx.handle_frame(now, &f, store);
                    }
                }
            }
        }
    }
}

/// A fresh receiver that knows what the store kept (what `diode-rx` does at start-up).
fn restored(store: &MemStore) -> Receiver {
    let mut rx = Receiver::new(None, Limits::default());
    let kept = store.kept_symbols();
    let mut keys: Vec<_> = kept.iter().map(|k| k.0).collect();
    keys.dedup();
    for key in keys {
        let syms: Vec<(u16, u16)> = kept.iter().filter(|k| k.0 == key).map(|&(_, b, e)| (b, e)).collect();
        rx.restore(key, store.layout_of(key), None, &[], &syms);
    }
    rx
}

fn carousel() -> SenderConfig {
    SenderConfig { redundancy: Redundancy::Fixed(0.0), rounds: None, ..SenderConfig::default() }
}

fn check_all(store: &MemStore, files: &[(&str, Vec<u8>)], seed: u64) {
    for (n, b) in files {
        assert!(store.files.get(*n) == Some(b), "seed {seed}: {n} missing or wrong");
    }
}

#[test]
fn random_loss_1_to_20_percent_carousel_completes_near_the_limit() {
    for (p, seed) in [(0.01, 1u64), (0.05, 2), (0.10, 3), (0.20, 4)] {
        let files = [("a.bin", data(300_000, seed))];
        let mut rng = Pcg64::seed_from_u64(seed);
        let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
        let run = Run {
            files: &files,
            symbol: 1024,
            config: carousel(),
            session: 7,
            key: None,
            restart_rx_at: None,
        };
        let sent = run.go(
            &mut rx,
            &mut store,
            |f| if rng.random::<f64>() < p { vec![] } else { vec![f] },
            |n| n > 100_000,
        );
        check_all(&store, &files, seed);
        // Symbols needed: 293; the limit is that over (1 - p). Allow manifests
        // (1 in 36), a heartbeat and the spread of the losses.
        let limit = 293.0 / (1.0 - p);
        assert!(
            (sent as f64) < limit * 1.12 + 8.0,
            "seed {seed} p {p}: {sent} frames for a limit of {limit:.0}"
        );
    }
}

#[test]
fn a_multi_block_object_gets_its_fresh_symbols_early() {
    // 10 blocks of 4096 symbols: every block must get its repair in the first
    // sweep after the source pass, not one block after another.
    let seed = 5;
    let files = [("m", data(40 << 20, seed))];
    let mut rng = Pcg64::seed_from_u64(seed);
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    let run =
        Run { files: &files, symbol: 1024, config: carousel(), session: 2, key: None, restart_rx_at: None };
    let sent = run.go(
        &mut rx,
        &mut store,
        |f| if rng.random::<f64>() < 0.05 { vec![] } else { vec![f] },
        |n| n > 100_000,
    );
    check_all(&store, &files, seed);
    let limit = 40960.0 / 0.95;
    assert!((sent as f64) < limit * 1.03, "seed {seed}: {sent} frames for a limit of {limit:.0}");
}

#[test]
fn one_pass_with_redundancy_for_the_loss_succeeds() {
    let mut failures = 0;
    for seed in 0..20u64 {
        let files = [("f", data(200_000, seed))];
        let mut rng = Pcg64::seed_from_u64(seed);
        let config = SenderConfig {
            redundancy: Redundancy::ExpectLoss(0.10),
            rounds: Some(1),
            ..SenderConfig::default()
        };
        let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
        let run = Run { files: &files, symbol: 512, config, session: 9, key: None, restart_rx_at: None };
        run.go(&mut rx, &mut store, |f| if rng.random::<f64>() < 0.10 { vec![] } else { vec![f] }, |_| false);
        failures += usize::from(store.files.get("f") != Some(&files[0].1));
    }
    assert_eq!(failures, 0);
}

#[test]
fn a_first_pass_may_carry_more_repair_than_the_default_layout() {
    // 80% redundancy on a GF(2^16) object (laid out with R = k/2): the sender
    // raises R, and one pass survives 40% loss.
    let seed = 13;
    let files = [("heavy", data(600_000, seed))];
    let mut rng = Pcg64::seed_from_u64(seed);
    let config =
        SenderConfig { redundancy: Redundancy::Fixed(0.8), rounds: Some(1), ..SenderConfig::default() };
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    let run = Run { files: &files, symbol: 1024, config, session: 4, key: None, restart_rx_at: None };
    // Capped at R = 293, one pass would be 879 frames, ~527 of them received: short of 586.
    run.go(&mut rx, &mut store, |f| if rng.random::<f64>() < 0.4 { vec![] } else { vec![f] }, |_| false);
    check_all(&store, &files, seed);
}

#[test]
fn bursts_of_100_and_1000_frames_are_survived() {
    for (burst, seed) in [(100u64, 11u64), (1000, 12)] {
        // 4 MiB: 4096 symbols in one GF(2^16) block... and a second object.
        let files = [("big", data(4 << 20, seed)), ("small", data(777, seed))];
        let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
        let mut i = 0u64;
        let start = 1500;
        let run = Run {
            files: &files,
            symbol: 1024,
            config: carousel(),
            session: 3,
            key: None,
            restart_rx_at: None,
        };
        let sent = run.go(
            &mut rx,
            &mut store,
            |f| {
                i += 1;
                if (start..start + burst).contains(&i) {
                    vec![]
                } else {
                    vec![f]
                }
            },
            |n| n > 20_000,
        );
        check_all(&store, &files, seed);
        let needed = 4096 + 1 + burst;
        assert!(sent <= needed + 40, "seed {seed}: {sent} frames sent, {needed} needed");
    }
}

#[test]
fn bit_errors_are_erasures_never_wrong_bytes() {
    // Flip bits at 1e-4 per bit: most 1 KiB frames survive, damaged ones fail the CRC.
    let seed = 21;
    let files = [("x", data(500_000, seed))];
    let mut rng = Pcg64::seed_from_u64(seed);
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    let run =
        Run { files: &files, symbol: 1024, config: carousel(), session: 5, key: None, restart_rx_at: None };
    run.go(
        &mut rx,
        &mut store,
        |mut f| {
            for byte in f.iter_mut() {
                for bit in 0..8 {
                    if rng.random::<f64>() < 1e-4 {
                        *byte ^= 1 << bit;
                    }
                }
            }
            vec![f]
        },
        |n| n > 50_000,
    );
    check_all(&store, &files, seed);
    let s = rx.stats();
    assert!(s.crc_errors > 10, "seed {seed}: {s:?}");
    assert_eq!(s.hash_mismatches, 0);
}

#[test]
fn reordering_and_duplicates_change_nothing() {
    let seed = 31;
    let files = [("r", data(400_000, seed))];
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut held: Vec<Vec<u8>> = Vec::new();
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    let run =
        Run { files: &files, symbol: 1400, config: carousel(), session: 6, key: None, restart_rx_at: None };
    run.go(
        &mut rx,
        &mut store,
        |f| {
            // Hold frames back and release them in random order, some twice.
            held.push(f.clone());
            if rng.random::<f64>() < 0.2 {
                held.push(f);
            }
            let mut out = Vec::new();
            while held.len() > 8 {
                let i = rng.random_range(0..held.len());
                out.push(held.swap_remove(i));
            }
            out
        },
        |n| n > 50_000,
    );
    check_all(&store, &files, seed);
    assert!(rx.stats().duplicates > 10, "seed {seed}");
}

#[test]
fn receiver_restarted_mid_object_keeps_what_it_had() {
    let seed = 41;
    let files = [("o", data(1 << 20, seed))];
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut store = MemStore::default();
    let mut rx = Receiver::new(None, Limits::default());
    // The receiver process dies after 600 frames and restarts from its store;
    // the sender never knows. Lost frames: 5%.
    let run = Run {
        files: &files,
        symbol: 1024,
        config: carousel(),
        session: 8,
        key: None,
        restart_rx_at: Some(600),
    };
    let sent = run.go(
        &mut rx,
        &mut store,
        |f| if rng.random::<f64>() < 0.05 { vec![] } else { vec![f] },
        |n| n > 10_000,
    );
    check_all(&store, &files, seed);
    // Nothing received before the restart was lost: about 1024 / 0.95 frames in all.
    assert!(sent < 1024 * 100 / 95 + 60, "seed {seed}: took {sent} frames");
}

#[test]
fn sender_restarted_with_a_new_session_still_delivers() {
    let seed = 51;
    let files = [("s", data(200_000, seed))];
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    let first =
        Run { files: &files, symbol: 1024, config: carousel(), session: 100, key: None, restart_rx_at: None };
    first.go(&mut rx, &mut store, |f| vec![f], |n| n >= 150);
    assert!(store.files.is_empty());
    // The second run continues the first (first round 1): fresh repair
    // symbols first (R = 98 of them), none of which the receiver holds.
    let config = SenderConfig { first_round: 1, ..carousel() };
    let second = Run { session: 101, config, ..first };
    let sent = second.go(&mut rx, &mut store, |f| vec![f], |n| n > 5_000);
    check_all(&store, &files, seed);
    // The second session took over what the first one delivered (the same
    // content): the first is no longer reported, the second is complete and
    // needed fewer frames than the 196 symbols of the object.
    let report = rx.report();
    assert!(report.iter().all(|r| r.key.session != 100), "{report:?}");
    assert!(report.iter().any(|r| r.key.session == 101 && r.status == Status::Complete));
    assert!(rx.stats().adopted >= 140, "{:?}", rx.stats());
    assert!(sent < 70, "seed {seed}: {sent} frames");
}

/// One pass of `files` in session `session` at `loss`, streamed (the hash
/// known only after the bytes), through an existing receiver.
fn one_pass(
    files: &[(&str, Vec<u8>)],
    session: u32,
    redundancy: Redundancy,
    rx: &mut Receiver,
    store: &mut MemStore,
    mut lose: impl FnMut() -> bool,
) -> u64 {
    let objects: Vec<Outgoing> = files
        .iter()
        .map(|(n, b)| {
            let mut o = outgoing(n, b, 1024);
            o.manifest.hash = None;
            o
        })
        .collect();
    let config = SenderConfig { redundancy, rounds: Some(1), ..SenderConfig::default() };
    let mut tx = Sender::new(session, objects, config, None).unwrap();
    let contents: Vec<&[u8]> = files.iter().map(|(_, b)| &b[..]).collect();
    strand_link::diode::run_in_memory(
        &mut tx,
        &contents,
        strand_link::time::Duration::from_micros(100),
        |now, f| {
            if !lose() {
                let _ = rx.handle_frame(now, f, store);
            }
            true
        },
    )
}

#[test]
fn a_second_sender_run_finishes_what_the_first_left_partial() {
    // 1 MiB at 30% loss with repair for 10%: neither pass alone delivers,
    // the two together do, and the second pass's report is exact.
    let seed = 52;
    let files = [("resume.bin", data(1 << 20, seed))];
    let mut rng = Pcg64::seed_from_u64(seed);
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    one_pass(&files, 200, Redundancy::ExpectLoss(0.1), &mut rx, &mut store, || rng.random::<f64>() < 0.3);
    assert!(store.files.is_empty(), "seed {seed}: one pass at 30% loss delivered");
    let key = rx.report()[0].key;
    let short = rx.shortfall(key).unwrap();
    assert!(short.blocks_missing == 1 && short.symbols_missing > 100, "seed {seed}: {short:?}");
    one_pass(&files, 201, Redundancy::ExpectLoss(0.1), &mut rx, &mut store, || rng.random::<f64>() < 0.3);
    check_all(&store, &files, seed);
    // About 0.7 x 1174 symbols held from the first pass, of which the 30% the
    // second pass lost are the ones it needed.
    assert!(rx.stats().adopted > 150, "seed {seed}: {:?}", rx.stats());
    // A fresh receiver given the second pass alone does not complete.
    let (mut alone, mut alone_store) = (Receiver::new(None, Limits::default()), MemStore::default());
    one_pass(&files, 202, Redundancy::ExpectLoss(0.1), &mut alone, &mut alone_store, || {
        rng.random::<f64>() < 0.3
    });
    assert!(alone_store.files.is_empty(), "seed {seed}");
}

#[test]
fn a_new_content_under_the_same_name_replaces_the_old_partial_cleanly() {
    let seed = 53;
    let old = [("doc", data(300_000, seed))];
    let new = [("doc", data(300_000, seed + 1))];
    let mut rng = Pcg64::seed_from_u64(seed);
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    one_pass(&old, 300, Redundancy::Fixed(0.0), &mut rx, &mut store, || rng.random::<f64>() < 0.5);
    assert!(store.files.is_empty() && !store.kept_symbols().is_empty());
    one_pass(&new, 301, Redundancy::ExpectLoss(0.01), &mut rx, &mut store, || false);
    check_all(&store, &new, seed);
    // The old partial copy is gone from the store and from the report.
    assert!(store.partial_objects().is_empty() && store.kept_symbols().is_empty());
    assert!(rx.report().iter().all(|r| r.key.session == 301), "{:?}", rx.report());
    assert_eq!(rx.stats().adopted, 0);
}

#[test]
fn content_already_published_is_complete_when_its_hash_arrives() {
    let seed = 54;
    let files = [("have", data(500_000, seed))];
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    store.files.insert("have".into(), files[0].1.clone());
    // A carousel: the MANIFEST with the hash comes first (a sender that knows it).
    let mut tx = Sender::new(400, vec![outgoing("have", &files[0].1, 1024)], carousel(), None).unwrap();
    strand_link::diode::run_in_memory(
        &mut tx,
        &[&files[0].1],
        strand_link::time::Duration::from_micros(100),
        |now, f| {
            let _ = rx.handle_frame(now, f, &mut store);
            !rx.session_complete(400)
        },
    );
    assert!(tx.frames_sent() < 10, "{}", tx.frames_sent());
    assert_eq!(rx.stats().already_complete, 1, "{:?}", rx.stats());
    assert!(rx.session_complete(400));
    assert!(store.kept_symbols().is_empty());
}

#[test]
fn sizes_zero_one_exact_block_and_100_mib() {
    let seed = 61;
    let block = 128 * 1024; // exactly one GF(2^8) block of 128 symbols of 1 KiB
    let files = [
        ("empty", Vec::new()),
        ("one", vec![0x5A]),
        ("block", data(block, seed)),
        ("huge", data(100 << 20, seed + 1)),
    ];
    let mut rng = Pcg64::seed_from_u64(seed);
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    let config =
        SenderConfig { redundancy: Redundancy::ExpectLoss(0.02), rounds: Some(3), ..SenderConfig::default() };
    let run = Run { files: &files, symbol: 1024, config, session: 12, key: None, restart_rx_at: None };
    run.go(&mut rx, &mut store, |f| if rng.random::<f64>() < 0.02 { vec![] } else { vec![f] }, |_| false);
    check_all(&store, &files, seed);
    assert!(rx.session_complete(12));
}

#[test]
fn unauthenticated_and_forged_frames_are_dropped_and_counted() {
    let seed = 71;
    let files = [("secret", data(50_000, seed))];
    let key = AuthKey::derive(1, b"pre-shared");
    let (mut rx, mut store) = (Receiver::new(Some(key.clone()), Limits::default()), MemStore::default());
    // An attacker without the key injects its own file.
    let evil = [("secret", data(50_000, seed + 1))];
    let forged =
        Run { files: &evil, symbol: 1024, config: carousel(), session: 66, key: None, restart_rx_at: None };
    forged.go(&mut rx, &mut store, |f| vec![f], |n| n > 200);
    assert!(store.files.is_empty());
    assert!(rx.stats().auth_failures > 100);
    // The genuine sender gets through.
    let genuine = Run {
        files: &files,
        symbol: 1024,
        config: carousel(),
        session: 67,
        key: Some(key),
        restart_rx_at: None,
    };
    genuine.go(&mut rx, &mut store, |f| vec![f], |n| n > 1000);
    check_all(&store, &files, seed);
}

#[test]
fn report_names_complete_partial_and_never_seen_objects() {
    let seed = 81;
    let files = [("a", data(10_000, seed)), ("b", data(300_000, seed)), ("c", data(10_000, seed))];
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    let mut object_of_frame = Vec::new();
    let config =
        SenderConfig { redundancy: Redundancy::Fixed(0.0), rounds: Some(1), ..SenderConfig::default() };
    let run = Run { files: &files, symbol: 1024, config, session: 90, key: None, restart_rx_at: None };
    let mut i = 0;
    run.go(
        &mut rx,
        &mut store,
        |f| {
            i += 1;
            object_of_frame.push(f[1]);
            // Deliver all of "a", then only every other frame, then nothing of "c".
            match i {
                0..=13 => vec![f],
                14..=200 if i % 2 == 0 => vec![f],
                301.. if f[1] == 0x12 => vec![f], // heartbeats still arrive
                _ => vec![],
            }
        },
        |_| false,
    );
    let report = rx.report();
    let status = |o: u16| report.iter().find(|r| r.key.object == o).map(|r| r.status.clone());
    assert_eq!(status(0), Some(Status::Complete), "seed {seed}: {report:?}");
    assert!(
        matches!(status(1), Some(Status::Partial { missing: Some(m), manifest: true }) if m > 50),
        "{report:?}"
    );
    assert_eq!(status(2), Some(Status::NeverSeen), "{report:?}");
    assert!(!rx.session_complete(90));
    let _ = Outcome::Symbol;
}

#[test]
fn a_burst_over_the_end_does_not_hide_that_the_sender_finished() {
    // One pass, and a burst that swallows the first 40 frames after the data:
    // the Done heartbeats and MANIFESTs spread over the following second arrive.
    let seed = 91;
    let files = [("end", data(100_000, seed))];
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    let objects = vec![outgoing("end", &files[0].1, 1024)];
    let mut tx = Sender::new(91, objects, SenderConfig::default(), None).unwrap();
    let (mut burst_left, mut last) = (None::<u32>, Instant::ZERO);
    strand_link::diode::run_in_memory(
        &mut tx,
        &[&files[0].1],
        strand_link::time::Duration::from_micros(50),
        |now, f| {
            let done = f[1] == 0x12 && f[10] == 2;
            if done && burst_left.is_none() {
                burst_left = Some(40);
            }
            last = now;
            match &mut burst_left {
                Some(n) if *n > 0 => *n -= 1,
                _ => drop(rx.handle_frame(now, f, &mut store)),
            }
            true
        },
    );
    assert_eq!(burst_left, Some(0), "seed {seed}: fewer than 40 end frames");
    assert_eq!(rx.liveness(91, last), Some(strand_link::diode::Liveness::Finished), "seed {seed}");
    check_all(&store, &files, seed);
}

#[test]
fn a_sender_that_has_just_started_is_not_called_silent() {
    use strand_link::diode::Liveness;
    let files = [("x", data(5_000, 1))];
    let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
    let mut tx = Sender::new(33, vec![outgoing("x", &files[0].1, 1024)], carousel(), None).unwrap();
    // Only the first frame (a heartbeat) arrives.
    let mut first = true;
    strand_link::diode::run_in_memory(
        &mut tx,
        &[&files[0].1],
        strand_link::time::Duration::from_micros(50),
        |now, f| {
            if first {
                let _ = rx.handle_frame(now, f, &mut store);
            }
            first = false;
            now < Instant::from_micros(10_000)
        },
    );
    let at = |ms: u64| rx.liveness(33, Instant::from_micros(ms * 1000));
    assert_eq!(at(500), Some(Liveness::Active));
    // Three heartbeat intervals (1 s) with no frame at all: dead, not silent.
    assert_eq!(at(3_500), Some(Liveness::LinkDead));
}
