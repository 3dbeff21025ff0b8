//! The lossy relay between sender and receiver: receives every datagram sent
//! to it (through the shaped class), drops some by a seeded loss model, and
//! forwards the rest. It counts what the sender put on the path — the "bytes
//! on the wire" of the benchmark — and its own socket drops (which would
//! spoil a run: they are reported, never hidden).

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

const BATCH: usize = 64;

/// Which datagrams the path loses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Each datagram independently with this probability.
    Independent(f64),
    /// Gilbert-Elliott: in bursts of `mean` datagrams on average, `p` of all datagrams in the long run.
    Bursts {
        /// Long-run share lost.
        p: f64,
        /// Mean burst length in datagrams.
        mean: f64,
    },
}

impl Loss {
    /// The long-run share lost.
    pub fn p(&self) -> f64 {
        match *self {
            Loss::Independent(p) | Loss::Bursts { p, .. } => p,
        }
    }

    /// `5` (independent) or `10b10` (bursts of mean 10).
    pub fn label(&self) -> String {
        match *self {
            Loss::Independent(p) => format!("{}", p * 100.0),
            Loss::Bursts { p, mean } => format!("{}b{}", p * 100.0, mean),
        }
    }

    /// Parses a label back.
    pub fn parse(s: &str) -> Result<Loss, String> {
        let bad =
            || format!("bad loss condition {s:?}: write a percentage (5) or a percentage in bursts (10b10)");
        match s.split_once('b') {
            Some((p, m)) => {
                let (p, mean) = (p.parse::<f64>().map_err(|_| bad())?, m.parse::<f64>().map_err(|_| bad())?);
                (mean >= 1.0 && (0.0..100.0).contains(&p))
                    .then_some(Loss::Bursts { p: p / 100.0, mean })
                    .ok_or_else(bad)
            }
            None => {
                let p = s.parse::<f64>().map_err(|_| bad())?;
                (0.0..100.0).contains(&p).then_some(Loss::Independent(p / 100.0)).ok_or_else(bad)
            }
        }
    }
}

/// The seeded decision per datagram.
pub struct Dropper {
    loss: Loss,
    rng: Pcg64,
    bad: bool,
}

impl Dropper {
    /// The decisions of `loss` for `seed`.
    pub fn new(loss: Loss, seed: u64) -> Dropper {
        Dropper { loss, rng: Pcg64::seed_from_u64(seed), bad: false }
    }

    /// Whether the next datagram is lost.
    pub fn drop_next(&mut self) -> bool {
        match self.loss {
            Loss::Independent(p) => p > 0.0 && self.rng.random::<f64>() < p,
            Loss::Bursts { p, mean } => {
                // Stationary share in the bad state p; mean stay there `mean`.
                let leave = 1.0 / mean;
                let enter = p * leave / (1.0 - p);
                let u = self.rng.random::<f64>();
                self.bad = if self.bad { u >= leave } else { u < enter };
                self.bad
            }
        }
    }
}

/// What the relay saw.
#[derive(Debug, Default)]
pub struct Counts {
    /// Datagrams from the sender.
    pub datagrams_in: AtomicU64,
    /// Their payload bytes.
    pub bytes_in: AtomicU64,
    /// Datagrams the loss model dropped.
    pub dropped: AtomicU64,
    /// Datagrams the relay's own socket dropped (should stay 0).
    pub relay_overflow: AtomicU64,
    /// For each datagram forwarded, the payload bytes the sender had put on
    /// the path by then: the bytes a receiver needed once it says how many
    /// datagrams it had taken.
    pub forwarded_at: std::sync::Mutex<Vec<u64>>,
}

/// A running relay.
pub struct Relay {
    /// Its counters.
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Listens on `listen`, forwards to `to`, losing datagrams by `loss` seeded with `seed`.
    pub fn start(listen: SocketAddr, to: SocketAddr, loss: Loss, seed: u64) -> std::io::Result<Relay> {
        let sock = UdpSocket::bind(listen)?;
        // The relay is the path, not a bottleneck: a big buffer, and its drops counted.
        if socket::setsockopt(&sock, sockopt::RcvBufForce, &(64 << 20)).is_err() {
            // No CAP_NET_ADMIN (an unprivileged namespace): as much as rmem_max allows.
            let _ = socket::setsockopt(&sock, sockopt::RcvBuf, &(64 << 20));
        }
        let _ = socket::setsockopt(&sock, sockopt::RxqOvfl, &1);
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (counts.clone(), stop.clone());
        let mut dropper = Dropper::new(loss, seed);
        let thread = std::thread::Builder::new().name("relay".into()).spawn(move || {
            let mut bufs = vec![vec![0u8; 9216]; BATCH];
            let dest = SockaddrStorage::from(to);
            while !s.load(Ordering::Relaxed) {
                let mut headers =
                    MultiHeaders::<SockaddrStorage>::preallocate(BATCH, Some(nix::cmsg_space!(u32)));
                let lens: Vec<usize> = {
                    let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                        bufs.iter_mut().map(|b| [IoSliceMut::new(&mut b[..])]).collect();
                    match socket::recvmmsg(
                        sock.as_raw_fd(),
                        &mut headers,
                        slices.iter_mut(),
                        MsgFlags::MSG_WAITFORONE,
                        None,
                    ) {
                        Ok(res) => res
                            .map(|m| {
                                if let Ok(cm) = m.cmsgs() {
                                    for x in cm {
                                        if let ControlMessageOwned::RxqOvfl(n) = x {
                                            c.relay_overflow.fetch_max(u64::from(n), Ordering::Relaxed);
                                        }
                                    }
                                }
                                m.bytes
                            })
                            .collect(),
                        Err(_) => continue,
                    }
                };
                // A short batch: let a few more arrive before the next call
                // (a wake-up per datagram would cost the relay most of a core).
                if lens.len() < BATCH / 4 {
                    std::thread::sleep(Duration::from_micros(300));
                }
                let mut keep = Vec::with_capacity(lens.len());
                let mut marks = Vec::with_capacity(lens.len());
                for (i, n) in lens.into_iter().enumerate() {
                    c.datagrams_in.fetch_add(1, Ordering::Relaxed);
                    let sent = c.bytes_in.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                    if dropper.drop_next() {
                        c.dropped.fetch_add(1, Ordering::Relaxed);
                    } else {
                        keep.push((i, n));
                        marks.push(sent);
                    }
                }
                if let Ok(mut m) = c.forwarded_at.lock() {
                    m.extend(marks);
                }
                if keep.is_empty() {
                    continue;
                }
                let slices: Vec<[IoSlice<'_>; 1]> =
                    keep.iter().map(|&(i, n)| [IoSlice::new(&bufs[i][..n])]).collect();
                let addrs = vec![Some(dest); slices.len()];
                let mut out = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
                let _ = socket::sendmmsg(sock.as_raw_fd(), &mut out, &slices, &addrs, [], MsgFlags::empty());
            }
        })?;
        Ok(Relay { counts, stop, thread: Some(thread) })
    }

    /// Payload bytes the sender has put on the path so far.
    pub fn bytes_in(&self) -> u64 {
        self.counts.bytes_in.load(Ordering::Relaxed)
    }

    /// Payload bytes the sender had put on the path when the relay forwarded
    /// its `n`-th datagram (`None` if it forwarded fewer).
    pub fn bytes_when_forwarded(&self, n: u64) -> Option<u64> {
        let m = self.counts.forwarded_at.lock().ok()?;
        m.get(usize::try_from(n).ok()?.checked_sub(1)?).copied()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_model_loses_its_share_in_bursts_of_its_mean() {
        let mut d =
            Dropper { loss: Loss::Bursts { p: 0.1, mean: 10.0 }, rng: Pcg64::seed_from_u64(1), bad: false };
        let (mut lost, mut bursts, mut prev) = (0u32, 0u32, false);
        for _ in 0..1_000_000 {
            let x = d.drop_next();
            lost += u32::from(x);
            bursts += u32::from(x && !prev);
            prev = x;
        }
        let share = f64::from(lost) / 1e6;
        let mean = f64::from(lost) / f64::from(bursts);
        assert!((0.095..0.105).contains(&share), "{share}");
        assert!((9.0..11.0).contains(&mean), "{mean}");
        assert_eq!(Loss::parse("10b10"), Ok(Loss::Bursts { p: 0.1, mean: 10.0 }));
        assert_eq!(Loss::parse("5"), Ok(Loss::Independent(0.05)));
        assert!(Loss::parse("x").is_err());
    }
}
