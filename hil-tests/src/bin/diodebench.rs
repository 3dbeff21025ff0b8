//! Diode benchmark (issue 5): what one-way transfer costs.
//!
//! 1. Carousel overhead: frames and wire bytes sent until the receiver holds
//!    the file, as a ratio to the 1/(1-p) limit, on a channel that loses each
//!    frame with probability p; median and worst over seeds. Also run with the
//!    GF(2^8) code alone (128-symbol blocks) to show why big blocks pay off.
//! 2. One pass with redundancy chosen for p (`--expect-loss p`): share of
//!    transfers that succeed.
//! 3. Erasure-code throughput on one core, encode and decode.
//! 4. Goodput over a one-way 2 Mbit/s serial line with bit errors (the
//!    seeded line emulator, in simulated time), as a share of its limit.
//!
//! `cargo run --release -p strand-hil --bin diodebench -- --help`

use clap::Parser;
use rand::{Rng, RngExt, SeedableRng};
use rand_pcg::Pcg64;
use std::time::{Duration, Instant as Wall};
use strand_link::diode::stream::{encode_frame, StreamDecoder};
use strand_link::diode::{
    CodeId, Codec, EncodedBlock, Layout, Limits, Manifest, MemStore, Outgoing, Poll, Receiver, Redundancy,
    Sender, SenderConfig,
};
use strand_link::fec::Strength;
use strand_link::sim::{Direction, LineConfig};
use strand_link::time::Instant;

#[derive(Parser, Debug)]
#[command(
    about = "One-way (diode) transfer: carousel overhead, one-pass success, codec speed, serial goodput"
)]
struct Args {
    /// Frame loss rates, in percent.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1.0, 5.0, 10.0, 20.0])]
    loss: Vec<f64>,
    /// Seeds per loss rate for the carousel.
    #[arg(long, default_value_t = 25)]
    seeds: u64,
    /// File size for the carousel runs.
    #[arg(long, default_value_t = 4 << 20)]
    bytes: usize,
    /// Symbol size (a UDP datagram's worth by default).
    #[arg(long, default_value_t = 1400)]
    symbol: u16,
    /// One-pass trials per loss rate.
    #[arg(long, default_value_t = 2000)]
    trials: u64,
    /// File size for the one-pass trials.
    #[arg(long, default_value_t = 256 << 10)]
    trial_bytes: usize,
    /// Seconds per codec throughput figure.
    #[arg(long, default_value_t = 2.0)]
    cpu_secs: f64,
    /// Serial line: bit rate, BER, and the file size sent over it.
    #[arg(long, default_value_t = 2_000_000)]
    bit_rate: u64,
    #[arg(long, default_value_t = 1e-5)]
    ber: f64,
    #[arg(long, default_value_t = 1 << 20)]
    serial_bytes: usize,
    /// In-frame FEC strength on the serial line: off, thin, light, heavy, wide2, wide4 or wide8.
    #[arg(long, default_value = "thin")]
    fec: String,
    /// Skip parts: any of carousel, onepass, cpu, serial.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Pcg64::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn outgoing(bytes: &[u8], layout: Layout) -> Outgoing {
    Outgoing {
        manifest: Manifest {
            object: 0,
            objects: 1,
            size: bytes.len() as u64,
            mode: 0o644,
            mtime: 0,
            hash: Some(*blake3::hash(bytes).as_bytes()),
            name: "file".into(),
        },
        layout,
    }
}

/// Sends `bytes` until the receiver holds it (or `limit` frames); each frame
/// reaches the receiver unless `lose()` says otherwise. Returns (frames sent,
/// wire bytes sent, delivered).
fn transfer(
    bytes: &[u8],
    layout: Layout,
    config: SenderConfig,
    mut lose: impl FnMut() -> bool,
    limit: u64,
) -> (u64, u64, bool) {
    let mut tx = Sender::new(0x5EED, vec![outgoing(bytes, layout)], config, None).expect("sender");
    let mut rx = Receiver::new(None, Limits::default());
    let mut store = MemStore::default();
    let mut out = vec![0u8; 10_000];
    let (mut wire, mut now) = (0u64, 0u64);
    loop {
        if !store.files.is_empty() {
            return (tx.frames_sent(), wire, store.files["file"] == bytes);
        }
        if tx.frames_sent() >= limit {
            return (tx.frames_sent(), wire, false);
        }
        match tx.poll_frame(Instant::from_micros(now), &mut out) {
            Poll::Done => return (tx.frames_sent(), wire, false),
            Poll::NeedBlock { object, block, offset, len } => {
                tx.provide_block(object, block, &bytes[offset as usize..(offset + len) as usize])
                    .expect("block");
            }
            Poll::NeedRepair { object, block } => tx.encode_repair(object, block).expect("repair"),
            Poll::NeedHash { object } => tx.set_hash(object, *blake3::hash(bytes).as_bytes()),
            Poll::Wait(t) => now = t.as_micros(),
            Poll::Frame(n) => {
                now += 100;
                wire += n as u64;
                if !lose() {
                    let _ = rx.handle_frame(Instant::from_micros(now), &out[..n], &mut store);
                }
            }
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn carousel(args: &Args) {
    println!("## Carousel: bytes sent until the receiver completes, vs the 1/(1-p) limit\n");
    println!(
        "{} B file, {} B symbols, random frame loss, {} seeds; ratio = sent / (needed / (1-p)); `frames` counts\nsymbols only against K source symbols, `bytes` counts every wire byte (headers, CRC, manifests, heartbeats)\nagainst the file size.\n",
        args.bytes, args.symbol, args.seeds
    );
    println!(
        "| code | loss p | frames ratio (median) | bytes ratio (median) | bytes ratio (worst) | target |"
    );
    println!("|---|---|---|---|---|---|");
    let file = data(args.bytes, 1);
    let big = Layout::choose(args.bytes as u64, args.symbol).expect("layout");
    let k = big.source_symbols();
    let small = Layout {
        code: CodeId::Gf8,
        size: args.bytes as u64,
        symbol_size: args.symbol,
        block_max: 128,
        repair: 128,
    };
    let config = SenderConfig { redundancy: Redundancy::Fixed(0.0), rounds: None, ..SenderConfig::default() };
    for (name, layout) in [
        (format!("GF(2^16), {} blocks of ~{}", big.blocks(), big.block_max), big),
        (format!("GF(2^8) only, {} blocks of 128", small.blocks()), small),
    ] {
        for &p in &args.loss {
            let q = p / 100.0;
            let (mut fr, mut br) = (Vec::new(), Vec::new());
            for seed in 0..args.seeds {
                let mut rng = Pcg64::seed_from_u64(seed * 1000 + (p * 10.0) as u64);
                let (frames, wire, ok) = transfer(&file, layout, config, || rng.random::<f64>() < q, 100 * k);
                assert!(ok, "seed {seed} p {p}: transfer failed");
                fr.push(frames as f64 / (k as f64 / (1.0 - q)));
                br.push(wire as f64 / (args.bytes as f64 / (1.0 - q)));
            }
            let worst = br.iter().copied().fold(0.0, f64::max);
            println!(
                "| {name} | {p}% | {:.4} | {:.4} | {:.4} | <= 1.05 |",
                median(&mut fr),
                median(&mut br),
                worst
            );
        }
    }
    println!();
}

fn one_pass(args: &Args) {
    println!("## One pass with redundancy chosen for the loss (`--expect-loss p`)\n");
    println!(
        "{} B file, {} B symbols, {} trials per row, random frame loss p.\n",
        args.trial_bytes, args.symbol, args.trials
    );
    println!("| loss p | repair sent | succeeded | success rate | target |");
    println!("|---|---|---|---|---|");
    let file = data(args.trial_bytes, 2);
    let layout = Layout::choose(args.trial_bytes as u64, args.symbol).expect("layout");
    for &p in &args.loss {
        let q = p / 100.0;
        let config = SenderConfig {
            redundancy: Redundancy::ExpectLoss(q as f32),
            rounds: Some(1),
            ..SenderConfig::default()
        };
        let probe = Sender::new(1, vec![outgoing(&file, layout)], config, None).expect("sender");
        let repair: u32 = (0..layout.blocks() as u16).map(|b| probe.first_pass_repair(&layout, b)).sum();
        let mut ok = 0u64;
        for t in 0..args.trials {
            let mut rng = Pcg64::seed_from_u64(t * 7919 + (p * 10.0) as u64);
            ok += u64::from(transfer(&file, layout, config, || rng.random::<f64>() < q, u64::MAX).2);
        }
        println!(
            "| {p}% | {repair} of {} symbols ({:.1}%) | {ok}/{} | {:.2}% | >= 99.9% |",
            layout.source_symbols(),
            100.0 * f64::from(repair) / layout.source_symbols() as f64,
            args.trials,
            100.0 * ok as f64 / args.trials as f64
        );
    }
    println!();
}

fn cpu(args: &Args) {
    println!("## Erasure-code throughput, one core (source bytes per second)\n");
    println!("| code, block | encode | decode, 20% of source lost | target |");
    println!("|---|---|---|---|");
    let budget = Duration::from_secs_f64(args.cpu_secs);
    let chosen = Layout::choose(4096 * 1024, 1024).expect("layout");
    let rows = [
        ("GF(2^16), 4096 x 1024 B, R = 2048 (default, k/2)", chosen),
        ("GF(2^16), 4096 x 1024 B, R = 4096", Layout { repair: 4096, ..chosen }),
        ("GF(2^16), 4096 x 1024 B, R = 8192", Layout { repair: 8192, ..chosen }),
        ("GF(2^8), 128 x 1024 B, R = 128", Layout::choose(128 * 1024, 1024).expect("layout")),
    ];
    for (name, layout) in rows {
        let size = layout.size as usize;
        let src = data(size, 3);
        let enc = EncodedBlock::new(&layout, 0, &src).expect("encode");
        let k = enc.source_symbols() as u16;
        let lost = k / 5;
        let symbols: Vec<(u16, Vec<u8>)> =
            (lost..k + lost).map(|e| (e, enc.symbol(e).expect("symbol").to_vec())).collect();
        let rate = |f: &mut dyn FnMut()| {
            let start = Wall::now();
            let mut n = 0u64;
            while start.elapsed() < budget {
                f();
                n += 1;
            }
            (n * size as u64) as f64 / start.elapsed().as_secs_f64() / 1e6
        };
        // As the sender and receiver do: one codec, reused block after block.
        let mut codec = Codec::default();
        let e = rate(&mut || {
            std::hint::black_box(codec.encode(&layout, 0, &src).expect("encode"));
        });
        let d = rate(&mut || {
            let out = codec.decode(&layout, 0, symbols.iter().map(|(e, s)| (*e, &s[..]))).expect("decode");
            assert_eq!(out.len(), size);
        });
        println!("| {name} | {e:.0} MB/s | {d:.0} MB/s | >= 500 MB/s |");
    }
    println!();
}

fn serial(args: &Args) {
    println!("## Goodput over a one-way serial line\n");
    println!(
        "{} bit/s 8N1 ({} B/s limit), BER {:e}, {} B file, 1024 B symbols, {} in-frame FEC, carousel until\nthe receiver holds the file (simulated time; 5 seeds).\n",
        args.bit_rate,
        args.bit_rate / 10,
        args.ber,
        args.serial_bytes,
        args.fec
    );
    println!("| seed | time | goodput | of line limit |");
    println!("|---|---|---|---|");
    let strength = Strength::from_name(&args.fec).unwrap_or_else(|| {
        panic!("--fec {}: expected off, thin, light, heavy, wide2, wide4 or wide8", args.fec)
    });
    let file = data(args.serial_bytes, 4);
    let layout = Layout::choose(args.serial_bytes as u64, 1024).expect("layout");
    let mut shares = Vec::new();
    for seed in 0..5u64 {
        let cfg = LineConfig::clean(args.bit_rate, Duration::from_millis(1)).with_ber(args.ber);
        let mut line = Direction::new(cfg, seed);
        let config =
            SenderConfig { redundancy: Redundancy::Fixed(0.0), rounds: None, ..SenderConfig::default() };
        let mut tx = Sender::new(7, vec![outgoing(&file, layout)], config, None).expect("sender");
        let mut rx = Receiver::new(None, Limits::default());
        let mut store = MemStore::default();
        let mut dec = StreamDecoder::default();
        let (mut out, mut bytes) = (vec![0u8; 10_000], Vec::new());
        let mut now_ns = 0u64;
        let mut first = true;
        let done_at = loop {
            // Write the next frame as soon as the line's buffer takes it.
            bytes.clear();
            match tx.poll_frame(Instant::from_micros(now_ns / 1000), &mut out) {
                Poll::Frame(n) => encode_frame(&out[..n], strength, first, &mut bytes),
                Poll::NeedBlock { block, offset, len, .. } => {
                    tx.provide_block(0, block, &file[offset as usize..(offset + len) as usize])
                        .expect("block");
                    continue;
                }
                Poll::NeedRepair { object, block } => {
                    tx.encode_repair(object, block).expect("repair");
                    continue;
                }
                Poll::NeedHash { .. } | Poll::Wait(_) => {
                    unreachable!("the hash is known, and a carousel never ends")
                }
                Poll::Done => unreachable!("carousel never ends"),
            }
            first = false;
            now_ns = now_ns.max(line.writable_at(bytes.len()));
            line.write(now_ns, &bytes);
            let arrived = line.read(now_ns);
            dec.feed(&arrived, |f| {
                let _ = rx.handle_frame(Instant::from_micros(now_ns / 1000), f, &mut store);
            });
            if !store.files.is_empty() {
                break now_ns;
            }
        };
        assert_eq!(store.files["file"], file, "seed {seed}");
        let secs = done_at as f64 / 1e9;
        let share = args.serial_bytes as f64 / secs / (args.bit_rate as f64 / 10.0);
        shares.push(share);
        println!(
            "| {seed} | {secs:.3} s | {:.0} B/s | {:.2}% |",
            args.serial_bytes as f64 / secs,
            share * 100.0
        );
    }
    println!("\nMedian: {:.2}% of the line limit\n", median(&mut shares) * 100.0);
}

fn main() {
    let args = Args::parse();
    let run = |part: &str| !args.skip.iter().any(|s| s == part);
    if run("carousel") {
        carousel(&args);
    }
    if run("onepass") {
        one_pass(&args);
    }
    if run("cpu") {
        cpu(&args);
    }
    if run("serial") {
        serial(&args);
    }
}
