//! `strand diode-rx`: reads frames (deframing and repairing them on byte
//! streams, from a receive thread on UDP), hands them to the core's
//! [`Receiver`] over a [`DiskStore`], and says at the end — or when stopped
//! by SIGTERM or SIGINT — what arrived and what did not.

use super::endpoint::{open_source, Side, Source};
use super::report;
use super::store::{DiskStore, StoreError};
use super::udp::{self, Batch, RecvCounters};
use super::RxArgs;
use crate::transport::SerialSettings;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};
use strand_link::diode::stream::{StreamDecoder, StreamStats};
use strand_link::diode::{DiodeError, Limits, Liveness, ObjectKey, Outcome, Receiver, Rejected, Status};
use strand_link::time::Instant;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

/// Why the receive loop ended.
enum End {
    Eof,
    Complete,
    FinishedSender,
    LinkDead,
    Idle,
    Signal(&'static str),
}

/// Heartbeat intervals of silence after which `--exit-when-complete` gives up
/// on a sender that was heard (its Done heartbeats lost, or it died).
const DEAD_INTERVALS: u32 = 10;
/// How often stale partial objects are looked for while running.
const EXPIRE_EVERY: Duration = Duration::from_secs(300);

/// The receiver, its store and the host-side bookkeeping of one run.
pub(super) struct Run {
    pub(super) rx: Receiver,
    pub(super) store: DiskStore,
    start: StdInstant,
    pub(super) stream_bytes: u64,
    /// The stream layer's counters.
    pub(super) stream: StreamStats,
    /// The UDP receive thread's counters.
    pub(super) udp: Option<Arc<RecvCounters>>,
    /// Last time a frame passed its checks.
    last_valid: StdInstant,
    liveness: BTreeMap<u32, Liveness>,
    /// When each session was last seen dead.
    dead_since: BTreeMap<u32, StdInstant>,
    /// Objects the store would not publish (existing file, unsafe path), with why.
    pub(super) refused: BTreeMap<ObjectKey, String>,
    warned_auth: bool,
    complete_session: Option<u32>,
    last_expire: StdInstant,
    progress: Option<indicatif::ProgressBar>,
    /// `--spool`: packets into an nncp-xfer spool.
    spool: bool,
    /// When the datagrams being handled were taken from the socket (UDP).
    arrived: Option<StdInstant>,
    /// Time spent on frames that completed a block (decoding, writing,
    /// hashing it) and how many: the debug log's account of the tail.
    completing: (Duration, u64),
}

impl Run {
    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    fn say(&self, line: &str) {
        match &self.progress {
            Some(p) => p.println(format!("diode-rx: {line}")),
            None => eprintln!("diode-rx: {line}"),
        }
    }

    /// Takes one raw frame; `Err` only for a store failure the run cannot survive.
    fn frame(&mut self, raw: &[u8]) -> Result<(), StoreError> {
        let now = self.now();
        let began = StdInstant::now();
        let handled = self.rx.handle_frame(now, raw, &mut self.store);
        if matches!(handled, Ok(Outcome::BlockDecoded | Outcome::Committed(_))) {
            self.completing.0 += began.elapsed();
            self.completing.1 += 1;
        }
        match handled {
            Ok(outcome) => {
                self.last_valid = StdInstant::now();
                match outcome {
                    Outcome::Committed(key) | Outcome::AlreadyComplete(key) => {
                        let (name, size) =
                            self.rx.manifest(key).map(|m| (m.name.clone(), m.size)).unwrap_or_default();
                        let st = self.rx.stats();
                        tracing::debug!(
                            "{name}: complete after {} datagrams",
                            st.frames + st.crc_errors + st.auth_failures + st.invalid
                        );
                        if let Some(at) = self.arrived {
                            // The receiver's tail: what publishing waited for once
                            // the last datagram it needed was in.
                            tracing::debug!(
                                "{name}: published {:.1} ms after the datagram that completed it arrived \
                                 ({:.1} ms in its last frame); {:.1} ms in {} frames that completed blocks",
                                at.elapsed().as_secs_f64() * 1e3,
                                began.elapsed().as_secs_f64() * 1e3,
                                self.completing.0.as_secs_f64() * 1e3,
                                self.completing.1
                            );
                        }
                        if matches!(outcome, Outcome::Committed(_)) {
                            let since = self
                                .rx
                                .session_start(key.session)
                                .map_or(0.0, |t| self.now().since(t).as_secs_f64());
                            self.say(&format!("received {name} ({size} bytes, {since:.2} s after the session's first frame)"));
                        } else if self.spool {
                            self.say(&format!(
                                "{name} ({size} bytes) was received before (the spool's journal has it): not placed again"
                            ));
                        } else {
                            self.say(&format!("{name} ({size} bytes) is already here, identical"));
                        }
                        self.refused.remove(&key);
                        if self.rx.session_complete(key.session) {
                            self.complete_session = Some(key.session);
                        }
                    }
                    Outcome::HashMismatch(key) => {
                        let name = self.rx.manifest(key).map(|m| m.name.clone()).unwrap_or_default();
                        self.say(&format!(
                            "{name}: decoded bytes do not match the manifest's hash; discarded"
                        ));
                    }
                    Outcome::Manifest => {
                        // Record manifests of objects the store holds, for a restart.
                        for key in self.store.without_manifest() {
                            if let Some(m) = self.rx.manifest(key).cloned() {
                                self.store.remember_manifest(key, &m)?;
                            }
                        }
                    }
                    _ => {}
                }
                Ok(())
            }
            Err(Rejected::Frame(e)) => {
                if matches!(e, DiodeError::BadTag | DiodeError::UnknownKey) && !self.warned_auth {
                    self.warned_auth = true;
                    self.say(&format!("frames fail authentication ({e}): is --key/--key-id the sender's?"));
                }
                Ok(())
            }
            Err(Rejected::Code(e)) => {
                tracing::warn!("a block would not decode: {e:?}");
                Ok(())
            }
            Err(Rejected::Store(e)) if e.recoverable() => {
                if let StoreError::Exists(_)
                | StoreError::Outside(_)
                | StoreError::NotAPacket { .. }
                | StoreError::Taken(_) = &e
                {
                    // Which object? The one whose commit failed: all its blocks are in.
                    let key = self
                        .rx
                        .report()
                        .into_iter()
                        .find(|r| {
                            !self.refused.contains_key(&r.key)
                                && matches!(r.status, Status::Partial { missing: Some(0), manifest: true })
                        })
                        .map(|r| r.key);
                    if let Some(key) = key {
                        self.say(&e.to_string());
                        self.refused.insert(key, e.to_string());
                    }
                }
                Ok(())
            }
            Err(Rejected::Store(e)) => Err(e),
        }
    }

    /// Feeds stream bytes through the core's decoder (COBS, in-frame FEC).
    fn bytes(&mut self, decoder: &mut StreamDecoder, input: &[u8]) -> Result<(), StoreError> {
        self.stream_bytes += input.len() as u64;
        let mut failed = None;
        decoder.feed(input, |raw| {
            if failed.is_none() {
                failed = self.frame(raw).err();
            }
        });
        self.stream = decoder.stats();
        failed.map_or(Ok(()), Err)
    }

    /// Datagrams from the receive thread.
    fn batch(&mut self, batch: Batch) -> Result<(), StoreError> {
        let mut r = Ok(());
        let mut bytes = 0;
        if self.arrived.is_none() {
            tracing::debug!("first datagrams in");
        }
        self.arrived = Some(batch.at);
        for d in &batch.datagrams {
            bytes += d.len() as u64;
            if r.is_ok() {
                r = self.frame(d);
            }
        }
        if let Some(c) = &self.udp {
            c.queued.fetch_sub(bytes, Ordering::Relaxed);
        }
        r
    }

    /// Flushes the store, prints liveness changes, updates the progress bar;
    /// says whether the run should end now.
    fn tick(&mut self, args: &RxArgs) -> Result<Option<End>, StoreError> {
        self.store.flush()?;
        if self.last_expire.elapsed() >= EXPIRE_EVERY {
            self.last_expire = StdInstant::now();
            for key in self.store.expire() {
                self.say(&format!(
                    "dropped partial object {} of session {:08x}: untouched for --keep-partial",
                    key.object, key.session
                ));
            }
        }
        let now = self.now();
        for s in self.rx.sessions() {
            let Some(l) = self.rx.liveness(s, now) else { continue };
            if l == Liveness::LinkDead {
                self.dead_since.entry(s).or_insert_with(StdInstant::now);
            } else {
                self.dead_since.remove(&s);
            }
            if self.liveness.insert(s, l) != Some(l) {
                let what = match l {
                    Liveness::Active => "receiving",
                    Liveness::SenderSilent => "sender silent: heartbeats arrive, but no data",
                    Liveness::Finished => "the sender says it has finished",
                    Liveness::LinkDead => "link dead: nothing for three heartbeat intervals",
                };
                self.say(&format!("session {s:08x}: {what}"));
            }
            if self.rx.session_complete(s) && self.rx.session_frames(s).is_some_and(|(_, got)| got > 0) {
                self.complete_session = Some(s);
            }
        }
        self.show_progress();
        if args.exit_when_complete {
            if self.complete_session.is_some() {
                return Ok(Some(End::Complete));
            }
            for s in self.rx.sessions() {
                let interval: Duration =
                    self.rx.heartbeat_interval(s).map_or(Duration::from_secs(1), Into::into);
                if self.liveness.get(&s) == Some(&Liveness::Finished)
                    && self.last_valid.elapsed() >= interval * 2
                {
                    return Ok(Some(End::FinishedSender));
                }
                let heard = self.rx.session_frames(s).is_some_and(|(_, got)| got > 0);
                if heard && self.dead_since.get(&s).is_some_and(|t| t.elapsed() >= interval * DEAD_INTERVALS)
                {
                    return Ok(Some(End::LinkDead));
                }
            }
        }
        if let Some(t) = args.idle_timeout {
            if self.last_valid.elapsed() >= Duration::from_secs_f64(t) {
                return Ok(Some(End::Idle));
            }
        }
        Ok(None)
    }

    fn show_progress(&self) {
        let Some(p) = &self.progress else { return };
        let s = self.rx.stats();
        let dropped = self.udp.as_ref().map_or(0, |c| c.local_drops());
        let current = self.rx.report().into_iter().rev().find(|r| matches!(r.status, Status::Partial { .. }));
        let what = match current.as_ref().and_then(|r| Some((r, self.rx.shortfall(r.key)?))) {
            Some((r, short)) => format!(
                "{}: {}/{} blocks",
                r.name.as_deref().unwrap_or("(name not yet received)"),
                short.blocks - short.blocks_missing,
                short.blocks
            ),
            None => "waiting".to_string(),
        };
        p.set_message(format!(
            "{what} | {} complete | {} frames, {} dropped here",
            s.committed + s.already_complete,
            s.frames,
            dropped
        ));
        p.tick();
    }

    /// Prints the report; returns the exit code.
    pub(super) fn report(&self) -> u8 {
        if let Some(p) = &self.progress {
            p.finish_and_clear();
        }
        let lines = report::lines(self);
        for l in &lines.text {
            eprintln!("diode-rx: {l}");
        }
        report::exit_code(&lines.counts, !self.refused.is_empty())
    }
}

/// What `--dir` and friends opened: the store and the receiver restored from it.
fn open_store(
    args: &RxArgs,
    key: Option<strand_link::diode::AuthKey>,
) -> Result<(Receiver, DiskStore), String> {
    let mut limits = Limits::default();
    if let Some(m) = args.max_bytes {
        limits.max_pending = m;
        limits.max_object = limits.max_object.min(m);
    }
    let keep = Duration::from_secs_f64(args.keep_partial * 3600.0);
    let (store, opened) = match &args.spool {
        Some(dir) => DiskStore::open_spool(dir, keep),
        None => DiskStore::open(args.target(), args.overwrite, keep),
    }
    .map_err(|e| e.to_string())?;
    if opened.placed > 0 {
        eprintln!("diode-rx: placed {} packet(s) whose placement a stop interrupted", opened.placed);
    }
    let mut rx = Receiver::new(key, limits);
    let (mut symbols, mut blocks) = (0usize, 0usize);
    for r in &opened.partial {
        symbols += r.symbols.len();
        blocks += r.decoded.len();
        rx.restore(r.key, r.layout, r.manifest.clone(), &r.decoded, &r.symbols);
    }
    for (key, m) in &opened.complete {
        rx.restore_complete(*key, m.clone());
    }
    let work = args.target().join(super::store::WORK_DIR);
    if !opened.partial.is_empty() {
        eprintln!(
            "diode-rx: resumed {} partial object(s) from {}: {symbols} symbols restored, {blocks} blocks already decoded",
            opened.partial.len(),
            work.display()
        );
    }
    if opened.expired > 0 {
        eprintln!(
            "diode-rx: dropped {} partial object(s) untouched for more than {} h (--keep-partial)",
            opened.expired, args.keep_partial
        );
    }
    Ok((rx, store))
}

/// Where frames come from, once opened.
enum Input {
    Stream(Box<dyn tokio::io::AsyncRead + Unpin + Send>, StreamDecoder),
    Udp(tokio::sync::mpsc::UnboundedReceiver<Batch>, Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>),
}

/// Runs `strand diode-rx`; returns the exit code.
pub async fn run(args: &RxArgs, config: Option<&Path>) -> Result<u8, String> {
    let (ep, named) = super::endpoint::resolve(&args.link, Side::Rx, config)?;
    let named_baud = named.and_then(|n| n.baud);
    let key = args.key.load()?;
    if args.idle_timeout.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
        return Err("--idle-timeout must be a positive number of seconds".into());
    }
    if !(args.keep_partial > 0.0 && args.keep_partial.is_finite()) {
        return Err("--keep-partial must be a positive number of hours".into());
    }
    // A spool directory is locked against a second receiver (or a strand spool --in) into it.
    let _lock = match &args.spool {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Some(crate::spool::lock_dir(dir).map_err(|why| format!("--spool {}: {why}", dir.display()))?)
        }
        None => None,
    };
    let (rx, store) = open_store(args, key)?;
    let serial = SerialSettings {
        baud: args.baud.or(named_baud).unwrap_or(super::DEFAULT_BAUD),
        ..SerialSettings::default()
    };
    let now = StdInstant::now();
    let mut run = Run {
        rx,
        store,
        start: now,
        stream_bytes: 0,
        stream: StreamStats::default(),
        udp: None,
        last_valid: now,
        liveness: BTreeMap::new(),
        dead_since: BTreeMap::new(),
        refused: BTreeMap::new(),
        warned_auth: false,
        complete_session: None,
        last_expire: now,
        progress: None,
        spool: args.spool.is_some(),
        arrived: None,
        completing: (Duration::ZERO, 0),
    };
    let mut input = match open_source(&ep, &serial).await? {
        Source::Stream(r) => Input::Stream(r, StreamDecoder::default()),
        Source::Udp(sock) => {
            let wanted = args.recv_buffer.unwrap_or_else(|| udp::buffer_for_rate(args.rate));
            let buffer = udp::size_recv_buffer(&sock, wanted);
            if buffer.too_small() {
                eprintln!("diode-rx: warning: {}", buffer.describe());
            } else {
                eprintln!("diode-rx: {}", buffer.describe());
            }
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let counters = Arc::new(RecvCounters::default());
            let stop = Arc::new(AtomicBool::new(false));
            // Up to two seconds of traffic (64 MiB to 1 GiB) may wait for the
            // receiver in memory: on a busy machine its thread can lose its core
            // for that long, and memory is cheaper than a lost datagram.
            let budget = ((args.rate / 8) * 2).clamp(64 << 20, 1 << 30);
            let thread = udp::spawn_receiver(sock, tx, counters.clone(), stop.clone(), budget)
                .map_err(|e| format!("cannot start the receive thread: {e}"))?;
            run.udp = Some(counters);
            Input::Udp(rx, stop, Some(thread))
        }
    };
    if !args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let p = indicatif::ProgressBar::new_spinner();
        p.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("a valid template"),
        );
        run.progress = Some(p);
    }
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        let r = tokio::select! {
            _ = sigterm.recv() => break End::Signal("SIGTERM"),
            _ = sigint.recv() => break End::Signal("SIGINT"),
            _ = tick.tick() => match run.tick(args) {
                Ok(Some(end)) => break end,
                Ok(None) => continue,
                Err(e) => Err(e),
            },
            got = read(&mut input, &mut buf) => match got {
                Got::Bytes(n) => match &mut input {
                    Input::Stream(_, decoder) => run.bytes(decoder, &buf[..n]),
                    Input::Udp(..) => Ok(()),
                },
                Got::Batch(b) => run.batch(b),
                Got::End => break End::Eof,
                Got::Failed(e) => {
                    eprintln!("diode-rx: reading {}: {e}", args.link);
                    break End::Eof;
                }
            },
        };
        if let Err(e) = r {
            stop_input(&mut input);
            let _ = run.store.flush();
            run.report();
            return Err(e.to_string());
        }
        if args.exit_when_complete && run.complete_session.is_some() {
            break End::Complete;
        }
    };
    stop_input(&mut input);
    if let Err(e) = run.store.flush() {
        eprintln!("diode-rx: {e}");
    }
    match end {
        End::Idle => eprintln!("diode-rx: no valid frame for {} s: stopping", args.idle_timeout.unwrap_or(0.0)),
        End::FinishedSender => eprintln!("diode-rx: the sender finished and nothing more came"),
        End::LinkDead => eprintln!(
            "diode-rx: nothing heard for {DEAD_INTERVALS} heartbeat intervals (the sender stopped, or its last frames were lost): stopping"
        ),
        End::Signal(name) => eprintln!("diode-rx: stopped by {name}"),
        End::Eof | End::Complete => {}
    }
    Ok(run.report())
}

/// Tells the receive thread to stop. It is not waited for: it may sit in
/// `recvmmsg` until its timeout, and the process is about to end anyway.
fn stop_input(input: &mut Input) {
    if let Input::Udp(_, stop, thread) = input {
        stop.store(true, Ordering::Relaxed);
        drop(thread.take());
    }
}

/// What one read produced.
enum Got {
    Bytes(usize),
    Batch(Batch),
    End,
    Failed(std::io::Error),
}

async fn read(input: &mut Input, buf: &mut [u8]) -> Got {
    match input {
        Input::Stream(r, _) => match r.read(buf).await {
            Ok(0) => Got::End,
            Ok(n) => Got::Bytes(n),
            Err(e) => Got::Failed(e),
        },
        Input::Udp(rx, ..) => match rx.recv().await {
            Some(b) => Got::Batch(b),
            None => Got::End,
        },
    }
}

/// Fields the report needs, without reaching into `Run` from outside.
impl report::Source for Run {
    fn receiver(&self) -> &Receiver {
        &self.rx
    }
    fn refused(&self, key: ObjectKey) -> Option<&str> {
        self.refused.get(&key).map(String::as_str)
    }
    fn stream(&self) -> (u64, StreamStats) {
        (self.stream_bytes, self.stream)
    }
    fn local_drops(&self) -> Option<(u64, u64)> {
        self.udp
            .as_ref()
            .map(|c| (c.kernel_drops.load(Ordering::Relaxed), c.queue_drops.load(Ordering::Relaxed)))
    }
}
