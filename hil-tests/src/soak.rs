//! The soak of `strand pipe`: a seeded mix of interactive-sized writes (1-200 bytes), bursts (up to
//! 256 KiB) and idle gaps (up to 2 s), through two `strand pipe` ends at once, both ways; the receiver
//! times every read, and any gap of more than [`GAP_LIMIT`] in delivery while data is pending fails.
//!
//! # When data is pending, and what a gap is
//!
//! The rule must not count a quiet line as a stall (nothing was written), nor the time that bytes need
//! to cross the line (a 256 KiB burst takes 1.3 s at 2 Mbit/s). So each direction is compared with an
//! *ideal line*: a FIFO queue draining at the line rate (10 bits per byte, 8N1) with no latency, no
//! overhead and no loss, fed by the sender's writes at the moments the sender *started* them (its
//! intent: a write held back because strand stopped reading its input still counts from when it was
//! offered). Byte `b` of write `k` (started at `s_k`, stream offset `o_k`) leaves the ideal line at
//! `due(b) = max(s_k, end(k-1)) + (b - o_k + 1) * byte_time`, where `end(k-1)` is when the ideal line
//! finished the write before. At time `t` the receiver that has got `R` bytes has data **pending** iff
//! `due(R) <= t`: the ideal line would already have delivered the next byte it waits for. Between two
//! consecutive reads at `r1` and `r2` (the second bringing bytes past `R`), the **gap while pending**
//! is `r2 - max(r1, due(R))` when positive: the time the receiver went without a byte although one was
//! due. After the last read, a stream that is still short counts until the end of the observation.
//! This is stricter than "everything written more than one line time of that data earlier": each byte
//! is due one line time after it could have started crossing, queued behind the bytes before it.
//!
//! Shared by `streambench soak` and the short soak of the end-to-end tests.

use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

use crate::procs::{describe, Group};
use crate::testdata::data;

/// The longest gap in delivery while data is pending that the soak accepts (issue 11).
pub const GAP_LIMIT: Duration = Duration::from_millis(200);

/// Largest burst, bytes.
pub const MAX_BURST: usize = 256 << 10;

/// One planned write: `len` bytes at `at` seconds after the start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedWrite {
    /// Seconds after the start.
    pub at: f64,
    /// Bytes.
    pub len: usize,
}

/// What one direction's sender does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The writes, in time order.
    pub writes: Vec<PlannedWrite>,
    /// Interactive writes (1-200 bytes), bursts and idle gaps in it.
    pub counts: (usize, usize, usize),
}

impl Plan {
    /// A seeded plan of about `secs` seconds for a line of `baud` bit/s: each step is an interactive
    /// write (55%, then 0-150 ms until the next), a burst of 1 KiB-256 KiB, log-uniform (25%, then
    /// 0.3-1.5 of its line time, so bursts sometimes queue behind each other), or an idle gap of
    /// 0.2-2 s (20%).
    pub fn generate(seed: u64, secs: f64, baud: u64) -> Plan {
        let mut rng = Pcg64::seed_from_u64(seed);
        let byte_secs = 10.0 / baud as f64;
        let (mut writes, mut counts, mut t) = (Vec::new(), (0, 0, 0), 0.0);
        while t < secs {
            let r: f64 = rng.random();
            if r < 0.55 {
                writes.push(PlannedWrite { at: t, len: rng.random_range(1..=200) });
                t += rng.random_range(0.0..0.15);
                counts.0 += 1;
            } else if r < 0.80 {
                let (lo, hi) = ((1024f64).ln(), (MAX_BURST as f64).ln());
                let len = (lo + rng.random::<f64>() * (hi - lo)).exp().round() as usize;
                writes.push(PlannedWrite { at: t, len });
                t += len as f64 * byte_secs * rng.random_range(0.3..1.5);
                counts.1 += 1;
            } else {
                t += rng.random_range(0.2..2.0);
                counts.2 += 1;
            }
        }
        Plan { writes, counts }
    }

    /// Bytes in the plan.
    pub fn bytes(&self) -> u64 {
        self.writes.iter().map(|w| w.len as u64).sum()
    }

    /// When the last write is due, seconds.
    pub fn secs(&self) -> f64 {
        self.writes.last().map_or(0.0, |w| w.at)
    }
}

/// A time in delivery while data was pending (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    /// Seconds after the start when the receiver began waiting for a byte that was due.
    pub from: f64,
    /// When the next read came (or the observation ended).
    pub to: f64,
    /// The stream offset it was waiting for.
    pub offset: u64,
}

impl Gap {
    /// Its length in seconds.
    pub fn secs(&self) -> f64 {
        self.to - self.from
    }
}

/// Every gap while pending of one direction: `writes` are (start, bytes) of the sender's writes and
/// `reads` (time, bytes received so far) of the receiver's, in seconds from the same origin; `end` is
/// when the observation stopped; `byte_secs` the line time of one byte.
pub fn pending_gaps(writes: &[(f64, usize)], reads: &[(f64, u64)], end: f64, byte_secs: f64) -> Vec<Gap> {
    // The ideal line: (stream offset, when it starts sending that write) per write.
    let mut starts: Vec<(u64, f64)> = Vec::with_capacity(writes.len());
    let (mut offset, mut free) = (0u64, f64::NEG_INFINITY);
    for &(at, len) in writes.iter().filter(|w| w.1 > 0) {
        let begin = at.max(free);
        starts.push((offset, begin));
        offset += len as u64;
        free = begin + len as f64 * byte_secs;
    }
    let total = offset;
    let due = |b: u64| {
        let k = starts.partition_point(|&(o, _)| o <= b) - 1;
        let (o, begin) = starts[k];
        begin + (b - o + 1) as f64 * byte_secs
    };
    let mut gaps = Vec::new();
    let mut quiet = |from_read: f64, got: u64, until: f64| {
        if got < total {
            let from = from_read.max(due(got));
            if until > from {
                gaps.push(Gap { from, to: until, offset: got });
            }
        }
    };
    let (mut last, mut got) = (0.0, 0u64);
    for &(t, now_got) in reads {
        if now_got > got {
            quiet(last, got, t);
            (last, got) = (t, now_got);
        }
    }
    quiet(last, got, end);
    gaps
}

/// How one direction went.
#[derive(Debug, Clone)]
pub struct DirectionReport {
    /// "A->B" or "B->A".
    pub name: &'static str,
    /// Bytes the sender wrote (all of the plan unless strand stopped reading for good).
    pub written: u64,
    /// Bytes planned.
    pub planned: u64,
    /// Bytes the receiver read.
    pub received: u64,
    /// Whether the receiver got exactly the planned bytes.
    pub exact: bool,
    /// Reads at the receiver.
    pub reads: usize,
    /// Every gap while pending, in time order.
    pub gaps: Vec<Gap>,
    /// Why the sender stopped early, if it did.
    pub write_error: Option<String>,
}

impl DirectionReport {
    /// The longest gap while pending.
    pub fn worst(&self) -> Option<Gap> {
        self.gaps.iter().copied().max_by(|a, b| a.secs().total_cmp(&b.secs()))
    }

    /// Gaps longer than `limit`.
    pub fn over(&self, limit: Duration) -> Vec<Gap> {
        self.gaps.iter().copied().filter(|g| g.secs() > limit.as_secs_f64()).collect()
    }
}

/// One soak run's settings.
pub struct Soak<'a> {
    /// The strand binary.
    pub strand: &'a Path,
    /// The two ends of the line.
    pub a: &'a Path,
    /// End B.
    pub b: &'a Path,
    /// Line rate, bit/s.
    pub baud: u64,
    /// Seed of both plans and of the data.
    pub seed: u64,
    /// About how long the plans run.
    pub secs: f64,
    /// A directory for the two ends' logs.
    pub logs: &'a Path,
    /// Time allowed after the last planned write for everything to arrive and both ends to exit.
    pub drain: Duration,
}

/// How a soak run went.
#[derive(Debug)]
pub struct SoakOutcome {
    /// The plans, A's then B's.
    pub plans: [Plan; 2],
    /// End A's exit, or why it has none.
    pub a: Result<ExitStatus, String>,
    /// End B's.
    pub b: Result<ExitStatus, String>,
    /// A->B, then B->A.
    pub directions: [DirectionReport; 2],
    /// The last lines of A's and B's logs.
    pub last_words: [String; 2],
    /// The `--stats` lines of A and B (frames, retransmissions, RTT), where they printed one.
    pub stats: [Option<String>; 2],
    /// Times (s) and lengths (s) by which a thread of this process sleeping 1 ms at a time woke up more
    /// than 10 ms late during the run: the machine's own stalls (CPU contention, a stolen virtual CPU),
    /// reported next to the gaps so that a reader can tell the two apart. They excuse nothing.
    pub machine_stalls: Vec<(f64, f64)>,
    /// Seconds from the start until both ends exited (or were killed).
    pub secs: f64,
}

impl SoakOutcome {
    /// The machine's stalls in words: the worst, and how many were longer than 50 ms.
    pub fn machine(&self) -> String {
        let worst = self.machine_stalls.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
        match worst {
            None => "no stall over 10 ms seen by a 1 ms sleeper in the harness".into(),
            Some((at, late)) => format!(
                "a 1 ms sleeper in the harness woke up to {:.0} ms late (at {at:.2} s); {} stalls over 50 ms",
                late * 1000.0,
                self.machine_stalls.iter().filter(|s| s.1 > 0.05).count()
            ),
        }
    }

    /// Every failure: an end that did not exit 0, a stream that is not byte-exact, a gap over the limit.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, st, words) in [("A", &self.a, &self.last_words[0]), ("B", &self.b, &self.last_words[1])] {
            match st {
                Ok(s) if s.success() => {}
                Ok(s) => out.push(format!("end {name}: {} ({words})", describe(*s))),
                Err(e) => out.push(format!("end {name}: {e} ({words})")),
            }
        }
        for d in &self.directions {
            if !d.exact {
                out.push(format!(
                    "{}: received {} of {} bytes, not byte-exact",
                    d.name, d.received, d.planned
                ));
            }
            if let Some(e) = &d.write_error {
                out.push(format!("{}: the sender could not write: {e}", d.name));
            }
            for g in d.over(GAP_LIMIT) {
                out.push(format!(
                    "{}: no delivery for {:.0} ms while byte {} was due (from {:.3} s to {:.3} s)",
                    d.name,
                    g.secs() * 1000.0,
                    g.offset,
                    g.from,
                    g.to
                ));
            }
        }
        out
    }
}

/// The bytes both ends write and read first (not timed): the soak starts once the link carries data.
const WARM_UP: &[u8] = b"strand soak: warm-up\n";

/// What a reader thread brings back: read times and the bytes.
type Received = (Vec<(Instant, u64)>, Vec<u8>);

/// What a writer thread brings back: when each write started and its size, and why it stopped early.
type Written = (Vec<(Instant, usize)>, Option<String>);

/// Runs one soak: two `strand pipe` ends, a writer and a reader on each, both plans at once.
pub fn run(soak: &Soak) -> Result<SoakOutcome, String> {
    let byte_secs = 10.0 / soak.baud as f64;
    let plans = [
        Plan::generate(soak.seed * 2 + 1, soak.secs, soak.baud),
        Plan::generate(soak.seed * 2 + 2, soak.secs, soak.baud),
    ];
    let payloads = [
        data(soak.seed * 2 + 1, plans[0].bytes() as usize),
        data(soak.seed * 2 + 2, plans[1].bytes() as usize),
    ];
    let start_end = |role: &'static str, dev: &Path, log: PathBuf| -> Result<Group, String> {
        let mut cmd = Command::new(soak.strand);
        cmd.arg("pipe").arg(dev).arg("--baud").arg(soak.baud.to_string()).arg("--stats");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        Group::spawn(role, cmd, &log, false).map_err(|e| format!("cannot start strand pipe ({role}): {e}"))
    };
    let mut ends = [
        start_end("end A", soak.a, soak.logs.join("a.log"))?,
        start_end("end B", soak.b, soak.logs.join("b.log"))?,
    ];
    let (mut stdins, mut stdouts) = (Vec::new(), Vec::new());
    for end in &mut ends {
        let (i, o) = end.take_stdio();
        stdins.push(i.ok_or("no stdin")?);
        stdouts.push(o.ok_or("no stdout")?);
    }
    // Warm-up: both ways, untimed; the plans start when both arrived.
    for stdin in &mut stdins {
        stdin.write_all(WARM_UP).map_err(|e| format!("warm-up write: {e}"))?;
    }
    let (ready_tx, ready_rx) = mpsc::channel();
    let spawn_reader = |mut out: std::process::ChildStdout| {
        let ready = ready_tx.clone();
        std::thread::spawn(move || -> Received {
            let mut warm = vec![0u8; WARM_UP.len()];
            let ok = out.read_exact(&mut warm).is_ok() && warm == WARM_UP;
            let _ = ready.send(ok);
            let (mut reads, mut got, mut buf) = (Vec::new(), Vec::new(), vec![0u8; 64 << 10]);
            if ok {
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    reads.push((Instant::now(), got.len() as u64));
                }
            }
            (reads, got)
        })
    };
    // End B's stdout carries A->B, end A's carries B->A.
    let b_out = stdouts.pop().ok_or("no stdout")?;
    let a_out = stdouts.pop().ok_or("no stdout")?;
    let readers = [spawn_reader(b_out), spawn_reader(a_out)];
    let warm_deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..2 {
        let left = warm_deadline.saturating_duration_since(Instant::now());
        if ready_rx.recv_timeout(left) != Ok(true) {
            for end in &mut ends {
                end.kill_all();
            }
            let words: Vec<String> = ends.iter().map(Group::last_words).collect();
            return Err(format!(
                "the warm-up did not cross the link within 30 s: A: {} / B: {}",
                words[0], words[1]
            ));
        }
    }
    let origin = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let canary = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut stalls, mut prev) = (Vec::new(), Instant::now());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
                let now = Instant::now();
                let late = now.duration_since(prev).as_secs_f64() - 0.001;
                if late > 0.010 {
                    stalls.push((prev.saturating_duration_since(origin).as_secs_f64(), late));
                }
                prev = now;
            }
            stalls
        })
    };
    let writers: Vec<JoinHandle<Written>> = stdins
        .into_iter()
        .zip(plans.iter().cloned().zip(payloads.clone()))
        .map(|(mut stdin, (plan, payload))| {
            std::thread::spawn(move || {
                let (mut done, mut offset) = (Vec::with_capacity(plan.writes.len()), 0usize);
                for w in &plan.writes {
                    let when = origin + Duration::from_secs_f64(w.at);
                    if let Some(wait) = when.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let started = Instant::now();
                    if let Err(e) = stdin.write_all(&payload[offset..offset + w.len]) {
                        return (done, Some(e.to_string()));
                    }
                    done.push((started, w.len));
                    offset += w.len;
                }
                (done, None) // dropping stdin ends the stream
            })
        })
        .collect();
    let deadline = origin + Duration::from_secs_f64(plans[0].secs().max(plans[1].secs())) + soak.drain;
    let statuses: Vec<Result<ExitStatus, String>> = ends
        .iter_mut()
        .map(|end| {
            let left = deadline.saturating_duration_since(Instant::now());
            end.wait_for(left).ok_or_else(|| {
                format!(
                    "still running {:.0} s after the start",
                    deadline.duration_since(origin).as_secs_f64()
                )
            })
        })
        .collect();
    let secs = origin.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let machine_stalls = canary.join().unwrap_or_default();
    for end in &mut ends {
        // One still running is asked to stop first (it prints its --stats), then killed; that also
        // unblocks a writer stuck on a full pipe and a reader on an open one.
        end.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
        end.kill_all();
    }
    let last_words = [ends[0].last_words(), ends[1].last_words()];
    let stats_line = |g: &Group| {
        let log = std::fs::read_to_string(&g.log).unwrap_or_default();
        log.lines().rev().find(|l| l.contains("retransmitted")).map(|l| l.trim().to_string())
    };
    let stats = [stats_line(&ends[0]), stats_line(&ends[1])];

    let writes: Vec<_> = writers.into_iter().map(|w| w.join().unwrap_or_default()).collect();
    let received: Vec<Received> = readers.into_iter().map(|r| r.join().unwrap_or_default()).collect();
    let since = |t: Instant| t.saturating_duration_since(origin).as_secs_f64();
    let directions: Vec<DirectionReport> = (0..2)
        .map(|i| {
            let (done, err) = &writes[i];
            let (reads, got) = &received[i];
            let w: Vec<(f64, usize)> = done.iter().map(|&(t, n)| (since(t), n)).collect();
            let r: Vec<(f64, u64)> = reads.iter().map(|&(t, n)| (since(t), n)).collect();
            DirectionReport {
                name: if i == 0 { "A->B" } else { "B->A" },
                written: w.iter().map(|x| x.1 as u64).sum(),
                planned: plans[i].bytes(),
                received: got.len() as u64,
                exact: *got == payloads[i],
                reads: r.len(),
                gaps: pending_gaps(&w, &r, secs, byte_secs),
                write_error: err.clone(),
            }
        })
        .collect();
    let [ab, ba]: [DirectionReport; 2] = directions.try_into().map_err(|_| "two directions")?;
    let mut statuses = statuses.into_iter();
    Ok(SoakOutcome {
        plans,
        a: statuses.next().ok_or("A")?,
        b: statuses.next().ok_or("B")?,
        directions: [ab, ba],
        last_words,
        stats,
        machine_stalls,
        secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTE: f64 = 5e-6; // 2 Mbit/s, 8N1

    fn worst(gaps: &[Gap]) -> f64 {
        gaps.iter().map(Gap::secs).fold(0.0, f64::max)
    }

    #[test]
    fn a_stall_while_data_is_due_is_a_gap() {
        let gaps = pending_gaps(&[(0.0, 1000)], &[(0.01, 500), (0.5, 1000)], 1.0, BYTE);
        assert_eq!(gaps.len(), 2, "{gaps:?}");
        assert!((worst(&gaps) - 0.49).abs() < 1e-9, "{gaps:?}");
        assert_eq!(gaps[1].offset, 500);
    }

    #[test]
    fn idle_time_with_nothing_written_is_not_a_gap() {
        let writes = [(0.0, 10), (2.0, 10)];
        let gaps = pending_gaps(&writes, &[(0.004, 10), (2.004, 20)], 3.0, BYTE);
        assert!(worst(&gaps) < 0.005, "{gaps:?}");
        assert!(gaps.iter().all(|g| g.from >= 2.0 || g.to <= 0.004), "{gaps:?}");
    }

    #[test]
    fn bytes_queued_behind_a_burst_are_due_only_when_the_line_could_have_carried_them() {
        // 200,000 bytes (1 s of line) then 10 bytes at 0.1 s; reads every 50 ms keep pace with the line.
        let writes = [(0.0, 200_000), (0.1, 10)];
        let reads: Vec<(f64, u64)> =
            (1..=21).map(|i| (i as f64 * 0.05, (i * 10_000).min(200_010) as u64)).collect();
        assert!(worst(&pending_gaps(&writes, &reads, 2.0, BYTE)) <= 0.05 + 1e-9);
        // The same stream, but after the read at 0.25 s the receiver hears nothing until 0.8 s.
        let stalled: Vec<(f64, u64)> =
            reads.iter().copied().filter(|&(t, _)| !(0.26..0.79).contains(&t)).collect();
        let gaps = pending_gaps(&writes, &stalled, 2.0, BYTE);
        assert!((worst(&gaps) - 0.55).abs() < 1e-4, "{gaps:?}");
    }

    #[test]
    fn a_stream_that_stops_short_counts_until_the_end() {
        let gaps = pending_gaps(&[(0.0, 100)], &[(0.01, 50)], 5.0, BYTE);
        assert!((worst(&gaps) - 4.99).abs() < 1e-9, "{gaps:?}");
        assert!(pending_gaps(&[(0.0, 100)], &[], 5.0, BYTE)[0].from < 0.001);
        assert!(pending_gaps(&[], &[], 5.0, BYTE).is_empty());
    }

    #[test]
    fn plans_are_seeded_and_mixed() {
        let p = Plan::generate(7, 30.0, 2_000_000);
        assert_eq!(p, Plan::generate(7, 30.0, 2_000_000));
        assert_ne!(p, Plan::generate(8, 30.0, 2_000_000));
        let (interactive, bursts, idles) = p.counts;
        assert!(interactive > 20 && bursts > 5 && idles > 3, "{:?}", p.counts);
        assert!(p.writes.iter().all(|w| (1..=MAX_BURST).contains(&w.len)));
        assert!(p.writes.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(p.secs() < 30.0 && p.secs() > 20.0, "{}", p.secs());
    }
}
