//! `strand demo`: no hardware needed. Starts the line emulator in-process on
//! two pseudo-terminals, opens both ends through the real serial-port code
//! path, sends a generated file across with a progress bar, verifies it, and
//! reports goodput against the line limit and how the noise was handled.

use crate::address::Address;
use crate::driver::{self, channel};
use crate::files::ChannelIo;
use crate::linkem::{Linkem, LinkemArgs};
use crate::transfer::{self, RecvOptions, SendOptions};
use crate::transport::SerialSettings;
use std::io::Write;
use std::time::{Duration, Instant};

/// Options of `strand demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Line rate of the emulated line in bit/s.
    #[arg(long, default_value_t = 2_000_000)]
    pub baud: u64,
    /// Bit-error rate of the emulated line.
    #[arg(long, default_value_t = 1e-5)]
    pub ber: f64,
    /// One-way latency of the emulated line in milliseconds.
    #[arg(long, default_value_t = 1)]
    pub latency_ms: u64,
    /// Size of the generated file in MiB.
    #[arg(long, default_value_t = 4.0)]
    pub mib: f64,
    /// Seed of the line's noise and of the file's contents.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs the demo; returns an error if anything did not arrive exactly.
pub async fn run(args: DemoArgs, progress: bool) -> anyhow::Result<()> {
    let line = LinkemArgs {
        baud: args.baud,
        ber: args.ber,
        burst: None,
        drop: 0.0,
        dup: 0.0,
        insert: 0.0,
        latency_ms: args.latency_ms,
        fifo: 4096,
        one_way: false,
        seed: args.seed,
        link_a: None,
        link_b: None,
    };
    let em = Linkem::start(&line)?;
    let serial = SerialSettings { baud: args.baud as u32, ..SerialSettings::default() };
    println!(
        "emulated line: {} bit/s 8N1, bit-error rate {:e}, {} ms latency, between {} and {}",
        args.baud,
        args.ber,
        args.latency_ms,
        em.path_a().display(),
        em.path_b().display()
    );
    let work = tempfile_dir()?;
    let src = work.join("demo.bin");
    let len = (args.mib * 1024.0 * 1024.0) as usize;
    let data = strand_link::sim::seeded_bytes(args.seed, len);
    std::fs::File::create(&src)?.write_all(&data)?;
    let out_dir = work.join("received");
    std::fs::create_dir_all(&out_dir)?;

    let start = Instant::now();
    let cfg = driver::config_for_serial(&serial);
    let give_up = Duration::from_secs(30);
    let a = driver::start(&Address::Serial(em.path_a().to_path_buf()), &serial, cfg.clone(), give_up).await?;
    let b = driver::start(&Address::Serial(em.path_b().to_path_buf()), &serial, cfg, give_up).await?;
    a.wait_connected(Duration::from_secs(10)).await?;
    b.wait_connected(Duration::from_secs(10)).await?;
    let send_opts = SendOptions { files: vec![src.clone()], progress, ..Default::default() };
    let recv_opts =
        RecvOptions { dir: out_dir.clone(), overwrite: true, progress: false, spool: false, ordered: false };
    let (mut ia, mut ib) =
        (ChannelIo::new(a.clone(), channel::FILES), ChannelIo::new(b.clone(), channel::FILES));
    let (sent, received) =
        tokio::join!(transfer::send_files(&mut ia, &send_opts), transfer::recv_files(&mut ib, &recv_opts));
    sent?;
    received?;
    let secs = start.elapsed().as_secs_f64();
    // Both ends wind down (the last acknowledgements) before the line goes away.
    tokio::join!(
        a.linger(Duration::from_millis(50), Duration::ZERO),
        b.linger(Duration::from_millis(50), Duration::ZERO)
    );

    let got = std::fs::read(out_dir.join("demo.bin"))?;
    anyhow::ensure!(got == data, "the received file differs from the one sent");
    let (ab, ba) = em.stop();
    let (sa, sb) = (a.stats(), b.stats());
    let limit = args.baud as f64 / 10.0;
    println!("sent {} bytes in {secs:.2} s and verified them byte for byte (BLAKE3 and a full compare)", len);
    println!(
        "goodput {:.0} bytes/s = {:.1}% of the line limit ({limit:.0} bytes/s), handshake and file verification included",
        len as f64 / secs,
        len as f64 / secs / limit * 100.0
    );
    println!(
        "line noise: {} bit errors injected A->B, {} B->A; in-frame FEC ({} at the end) repaired {} damaged symbols in the {} protected frames received; {} frames failed their CRC and were recovered by {} retransmissions ({} fast, {} on timeout)",
        ab.bit_errors,
        ba.bit_errors,
        sa.fec_strength.name(),
        sa.fec_corrected + sb.fec_corrected,
        sa.fec_frames_rx + sb.fec_frames_rx,
        sa.crc_errors + sb.crc_errors,
        sa.retransmits + sb.retransmits,
        sa.fast_retransmits + sb.fast_retransmits,
        sa.timeouts + sb.timeouts
    );
    println!(
        "link: RTT {:.1} ms, payload adapted to {} bytes per frame, {} frames sent",
        sa.srtt_us as f64 / 1000.0,
        sa.payload_size,
        sa.frames_tx
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let base = std::env::temp_dir().join(format!("strand-demo-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}
