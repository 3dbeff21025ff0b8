//! Drives one `strand-link` core over a transport: the host's event loop, and
//! the handle the commands use to send and receive.
//!
//! The driver task owns the transport's read half and feeds the core; a writer
//! task owns the write half with a queue of at most [`WRITE_QUEUE`] frames, so
//! frames leave the core only when the line can take them (round-trip times
//! stay honest and priorities still matter). Deliveries move into per-channel
//! queues only while that channel's consumer has room: a slow consumer closes
//! the window instead of growing a buffer. Serial and TCP transports are
//! reopened when they fail (a cable pulled and plugged back); the link session
//! survives the gap. A peer silent for the `give_up` time is declared gone:
//! every operation then fails, so nothing waits for ever.

use crate::address::Address;
use crate::transport::{self, Duplex, OpenError, Opened, Parity, SerialSettings};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use strand_link::drive::{Capabilities, Transport};
use strand_link::framing::{max_raw_for_encoded, StreamFraming};
use strand_link::wire::OVERHEAD;
use strand_link::{Buf, ConnStorage, Connection, Driver, Endpoint};
use strand_link::{Config, Event, Instant, PacketId, SendError, Stats};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf};
use tokio::sync::{mpsc, Notify};

/// Window of the host's link, in frames.
pub const W: usize = 256;
/// Frame capacity of the host's link on the line (COBS-encoded), in bytes:
/// 8 KiB halves the per-frame overhead of 4 KiB frames on a clean fast line
/// (linkbench, 2 Mbit/s clean: 99.04% against 98.81% of the line); while
/// channels share the line, frames are cut to 20 ms of it
/// (`Config::for_serial_line`).
pub const N: usize = 8192;
/// The largest raw frame that capacity holds.
const MAX_RAW: usize = max_raw_for_encoded(N);
/// Stream channels a session may carry (the written-up-to ledger, spec 8.3): all of them.
const STREAMS: usize = 256;

/// Channels of the host's commands (spec section 8: lower number, higher priority).
pub mod channel {
    /// Control messages (forward's connection management).
    pub const CONTROL: u8 = 0;
    /// `strand pipe`'s byte stream.
    pub const PIPE: u8 = 1;
    /// File transfer.
    pub const FILES: u8 = 2;
    /// First channel of `strand forward` connections.
    pub const FORWARD_FIRST: u8 = 16;
}

/// Frames queued for the writer beyond the one being written.
pub const WRITE_QUEUE: usize = 2;
/// Fragments held per channel for a consumer that has not read them yet.
const INBOUND_CAP: usize = 64;
/// The link settings for a serial line: see [`Config::for_serial_line`] (short
/// frames while channels share the line, longer ones for one bulk channel
/// alone, and the line rate for the retransmission timers and the queue ahead
/// of the wire). A parity bit makes each byte 11 bits on the wire.
pub fn config_for_serial(serial: &SerialSettings) -> Config {
    let bits = if serial.parity == Parity::None { 10 } else { 11 };
    Config::for_serial_line(serial.baud, bits, N)
}

/// How often a failed serial or TCP transport is retried.
const REOPEN_EVERY: Duration = Duration::from_millis(500);

/// Longest a closing TCP transport waits for the peer's end after shutting
/// down its own (so its last frames are not destroyed by a reset).
const CLOSE_DRAIN: Duration = Duration::from_secs(1);

/// One fragment delivered on a channel.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The payload.
    pub data: Vec<u8>,
    /// More fragments of the same packet follow.
    pub more: bool,
    /// End of the byte stream on this channel.
    pub fin: bool,
    /// The peer aborted the byte stream on this channel; `data` says why.
    pub reset: bool,
}

/// Why a link operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The transport closed for good (stdio, exec, tcp-listen).
    #[error("{0}")]
    Closed(String),
    /// The peer restarted since this operation's session began.
    #[error("the peer restarted; the session was reset")]
    PeerRestarted,
    /// Nothing was heard from the peer for the give-up time.
    #[error("{0}")]
    Gone(String),
    /// Waited too long.
    #[error("{0}")]
    Timeout(String),
}

/// The host's point-to-point node: an endpoint of one connection (~4 MiB of
/// window, on the heap) and its drive step.
struct Node {
    ep: Endpoint<'static>,
    driver: Driver<'static, StreamFraming<'static>>,
}

struct State {
    node: Node,
    inbound: HashMap<u8, VecDeque<Inbound>>,
    /// After a peer restart, old-session fragments are dropped per channel until
    /// the first new-session one (which carries the restart mark).
    stale: [bool; 256],
    closed: Option<String>,
    generation: u64,
    transport_up: bool,
    version_mismatch: Option<(u8, u8)>,
    /// Set while the peer has been silent for the give-up time: why.
    gone: Option<String>,
    /// The command is done and only lingers: a closing transport is expected.
    finishing: bool,
    /// The application changed the link (queued data, a written count)
    /// without finishing its operation: the driver must look, or the change
    /// waits for the next timer.
    poked: bool,
}

struct Inner {
    state: Mutex<State>,
    /// Frames handed to the writer task and not yet written out.
    unwritten: AtomicUsize,
    wake_driver: Notify,
    wake_app: Notify,
    /// Asks the driver to shut the transport down and stop.
    close: Notify,
    start: std::time::Instant,
    label: String,
    give_up: Duration,
}

/// A running link; cheap to clone.
#[derive(Clone)]
pub struct LinkHandle {
    inner: Arc<Inner>,
}

/// 64 bits from the OS: session ids must differ between runs (spec 5.1, 13.2).
pub(crate) fn os_seed() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).is_ok()
    {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
}

/// Builds the node: its memory is allocated here and initialised in place,
/// nothing large is built on a stack.
fn build_node(cfg: Config, seed: u64) -> Node {
    let storage = ConnStorage::owned(W, MAX_RAW - OVERHEAD, STREAMS);
    let conn = Connection::new(cfg.clone(), storage, 0, Instant::ZERO, seed);
    let framing = StreamFraming::owned(MAX_RAW, cfg.idle_resync);
    let ep = Endpoint::new(cfg, 0, Buf::from(vec![conn]), Instant::ZERO);
    Node { ep, driver: Driver::owned(framing, 64 * 1024) }
}

impl State {
    /// The connection.
    fn link(&self) -> &Connection<'static> {
        self.node.ep.connection(0)
    }

    /// The connection, to change.
    fn link_mut(&mut self) -> &mut Connection<'static> {
        self.node.ep.connection_mut(0)
    }
}

/// The driver's view of the transport for one drive step: the bytes read
/// this time, and the writer task's queue.
struct HostLine<'a> {
    inbox: &'a [u8],
    writer: Option<&'a mpsc::Sender<Vec<u8>>>,
    unwritten: &'a AtomicUsize,
}

impl Transport for HostLine<'_> {
    fn capabilities(&self) -> Capabilities {
        Capabilities::stream(MAX_RAW, 0)
    }

    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = self.inbox.len().min(buf.len());
        buf[..n].copy_from_slice(&self.inbox[..n]);
        self.inbox = &self.inbox[n..];
        n
    }

    fn ready(&self) -> bool {
        // With the transport down a frame is lost, like on a pulled cable;
        // the ARQ sends it again once the line is back.
        self.writer.is_none_or(|tx| tx.capacity() > 0)
    }

    fn send(&mut self, unit: &[u8]) {
        if let Some(tx) = self.writer {
            self.unwritten.fetch_add(1, Ordering::SeqCst);
            if tx.try_send(unit.to_vec()).is_err() {
                self.unwritten.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Opens `addr` (a `tcp:` connect is retried until `give_up`, as a server may
/// still be starting) and starts driving a link over it; a peer silent for
/// `give_up` is declared gone.
pub async fn start(
    addr: &Address,
    serial: &SerialSettings,
    cfg: Config,
    give_up: Duration,
) -> Result<LinkHandle, OpenError> {
    let opened = transport::open_patiently(addr, serial, give_up).await?;
    Ok(start_on(opened, addr.clone(), *serial, cfg, give_up))
}

/// Starts driving a link over an already open transport.
pub fn start_on(
    opened: Opened,
    addr: Address,
    serial: SerialSettings,
    cfg: Config,
    give_up: Duration,
) -> LinkHandle {
    let node = build_node(cfg, os_seed());
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            node,
            inbound: HashMap::new(),
            stale: [false; 256],
            closed: None,
            generation: 0,
            transport_up: true,
            version_mismatch: None,
            gone: None,
            finishing: false,
            poked: false,
        }),
        wake_driver: Notify::new(),
        wake_app: Notify::new(),
        close: Notify::new(),
        unwritten: AtomicUsize::new(0),
        start: std::time::Instant::now(),
        label: addr.to_string(),
        give_up,
    });
    tokio::spawn(drive(inner.clone(), opened, addr, serial));
    LinkHandle { inner }
}

/// The open half of a transport: reader here, writer in its own task.
struct Conn {
    rd: ReadHalf<Box<dyn Duplex>>,
    tx: Option<mpsc::Sender<Vec<u8>>>,
    failed: Arc<AtomicBool>,
}

impl Conn {
    fn new(opened: Opened, inner: &Arc<Inner>, pace: Option<transport::OutQueue>) -> Conn {
        let (rd, mut wr) = tokio::io::split(opened.duplex);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let (f, inner) = (failed.clone(), inner.clone());
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                let ok = wr.write_all(&frame).await.is_ok() && wr.flush().await.is_ok();
                // A serial device's own buffer is kept to a few ms of line time, so
                // the bytes a new frame waits behind are the ones the core counted
                // (a pty reports 0 and never waits here).
                if let Some(q) = &pace {
                    q.wait_below().await;
                }
                inner.unwritten.fetch_sub(1, Ordering::SeqCst);
                if !ok {
                    f.store(true, Ordering::SeqCst);
                    inner.wake_driver.notify_one();
                    return;
                }
                // Room in the queue: the core may hand out the next frame.
                inner.wake_driver.notify_one();
            }
            // The driver closed the queue: our side ends (a TCP FIN), the peer's
            // last frames can still come in.
            let _ = wr.shutdown().await;
        });
        Conn { rd, tx: Some(tx), failed }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    fn to_tokio(&self, t: Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + Duration::from_micros(t.as_micros()))
    }

    /// When the peer counts as gone, if it stays silent.
    fn gone_at(&self, st: &State) -> Option<Instant> {
        (st.link().is_connected() && st.gone.is_none()).then(|| st.link().last_heard() + self.give_up)
    }

    /// One drive step (the core's, `strand_link::drive`) over the bytes read
    /// this time and the writer's queue; then publishes events and moves
    /// deliveries to the channel queues.
    fn service(&self, st: &mut State, conn: Option<&Conn>, inbox: &[u8]) {
        let now = self.now();
        let mut line =
            HostLine { inbox, writer: conn.and_then(|c| c.tx.as_ref()), unwritten: &self.unwritten };
        let Node { ep, driver } = &mut st.node;
        driver.step(ep, &mut line, now);
        while let Some(ev) = st.link_mut().poll_event() {
            match ev {
                Event::PeerRestarted => self.new_generation(st, "the peer restarted; starting a new session"),
                Event::VersionMismatch { peer_min, peer_max } => {
                    st.version_mismatch = Some((peer_min, peer_max));
                    tracing::error!("{}: {}", self.label, version_message(peer_min, peer_max));
                }
                Event::LinkDown => tracing::info!(
                    "{}: nothing heard from the peer for {:?}",
                    self.label,
                    Config::default().link_timeout
                ),
                Event::LinkUp => tracing::info!("{}: the peer is heard again", self.label),
                Event::Connected { peer } => {
                    tracing::info!("{}: connected (peer session {peer:08x})", self.label)
                }
                _ => tracing::trace!("{}: {ev:?}", self.label),
            }
        }
        self.check_gone(st, now);
        while let Some(ch) = st.link().peek_channel() {
            if st.inbound.get(&ch).is_some_and(|q| q.len() >= INBOUND_CAP) {
                break;
            }
            let (inbound, stale) = (&mut st.inbound, &mut st.stale);
            st.node.ep.connection_mut(0).recv(|d, p| {
                if stale[ch as usize] && !d.restart {
                    return; // the rest of an old session's packet or stream
                }
                stale[ch as usize] = false;
                inbound.entry(ch).or_default().push_back(Inbound {
                    data: p.to_vec(),
                    more: d.more,
                    fin: d.fin,
                    reset: d.reset,
                });
            });
        }
    }

    /// Operations of the session so far fail; old-session fragments, here
    /// or still in the core, belong to them, and none may reach the next.
    fn new_generation(&self, st: &mut State, why: &str) {
        st.generation += 1;
        st.inbound.clear();
        st.stale = [true; 256];
        tracing::warn!("{}: {why}", self.label);
    }

    /// Declares the peer gone after `give_up` of silence, and back when heard.
    fn check_gone(&self, st: &mut State, now: Instant) {
        let silent: Duration = now.since(st.link().last_heard()).into();
        if st.gone.is_some() {
            if silent < self.give_up && st.link().is_connected() {
                tracing::info!("{}: the peer is back", self.label);
                st.gone = None;
            }
            return;
        }
        if st.link().is_connected() && silent >= self.give_up {
            let why = if st.transport_up {
                format!("nothing heard from the peer on {} for {:?}; it is gone", self.label, self.give_up)
            } else {
                format!("{} has been unavailable for {:?}", self.label, self.give_up)
            };
            tracing::warn!("{why}");
            st.gone = Some(why);
        }
    }
}

fn version_message(peer_min: u8, peer_max: u8) -> String {
    format!(
        "the peer speaks strand protocol version {} but this strand speaks version {}: run the same strand version on both ends",
        if peer_min == peer_max { peer_min.to_string() } else { format!("{peer_min} to {peer_max}") },
        strand_link::wire::PROTOCOL
    )
}

async fn drive(inner: Arc<Inner>, opened: Opened, addr: Address, serial: SerialSettings) {
    let pace = opened.out_queue.clone();
    let mut conn = Some(Conn::new(opened, &inner, pace));
    let mut buf = vec![0u8; 64 * 1024];
    let reopenable = addr.reopenable();
    let mut closing: Option<tokio::time::Instant> = None;
    loop {
        let deadline = {
            let st = inner.lock();
            let t = match (st.node.ep.poll_timeout(), inner.gone_at(&st)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            t.map(|t| inner.to_tokio(t))
        };
        let sleep = async {
            match (deadline, closing) {
                (Some(d), Some(c)) => tokio::time::sleep_until(d.min(c)).await,
                (Some(d), None) | (None, Some(d)) => tokio::time::sleep_until(d).await,
                (None, None) => std::future::pending().await,
            }
        };
        let failed_writer = conn.as_ref().is_some_and(|c| c.failed.load(Ordering::SeqCst));
        let mut got = 0;
        let mut lost: Option<String> = failed_writer.then(|| "write failed".to_string());
        if lost.is_none() {
            tokio::select! {
                r = async { conn.as_mut().expect("checked").rd.read(&mut buf).await }, if conn.is_some() => {
                    match r {
                        Ok(0) => lost = Some("closed by the other end".into()),
                        Ok(n) => got = n,
                        Err(e) => lost = Some(e.to_string()),
                    }
                }
                _ = tokio::time::sleep(REOPEN_EVERY), if conn.is_none() && closing.is_none() => {
                    if let Ok(t) = transport::open(&addr, &serial).await {
                        tracing::info!("{}: reopened", inner.label);
                        let pace = t.out_queue.clone();
                        conn = Some(Conn::new(t, &inner, pace));
                        let mut st = inner.lock();
                        st.node.driver.reset();
                        st.transport_up = true;
                    }
                }
                _ = inner.close.notified(), if closing.is_none() => {
                    // Our frames are all out (the handle waited for that): end our
                    // side and read until the peer ends its own, a little while —
                    // where it has one (on a serial line the wait would only add a
                    // second to every run).
                    let drain = if addr.has_end() { CLOSE_DRAIN } else { Duration::ZERO };
                    closing = Some(tokio::time::Instant::now() + drain);
                    if let Some(c) = conn.as_mut() {
                        c.tx = None;
                    }
                }
                _ = sleep => {}
                _ = inner.wake_driver.notified() => {}
            }
        }
        if closing.is_some_and(|c| tokio::time::Instant::now() >= c) || (closing.is_some() && lost.is_some())
        {
            finish(&inner, "closed");
            return;
        }
        if let Some(why) = lost {
            conn = None;
            let mut st = inner.lock();
            st.transport_up = false;
            if st.finishing {
                tracing::debug!("{}: {why} while finishing", inner.label);
                drop(st);
                finish(&inner, &why);
                return;
            } else if reopenable {
                tracing::warn!("{}: {why}; reopening every {REOPEN_EVERY:?} until it is back", inner.label);
            } else {
                drop(st);
                finish(&inner, &why);
                return;
            }
        }
        {
            let mut st = inner.lock();
            inner.service(&mut st, conn.as_ref(), &buf[..got]);
        }
        inner.wake_app.notify_waiters();
    }
}

/// The transport is closed for good: every operation fails from now on.
fn finish(inner: &Inner, why: &str) {
    inner.lock().closed = Some(format!("{}: {why}", inner.label));
    inner.wake_app.notify_waiters();
}

impl LinkHandle {
    /// Waits until `f` returns `Some`, re-checking after every driver step.
    async fn wait<T>(
        &self,
        mut f: impl FnMut(&mut State) -> Option<Result<T, LinkError>>,
    ) -> Result<T, LinkError> {
        loop {
            let notified = self.inner.wake_app.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.inner.lock();
                if let Some(r) = f(&mut st) {
                    drop(st);
                    self.inner.wake_driver.notify_one();
                    return r;
                }
                if std::mem::take(&mut st.poked) {
                    self.inner.wake_driver.notify_one();
                }
                if let Some(c) = &st.closed {
                    return Err(LinkError::Closed(c.clone()));
                }
            }
            notified.await;
        }
    }

    /// Like [`wait`](Self::wait) for an operation of session `generation`: it
    /// fails if the session changed or the peer is gone.
    async fn wait_in<T>(
        &self,
        generation: u64,
        mut f: impl FnMut(&mut State) -> Option<Result<T, LinkError>>,
    ) -> Result<T, LinkError> {
        self.wait(|st| {
            if st.generation != generation {
                return Some(Err(LinkError::PeerRestarted));
            }
            if let Some(why) = &st.gone {
                return Some(Err(LinkError::Gone(why.clone())));
            }
            f(st)
        })
        .await
    }

    /// This side's and the peer's session ids (the peer's once connected).
    pub fn sessions(&self) -> (u32, Option<u32>) {
        let st = self.inner.lock();
        (st.link().session(), st.link().peer_session())
    }

    /// The session generation: it changes when the peer restarts.
    pub fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    /// Waits for the handshake; explains what was heard if it does not come.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), LinkError> {
        let wait = self.wait(|st| st.link().is_connected().then_some(Ok(())));
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(LinkError::Timeout(self.no_peer_message(timeout))),
        }
    }

    fn no_peer_message(&self, timeout: Duration) -> String {
        let st = self.inner.lock();
        if let Some((lo, hi)) = st.version_mismatch {
            return format!("{}: {}", self.inner.label, version_message(lo, hi));
        }
        let s = st.node.ep.stats();
        let label = &self.inner.label;
        if s.bytes_rx == 0 {
            format!("no strand peer answered on {label} within {timeout:?}: nothing was received. Is `strand` running on the other end, and is the cable connected?")
        } else if s.frames_rx == 0 {
            format!(
                "no strand peer answered on {label} within {timeout:?}: received {} bytes but no valid strand frame ({} failed the CRC). Is the other end running strand at the same baud rate, or another program?",
                s.bytes_rx, s.crc_errors
            )
        } else {
            format!("no strand handshake on {label} within {timeout:?} ({} frames heard)", s.frames_rx)
        }
    }

    /// Waits until the peer is heard (connected, not gone, the transport up);
    /// fails after `timeout`.
    pub async fn wait_up(&self, timeout: Duration) -> Result<(), LinkError> {
        let wait =
            self.wait(|st| (st.link().is_up() && st.transport_up && st.gone.is_none()).then_some(Ok(())));
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(LinkError::Timeout(format!(
                "{}: the peer did not come back within {timeout:?}",
                self.inner.label
            ))),
        }
    }

    /// Ends the session from this side after the peer was declared gone
    /// (spec 5.3): what is in flight fails, and when the line comes back both
    /// sides start a new session instead of resuming half-closed streams.
    pub fn restart_session(&self) {
        let mut st = self.inner.lock();
        let now = self.inner.now();
        st.link_mut().restart_session(now);
        self.inner.new_generation(&mut st, "starting a new session");
        drop(st);
        self.inner.wake_driver.notify_one();
    }

    /// Sends a packet, waiting while the window is full. Fails if the session
    /// changed since `generation` or the peer is gone.
    pub async fn send(&self, channel: u8, data: &[u8], generation: u64) -> Result<PacketId, LinkError> {
        self.wait_in(generation, |st| match st.link_mut().send(channel, data) {
            Ok(id) => Some(Ok(id)),
            Err(SendError::WouldBlock) => None,
            Err(SendError::TooLarge) => Some(Err(LinkError::Closed(format!(
                "a {}-byte packet is too large for this link",
                data.len()
            )))),
        })
        .await
    }

    /// Writes all of `data` to the byte stream on `channel`.
    pub async fn write_stream(&self, channel: u8, data: &[u8], generation: u64) -> Result<(), LinkError> {
        let mut at = 0;
        while at < data.len() {
            at += self.write_stream_some(channel, &data[at..], generation).await?;
        }
        Ok(())
    }

    /// Writes a non-empty part of `data` to the byte stream on `channel`,
    /// waiting for room; returns how much the link took.
    pub async fn write_stream_some(
        &self,
        channel: u8,
        data: &[u8],
        generation: u64,
    ) -> Result<usize, LinkError> {
        self.wait_in(generation, |st| match st.link_mut().write_stream(channel, data) {
            0 => None,
            n => {
                st.poked = true;
                Some(Ok(n))
            }
        })
        .await
    }

    /// Ends the byte stream on `channel`.
    pub async fn finish_stream(&self, channel: u8, generation: u64) -> Result<(), LinkError> {
        self.wait_in(generation, |st| st.link_mut().finish_stream(channel).then_some(Ok(()))).await
    }

    /// Aborts the byte stream on `channel` with `reason` for the peer (spec
    /// 8.3) and waits until the peer has it, at most `within`.
    pub async fn abort_stream(
        &self,
        channel: u8,
        reason: &[u8],
        generation: u64,
        within: Duration,
    ) -> Result<(), LinkError> {
        let abort = async {
            self.wait_in(generation, |st| st.link_mut().abort_stream(channel, reason).then_some(Ok(())))
                .await?;
            self.wait_in(generation, |st| st.link().is_send_idle().then_some(Ok(()))).await
        };
        match tokio::time::timeout(within, abort).await {
            Ok(r) => r,
            Err(_) => {
                Err(LinkError::Timeout(format!("{}: the peer did not take the reset", self.inner.label)))
            }
        }
    }

    /// Tells the peer that `n` more bytes (or an end of stream, as 1) of
    /// `channel`'s stream reached their destination here (spec 8.3).
    pub fn stream_written(&self, channel: u8, n: u32) {
        let mut st = self.inner.lock();
        let now = self.inner.now();
        st.link_mut().stream_written(now, channel, n);
        drop(st);
        self.inner.wake_driver.notify_one();
    }

    /// Stream bytes (and ends of stream) of `channel` the peer has not yet
    /// confirmed written at its end.
    pub fn stream_unconfirmed(&self, channel: u8) -> u32 {
        self.inner.lock().link().stream_unconfirmed(channel)
    }

    /// Waits until the peer has confirmed every byte (and end of stream) of
    /// `channel` written at its end.
    pub async fn wait_confirmed(&self, channel: u8, generation: u64) -> Result<(), LinkError> {
        self.wait_in(generation, |st| (st.link().stream_unconfirmed(channel) == 0).then_some(Ok(()))).await
    }

    /// Waits for a reset on `channel` that comes next, taking it; anything
    /// else there is left for whoever reads the channel next (a connection
    /// that reuses it). For a side whose stream on `channel` ended but that
    /// still waits for its written confirmations: the peer may yet abort.
    pub async fn recv_reset(&self, channel: u8, generation: u64) -> Result<Inbound, LinkError> {
        self.wait_in(generation, |st| {
            let q = st.inbound.get_mut(&channel)?;
            q.front().is_some_and(|f| f.reset).then(|| q.pop_front().map(Ok))?
        })
        .await
    }

    /// The next fragment on `channel`.
    pub async fn recv(&self, channel: u8, generation: u64) -> Result<Inbound, LinkError> {
        self.wait_in(generation, |st| st.inbound.get_mut(&channel).and_then(|q| q.pop_front()).map(Ok)).await
    }

    /// Link counters.
    pub fn stats(&self) -> Stats {
        self.inner.lock().node.ep.stats()
    }

    /// Winds down before the process exits, in two steps. First our last
    /// frames are acknowledged and the acknowledgement of the peer's last
    /// frames (with our written counts) is written out, at most `d`. Then, as
    /// TCP's TIME-WAIT, we stay while the peer still speaks — it may have lost
    /// our last acknowledgement and ask again — until it has been quiet for
    /// `quiet`, at most `d` more. `quiet` zero skips that (after a protocol
    /// whose last message both sides know of, like the file transfer's BYE).
    /// A TCP transport is then shut down in order rather than reset.
    pub async fn linger(&self, d: Duration, quiet: Duration) {
        self.inner.lock().finishing = true;
        let generation = self.generation();
        let done = self.wait(|st| {
            if st.generation != generation {
                return Some(Ok(()));
            }
            let written = self.inner.unwritten.load(Ordering::SeqCst) == 0;
            (st.link().is_send_idle() && !st.link().is_ack_owed() && written).then_some(Ok(()))
        });
        let _ = tokio::time::timeout(d, done).await;
        if !quiet.is_zero() {
            let end = tokio::time::Instant::now() + d;
            loop {
                let heard = self.inner.to_tokio(self.inner.lock().link().last_heard());
                let until = (heard + quiet).min(end);
                if tokio::time::Instant::now() >= until {
                    break;
                }
                tokio::time::sleep_until(until).await;
            }
        }
        self.close().await;
    }

    /// Shuts the transport down in order: our side ends after our last
    /// frames, and the peer's end is awaited a moment (a TCP socket closed
    /// with data unread would reset, destroying frames still on their way).
    pub async fn close(&self) {
        let closed = self.wait(|st| {
            let written = self.inner.unwritten.load(Ordering::SeqCst) == 0;
            (st.closed.is_some() || written).then_some(Ok(()))
        });
        let _ = tokio::time::timeout(CLOSE_DRAIN, closed).await;
        self.inner.close.notify_one();
        let done = self.wait(|st| st.closed.as_ref().map(|_| Ok(())));
        let _ = tokio::time::timeout(CLOSE_DRAIN + Duration::from_millis(100), done).await;
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        Duration::from_micros(self.stats().rto_us)
    }

    /// A human summary of the counters, for `--stats`.
    pub fn stats_report(&self) -> String {
        let s = self.stats();
        format!(
            "{}: frames sent {} received {}; retransmitted {} ({} bytes; {} fast, {} timeouts, {} needlessly); CRC errors {}, framing errors {}, duplicates {}; FEC: {} now, {} symbols corrected in {} frames, {} beyond repair; RTT {:.1} ms, RTO {:.1} ms; payload {} bytes; window in flight {}; delivered {} bytes",
            self.inner.label,
            s.frames_tx,
            s.frames_rx,
            s.retransmits,
            s.retransmitted_bytes,
            s.fast_retransmits,
            s.timeouts,
            s.spurious_retransmits,
            s.crc_errors,
            s.framing_errors,
            s.duplicates,
            s.fec_strength.name(),
            s.fec_corrected,
            s.fec_frames_rx,
            s.fec_failed,
            s.srtt_us as f64 / 1000.0,
            s.rto_us as f64 / 1000.0,
            s.payload_size,
            s.in_flight,
            s.delivered_bytes
        )
    }
}
