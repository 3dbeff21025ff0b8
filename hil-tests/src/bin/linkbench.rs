//! Link benchmark: goodput of two strand cores over an emulated serial line,
//! as a share of the line's payload limit, and the host CPU throughput of
//! framing + CRC. Figures are medians over seeds; simulated time is exact, so
//! the goodput ratios do not depend on how busy this machine is.
//!
//! `cargo run --release -p strand-hil --bin linkbench -- --help`

use clap::Parser;
use std::time::{Duration, Instant as Wall};
use strand_link::fec::{self, Strength};
use strand_link::framing::{self, Deframer, FeedResult};
use strand_link::sim::{GilbertElliott, LineConfig, Pair};
use strand_link::wire::{flags, Frame, FrameType, Header};
use strand_link::Config;

/// Window of the host-sized link: 256 frames. With 16 ms of USB latency and
/// the ~125-byte frames a BER of 1e-4 calls for, 128 frames (16 KiB) barely
/// cover the round trip; 256 lift goodput there from 57% to 73% (measured).
const W: usize = 256;
/// Frame capacity of the host-sized link: 8 KiB, as `strand` uses.
const N: usize = 8192;
type HostPair = Pair<W, N>;

#[derive(Parser, Debug)]
#[command(about = "Goodput of strand over an emulated serial line, and framing CPU throughput")]
struct Args {
    /// Line rate in bit/s (8N1: 10 bits per byte).
    #[arg(long, default_value_t = 2_000_000)]
    bit_rate: u64,
    /// One-way latency in milliseconds (16 = a USB-serial adapter's latency timer).
    #[arg(long, default_value_t = 16)]
    latency_ms: u64,
    /// Bytes to transfer per run at BER 0.
    #[arg(long, default_value_t = 4 << 20)]
    clean_bytes: usize,
    /// Bytes to transfer per run on noisy lines.
    #[arg(long, default_value_t = 1 << 20)]
    noisy_bytes: usize,
    /// Bit-error rates to measure.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.0, 1e-6, 1e-5, 1e-4])]
    ber: Vec<f64>,
    /// Add a Gilbert-Elliott burst model to every noisy condition:
    /// P_ENTER,P_LEAVE,BER_BAD per bit (peerbench's bursty condition is
    /// `--ber 3.3e-6 --burst 3.3e-6,3.3e-3,1e-2`: mean BER 1e-5, bursts of ~300 bits).
    #[arg(long, value_delimiter = ',')]
    burst: Option<Vec<f64>>,
    /// Seeds per condition (the median is reported).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Wall-clock seconds for the CPU throughput measurement.
    #[arg(long, default_value_t = 1.0)]
    cpu_secs: f64,
    /// Use the host's settings for a serial line of this rate (`Config::for_serial_line`, what
    /// `strand send`/`recv` use) instead of `Config::default()`.
    #[arg(long)]
    serial: bool,
    /// Send the data as packets of this many bytes, as the file transfer does (32768), instead of
    /// one byte stream (0).
    #[arg(long, default_value_t = 0)]
    packets: usize,
    /// Bytes the driver may write ahead of the wire (pty and UART buffers; ~8 KiB through
    /// `strand linkem`).
    #[arg(long, default_value_t = 4096)]
    buffer: usize,
}

struct Run {
    goodput: f64,
    retransmits: u64,
    payload: u16,
    strength: &'static str,
    hint: u8,
    exact: bool,
}

fn transfer(args: &Args, ber: f64, seed: u64) -> Run {
    let mut line = LineConfig::clean(args.bit_rate, Duration::from_millis(args.latency_ms)).with_ber(ber);
    if let Some(b) = args.burst.as_deref().filter(|b| ber > 0.0 && b.len() == 3) {
        line.burst = Some(GilbertElliott { p_enter_bad: b[0], p_leave_bad: b[1], ber_bad: b[2] });
    }
    line.buffer = args.buffer;
    let limit = line.byte_rate();
    let cfg =
        if args.serial { Config::for_serial_line(args.bit_rate as u32, 10, N) } else { Config::default() };
    let mut pair = HostPair::symmetric(cfg, line, seed);
    let len = if ber == 0.0 { args.clean_bytes } else { args.noisy_bytes };
    let data: Vec<u8> = (0..len).map(|i| (i as u64 ^ seed).wrapping_mul(0x9e37_79b9) as u8).collect();
    let packets = if args.packets == 0 { 0 } else { len.div_ceil(args.packets) };
    if packets == 0 {
        pair.a.write_stream(1, data.clone(), true);
        pair.b.stream_channels.insert(1);
    } else {
        for chunk in data.chunks(args.packets) {
            pair.a.send(1, chunk.to_vec());
        }
    }
    let budget = Duration::from_secs_f64(len as f64 / limit * 20.0 + 10.0);
    let done =
        pair.run_until(budget, |p| if packets == 0 { p.b.fin(1) } else { p.b.delivered.len() == packets });
    let secs = pair.elapsed().as_secs_f64();
    let s = pair.a.stats();
    let received: Vec<u8> = if packets == 0 {
        pair.b.stream(1).to_vec()
    } else {
        pair.b.delivered.iter().flat_map(|(_, p)| p.iter().copied()).collect()
    };
    Run {
        goodput: if done { received.len() as f64 / secs / limit } else { 0.0 },
        retransmits: s.retransmits,
        payload: s.payload_size,
        strength: s.fec_strength.name(),
        hint: s.fec_hint,
        exact: done && received == data,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// Encode+decode throughput of full-size frames on one core, in MB/s of payload.
fn cpu_throughput(secs: f64) -> f64 {
    let payload_len = framing::max_raw_for_encoded(N) - strand_link::wire::OVERHEAD;
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7 + 3) as u8).collect();
    let mut raw = vec![0u8; N];
    let mut wire = vec![0u8; N + 2];
    let mut deframer = Deframer::with_capacity(N);
    let mut header = Header {
        frame_type: FrameType::Data,
        flags: flags::ACK,
        channel: 1,
        session: 7,
        seq: 0,
        ack: 0,
        counter: 0,
    };
    let (mut bytes, mut frames) = (0u64, 0u64);
    let start = Wall::now();
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..64 {
            header.seq = header.seq.wrapping_add(1);
            let n = header.emit_frame(&payload, &mut raw);
            let w = framing::encode(&raw[..n], &mut wire).expect("buffer sized for a frame");
            match deframer.feed(&wire[..w]) {
                FeedResult::Frame { frame, .. } => {
                    let f = Frame::new_checked(frame).expect("valid frame");
                    let h = Header::parse(&f).expect("valid header");
                    assert_eq!(h.seq, header.seq);
                    bytes += f.payload().len() as u64;
                    frames += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(frames > 0);
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// In-frame FEC throughput on one core, MB/s of raw frame: protecting, and
/// repairing with `errors` damaged bytes in every codeword (0: the CRC fast
/// path). With `repair_only` the frame is protected and damaged once and each
/// round repairs a fresh copy of it: what a receiver spends.
///
/// The damaged bytes are spread evenly over the whole frame, each in its own
/// symbol, `errors` of them in every codeword. (They used to sit in its first
/// quarter, `k * 7 % len`, which flatters a Chien search that stops at the
/// last error it expects.)
fn fec_throughput(strength: Strength, errors: usize, secs: f64, repair_only: bool) -> f64 {
    let raw_len = 4000;
    let mut raw: Vec<u8> = (0..raw_len - 4).map(|i| (i * 13 + 1) as u8).collect();
    let crc = strand_link::wire::frame::crc32c(&raw);
    raw.extend_from_slice(&crc.to_le_bytes());
    let mut buf = vec![0u8; fec::protected_len(raw_len, strength)];
    let cw = fec::codewords(raw_len, strength);
    let m = errors * cw;
    // Damaged byte k: the middle of the k-th of m equal stretches, moved to
    // codeword k mod cw (byte i of the raw frame is in codeword i mod cw).
    let damaged: Vec<usize> = (0..m)
        .map(|k| {
            let at = (2 * k + 1) * raw_len / (2 * m);
            let at = at - at % cw + k % cw;
            if at < raw_len {
                at
            } else {
                at - cw
            }
        })
        .collect();
    let intact =
        |b: &[u8]| strand_link::wire::frame::crc32c(&b[..b.len() - 4]).to_le_bytes() == b[b.len() - 4..];
    let n = fec::protect(&raw, strength, &mut buf).expect("sized");
    for &at in &damaged {
        buf[1 + at] ^= 0x5A;
    }
    let template = buf.clone();
    let (mut bytes, start) = (0u64, Wall::now());
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..16 {
            if repair_only {
                buf.copy_from_slice(&template);
            } else {
                fec::protect(&raw, strength, &mut buf).expect("sized");
                for &at in &damaged {
                    buf[1 + at] ^= 0x5A;
                }
            }
            let repaired = fec::repair(&mut buf[..n], intact);
            let ok = matches!(repaired, fec::Repair::Repaired { corrected, .. } if corrected == m);
            assert!(ok, "repair within the parity: {repaired:?}, {m} damaged");
            bytes += raw_len as u64;
        }
    }
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// The brief's targets for a 2 Mbit/s line (issue 4), as a share of the line limit.
fn target(ber: f64) -> Option<f64> {
    [(0.0, 0.985), (1e-6, 0.97), (1e-5, 0.95), (1e-4, 0.90), (1e-3, 0.75)]
        .into_iter()
        .find(|&(limit, _)| ber <= limit)
        .map(|(_, target)| target)
}

fn main() {
    let args = Args::parse();
    let limit = args.bit_rate as f64 / 10.0;
    println!(
        "strand link benchmark: {} bit/s 8N1 ({:.0} bytes/s limit), one-way latency {} ms, window {W} frames of up to {N} bytes, {} seeds",
        args.bit_rate, limit, args.latency_ms, args.seeds
    );
    println!("| BER | bytes | goodput (median) | of line limit | min..max | retransmits | final payload | final FEC | exact | target |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut all_exact = true;
    for &ber in &args.ber {
        let runs: Vec<Run> = (1..=args.seeds).map(|seed| transfer(&args, ber, seed)).collect();
        let g: Vec<f64> = runs.iter().map(|r| r.goodput).collect();
        let (lo, hi) = (g.iter().cloned().fold(f64::MAX, f64::min), g.iter().cloned().fold(0.0, f64::max));
        let m = median(g);
        let exact = runs.iter().all(|r| r.exact);
        all_exact &= exact;
        let mid = &runs[runs.len() / 2];
        // The bursty condition's target applies to every noisy line with bursts.
        let goal = if args.burst.is_some() && ber > 0.0 { Some(0.90) } else { target(ber) };
        let t = goal.map_or("-".to_string(), |t| {
            // Keep the decimal of 98.5%: "MISSED 98%" beside 98.3% reads as a contradiction.
            let pct = if (t * 1000.0).round() % 10.0 == 0.0 {
                format!("{:.0}", t * 100.0)
            } else {
                format!("{:.1}", t * 100.0)
            };
            format!("{} {pct}%", if m >= t { ">=" } else { "MISSED" })
        });
        println!(
            "| {ber:e}{} | {} | {:.0} B/s | {:.2}% | {:.2}..{:.2}% | {} | {} | {} (hint {:#04x}) | {} | {t} |",
            if args.burst.is_some() && ber > 0.0 { " + bursts" } else { "" },
            if ber == 0.0 { args.clean_bytes } else { args.noisy_bytes },
            m * limit,
            m * 100.0,
            lo * 100.0,
            hi * 100.0,
            mid.retransmits,
            mid.payload,
            mid.strength,
            mid.hint,
            if exact { "yes" } else { "NO" },
        );
    }
    // Several short runs, median: a shared machine's other load shows as outliers.
    let cpu: Vec<f64> = (0..7).map(|_| cpu_throughput(args.cpu_secs / 7.0)).collect();
    let cpu = median(cpu);
    println!(
        "\nCPU: frame encode + decode (header, CRC-32C, COBS; {N}-byte frames, one core): {cpu:.0} MB/s ({}, target >= 200 MB/s)",
        if cpu >= 200.0 { "met" } else { "MISSED" }
    );
    println!("CPU headroom at this line rate: {:.0}x", cpu * 1e6 / limit);
    for strength in Strength::ALL.into_iter().filter(|&s| s != Strength::Off) {
        let (name, t) = (strength.name(), strength.corrects());
        let fec = |errors, repair_only| {
            median(
                (0..3).map(|_| fec_throughput(strength, errors, args.cpu_secs / 6.0, repair_only)).collect(),
            )
        };
        let (clean, half, full) = (fec(0, false), fec(t / 2, false), fec(t, false));
        let (half_rx, full_rx) = (fec(t / 2, true), fec(t, true));
        println!(
            "FEC {name} (4 KiB frames, one core): protect+repair {clean:.0} MB/s clean, {half:.0} MB/s with {} damaged symbols per codeword, {full:.0} MB/s with {t} (the limit); repair alone {half_rx:.0} and {full_rx:.0} MB/s",
            t / 2
        );
    }
    if !all_exact {
        eprintln!("error: a transfer was incomplete or not byte-exact");
        std::process::exit(1);
    }
}
