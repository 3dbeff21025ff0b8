//! Verified, resumable file transfer: `strand send LINK FILE...` and `strand recv LINK --dir DIR`.
//!
//! Runs over any reliable, ordered packet channel ([`PacketIo`]); the caller opens the link and
//! passes one end to [`send_files`] and the other to [`recv_files`]. The messages are listed in
//! [`proto`].
//!
//! # What the receiver guarantees
//! - A file appears in `DIR` only complete and with the BLAKE3 the sender computed before offering
//!   it: data goes to `DIR/.strand-partial/<blake3 hex>.part`, which is fsynced, hashed again from
//!   disk, given the sender's mode (`0o777` bits only; setuid, setgid and sticky are dropped) and
//!   mtime, and then renamed into place (without `--overwrite` by a hard link that fails if the name
//!   was taken meanwhile). The directory is fsynced after the rename.
//! - Offered names are single plain file names ([`names::check_name`]); anything else is refused
//!   before the disk is touched.
//! - An existing file of the same name is left alone: identical content (same BLAKE3) counts as
//!   received ("already have it"), different content is refused unless `--overwrite`.
//! - Partial data is matched by content hash, never by name: a later run offering the same content
//!   (under any name) resumes after the bytes already there; different content starts afresh.
//!   `.part` files are not cleaned up by age; deleting `DIR/.strand-partial` is always safe when
//!   no transfer is running.
//!
//! # Batches and failures
//! A refused file (hostile name, exists without `--overwrite`, not enough space, …) or one that
//! fails verification twice does not stop the batch: both sides go on with the next file, log the
//! problem as it happens, and return the first problem as their error after the last file (wrapped
//! in [`TransferError::Several`] when there were more). Anything that makes going on pointless
//! stops both sides at once: a lost link, a write error or full disk on the receiver, an unreadable
//! source file, a protocol violation.
//!
//! # Exit codes ([`TransferError::exit_code`])
//! | code | class | examples | run again? |
//! |------|-------|----------|------------|
//! | 2 | usage or refused | directory given to send, hostile name, exists without `--overwrite`, both ends ran `send` | after fixing the cause |
//! | 3 | I/O or disk | unreadable source, disk full, write error, receiver out of space | resumes after fixing the cause |
//! | 4 | link lost | peer restarted, transport closed | resumes where it stopped |
//! | 5 | verification | BLAKE3 mismatch twice, source changed while sent | starts that file from 0 |
//! | 6 | peer error | peer broke the protocol, other protocol version, peer stopped with an error | after fixing the peer |
//!
//! 0 is success; 1 is left to the caller for errors outside the transfer (opening the link).

mod error;
pub mod journal;
pub mod names;
mod progress;
pub mod proto;
mod recv;
mod send;
mod wire;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

// The whole API for main.rs; a binary crate need not name every item (the constants document the
// exit codes), hence the allow.
#[allow(unused_imports)]
pub use error::{TransferError, EXIT_IO, EXIT_LINK_LOST, EXIT_PEER, EXIT_REFUSED, EXIT_VERIFY};
pub use progress::fmt_bytes;
pub use recv::recv_files;
/// Spool placement (a verified file renamed into place, never over another), shared with
/// `diode-rx --spool`.
pub(crate) use recv::{create_synced, place_spool};
pub use send::send_files;
pub use wire::TooLong;

/// Name of the directory inside `DIR` where the receiver keeps partial files.
pub const PARTIAL_DIR: &str = ".strand-partial";
/// Name of the directory inside a spool directory where `strand spool` keeps its state (the
/// receiver's journal, locks).
pub const SPOOL_STATE_DIR: &str = ".strand-spool";

/// One reliable, ordered channel of whole packets (strand's link gives this).
#[allow(async_fn_in_trait)]
pub trait PacketIo {
    /// Sends one packet (waits while the link's window is full).
    async fn send(&mut self, packet: &[u8]) -> anyhow::Result<()>;
    /// The next packet, or an error if the link was lost (peer restarted, transport closed).
    async fn recv(&mut self) -> anyhow::Result<Vec<u8>>;
}

/// What `strand send` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Regular files to send, in this order; each arrives under its base name.
    pub files: Vec<PathBuf>,
    /// Show a progress bar per file on stderr (pass whether stderr is a terminal).
    pub progress: bool,
    /// Spool mode (`strand spool`), when not empty: the name each of `files` has on the receiver,
    /// in the same order — a relative path of one to three components (`RECIPIENT/SENDER/PACKET`,
    /// see [`names::check_spool_name`]). Each file is then deleted here once the receiver has
    /// confirmed it: `DONE` (written, verified, fsynced, in place) or `HAVE` (it had it already).
    pub spool_names: Vec<String>,
}

/// What `strand recv` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RecvOptions {
    /// Existing directory the files go into.
    pub dir: PathBuf,
    /// Replace existing files whose content differs.
    pub overwrite: bool,
    /// Show a progress bar per file on stderr (pass whether stderr is a terminal).
    pub progress: bool,
    /// Spool mode (`strand spool`): offered names may be relative paths
    /// ([`names::check_spool_name`]), whose directories are created; existing files are never
    /// replaced; and every file placed is recorded in a journal (`DIR/.strand-spool/received`)
    /// before it is renamed into place, so the same packet is answered `HAVE` ever after — also
    /// once a consumer (`nncp-xfer -rx`) has taken it away. Nothing is ever delivered twice.
    pub spool: bool,
    /// Spool mode, `--ordered`: every name's last component is `SEQ.NAME`
    /// ([`journal::sequenced`]), and a packet is taken only if SEQ is one more than the last placed
    /// in its directory (a packet placed before is `HAVE`; any other is refused and stays with the
    /// sender), so packets appear strictly in the sender's order, across sessions.
    pub ordered: bool,
}

/// What a successful `send_files` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Files the receiver now has (sent, resumed, or already there).
    pub files: usize,
    /// File bytes sent in `DATA` messages (including a retry after a verification failure).
    pub bytes_sent: u64,
    /// File bytes not sent because the receiver had them (resumed partial data or identical files).
    pub bytes_skipped: u64,
    /// Spool mode: files deleted here after the receiver confirmed them.
    pub removed: usize,
}

/// What a successful `recv_files` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecvReport {
    /// Files written into the directory by this run, in order.
    pub files: Vec<PathBuf>,
    /// Files offered that were already there with identical content (left untouched).
    pub already_had: Vec<PathBuf>,
    /// File bytes received and written by this run.
    pub bytes_received: u64,
    /// Bytes of the written files that came from partial data of earlier runs.
    pub bytes_resumed: u64,
}
