//! `strand spool LINK --out DIR --in DIR`: two-way synchronisation of store-and-forward spool
//! directories over any link, in the layout `nncp-xfer` reads and writes
//! (`DIR/RECIPIENT/SENDER/PACKET`), so NNCP's own tools fill `--out` (`nncp-xfer -tx`) and empty
//! `--in` (`nncp-xfer -rx`).
//!
//! Each side runs the verified, resumable file transfer ([`crate::transfer`]) twice at once: as a
//! sender of its `--out` packets and as a receiver into its `--in`, on two channels of the link
//! (the side with the lower session id sends on [`CHANNEL_LOW`], the other on [`CHANNEL_HIGH`]).
//! The transfer's spool mode gives the guarantees:
//! - a packet appears in `--in` only complete, verified by BLAKE3 and fsynced, by one atomic rename
//!   under its path (partial data in `--in/.strand-partial`, resumed by content hash);
//! - a packet is deleted from `--out` only after the peer answered `DONE` (written, verified,
//!   synced, journalled) or `HAVE`;
//! - never twice: the receiver's journal (`--in/.strand-spool/received`) answers `HAVE` to a packet
//!   it placed before, even once a consumer took it away.
//!
//! Without `--watch` the command exits 0 once both directions are done: everything this side had
//! was confirmed by the peer, and the peer said it had nothing more. A link lost on the way (the
//! peer restarted, the cable pulled) is waited for up to `--connect-timeout` and both directions
//! start again, resuming partial packets. With `--watch` it runs until stopped, sending packets as
//! they appear.

mod order;
mod scan;

use crate::driver::LinkHandle;
use crate::files::ChannelIo;
use crate::transfer::{self, RecvOptions, SendOptions, TransferError, SPOOL_STATE_DIR};
use nix::fcntl::{Flock, FlockArg};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use scan::{check_packet_name, outgoing, Outgoing};

/// The channel the side with the lower session id sends its packets on.
pub const CHANNEL_LOW: u8 = 3;
/// The channel the side with the higher session id sends its packets on.
pub const CHANNEL_HIGH: u8 = 4;

/// `strand spool`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct SpoolArgs {
    /// The link.
    pub link: String,
    #[command(flatten)]
    pub opts: crate::LinkOpts,
    /// Outgoing spool: packets below it (RECIPIENT/SENDER/PACKET, as `nncp-xfer -tx` writes them)
    /// are sent, and deleted here once the peer confirmed them written and synced.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Incoming spool: the peer's packets appear here under the same path, each only complete and
    /// verified (read them with `nncp-xfer -rx`).
    #[arg(long = "in", value_name = "DIR")]
    pub in_dir: PathBuf,
    /// Keep running: send packets as they appear in --out and receive what the peer sends.
    #[arg(long)]
    pub watch: bool,
    /// Filespooler-like ordered delivery: packets are numbered per directory when first seen
    /// (kept in --out/.strand-spool/sequence) and arrive as DIR/SEQ.NAME, each only after the one
    /// before it, across sessions. Both ends need it. Not for NNCP (its packets need no order
    /// and nncp-xfer -rx wants their own names).
    #[arg(long)]
    pub ordered: bool,
    /// With --watch: seconds between looks at --out.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub scan_interval: f64,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Print the summary as one JSON object on stdout instead of a line on stderr.
    #[arg(long)]
    pub json: bool,
}

/// What a spool run moved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SpoolReport {
    /// Packets of `--out` the peer confirmed (and that were deleted here).
    pub sent: usize,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Packets placed in `--in`.
    pub received: usize,
    /// Their bytes (this run's; resumed bytes of earlier runs not counted).
    pub bytes_received: u64,
}

/// The summary of a run.
pub fn summary(
    report: &SpoolReport,
    elapsed: Duration,
    stats: strand_link::Stats,
) -> crate::summary::Summary {
    let mut s = crate::summary::Summary::new(
        "spool",
        format!("sent {} packets, received {}", report.sent, report.received),
        report.bytes_sent,
        report.bytes_received,
    )
    .with("packets_sent", report.sent)
    .with("packets_received", report.received);
    s.elapsed = elapsed;
    s.stats = Some(stats);
    s
}

/// Locks held on both spool directories while the command runs.
pub struct Locks {
    _out: Flock<File>,
    _in: Flock<File>,
}

/// Checks both directories and locks them against a second `strand spool` on either.
pub fn lock(out: &Path, in_dir: &Path) -> Result<Locks, TransferError> {
    let bad = |dir: &Path, why: String| TransferError::BadDir { dir: dir.to_path_buf(), why };
    for dir in [out, in_dir] {
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(bad(dir, "it is not a directory".into())),
            Err(e) => return Err(bad(dir, e.to_string())),
        }
    }
    let same = match (fs::canonicalize(out), fs::canonicalize(in_dir)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(bad(
            in_dir,
            "it is also --out: received packets would be sent back; give two directories".into(),
        ));
    }
    let one = |dir: &Path| lock_dir(dir).map_err(|why| bad(dir, why));
    Ok(Locks { _out: one(out)?, _in: one(in_dir)? })
}

/// Locks one spool directory (`DIR/.strand-spool/lock`) against a second command receiving into
/// it or sending out of it: `strand spool` takes it on both its directories, `diode-rx --spool` on
/// its own. The lock holds while the returned value lives.
pub fn lock_dir(dir: &Path) -> Result<Flock<File>, String> {
    let state = dir.join(SPOOL_STATE_DIR);
    fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    let file = File::create(state.join("lock")).map_err(|e| e.to_string())?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| "another strand spool or diode-rx --spool is using it".to_string())
}

/// Whether an error means the link went away (the run starts both directions again).
fn link_lost(e: &TransferError) -> bool {
    e.exit_code() == transfer::EXIT_LINK_LOST
}

/// Runs the synchronisation until both directions are done (or for ever with `--watch`).
pub async fn run(
    link: &LinkHandle,
    args: &SpoolArgs,
    progress: bool,
    wait: Duration,
) -> Result<SpoolReport, (TransferError, SpoolReport)> {
    let _locks = lock(&args.out, &args.in_dir).map_err(|e| (e, SpoolReport::default()))?;
    let mut report = SpoolReport::default();
    // Packets the peer refused in this run: not offered again until they change.
    let mut refused = HashSet::new();
    loop {
        let generation = link.generation();
        let (ours, theirs) = link.sessions();
        let (send_on, recv_on) = if ours < theirs.unwrap_or(0) {
            (CHANNEL_LOW, CHANNEL_HIGH)
        } else {
            (CHANNEL_HIGH, CHANNEL_LOW)
        };
        let mut sent = (0, 0);
        let mut received = (0, 0);
        let (s, r) = tokio::join!(
            send_side(link, args, progress, generation, send_on, &mut refused, &mut sent),
            recv_side(link, args, progress, generation, recv_on, &mut received),
        );
        report.sent += sent.0;
        report.bytes_sent += sent.1;
        report.received += received.0;
        report.bytes_received += received.1;
        let lost = match (s, r) {
            (Ok(()), Ok(())) => return Ok(report),
            (Err(e), _) | (_, Err(e)) if !link_lost(&e) => return Err((e, report)),
            (Err(e), _) | (_, Err(e)) => e,
        };
        tracing::warn!("{lost}; both directions start again when the peer is back");
        if link.wait_up(wait).await.is_err() {
            return Err((lost, report));
        }
    }
}

/// This side's packets to the peer: one exchange (or, with `--watch`, one per batch found).
async fn send_side(
    link: &LinkHandle,
    args: &SpoolArgs,
    progress: bool,
    generation: u64,
    channel: u8,
    refused: &mut HashSet<(String, u64, i128)>,
    sent: &mut (usize, u64),
) -> Result<(), TransferError> {
    let mut first = true;
    let mut sequencer = match args.ordered {
        true => Some(order::Sequencer::open(&args.out).map_err(|source| TransferError::ReadFailed {
            path: args.out.join(SPOOL_STATE_DIR).join(order::SEQUENCE),
            source,
        })?),
        false => None,
    };
    loop {
        if link.generation() != generation {
            return Err(session_changed());
        }
        let batch: Vec<Outgoing> = outgoing(&args.out)
            .map_err(|source| TransferError::ReadFailed { path: args.out.clone(), source })?
            .into_iter()
            .filter(|o| !refused.contains(&(o.name.clone(), o.size, o.mtime_ns)))
            .collect();
        if batch.is_empty() && !first {
            tokio::time::sleep(Duration::from_secs_f64(args.scan_interval.max(0.01))).await;
            continue;
        }
        first = false;
        let (batch, names): (Vec<Outgoing>, Vec<String>) = match sequencer.as_mut() {
            Some(seq) => seq
                .assign(batch)
                .map_err(|e| TransferError::WriteFailed { path: args.out.join(SPOOL_STATE_DIR), source: e })?
                .into_iter()
                .unzip(),
            None => {
                let names = batch.iter().map(|o| o.name.clone()).collect();
                (batch, names)
            }
        };
        let opts = SendOptions {
            files: batch.iter().map(|o| o.path.clone()).collect(),
            progress,
            spool_names: names,
        };
        let mut io = ChannelIo::new(link.clone(), channel);
        let result = if link.generation() != generation {
            Err(session_changed())
        } else {
            transfer::send_files(&mut io, &opts).await
        };
        // What left the spool was confirmed by the peer, whatever happened afterwards.
        for o in &batch {
            if fs::symlink_metadata(&o.path).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
                sent.0 += 1;
                sent.1 += o.size;
            } else if result.is_err() {
                refused.insert((o.name.clone(), o.size, o.mtime_ns));
            }
        }
        match result {
            Ok(_) if !args.watch => return Ok(()),
            Ok(_) => {}
            Err(e) if link_lost(&e) => {
                // Offered again when the link is back: nothing was refused.
                refused.retain(|(name, ..)| !batch.iter().any(|o| &o.name == name));
                return Err(e);
            }
            Err(e) if !args.watch => return Err(e),
            Err(e) => tracing::warn!("{e}; those packets stay in {} until they change", args.out.display()),
        }
    }
}

/// The peer's packets into `--in`: one exchange (or, with `--watch`, every exchange it starts).
async fn recv_side(
    link: &LinkHandle,
    args: &SpoolArgs,
    progress: bool,
    generation: u64,
    channel: u8,
    received: &mut (usize, u64),
) -> Result<(), TransferError> {
    let opts = RecvOptions {
        dir: args.in_dir.clone(),
        overwrite: false,
        progress,
        spool: true,
        ordered: args.ordered,
    };
    loop {
        let mut io = ChannelIo::new(link.clone(), channel);
        if link.generation() != generation {
            return Err(session_changed());
        }
        match transfer::recv_files(&mut io, &opts).await {
            Ok(r) => {
                received.0 += r.files.len();
                received.1 += r.bytes_received;
                if !args.watch {
                    return Ok(());
                }
            }
            Err(e) if link_lost(&e) || !args.watch => return Err(e),
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

fn session_changed() -> TransferError {
    TransferError::LinkLost {
        stage: "between exchanges".into(),
        source: "the peer restarted; the session was reset".into(),
    }
}
