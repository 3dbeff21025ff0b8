//! diodenet (issue 12): strand's one-way transfer over UDP at network speed,
//! against lidi, in the same run.
//!
//! Inside an unprivileged network namespace (`unshare -rn`, so nothing on the
//! host's network changes) loopback is shaped with `tc` HTB: datagrams to the
//! relay's port cross a class of `--cap` bit/s. A relay thread drops datagrams
//! with a seeded loss model (independent, or in bursts) and forwards the rest
//! to the receiver. Each run sends the same random file; the receiver's copy
//! is compared byte for byte. Recorded per run: time from starting the
//! sender to the receiver holding the file, payload bytes the sender put on
//! the path (a one-pass run: all of its pass), CPU of each side from `wait4`,
//! and datagrams the receiving host dropped. A CSV, a markdown table of
//! medians over seeds, and an SVG plot come out.
//!
//! strand runs in two modes: `onepass` (`--expect-loss p`: the loss is told to
//! the sender) and `carousel` (`--forever` with the default first-pass repair;
//! the run ends when the receiver has the file). lidi 2.1.1 runs when
//! `--lidi DIR` names its release binaries, with its repair percentage set for
//! the loss (two settings, see `runs::lidi_repairs`). This is a benchmark, not a test: it
//! prints figures and exits 0 unless it could not run (exit 77, said loudly).
//!
//! `cargo run --release -p strand-hil --bin diodenet -- --help`

#[path = "../diodenet/interleave.rs"]
mod interleave;
#[path = "../diodenet/netns.rs"]
mod netns;
#[path = "../diodenet/relay.rs"]
mod relay;
#[path = "../diodenet/report.rs"]
mod report;
#[path = "../diodenet/runs.rs"]
mod runs;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use relay::Loss;
use report::Record;

#[derive(Parser, Debug)]
#[command(
    about = "strand diode-tx/rx over UDP shaped to 300 Mbit/s with seeded loss, against lidi, in a network namespace"
)]
struct Args {
    /// Loss conditions: a percentage (independent losses) or PbM (P% in bursts of mean M datagrams).
    #[arg(long, value_delimiter = ',', default_values_t = ["0".to_string(), "5".into(), "10".into(), "20".into(), "10b10".into()])]
    loss: Vec<String>,
    /// Seeds per condition and tool.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// File size in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    bytes: usize,
    /// The shaped rate in bit/s (also strand's --rate and receive-buffer sizing).
    #[arg(long, default_value_t = 300_000_000)]
    cap: u64,
    /// Tools: strand-onepass, strand-carousel, lidi.
    #[arg(long, value_delimiter = ',', default_values_t = ["strand-onepass".to_string(), "strand-carousel".into(), "lidi".into()])]
    tools: Vec<String>,
    /// The strand binary [default: target/release/strand of this workspace].
    #[arg(long)]
    strand: Option<PathBuf>,
    /// Directory of lidi's release binaries (diode-send, diode-receive, diode-send-file, diode-receive-file).
    #[arg(long)]
    lidi: Option<PathBuf>,
    /// Also run lidi with its default repair (2%) at every loss, to show where it stalls.
    #[arg(long)]
    lidi_default_repair: bool,
    /// Seconds a run may take before it counts as failed.
    #[arg(long, default_value_t = 40)]
    deadline: u64,
    /// Where the CSV goes.
    #[arg(long, default_value = "diodenet.csv")]
    csv: PathBuf,
    /// Where the SVG plot goes.
    #[arg(long, default_value = "diodenet.svg")]
    svg: PathBuf,
    /// Keep the runs' directories and logs (printed at the end) instead of removing them.
    #[arg(long)]
    keep_work: bool,
    /// Redraw the table and plot from this CSV without running anything.
    #[arg(long)]
    replot: Option<PathBuf>,
    /// Instead of running anything, simulate this many one-pass sends of a
    /// --bytes file in 1400-byte symbols per --loss, with every block
    /// interleaved and in groups of 6, 4, 3, 2, 1 blocks, and count the
    /// passes that leave a block short (why one pass interleaves the whole file).
    #[arg(long)]
    interleave: Option<u64>,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(csv) = &args.replot {
        let records = match std::fs::read_to_string(csv)
            .map_err(|e| e.to_string())
            .and_then(|t| report::read_csv(&t))
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("diodenet: {}: {e}", csv.display());
                return ExitCode::FAILURE;
            }
        };
        print!("{}", report::table(&records));
        if let Err(e) = report::plot(&args.svg, &records) {
            eprintln!("diodenet: plot: {e}");
        }
        return ExitCode::SUCCESS;
    }
    if let Some(passes) = args.interleave {
        let conditions: Result<Vec<Loss>, String> = args.loss.iter().map(|s| Loss::parse(s)).collect();
        return match conditions.and_then(|c| interleave::run(args.bytes as u64, 1400, &c, passes)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("diodenet: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(code) = netns::reexec_inside() {
        return code;
    }
    if let Err(e) = netns::shape(args.cap, runs::RELAY_PORT) {
        return netns::skipped(&format!("cannot shape loopback in the namespace: {e}"));
    }
    let conditions: Vec<Loss> = match args.loss.iter().map(|s| Loss::parse(s)).collect() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("diodenet: {e}");
            return ExitCode::FAILURE;
        }
    };
    let strand = args
        .strand
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/strand"));
    if !strand.exists() {
        return netns::skipped(&format!("{} is missing: cargo build --release -p strand", strand.display()));
    }
    let lidi = args.lidi.clone().filter(|_| args.tools.iter().any(|t| t == "lidi"));
    if args.tools.iter().any(|t| t == "lidi") && lidi.is_none() {
        eprintln!("diodenet: lidi not run: give --lidi DIR with its release binaries (see docs/performance.md); compare with the issue's figures instead");
    }
    let work = match tempfile_dir() {
        Ok(w) => w,
        Err(e) => return netns::skipped(&format!("no scratch directory: {e}")),
    };
    let mut bytes = vec![0u8; args.bytes];
    Pcg64::seed_from_u64(12).fill_bytes(&mut bytes);
    let file = work.join("payload.bin");
    if let Err(e) = std::fs::write(&file, &bytes) {
        return netns::skipped(&format!("cannot write {}: {e}", file.display()));
    }
    let setup = runs::Setup {
        strand,
        lidi,
        file,
        bytes,
        cap: args.cap,
        work: work.clone(),
        deadline: Duration::from_secs(args.deadline),
    };
    eprintln!("diodenet: shaped: {}", netns::describe());
    eprintln!("diodenet: load average at start: {}", loadavg());
    let mut records: Vec<Record> = Vec::new();
    let mut csv = match std::fs::File::create(&args.csv) {
        Ok(mut f) => {
            let _ = writeln!(f, "{}", report::HEADER);
            f
        }
        Err(e) => {
            eprintln!("diodenet: cannot write {}: {e}", args.csv.display());
            return ExitCode::FAILURE;
        }
    };
    for loss in &conditions {
        for seed in 1..=args.seeds {
            let mut runs: Vec<Box<dyn Fn() -> Result<Record, String>>> = Vec::new();
            for t in &args.tools {
                let (setup, loss) = (&setup, *loss);
                match t.as_str() {
                    "strand-onepass" => {
                        runs.push(Box::new(move || runs::strand(setup, "onepass", loss, seed)))
                    }
                    "strand-carousel" => {
                        runs.push(Box::new(move || runs::strand(setup, "carousel", loss, seed)))
                    }
                    "lidi" if setup.lidi.is_some() => {
                        for repair in runs::lidi_repairs(loss) {
                            runs.push(Box::new(move || runs::lidi(setup, repair, loss, seed)));
                        }
                        if args.lidi_default_repair && !runs::lidi_repairs(loss).contains(&2) {
                            runs.push(Box::new(move || runs::lidi(setup, 2, loss, seed)));
                        }
                    }
                    "lidi" => {}
                    other => eprintln!("diodenet: unknown tool {other}"),
                }
            }
            for run in runs {
                // A run whose relay dropped datagrams itself (its socket full on a
                // busy machine) lost more than the condition says: it does not
                // count, and is made again (at most twice more).
                let mut made = run();
                for attempt in 2..=3 {
                    match &made {
                        Ok(r) if r.relay_overflow > 0 => {
                            eprintln!(
                                "diodenet: {} loss {} seed {seed}: the relay itself dropped {} datagrams; run again ({attempt}/3)",
                                r.tool, r.condition, r.relay_overflow
                            );
                            made = run();
                        }
                        _ => break,
                    }
                }
                match made {
                    Ok(r) => {
                        eprintln!(
                            "diodenet: {:>16} loss {:>6} seed {seed}: {} {:.2} s, {:.1} Mbit/s, bytes/limit {:.4}, cpu tx {:.2} rx {:.2} s/GB {}",
                            r.tool,
                            r.condition,
                            if r.ok { "ok  " } else { "FAIL" },
                            r.secs,
                            r.mbit,
                            r.ratio,
                            r.tx_cpu_per_gb,
                            r.rx_cpu_per_gb,
                            r.note
                        );
                        let _ = writeln!(csv, "{}", report::csv_line(&r));
                        records.push(r);
                    }
                    Err(e) => eprintln!("diodenet: run not made: {e}"),
                }
            }
        }
    }
    eprintln!("diodenet: load average at end: {}", loadavg());
    println!("{}", report::table(&records));
    if let Err(e) = report::plot(&args.svg, &records) {
        eprintln!("diodenet: plot: {e}");
    }
    if args.keep_work {
        eprintln!("diodenet: logs kept in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    ExitCode::SUCCESS
}

/// A scratch directory for the runs (removed at the end).
fn tempfile_dir() -> std::io::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("diodenet-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
