//! peerbench: strand against the tools people use today — gensio relpkt, ZMODEM (lrzsz) and C-Kermit —
//! through the same emulated serial line (`strand linkem`, real time, two pseudo-terminals), moving the
//! same random file, verified by BLAKE3.
//!
//! Each run: a fresh directory and line emulator, the receiver, then the sender once the receiver has its
//! pty open, a deadline (3x the ideal time at the line rate + 20 s by default), and the verdict. A
//! timeout, a non-zero exit or a wrong file is a recorded failure (goodput 0, with the reason), never a
//! crash of the benchmark. Goodput is whole-process: file size divided by the wall time from starting the
//! receiver until both programs have exited successfully.
//!
//! `cargo run --release -p strand-hil --bin peerbench -- --help`

#[path = "../peerbench/peers.rs"]
mod peers;
#[path = "../peerbench/plot.rs"]
mod plot;
#[path = "../peerbench/report.rs"]
mod report;
#[path = "../peerbench/run.rs"]
mod run;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Parser;
// The line emulator and process groups are shared with streambench (and its tests) through the library.
use strand_hil::{line, procs};

use peers::Peer;
use report::{fmt_bytes, Record};
use run::{Condition, Job};

/// Bursts of ~300 bits (P_LEAVE 1/300) with a BER of 1e-2 inside, in the bad state 0.1% of the time:
/// a long-run mean BER of 1e-5 (3 bit errors per burst, a burst every ~300,000 bits).
const DEFAULT_BURST: &str = "3.3e-6,3.3e-3,1e-2";

#[derive(Parser, Debug)]
#[command(
    about = "strand vs gensio relpkt, ZMODEM (lrzsz) and C-Kermit over the same emulated serial line",
    long_about = "strand vs gensio relpkt, ZMODEM (lrzsz) and C-Kermit over the same emulated serial line.\n\n\
        Every tool moves the same random file through `strand linkem` (real time, two ptys) for each \
        line rate and condition; the received file is checked against the source by BLAKE3. Needs \
        `apt-get install gensio-bin lrzsz ckermit gcc` (gcc builds the ZMODEM tcdrain shim) and \
        `cargo build --release -p strand`. With the defaults (48 runs) it takes about 15 minutes; \
        failures wait for their deadline, so noisier matrices take longer."
)]
struct Args {
    /// Line rates in bit/s (8N1: 10 bits per byte).
    #[arg(long, value_delimiter = ',', default_values_t = vec![2_000_000, 115_200])]
    rates: Vec<u64>,
    /// Independent bit-error rates (0: a clean line).
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.0, 1e-6, 1e-5, 1e-4, 1e-3])]
    bers: Vec<f64>,
    /// The bursty condition: Gilbert-Elliott P_ENTER,P_LEAVE,BER_BAD per bit (default: mean BER 1e-5,
    /// bursts of ~300 bits), or `off`.
    #[arg(long, default_value = DEFAULT_BURST)]
    burst: String,
    /// Tools to compare.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = Peer::ALL.to_vec())]
    tools: Vec<Peer>,
    /// File size at rates of --fast-from bit/s and above.
    #[arg(long, default_value_t = 1 << 20)]
    bytes_fast: u64,
    /// File size below --fast-from (128 KiB at 115,200 bit/s: ~11 s per clean run).
    #[arg(long, default_value_t = 128 << 10)]
    bytes_slow: u64,
    /// Rate (bit/s) from which --bytes-fast applies.
    #[arg(long, default_value_t = 1_000_000)]
    fast_from: u64,
    /// Seed of the file's contents and of the line damage (the same for every tool).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One-way latency of the line in ms (1: a USB-serial adapter with its latency timer at 1 ms).
    #[arg(long, default_value_t = 1)]
    latency_ms: u64,
    /// Deadline of a run: this many times the ideal time at the line rate ...
    #[arg(long, default_value_t = 3.0)]
    timeout_factor: f64,
    /// ... plus this many seconds.
    #[arg(long, default_value_t = 20.0)]
    timeout_slack: f64,
    /// Write the results here as CSV (rewritten after every run).
    #[arg(long)]
    out_csv: Option<PathBuf>,
    /// Draw the plot here (SVG, one panel per rate).
    #[arg(long)]
    out_svg: Option<PathBuf>,
    /// Print the Markdown tables (results, failures, versions, settings) on stdout at the end.
    #[arg(long)]
    markdown: bool,
    /// The strand binary [default: target/release/strand of this workspace].
    #[arg(long)]
    strand: Option<PathBuf>,
    /// How to name the strand build in the version column [default: `strand --version` plus the
    /// workspace's git commit when --strand is the workspace's own binary].
    #[arg(long)]
    strand_rev: Option<String>,
    /// Run nothing: read results from this CSV and write --out-svg / --markdown from them.
    #[arg(long)]
    from_csv: Option<PathBuf>,
    /// Keep each run's directory (logs of both programs and of linkem) and print where it is.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peerbench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the matrix (or reads it back), then writes the outputs asked for.
fn bench(args: &Args) -> Result<(), String> {
    let records = match &args.from_csv {
        Some(path) => report::read_csv(path)?,
        None => measure(args)?,
    };
    if let Some(svg) = &args.out_svg {
        plot::plot(svg, &records)?;
        eprintln!("plot: {}", svg.display());
    }
    if args.markdown {
        print!("{}", report::markdown(&records));
    }
    Ok(())
}

/// The workspace root (this package's parent).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `--strand`, or the release build beside this benchmark.
fn strand_binary(args: &Args) -> Result<PathBuf, String> {
    procs::release_strand(args.strand.as_deref())
}

/// strand's version column: `--strand-rev`, else `strand --version` and, for the workspace's own binary,
/// the git commit (with `+dirty` when link/ or host/ have uncommitted changes).
fn strand_version(args: &Args, strand: &Path) -> String {
    let base = Peer::Strand.version(strand);
    if let Some(rev) = &args.strand_rev {
        return format!("{base} ({rev})");
    }
    if args.strand.is_some() {
        return base;
    }
    let git = |a: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace())
            .args(a)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--", "link", "host"]).is_some_and(|s| !s.is_empty());
            format!("{base} (git {rev}{})", if dirty { "+dirty" } else { "" })
        }
        None => base,
    }
}

/// The line conditions: each BER, then the bursts unless `--burst off`.
fn conditions(args: &Args) -> Result<Vec<Condition>, String> {
    if let Some(bad) = args.bers.iter().find(|b| !(0.0..1.0).contains(*b)) {
        return Err(format!("--bers: {bad} is not a bit-error rate"));
    }
    let mut list: Vec<Condition> = args.bers.iter().map(|&b| Condition::Iid(b)).collect();
    if args.burst != "off" {
        list.push(Condition::burst(&args.burst)?);
    }
    Ok(list)
}

/// The random file of `bytes` bytes for `seed` (BLAKE3 in XOF mode: the same bytes on every machine).
fn make_file(dir: &Path, bytes: u64, seed: u64) -> Result<(PathBuf, blake3::Hash), String> {
    let sub = dir.join(format!("src-{bytes}"));
    std::fs::create_dir_all(&sub).map_err(|e| format!("cannot create {}: {e}", sub.display()))?;
    let path = sub.join("payload.bin");
    let mut data = vec![0u8; bytes as usize];
    blake3::Hasher::new()
        .update(format!("peerbench payload, seed {seed}").as_bytes())
        .finalize_xof()
        .fill(&mut data);
    std::fs::write(&path, &data).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((path, blake3::hash(&data)))
}

/// Runs every (rate, condition, tool) once and returns the records, writing the CSV as it goes.
fn measure(args: &Args) -> Result<Vec<Record>, String> {
    let strand = strand_binary(args)?;
    let conditions = conditions(args)?;
    let root = std::env::temp_dir().join(format!("peerbench-{}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let shim = if args.tools.contains(&Peer::Zmodem) {
        peers::build_shim(&root)
            .inspect_err(|e| eprintln!("peerbench: ZMODEM runs without the tcdrain shim: {e}"))
            .ok()
    } else {
        None
    };
    let versions: Vec<(Peer, String)> = args
        .tools
        .iter()
        .map(|&p| (p, if p == Peer::Strand { strand_version(args, &strand) } else { p.version(&strand) }))
        .collect();
    for (p, v) in &versions {
        eprintln!("{}: {v}", p.title());
    }
    let total = args.rates.len() * conditions.len() * args.tools.len();
    eprintln!("{}", plan(args, &conditions, total));
    let mut records = Vec::new();
    for &rate in &args.rates {
        if rate == 0 {
            return Err("--rates: 0 bit/s".into());
        }
        let bytes = if rate >= args.fast_from { args.bytes_fast } else { args.bytes_slow };
        let (src, hash) = make_file(&root, bytes, args.seed)?;
        let ideal = bytes as f64 * 10.0 / rate as f64;
        let timeout = Duration::from_secs_f64(ideal * args.timeout_factor + args.timeout_slack);
        for condition in &conditions {
            for (peer, version) in &versions {
                let dir = root.join(format!("run-{}", records.len() + 1));
                let job = Job {
                    peer: *peer,
                    rate,
                    condition,
                    latency_ms: args.latency_ms,
                    seed: args.seed,
                    src: &src,
                    hash,
                    bytes,
                    timeout,
                    strand: &strand,
                    shim: shim.as_deref(),
                    dir: dir.clone(),
                };
                let record = measure_one(&job, version, shim.is_some());
                eprintln!(
                    "[{}/{total}] {rate} bit/s, {}, {}: {}{}",
                    records.len() + 1,
                    condition.describe(),
                    peer.title(),
                    if record.ok {
                        format!("{:.1}% of line limit ({:.2} s)", record.pct, record.seconds)
                    } else {
                        format!("FAILED after {:.1} s: {}", record.seconds, record.reason)
                    },
                    if args.keep { format!(" [{}]", dir.display()) } else { String::new() }
                );
                if !args.keep {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                records.push(record);
                if let Some(csv) = &args.out_csv {
                    report::write_csv(csv, &records)?;
                }
            }
        }
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(records)
}

/// Runs one job and turns its outcome into a record.
fn measure_one(job: &Job, version: &str, shim: bool) -> Record {
    let outcome = run::run(job);
    let ok = outcome.verdict.is_ok();
    let goodput = if ok && outcome.seconds > 0.0 { job.bytes as f64 / outcome.seconds } else { 0.0 };
    let reason = match &outcome.verdict {
        Ok(()) => String::new(),
        Err(e) if e.starts_with("timeout") => {
            format!("timeout after {:.1} s {}", job.timeout.as_secs_f64(), &e["timeout ".len()..])
        }
        Err(e) => e.clone(),
    };
    let counters = outcome.counters.unwrap_or_default();
    Record {
        tool: job.peer.name().into(),
        version: version.into(),
        settings: job.peer.settings(job.rate, shim),
        bit_rate: job.rate,
        condition: job.condition.label(),
        ber: job.condition.ber(),
        bytes: job.bytes,
        seconds: outcome.seconds,
        goodput,
        pct: goodput / (job.rate as f64 / 10.0) * 100.0,
        ok,
        reason,
        seed: job.seed,
        line_a_to_b: counters.a_to_b.written,
        line_b_to_a: counters.b_to_a.written,
        bit_errors: counters.a_to_b.bit_errors + counters.b_to_a.bit_errors,
    }
}

/// The plan in one line, printed before the runs start.
fn plan(args: &Args, conditions: &[Condition], total: usize) -> String {
    let conds: Vec<String> = conditions.iter().map(Condition::describe).collect();
    format!(
        "{total} runs: rates {:?} bit/s; {}; tools {}; {} at >= {} bit/s, else {}; seed {}; latency {} ms; \
         deadline {}x ideal + {} s",
        args.rates,
        conds.join(", "),
        args.tools.iter().map(|t| t.name()).collect::<Vec<_>>().join(","),
        fmt_bytes(args.bytes_fast),
        args.fast_from,
        fmt_bytes(args.bytes_slow),
        args.seed,
        args.latency_ms,
        args.timeout_factor,
        args.timeout_slack
    )
}
