//! `strand diode-rx`: reads frames (deframing and repairing them on byte
//! streams), hands them to the core's [`Receiver`] over a [`DiskStore`], and
//! says at the end what arrived.

use super::endpoint::{open_source, Endpoint, Side, Source};
use super::exit;
use super::store::{DiskStore, StoreError};
use super::RxArgs;
use crate::transport::SerialSettings;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant as StdInstant};
use strand_link::diode::stream::{StreamDecoder, StreamStats};
use strand_link::diode::{DiodeError, Limits, Liveness, ObjectKey, Outcome, Receiver, Rejected, Status};
use strand_link::time::Instant;
use tokio::io::AsyncReadExt;

/// Why the receive loop ended.
enum End {
    Eof,
    Complete,
    FinishedSender,
    Idle,
}

/// The receiver, its store and the host-side bookkeeping of one run.
struct Run {
    rx: Receiver,
    store: DiskStore,
    start: StdInstant,
    stream_bytes: u64,
    /// The stream layer's counters (set at the end).
    stream: StreamStats,
    /// Last time a frame passed its checks.
    last_valid: StdInstant,
    liveness: BTreeMap<u32, Liveness>,
    /// Objects the store would not publish (existing file, unsafe path), with why.
    refused: BTreeMap<ObjectKey, String>,
    warned_auth: bool,
    complete_session: Option<u32>,
}

impl Run {
    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    /// Takes one raw frame; `Err` only for a store failure the run cannot survive.
    fn frame(&mut self, raw: &[u8]) -> Result<(), StoreError> {
        let now = self.now();
        match self.rx.handle_frame(now, raw, &mut self.store) {
            Ok(outcome) => {
                self.last_valid = StdInstant::now();
                match outcome {
                    Outcome::Committed(key) => {
                        let (name, size) =
                            self.rx.manifest(key).map(|m| (m.name.clone(), m.size)).unwrap_or_default();
                        eprintln!("diode-rx: received {name} ({size} bytes)");
                        self.refused.remove(&key);
                        if self.rx.session_complete(key.session) {
                            self.complete_session = Some(key.session);
                        }
                    }
                    Outcome::HashMismatch(key) => {
                        let name = self.rx.manifest(key).map(|m| m.name.clone()).unwrap_or_default();
                        eprintln!(
                            "diode-rx: {name}: decoded bytes do not match the manifest's hash; discarded"
                        );
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
                    eprintln!("diode-rx: frames fail authentication ({e}): is --key/--key-id the sender's?");
                }
                Ok(())
            }
            Err(Rejected::Code(e)) => {
                tracing::warn!("a block would not decode: {e:?}");
                Ok(())
            }
            Err(Rejected::Store(e)) if e.recoverable() => {
                if let StoreError::Exists(_) | StoreError::Outside(_) = &e {
                    // Which object? The one whose commit failed: find it by the report.
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
                        eprintln!("diode-rx: {e}");
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
        failed.map_or(Ok(()), Err)
    }

    /// Prints liveness changes; says whether the run should end now.
    fn tick(&mut self, args: &RxArgs) -> Option<End> {
        let now = self.now();
        for s in self.rx.sessions() {
            let Some(l) = self.rx.liveness(s, now) else { continue };
            if self.liveness.insert(s, l) != Some(l) {
                let what = match l {
                    Liveness::Active => "receiving",
                    Liveness::SenderSilent => "sender silent: heartbeats arrive, but no data",
                    Liveness::Finished => "the sender says it has finished",
                    Liveness::LinkDead => "link dead: nothing for three heartbeat intervals",
                };
                eprintln!("diode-rx: session {s:08x}: {what}");
            }
        }
        if args.exit_when_complete {
            if self.complete_session.is_some() {
                return Some(End::Complete);
            }
            for s in self.rx.sessions() {
                let interval = self.rx.heartbeat_interval(s).unwrap_or(Duration::from_secs(1));
                if self.liveness.get(&s) == Some(&Liveness::Finished)
                    && self.last_valid.elapsed() >= interval * 2
                {
                    return Some(End::FinishedSender);
                }
            }
        }
        if let Some(t) = args.idle_timeout {
            if self.last_valid.elapsed() >= Duration::from_secs_f64(t) {
                return Some(End::Idle);
            }
        }
        None
    }

    /// Prints the report; returns the exit code. Sessions not heard from in
    /// this run (left over in the store) are listed but do not set the code.
    fn report(&self) -> u8 {
        let heard: BTreeSet<u32> = self
            .rx
            .sessions()
            .into_iter()
            .filter(|&s| self.rx.session_frames(s).is_some_and(|(_, got)| got > 0))
            .collect();
        let (mut complete, mut partial, mut never) = (0, 0, 0);
        for r in self.rx.report() {
            let name = r
                .name
                .clone()
                .unwrap_or_else(|| format!("object {} of session {:08x}", r.key.object, r.key.session));
            let current = heard.contains(&r.key.session);
            let line = match &r.status {
                Status::Complete => {
                    complete += u32::from(current);
                    format!("complete    {name} ({} bytes)", r.size.unwrap_or(0))
                }
                Status::Partial { missing, manifest } => {
                    partial += u32::from(current);
                    let missing = match missing {
                        Some(m) => format!("{m} symbols missing"),
                        None => "no data yet".to_string(),
                    };
                    let refused = self.refused.get(&r.key).map(|e| format!("; {e}")).unwrap_or_default();
                    let m = if *manifest { "" } else { ", manifest not received" };
                    format!("partial     {name} ({missing}{m}{refused})")
                }
                Status::Corrupt => {
                    partial += u32::from(current);
                    format!("corrupt     {name} (hash mismatch)")
                }
                Status::NeverSeen => {
                    never += u32::from(current);
                    format!("never seen  {name}")
                }
            };
            let stale = if current { "" } else { " [earlier run]" };
            eprintln!("diode-rx: {line}{stale}");
        }
        let s = self.rx.stats();
        eprintln!(
            "diode-rx: {} frames ok, {} failed CRC, {} failed authentication, {} invalid, {} over limits; \
             {} symbols kept, {} duplicates, {} blocks decoded, {} objects committed",
            s.frames,
            s.crc_errors + self.stream.fec_failed,
            s.auth_failures,
            s.invalid,
            s.over_limit,
            s.symbols,
            s.duplicates,
            s.blocks_decoded,
            s.committed
        );
        if self.stream_bytes > 0 {
            eprintln!(
                "diode-rx: stream: {} bytes, {} framing errors, {} frames repaired by FEC ({} bytes), {} frames beyond repair",
                self.stream_bytes,
                self.stream.framing_errors,
                self.stream.fec_repaired,
                self.stream.fec_corrected,
                self.stream.fec_failed
            );
        }
        if !self.refused.is_empty() {
            exit::ERROR
        } else if never > 0 || complete + partial == 0 {
            exit::NOTHING
        } else if partial > 0 {
            exit::PARTIAL
        } else {
            exit::COMPLETE
        }
    }
}

/// Runs `strand diode-rx`; returns the exit code.
pub async fn run(args: &RxArgs) -> Result<u8, String> {
    let ep = Endpoint::parse(&args.link, Side::Rx)?;
    let key = args.key.load()?;
    if args.idle_timeout.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
        return Err("--idle-timeout must be a positive number of seconds".into());
    }
    let mut limits = Limits::default();
    if let Some(m) = args.max_bytes {
        limits.max_pending = m;
        limits.max_object = limits.max_object.min(m);
    }
    let (store, restored) = DiskStore::open(&args.dir, args.overwrite).map_err(|e| e.to_string())?;
    let mut rx = Receiver::new(key, limits);
    let (mut symbols, mut blocks) = (0usize, 0usize);
    for r in &restored {
        symbols += r.symbols.len();
        blocks += r.decoded.len();
        rx.restore(r.key, r.layout, r.manifest.clone(), &r.decoded, &r.symbols);
    }
    if !restored.is_empty() {
        eprintln!(
            "diode-rx: resumed {} partial object(s) from {}: {symbols} symbols restored, {blocks} blocks already decoded",
            restored.len(),
            args.dir.join(super::store::WORK_DIR).display()
        );
    }
    let serial = SerialSettings { baud: args.baud, ..SerialSettings::default() };
    let mut source = open_source(&ep, &serial).await?;
    let now = StdInstant::now();
    let mut run = Run {
        rx,
        store,
        start: now,
        stream_bytes: 0,
        stream: StreamStats::default(),
        last_valid: now,
        liveness: BTreeMap::new(),
        refused: BTreeMap::new(),
        warned_auth: false,
        complete_session: None,
    };
    let mut decoder = StreamDecoder::default();
    let mut buf = vec![0u8; 1 << 16];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        let got = tokio::select! {
            r = read(&mut source, &mut buf) => r,
            _ = tick.tick() => {
                match run.tick(args) {
                    Some(end) => break end,
                    None => continue,
                }
            }
        };
        let r = match (got, &source) {
            (Ok(0), Source::Stream(_)) => break End::Eof,
            (Ok(n), Source::Stream(_)) => run.bytes(&mut decoder, &buf[..n]),
            (Ok(n), Source::Udp(_)) => run.frame(&buf[..n]),
            (Err(e), Source::Stream(_)) => {
                eprintln!("diode-rx: reading {}: {e}", args.link);
                break End::Eof;
            }
            (Err(e), Source::Udp(_)) => {
                tracing::debug!("udp receive: {e}");
                Ok(())
            }
        };
        run.stream = decoder.stats();
        if let Err(e) = r {
            run.report();
            return Err(e.to_string());
        }
        if args.exit_when_complete && run.complete_session.is_some() {
            break End::Complete;
        }
    };
    match end {
        End::Idle => {
            eprintln!("diode-rx: no valid frame for {} s: stopping", args.idle_timeout.unwrap_or(0.0))
        }
        End::FinishedSender => eprintln!("diode-rx: the sender finished and nothing more came"),
        End::Eof | End::Complete => {}
    }
    Ok(run.report())
}

async fn read(source: &mut Source, buf: &mut [u8]) -> std::io::Result<usize> {
    match source {
        Source::Stream(r) => r.read(buf).await,
        Source::Udp(s) => s.recv(buf).await,
    }
}
