//! `streambench slow`: a path slower than `--baud` (issue 11, case 7). Two `strand pipe
//! tcp:127.0.0.1:PORT` ends joined by a relay that carries at most `--rate` bytes/s each way, like
//! ser2net in front of a slow UART: the relay listens on two ports with normal socket buffers, takes
//! from each connection only what a UART of that rate would have sent since (a 256-byte FIFO's worth
//! of credit at most, so idle time does not bank a burst), and passes a half-close on. Both ends send
//! `--bytes` at once. Reported: the time until both exited against the line time (bytes / rate),
//! byte-exactness, exit codes, and retransmitted bytes as a share of the payload from `--stats` (or
//! retransmitted frames, said so, where the line has no byte count).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strand_hil::procs::{describe, Group};
use strand_hil::testdata::data;

use crate::{verdict, Ctx};

/// `streambench slow`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What the relay carries each way, bytes/s.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Bytes each end sends.
    #[arg(long, default_value_t = 100_000)]
    bytes: usize,
    /// `--baud` for both ends (the rate they believe the path has) [default: strand's own].
    #[arg(long)]
    baud: Option<u64>,
    /// Seed of the data (A sends seed, B seed + 1).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Target: both ends done within this many line times.
    #[arg(long, default_value_t = 2.0)]
    time_factor: f64,
    /// Target: retransmitted bytes below this share of the payload, %.
    #[arg(long, default_value_t = 5.0)]
    max_resent_pct: f64,
    /// An extra argument for both `strand pipe` ends (repeat it: `--pipe-arg=-vv`), e.g. for logs.
    #[arg(long, allow_hyphen_values = true)]
    pipe_arg: Vec<String>,
}

/// Bytes of credit a quiet relay direction keeps (a UART FIFO): idle time banks no more.
const FIFO: f64 = 256.0;

/// Carries `src` to `dst` at `rate` bytes/s until `src` ends, then half-closes `dst`; returns bytes.
fn pump(mut src: TcpStream, mut dst: TcpStream, rate: f64) -> u64 {
    let (mut credit, mut last, mut moved) = (FIFO, Instant::now(), 0u64);
    let mut buf = [0u8; 256];
    loop {
        let now = Instant::now();
        credit = (credit + now.duration_since(last).as_secs_f64() * rate).min(FIFO);
        last = now;
        if credit < 1.0 {
            std::thread::sleep(
                Duration::from_secs_f64((1.0 - credit) / rate).max(Duration::from_micros(500)),
            );
            continue;
        }
        let want = (credit as usize).min(buf.len());
        let n = match src.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Time spent blocked in read was idle line: it refills at most the FIFO.
        let now = Instant::now();
        credit = (credit + now.duration_since(last).as_secs_f64() * rate).min(FIFO) - n as f64;
        last = now;
        if dst.write_all(&buf[..n]).is_err() {
            break;
        }
        moved += n as u64;
    }
    let _ = dst.shutdown(Shutdown::Write);
    moved
}

/// The relay's ports, and its thread, which yields the bytes moved (A->B, B->A).
type Relay = (u16, u16, std::thread::JoinHandle<(u64, u64)>);

/// The relay: two listeners; once both are connected, a pump each way.
fn relay(rate: u64) -> Result<Relay, String> {
    let bind = || TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"));
    let (l1, l2) = (bind()?, bind()?);
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
    let (p1, p2) = (port(&l1)?, port(&l2)?);
    let handle = std::thread::spawn(move || {
        let (Ok((c1, _)), Ok((c2, _))) = (l1.accept(), l2.accept()) else { return (0, 0) };
        let (c1b, c2b) = match (c1.try_clone(), c2.try_clone()) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return (0, 0),
        };
        let r = rate as f64;
        let ab = std::thread::spawn(move || pump(c1, c2b, r));
        let ba = pump(c2, c1b, r);
        (ab.join().unwrap_or(0), ba)
    });
    Ok((p1, p2, handle))
}

/// What `--stats` said about retransmissions.
#[derive(Debug, PartialEq)]
enum Resent {
    /// Bytes retransmitted.
    Bytes(u64),
    /// Frames retransmitted: the stats line has no byte count.
    Frames(u64),
}

/// Parses `retransmitted N (B bytes; ...)` or `retransmitted N (...)` from `--stats` output.
fn resent(log: &str) -> Option<Resent> {
    let line = log.lines().rev().find(|l| l.contains("retransmitted "))?;
    let rest = &line[line.find("retransmitted ")? + "retransmitted ".len()..];
    let frames: u64 = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    let inner = rest.split_once('(').map(|(_, r)| r).unwrap_or("");
    let first = inner.split([';', ',', ')']).next().unwrap_or("").trim();
    match first.strip_suffix(" bytes").and_then(|n| n.trim().parse().ok()) {
        Some(bytes) => Some(Resent::Bytes(bytes)),
        None => Some(Resent::Frames(frames)),
    }
}

/// Runs the benchmark once; Ok(true) when both ends exited 0, byte-exact, within the targets.
pub fn run(ctx: &Ctx, args: &Args) -> Result<bool, String> {
    let dir = ctx.run_dir("slow")?;
    let (p1, p2, relay) = relay(args.rate)?;
    let payloads = [data(args.seed, args.bytes), data(args.seed + 1, args.bytes)];
    let line_secs = args.bytes as f64 / args.rate as f64;
    println!(
        "two `strand pipe tcp:` ends ({}) through a relay of {} B/s each way, {} B each way at once \
         (data seeds {} and {}); line time {line_secs:.1} s",
        args.baud.map_or("strand's default --baud".to_string(), |b| format!("--baud {b}")),
        args.rate,
        args.bytes,
        args.seed,
        args.seed + 1
    );
    let mut ends = Vec::new();
    let start = Instant::now();
    for (i, port) in [p1, p2].into_iter().enumerate() {
        let name = ["a", "b"][i];
        let input = dir.join(format!("{name}.in"));
        std::fs::write(&input, &payloads[i]).map_err(|e| format!("{}: {e}", input.display()))?;
        let output = dir.join(format!("{name}.out"));
        let mut cmd = Command::new(&ctx.strand);
        cmd.arg("pipe").arg(format!("tcp:127.0.0.1:{port}")).arg("--stats");
        if let Some(b) = args.baud {
            cmd.args(["--baud", &b.to_string()]);
        }
        cmd.args(&args.pipe_arg);
        cmd.stdin(Stdio::from(std::fs::File::open(&input).map_err(|e| e.to_string())?));
        cmd.stdout(Stdio::from(std::fs::File::create(&output).map_err(|e| e.to_string())?));
        let role = ["end A", "end B"][i];
        ends.push(
            Group::spawn(role, cmd, &dir.join(format!("{name}.log")), false)
                .map_err(|e| format!("{role}: {e}"))?,
        );
    }
    let limit = Duration::from_secs_f64(line_secs * 4.0 + 60.0);
    let statuses: Vec<_> =
        ends.iter_mut().map(|g| g.wait_for(limit.saturating_sub(start.elapsed()))).collect();
    let secs = start.elapsed().as_secs_f64();
    for g in &mut ends {
        // One still running is asked to stop first, so that it prints its --stats and what it delivered.
        g.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
        g.kill_all();
    }
    // The ends are gone, so the relay's connections have ended too.
    let moved = relay.join().unwrap_or((0, 0));
    let mut ok = true;
    let mut rows = Vec::new();
    let (mut worst_resent, mut resent_ok_both) = (0.0f64, true);
    for (i, g) in ends.iter().enumerate() {
        let name = ["A", "B"][i];
        let peer_out = std::fs::read(dir.join(format!("{}.out", ["b", "a"][i]))).unwrap_or_default();
        let exact = peer_out == payloads[i];
        let status = match statuses[i] {
            Some(st) => describe(st),
            None => format!("still running after {:.0} s (killed)", limit.as_secs_f64()),
        };
        let exit_ok = statuses[i].is_some_and(|s| s.success());
        let log = std::fs::read_to_string(&g.log).unwrap_or_default();
        let (resent_text, share) = match resent(&log) {
            Some(Resent::Bytes(b)) => {
                let pct = b as f64 / args.bytes as f64 * 100.0;
                (format!("{b} bytes resent ({pct:.1}% of its payload)"), Some(pct))
            }
            Some(Resent::Frames(f)) => (
                format!("{f} frames resent (this strand's --stats counts no retransmitted bytes)"),
                (f == 0).then_some(0.0),
            ),
            None => ("no --stats line".to_string(), None),
        };
        if let Some(p) = share {
            worst_resent = worst_resent.max(p);
        }
        let resent_ok = share.is_some_and(|p| p < args.max_resent_pct);
        resent_ok_both &= resent_ok;
        ok &= exit_ok && exact && resent_ok;
        println!(
            "  {name}->{}: {}; {status}; {resent_text}{}",
            ["B", "A"][i],
            if exact {
                "byte-exact".to_string()
            } else {
                format!("NOT byte-exact ({} of {} B)", peer_out.len(), args.bytes)
            },
            if exit_ok { String::new() } else { format!(" ({})", g.last_words()) }
        );
        rows.push(vec![
            format!("{name}->{}", ["B", "A"][i]),
            args.rate.to_string(),
            args.bytes.to_string(),
            format!("{secs:.3}"),
            format!("{line_secs:.3}"),
            exact.to_string(),
            status,
            share.map_or(String::new(), |p| format!("{p:.2}")),
            match resent(&log) {
                Some(Resent::Bytes(b)) => format!("{b} bytes"),
                Some(Resent::Frames(f)) => format!("{f} frames"),
                None => String::new(),
            },
        ]);
    }
    let in_time = secs <= line_secs * args.time_factor;
    ok &= in_time;
    println!("  relay carried {} B A->B and {} B B->A (payload {} B each way)", moved.0, moved.1, args.bytes);
    println!(
        "time {secs:.2} s = {:.2} x the line time; targets: within {}x: {}; retransmitted < {}%: {} (worst {:.1}%)",
        secs / line_secs,
        args.time_factor,
        verdict(in_time),
        args.max_resent_pct,
        verdict(resent_ok_both),
        worst_resent
    );
    ctx.csv(
        &["direction", "rate", "bytes", "secs", "line_secs", "exact", "exit", "resent_pct", "resent"],
        &rows,
    )?;
    println!("{}", ctx.done_with(&dir).trim());
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_stats_formats() {
        let new = "tcp:127.0.0.1:1: frames sent 239 received 202; retransmitted 23 (8834 bytes; 0 fast, 6 timeouts, 4 needlessly); CRC errors 0";
        assert_eq!(resent(new), Some(Resent::Bytes(8834)));
        let old =
            "x: frames sent 9 received 9; retransmitted 3 (1 fast, 2 timeouts, 0 needlessly); CRC errors 0";
        assert_eq!(resent(old), Some(Resent::Frames(3)));
        assert_eq!(resent("strand: Broken pipe"), None);
    }
}
