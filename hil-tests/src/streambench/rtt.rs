//! `streambench rtt`: interactive echo round trips through `strand forward` on an emulated line,
//! idle and while another forwarded connection pushes bulk (issue 11, case 6).
//!
//! End A's forward has two `-L` specs: one to a TCP echo server, one to a sink that reads and hashes.
//! One client connection sends 32 bytes and waits for them back (TCP_NODELAY on every socket), every
//! `--interval-ms`: first `--idle` round trips on the quiet link, then the bulk client starts
//! writing `--bulk-mib` MiB into the sink connection and, after `--settle-ms`, `--loaded` round trips
//! run while it flows. Reported: idle p50, loaded p50/p99/max (nearest rank), the bulk goodput during
//! the loaded round trips and over the whole bulk (% of baud / 10 B/s). The bulk is awaited to the
//! end and checked byte-exact at the sink; every echo must come back exactly.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strand_hil::line::Linkem;
use strand_hil::procs::{describe, Group};
use strand_hil::report::{median, quantile};
use strand_hil::testdata::data;

use crate::{verdict, Ctx};

/// `streambench rtt`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bulk bytes pushed through the second connection, MiB.
    #[arg(long, default_value_t = 10)]
    bulk_mib: usize,
    /// Round trips on the idle link.
    #[arg(long, default_value_t = 30)]
    idle: usize,
    /// Round trips while the bulk flows.
    #[arg(long, default_value_t = 200)]
    loaded: usize,
    /// Pause between round trips, ms.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Time between starting the bulk and the first loaded round trip (queues fill), ms.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Line rate, bit/s.
    #[arg(long, default_value_t = 2_000_000)]
    baud: u64,
    /// linkem seed (and the bulk data's).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Target for the loaded median, ms.
    #[arg(long, default_value_t = 50.0)]
    p50_ms: f64,
    /// Target for the loaded 99th percentile, ms.
    #[arg(long, default_value_t = 100.0)]
    p99_ms: f64,
    /// Write every round trip here as CSV (phase, seconds since the first, ms, bulk bytes at the sink).
    #[arg(long)]
    series_csv: Option<std::path::PathBuf>,
}

/// Bytes the sink has read, with the time of each read.
#[derive(Default)]
struct Sink {
    reads: Vec<(Instant, u64)>,
    hasher: Option<blake3::Hasher>,
    hash: Option<blake3::Hash>,
    total: u64,
}

impl Sink {
    /// Bytes read by `t`.
    fn at(&self, t: Instant) -> u64 {
        let k = self.reads.partition_point(|&(at, _)| at <= t);
        if k == 0 {
            0
        } else {
            self.reads[k - 1].1
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the forwarder to take).
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// An echo server; returns its port.
fn echo_server() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = c.set_nodelay(true);
                let mut buf = [0u8; 65536];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(port)
}

/// A sink that reads one connection to its end; returns its port and what it saw.
fn sink_server() -> Result<(u16, Arc<Mutex<Sink>>), String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    let sink = Arc::new(Mutex::new(Sink { hasher: Some(blake3::Hasher::new()), ..Sink::default() }));
    let s = sink.clone();
    std::thread::spawn(move || {
        let Ok((mut c, _)) = l.accept() else { return };
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut g = s.lock().unwrap();
            g.total += n as u64;
            let total = g.total;
            g.reads.push((Instant::now(), total));
            if let Some(h) = g.hasher.as_mut() {
                h.update(&buf[..n]);
            }
        }
        let mut g = s.lock().unwrap();
        g.hash = g.hasher.take().map(|h| h.finalize());
    });
    Ok((port, sink))
}

/// One 32-byte round trip: milliseconds, or why it failed.
fn round_trip(c: &mut TcpStream, n: u64) -> Result<f64, String> {
    let mut msg = [0u8; 32];
    msg[..8].copy_from_slice(&n.to_be_bytes());
    msg[8..].copy_from_slice(b"strand streambench echo probe!!!"[..24].as_ref());
    let t = Instant::now();
    c.write_all(&msg).map_err(|e| format!("echo write: {e}"))?;
    let mut back = [0u8; 32];
    c.read_exact(&mut back).map_err(|e| format!("echo read (round trip {n}): {e}"))?;
    if back != msg {
        return Err(format!("round trip {n}: the echo differs from what was sent"));
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// Runs the benchmark; Ok(true) when everything arrived exactly and both targets were met.
pub fn run(ctx: &Ctx, args: &Args) -> Result<bool, String> {
    let dir = ctx.run_dir("rtt")?;
    let baud = args.baud.to_string();
    let line = Linkem::start(
        &ctx.strand,
        &dir,
        &["--baud", &baud, "--latency-ms", "1", "--seed", &args.seed.to_string()].map(String::from),
    )?;
    let echo = echo_server()?;
    let (sink_port, sink) = sink_server()?;
    let (lp_echo, lp_bulk) = (free_port()?, free_port()?);
    let forward = |role: &'static str, dev: &std::path::Path, specs: &[String], log: &str| {
        let mut cmd = Command::new(&ctx.strand);
        cmd.arg("forward").arg(dev).args(["--baud", &baud]).args(specs);
        Group::spawn(role, cmd, &dir.join(log), true).map_err(|e| format!("cannot start {role}: {e}"))
    };
    let specs = [
        "-L".to_string(),
        format!("{lp_echo}:127.0.0.1:{echo}"),
        "-L".to_string(),
        format!("{lp_bulk}:127.0.0.1:{sink_port}"),
    ];
    let mut fa = forward("forward A", &line.a, &specs, "forward-a.log")?;
    let mut fb = forward("forward B", &line.b, &[], "forward-b.log")?;
    println!(
        "strand forward at {} bit/s (linkem seed {}, latency 1 ms): {} idle round trips of 32 B, then {} MiB bulk \
         and {} round trips {} ms apart",
        args.baud, args.seed, args.idle, args.bulk_mib, args.loaded, args.interval_ms
    );
    let outcome = measure(args, lp_echo, lp_bulk, &sink);
    let still = |g: &mut Group| match g.poll() {
        None => String::new(),
        Some(st) => format!("; {} had exited ({}: {})", g.role, describe(st), g.last_words()),
    };
    let exits = still(&mut fa) + &still(&mut fb);
    fa.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    fb.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    let _ = line.stop();
    let m = outcome.map_err(|e| format!("{e}{exits}"))?;

    let line_limit = args.baud as f64 / 10.0;
    let idle_p50 = median(&m.idle).unwrap_or(f64::NAN);
    let p50 = quantile(&m.loaded, 0.5).unwrap_or(f64::NAN);
    let p99 = quantile(&m.loaded, 0.99).unwrap_or(f64::NAN);
    let max = m.loaded.iter().copied().fold(0.0, f64::max);
    let g = sink.lock().unwrap();
    let window_bytes = g.at(m.window.1) - g.at(m.window.0);
    let window_secs = (m.window.1 - m.window.0).as_secs_f64();
    let window_pct = window_bytes as f64 / window_secs / line_limit * 100.0;
    let whole_pct = match (g.reads.first(), g.reads.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            (b.1 - a.1) as f64 / (b.0 - a.0).as_secs_f64() / line_limit * 100.0
        }
        _ => 0.0,
    };
    let expected = data(args.seed, args.bulk_mib << 20);
    let exact = g.total == expected.len() as u64 && g.hash == Some(blake3::hash(&expected));
    println!("idle:   p50 {idle_p50:.1} ms over {} round trips", m.idle.len());
    println!("loaded: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms over {} round trips", m.loaded.len());
    println!(
        "bulk:   {window_pct:.1}% of the line during the loaded round trips ({window_bytes} B in {window_secs:.2} s); \
         {whole_pct:.1}% over the whole {} MiB; {}",
        args.bulk_mib,
        if exact { "byte-exact".to_string() } else { format!("NOT byte-exact ({} of {} B)", g.total, expected.len()) }
    );
    println!(
        "targets: loaded p50 <= {} ms: {} (ratio {:.2}); p99 <= {} ms: {} (ratio {:.2}); loaded/idle p50 = {:.1}",
        args.p50_ms,
        verdict(p50 <= args.p50_ms),
        p50 / args.p50_ms,
        args.p99_ms,
        verdict(p99 <= args.p99_ms),
        p99 / args.p99_ms,
        p50 / idle_p50
    );
    let row: Vec<String> = [idle_p50, p50, p99, max, window_pct, whole_pct]
        .iter()
        .map(|v| format!("{v:.2}"))
        .chain([exact.to_string(), args.seed.to_string(), m.loaded.len().to_string()])
        .collect();
    ctx.csv(
        &[
            "idle_p50_ms",
            "loaded_p50_ms",
            "loaded_p99_ms",
            "loaded_max_ms",
            "bulk_window_pct",
            "bulk_whole_pct",
            "exact",
            "seed",
            "round_trips",
        ],
        &[row],
    )?;
    if let Some(path) = &args.series_csv {
        let t0 = m.starts.first().copied().unwrap_or(m.window.0);
        let rows: Vec<Vec<String>> = m
            .idle
            .iter()
            .map(|r| ("idle", r))
            .chain(m.loaded.iter().map(|r| ("loaded", r)))
            .zip(&m.starts)
            .map(|((phase, rtt), &at)| {
                vec![
                    phase.to_string(),
                    format!("{:.4}", at.duration_since(t0).as_secs_f64()),
                    format!("{rtt:.2}"),
                    g.at(at).to_string(),
                ]
            })
            .collect();
        let text = strand_hil::report::csv_text(&["phase", "t_s", "rtt_ms", "sink_bytes"], &rows);
        strand_hil::report::write_atomically(path, &text)?;
    }
    println!("{}", ctx.done_with(&dir).trim());
    Ok(exact && p50 <= args.p50_ms && p99 <= args.p99_ms)
}

/// The round trips and the loaded window.
struct Measured {
    idle: Vec<f64>,
    loaded: Vec<f64>,
    window: (Instant, Instant),
    /// When each round trip (idle, then loaded) started.
    starts: Vec<Instant>,
}

fn measure(args: &Args, lp_echo: u16, lp_bulk: u16, sink: &Arc<Mutex<Sink>>) -> Result<Measured, String> {
    // The forwarder listens once it has started; the link comes up with the first round trip.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        match TcpStream::connect(("127.0.0.1", lp_echo)) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("forward A does not listen on {lp_echo}: {e}")),
        }
    };
    c.set_nodelay(true).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let mut n = 0u64;
    round_trip(&mut c, n).map_err(|e| format!("the first round trip (link start-up): {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let interval = Duration::from_millis(args.interval_ms);
    let mut starts = Vec::new();
    let mut series = |count: usize, c: &mut TcpStream| -> Result<Vec<f64>, String> {
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            n += 1;
            starts.push(Instant::now());
            out.push(round_trip(c, n)?);
            std::thread::sleep(interval);
        }
        Ok(out)
    };
    let idle = series(args.idle, &mut c)?;
    let bulk = data(args.seed, args.bulk_mib << 20);
    let mut b = TcpStream::connect(("127.0.0.1", lp_bulk)).map_err(|e| format!("bulk connect: {e}"))?;
    b.set_nodelay(true).map_err(|e| e.to_string())?;
    let pusher = std::thread::spawn(move || -> Result<(), String> {
        for chunk in bulk.chunks(64 << 10) {
            b.write_all(chunk).map_err(|e| format!("bulk write: {e}"))?;
        }
        b.shutdown(Shutdown::Write).map_err(|e| format!("bulk shutdown: {e}"))?;
        // The forwarder closes its side once the far side confirmed everything written.
        let _ = b.set_read_timeout(Some(Duration::from_secs(120)));
        let mut rest = Vec::new();
        let _ = b.read_to_end(&mut rest);
        Ok(())
    });
    std::thread::sleep(Duration::from_millis(args.settle_ms));
    let start = Instant::now();
    let loaded = series(args.loaded, &mut c)?;
    let window = (start, Instant::now());
    if sink.lock().unwrap().at(window.1) >= (args.bulk_mib << 20) as u64 {
        println!("note: the bulk had all arrived before the loaded round trips ended; use more --bulk-mib");
    }
    // Let the bulk finish, then check it at the sink.
    let limit = Instant::now()
        + Duration::from_secs_f64((args.bulk_mib << 20) as f64 / (args.baud as f64 / 10.0) * 2.0 + 30.0);
    while sink.lock().unwrap().hash.is_none() && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
    if sink.lock().unwrap().hash.is_none() {
        return Err(format!(
            "the bulk did not end at the sink in time ({} B arrived)",
            sink.lock().unwrap().total
        ));
    }
    pusher.join().map_err(|_| "bulk thread panicked")??;
    drop(c);
    Ok(Measured { idle, loaded, window, starts })
}
