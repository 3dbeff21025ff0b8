//! meshsim: the LoRa mesh simulator's benchmark. Runs a protocol on the REF-30
//! scenario (30 nodes, LongFast, EU868, two hours) over seeds 1..=N (seed N on
//! layout N) and reports delivery, airtime per delivered byte, latency,
//! collisions and duty-cycle violations as REF-30 defines them.
//!
//! `cargo run --release -p strand-hil --bin meshsim -- --help`

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant as Wall};

use clap::{Parser, ValueEnum};

use strand_hil::mesh::flood::{FloodNode, FloodParams};
use strand_hil::mesh::layout::Layout;
use strand_hil::mesh::plot;
use strand_hil::mesh::radio::{Links, RadioConfig};
use strand_hil::mesh::report::{Condition, Summary};
use strand_hil::mesh::scenario::{Arrivals, Scenario, HEAVY, LIGHT};
use strand_hil::mesh::sim::{self, node_rng};
use strand_hil::mesh::traffic::Traffic;
use strand_link::lora::Preset;

#[derive(Parser, Debug)]
#[command(
    about = "LoRa mesh simulator: a protocol on the REF-30 scenario, delivery and airtime per delivered byte",
    long_about = "LoRa mesh simulator: a protocol on the REF-30 scenario (30 nodes on 4 x 4 km, LongFast at \
        869.525 MHz, 40-byte messages, 2 simulated hours + 120 s), seeds 1..=N, seed N on layout N.\n\n\
        Prints a table, or with --json one JSON object. --reference runs the four conditions the reference \
        (Meshtasticator) was measured in and compares; --sweep runs several loads for the load plot."
)]
struct Args {
    /// Scenario (only ref30 so far).
    #[arg(long, default_value = "ref30")]
    scenario: String,
    /// Load: light (a message per node every 600 s on average), heavy (100 s), or the mean interval in seconds.
    #[arg(long, default_value = "light", value_parser = parse_load)]
    load: Load,
    /// Broadcast messages (T1) or direct messages to a random node (T2).
    #[arg(long, value_enum, default_value_t = TrafficArg::Broadcast)]
    traffic: TrafficArg,
    /// The protocol: flood (Meshtastic's managed flooding as Meshtasticator models it, the reference)
    /// or flood-firmware (the same with the firmware's constants today).
    #[arg(long, value_enum, default_value_t = ProtocolArg::Flood)]
    protocol: ProtocolArg,
    /// When nodes send: poisson (REF-30: arrivals drawn in advance, the same for every protocol), or
    /// after-settled (Meshtasticator's generator: a node draws its next interval only once its
    /// previous message is acknowledged or given up) [default: poisson; after-settled with --reference].
    #[arg(long, value_enum)]
    arrivals: Option<ArrivalsArg>,
    /// Run seeds 1..=N (seed N on layout N, wrapping after 5).
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Nodes keep the regional duty cycle (10% per hour in sub-band g3) instead of ignoring it
    /// as the reference does. Violations are counted either way.
    #[arg(long)]
    enforce_duty_cycle: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Run the four reference conditions (light/heavy x broadcast/direct) and compare with
    /// Meshtasticator's figures; exit status 1 if any is outside the tolerance.
    #[arg(long, conflicts_with = "sweep")]
    reference: bool,
    /// Run these mean intervals (s), both traffic types, with and without the duty cycle kept,
    /// for the load plot.
    #[arg(long, value_delimiter = ',')]
    sweep: Option<Vec<f64>>,
    /// Write one CSV row per run here.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write one CSV row per node and run here: its transmit airtime and share of the run.
    #[arg(long)]
    node_csv: Option<PathBuf>,
    /// Write SVG plots here: the map of each layout run, and delivery and airtime against load.
    #[arg(long)]
    plot_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy)]
struct Load {
    name: &'static str,
    interval: Duration,
}

fn parse_load(s: &str) -> Result<Load, String> {
    match s {
        "light" => Ok(Load { name: "light", interval: LIGHT }),
        "heavy" => Ok(Load { name: "heavy", interval: HEAVY }),
        _ => match s.parse::<f64>() {
            Ok(secs) if secs > 0.0 => Ok(Load { name: "custom", interval: Duration::from_secs_f64(secs) }),
            _ => Err(format!("{s:?}: light, heavy or a mean interval in seconds")),
        },
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum TrafficArg {
    Broadcast,
    Direct,
}

impl From<TrafficArg> for Traffic {
    fn from(t: TrafficArg) -> Traffic {
        match t {
            TrafficArg::Broadcast => Traffic::Broadcast,
            TrafficArg::Direct => Traffic::Direct,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ArrivalsArg {
    Poisson,
    AfterSettled,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ProtocolArg {
    Flood,
    FloodFirmware,
}

impl ProtocolArg {
    fn name(self) -> &'static str {
        match self {
            ProtocolArg::Flood => "flood",
            ProtocolArg::FloodFirmware => "flood-firmware",
        }
    }
}

/// Meshtasticator's figures on the five layouts (shared README): traffic, load,
/// delivery mean [min, max], airtime per delivered byte (ms) mean [min, max], latency p50, p95 (s).
struct Reference {
    traffic: Traffic,
    load: &'static str,
    delivery: (f64, f64, f64),
    airtime: (f64, f64, f64),
    latency: (f64, f64),
}

const REFERENCE: [Reference; 4] = [
    Reference {
        traffic: Traffic::Broadcast,
        load: "light",
        delivery: (0.921, 0.866, 0.964),
        airtime: (7.00, 6.69, 7.15),
        latency: (2.11, 5.9),
    },
    Reference {
        traffic: Traffic::Broadcast,
        load: "heavy",
        delivery: (0.802, 0.734, 0.868),
        airtime: (7.01, 6.71, 7.25),
        latency: (9.4, 63.0),
    },
    Reference {
        traffic: Traffic::Direct,
        load: "light",
        delivery: (0.897, 0.815, 0.954),
        airtime: (298.0, 284.0, 309.0),
        latency: (2.36, 7.0),
    },
    Reference {
        traffic: Traffic::Direct,
        load: "heavy",
        delivery: (0.690, 0.655, 0.739),
        airtime: (288.0, 282.0, 298.0),
        latency: (35.0, 1135.0),
    },
];

/// Tolerances of the faithfulness check (issue 15): delivery within 4 points, airtime within 15%.
const DELIVERY_TOLERANCE: f64 = 0.04;
const AIRTIME_TOLERANCE: f64 = 0.15;

/// The arrivals: as asked, or the reference's own (after-settled) when comparing with it.
fn arrivals(args: &Args) -> Arrivals {
    match args.arrivals {
        Some(ArrivalsArg::Poisson) => Arrivals::Poisson,
        Some(ArrivalsArg::AfterSettled) => Arrivals::AfterSettled,
        None if args.reference => Arrivals::AfterSettled,
        None => Arrivals::Poisson,
    }
}

fn params(protocol: ProtocolArg, enforce: bool, duty_ppm: u32) -> FloodParams {
    let mut p = match protocol {
        ProtocolArg::Flood => FloodParams::meshtasticator(Preset::LongFast),
        ProtocolArg::FloodFirmware => FloodParams::firmware(Preset::LongFast),
    };
    p.duty_cycle_ppm = enforce.then_some(duty_ppm);
    p
}

/// Runs one condition over the seeds.
fn run_condition(args: &Args, traffic: Traffic, load: Load, enforce: bool) -> Result<Summary, String> {
    let mut runs = Vec::new();
    for seed in 1..=args.seeds {
        let layout = ((seed - 1) % 5 + 1) as usize;
        let mut sc = Scenario::ref30(layout, traffic, load.interval).ok_or("no such layout")?;
        sc.arrivals = arrivals(args);
        let p = params(args.protocol, enforce, sc.duty_cycle_ppm);
        let r = sim::run(&sc, seed, |i, s| FloodNode::new(i as u32, p.clone(), node_rng(s)));
        if r.corrupt > 0 {
            return Err(format!("seed {seed}: {} deliveries did not match their message", r.corrupt));
        }
        runs.push(r);
    }
    Ok(Summary {
        condition: Condition {
            scenario: args.scenario.clone(),
            load: load.name.to_string(),
            mean_interval_s: load.interval.as_secs_f64(),
            traffic: traffic.name().to_string(),
            protocol: args.protocol.name().to_string(),
            duty_cycle_enforced: enforce,
            arrivals: match arrivals(args) {
                Arrivals::Poisson => "poisson",
                Arrivals::AfterSettled => "after-settled",
            }
            .to_string(),
        },
        runs,
    })
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn table(s: &Summary) -> String {
    let c = &s.condition;
    let mut out = format!(
        "{} {} load ({} s, {} arrivals), {} traffic, protocol {}, duty cycle {}\n\
         seed layout     messages  delivery  airtime/B   p50 s   p95 s  collisions  dc-viol  busiest node  wall s\n",
        c.scenario,
        c.load,
        c.mean_interval_s,
        c.arrivals,
        c.traffic,
        c.protocol,
        if c.duty_cycle_enforced { "enforced" } else { "not enforced" }
    );
    for r in &s.runs {
        out += &format!(
            "{:>4} {:<9} {:>9} {:>9} {:>7.2} ms {:>7.2} {:>7.2} {:>11} {:>8} {:>12.1}% {:>7.2}\n",
            r.seed,
            r.layout,
            r.messages,
            pct(r.delivery_ratio()),
            r.airtime_ms_per_delivered_byte(),
            strand_hil::mesh::report::quantile(&r.latencies, 0.5).unwrap_or(f64::NAN),
            strand_hil::mesh::report::quantile(&r.latencies, 0.95).unwrap_or(f64::NAN),
            r.collisions,
            r.duty_cycle_violations,
            r.node_channel_use_percent().into_iter().fold(0.0, f64::max),
            r.wall.as_secs_f64()
        );
    }
    let (d, a) = (s.delivery(), s.airtime_per_byte());
    out += &format!(
        "mean: delivery {} [{}..{}], airtime {:.2} ms/B [{:.2}..{:.2}], latency p50 {:.2} s, p95 {:.1} s, \
         collisions {}, duty-cycle violations {}\n",
        pct(d.mean),
        pct(d.min),
        pct(d.max),
        a.mean,
        a.min,
        a.max,
        s.latency_p50().mean,
        s.latency_p95().mean,
        s.collisions(),
        s.duty_cycle_violations()
    );
    out
}

/// The comparison with the reference; returns the text and whether every condition is within tolerance.
fn compare(summaries: &[Summary]) -> (String, bool) {
    let mut out = String::from(
        "\nagainst the reference (Meshtasticator, CR fixed, five layouts): delivery within 4 points, airtime within 15%\n\
         traffic    load   delivery (ref)          airtime ms/B (ref)         p50 s (ref)   p95 s (ref)   verdict\n",
    );
    let mut all = true;
    for s in summaries {
        let Some(r) =
            REFERENCE.iter().find(|r| r.traffic.name() == s.condition.traffic && r.load == s.condition.load)
        else {
            continue;
        };
        let (d, a) = (s.delivery(), s.airtime_per_byte());
        let d_ok = (d.mean - r.delivery.0).abs() <= DELIVERY_TOLERANCE;
        let a_ok = (a.mean / r.airtime.0 - 1.0).abs() <= AIRTIME_TOLERANCE;
        all &= d_ok && a_ok;
        out += &format!(
            "{:<10} {:<6} {:>6} ({:>5}, {:+.1} pt)  {:>7.2} ({:>6.2}, {:+.1}%)  {:>6.2} ({:>5.2})  {:>6.1} ({:>6.1})  {}\n",
            s.condition.traffic,
            s.condition.load,
            pct(d.mean),
            pct(r.delivery.0),
            (d.mean - r.delivery.0) * 100.0,
            a.mean,
            r.airtime.0,
            (a.mean / r.airtime.0 - 1.0) * 100.0,
            s.latency_p50().mean,
            r.latency.0,
            s.latency_p95().mean,
            r.latency.1,
            match (d_ok, a_ok) {
                (true, true) => "within",
                (false, true) => "DELIVERY OUTSIDE",
                (true, false) => "AIRTIME OUTSIDE",
                (false, false) => "BOTH OUTSIDE",
            }
        );
        out += &format!(
            "{:<10} {:<6}   per layout: delivery {}; airtime {}\n",
            "",
            "",
            s.runs.iter().map(|x| pct(x.delivery_ratio())).collect::<Vec<_>>().join(" "),
            s.runs
                .iter()
                .map(|x| format!("{:.2}", x.airtime_ms_per_delivered_byte()))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    (out, all)
}

fn write_outputs(args: &Args, summaries: &[Summary]) -> Result<(), String> {
    if let Some(path) = &args.csv {
        let mut text = String::from(Summary::CSV_HEADER);
        text.push('\n');
        for s in summaries {
            for row in s.csv_rows() {
                text += &row;
                text.push('\n');
            }
        }
        fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.node_csv {
        let mut text = String::from(Summary::NODE_CSV_HEADER);
        text.push('\n');
        for s in summaries {
            for row in s.node_csv_rows() {
                text += &row;
                text.push('\n');
            }
        }
        fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(dir) = &args.plot_dir {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let radio = RadioConfig::ref30();
        for seed in 1..=args.seeds.min(5) {
            let layout = Layout::ref30(seed as usize).ok_or("no such layout")?;
            let links = Links::new(&layout, &radio, seed);
            let path = dir.join(format!("mesh-map-{}.svg", layout.name));
            plot::map(&path, &layout, &links, &radio, seed)?;
        }
        if summaries
            .iter()
            .map(|s| s.condition.mean_interval_s.to_bits())
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1
        {
            let name = match arrivals(args) {
                Arrivals::Poisson => "mesh-load.svg",
                Arrivals::AfterSettled => "mesh-load-after-settled.svg",
            };
            let markers: Vec<plot::Marker> = REFERENCE
                .iter()
                .map(|r| plot::Marker {
                    rate: 3600.0 / parse_load(r.load).expect("reference loads parse").interval.as_secs_f64(),
                    delivery: r.delivery.0,
                    airtime_ms: r.airtime.0,
                })
                .collect();
            plot::load(&dir.join(name), summaries, &markers, "Meshtasticator (reference)")?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.scenario != "ref30" {
        eprintln!("meshsim: unknown scenario {:?} (only ref30)", args.scenario);
        return ExitCode::from(2);
    }
    if args.seeds == 0 {
        eprintln!("meshsim: --seeds must be at least 1");
        return ExitCode::from(2);
    }
    let started = Wall::now();
    let enforce = args.enforce_duty_cycle;
    let conditions: Vec<(Traffic, Load, bool)> = if args.reference {
        REFERENCE
            .iter()
            .map(|r| (r.traffic, parse_load(r.load).expect("reference loads parse"), enforce))
            .collect()
    } else if let Some(intervals) = &args.sweep {
        let mut v = Vec::new();
        for &i in intervals {
            let load = match parse_load(&i.to_string()) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("meshsim: --sweep {e}");
                    return ExitCode::from(2);
                }
            };
            let load = Load {
                name: if i == 600.0 {
                    "light"
                } else if i == 100.0 {
                    "heavy"
                } else {
                    "custom"
                },
                ..load
            };
            for enforce in [false, true] {
                v.push((Traffic::Broadcast, load, enforce));
                v.push((Traffic::Direct, load, enforce));
            }
        }
        v
    } else {
        vec![(args.traffic.into(), args.load, enforce)]
    };
    let mut summaries = Vec::new();
    for (traffic, load, enforce) in conditions {
        match run_condition(&args, traffic, load, enforce) {
            Ok(s) => {
                if args.json {
                    println!("{}", s.to_json());
                } else {
                    print!("{}", table(&s));
                    let _ = std::io::stdout().flush();
                }
                summaries.push(s);
            }
            Err(e) => {
                eprintln!("meshsim: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut ok = true;
    if args.reference {
        let (text, all) = compare(&summaries);
        if args.json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
        ok = all;
    }
    if let Err(e) = write_outputs(&args, &summaries) {
        eprintln!("meshsim: {e}");
        return ExitCode::FAILURE;
    }
    let runs: usize = summaries.iter().map(|s| s.runs.len()).sum();
    let slowest = summaries.iter().map(Summary::max_wall_s).fold(0.0, f64::max);
    eprintln!(
        "{runs} run{} of 2 h 2 min simulated in {:.1} s wall; slowest run {:.2} s (one core)",
        if runs == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64(),
        slowest
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
