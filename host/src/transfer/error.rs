//! Everything that can stop a transfer, each with a one-line message saying what is wrong and what to
//! do, and the exit code class it belongs to (see the table in the module documentation of
//! [`transfer`](super)).

use std::io;
use std::path::PathBuf;

/// Exit code: wrong usage, or a file refused (hostile name, exists without `--overwrite`, …).
pub const EXIT_REFUSED: i32 = 2;
/// Exit code: an I/O error or a full disk, on this side or reported by the receiver.
pub const EXIT_IO: i32 = 3;
/// Exit code: the link was lost; running the same command again resumes.
pub const EXIT_LINK_LOST: i32 = 4;
/// Exit code: content failed its BLAKE3 check (twice), or the source changed while it was sent.
pub const EXIT_VERIFY: i32 = 5;
/// Exit code: the peer broke the protocol, speaks another version, or stopped with an error.
pub const EXIT_PEER: i32 = 6;

/// Why `send_files` or `recv_files` did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A path given to `strand send` is a directory or another non-regular file.
    #[error("cannot send {}: it is a {what}; strand send takes regular files (pack a tree with tar first)", path.display())]
    NotAFile {
        /// The path as given.
        path: PathBuf,
        /// "directory", "special file", …
        what: &'static str,
    },
    /// A file to send has a name the receiver would refuse.
    #[error(
        "cannot send {}: the receiver would refuse its name ({why}); copy it under another name and send that",
        super::names::printable(&path.to_string_lossy())
    )]
    UnsendableName {
        /// The path as given.
        path: PathBuf,
        /// What is wrong with the name.
        why: String,
    },
    /// Two files to send have the same base name, so the second would collide with the first.
    #[error("cannot send {} and {} in one run: both are named {name} on the receiver; send them separately", first.display(), second.display())]
    DuplicateName {
        /// The shared base name (quoted, printable).
        name: String,
        /// The first path with that name.
        first: PathBuf,
        /// The second one.
        second: PathBuf,
    },
    /// The target directory of `strand recv` cannot be used.
    #[error("cannot receive into {}: {why}; create it or pass another --dir", dir.display())]
    BadDir {
        /// The `--dir` given.
        dir: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The peer offered a file name that is not a single plain file name.
    #[error("refusing file name {name}: {why}")]
    HostileName {
        /// The name as offered (quoted, printable).
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// A different file of the offered name exists and `--overwrite` was not given.
    #[error("{} exists; pass --overwrite to replace it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Something that is not a regular file is in the way of an offered file.
    #[error("{} exists and is not a regular file; move it away or receive into another --dir", path.display())]
    NotRegularTarget {
        /// What is in the way.
        path: PathBuf,
    },
    /// Another `strand recv` is receiving the same content into the same directory.
    #[error("another strand recv is receiving {name} into {} right now; wait for it to finish", dir.display())]
    Busy {
        /// The file name (quoted, printable).
        name: String,
        /// The target directory.
        dir: PathBuf,
    },
    /// The receiver refused a file (its reason, as it said it).
    #[error("the receiver refused {name}: {reason}")]
    PeerRefused {
        /// The file name (quoted).
        name: String,
        /// The receiver's reason (printable).
        reason: String,
        /// Whether the reason is a lack of space (exit code 3 rather than 2).
        no_space: bool,
    },
    /// The two ends run the same command.
    #[error("the peer is running {ours} too: run {other} on the other end")]
    SameRole {
        /// Our command.
        ours: &'static str,
        /// The one the peer should run.
        other: &'static str,
    },
    /// Reading a file to send failed.
    #[error("cannot read {}: {source}; fix that and run the same command again", path.display())]
    ReadFailed {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The receiver's disk filled up; the partial file is kept for a later resume.
    #[error("disk full writing {}: free space and run strand recv again to resume", path.display())]
    DiskFull {
        /// The partial file being written.
        path: PathBuf,
    },
    /// Another write error on the receiver; the partial file is kept for a later resume.
    #[error("cannot write {}: {source}; fix that and run strand recv again to resume", path.display())]
    WriteFailed {
        /// The file being written.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Spool mode: a delivered file could not be deleted on the sender (it is offered again next
    /// time and answered `HAVE`).
    #[error("{} was delivered but cannot be deleted: {source}; fix that (it will not be delivered twice)", path.display())]
    RemoveFailed {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// `--ordered`: a packet offered out of its sequence.
    #[error("refusing {name}: {why}; it stays with the sender until the packets before it are in")]
    OutOfOrder {
        /// The packet (quoted).
        name: String,
        /// Which sequence number was expected.
        why: String,
    },
    /// The receiver's free space is less than the rest of an offered file.
    #[error("not enough space in {} for {name}: it needs {need}, {free} are free; free space and run again", dir.display())]
    NoSpace {
        /// The target directory.
        dir: PathBuf,
        /// The file name (quoted).
        name: String,
        /// Bytes still to receive, formatted.
        need: String,
        /// Bytes free, formatted.
        free: String,
    },
    /// The receiver failed to store a file (disk full or a write error; it keeps what it has).
    #[error("the receiver could not store {name}: {reason}; fix that on the receiving side and run again to resume")]
    PeerStoreFailed {
        /// The file name (quoted).
        name: String,
        /// The receiver's reason (printable).
        reason: String,
    },
    /// The packet channel failed (peer restarted, transport closed); running again resumes.
    #[error("link lost {stage}: run the same command again to resume")]
    LinkLost {
        /// Where the transfer was, e.g. "during transfer of x (12.0 MiB of 40.0 MiB received)".
        stage: String,
        /// What the channel reported.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A file's content did not match its BLAKE3 on the receiver, and the retry from 0 failed too.
    #[error("{name} failed its BLAKE3 check twice ({side}); nothing was kept; run again, and check the source is not being modified")]
    Verification {
        /// The file name (quoted).
        name: String,
        /// "the received data does not match the sender's hash" or similar.
        side: &'static str,
    },
    /// A file to send changed size while it was read.
    #[error("{} changed while it was being sent ({detail}); send it again once nothing is writing it", path.display())]
    SourceChanged {
        /// The file.
        path: PathBuf,
        /// What changed.
        detail: String,
    },
    /// The peer speaks another protocol version.
    #[error("the peer speaks file-transfer protocol version {theirs}, this strand speaks {ours}: install the same strand version on both ends")]
    VersionMismatch {
        /// Our version.
        ours: u32,
        /// The peer's version.
        theirs: u32,
    },
    /// The peer's first packet is not a strand transfer `HELLO`.
    #[error("the peer is not speaking strand's file-transfer protocol (its first packet was {got}); run {expected} on the other end")]
    NotStrand {
        /// A printable description of what arrived.
        got: String,
        /// The command the peer should be running.
        expected: &'static str,
    },
    /// The peer sent something the protocol does not allow at this point.
    #[error("protocol error: the peer sent {detail}; stopped (partial data is kept; run the same strand version on both ends)")]
    Protocol {
        /// What arrived and what was expected.
        detail: String,
    },
    /// The peer stopped the session with an error of its own.
    #[error("the peer stopped the transfer: {reason}")]
    PeerAborted {
        /// The peer's reason (printable).
        reason: String,
    },
    /// More than one file of a batch failed; the first failure decides the exit code.
    #[error("{first} (and {more} more failed; see the log)")]
    Several {
        /// The first failure.
        first: Box<TransferError>,
        /// How many more.
        more: usize,
    },
}

impl TransferError {
    /// The process exit code for this error: 2 refused/usage, 3 I/O or disk, 4 link lost
    /// (resumable), 5 verification, 6 peer protocol error. Never 0 or 1 (1 is left for errors
    /// outside the transfer, such as failing to open the link).
    pub fn exit_code(&self) -> i32 {
        use TransferError::*;
        match self {
            NotAFile { .. }
            | UnsendableName { .. }
            | DuplicateName { .. }
            | BadDir { .. }
            | HostileName { .. }
            | Exists { .. }
            | NotRegularTarget { .. }
            | Busy { .. }
            | SameRole { .. }
            | OutOfOrder { .. } => EXIT_REFUSED,
            PeerRefused { no_space, .. } => {
                if *no_space {
                    EXIT_IO
                } else {
                    EXIT_REFUSED
                }
            }
            ReadFailed { .. }
            | DiskFull { .. }
            | WriteFailed { .. }
            | RemoveFailed { .. }
            | NoSpace { .. }
            | PeerStoreFailed { .. } => EXIT_IO,
            LinkLost { .. } => EXIT_LINK_LOST,
            Verification { .. } | SourceChanged { .. } => EXIT_VERIFY,
            VersionMismatch { .. } | NotStrand { .. } | Protocol { .. } | PeerAborted { .. } => EXIT_PEER,
            Several { first, .. } => first.exit_code(),
        }
    }

    /// The error for a lost link at `stage`.
    pub(crate) fn link_lost(stage: String, source: anyhow::Error) -> Self {
        TransferError::LinkLost { stage, source: source.into() }
    }

    /// Folds the per-file failures of a batch into one result.
    pub(crate) fn batch<T>(ok: T, mut failures: Vec<TransferError>) -> Result<T, TransferError> {
        match failures.len() {
            0 => Ok(ok),
            1 => Err(failures.remove(0)),
            n => Err(TransferError::Several { first: Box::new(failures.remove(0)), more: n - 1 }),
        }
    }
}
