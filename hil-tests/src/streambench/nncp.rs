//! `streambench nncp`: NNCP over `strand pipe` the way users wire it (issue 11, case 4), N runs per
//! BER, each on its own `strand linkem` seed, and NNCP over the same raw line (socat, no strand) with
//! the same seed for comparison.
//!
//! Goodput of a run = payload (file) size / (time from launching `nncp-call` until bob's NNCP log
//! records `Got packet ... 100% ... done`), as a share of the line's payload limit (baud / 10 bytes/s,
//! 200,000 B/s at 2 Mbit/s). A run passes when the call and both transport ends exit 0 and the file is
//! byte-exact after `nncp-toss`; a failed run counts as 0% in the median. Targets (strand only): every
//! run passes and the median is at least `--target-pct` at every BER.

use std::time::Duration;

use strand_hil::line::Linkem;
use strand_hil::nncp::{self, Call, Transport};
use strand_hil::report::{fmt_ber, median};
use strand_hil::testdata::data;

use crate::{verdict, Ctx};

/// `streambench nncp`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Runs per BER (each with its own linkem seed: --seed, --seed + 1, ...).
    #[arg(long, default_value_t = 10)]
    runs: u64,
    /// Bit-error rates of the line.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.0, 1e-4])]
    ber: Vec<f64>,
    /// The first linkem seed (also seeds the file's contents).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Size of the file NNCP carries.
    #[arg(long, default_value_t = 1 << 20)]
    bytes: usize,
    /// Line rate, bit/s.
    #[arg(long, default_value_t = 2_000_000)]
    baud: u64,
    /// Median goodput target for strand, % of the line.
    #[arg(long, default_value_t = 85.0)]
    target_pct: f64,
    /// Time a call may take before it is killed and counted as failed, s.
    #[arg(long, default_value_t = 60)]
    call_limit: u64,
    /// Skip the raw-line comparison (it needs socat).
    #[arg(long)]
    no_raw: bool,
}

/// One run's result.
struct Row {
    transport: &'static str,
    ber: f64,
    seed: u64,
    ok: bool,
    goodput_pct: f64,
    done_secs: Option<f64>,
    call_secs: f64,
    bit_errors: Option<u64>,
    reason: String,
}

const HEADER: [&str; 9] =
    ["transport", "ber", "seed", "ok", "goodput_pct", "done_secs", "call_secs", "bit_errors", "reason"];

impl Row {
    fn fields(&self) -> Vec<String> {
        vec![
            self.transport.into(),
            fmt_ber(self.ber),
            self.seed.to_string(),
            self.ok.to_string(),
            format!("{:.2}", self.goodput_pct),
            self.done_secs.map_or(String::new(), |s| format!("{s:.3}")),
            format!("{:.3}", self.call_secs),
            self.bit_errors.map_or(String::new(), |b| b.to_string()),
            self.reason.clone(),
        ]
    }
}

/// Runs the matrix; Ok(true) when every strand run passed and every target was met.
pub fn run(ctx: &Ctx, args: &Args) -> Result<bool, String> {
    if let Some(p) = nncp::PROGRAMS.iter().find(|p| which(p).is_none()) {
        return Err(format!("{p} is not installed (apt-get install nncp)"));
    }
    let raw = !args.no_raw;
    if raw && which("socat").is_none() {
        return Err("socat is not installed (apt-get install socat), or pass --no-raw".into());
    }
    let modes: Vec<&str> = if raw { vec!["strand", "raw"] } else { vec!["strand"] };
    println!(
        "NNCP 8.8 nncp-call (pipe address) -> nncp-daemon -ucspi over FIFOs, -onlinedeadline 2, {} B file, \
         {} bit/s linkem (latency 1 ms), {} runs per BER, linkem seeds {}..={}, transports {}",
        args.bytes,
        args.baud,
        args.runs,
        args.seed,
        args.seed + args.runs.saturating_sub(1),
        modes.join(", ")
    );
    let line_limit = args.baud as f64 / 10.0;
    let mut rows: Vec<Row> = Vec::new();
    for &ber in &args.ber {
        for i in 0..args.runs {
            let seed = args.seed + i;
            let content = data(seed, args.bytes);
            for &mode in &modes {
                let dir = ctx.run_dir(&format!("nncp-{mode}-{}-{seed}", fmt_ber(ber)))?;
                let transport = match mode {
                    "strand" => Transport::Strand { strand: &ctx.strand, baud: args.baud },
                    _ => Transport::Socat,
                };
                let row = one(ctx, args, &dir, transport, ber, seed, &content, line_limit);
                println!(
                    "{mode:>6} BER {:<5} seed {seed:>3}: {}{}",
                    fmt_ber(ber),
                    if row.ok {
                        format!(
                            "ok, goodput {:.1}% (packet done {:.2} s after launch; call {:.2} s)",
                            row.goodput_pct,
                            row.done_secs.unwrap_or(f64::NAN),
                            row.call_secs
                        )
                    } else {
                        format!("FAILED after {:.1} s: {}", row.call_secs, row.reason)
                    },
                    ctx.done_with(&dir)
                );
                rows.push(row);
                ctx.csv(&HEADER, &rows.iter().map(Row::fields).collect::<Vec<_>>())?;
            }
        }
    }
    Ok(summary(args, &modes, &rows))
}

/// One call over a fresh line.
#[allow(clippy::too_many_arguments)]
fn one(
    ctx: &Ctx,
    args: &Args,
    dir: &std::path::Path,
    transport: Transport,
    ber: f64,
    seed: u64,
    content: &[u8],
    line_limit: f64,
) -> Row {
    let mut row = Row {
        transport: transport.name(),
        ber,
        seed,
        ok: false,
        goodput_pct: 0.0,
        done_secs: None,
        call_secs: 0.0,
        bit_errors: None,
        reason: String::new(),
    };
    let linkem_args: Vec<String> =
        ["--baud", &args.baud.to_string(), "--ber", &ber.to_string(), "--latency-ms", "1"]
            .iter()
            .map(|s| s.to_string())
            .chain(["--seed".to_string(), seed.to_string()])
            .collect();
    let result = (|| -> Result<(nncp::CallOutcome, Result<(), String>, nncp::Node), String> {
        let line = Linkem::start(&ctx.strand, dir, &linkem_args)?;
        let (alice, bob) = nncp::pair(dir)?;
        let call = Call {
            work: dir,
            alice: &alice,
            bob: &bob,
            near: &line.a,
            far: &line.b,
            transport,
            limit: Duration::from_secs(args.call_limit),
        };
        let out = nncp::exchange(&call, "payload.bin", content);
        row.bit_errors = line.stop().map(|c| c.a_to_b.bit_errors + c.b_to_a.bit_errors);
        let (outcome, delivered) = out?;
        Ok((outcome, delivered, bob))
    })();
    match result {
        Err(e) => row.reason = e,
        Ok((outcome, delivered, bob)) => {
            row.call_secs = outcome.call_secs;
            row.done_secs = outcome.done_secs(&bob);
            let mut problems = outcome.failures();
            if let Err(e) = delivered {
                problems.push(e);
            }
            row.ok = problems.is_empty();
            if row.ok {
                row.goodput_pct =
                    row.done_secs.map_or(0.0, |s| content.len() as f64 / s / line_limit * 100.0);
            } else {
                row.reason = outcome.describe();
                if let Some(last) = problems.last().filter(|p| !row.reason.contains(p.as_str())) {
                    row.reason = format!("{last}; {}", row.reason);
                }
                row.reason = row.reason.replace('\n', " |");
            }
        }
    }
    row
}

/// Prints pass counts and goodput per transport and BER, and the ratios; true when strand met every
/// target.
fn summary(args: &Args, modes: &[&str], rows: &[Row]) -> bool {
    println!("\nsummary (goodput = file size / time to `Got packet ... done`, % of {} B/s; a failed run counts 0%):", args.baud / 10);
    let mut all_ok = true;
    for &ber in &args.ber {
        let mut medians = Vec::new();
        for &mode in modes {
            let runs: Vec<&Row> = rows.iter().filter(|r| r.transport == mode && r.ber == ber).collect();
            let passed = runs.iter().filter(|r| r.ok).count();
            let g: Vec<f64> = runs.iter().map(|r| r.goodput_pct).collect();
            let med = median(&g).unwrap_or(0.0);
            let (min, max) =
                (g.iter().copied().fold(f64::INFINITY, f64::min), g.iter().copied().fold(0.0, f64::max));
            medians.push(med);
            let targets = if mode == "strand" {
                let all_passed = passed == runs.len();
                let fast = med >= args.target_pct;
                all_ok &= all_passed && fast;
                format!(
                    "  [all pass: {}; median >= {}%: {} (ratio {:.2})]",
                    verdict(all_passed),
                    args.target_pct,
                    verdict(fast),
                    med / args.target_pct
                )
            } else {
                String::new()
            };
            println!(
                "  {mode:>6} BER {:<5}: {passed} of {} passed; goodput median {med:.1}% (min {min:.1}, max {max:.1}){targets}",
                fmt_ber(ber),
                runs.len()
            );
        }
        if let [strand, raw] = medians[..] {
            if raw > 0.0 {
                println!(
                    "         BER {:<5}: strand / raw median goodput = {:.2}",
                    fmt_ber(ber),
                    strand / raw
                );
            }
        }
    }
    all_ok
}

/// Where `program` is on PATH.
fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}
