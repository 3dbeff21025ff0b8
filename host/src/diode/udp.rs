//! UDP for the diode at network speed: a receive buffer sized for the rate,
//! a receive thread that drains the socket with `recvmmsg` so decoding and
//! hashing never hold it up, the kernel's own drop count (`SO_RXQ_OVFL`),
//! and batched sends with `sendmmsg`.
//!
//! Why a thread: at 300 Mbit/s a 1400-byte datagram arrives every 37 µs and
//! the kernel's default buffer (~208 KB) holds about 4 ms of them; decoding a
//! block or hashing a file takes longer, and every datagram that arrives
//! meanwhile was dropped before this thread existed (issue 12).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage};

/// Datagrams read or written per system call.
pub const BATCH: usize = 64;
/// Pause of the receive thread after a short batch.
pub const PAUSE: std::time::Duration = std::time::Duration::from_micros(500);
/// Largest datagram read (a diode frame is at most 9216 bytes).
const DATAGRAM: usize = 9216;
/// Fewest bytes of receive buffer asked for, whatever the rate.
pub const MIN_RECV_BUFFER: usize = 16 << 20;
/// Most bytes asked for by default.
pub const MAX_RECV_BUFFER: usize = 512 << 20;
/// Seconds of traffic the receive buffer should hold: covers the receive
/// thread losing its core for a while on a busy machine (the benchmark saw
/// it starved for more than the 0.2 s an 8 MiB buffer holds at 300 Mbit/s).
pub const BUFFER_SECONDS: f64 = 1.0;

/// The receive buffer wanted for a line of `bits_per_s`.
pub fn buffer_for_rate(bits_per_s: u64) -> usize {
    ((bits_per_s as f64 / 8.0 * BUFFER_SECONDS) as usize).clamp(MIN_RECV_BUFFER, MAX_RECV_BUFFER)
}

/// What the socket's receive buffer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvBuffer {
    /// Bytes asked for.
    pub wanted: usize,
    /// Bytes the kernel reports (it doubles what is set, for its bookkeeping).
    pub got: usize,
    /// Whether SO_RCVBUFFORCE (CAP_NET_ADMIN) was allowed.
    pub forced: bool,
}

impl RecvBuffer {
    /// Whether the buffer is smaller than wanted (the kernel's doubling counted in).
    pub fn too_small(&self) -> bool {
        self.got < self.wanted
    }

    /// The one line diode-rx prints about it.
    pub fn describe(&self) -> String {
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        if self.too_small() {
            format!(
                "receive buffer {:.1} MiB of the {:.1} MiB wanted: datagrams will be dropped here at high rates. \
                 Raise the limit: sysctl -w net.core.rmem_max={} (or give diode-rx CAP_NET_ADMIN)",
                mib(self.got),
                mib(self.wanted),
                self.wanted
            )
        } else {
            format!(
                "receive buffer {:.1} MiB{}",
                mib(self.got),
                if self.forced { " (SO_RCVBUFFORCE)" } else { "" }
            )
        }
    }
}

/// Asks for a receive buffer of `wanted` bytes: SO_RCVBUFFORCE where
/// permitted (it ignores net.core.rmem_max), else SO_RCVBUF, which the kernel
/// caps at rmem_max.
pub fn size_recv_buffer(sock: &UdpSocket, wanted: usize) -> RecvBuffer {
    // The kernel doubles what is set; ask for half so `got` lands near `wanted`.
    let ask = wanted.div_ceil(2);
    let forced = socket::setsockopt(sock, sockopt::RcvBufForce, &ask).is_ok();
    if !forced {
        let _ = socket::setsockopt(sock, sockopt::RcvBuf, &ask);
    }
    let got = socket::getsockopt(sock, sockopt::RcvBuf).unwrap_or(0);
    RecvBuffer { wanted, got, forced }
}

/// Counters of the receive thread, shared with the receiver.
#[derive(Debug, Default)]
pub struct RecvCounters {
    /// Datagrams the kernel dropped because the socket buffer was full
    /// (SO_RXQ_OVFL): lost on this host, not on the path.
    pub kernel_drops: AtomicU64,
    /// Datagrams this process dropped because its queue was over budget.
    pub queue_drops: AtomicU64,
    /// Bytes waiting in the queue for the receiver.
    pub queued: AtomicU64,
    /// Datagrams received.
    pub datagrams: AtomicU64,
}

impl RecvCounters {
    /// Datagrams lost on this host, whichever way.
    pub fn local_drops(&self) -> u64 {
        self.kernel_drops.load(Ordering::Relaxed) + self.queue_drops.load(Ordering::Relaxed)
    }
}

/// A batch of datagrams handed from the receive thread to the receiver.
#[derive(Debug)]
pub struct Batch {
    /// When the receive thread took them from the socket: the receiver's
    /// tail (from the datagram that completed a file to the file published)
    /// is measured from here, the time spent in the queue included.
    pub at: std::time::Instant,
    /// The datagrams.
    pub datagrams: Vec<Vec<u8>>,
}

/// The receive thread: drains `sock` with `recvmmsg` into `out` until `stop`
/// is set, keeping at most `budget` bytes queued (beyond that datagrams are
/// dropped and counted rather than let the kernel drop them unseen).
pub fn spawn_receiver(
    sock: UdpSocket,
    out: tokio::sync::mpsc::UnboundedSender<Batch>,
    counters: Arc<RecvCounters>,
    stop: Arc<AtomicBool>,
    budget: u64,
) -> io::Result<std::thread::JoinHandle<()>> {
    // A timeout so the thread sees `stop`; the drop counter on every datagram.
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let _ = socket::setsockopt(&sock, sockopt::RxqOvfl, &1);
    std::thread::Builder::new().name("diode-rx-udp".into()).spawn(move || {
        let mut bufs = vec![vec![0u8; DATAGRAM]; BATCH];
        while !stop.load(Ordering::Relaxed) {
            // Fresh headers every call: the kernel shrinks each message's
            // control length to what it wrote, and nix does not restore it,
            // so reused headers would truncate the drop count (MSG_CTRUNC).
            let mut headers =
                MultiHeaders::<SockaddrStorage>::preallocate(BATCH, Some(nix::cmsg_space!(u32)));
            let got = {
                let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                    bufs.iter_mut().map(|b| [IoSliceMut::new(&mut b[..])]).collect();
                match socket::recvmmsg(
                    sock.as_raw_fd(),
                    &mut headers,
                    slices.iter_mut(),
                    MsgFlags::MSG_WAITFORONE,
                    None,
                ) {
                    Ok(results) => {
                        let mut lens = Vec::with_capacity(BATCH);
                        for msg in results {
                            if let Ok(cmsgs) = msg.cmsgs() {
                                for c in cmsgs {
                                    if let ControlMessageOwned::RxqOvfl(n) = c {
                                        counters.kernel_drops.fetch_max(u64::from(n), Ordering::Relaxed);
                                    }
                                }
                            }
                            lens.push(msg.bytes);
                        }
                        lens
                    }
                    Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        tracing::debug!("udp receive: {e}");
                        continue;
                    }
                }
            };
            let mut batch = Batch { at: std::time::Instant::now(), datagrams: Vec::with_capacity(got.len()) };
            for (i, n) in got.into_iter().enumerate() {
                if counters.queued.load(Ordering::Relaxed) > budget {
                    counters.queue_drops.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                counters.queued.fetch_add(n as u64, Ordering::Relaxed);
                batch.datagrams.push(bufs[i][..n].to_vec());
            }
            counters.datagrams.fetch_add(batch.datagrams.len() as u64, Ordering::Relaxed);
            let short = batch.datagrams.len() < BATCH / 4;
            if !batch.datagrams.is_empty() && out.send(batch).is_err() {
                return;
            }
            if short {
                // Keeping up datagram by datagram costs a wake-up each (a third
                // of the receiver's CPU at 300 Mbit/s): let a few accumulate in
                // the socket buffer, which holds far more than this pause.
                std::thread::sleep(PAUSE);
            }
        }
    })
}

/// Sends datagrams to one address in batches of up to [`BATCH`].
pub struct BatchSender {
    sock: UdpSocket,
    to: SockaddrStorage,
    headers: MultiHeaders<SockaddrStorage>,
}

impl BatchSender {
    /// A sender from `sock` to `to`.
    pub fn new(sock: UdpSocket, to: SocketAddr) -> BatchSender {
        BatchSender { sock, to: SockaddrStorage::from(to), headers: MultiHeaders::preallocate(BATCH, None) }
    }

    /// Sends `frames` (at most [`BATCH`] at a time), each as one datagram.
    /// A datagram the kernel refuses (nobody listening yet, a full queue) is
    /// not retried: on a diode nothing would tell us it mattered.
    pub fn send(&mut self, frames: &[&[u8]]) {
        let mut rest = frames;
        while !rest.is_empty() {
            let n = rest.len().min(BATCH);
            let slices: Vec<[IoSlice<'_>; 1]> = rest[..n].iter().map(|f| [IoSlice::new(f)]).collect();
            let addrs = vec![Some(self.to); n];
            match socket::sendmmsg(
                self.sock.as_raw_fd(),
                &mut self.headers,
                &slices,
                &addrs,
                [],
                MsgFlags::empty(),
            ) {
                Ok(res) => {
                    let sent = res.count().max(1);
                    rest = &rest[sent.min(n)..];
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    // ECONNREFUSED from an earlier datagram, ENOBUFS: skip one and go on.
                    tracing::debug!("udp send: {e}");
                    rest = &rest[1..];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_sized_and_reported_and_a_small_one_is_called_small() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = size_recv_buffer(&s, 4 << 20);
        assert!(b.got > 0);
        // As root SO_RCVBUFFORCE works and the size is met; otherwise rmem_max decides.
        if b.forced {
            assert!(!b.too_small(), "{b:?}");
        }
        let small = RecvBuffer { wanted: 8 << 20, got: 212_992, forced: false };
        assert!(small.too_small() && small.describe().contains("sysctl -w net.core.rmem_max=8388608"));
    }

    #[test]
    fn drops_in_a_full_socket_buffer_are_counted_as_local() {
        // A tiny buffer, a burst nobody reads, then the receive thread: the
        // kernel's drop count arrives with the next datagram.
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = socket::setsockopt(&rx, sockopt::RcvBuf, &2048);
        let _ = socket::setsockopt(&rx, sockopt::RxqOvfl, &1);
        let to = rx.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            tx.send_to(&[7u8; 1000], to).unwrap();
        }
        let (out, mut got) = tokio::sync::mpsc::unbounded_channel();
        let counters = Arc::new(RecvCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let t = spawn_receiver(rx, out, counters.clone(), stop.clone(), 1 << 30).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        tx.send_to(&[8u8; 10], to).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut seen = 0;
        while seen == 0 || counters.local_drops() == 0 {
            assert!(std::time::Instant::now() < deadline, "no drop counted: {counters:?}");
            while let Ok(b) = got.try_recv() {
                seen += b.datagrams.len();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        assert!(counters.kernel_drops.load(Ordering::Relaxed) > 100, "{counters:?}");
        assert!(seen < 200, "{seen}");
    }
}
