//! The receiving side: validates each offer, resumes from partial data matched by content hash,
//! writes, verifies and only then moves a file into place.

use std::fs::{self, DirBuilder, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tracing::{debug, info, warn};

use super::error::TransferError;
use super::journal::{sequenced, Journal};
use super::names::{check_name, check_spool_name, printable, quoted};
use super::progress::{fmt_bytes, hash_path, Bars};
use super::proto::{Failure, Manifest, Message, Refusal, Role, ACK_EVERY, CHUNK, WINDOW};
use super::wire::{detail_text, garbage, unexpected, RecvError, Wire};
use super::{PacketIo, RecvOptions, RecvReport, PARTIAL_DIR};

/// Where received bytes go. The real one is the `.part` file; tests put a failing one in its place
/// to see what a full disk does, without needing a full file system.
pub(crate) trait PartSink: Send {
    /// Appends `bytes` (all of them, or an error).
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything appended durable.
    fn sync(&mut self) -> io::Result<()>;
}

impl PartSink for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        // Small blocking writes to the page cache are fine on the async thread; the slow parts
        // (fsync, hashing) run on blocking threads or are rare.
        self.write_all(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.sync_all()
    }
}

/// Turns an opened `.part` file into the sink the data goes through.
pub(crate) type SinkFactory<'s> = &'s dyn Fn(File) -> Box<dyn PartSink>;

/// Packets the receiver discards after a failed write while waiting for the sender's `BYE`; more
/// than a full window of `DATA`, so a well-behaved sender always gets there.
const DRAIN_LIMIT: u64 = 4 * WINDOW / CHUNK as u64;

/// Receives files from the peer running [`send_files`](super::send_files) into `opts.dir`, until
/// the sender says `BYE`.
///
/// Refused files (hostile names, existing files without `--overwrite`, …) and files that fail
/// verification for good do not stop the batch; the first such problem is returned at the end.
pub async fn recv_files<P: PacketIo>(io: &mut P, opts: &RecvOptions) -> Result<RecvReport, TransferError> {
    recv_files_with(io, opts, &|file| Box::new(file)).await
}

/// [`recv_files`] with the data going through `sinks` (for tests that simulate a full disk).
pub(crate) async fn recv_files_with<P: PacketIo>(
    io: &mut P,
    opts: &RecvOptions,
    sinks: SinkFactory<'_>,
) -> Result<RecvReport, TransferError> {
    let mut wire = Wire::new(io);
    if let Err(e) = check_dir(&opts.dir) {
        wire.abort_before_hello(Role::Receiver, &e).await;
        return Err(e);
    }
    let journal = match opts.spool.then(|| Journal::open(&opts.dir)).transpose() {
        Ok(journal) => journal,
        Err(source) => {
            let e = TransferError::WriteFailed { path: opts.dir.join(super::SPOOL_STATE_DIR), source };
            wire.abort_before_hello(Role::Receiver, &e).await;
            return Err(e);
        }
    };
    wire.hello(Role::Receiver).await?;
    let mut receiver = Receiver {
        wire,
        dir: opts.dir.clone(),
        partial_dir: opts.dir.join(PARTIAL_DIR),
        overwrite: opts.overwrite && !opts.spool,
        ordered: opts.spool && opts.ordered,
        journal,
        bars: Bars::new(opts.progress),
        sinks,
        report: RecvReport::default(),
        failures: Vec::new(),
    };
    match receiver.run().await {
        Ok(()) => {
            TransferError::batch(receiver.report, receiver.failures.into_iter().map(|(_, e)| e).collect())
        }
        Err(e) => {
            // The sender is still waiting for us after these; tell it why we stop. (After a lost
            // link nobody listens; after ABORT the sender knows; after FAILED it has said BYE.)
            if matches!(e, TransferError::Protocol { .. } | TransferError::ReadFailed { .. }) {
                receiver.wire.abort(&e).await;
            }
            Err(e)
        }
    }
}

fn check_dir(dir: &Path) -> Result<(), TransferError> {
    let bad = |why: String| TransferError::BadDir { dir: dir.to_path_buf(), why };
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(bad("it is not a directory".into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(bad("it does not exist".into())),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// The error for a failed write to `path`: disk full gets its own message.
fn write_error(path: &Path, source: io::Error) -> TransferError {
    let full = source.kind() == io::ErrorKind::StorageFull
        || matches!(source.raw_os_error(), Some(code) if code == Errno::ENOSPC as i32 || code == Errno::EDQUOT as i32);
    if full {
        TransferError::DiskFull { path: path.to_path_buf() }
    } else {
        TransferError::WriteFailed { path: path.to_path_buf(), source }
    }
}

struct Receiver<'a, 's, P: PacketIo> {
    wire: Wire<'a, P>,
    dir: PathBuf,
    partial_dir: PathBuf,
    overwrite: bool,
    /// Spool mode: what was ever placed here (see [`RecvOptions::spool`](super::RecvOptions)).
    journal: Option<Journal>,
    /// Spool mode, `--ordered`: packets only in sequence.
    ordered: bool,
    bars: Bars,
    sinks: SinkFactory<'s>,
    report: RecvReport,
    /// Per-file problems that did not stop the batch, by offered name; a later success of the same
    /// name (the sender's retry after a verification failure) clears its entry.
    failures: Vec<(String, TransferError)>,
}

/// What to do with an offer, decided before anything is written.
enum Decision {
    /// Identical content is already in place.
    Have,
    /// Refuse, with the reason for the sender and the error for our own report.
    Refuse(Refusal, TransferError),
    /// Receive it.
    Take,
}

impl<P: PacketIo> Receiver<'_, '_, P> {
    async fn run(&mut self) -> Result<(), TransferError> {
        loop {
            let context = "where OFFER or BYE was expected";
            match self.wire.recv().await {
                Ok(Message::Offer(manifest)) => self.receive_file(manifest).await?,
                Ok(Message::Bye) => {
                    // Best effort: the sender treats a link closed after its BYE as success.
                    let _ = self.wire.send(&Message::Bye).await;
                    return Ok(());
                }
                Ok(other) => return Err(unexpected(other, context)),
                Err(RecvError::Garbage(what)) => return Err(garbage(what, context)),
                Err(RecvError::Lost(e)) => {
                    let stage = match self.report.files.len() + self.report.already_had.len() {
                        0 => "before the first file arrived".to_string(),
                        n => format!("between files ({n} done so far)"),
                    };
                    return Err(TransferError::link_lost(stage, e));
                }
            }
        }
    }

    async fn receive_file(&mut self, m: Manifest) -> Result<(), TransferError> {
        let name = quoted(&m.name);
        if m.mtime_nanos >= 1_000_000_000 {
            return Err(TransferError::Protocol {
                detail: format!("an OFFER of {name} with an invalid mtime"),
            });
        }
        let checked = if self.journal.is_some() { check_spool_name(&m.name) } else { check_name(&m.name) };
        let dest = match checked {
            Ok(()) => self.dir.join(&m.name),
            Err(why) => {
                let error = TransferError::HostileName { name: name.clone(), why };
                return self.refuse(&m.name, Refusal::BadName, error).await;
            }
        };
        if self.journal.as_ref().is_some_and(|j| j.contains(&m.name, &m.hash)) {
            // Placed before (maybe taken away since): finish a rename a crash interrupted.
            let part = self.part_path(&m);
            if part.exists() {
                if let Err(e) = place_spool(&part, &dest) {
                    return Err(self.store_failed(write_error(&dest, e)).await);
                }
            }
            info!("{name}: received before");
            self.send_or_lost(&Message::Have, &name).await?;
            self.report.already_had.push(dest);
            self.forget_failure(&m.name);
            return Ok(());
        }
        if let (true, Some(journal)) = (self.ordered, self.journal.as_ref()) {
            let why = match sequenced(&m.name) {
                None => Some("it is not an --ordered name (SEQ.NAME, SEQ 12 digits)".to_string()),
                Some((dir, seq)) if seq != journal.last_seq(dir) + 1 => Some(format!(
                    "it is number {seq} of {dir:?}, and number {} is the next one due",
                    journal.last_seq(dir) + 1
                )),
                Some(_) => None,
            };
            if let Some(why) = why {
                let error = TransferError::OutOfOrder { name: name.clone(), why };
                return self.refuse(&m.name, Refusal::Busy, error).await;
            }
        }
        match self.decide(&m, &dest).await? {
            Decision::Have => {
                info!("{name}: already have it");
                if let Some(journal) = self.journal.as_mut() {
                    if let Err(e) = journal.record(&m.name, &m.hash) {
                        return Err(self.store_failed(write_error(&dest, e)).await);
                    }
                }
                self.send_or_lost(&Message::Have, &name).await?;
                // A crash between placing a file and deleting its .part leaves one behind.
                let _ = fs::remove_file(self.part_path(&m));
                self.report.already_had.push(dest);
                self.forget_failure(&m.name);
                return Ok(());
            }
            Decision::Refuse(why, error) => return self.refuse(&m.name, why, error).await,
            Decision::Take => {}
        }

        let part = self.part_path(&m);
        let (file, _lock) = match self.open_part(&part) {
            Ok(Some(opened)) => opened,
            Ok(None) => {
                let error = TransferError::Busy { name: name.clone(), dir: self.dir.clone() };
                return self.refuse(&m.name, Refusal::Busy, error).await;
            }
            Err(e) => return Err(self.store_failed(write_error(&part, e)).await),
        };
        let mut offset = match file.metadata() {
            Ok(meta) => meta.len(),
            Err(e) => return Err(self.store_failed(write_error(&part, e)).await),
        };
        if offset > m.size {
            // Cannot be this content's prefix (the name is its hash): start again.
            if let Err(e) = file.set_len(0) {
                return Err(self.store_failed(write_error(&part, e)).await);
            }
            offset = 0;
        }
        if let Some(free) = free_space(&self.partial_dir) {
            if m.size - offset > free {
                let error = TransferError::NoSpace {
                    dir: self.dir.clone(),
                    name: name.clone(),
                    need: fmt_bytes(m.size - offset),
                    free: fmt_bytes(free),
                };
                return self.refuse(&m.name, Refusal::NoSpace, error).await;
            }
        }
        if offset > 0 {
            info!("{name}: resuming at {} of {}", fmt_bytes(offset), fmt_bytes(m.size));
        }
        self.send_or_lost(&Message::Accept { offset }, &name).await?;

        let sink = (self.sinks)(file);
        self.receive_data(&m, &part, sink, offset).await?;

        let bar = self.bars.bar(format!("verifying {}", printable(&m.name)), m.size, 0);
        let actual = hash_path(&part, bar.clone()).await;
        bar.finish_and_clear();
        match actual {
            Ok(hash) if hash == m.hash => {}
            Ok(_) => {
                warn!("{name}: received data does not match its BLAKE3; discarding it");
                let _ = fs::remove_file(&part);
                let detail = format!("the data received for {name} does not match its BLAKE3; discarded");
                self.send_or_lost(&Message::Failed { why: Failure::Verify, detail }, &name).await?;
                let error = TransferError::Verification {
                    name,
                    side: "the received data did not match the sender's hash",
                };
                self.record_failure(&m.name, error);
                return Ok(());
            }
            Err(e) => return Err(self.store_failed(write_error(&part, e)).await),
        }
        let placed = match self.journal.as_mut() {
            Some(journal) => finalize_spool(&part, &dest, &m, journal),
            None => finalize(&part, &dest, &m, self.overwrite),
        };
        if let Err(e) = placed {
            return Err(self.store_failed(write_error(&dest, e)).await);
        }
        self.send_or_lost(&Message::Done, &name).await?;
        info!("{name}: received ({}, verified)", fmt_bytes(m.size));
        self.report.files.push(dest);
        self.report.bytes_resumed += offset;
        self.forget_failure(&m.name);
        Ok(())
    }

    /// What to do about an existing file of that name; hashes it if it might be identical.
    async fn decide(&self, m: &Manifest, dest: &Path) -> Result<Decision, TransferError> {
        let meta = match fs::symlink_metadata(dest) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Decision::Take),
            Err(source) => return Err(TransferError::ReadFailed { path: dest.to_path_buf(), source }),
        };
        if meta.is_file() && meta.len() == m.size {
            let bar = self.bars.bar(format!("checking {}", printable(&m.name)), m.size, 0);
            let hash = hash_path(dest, bar.clone()).await;
            bar.finish_and_clear();
            match hash {
                Ok(hash) if hash == m.hash => return Ok(Decision::Have),
                Ok(_) => {}
                Err(source) => return Err(TransferError::ReadFailed { path: dest.to_path_buf(), source }),
            }
        }
        // A symlink counts as an existing file: with --overwrite the rename replaces the link
        // itself, never what it points to.
        if !meta.is_file() && !meta.file_type().is_symlink() {
            let error = TransferError::NotRegularTarget { path: dest.to_path_buf() };
            return Ok(Decision::Refuse(Refusal::NotAFile, error));
        }
        if !self.overwrite {
            return Ok(Decision::Refuse(Refusal::Exists, TransferError::Exists { path: dest.to_path_buf() }));
        }
        Ok(Decision::Take)
    }

    /// Receives `DATA` into `sink` from `offset` up to `END`, acknowledging as it goes, and syncs.
    async fn receive_data(
        &mut self,
        m: &Manifest,
        part: &Path,
        mut sink: Box<dyn PartSink>,
        offset: u64,
    ) -> Result<(), TransferError> {
        let name = quoted(&m.name);
        let bar = self.bars.bar(format!("receiving {}", printable(&m.name)), m.size, offset);
        let mut pos = offset;
        let mut acked = offset;
        let context = format!("during the data of {name}");
        let result = loop {
            let msg = match self.wire.recv().await {
                Ok(msg) => msg,
                Err(RecvError::Garbage(what)) => break Err(garbage(what, &context)),
                Err(RecvError::Lost(e)) => {
                    let stage = format!(
                        "during transfer of {name} ({} of {} received)",
                        fmt_bytes(pos),
                        fmt_bytes(m.size)
                    );
                    break Err(TransferError::link_lost(stage, e));
                }
            };
            match msg {
                Message::Data { offset, bytes } => {
                    if offset != pos {
                        break Err(TransferError::Protocol {
                            detail: format!("DATA of {name} at offset {offset} where {pos} was expected"),
                        });
                    }
                    let len = bytes.0.len() as u64;
                    if len > m.size - pos {
                        break Err(TransferError::Protocol {
                            detail: format!("DATA past the end of {name} ({} bytes)", m.size),
                        });
                    }
                    if let Err(e) = sink.append(&bytes.0) {
                        break Err(self.store_failed(write_error(part, e)).await);
                    }
                    pos += len;
                    self.report.bytes_received += len;
                    bar.set_position(pos);
                    if pos - acked >= ACK_EVERY {
                        if let Err(e) = self.wire.send(&Message::Ack { offset: pos }).await {
                            let stage = format!(
                                "during transfer of {name} ({} of {} received)",
                                fmt_bytes(pos),
                                fmt_bytes(m.size)
                            );
                            break Err(TransferError::link_lost(stage, e));
                        }
                        acked = pos;
                    }
                }
                Message::End if pos == m.size => break Ok(()),
                Message::End => {
                    break Err(TransferError::Protocol {
                        detail: format!("END of {name} after {pos} of its {} bytes", m.size),
                    });
                }
                other => break Err(unexpected(other, &context)),
            }
        };
        if let Err(e) = result {
            bar.abandon();
            return Err(e);
        }
        // fsync can take a while on a big file; keep it off the async thread.
        let synced = tokio::task::spawn_blocking(move || sink.sync()).await.map_err(io::Error::other);
        if let Err(e) = synced.and_then(|r| r) {
            bar.abandon();
            return Err(self.store_failed(write_error(part, e)).await);
        }
        bar.finish();
        Ok(())
    }

    /// Tells the sender we cannot store the file, keeps the partial data, and waits for the
    /// sender's `BYE` (discarding data still in flight) so it reads our reason, not a lost link.
    async fn store_failed(&mut self, error: TransferError) -> TransferError {
        let why =
            if matches!(error, TransferError::DiskFull { .. }) { Failure::NoSpace } else { Failure::Io };
        warn!("{error}");
        let failed = Message::Failed { why, detail: detail_text(&error.to_string()) };
        if self.wire.send(&failed).await.is_ok() {
            for _ in 0..DRAIN_LIMIT {
                match self.wire.recv().await {
                    Ok(Message::Bye | Message::Abort { .. }) | Err(RecvError::Lost(_)) => break,
                    Ok(_) | Err(RecvError::Garbage(_)) => {}
                }
            }
        }
        error
    }

    /// Refuses an offer; the batch goes on.
    async fn refuse(
        &mut self,
        offered: &str,
        why: Refusal,
        error: TransferError,
    ) -> Result<(), TransferError> {
        warn!("{error}");
        let detail = detail_text(&error.to_string());
        self.send_or_lost(&Message::Refuse { why, detail }, &quoted(offered)).await?;
        self.record_failure(offered, error);
        Ok(())
    }

    async fn send_or_lost(&mut self, msg: &Message, name: &str) -> Result<(), TransferError> {
        self.wire
            .send(msg)
            .await
            .map_err(|e| TransferError::link_lost(format!("while replying to the sender about {name}"), e))
    }

    fn record_failure(&mut self, offered: &str, error: TransferError) {
        self.forget_failure(offered);
        self.failures.push((offered.to_string(), error));
    }

    fn forget_failure(&mut self, offered: &str) {
        self.failures.retain(|(name, _)| name != offered);
    }

    fn part_path(&self, m: &Manifest) -> PathBuf {
        let hex = blake3::Hash::from_bytes(m.hash).to_hex();
        self.partial_dir.join(format!("{hex}.part"))
    }

    /// Opens (creating if needed) the partial file for appending and locks it against another
    /// receiver writing the same content into the same directory. `None`: someone else has it.
    fn open_part(&self, part: &Path) -> io::Result<Option<(File, Option<Flock<File>>)>> {
        match DirBuilder::new().mode(0o700).create(&self.partial_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let open = || OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(part);
        let file = match open() {
            // A .part given a read-only mode just before a failed rename: make it writable again.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && part.exists() => {
                fs::set_permissions(part, Permissions::from_mode(0o600))?;
                open()?
            }
            other => other?,
        };
        // The lock is taken on a second descriptor so the data file can move into the sink; flock
        // locks belong to the open file description, so it still excludes other processes.
        let lock = match Flock::lock(File::open(part)?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Some(lock),
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, errno)) => {
                debug!("cannot lock {}: {errno}; going on without a lock", part.display());
                None
            }
        };
        Ok(Some((file, lock)))
    }
}

/// Free bytes for an unprivileged writer where `dir` lives, if the file system says.
fn free_space(dir: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    #[allow(clippy::useless_conversion)] // the widths differ between targets
    let (blocks, size) = (u64::from(stat.blocks_available()), u64::from(stat.fragment_size()));
    Some(blocks.saturating_mul(size))
}

/// The offered mtime as a `SystemTime`, if representable (a hostile value must not panic).
fn mtime(m: &Manifest) -> Option<SystemTime> {
    let nanos = Duration::from_nanos(u64::from(m.mtime_nanos));
    let base = if m.mtime_secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(m.mtime_secs.unsigned_abs()))?
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(m.mtime_secs.unsigned_abs()))?
    };
    base.checked_add(nanos)
}

/// Gives the verified `.part` the offered mtime and mode, durably.
fn set_attributes(part: &Path, m: &Manifest) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(part)?;
    if let Some(time) = mtime(m) {
        file.set_times(FileTimes::new().set_modified(time))?;
    }
    // Only rwx bits: a peer must not be able to plant setuid or setgid files.
    file.set_permissions(Permissions::from_mode(m.mode & 0o777))?;
    file.sync_all()
}

/// Spool mode: records the verified `.part` in the journal, then renames it into place (never
/// over an existing file), creating the directories of its name; everything fsynced.
fn finalize_spool(part: &Path, dest: &Path, m: &Manifest, journal: &mut Journal) -> io::Result<()> {
    set_attributes(part, m)?;
    journal.record(&m.name, &m.hash).map_err(|e| {
        io::Error::new(e.kind(), format!("cannot record it in {}: {e}", journal.path().display()))
    })?;
    place_spool(part, dest)
}

/// Moves `part` to `dest` in one rename that fails if `dest` exists, creating and syncing the
/// directories on the way. An identical file already at `dest` counts as placed.
pub(crate) fn place_spool(part: &Path, dest: &Path) -> io::Result<()> {
    if let Some(parent) = dest.parent() {
        create_synced(parent)?;
    }
    match nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        part,
        nix::fcntl::AT_FDCWD,
        dest,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            if same_content(part, dest)? {
                fs::remove_file(part)?;
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "another file of that name is in the spool directory",
                ));
            }
        }
        // File systems without RENAME_NOREPLACE: check, then rename.
        Err(Errno::EINVAL | Errno::ENOSYS) if fs::symlink_metadata(dest).is_err() => fs::rename(part, dest)?,
        Err(e) => return Err(e.into()),
    }
    if let Some(dir) = dest.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents, fsyncing each new entry's parent.
pub(crate) fn create_synced(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_synced(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Whether two files have the same bytes.
fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let hash = |p: &Path| -> io::Result<blake3::Hash> {
        let mut h = blake3::Hasher::new();
        h.update_reader(File::open(p)?)?;
        Ok(h.finalize())
    };
    Ok(fs::metadata(a)?.len() == fs::metadata(b)?.len() && hash(a)? == hash(b)?)
}

/// Gives the verified `.part` the offered mtime and mode and moves it to `dest` atomically.
fn finalize(part: &Path, dest: &Path, m: &Manifest, overwrite: bool) -> io::Result<()> {
    set_attributes(part, m)?;
    if overwrite {
        fs::rename(part, dest)?;
    } else {
        place_new(part, dest)?;
    }
    // Make the new directory entry durable too.
    if let Some(dir) = dest.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Moves `part` to `dest` unless `dest` exists (a hard link fails atomically if it does).
fn place_new(part: &Path, dest: &Path) -> io::Result<()> {
    let taken = || {
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file of that name appeared during the transfer (pass --overwrite to replace it)",
        )
    };
    match fs::hard_link(part, dest) {
        Ok(()) => fs::remove_file(part),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(taken()),
        // File systems without hard links: check, then rename (a small race, but no data loss
        // beyond what --overwrite would do).
        Err(_) if fs::symlink_metadata(dest).is_ok() => Err(taken()),
        Err(_) => fs::rename(part, dest),
    }
}
