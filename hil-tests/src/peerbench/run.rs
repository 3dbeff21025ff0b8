//! One run: a fresh line emulator, the receiver, then the sender, a deadline, and the verdict.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::line::{LineCounters, Linkem};
use super::peers::{received, Ends, Peer};
use super::procs::{describe, wait_until_open, Group};
use super::report::fmt_ber;

/// A line condition: independent bit errors at `ber`, or Gilbert-Elliott bursts.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Independent bit errors (0: a clean line).
    Iid(f64),
    /// Bursts: `--burst P_ENTER,P_LEAVE,BER_BAD` with no errors between them.
    Burst {
        /// The spec as given to linkem.
        spec: String,
        /// Long-run mean BER.
        mean: f64,
    },
}

impl Condition {
    /// A burst condition from `P_ENTER,P_LEAVE,BER_BAD` (per bit).
    pub fn burst(spec: &str) -> Result<Condition, String> {
        let nums: Vec<f64> = spec
            .split(',')
            .map(|s| s.trim().parse::<f64>().map_err(|_| format!("--burst: {s:?} is not a number")))
            .collect::<Result<_, _>>()?;
        let [enter, leave, bad] = nums[..] else {
            return Err(format!("--burst wants P_ENTER,P_LEAVE,BER_BAD or off, got {spec:?}"));
        };
        if ![enter, leave, bad].iter().all(|p| (0.0..=1.0).contains(p)) || leave == 0.0 {
            return Err(format!("--burst {spec}: probabilities in [0, 1] and P_LEAVE > 0, please"));
        }
        // Share of bits in the bad state, times the BER there.
        let mean = enter / (enter + leave) * bad;
        Ok(Condition::Burst { spec: spec.trim().to_string(), mean })
    }

    /// The CSV `condition` column.
    pub fn label(&self) -> String {
        match self {
            Condition::Iid(ber) if *ber == 0.0 => "clean".into(),
            Condition::Iid(_) => "iid".into(),
            Condition::Burst { spec, .. } => format!("burst {spec}"),
        }
    }

    /// The CSV `ber` column: the BER, or the bursts' long-run mean.
    pub fn ber(&self) -> f64 {
        match self {
            Condition::Iid(ber) => *ber,
            Condition::Burst { mean, .. } => *mean,
        }
    }

    /// linkem's options for it.
    fn linkem_args(&self) -> Vec<String> {
        match self {
            Condition::Iid(ber) => vec!["--ber".into(), ber.to_string()],
            Condition::Burst { spec, .. } => vec!["--burst".into(), spec.clone()],
        }
    }

    /// In words, for progress lines.
    pub fn describe(&self) -> String {
        match self {
            Condition::Iid(ber) => format!("BER {}", fmt_ber(*ber)),
            Condition::Burst { mean, .. } => format!("bursts, mean BER {}", fmt_ber(*mean)),
        }
    }
}

/// Everything one run needs.
pub struct Job<'a> {
    /// The program under test.
    pub peer: Peer,
    /// Line rate, bit/s.
    pub rate: u64,
    /// Line condition.
    pub condition: &'a Condition,
    /// One-way latency of the line, ms.
    pub latency_ms: u64,
    /// Seed of the line damage.
    pub seed: u64,
    /// The file to send, and its BLAKE3.
    pub src: &'a Path,
    /// BLAKE3 of `src`.
    pub hash: blake3::Hash,
    /// Its size.
    pub bytes: u64,
    /// Time allowed from starting the receiver until both have exited.
    pub timeout: Duration,
    /// The `strand` binary (the tool under test when `peer` is strand, and the line emulator always).
    pub strand: &'a Path,
    /// The ZMODEM tcdrain shim, if built.
    pub shim: Option<&'a Path>,
    /// A fresh, empty directory for this run.
    pub dir: PathBuf,
}

/// What one run came to.
#[derive(Debug)]
pub struct Outcome {
    /// Wall time from starting the receiver until both exited (or until the failure was seen).
    pub seconds: f64,
    /// `Err(reason)` for a timeout, a non-zero exit or a wrong file.
    pub verdict: Result<(), String>,
    /// What the line counted, when linkem reported it.
    pub counters: Option<LineCounters>,
}

/// Runs `job` and never panics on a misbehaving tool: every problem becomes a failure reason.
pub fn run(job: &Job) -> Outcome {
    let out = job.dir.join("out");
    if let Err(e) = std::fs::create_dir_all(&out) {
        return Outcome {
            seconds: 0.0,
            verdict: Err(format!("cannot create {}: {e}", out.display())),
            counters: None,
        };
    }
    let mut args = vec![
        "--baud".to_string(),
        job.rate.to_string(),
        "--latency-ms".into(),
        job.latency_ms.to_string(),
        "--seed".into(),
        job.seed.to_string(),
    ];
    args.extend(job.condition.linkem_args());
    let line = match Linkem::start(job.strand, &job.dir, &args) {
        Ok(line) => line,
        Err(e) => return Outcome { seconds: 0.0, verdict: Err(format!("linkem: {e}")), counters: None },
    };
    let ends = Ends {
        strand: job.strand,
        rate: job.rate,
        a: &line.a,
        b: &line.b,
        src: job.src,
        out: &out,
        shim: job.shim,
        linkem_pid: line.pid(),
    };
    let (seconds, mut verdict) = transfer(job, &ends);
    let file = received(&ends);
    let counters = line.stop();
    if verdict.is_ok() {
        verdict = verify(&file, job);
    }
    Outcome { seconds, verdict, counters }
}

/// Starts the receiver, then (once it has its pty open) the sender, and waits for both within the
/// deadline; returns the elapsed time and whether both exited 0. Whatever still runs is killed.
fn transfer(job: &Job, ends: &Ends) -> (f64, Result<(), String>) {
    let (recv_cmd, send_cmd) = match job.peer.commands(ends) {
        Ok(cmds) => cmds,
        Err(e) => return (0.0, Err(e)),
    };
    let start = Instant::now();
    let elapsed = || start.elapsed().as_secs_f64();
    let spawn = |role, launch: super::peers::Launch, log: &str| {
        Group::spawn(role, launch.cmd, &job.dir.join(log), launch.stdout_to_log)
            .map_err(|e| format!("cannot start the {role}: {e}"))
    };
    let mut receiver = match spawn("receiver", recv_cmd, "receiver.log") {
        Ok(g) => g,
        Err(e) => return (elapsed(), Err(e)),
    };
    // A receiver that never opens its end is caught below (it exits, or the deadline passes).
    wait_until_open(&mut receiver, ends.b, Duration::from_secs(5));
    let mut sender = match spawn("sender", send_cmd, "sender.log") {
        Ok(g) => g,
        Err(e) => return (elapsed(), Err(e)),
    };
    let verdict =
        supervise(&mut receiver, &mut sender, start + job.timeout, || progress(ends.out, job.bytes));
    let seconds = elapsed();
    // Drop kills both groups if they still run.
    (seconds, verdict)
}

/// Polls both processes until both exited 0 (Ok), one failed, or `deadline` passed.
fn supervise(
    receiver: &mut Group,
    sender: &mut Group,
    deadline: Instant,
    progress: impl Fn() -> String,
) -> Result<(), String> {
    loop {
        let (r, s) = (receiver.poll(), sender.poll());
        for (group, status) in [(&*sender, s), (&*receiver, r)] {
            if let Some(st) = status.filter(|st| !st.success()) {
                return Err(format!(
                    "{} {} ({}); {}",
                    group.role,
                    describe(st),
                    group.last_words(),
                    progress()
                ));
            }
        }
        if r.is_some() && s.is_some() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let running: Vec<&str> = [(r, "receiver"), (s, "sender")]
                .iter()
                .filter(|(st, _)| st.is_none())
                .map(|(_, role)| *role)
                .collect();
            return Err(format!("timeout ({} still running; {})", running.join(" and "), progress()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How much the receiver has written so far (every file under its directory), in words.
fn progress(out: &Path, bytes: u64) -> String {
    fn size(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => size(&e.path()),
                        Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
                        _ => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    format!("the receiver had written {} of {} bytes", size(out), bytes)
}

/// Checks the received file's size and BLAKE3 against the source.
fn verify(path: &Path, job: &Job) -> Result<(), String> {
    let len = std::fs::metadata(path).map_err(|_| "exit 0 but no file received".to_string())?.len();
    if len != job.bytes {
        return Err(format!("exit 0 but wrong size: {len} of {} bytes", job.bytes));
    }
    let mut hasher = blake3::Hasher::new();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    hasher.update_reader(file).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if hasher.finalize() != job.hash {
        return Err("exit 0 but wrong hash: the file is corrupt".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_mean_and_labels() {
        let c = Condition::burst("3.3e-6,3.3e-3,1e-2").unwrap();
        assert!((c.ber() - 1e-5).abs() < 1e-7, "{}", c.ber());
        assert_eq!(c.label(), "burst 3.3e-6,3.3e-3,1e-2");
        assert_eq!(Condition::Iid(0.0).label(), "clean");
        assert_eq!(Condition::Iid(1e-5).label(), "iid");
        assert!(Condition::burst("1,2").is_err());
        assert!(Condition::burst("0.1,0,0.5").is_err());
    }
}
