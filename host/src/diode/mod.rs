//! `strand diode-tx` / `strand diode-rx`: one-way transfer (spec section 13)
//! over a data diode, a TX-only serial cable, UDP or a file.
//!
//! The protocol lives in `strand_link::diode` (sans-IO); this module only
//! reads files, paces and writes frames ([`tx`]), reads and deframes them and
//! keeps what arrives on disk ([`rx`], [`store`]).

pub mod endpoint;
pub mod pace;
pub mod produce;
pub mod report;
pub mod rx;
pub mod store;
pub mod treehash;
pub mod tx;
pub mod udp;
pub mod workers;

/// Serial line rate when neither `--baud` nor the named link gives one.
pub const DEFAULT_BAUD: u32 = 115_200;

use std::path::{Path, PathBuf};
use strand_link::diode::AuthKey;
use strand_link::fec::Strength;

/// Exit codes of `strand diode-rx` (also in its `--help` and the user guide).
pub mod exit {
    /// Every object the sender announced arrived and was verified.
    pub const COMPLETE: u8 = 0;
    /// An error: bad options, the link would not open, the disk is full, a
    /// file was refused because it exists, or a name was refused.
    pub const ERROR: u8 = 1;
    /// Some objects arrived only in part (or failed their hash).
    pub const PARTIAL: u8 = 2;
    /// Nothing arrived, or some announced objects were never seen at all.
    pub const NOTHING: u8 = 3;
}

/// Parses `--fec`: the core's strength names (spec 2.1), listed in `--help`
/// and in the error for any other word.
fn fec_parser() -> impl clap::builder::TypedValueParser<Value = Strength> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Strength::ALL.map(Strength::name))
        .map(|name| Strength::from_name(&name).expect("only listed names get here"))
}

/// Options of `strand diode-tx`.
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["files", "spool"])))]
#[command(
    override_usage = "strand diode-tx [OPTIONS] <LINK> <FILES>...\n       strand diode-tx [OPTIONS] <LINK> --spool <DIR>"
)]
pub struct TxArgs {
    /// Where frames go: a serial device or pty (written only, never read),
    /// udp:HOST:PORT, - (stdout) or a file path.
    pub link: String,
    /// Files and directories to send (a directory: every regular file below
    /// it, named relative to it); - reads stdin and sends it as "stdin".
    pub files: Vec<PathBuf>,
    /// Send the complete packets of this nncp-xfer spool (DIR/RECIPIENT/SENDER/PACKET,
    /// as nncp-xfer -tx -mkdir writes it; hidden files and nncp-xfer's files in the
    /// making are skipped) under those paths, to diode-rx --spool. Nothing comes
    /// back, so they stay in DIR (see --remove-sent). With --forever: a carousel
    /// over the spool, started again with the new set of packets when, at the end
    /// of a pass, packets have appeared or gone.
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// With --spool: delete each packet once its --rounds passes have all been
    /// sent (whether they arrived cannot be known: choose --rounds and
    /// --expect-loss for the line). With --forever the spool is then sent in
    /// batches: the packets found, --rounds passes, deleted, the next ones.
    #[arg(long, requires = "spool", conflicts_with = "files")]
    pub remove_sent: bool,
    /// With --spool: seconds between looks at an empty spool, and the least
    /// time between two looks of a carousel.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub scan_interval: f64,
    /// Repair symbols sent with the first pass, as a percentage of each
    /// block's source symbols.
    #[arg(long, value_name = "PCT", conflicts_with = "expect_loss")]
    pub redundancy: Option<f32>,
    /// Send enough repair that one pass survives this frame loss (percent)
    /// with a failure chance of 1e-5 per block [default: 1].
    #[arg(long, value_name = "PCT")]
    pub expect_loss: Option<f32>,
    /// Passes over the files; each later pass sends fresh repair symbols
    /// [default: 1]. Not with --forever, except with --spool --remove-sent
    /// (passes per batch).
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
    /// Start at this pass: a run that continues an earlier one (same files,
    /// same --expect-loss or --redundancy) with --first-round 1 sends repair
    /// symbols the earlier first pass did not, so a receiver that kept that
    /// pass's symbols finishes with fewer frames.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub first_round: u32,
    /// Send passes until killed (a carousel: receivers may join at any time).
    #[arg(long)]
    pub forever: bool,
    /// Pace the line at this many bits/s: bytes x 10 on serial, x 8 on
    /// files, and on UDP each datagram's IP packet (payload and 28 bytes of
    /// IPv4 and UDP headers, 48 on IPv6) x 8 [default: 98% of --baud on
    /// serial, 10000000 on UDP, unlimited on files and stdout].
    #[arg(long, value_name = "BITS_PER_S")]
    pub rate: Option<u64>,
    /// Threads that encode repair symbols [default: half the cores, 1 to 4].
    #[arg(long, value_name = "N")]
    pub encode_threads: Option<usize>,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Bytes per symbol (even, 2..=8192) [default: 1024; 1400 on UDP].
    #[arg(long, value_name = "BYTES")]
    pub symbol_size: Option<u16>,
    /// In-frame FEC on byte streams: interleaved thin/light/heavy (bursts) or
    /// frame-wide wide2/wide4/wide8 (scattered errors) [default: light on
    /// serial, off on files].
    #[arg(long, value_parser = fec_parser())]
    pub fec: Option<Strength>,
    #[command(flatten)]
    pub key: KeyOpts,
    /// Milliseconds between heartbeats (1..=65535).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub heartbeat: u64,
    /// Serial line rate in bit/s [default: the named link's, or 115200].
    #[arg(long)]
    pub baud: Option<u32>,
}

impl TxArgs {
    /// What the parser cannot say about the options (shown as a usage error).
    pub fn usage_error(&self) -> Option<&'static str> {
        if self.forever && self.rounds.is_some() && !(self.spool.is_some() && self.remove_sent) {
            return Some(
                "--rounds cannot be used with --forever (a carousel has no last pass), except with --spool --remove-sent (passes per batch)",
            );
        }
        None
    }

    /// Passes per session: `None` for a carousel.
    pub fn passes(&self) -> Option<u32> {
        match (self.forever, self.remove_sent) {
            (true, false) => None,
            _ => Some(self.rounds.unwrap_or(1)),
        }
    }
}

/// Options of `strand diode-rx`.
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("into").required(true).args(["dir", "spool"])))]
#[command(
    override_usage = "strand diode-rx [OPTIONS] <LINK> --dir <DIR>\n       strand diode-rx [OPTIONS] <LINK> --spool <DIR>"
)]
#[command(after_help = "Exit status:\n  \
    0  every object the sender announced arrived and was verified\n  \
    1  an error (bad option, link not opened, disk full, an existing file or a name refused)\n  \
    2  some objects arrived only in part (or failed their hash)\n  \
    3  nothing arrived, or some announced objects were never seen\n\
    SIGTERM and SIGINT print the report and exit with these codes too.")]
pub struct RxArgs {
    /// Where frames come from: a serial device or pty (read only, never
    /// written), udp-listen:PORT, udp-listen:ADDR:PORT, - (stdin) or a file
    /// (read to its end).
    pub link: String,
    /// Directory for received files (partial state is kept in DIR/.strand-diode).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Receive the packets of a `diode-tx --spool` into this nncp-xfer spool
    /// (read it with nncp-xfer -rx): each appears under its path
    /// RECIPIENT/SENDER/PACKET only complete and verified, never over another
    /// file, and never twice: packets placed are journalled in
    /// DIR/.strand-spool/received, so one sent again after nncp-xfer -rx took
    /// it away is not placed again. Other names are refused.
    #[arg(long, value_name = "DIR", conflicts_with = "overwrite")]
    pub spool: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyOpts,
    /// Most bytes of unfinished objects held at once (their sizes summed).
    #[arg(long, value_name = "BYTES")]
    pub max_bytes: Option<u64>,
    /// Exit once a sender's every object is in, once it said it is done and
    /// nothing more came for two heartbeat intervals, or once nothing at all
    /// came for ten (its last frames lost, or it died).
    #[arg(long)]
    pub exit_when_complete: bool,
    /// Exit after this many seconds without a valid frame.
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<f64>,
    /// Replace existing files of the same name (else they are kept and reported).
    #[arg(long)]
    pub overwrite: bool,
    /// Hours a partial object (and the record of a completed one) is kept
    /// without a new symbol; a later sender run of the same content finishes
    /// it with only what is missing.
    #[arg(long, value_name = "HOURS", default_value_t = 168.0)]
    pub keep_partial: f64,
    /// Expected line rate in bit/s, to size the UDP receive buffer (a
    /// second of traffic, 16 to 512 MiB).
    #[arg(long, value_name = "BITS_PER_S", default_value_t = 1_000_000_000)]
    pub rate: u64,
    /// UDP receive buffer to ask for, in bytes [default: from --rate].
    #[arg(long, value_name = "BYTES")]
    pub recv_buffer: Option<usize>,
    /// No progress line, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Serial line rate in bit/s [default: the named link's, or 115200].
    #[arg(long)]
    pub baud: Option<u32>,
}

impl RxArgs {
    /// Where received files go: `--dir` or `--spool`.
    pub fn target(&self) -> &Path {
        self.spool.as_deref().or(self.dir.as_deref()).expect("clap requires --dir or --spool")
    }
}

/// Frame authentication (spec 13.6): both ends hold the same key file.
#[derive(clap::Args, Debug, Clone)]
pub struct KeyOpts {
    /// Authenticate frames with a key derived from this file's bytes.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The key's id, sent in every frame so keys can be rotated.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "key")]
    pub key_id: u8,
}

impl KeyOpts {
    /// The frame key, if a key file was given.
    pub fn load(&self) -> Result<Option<AuthKey>, String> {
        let Some(path) = &self.key else { return Ok(None) };
        let material = read_key(path)?;
        Ok(Some(AuthKey::derive(self.key_id, &material)))
    }
}

fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    if bytes.len() < 16 {
        return Err(format!(
            "key file {} holds {} bytes: use at least 16 random bytes (head -c 32 /dev/urandom > key)",
            path.display(),
            bytes.len()
        ));
    }
    Ok(bytes)
}
