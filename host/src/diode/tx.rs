//! `strand diode-tx`: lists the files, runs the core's [`Sender`] on a
//! thread of its own fed by the [producer](super::produce) (which reads,
//! hashes and encodes ahead), and writes its frames paced to the rate — in
//! `sendmmsg` batches on UDP — so that neither a serial port's buffers nor a
//! UDP path are overrun (nothing comes back to slow the sender down).

use super::endpoint::{open_sink, Endpoint, Side, Sink};
use super::pace::Pacer;
use super::produce::{self, Content, Plan, Prepared};
use super::udp::{BatchSender, BATCH};
use super::TxArgs;
use crate::transport::SerialSettings;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver as ChanRx, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};
use strand_link::diode::stream;
use strand_link::diode::wire::MAX_FRAME;
use strand_link::diode::{
    safe_name, AuthKey, Layout, Manifest, Outgoing, Poll, Redundancy, Sender, SenderConfig,
};
use strand_link::fec::Strength;
use strand_link::time::Instant;
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{signal, SignalKind};

/// IPv4 and UDP headers: what a datagram costs the path besides its payload.
const UDP4_OVERHEAD: usize = 28;
/// IPv6 and UDP headers.
const UDP6_OVERHEAD: usize = 48;

/// One object to send and where its bytes are.
struct Item {
    manifest: Manifest,
    content: Content,
    path: String,
}

/// A non-zero session id from the OS: sessions of different runs must differ (13.2).
fn session_id() -> u32 {
    loop {
        let seed = crate::driver::os_seed();
        let id = seed as u32 ^ (seed >> 32) as u32;
        if id != 0 {
            return id;
        }
    }
}

/// Lists what the FILE arguments name: `(name, path)`; `None` path = stdin.
fn collect(args: &[PathBuf]) -> Result<Vec<(String, Option<PathBuf>)>, String> {
    let mut out = Vec::new();
    for a in args {
        if a.as_os_str() == "-" {
            out.push(("stdin".to_string(), None));
            continue;
        }
        let meta = fs::metadata(a).map_err(|e| format!("{}: {e}", a.display()))?;
        if meta.is_dir() {
            let before = out.len();
            walk(a, a, &mut out)?;
            out[before..].sort();
        } else if meta.is_file() {
            let name = a
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| format!("{}: the name is not UTF-8", a.display()))?;
            out.push((name.to_string(), Some(a.clone())));
        } else {
            return Err(format!("{}: not a regular file or directory", a.display()));
        }
    }
    let mut names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("two files would be received as {:?}: send them separately", w[0]));
    }
    if out.len() >= usize::from(u16::MAX) {
        return Err(format!(
            "{} files: one session carries at most {} (object numbers are 16 bits); send them in several runs or as a tar file",
            out.len(),
            u16::MAX - 1
        ));
    }
    Ok(out)
}

/// Every regular file below `dir` (symlinks are not followed), named relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Option<PathBuf>)>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = e.path();
        let ft = e.file_type().map_err(|e| format!("{}: {e}", path.display()))?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
            let name = parts.ok_or_else(|| format!("{}: the name is not UTF-8", path.display()))?.join("/");
            out.push((name, Some(path)));
        }
    }
    Ok(())
}

/// Opens every object. Files are not read here: the producer hashes them
/// while the first symbols go out. Stdin is read whole (and hashed) first.
async fn load(list: Vec<(String, Option<PathBuf>)>) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for (name, path) in list {
        if !safe_name(&name) {
            return Err(format!("{name:?} cannot be sent: a receiver would refuse the name"));
        }
        let (content, size, mode, mtime, hash, shown) = match path {
            None => {
                let mut v = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut v)
                    .await
                    .map_err(|e| format!("reading stdin: {e}"))?;
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let hash = *blake3::hash(&v).as_bytes();
                let size = v.len() as u64;
                (Content::Memory(Arc::new(v)), size, 0o644, now.as_secs(), Some(hash), "stdin".to_string())
            }
            Some(p) => {
                let shown = p.display().to_string();
                let f = fs::File::open(&p).map_err(|e| format!("{shown}: {e}"))?;
                let meta = f.metadata().map_err(|e| format!("{shown}: {e}"))?;
                let stamp = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
                let content = Content::File { file: f, len: meta.len(), mtime: stamp };
                (content, meta.len(), meta.mode() & 0o7777, meta.mtime().max(0) as u64, None, shown)
            }
        };
        let manifest = Manifest { object: 0, objects: 0, size, mode, mtime, hash, name };
        items.push(Item { manifest, content, path: shown });
    }
    Ok(items)
}

/// What the sending thread has done, for progress lines and the summary.
#[derive(Debug, Default)]
struct Progress {
    frames: AtomicU64,
    wire_bytes: AtomicU64,
    round: AtomicU64,
    object: AtomicU64,
    /// Share of the current object's pass sent, in millionths.
    within: AtomicU64,
}

/// Where frames go, from the sending thread.
enum Out {
    Udp {
        sender: BatchSender,
        overhead: usize,
    },
    Stream {
        sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
        fec: Strength,
        leading: bool,
        rt: tokio::runtime::Handle,
    },
}

impl Out {
    /// Sends a batch; returns the bytes it cost the path (as paced).
    fn send(&mut self, frames: &[&[u8]], pacer: &mut Option<Pacer>) -> Result<u64, String> {
        match self {
            Out::Udp { sender, overhead } => {
                let bytes: usize = frames.iter().map(|f| f.len() + *overhead).sum();
                if let Some(p) = pacer {
                    p.take(bytes);
                }
                sender.send(frames);
                Ok(bytes as u64)
            }
            Out::Stream { sink, fec, leading, rt } => {
                let mut wire = Vec::with_capacity(frames.len() * (MAX_FRAME + 64));
                for f in frames {
                    stream::encode_frame(f, *fec, std::mem::take(leading), &mut wire);
                }
                if let Some(p) = pacer {
                    p.take(wire.len());
                }
                rt.block_on(sink.write_all(&wire)).map_err(write_error)?;
                Ok(wire.len() as u64)
            }
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        if let Out::Stream { sink, rt, .. } = self {
            rt.block_on(sink.flush()).map_err(write_error)?;
            rt.block_on(sink.shutdown()).ok();
        }
        Ok(())
    }
}

fn write_error(e: std::io::Error) -> String {
    if e.raw_os_error() == Some(nix::libc::ENOSPC) {
        return "disk full (no space left on device)".to_string();
    }
    e.to_string()
}

/// Results of the producer received before the sender asked for them: those
/// it sent ahead of the one the sender waited for (the other blocks' stripes
/// of a group, the repair of a block that asks later or never).
///
/// Keys carry no round: every pass of an object has the same ones. That is
/// sound because results are received only while the sender waits for one
/// of them, in the producer's order, which is the sender's pass by pass:
/// every stripe of a pass is asked for in that pass, so it has left the
/// stash before the producer's next pass can be received. Draining the
/// channel eagerly broke this (a small object's next pass overwrote stripes
/// of the current one, which the next pass then waited for in vain).
#[derive(Default)]
struct Stash {
    /// By object, block and byte offset within the object.
    sources: HashMap<(u16, u16, u64), Vec<u8>>,
    /// By object and block: a later pass's copy may replace an unused one
    /// (the same bytes).
    repairs: HashMap<(u16, u16), Vec<u8>>,
}

impl Stash {
    /// Files one result; hashes go straight to the sender.
    fn file(&mut self, sender: &mut Sender, p: Prepared) -> Result<(), String> {
        match p {
            Prepared::Source { object, block, offset, bytes } => {
                if self.sources.insert((object, block, offset), bytes).is_some() {
                    // The sender would ask for this stripe twice and get it once.
                    return Err(format!(
                        "internal error: the file reader sent the stripe at {offset} of block {block} of \
                         object {object} again before it was sent"
                    ));
                }
            }
            Prepared::Repair { object, block, bytes } => {
                self.repairs.insert((object, block), bytes);
            }
            Prepared::Hash { object, hash } => sender.set_hash(object, hash),
            Prepared::Failed(e) => return Err(e),
        }
        Ok(())
    }
}

/// How the sending thread is told to end a session early.
#[derive(Debug, Default)]
struct Ending {
    /// Stop now (a signal): no more frames.
    stop: AtomicBool,
    /// End with the end frames (a carousel replaced by a new session).
    finish: AtomicBool,
}

/// The sending thread: polls the sender, gathers frames into batches, paces
/// and sends them; takes the producer's results as the sender asks for them.
fn drive(
    sender: &mut Sender,
    prepared: &ChanRx<Prepared>,
    out: &mut Out,
    pacer: &mut Option<Pacer>,
    realtime: bool,
    progress: &Progress,
    ending: &Ending,
) -> Result<(), String> {
    let (stop, finish) = (&ending.stop, &ending.finish);
    let start = StdInstant::now();
    let mut finishing = false;
    let max_batch = match out {
        Out::Udp { .. } => BATCH,
        Out::Stream { .. } => 16,
    };
    let batch = pacer.as_ref().map_or(max_batch, |p| p.batch(1500, max_batch));
    let mut bufs = vec![vec![0u8; MAX_FRAME]; batch];
    let mut lens = vec![0usize; batch];
    let mut filled = 0;
    let mut stash = Stash::default();
    let mut virtual_now = Instant::ZERO;
    // For the debug log: when the first frame went, and whether the data is out.
    let mut first_sent: Option<StdInstant> = None;
    let mut data_out = false;
    let mut waited = Duration::ZERO;
    let flush =
        |out: &mut Out, filled: &mut usize, bufs: &[Vec<u8>], lens: &[usize], pacer: &mut Option<Pacer>| {
            if *filled == 0 {
                return Ok(());
            }
            let frames: Vec<&[u8]> = (0..*filled).map(|i| &bufs[i][..lens[i]]).collect();
            let wire = out.send(&frames, pacer)?;
            progress.frames.fetch_add(*filled as u64, Ordering::Relaxed);
            progress.wire_bytes.fetch_add(wire, Ordering::Relaxed);
            *filled = 0;
            Ok::<(), String>(())
        };
    loop {
        if stop.load(Ordering::Relaxed) {
            flush(out, &mut filled, &bufs, &lens, pacer)?;
            return Ok(());
        }
        if !finishing && finish.load(Ordering::Relaxed) {
            // The end frames follow; the producer's results are no longer needed.
            finishing = true;
            sender.finish();
        }
        // The producer's results are received only when the sender asks for
        // one (below): the bounded channel then holds the producer back, and
        // the stash never holds two passes of a stripe (see `Stash`).
        let now =
            if realtime { Instant::from_micros(start.elapsed().as_micros() as u64) } else { virtual_now };
        match sender.poll_frame(now, &mut bufs[filled]) {
            Poll::Frame(n) => {
                if first_sent.is_none() {
                    first_sent = Some(StdInstant::now());
                    tracing::debug!("first frame after {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
                }
                lens[filled] = n;
                filled += 1;
                if filled == batch {
                    flush(out, &mut filled, &bufs, &lens, pacer)?;
                    let (object, within) = sender.position();
                    progress.round.store(u64::from(sender.round()), Ordering::Relaxed);
                    progress.object.store(u64::from(object), Ordering::Relaxed);
                    progress.within.store((within * 1e6) as u64, Ordering::Relaxed);
                }
            }
            Poll::NeedBlock { object, block, offset, .. } => {
                flush(out, &mut filled, &bufs, &lens, pacer)?;
                let what = || format!("the stripe at {offset} of block {block} of object {object}");
                let began = StdInstant::now();
                let bytes = wait_for(prepared, &mut stash, sender, stop, what, |s| {
                    s.sources.remove(&(object, block, offset))
                })?;
                waited += began.elapsed();
                let Some(bytes) = bytes else { continue };
                sender
                    .provide_block(object, block, bytes)
                    .map_err(|e| format!("internal error: block {block}: {e}"))?;
            }
            Poll::NeedRepair { object, block } => {
                flush(out, &mut filled, &bufs, &lens, pacer)?;
                let what = || format!("the repair of block {block} of object {object}");
                let began = StdInstant::now();
                let repair = wait_for(prepared, &mut stash, sender, stop, what, |s| {
                    s.repairs.remove(&(object, block))
                })?;
                waited += began.elapsed();
                let Some(bytes) = repair else { continue };
                sender
                    .provide_repair(object, block, bytes)
                    .map_err(|e| format!("internal error: repair of block {block}: {e}"))?;
            }
            Poll::NeedHash { object } => {
                flush(out, &mut filled, &bufs, &lens, pacer)?;
                // The producer sends the hash after the object's last block; wait for it.
                let what = || format!("the hash of object {object}");
                wait_for(prepared, &mut stash, sender, stop, what, |_| None::<()>)?;
            }
            Poll::Wait(t) => {
                flush(out, &mut filled, &bufs, &lens, pacer)?;
                if !data_out {
                    // The spread-out end begins: the data is out.
                    data_out = true;
                    tracing::debug!(
                        "data out: {} frames in {:.3} s from the first; the pacer lost {:.1} ms to late sends; \
                         {:.1} ms waiting for the file reader",
                        sender.frames_sent(),
                        first_sent.map_or(0.0, |t| t.elapsed().as_secs_f64()),
                        pacer.as_ref().map_or(0.0, |p| p.lost().as_secs_f64() * 1e3),
                        waited.as_secs_f64() * 1e3
                    );
                }
                if realtime {
                    let due = Duration::from_micros(t.as_micros());
                    if let Some(d) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(d);
                    }
                } else {
                    virtual_now = t;
                }
            }
            Poll::Done => {
                flush(out, &mut filled, &bufs, &lens, pacer)?;
                progress.round.store(u64::from(sender.round()), Ordering::Relaxed);
                return Ok(());
            }
        }
    }
}

/// Receives from the producer until `found` has what is wanted (or, for a
/// hash, until one message arrived); `Ok(None)` when stopping. The producer
/// finishing first is a bug (its plan lacks what the sender asks for): an
/// error naming `what` was wanted.
fn wait_for<T>(
    prepared: &ChanRx<Prepared>,
    stash: &mut Stash,
    sender: &mut Sender,
    stop: &AtomicBool,
    what: impl FnOnce() -> String,
    mut found: impl FnMut(&mut Stash) -> Option<T>,
) -> Result<Option<T>, String> {
    if let Some(x) = found(stash) {
        return Ok(Some(x));
    }
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match prepared.recv_timeout(Duration::from_millis(100)) {
            Ok(p) => {
                let hash = matches!(p, Prepared::Hash { .. });
                stash.file(sender, p)?;
                if let Some(x) = found(stash) {
                    return Ok(Some(x));
                }
                if hash {
                    // A caller waiting for a hash polls the sender again.
                    return Ok(None);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(format!("internal error: the file reader stopped without {}", what()))
            }
        }
    }
}

/// The producer's plan: the sender's schedule (rounds, kept groups,
/// first-pass repair) and the objects with the layouts the sender uses.
fn plan(sender: &Sender, config: &SenderConfig, items: Vec<Item>, threads: usize) -> Plan {
    Plan {
        first_pass_repair: (0..items.len()).map(|o| sender.sends_repair(o as u16, 0)).collect(),
        keeps_groups: sender.keeps_groups(),
        rounds: config.rounds,
        first_round: config.first_round,
        threads,
        objects: items
            .into_iter()
            .enumerate()
            .map(|(o, it)| produce::Source {
                layout: sender.layout(o as u16).expect("every object has a layout"),
                hash: it.manifest.hash.is_none(),
                content: it.content,
                path: it.path,
            })
            .collect(),
    }
}

/// What a run decided from its options, for each of its sessions.
struct Setup {
    symbol_size: u16,
    redundancy: Redundancy,
    heartbeat: Duration,
    first_round: u32,
    key: Option<AuthKey>,
    threads: usize,
    /// The link as given, for messages.
    link: String,
    /// Pacing in bytes per second, for messages.
    rate: Option<f64>,
}

/// One session's objects: what the producer reads and what the sender sends.
struct Batch {
    items: Vec<Item>,
    objects: Vec<Outgoing>,
}

/// Lays out every object (the sender cuts each into blocks).
fn batch(items: Vec<Item>, symbol_size: u16) -> Result<Batch, String> {
    let mut objects = Vec::with_capacity(items.len());
    for it in &items {
        let layout = Layout::choose(it.manifest.size, symbol_size).ok_or_else(|| {
            format!("{}: too big for one-way transfer with {symbol_size}-byte symbols", it.path)
        })?;
        objects.push(Outgoing { manifest: it.manifest.clone(), layout });
    }
    Ok(Batch { items, objects })
}

/// A session handed to the sending thread.
struct Job {
    sender: Sender,
    prepared: ChanRx<Prepared>,
    ending: Arc<Ending>,
    done: tokio::sync::oneshot::Sender<(Result<(), String>, u64)>,
}

/// The line: a thread that owns the sink and the pacer and sends the
/// sessions handed to it one after another (one for files; one per set of
/// packets for a spool), so pacing and the stream's framing carry on from one
/// session to the next.
struct Line {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    progress: Arc<Progress>,
}

impl Line {
    fn start(sink: Sink, fec: Strength, rate: Option<f64>, realtime: bool) -> Result<Line, String> {
        let rt = tokio::runtime::Handle::current();
        let progress = Arc::new(Progress::default());
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let shared = progress.clone();
        let thread = std::thread::Builder::new()
            .name("diode-tx-send".into())
            .spawn(move || {
                // The batch sender's headers stay on this thread.
                let mut out = match sink {
                    Sink::Udp(sock, to) => Out::Udp {
                        sender: BatchSender::new(sock, to),
                        overhead: if to.is_ipv4() { UDP4_OVERHEAD } else { UDP6_OVERHEAD },
                    },
                    Sink::Stream(w) => Out::Stream { sink: w, fec, leading: true, rt },
                };
                let mut pacer = rate.map(Pacer::new);
                for mut job in queue {
                    let r = drive(
                        &mut job.sender,
                        &job.prepared,
                        &mut out,
                        &mut pacer,
                        realtime,
                        &shared,
                        &job.ending,
                    );
                    let failed = r.is_err();
                    let _ = job.done.send((r, job.sender.frames_sent()));
                    if failed {
                        // Said through `done`; the line is not used again.
                        return Ok(());
                    }
                }
                out.finish()
            })
            .map_err(|e| format!("cannot start the sending thread: {e}"))?;
        Ok(Line { jobs: Some(jobs), thread: Some(thread), progress })
    }

    /// Flushes and closes the sink once the last session is sent.
    fn close(mut self) -> Result<(), String> {
        drop(self.jobs.take());
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("internal error: the sending thread panicked".into()),
            None => Ok(()),
        }
    }
}

/// SIGTERM and SIGINT, which end a run (a carousel's normal end).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, String> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?,
            int: signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?,
        })
    }

    /// The next one's name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Every pass was sent.
    Done,
    /// Stopped by this signal.
    Signal(&'static str),
    /// A carousel's look at its spool found other packets: a new session follows.
    Replaced,
}

/// A carousel's look at what it sends: at most every `every`, and only at the
/// end of a pass; `changed` says whether a new session should take over.
struct Look<'a> {
    every: Duration,
    changed: &'a mut dyn FnMut() -> bool,
}

/// Sends one session: starts the producer, hands the sender to the line,
/// shows progress, and waits for the end of its passes, a signal, or (a
/// carousel over a spool) a change of the spool seen at the end of a pass.
async fn session(
    line: &Line,
    setup: &Setup,
    batch: Batch,
    rounds: Option<u32>,
    signals: &mut Signals,
    bar: Option<&indicatif::ProgressBar>,
    mut look: Option<Look<'_>>,
) -> Result<Ended, String> {
    let config = SenderConfig {
        redundancy: setup.redundancy,
        rounds,
        first_round: setup.first_round,
        heartbeat: setup.heartbeat.into(),
    };
    let session = session_id();
    let count = batch.items.len();
    // Layouts come from `Layout::choose` and sizes from the files, so only a bug gets here.
    let sender = Sender::new(session, batch.objects, config, setup.key.clone())
        .ok_or("internal error: the diode sender refused a layout it was given")?;
    let plan = plan(&sender, &config, batch.items, setup.threads);
    eprintln!(
        "diode-tx: session {session:08x}: {count} object(s) to {}{}",
        setup.link,
        setup.rate.map(|r| format!(" at {:.1} Mbit/s", r * 8.0 / 1e6)).unwrap_or_default()
    );
    let progress = &line.progress;
    progress.round.store(u64::from(config.first_round), Ordering::Relaxed);
    progress.object.store(0, Ordering::Relaxed);
    progress.within.store(0, Ordering::Relaxed);
    let base = (progress.frames.load(Ordering::Relaxed), progress.wire_bytes.load(Ordering::Relaxed));

    let stop = Arc::new(AtomicBool::new(false));
    let (ptx, prx) = std::sync::mpsc::sync_channel(produce::capacity(&plan));
    let producer = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("diode-tx-read".into())
            .spawn(move || produce::run(plan, ptx, stop))
            .map_err(|e| format!("cannot start the file reader: {e}"))?
    };
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let ending = Arc::new(Ending::default());
    let job = Job { sender, prepared: prx, ending: ending.clone(), done: done_tx };
    if line.jobs.as_ref().is_none_or(|j| j.send(job).is_err()) {
        stop.store(true, Ordering::Relaxed);
        let _ = producer.join();
        return Err("internal error: the sending thread has stopped".into());
    }

    let start = StdInstant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut rounds_told = u64::from(config.first_round);
    let mut round_started = (StdInstant::now(), base.0, base.1);
    let mut looked = (StdInstant::now(), u64::from(config.first_round));
    let mut ended = Ended::Done;
    let (result, frames) = loop {
        tokio::select! {
            r = &mut done_rx => break r.unwrap_or_else(|_| (Err("internal error: the sending thread stopped".into()), 0)),
            sig = signals.recv() => {
                ended = Ended::Signal(sig);
                stop.store(true, Ordering::Relaxed);
                ending.stop.store(true, Ordering::Relaxed);
            }
            _ = tick.tick() => {
                let (frames, wire) = (progress.frames.load(Ordering::Relaxed), progress.wire_bytes.load(Ordering::Relaxed));
                let round = progress.round.load(Ordering::Relaxed);
                if round > rounds_told && rounds.is_none() {
                    // A carousel runs until killed: say how each pass went.
                    let secs = round_started.0.elapsed().as_secs_f64();
                    let line = format!(
                        "diode-tx: round {} sent: {} frames, {} bytes in {:.1} s ({:.1} Mbit/s)",
                        rounds_told,
                        frames - round_started.1,
                        wire - round_started.2,
                        secs,
                        (wire - round_started.2) as f64 * 8.0 / secs.max(1e-9) / 1e6
                    );
                    match bar { Some(b) => b.println(line), None => eprintln!("{line}") }
                    rounds_told = round;
                    round_started = (StdInstant::now(), frames, wire);
                }
                if let Some(l) = look.as_mut() {
                    if round > looked.1 && looked.0.elapsed() >= l.every && ended == Ended::Done {
                        looked = (StdInstant::now(), round);
                        if (l.changed)() {
                            // Receivers hear this session finish (about a second of end frames).
                            ended = Ended::Replaced;
                            ending.finish.store(true, Ordering::Relaxed);
                        }
                    }
                }
                if let Some(b) = bar {
                    let object = progress.object.load(Ordering::Relaxed);
                    b.set_position(progress.within.load(Ordering::Relaxed));
                    b.set_message(format!(
                        "round {round}, object {}/{count}, {:.1} MB sent, {:.1} Mbit/s",
                        object + 1,
                        (wire - base.1) as f64 / 1e6,
                        (wire - base.1) as f64 * 8.0 / start.elapsed().as_secs_f64().max(1e-9) / 1e6
                    ));
                }
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = producer.join();
    let wire = progress.wire_bytes.load(Ordering::Relaxed) - base.1;
    let secs = start.elapsed().as_secs_f64();
    let round = progress.round.load(Ordering::Relaxed);
    let how = match ended {
        Ended::Signal(sig) => format!(", stopped by {sig} in round {round}"),
        Ended::Replaced => format!(", ended in round {round}: the spool changed"),
        Ended::Done => String::new(),
    };
    eprintln!(
        "diode-tx: session {session:08x}: {count} object(s), {frames} frames, {wire} bytes in {secs:.1} s ({:.1} Mbit/s){how}",
        wire as f64 * 8.0 / secs.max(1e-9) / 1e6
    );
    result.map_err(|e| format!("writing {}: {e}", setup.link))?;
    Ok(ended)
}

/// Runs `strand diode-tx`.
pub async fn run(args: &TxArgs, config: Option<&Path>) -> Result<(), String> {
    if let Some(e) = args.usage_error() {
        return Err(e.into());
    }
    let (ep, named) = super::endpoint::resolve(&args.link, Side::Tx, config)?;
    let stream = ep.is_stream();
    let symbol_size = args.symbol_size.unwrap_or(if stream { 1024 } else { 1400 });
    if symbol_size < 2
        || symbol_size % 2 != 0
        || usize::from(symbol_size) > strand_link::diode::wire::MAX_SYMBOL
    {
        return Err(format!("--symbol-size {symbol_size}: use an even number of bytes from 2 to 8192"));
    }
    if !stream && usize::from(symbol_size) > 1400 {
        tracing::warn!(
            "--symbol-size {symbol_size}: datagrams over the path MTU are fragmented, and lost whole"
        );
    }
    let redundancy = match (args.redundancy, args.expect_loss) {
        (Some(p), _) if (0.0..=1000.0).contains(&p) => Redundancy::Fixed(p / 100.0),
        (Some(p), _) => return Err(format!("--redundancy {p}: use a percentage from 0 to 1000")),
        (None, Some(p)) if (0.0..=95.0).contains(&p) => Redundancy::ExpectLoss(p / 100.0),
        (None, Some(p)) => return Err(format!("--expect-loss {p}: use a percentage from 0 to 95")),
        (None, None) => Redundancy::ExpectLoss(0.01),
    };
    if args.rounds == Some(0) {
        return Err("--rounds must be at least 1 (or use --forever)".into());
    }
    if !(args.scan_interval > 0.0 && args.scan_interval.is_finite()) {
        return Err("--scan-interval must be a positive number of seconds".into());
    }
    let heartbeat = u16::try_from(args.heartbeat)
        .ok()
        .filter(|&h| h > 0)
        .ok_or_else(|| format!("--heartbeat {}: use 1 to 65535 ms", args.heartbeat))?;
    let fec = match (args.fec, &ep) {
        (Some(f), _) if !stream && f != Strength::Off => {
            return Err(
                "--fec is for byte streams: UDP datagrams carry raw frames (a damaged one is dropped)".into(),
            )
        }
        (Some(f), _) => f,
        (None, Endpoint::Serial(_)) => Strength::Light,
        (None, _) => Strength::Off,
    };
    let baud = args.baud.or(named.as_ref().and_then(|n| n.baud)).unwrap_or(super::DEFAULT_BAUD);
    let serial = SerialSettings { baud, ..SerialSettings::default() };
    // Bytes per second on the wire.
    let rate = match (args.rate.or(named.as_ref().and_then(|n| n.rate)), &ep) {
        (Some(0), _) => return Err("--rate must be > 0".into()),
        (Some(r), Endpoint::Serial(_)) => Some(r as f64 / 10.0),
        (Some(r), _) => Some(r as f64 / 8.0),
        // 98%: a sender slightly slower than the UART never fills the OS buffers.
        (None, Endpoint::Serial(_)) => Some(f64::from(baud) * 0.98 / 10.0),
        (None, Endpoint::Udp(_)) => Some(10_000_000.0 / 8.0),
        (None, _) => None,
    };
    let key = args.key.load()?;
    let setup = Setup {
        symbol_size,
        redundancy,
        heartbeat: Duration::from_millis(u64::from(heartbeat)),
        first_round: args.first_round,
        key,
        threads: args
            .encode_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4))),
        link: args.link.clone(),
        rate,
    };
    // Files are listed and laid out before the line opens: a bad name sends nothing.
    let files = match &args.spool {
        None => Some(batch(load(collect(&args.files)?).await?, symbol_size)?),
        Some(dir) => match fs::metadata(dir) {
            Ok(m) if m.is_dir() => None,
            Ok(_) => return Err(format!("--spool {}: not a directory", dir.display())),
            Err(e) => return Err(format!("--spool {}: {e}", dir.display())),
        },
    };
    let sink = open_sink(&ep, &serial).await?;
    // Real time where it matters (the spread-out end, heartbeats); a file or
    // stdout has no line to wait for.
    let realtime = matches!(ep, Endpoint::Serial(_) | Endpoint::Udp(_));
    let line = Line::start(sink, fec, rate, realtime)?;
    let bar = (!args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let p = indicatif::ProgressBar::new(1_000_000);
        p.set_style(
            indicatif::ProgressStyle::with_template("{elapsed} [{bar:30}] {msg}").expect("a valid template"),
        );
        p
    });
    let mut signals = Signals::new()?;
    let sent = match (files, &args.spool) {
        (Some(files), _) => {
            session(&line, &setup, files, args.passes(), &mut signals, bar.as_ref(), None).await.map(|_| ())
        }
        (None, Some(dir)) => spool::run(dir, args, &line, &setup, &mut signals, bar.as_ref()).await,
        (None, None) => unreachable!("files are listed unless --spool is given"),
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let closed = line.close().map_err(|e| format!("writing {}: {e}", args.link));
    sent.and(closed)
}

/// `diode-tx --spool DIR`: the packets of an nncp-xfer spool, in sessions.
mod spool {
    use super::*;
    use crate::spool::{check_packet_name, outgoing, Outgoing as Packet};
    use std::collections::{BTreeSet, HashSet};

    /// Most packets in one session (object numbers are 16 bits).
    const MOST: usize = u16::MAX as usize - 1;

    /// A packet as a look at the spool saw it: a changed one is another packet.
    type Seen = (String, u64, i128);

    fn seen(p: &Packet) -> Seen {
        (p.name.clone(), p.size, p.mtime_ns)
    }

    /// The packets in `dir` that can be sent, oldest first, at most [`MOST`];
    /// names that cannot are said once (in `warned`).
    pub(super) fn look(dir: &Path, warned: &mut HashSet<String>) -> Result<Vec<Packet>, String> {
        let mut found = outgoing(dir).map_err(|e| format!("--spool {}: {e}", dir.display()))?;
        found.retain(|p| {
            let why = check_packet_name(&p.name)
                .err()
                .or_else(|| (!safe_name(&p.name)).then(|| "a receiver would refuse it".to_string()));
            if let Some(why) = &why {
                if warned.insert(p.name.clone()) {
                    eprintln!("diode-tx: skipping {}: {why}", p.path.display());
                }
            }
            why.is_none()
        });
        if found.len() > MOST {
            tracing::info!("{} packets: the oldest {MOST} go in this session", found.len());
            found.truncate(MOST);
        }
        Ok(found)
    }

    /// Packets the last session did not carry go first: a carousel restarted
    /// for a new packet sends it before the ones receivers already had a pass of.
    pub(super) fn new_first(found: Vec<Packet>, before: &BTreeSet<Seen>) -> Vec<Packet> {
        let (old, mut new): (Vec<Packet>, Vec<Packet>) =
            found.into_iter().partition(|p| before.contains(&seen(p)));
        new.extend(old);
        new
    }

    /// Deletes the packets a session sent, each only if it is still the file
    /// that was sent (same size and modification time); returns how many.
    pub(super) fn remove_sent(packets: &[Packet]) -> usize {
        let mut removed = 0;
        for p in packets {
            let same = fs::symlink_metadata(&p.path).is_ok_and(|m| {
                m.is_file()
                    && m.len() == p.size
                    && i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()) == p.mtime_ns
            });
            if !same {
                eprintln!("diode-tx: {} changed or went while it was sent: not removed", p.path.display());
                continue;
            }
            match fs::remove_file(&p.path) {
                Ok(()) => removed += 1,
                Err(e) => eprintln!("diode-tx: cannot remove {}: {e}", p.path.display()),
            }
        }
        removed
    }

    /// Opens the packets found; one gone since the look is left out.
    async fn open(found: Vec<Packet>, symbol_size: u16) -> Result<(Batch, Vec<Packet>), String> {
        let mut items = Vec::with_capacity(found.len());
        let mut kept = Vec::with_capacity(found.len());
        for p in found {
            match load(vec![(p.name.clone(), Some(p.path.clone()))]).await {
                Ok(mut one) => {
                    items.append(&mut one);
                    kept.push(p);
                }
                Err(e) if fs::symlink_metadata(&p.path).is_err() => tracing::debug!("{e}: taken meanwhile"),
                Err(e) => return Err(e),
            }
        }
        Ok((batch(items, symbol_size)?, kept))
    }

    /// Sends the spool: one session with --rounds passes (--remove-sent:
    /// then deleted); with --forever a carousel started again when the
    /// packets change, or (--remove-sent) batch after batch.
    pub(super) async fn run(
        dir: &Path,
        args: &TxArgs,
        line: &Line,
        setup: &Setup,
        signals: &mut Signals,
        bar: Option<&indicatif::ProgressBar>,
    ) -> Result<(), String> {
        let every = Duration::from_secs_f64(args.scan_interval);
        let passes = args.passes();
        let mut warned = HashSet::new();
        let mut before = BTreeSet::new();
        let (mut sessions, mut removed) = (0usize, 0usize);
        let mut said_empty = false;
        let end = loop {
            let found = look(dir, &mut warned)?;
            if found.is_empty() {
                if !args.forever {
                    break format!("no packets in {}: nothing to send", dir.display());
                }
                if !said_empty {
                    eprintln!("diode-tx: no packets in {}: waiting for some", dir.display());
                    said_empty = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => continue,
                    sig = signals.recv() => break format!("stopped by {sig}"),
                }
            }
            said_empty = false;
            let (files, packets) = open(new_first(found, &before), setup.symbol_size).await?;
            if packets.is_empty() {
                continue;
            }
            let current: BTreeSet<Seen> = packets.iter().map(seen).collect();
            let mut changed = || {
                look(dir, &mut warned)
                    .is_ok_and(|now| now.iter().map(seen).collect::<BTreeSet<_>>() != current)
            };
            let look_at = passes.is_none().then_some(Look { every, changed: &mut changed });
            let ended = session(line, setup, files, passes, signals, bar, look_at).await?;
            sessions += 1;
            before = current;
            match ended {
                Ended::Signal(sig) => break format!("stopped by {sig}"),
                Ended::Replaced => continue,
                Ended::Done => {
                    if args.remove_sent {
                        removed += remove_sent(&packets);
                    }
                    if !args.forever {
                        break "done".into();
                    }
                }
            }
        };
        let removed = if args.remove_sent { format!(", {removed} packet(s) removed") } else { String::new() };
        eprintln!("diode-tx: spool {}: {sessions} session(s){removed}; {end}", dir.display());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand_link::diode::{Limits, MemStore, Receiver};

    /// Bytes of object `n`: different for every object.
    fn content(n: usize, size: usize) -> Vec<u8> {
        (0..size).map(|i| (i * 31 + n * 7 + i / 251) as u8).collect()
    }

    /// Runs the producer to the end of its plan first, as a producer that
    /// outruns the sending thread does (a fast disk, small objects, a slow
    /// line), then the sending thread, to a stream file; returns the
    /// sending thread's result and the file's bytes.
    fn producer_first(
        sizes: &[usize],
        config: SenderConfig,
        change: impl FnOnce(&mut Plan),
    ) -> (Result<(), String>, Vec<u8>) {
        let items: Vec<Item> = sizes
            .iter()
            .enumerate()
            .map(|(n, &size)| {
                let name = format!("f{n}");
                let manifest = Manifest {
                    object: 0,
                    objects: 0,
                    size: size as u64,
                    mode: 0o644,
                    mtime: 0,
                    hash: None,
                    name,
                };
                let content = Content::Memory(Arc::new(content(n, size)));
                Item { manifest, content, path: format!("f{n}") }
            })
            .collect();
        let objects = items
            .iter()
            .map(|it| Outgoing {
                manifest: it.manifest.clone(),
                layout: Layout::choose(it.manifest.size, 1024).unwrap(),
            })
            .collect();
        let mut sender = Sender::new(7, objects, config, None).unwrap();
        let mut plan = plan(&sender, &config, items, 2);
        change(&mut plan);
        // Room for every result: the whole plan is read before the first frame.
        let (ptx, prx) = std::sync::mpsc::sync_channel(1 << 16);
        produce::run(plan, ptx, Arc::new(AtomicBool::new(false)));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("out.strand");
        let file = rt.block_on(tokio::fs::File::create(&path)).unwrap();
        let mut out =
            Out::Stream { sink: Box::new(file), fec: Strength::Off, leading: true, rt: rt.handle().clone() };
        let r =
            drive(&mut sender, &prx, &mut out, &mut None, false, &Progress::default(), &Ending::default())
                .and_then(|()| out.finish());
        drop(out);
        (r, fs::read(&path).unwrap())
    }

    /// What a receiver makes of a stream file: the objects it published.
    fn received(stream: &[u8]) -> Vec<Vec<u8>> {
        let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
        stream::StreamDecoder::default().feed(stream, |raw| {
            drop(rx.handle_frame(Instant::ZERO, raw, &mut store));
        });
        (0..store.files.len()).filter_map(|n| store.files.get(&format!("f{n}")).cloned()).collect()
    }

    #[test]
    fn a_producer_passes_ahead_still_gives_the_sender_every_pass() {
        let two_rounds = SenderConfig { rounds: Some(2), ..SenderConfig::default() };
        let cases: &[(&[usize], SenderConfig)] = &[
            // `damaged_stream_file_still_delivers`: two objects, two rounds.
            (&[256 * 1024, 1234], two_rounds),
            (&[100_000, 0, 3000, 70_000], SenderConfig { rounds: Some(3), ..SenderConfig::default() }),
            (&[50_000, 20_000], SenderConfig { redundancy: Redundancy::Fixed(0.0), ..two_rounds }),
            (&[50_000, 20_000], SenderConfig { first_round: 1, ..two_rounds }),
            // One object of one group: read once, kept for every round.
            (&[300_000], SenderConfig { rounds: Some(3), ..SenderConfig::default() }),
            (&[300_000], SenderConfig { redundancy: Redundancy::Fixed(0.0), ..two_rounds }),
            (&[300_000], SenderConfig::default()),
        ];
        for (sizes, config) in cases {
            let (r, bytes) = producer_first(sizes, *config, |_| ());
            assert_eq!(r, Ok(()), "{sizes:?} {config:?}");
            let want: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(n, &s)| content(n, s)).collect();
            assert!(received(&bytes) == want, "{sizes:?} {config:?}: not delivered");
        }
    }

    #[test]
    fn directories_are_walked_into_slash_separated_relative_names() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("tree/a/b")).unwrap();
        fs::write(d.path().join("tree/z"), b"1").unwrap();
        fs::write(d.path().join("tree/a/b/c"), b"2").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("tree/link")).unwrap();
        let got: Vec<String> =
            collect(&[d.path().join("tree")]).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, ["a/b/c", "z"]);
        // The same name twice would overwrite itself at the receiver.
        fs::write(d.path().join("z"), b"3").unwrap();
        let e = collect(&[d.path().join("z"), d.path().join("tree/z")]).unwrap_err();
        assert!(e.contains("\"z\""), "{e}");
    }

    #[test]
    fn a_spool_look_takes_packets_only_and_new_ones_go_first() {
        let d = tempfile::tempdir().unwrap();
        let put = |rel: &str, secs: u64| {
            let p = d.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, rel).unwrap();
            let t = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
            fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
        };
        put("BOB/ALICE/OLD", 1);
        put("BOB/ALICE/NEWER", 2);
        put("BOB/ALICE/nncpxfer99", 3);
        put("BOB/ALICE/.part", 3);
        put("BOB/ALICE/bad\u{202e}name", 3);
        let mut warned = std::collections::HashSet::new();
        let names = |v: &[crate::spool::Outgoing]| v.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        let first = spool::look(d.path(), &mut warned).unwrap();
        assert_eq!(names(&first), ["BOB/ALICE/OLD", "BOB/ALICE/NEWER"]);
        assert_eq!(warned.len(), 1, "the odd name is said once: {warned:?}");
        let before = first.iter().map(|p| (p.name.clone(), p.size, p.mtime_ns)).collect();
        put("BOB/ALICE/LATEST", 3);
        // A packet rewritten is another packet.
        put("BOB/ALICE/OLD", 4);
        let again = spool::new_first(spool::look(d.path(), &mut warned).unwrap(), &before);
        assert_eq!(names(&again), ["BOB/ALICE/LATEST", "BOB/ALICE/OLD", "BOB/ALICE/NEWER"]);
    }

    #[test]
    fn remove_sent_deletes_only_the_files_that_were_sent() {
        let d = tempfile::tempdir().unwrap();
        for n in ["R/S/A", "R/S/B", "R/S/C"] {
            fs::create_dir_all(d.path().join("R/S")).unwrap();
            fs::write(d.path().join(n), n).unwrap();
        }
        let sent = crate::spool::outgoing(d.path()).unwrap();
        // B is replaced while it is sent, C taken by someone else.
        fs::write(d.path().join("R/S/B"), "a new B, longer").unwrap();
        fs::remove_file(d.path().join("R/S/C")).unwrap();
        assert_eq!(spool::remove_sent(&sent), 1);
        assert!(!d.path().join("R/S/A").exists());
        assert_eq!(fs::read(d.path().join("R/S/B")).unwrap(), b"a new B, longer");
        assert!(d.path().join("R/S").is_dir(), "nncp-xfer -tx needs its directories");
    }

    #[test]
    fn rounds_go_with_forever_only_for_a_spool_sent_in_batches() {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            tx: TxArgs,
        }
        let parse = |line: &str| {
            <T as clap::Parser>::try_parse_from(std::iter::once("diode-tx").chain(line.split_whitespace()))
                .map(|t| t.tx)
        };
        let t = parse("L --spool D --forever --remove-sent --rounds 3").unwrap();
        assert_eq!((t.usage_error(), t.passes()), (None, Some(3)));
        let t = parse("L --spool D --forever").unwrap();
        assert_eq!((t.usage_error(), t.passes()), (None, None));
        let t = parse("L --spool D --remove-sent").unwrap();
        assert_eq!((t.usage_error(), t.passes()), (None, Some(1)));
        assert!(parse("L f --forever --rounds 2").unwrap().usage_error().is_some());
        assert!(parse("L --spool D --forever --rounds 2").unwrap().usage_error().is_some());
        assert!(parse("L f --remove-sent").is_err(), "--remove-sent is for --spool");
        assert!(parse("L f --spool D").is_err(), "files or a spool, not both");
        assert!(parse("L").is_err(), "something to send");
    }

    #[test]
    fn a_producer_that_ends_before_the_sender_has_what_it_needs_is_an_error() {
        let config = SenderConfig { rounds: Some(2), ..SenderConfig::default() };
        let (r, _) = producer_first(&[50_000, 20_000], config, |p| p.rounds = Some(1));
        let e = r.unwrap_err();
        assert!(e.contains("the file reader stopped without the stripe at 0 of block 0 of object 0"), "{e}");
    }
}
