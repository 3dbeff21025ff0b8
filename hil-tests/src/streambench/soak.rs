//! `streambench soak`: `strand pipe` both ways at once over `strand linkem` with a seeded mix of
//! interactive-sized writes, bursts and idle gaps, one run per BER; fails on any gap of more than
//! 200 ms in delivery while data is pending (defined in `strand_hil::soak`), on a non-zero exit and
//! on a stream that is not byte-exact.

use std::time::Duration;

use strand_hil::line::Linkem;
use strand_hil::report::fmt_ber;
use strand_hil::soak::{self, Soak, GAP_LIMIT};

use crate::{verdict, Ctx};

/// `streambench soak`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds of planned traffic per run.
    #[arg(long, default_value_t = 30.0)]
    secs: f64,
    /// Bit-error rates, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.0, 1e-4])]
    ber: Vec<f64>,
    /// Seed of the plans, the data and linkem.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Line rate, bit/s.
    #[arg(long, default_value_t = 2_000_000)]
    baud: u64,
    /// Time allowed after the last planned write for delivery and both exits, s.
    #[arg(long, default_value_t = 60)]
    drain: u64,
}

/// Runs one soak per BER; Ok(true) when all passed.
pub fn run(ctx: &Ctx, args: &Args) -> Result<bool, String> {
    let mut all_ok = true;
    let mut rows: Vec<Vec<String>> = Vec::new();
    for &ber in &args.ber {
        let dir = ctx.run_dir(&format!("soak-{}", fmt_ber(ber)))?;
        let line = Linkem::start(
            &ctx.strand,
            &dir,
            &[
                "--baud",
                &args.baud.to_string(),
                "--ber",
                &ber.to_string(),
                "--latency-ms",
                "1",
                "--seed",
                &args.seed.to_string(),
            ]
            .map(String::from),
        )?;
        let outcome = soak::run(&Soak {
            strand: &ctx.strand,
            a: &line.a,
            b: &line.b,
            baud: args.baud,
            seed: args.seed,
            secs: args.secs,
            logs: &dir,
            drain: Duration::from_secs(args.drain),
        });
        let counters = line.stop();
        let outcome = outcome?;
        let line_limit = args.baud as f64 / 10.0;
        println!(
            "soak {} s at {} bit/s, BER {}, seed {} (linkem, plans and data); {} bit errors on the line; both ends done after {:.1} s",
            args.secs,
            args.baud,
            fmt_ber(ber),
            args.seed,
            counters.map_or("?".to_string(), |c| (c.a_to_b.bit_errors + c.b_to_a.bit_errors).to_string()),
            outcome.secs
        );
        for (d, plan) in outcome.directions.iter().zip(&outcome.plans) {
            let worst = d.worst();
            let over = d.over(GAP_LIMIT).len();
            let over50 = d.over(Duration::from_millis(50)).len();
            println!(
                "  {}: {} interactive writes, {} bursts, {} idle gaps; {} B ({:.0}% of the line over the plan); \
                 {} reads; worst gap while pending {:.1} ms{}; {over50} gaps > 50 ms, {over} > {} ms; {}",
                d.name,
                plan.counts.0,
                plan.counts.1,
                plan.counts.2,
                d.planned,
                d.planned as f64 / plan.secs().max(1e-9) / line_limit * 100.0,
                d.reads,
                worst.map_or(0.0, |g| g.secs() * 1000.0),
                worst.map_or(String::new(), |g| format!(" (at {:.2} s, waiting for byte {})", g.from, g.offset)),
                GAP_LIMIT.as_millis(),
                if d.exact { "byte-exact" } else { "NOT byte-exact" }
            );
            rows.push(vec![
                fmt_ber(ber),
                args.seed.to_string(),
                d.name.to_string(),
                d.planned.to_string(),
                d.received.to_string(),
                d.exact.to_string(),
                d.reads.to_string(),
                format!("{:.2}", worst.map_or(0.0, |g| g.secs() * 1000.0)),
                over.to_string(),
            ]);
        }
        for (name, stats) in ["A", "B"].iter().zip(&outcome.stats) {
            println!("  end {name} --stats: {}", stats.as_deref().unwrap_or("(none printed)"));
        }
        if let Some(c) = counters {
            println!(
                "  linkem dropped (receiver overrun) {} B A->B, {} B B->A",
                c.a_to_b.dropped, c.b_to_a.dropped
            );
        }
        println!("  machine: {}", outcome.machine());
        let failures = outcome.failures();
        for f in &failures {
            println!("  FAILURE: {f}");
        }
        println!(
            "  no gap over {} ms, both exit 0, byte-exact: {}",
            GAP_LIMIT.as_millis(),
            verdict(failures.is_empty())
        );
        all_ok &= failures.is_empty();
        ctx.csv(
            &[
                "ber",
                "seed",
                "direction",
                "bytes",
                "received",
                "exact",
                "reads",
                "worst_gap_ms",
                "gaps_over_limit",
            ],
            &rows,
        )?;
        let kept = ctx.done_with(&dir);
        if !kept.is_empty() {
            println!("  {}", kept.trim());
        }
    }
    Ok(all_ok)
}
