//! The sending side: checks the files, offers each with its manifest, streams what the receiver
//! lacks, and retries a file once from offset 0 if the receiver's verification fails.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{debug, info, warn};

use super::error::TransferError;
use super::names::{check_name, check_spool_name, printable, quoted};
use super::progress::{fmt_bytes, hash_file, Bars};
use super::proto::{Chunk, Failure, Manifest, Message, Refusal, Role, CHUNK, WINDOW};
use super::wire::{garbage, unexpected, RecvError, Wire};
use super::{PacketIo, SendOptions, SendReport};

/// How long the sender waits for the receiver's `BYE` after its own. Every file has its final
/// answer by then, so the reply only confirms the end; a receiver whose reply was lost on a noisy
/// line (and that has gone) must not keep the sender waiting until the link gives up.
const BYE_WAIT: Duration = Duration::from_secs(5);

/// A file to send and the name it gets on the receiver.
struct Source {
    path: PathBuf,
    name: String,
}

/// Sends `opts.files` to the peer running [`recv_files`](super::recv_files).
///
/// Every path must be a regular file with a distinct, valid base name; that is checked before
/// anything is sent. Files the receiver refuses or that fail verification twice do not stop the
/// batch; the first such problem is returned after the last file (see the module documentation).
pub async fn send_files<P: PacketIo>(io: &mut P, opts: &SendOptions) -> Result<SendReport, TransferError> {
    let mut wire = Wire::new(io);
    let sources = match plan(&opts.files, &opts.spool_names) {
        Ok(sources) => sources,
        Err(e) => {
            wire.abort_before_hello(Role::Sender, &e).await;
            return Err(e);
        }
    };
    wire.hello(Role::Sender).await?;
    let mut sender = Sender {
        wire,
        bars: Bars::new(opts.progress),
        report: SendReport::default(),
        failures: Vec::new(),
        spool: !opts.spool_names.is_empty(),
    };
    match sender.run(&sources).await {
        Ok(()) => TransferError::batch(sender.report, sender.failures),
        Err(e) => {
            // The receiver is still waiting for us after these; tell it why we stop. (After a lost
            // link nobody listens; after ABORT or FAILED the receiver already knows.)
            if matches!(
                e,
                TransferError::ReadFailed { .. }
                    | TransferError::SourceChanged { .. }
                    | TransferError::NotAFile { .. }
                    | TransferError::Protocol { .. }
            ) {
                sender.wire.abort(&e).await;
            }
            Err(e)
        }
    }
}

/// Checks every path before anything is sent: regular file, usable and distinct name (the base
/// name, or in spool mode the given `spool_names`).
fn plan(files: &[PathBuf], spool_names: &[String]) -> Result<Vec<Source>, TransferError> {
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut sources = Vec::with_capacity(files.len());
    for (i, path) in files.iter().enumerate() {
        let meta = std::fs::metadata(path).map_err(|source| read_failed(path, source))?;
        check_regular(path, &meta)?;
        let unsendable = |why: &str| TransferError::UnsendableName { path: path.clone(), why: why.into() };
        let name = if spool_names.is_empty() {
            let name = path.file_name().ok_or_else(|| unsendable("is missing (the path ends in \"..\")"))?;
            let name = name.to_str().ok_or_else(|| unsendable("is not valid UTF-8"))?.to_string();
            check_name(&name).map_err(|why| unsendable(&why))?;
            name
        } else {
            let name = spool_names.get(i).ok_or_else(|| unsendable("is missing (fewer names than files)"))?;
            check_spool_name(name).map_err(|why| unsendable(&why))?;
            name.clone()
        };
        if let Some(first) = seen.insert(name.clone(), path.clone()) {
            return Err(TransferError::DuplicateName { name: quoted(&name), first, second: path.clone() });
        }
        sources.push(Source { path: path.clone(), name });
    }
    Ok(sources)
}

fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), TransferError> {
    if meta.is_dir() {
        return Err(TransferError::NotAFile { path: path.to_path_buf(), what: "directory" });
    }
    if !meta.is_file() {
        return Err(TransferError::NotAFile { path: path.to_path_buf(), what: "special file" });
    }
    Ok(())
}

fn read_failed(path: &Path, source: io::Error) -> TransferError {
    TransferError::ReadFailed { path: path.to_path_buf(), source }
}

/// How a file's transfer ended, when the session goes on.
enum Outcome {
    /// The receiver has the file in place.
    Done,
    /// The receiver's BLAKE3 did not match and it dropped the data.
    VerifyFailed,
}

/// What the receiver said while a file is being streamed.
enum Event {
    Ack,
    Done,
    VerifyFailed,
}

struct Sender<'a, P: PacketIo> {
    wire: Wire<'a, P>,
    bars: Bars,
    report: SendReport,
    /// Per-file problems that did not stop the batch.
    failures: Vec<TransferError>,
    /// Spool mode: delete each file once the receiver confirmed it.
    spool: bool,
}

impl<P: PacketIo> Sender<'_, P> {
    async fn run(&mut self, sources: &[Source]) -> Result<(), TransferError> {
        for (index, source) in sources.iter().enumerate() {
            self.send_file(source, index, sources.len()).await?;
        }
        if let Err(e) = self.wire.send(&Message::Bye).await {
            // Every file already has its final answer (DONE, HAVE or REFUSE): nothing to resume.
            debug!("link closed while saying goodbye: {e:#}");
            return Ok(());
        }
        let Ok(reply) = tokio::time::timeout(BYE_WAIT, self.wire.recv()).await else {
            debug!("no goodbye from the receiver within {BYE_WAIT:?}; every file has its answer");
            return Ok(());
        };
        match reply {
            Ok(Message::Bye) => Ok(()),
            Ok(other) => Err(unexpected(other, "in reply to BYE")),
            Err(RecvError::Garbage(what)) => Err(garbage(what, "in reply to BYE")),
            Err(RecvError::Lost(e)) => {
                debug!("link closed before the receiver's goodbye: {e:#}");
                Ok(())
            }
        }
    }

    /// Offers one file and sends what the receiver lacks; once more from 0 if verification fails.
    async fn send_file(&mut self, source: &Source, index: usize, count: usize) -> Result<(), TransferError> {
        let name = quoted(&source.name);
        let mut retried = false;
        loop {
            let (mut file, manifest) = self.manifest(source).await?;
            let stage = || format!("while offering {name} (file {} of {count})", index + 1);
            self.wire
                .send(&Message::Offer(manifest.clone()))
                .await
                .map_err(|e| TransferError::link_lost(stage(), e))?;
            let offset = match self.wire.recv().await {
                Ok(Message::Have) => {
                    info!("{name}: the receiver already has it");
                    self.report.files += 1;
                    self.report.bytes_skipped += manifest.size;
                    self.delivered(source);
                    return Ok(());
                }
                Ok(Message::Refuse { why, detail }) => {
                    let reason = printable(&detail);
                    warn!("{name}: the receiver refused it: {reason}");
                    let no_space = why == Refusal::NoSpace;
                    self.failures.push(TransferError::PeerRefused { name, reason, no_space });
                    return Ok(());
                }
                Ok(Message::Accept { offset }) if offset <= manifest.size => offset,
                Ok(Message::Accept { offset }) => {
                    return Err(TransferError::Protocol {
                        detail: format!("ACCEPT at offset {offset} for {name} of {} bytes", manifest.size),
                    });
                }
                Ok(Message::Failed { why, detail }) if why != Failure::Verify => {
                    return Err(self.store_failed(&name, why, &detail).await)
                }
                Ok(other) => return Err(unexpected(other, &format!("in reply to the OFFER of {name}"))),
                Err(RecvError::Garbage(what)) => {
                    return Err(garbage(what, &format!("in reply to the OFFER of {name}")));
                }
                Err(RecvError::Lost(e)) => return Err(TransferError::link_lost(stage(), e)),
            };
            if offset > 0 {
                info!("{name}: resuming at {} of {}", fmt_bytes(offset), fmt_bytes(manifest.size));
            }
            match self.stream(source, &mut file, &manifest, offset).await? {
                Outcome::Done => {
                    info!("{name}: sent ({})", fmt_bytes(manifest.size));
                    self.report.files += 1;
                    self.report.bytes_skipped += offset;
                    self.delivered(source);
                    return Ok(());
                }
                Outcome::VerifyFailed if !retried => {
                    warn!("{name}: the receiver's BLAKE3 check failed; sending it again from the start");
                    retried = true;
                }
                Outcome::VerifyFailed => {
                    warn!("{name}: the receiver's BLAKE3 check failed again; giving up on it");
                    self.failures.push(TransferError::Verification {
                        name,
                        side: "the receiver's data did not match the sender's hash",
                    });
                    return Ok(());
                }
            }
        }
    }

    /// Spool mode: the receiver confirmed `source` (written, verified and synced, or had it
    /// already), so it is deleted here, durably. If that fails it stays, is offered again next
    /// time and answered `HAVE`; the failure is reported (exit 3), never a duplicate.
    fn delivered(&mut self, source: &Source) {
        if !self.spool {
            return;
        }
        let removed = std::fs::remove_file(&source.path).and_then(|()| match source.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
            _ => Ok(()),
        });
        match removed {
            Ok(()) => self.report.removed += 1,
            Err(e) => {
                warn!("{}: delivered, but cannot delete it here: {e}", source.path.display());
                self.failures.push(TransferError::RemoveFailed { path: source.path.clone(), source: e });
            }
        }
    }

    /// Opens and hashes a file; the manifest describes exactly the bytes hashed.
    async fn manifest(&self, source: &Source) -> Result<(File, Manifest), TransferError> {
        let path = &source.path;
        let file = File::open(path).map_err(|e| read_failed(path, e))?;
        let meta = file.metadata().map_err(|e| read_failed(path, e))?;
        check_regular(path, &meta)?;
        let bar = self.bars.bar(format!("hashing {}", printable(&source.name)), meta.len(), 0);
        let (file, hash, size) = hash_file(file, bar.clone()).await.map_err(|e| read_failed(path, e))?;
        bar.finish_and_clear();
        let manifest = Manifest {
            name: source.name.clone(),
            size,
            mode: meta.permissions().mode() & 0o7777,
            mtime_secs: meta.mtime(),
            mtime_nanos: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
            hash,
        };
        Ok((file, manifest))
    }

    /// Sends `DATA` from `offset` to the end, then `END`, and waits for the receiver's verdict.
    async fn stream(
        &mut self,
        source: &Source,
        file: &mut File,
        manifest: &Manifest,
        offset: u64,
    ) -> Result<Outcome, TransferError> {
        let name = quoted(&manifest.name);
        let size = manifest.size;
        file.seek(SeekFrom::Start(offset)).map_err(|e| read_failed(&source.path, e))?;
        let bar = self.bars.bar(format!("sending {}", printable(&manifest.name)), size, offset);
        let mut pos = offset;
        let mut acked = offset;
        let mut buf = vec![0u8; CHUNK];
        while pos < size {
            // Read acknowledgements only when the window is full: PacketIo cannot be read while
            // we are sending, and a receiver that hit a full disk stops acknowledging.
            while pos - acked >= WINDOW {
                match self.next_event(&name, pos, &mut acked, size).await {
                    Ok(Event::Ack) => {}
                    Ok(_) => {
                        bar.abandon();
                        return Err(TransferError::Protocol {
                            detail: format!("a verdict on {name} before END"),
                        });
                    }
                    Err(e) => {
                        bar.abandon();
                        return Err(e);
                    }
                }
            }
            let want = (size - pos).min(CHUNK as u64) as usize;
            let n = read_up_to(file, &mut buf[..want]).map_err(|e| read_failed(&source.path, e))?;
            if n < want {
                bar.abandon();
                return Err(TransferError::SourceChanged {
                    path: source.path.clone(),
                    detail: format!("it ended at {} of the {} bytes hashed", pos + n as u64, size),
                });
            }
            let msg = Message::Data { offset: pos, bytes: Chunk(buf[..n].to_vec()) };
            if let Err(e) = self.wire.send(&msg).await {
                bar.abandon();
                return Err(TransferError::link_lost(transfer_stage(&name, acked, size), e));
            }
            pos += n as u64;
            self.report.bytes_sent += n as u64;
            bar.set_position(pos);
        }
        if let Err(e) = self.wire.send(&Message::End).await {
            bar.abandon();
            return Err(TransferError::link_lost(transfer_stage(&name, acked, size), e));
        }
        loop {
            match self.next_event(&name, pos, &mut acked, size).await {
                Ok(Event::Ack) => {}
                Ok(Event::Done) => {
                    bar.finish();
                    return Ok(Outcome::Done);
                }
                Ok(Event::VerifyFailed) => {
                    bar.abandon();
                    return Ok(Outcome::VerifyFailed);
                }
                Err(e) => {
                    bar.abandon();
                    return Err(e);
                }
            }
        }
    }

    /// The receiver's next word on the file being streamed (`pos` bytes sent so far).
    async fn next_event(
        &mut self,
        name: &str,
        pos: u64,
        acked: &mut u64,
        size: u64,
    ) -> Result<Event, TransferError> {
        let context = || format!("during the data of {name}");
        match self.wire.recv().await {
            Ok(Message::Ack { offset }) if offset > *acked && offset <= pos => {
                *acked = offset;
                Ok(Event::Ack)
            }
            Ok(Message::Ack { offset }) => Err(TransferError::Protocol {
                detail: format!("ACK of offset {offset} for {name} (acknowledged {}, sent {pos})", *acked),
            }),
            Ok(Message::Done) if pos == size => Ok(Event::Done),
            Ok(Message::Failed { why: Failure::Verify, .. }) if pos == size => Ok(Event::VerifyFailed),
            Ok(Message::Failed { why, detail }) if why != Failure::Verify => {
                Err(self.store_failed(name, why, &detail).await)
            }
            Ok(other) => Err(unexpected(other, &context())),
            Err(RecvError::Garbage(what)) => Err(garbage(what, &context())),
            Err(RecvError::Lost(e)) => Err(TransferError::link_lost(transfer_stage(name, *acked, size), e)),
        }
    }

    /// The receiver could not store a file and is waiting for our `BYE` before it stops.
    async fn store_failed(&mut self, name: &str, why: Failure, detail: &str) -> TransferError {
        let reason = printable(detail);
        warn!("{name}: the receiver failed ({why:?}): {reason}");
        let _ = self.wire.send(&Message::Bye).await;
        TransferError::PeerStoreFailed { name: name.to_string(), reason }
    }
}

fn transfer_stage(name: &str, acked: u64, size: u64) -> String {
    format!(
        "during transfer of {name} ({} of {} confirmed by the receiver)",
        fmt_bytes(acked),
        fmt_bytes(size)
    )
}

/// Fills `buf` unless the file ends first; returns the bytes read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
