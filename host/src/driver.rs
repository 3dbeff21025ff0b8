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
//! survives the gap.

use crate::address::Address;
use crate::transport::{self, Duplex, OpenError, Parity, SerialSettings};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use strand_link::{Config, Event, Instant, Link, PacketId, SendError, Stats};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf};
use tokio::sync::{mpsc, Notify};

/// Window of the host's link, in frames.
pub const W: usize = 256;
/// Frame capacity of the host's link, in bytes: 8 KiB halves the per-frame
/// overhead of 4 KiB frames on a clean fast line (linkbench, 2 Mbit/s clean:
/// 99.04% against 98.81% of the line) and still leaves a keystroke at most
/// ~41 ms behind a full frame at 2 Mbit/s; slower lines cut shorter frames
/// (`Config::for_serial_line`).
pub const N: usize = 8192;
/// The host's link: ~4 MiB, fills a 2 Mbit/s line even with 16 ms of USB latency.
pub type HostLink = Link<W, N>;

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

/// For a command whose peer may still be sending when it is done (`pipe`):
/// how long to stay after our last frames are acknowledged, so a last frame
/// of the peer's that is on its way still gets its acknowledgement.
pub const LINGER_GRACE: Duration = Duration::from_millis(20);

/// How often a failed serial or TCP transport is retried.
const REOPEN_EVERY: Duration = Duration::from_millis(500);

/// One fragment delivered on a channel.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The payload.
    pub data: Vec<u8>,
    /// More fragments of the same packet follow.
    pub more: bool,
    /// End of the byte stream on this channel.
    pub fin: bool,
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
    /// Waited too long.
    #[error("{0}")]
    Timeout(String),
}

struct State {
    link: Box<HostLink>,
    inbound: HashMap<u8, VecDeque<Inbound>>,
    /// After a peer restart, old-session fragments are dropped per channel until
    /// the first new-session one (which carries the restart mark).
    stale: [bool; 256],
    closed: Option<String>,
    generation: u64,
    transport_up: bool,
    version_mismatch: Option<(u8, u8)>,
    link_down: bool,
    /// The command is done and only lingers: a closing transport is expected.
    finishing: bool,
    /// The application changed the link (queued data) without finishing its
    /// operation: the driver must look, or the data waits for the next timer.
    poked: bool,
}

struct Inner {
    state: Mutex<State>,
    /// Frames handed to the writer task and not yet written out.
    unwritten: AtomicUsize,
    wake_driver: Notify,
    wake_app: Notify,
    start: std::time::Instant,
    label: String,
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

/// Builds the ~4 MiB link on a thread with stack to spare: it is constructed
/// by value before it is boxed.
pub fn build_link(cfg: Config, seed: u64) -> Box<HostLink> {
    std::thread::Builder::new()
        .name("strand-link-init".into())
        .stack_size(64 << 20)
        .spawn(move || Box::new(HostLink::new(cfg, Instant::ZERO, seed)))
        .expect("spawn a thread")
        .join()
        .expect("link construction does not panic")
}

/// Opens `addr` and starts driving a link over it.
pub async fn start(addr: &Address, serial: &SerialSettings, cfg: Config) -> Result<LinkHandle, OpenError> {
    let transport = transport::open(addr, serial).await?;
    Ok(start_on(transport, addr.clone(), *serial, cfg))
}

/// Starts driving a link over an already open transport.
pub fn start_on(
    transport: Box<dyn Duplex>,
    addr: Address,
    serial: SerialSettings,
    cfg: Config,
) -> LinkHandle {
    let link = build_link(cfg, os_seed());
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            link,
            inbound: HashMap::new(),
            stale: [false; 256],
            closed: None,
            generation: 0,
            transport_up: true,
            version_mismatch: None,
            link_down: false,
            finishing: false,
            poked: false,
        }),
        wake_driver: Notify::new(),
        wake_app: Notify::new(),
        unwritten: AtomicUsize::new(0),
        start: std::time::Instant::now(),
        label: addr.to_string(),
    });
    tokio::spawn(drive(inner.clone(), transport, addr, serial));
    LinkHandle { inner }
}

/// The open half of a transport: reader here, writer in its own task.
struct Conn {
    rd: ReadHalf<Box<dyn Duplex>>,
    tx: mpsc::Sender<Vec<u8>>,
    failed: Arc<AtomicBool>,
}

impl Conn {
    fn new(t: Box<dyn Duplex>, inner: &Arc<Inner>) -> Conn {
        let (rd, mut wr) = tokio::io::split(t);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let (f, inner) = (failed.clone(), inner.clone());
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                let ok = wr.write_all(&frame).await.is_ok() && wr.flush().await.is_ok();
                inner.unwritten.fetch_sub(1, Ordering::SeqCst);
                if !ok {
                    f.store(true, Ordering::SeqCst);
                    inner.wake_driver.notify_one();
                    return;
                }
                // Room in the queue: the core may hand out the next frame.
                inner.wake_driver.notify_one();
            }
        });
        Conn { rd, tx, failed }
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

    /// Runs timers, hands frames to the writer, publishes events and moves
    /// deliveries to the channel queues.
    fn service(&self, st: &mut State, conn: Option<&Conn>) {
        let now = self.now();
        st.link.handle_timeout(now);
        loop {
            if conn.is_some_and(|c| c.tx.capacity() == 0) {
                break;
            }
            let mut frame = vec![0u8; HostLink::MAX_WIRE];
            let Some(n) = st.link.poll_transmit(now, &mut frame) else { break };
            frame.truncate(n);
            // With the transport down the frame is lost, like on a pulled cable;
            // the ARQ sends it again once the line is back.
            if let Some(c) = conn {
                self.unwritten.fetch_add(1, Ordering::SeqCst);
                if c.tx.try_send(frame).is_err() {
                    self.unwritten.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        while let Some(ev) = st.link.poll_event() {
            match ev {
                Event::PeerRestarted => {
                    st.generation += 1;
                    // Fragments of the old session, here or still in the core,
                    // belong to operations that just failed; none may reach the next.
                    st.inbound.clear();
                    st.stale = [true; 256];
                    tracing::warn!("{}: the peer restarted; starting a new session", self.label);
                }
                Event::VersionMismatch { peer_min, peer_max } => {
                    st.version_mismatch = Some((peer_min, peer_max));
                    tracing::error!("{}: {}", self.label, version_message(peer_min, peer_max));
                }
                Event::LinkDown => {
                    st.link_down = true;
                    tracing::warn!(
                        "{}: nothing heard from the peer for {:?}",
                        self.label,
                        Config::default().link_timeout
                    );
                }
                Event::LinkUp => {
                    st.link_down = false;
                    tracing::info!("{}: the peer is heard again", self.label);
                }
                Event::Connected { peer } => {
                    tracing::info!("{}: connected (peer session {peer:08x})", self.label)
                }
                _ => tracing::trace!("{}: {ev:?}", self.label),
            }
        }
        while let Some(ch) = st.link.peek_channel() {
            if st.inbound.get(&ch).is_some_and(|q| q.len() >= INBOUND_CAP) {
                break;
            }
            let (inbound, stale) = (&mut st.inbound, &mut st.stale);
            st.link.recv(|d, p| {
                if stale[ch as usize] && !d.restart {
                    return; // the rest of an old session's packet or stream
                }
                stale[ch as usize] = false;
                inbound.entry(ch).or_default().push_back(Inbound {
                    data: p.to_vec(),
                    more: d.more,
                    fin: d.fin,
                });
            });
        }
    }
}

fn version_message(peer_min: u8, peer_max: u8) -> String {
    format!(
        "the peer speaks strand protocol version {} but this strand speaks version {}: run the same strand version on both ends",
        if peer_min == peer_max { peer_min.to_string() } else { format!("{peer_min} to {peer_max}") },
        strand_link::wire::VERSION
    )
}

async fn drive(inner: Arc<Inner>, transport: Box<dyn Duplex>, addr: Address, serial: SerialSettings) {
    let mut conn = Some(Conn::new(transport, &inner));
    let mut buf = vec![0u8; 64 * 1024];
    let reopenable = addr.reopenable();
    loop {
        let deadline = inner.lock().link.poll_timeout().map(|t| inner.to_tokio(t));
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let failed_writer = conn.as_ref().is_some_and(|c| c.failed.load(Ordering::SeqCst));
        let mut lost: Option<String> = failed_writer.then(|| "write failed".to_string());
        if lost.is_none() {
            tokio::select! {
                r = async { conn.as_mut().expect("checked").rd.read(&mut buf).await }, if conn.is_some() => {
                    match r {
                        Ok(0) => lost = Some("closed by the other end".into()),
                        Ok(n) => {
                            let now = inner.now();
                            inner.lock().link.handle_input(now, &buf[..n]);
                        }
                        Err(e) => lost = Some(e.to_string()),
                    }
                }
                _ = tokio::time::sleep(REOPEN_EVERY), if conn.is_none() => {
                    if let Ok(t) = transport::open(&addr, &serial).await {
                        tracing::info!("{}: reopened", inner.label);
                        conn = Some(Conn::new(t, &inner));
                        let mut st = inner.lock();
                        st.link.reset_input();
                        st.transport_up = true;
                    }
                }
                _ = sleep => {}
                _ = inner.wake_driver.notified() => {}
            }
        }
        if let Some(why) = lost {
            conn = None;
            let mut st = inner.lock();
            st.transport_up = false;
            if st.finishing {
                tracing::debug!("{}: {why} while finishing", inner.label);
                st.closed = Some(format!("{}: {why}", inner.label));
                drop(st);
                inner.wake_app.notify_waiters();
                return;
            } else if reopenable {
                tracing::warn!("{}: {why}; reopening every {REOPEN_EVERY:?} until it is back", inner.label);
            } else {
                st.closed = Some(format!("{}: {why}", inner.label));
                drop(st);
                inner.wake_app.notify_waiters();
                return;
            }
        }
        {
            let mut st = inner.lock();
            inner.service(&mut st, conn.as_ref());
        }
        inner.wake_app.notify_waiters();
    }
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

    /// This side's and the peer's session ids (the peer's once connected).
    pub fn sessions(&self) -> (u32, Option<u32>) {
        let st = self.inner.lock();
        (st.link.session(), st.link.peer_session())
    }

    /// The session generation: it changes when the peer restarts.
    pub fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    /// Waits for the handshake; explains what was heard if it does not come.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), LinkError> {
        let wait = self.wait(|st| st.link.is_connected().then_some(Ok(())));
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
        let s = st.link.stats();
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

    /// Waits until the peer is heard (connected and not down); fails after `timeout`.
    pub async fn wait_up(&self, timeout: Duration) -> Result<(), LinkError> {
        let wait = self.wait(|st| (st.link.is_up() && st.transport_up).then_some(Ok(())));
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(LinkError::Timeout(format!(
                "{}: the peer did not come back within {timeout:?}",
                self.inner.label
            ))),
        }
    }

    /// Sends a packet, waiting while the window is full. Fails if the session
    /// changed since `generation`.
    pub async fn send(&self, channel: u8, data: &[u8], generation: u64) -> Result<PacketId, LinkError> {
        self.wait(|st| {
            if st.generation != generation {
                return Some(Err(LinkError::PeerRestarted));
            }
            match st.link.send(channel, data) {
                Ok(id) => Some(Ok(id)),
                Err(SendError::WouldBlock) => None,
                Err(SendError::TooLarge) => Some(Err(LinkError::Closed(format!(
                    "a {}-byte packet is too large for this link",
                    data.len()
                )))),
            }
        })
        .await
    }

    /// Writes all of `data` to the byte stream on `channel`.
    pub async fn write_stream(&self, channel: u8, data: &[u8], generation: u64) -> Result<(), LinkError> {
        let mut at = 0;
        self.wait(|st| {
            if st.generation != generation {
                return Some(Err(LinkError::PeerRestarted));
            }
            let n = st.link.write_stream(channel, &data[at..]);
            at += n;
            st.poked |= n > 0;
            (at == data.len()).then_some(Ok(()))
        })
        .await
    }

    /// Ends the byte stream on `channel`.
    pub async fn finish_stream(&self, channel: u8, generation: u64) -> Result<(), LinkError> {
        self.wait(|st| {
            if st.generation != generation {
                return Some(Err(LinkError::PeerRestarted));
            }
            st.link.finish_stream(channel).then_some(Ok(()))
        })
        .await
    }

    /// The next fragment on `channel`.
    pub async fn recv(&self, channel: u8, generation: u64) -> Result<Inbound, LinkError> {
        self.wait(|st| {
            if st.generation != generation {
                return Some(Err(LinkError::PeerRestarted));
            }
            st.inbound.get_mut(&channel).and_then(|q| q.pop_front()).map(Ok)
        })
        .await
    }

    /// Waits until everything sent was acknowledged by the peer.
    pub async fn wait_send_idle(&self, generation: u64) -> Result<(), LinkError> {
        self.wait(|st| {
            if st.generation != generation {
                return Some(Err(LinkError::PeerRestarted));
            }
            st.link.is_send_idle().then_some(Ok(()))
        })
        .await
    }

    /// Link counters.
    pub fn stats(&self) -> Stats {
        self.inner.lock().link.stats()
    }

    /// Whether the peer has been heard within the link timeout.
    pub fn is_up(&self) -> bool {
        let st = self.inner.lock();
        st.link.is_up() && st.transport_up
    }

    /// Winds down before the process exits: waits (at most `d`) until our last
    /// frames are acknowledged and the acknowledgement of the peer's last
    /// frames is written out, then `grace` more for a frame the peer may still
    /// send ([`LINGER_GRACE`]; zero after a protocol that ends with both sides
    /// knowing it, like the file transfer's BYE). A whole round trip of waiting
    /// would cost a short transfer a share of its time.
    pub async fn linger(&self, d: Duration, grace: Duration) {
        self.inner.lock().finishing = true;
        let generation = self.generation();
        let done = self.wait(|st| {
            if st.generation != generation {
                return Some(Ok(()));
            }
            let written = self.inner.unwritten.load(Ordering::SeqCst) == 0;
            (st.link.is_send_idle() && !st.link.is_ack_owed() && written).then_some(Ok(()))
        });
        let _ = tokio::time::timeout(d, done).await;
        tokio::time::sleep(grace).await;
    }

    /// Runs `op`, failing if the peer stays silent (link down) longer than
    /// `give_up`: a peer that is gone must not leave a command hanging.
    pub async fn guarded<T>(
        &self,
        give_up: Duration,
        op: impl std::future::Future<Output = Result<T, LinkError>>,
    ) -> Result<T, LinkError> {
        tokio::pin!(op);
        let mut down_since: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                r = &mut op => return r,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    if self.is_up() {
                        down_since = None;
                    } else if down_since.get_or_insert_with(tokio::time::Instant::now).elapsed() > give_up {
                        return Err(LinkError::Timeout(format!(
                            "{}: nothing heard from the peer for {give_up:?}; it is gone",
                            self.inner.label
                        )));
                    }
                }
            }
        }
    }

    /// A human summary of the counters, for `--stats`.
    pub fn stats_report(&self) -> String {
        let s = self.stats();
        format!(
            "{}: frames sent {} received {}; retransmitted {} ({} fast, {} timeouts, {} needlessly); CRC errors {}, framing errors {}, duplicates {}; FEC: {} now, {} symbols corrected in {} frames, {} beyond repair; RTT {:.1} ms, RTO {:.1} ms; payload {} bytes; window in flight {}; delivered {} bytes",
            self.inner.label,
            s.frames_tx,
            s.frames_rx,
            s.retransmits,
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
