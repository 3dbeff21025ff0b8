//! `strand linkem`: a real-time serial line emulator joining two pseudo-terminals.
//!
//! A program opens end A (a pty slave), another opens end B, and every byte written at one end reaches the
//! other the way it would over a real serial cable: serialised at the line rate (8N1, 10 bits per byte),
//! delayed by the latency, and damaged by the impairments of [`strand_link::sim::Direction`] — the same
//! seeded model the simulation tests and the benchmark use, so a seed reproduces the damage.
//!
//! How it works, per direction (A -> B and B -> A):
//! - The emulator reads from the source pty master only as many bytes as the direction's transmit buffer
//!   (`--fifo`, the UART FIFO plus driver buffer) has room for at that instant, so a writer that runs ahead of
//!   the wire is held back by the ordinary pty flow control. The kernel's own pty buffer sits in front of
//!   that (3-7 KiB measured on Linux), so a writer's `write` calls return that much plus `--fifo` ahead of
//!   the wire; the rate at which bytes *arrive* is the line rate.
//! - The bytes read are written into the `Direction` in slices of about a millisecond of line time, so they
//!   arrive in a steady trickle (as from a UART) rather than in FIFO-sized lumps.
//! - At each slice's arrival time the (possibly damaged) bytes are written into the destination pty master.
//!
//! Each pty slave is in raw mode and the emulator keeps its own slave descriptor open, so no line discipline
//! touches the bytes and a master never sees a hangup while no client has the slave open: bytes sent toward
//! an end nobody has opened wait in the pty buffer.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, ControlFlags, InputFlags, SetArg};
use nix::sys::time::TimeSpec;
use strand_link::sim::{Direction, GilbertElliott, LineConfig, LineCounters};

/// Options of `strand linkem` (also used in-process by `strand demo` and tests).
#[derive(clap::Args, Debug, Clone)]
pub struct LinkemArgs {
    /// Line rate in bit/s (8N1: 10 bits per byte).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u64,
    /// Independent bit-error rate.
    #[arg(long, default_value_t = 0.0)]
    pub ber: f64,
    /// Gilbert-Elliott bursts: P_ENTER,P_LEAVE,BER_BAD (per bit), on top of --ber.
    #[arg(long)]
    pub burst: Option<String>,
    /// Probability per byte that a byte is dropped.
    #[arg(long, default_value_t = 0.0)]
    pub drop: f64,
    /// Probability per byte that a byte is duplicated.
    #[arg(long, default_value_t = 0.0)]
    pub dup: f64,
    /// Probability per byte that a random byte is inserted.
    #[arg(long, default_value_t = 0.0)]
    pub insert: f64,
    /// One-way latency in milliseconds, added after serialisation.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// UART FIFO + driver buffer in bytes: how far a writer can run ahead of the wire.
    #[arg(long, default_value_t = 4096)]
    pub fifo: usize,
    /// Cut the B -> A direction (a one-way line: data diode).
    #[arg(long)]
    pub one_way: bool,
    /// Seed of the impairments (the same seed gives the same damage for the same bytes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Create a symlink to end A's pty at this path (replaced if it exists).
    #[arg(long)]
    pub link_a: Option<PathBuf>,
    /// Create a symlink to end B's pty at this path.
    #[arg(long)]
    pub link_b: Option<PathBuf>,
}

impl Default for LinkemArgs {
    /// The command-line defaults: a clean 115200 bit/s line, both ways, no symlinks.
    fn default() -> Self {
        LinkemArgs {
            baud: 115_200,
            ber: 0.0,
            burst: None,
            drop: 0.0,
            dup: 0.0,
            insert: 0.0,
            latency_ms: 0,
            fifo: 4096,
            one_way: false,
            seed: 1,
            link_a: None,
            link_b: None,
        }
    }
}

/// Bytes that arrived for an end but could not be written into its pty yet (its client is not reading and
/// the pty buffer is full) are kept up to this many; beyond it newer bytes are dropped and counted as
/// dropped, as a real receiving UART overruns when nobody empties it.
const MAX_PENDING: usize = 64 * 1024;

/// Parses `--burst P_ENTER,P_LEAVE,BER_BAD`.
fn parse_burst(s: &str) -> Result<GilbertElliott> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [enter, leave, bad] = parts[..] else {
        bail!("--burst wants P_ENTER,P_LEAVE,BER_BAD (three numbers), got {s:?}");
    };
    let num = |what: &str, v: &str| -> Result<f64> {
        let x: f64 = v.parse().with_context(|| format!("--burst {what}: {v:?} is not a number"))?;
        ensure!((0.0..=1.0).contains(&x), "--burst {what} must be a probability in [0, 1], got {x}");
        Ok(x)
    };
    let g = GilbertElliott {
        p_enter_bad: num("P_ENTER", enter)?,
        p_leave_bad: num("P_LEAVE", leave)?,
        ber_bad: num("BER_BAD", bad)?,
    };
    ensure!(g.p_leave_bad > 0.0 || g.p_enter_bad == 0.0, "--burst P_LEAVE must be > 0 (a burst must end)");
    Ok(g)
}

/// The line model of both directions: (A -> B, B -> A).
fn line_configs(args: &LinkemArgs) -> Result<(LineConfig, LineConfig)> {
    ensure!(args.baud > 0, "--baud must be > 0");
    ensure!(args.fifo > 0, "--fifo must be > 0");
    for (name, p) in
        [("--ber", args.ber), ("--drop", args.drop), ("--dup", args.dup), ("--insert", args.insert)]
    {
        ensure!((0.0..=1.0).contains(&p), "{name} must be a probability in [0, 1], got {p}");
    }
    let burst = args.burst.as_deref().map(parse_burst).transpose()?;
    let ab = LineConfig {
        bit_rate: args.baud,
        bits_per_byte: 10,
        latency: Duration::from_millis(args.latency_ms),
        buffer: args.fifo,
        ber: args.ber,
        burst,
        drop_rate: args.drop,
        dup_rate: args.dup,
        insert_rate: args.insert,
        truncate_rate: 0.0,
        outages: Vec::new(),
        cut: false,
    };
    let ba = LineConfig { cut: args.one_way, ..ab.clone() };
    Ok((ab, ba))
}

/// Seed of the B -> A direction, derived from `--seed` so the two directions draw independent streams.
fn seed_ba(seed: u64) -> u64 {
    seed ^ 0x9e37_79b9_7f4a_7c15
}

/// Locks a direction; a poisoned lock (a panicked pump thread) still holds valid counters.
fn lock(dir: &Mutex<Direction>) -> MutexGuard<'_, Direction> {
    dir.lock().unwrap_or_else(|e| e.into_inner())
}

/// Nanoseconds of line time since `start`.
fn now_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `ppoll(2)` with a nanosecond timeout (`None`: wait forever). EINTR counts as a (spurious) wakeup.
fn wait_fds(fds: &mut [PollFd<'_>], timeout_ns: Option<u64>) -> nix::Result<()> {
    let ts = timeout_ns.map(|ns| TimeSpec::from_duration(Duration::from_nanos(ns)));
    match ppoll(fds, ts, None) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The events `ppoll` reported for `fd` (none if it reported nothing).
fn revents(fd: &PollFd<'_>) -> PollFlags {
    fd.revents().unwrap_or(PollFlags::empty())
}

fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> nix::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    let flags = if on { flags | OFlag::O_NONBLOCK } else { flags & !OFlag::O_NONBLOCK };
    fcntl(fd, FcntlArg::F_SETFL(flags)).map(drop)
}

/// One pseudo-terminal: the master the emulator reads and writes, the slave it keeps open, the slave's path.
struct Pty {
    master: Arc<OwnedFd>,
    /// Kept open so the master never reads EIO / polls HUP while no client has the slave open.
    _slave: OwnedFd,
    path: PathBuf,
}

impl Pty {
    fn open() -> Result<Pty> {
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .or_else(|_| posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY))
            .context("posix_openpt")?;
        // Not inherited by child processes: a leaked master would keep a "pulled" cable plugged in.
        fcntl(&master, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("FD_CLOEXEC on the pty master")?;
        grantpt(&master).context("grantpt")?;
        unlockpt(&master).context("unlockpt")?;
        let path = PathBuf::from(ptsname_r(&master).context("ptsname")?);
        let slave: OwnedFd = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NOCTTY.bits())
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?
            .into();
        // Raw mode: no echo, no CR/LF translation, no XON/XOFF, no signals from 0x03, 8 data bits.
        let mut t = tcgetattr(&slave).context("tcgetattr")?;
        cfmakeraw(&mut t);
        t.input_flags &= !(InputFlags::IXOFF | InputFlags::IXANY | InputFlags::INPCK | InputFlags::IMAXBEL);
        t.control_flags |= ControlFlags::CREAD | ControlFlags::CLOCAL;
        tcsetattr(&slave, SetArg::TCSANOW, &t).context("tcsetattr")?;
        let master: OwnedFd = master.into();
        set_nonblocking(master.as_fd(), true).context("O_NONBLOCK on the pty master")?;
        Ok(Pty { master: Arc::new(master), _slave: slave, path })
    }
}

/// Points `link` at `target`, replacing whatever is there, atomically (symlink beside it, then rename).
fn point_symlink(link: &Path, target: &Path) -> Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name =
        link.file_name().with_context(|| format!("symlink path {} has no file name", link.display()))?;
    let tmp = link.with_file_name(format!(
        ".{}.linkem-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating symlink {}", tmp.display()))?;
    std::fs::rename(&tmp, link).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("replacing {} with a symlink to {}", link.display(), target.display())
    })
}

/// Removes `link` if it is still our symlink to `target` (someone may have replaced it meanwhile).
fn remove_symlink(link: &Path, target: &Path) {
    let ours = std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink())
        && std::fs::read_link(link).is_ok_and(|t| t == target);
    if ours {
        if let Err(e) = std::fs::remove_file(link) {
            tracing::warn!("linkem: removing symlink {}: {e}", link.display());
        }
    }
}

/// One direction's pump: source master -> `Direction` -> destination master, until `stop` hangs up.
///
/// Threads: one per direction. Each direction has its own clock of events (when its FIFO has room, when its
/// next slice arrives) and its own blocking points (a destination that is not being read); with a thread
/// each, a loop is a straight line of "deliver what arrived, write what fits, read what the FIFO takes,
/// sleep until the next of those", and a busy or stalled direction never delays the other's timing.
struct Pump {
    start: Instant,
    dir: Arc<Mutex<Direction>>,
    src: Arc<OwnedFd>,
    dst: Arc<OwnedFd>,
    stop: Arc<OwnedFd>,
    /// Bytes per slice written into the `Direction` (about 1 ms of line time), also the least the FIFO
    /// must have room for before the source is read again, so a fast writer costs ~1000 wakeups/s.
    slice: usize,
    /// Nanoseconds per byte on the wire, rounded up.
    byte_ns: u64,
}

impl Pump {
    fn new(
        start: Instant,
        dir: Arc<Mutex<Direction>>,
        src: Arc<OwnedFd>,
        dst: Arc<OwnedFd>,
        stop: Arc<OwnedFd>,
    ) -> Pump {
        let (slice, byte_ns) = {
            let d = lock(&dir);
            let cfg = d.config();
            let byte_rate = (cfg.byte_rate() as usize).max(1);
            let slice = (byte_rate / 1000).clamp(1, (cfg.buffer / 2).max(1));
            let byte_ns = (u64::from(cfg.bits_per_byte) * 1_000_000_000).div_ceil(cfg.bit_rate);
            (slice, byte_ns)
        };
        Pump { start, dir, src, dst, stop, slice, byte_ns }
    }

    fn run(self, name: &str) {
        let mut pending: VecDeque<u8> = VecDeque::new();
        let mut buf = vec![0u8; 64 * 1024];
        let result = self.pump(&mut pending, &mut buf);
        // Whatever arrived but never reached the destination pty is lost with the cable.
        let mut d = lock(&self.dir);
        let lost = pending.len() as u64;
        d.counters.delivered -= lost;
        d.counters.dropped += lost;
        drop(d);
        if let Err(e) = result {
            tracing::warn!("linkem {name}: stopped: {e}");
        }
    }

    fn pump(&self, pending: &mut VecDeque<u8>, buf: &mut [u8]) -> nix::Result<()> {
        const IN: PollFlags = PollFlags::POLLIN;
        const OUT: PollFlags = PollFlags::POLLOUT;
        const BAD: PollFlags = PollFlags::POLLHUP.union(PollFlags::POLLERR).union(PollFlags::POLLNVAL);
        loop {
            let now = now_ns(self.start);
            // 1. Take what has arrived by now; keep at most MAX_PENDING of it waiting for the destination.
            let (writable, need, next_arrival, room_at) = {
                let mut d = lock(&self.dir);
                pending.extend(d.read(now));
                if pending.len() > MAX_PENDING {
                    let excess = pending.len() - MAX_PENDING;
                    pending.truncate(MAX_PENDING);
                    d.counters.delivered -= excess as u64;
                    d.counters.dropped += excess as u64;
                }
                let need = self.slice.min(d.config().buffer);
                (d.writable(now), need, d.next_arrival(), d.writable_at(need) + self.byte_ns)
            };
            // 2. Hand it to the destination pty as far as it takes it, in order.
            while !pending.is_empty() {
                match nix::unistd::write(self.dst.as_fd(), pending.as_slices().0) {
                    Ok(n) => drop(pending.drain(..n)),
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return Err(e),
                }
            }
            // 3. Take from the source what the transmit FIFO has room for, in ~1 ms slices.
            let read_ok = writable >= need;
            if read_ok {
                let want = writable.min(buf.len());
                match nix::unistd::read(self.src.as_fd(), &mut buf[..want]) {
                    Ok(n) if n > 0 => {
                        let mut d = lock(&self.dir);
                        for slice in buf[..n].chunks(self.slice) {
                            d.write(now, slice);
                        }
                        continue;
                    }
                    Ok(_) | Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e),
                }
            }
            // 4. Sleep until the source has bytes (if the FIFO has room), the destination takes more (if
            //    bytes wait), the next slice arrives, the FIFO has room again, or we are told to stop.
            let mut deadline = next_arrival;
            if !read_ok {
                deadline = Some(deadline.map_or(room_at, |t| t.min(room_at)));
            }
            let mut fds = [
                PollFd::new(self.stop.as_fd(), IN),
                PollFd::new(self.src.as_fd(), if read_ok { IN } else { PollFlags::empty() }),
                PollFd::new(self.dst.as_fd(), if pending.is_empty() { PollFlags::empty() } else { OUT }),
            ];
            let timeout = deadline.map(|t| t.saturating_sub(now_ns(self.start)));
            wait_fds(&mut fds, timeout)?;
            let (stop, src, dst) = (revents(&fds[0]), revents(&fds[1]), revents(&fds[2]));
            if !stop.is_empty() {
                return Ok(());
            }
            // The emulator holds a slave of each pty open, so a master never hangs up while it runs.
            if src.intersects(BAD) && !src.contains(IN) || dst.intersects(BAD) {
                return Err(Errno::EIO);
            }
        }
    }
}

/// The ptys and pump threads of one plugged-in cable.
struct Plugged {
    a: Pty,
    b: Pty,
    /// Dropping it hangs up the pipe the pumps poll, telling them to stop.
    stop_tx: OwnedFd,
    threads: Vec<JoinHandle<()>>,
}

/// A running line emulator between two pseudo-terminals.
pub struct Linkem {
    start: Instant,
    ab: Arc<Mutex<Direction>>,
    ba: Arc<Mutex<Direction>>,
    link_a: Option<PathBuf>,
    link_b: Option<PathBuf>,
    path_a: PathBuf,
    path_b: PathBuf,
    plugged: Option<Plugged>,
}

impl Linkem {
    /// Creates the two ptys (and symlinks) and starts emulating the line.
    pub fn start(args: &LinkemArgs) -> Result<Linkem> {
        let (ab, ba) = line_configs(args)?;
        let mut linkem = Linkem {
            start: Instant::now(),
            ab: Arc::new(Mutex::new(Direction::new(ab, args.seed))),
            ba: Arc::new(Mutex::new(Direction::new(ba, seed_ba(args.seed)))),
            link_a: args.link_a.clone(),
            link_b: args.link_b.clone(),
            path_a: PathBuf::new(),
            path_b: PathBuf::new(),
            plugged: None,
        };
        linkem.plug()?;
        Ok(linkem)
    }

    /// The path a program opens for end A (the symlink if given, else /dev/pts/N).
    pub fn path_a(&self) -> &Path {
        &self.path_a
    }

    /// The path a program opens for end B (the symlink if given, else /dev/pts/N).
    pub fn path_b(&self) -> &Path {
        &self.path_b
    }

    /// Counters so far: (A -> B, B -> A).
    pub fn counters(&self) -> (LineCounters, LineCounters) {
        (lock(&self.ab).counters.clone(), lock(&self.ba).counters.clone())
    }

    /// Simulates pulling the cable: both ptys are closed (programs holding the slave see a hangup/EIO and
    /// further reads fail), bytes in flight are lost, until `replug`.
    pub fn unplug(&mut self) -> Result<()> {
        let Some(p) = self.plugged.take() else {
            return Ok(());
        };
        // Stop the pumps first: they hold the masters.
        drop(p.stop_tx);
        for t in p.threads {
            if t.join().is_err() {
                tracing::warn!("linkem: a pump thread panicked");
            }
        }
        // Bytes on the wire are lost (counted as dropped, not delivered).
        for dir in [&self.ab, &self.ba] {
            let mut d = lock(dir);
            let lost = d.read(u64::MAX).len() as u64;
            d.counters.delivered -= lost;
            d.counters.dropped += lost;
        }
        // Remove the symlinks rather than leave them dangling: the /dev/pts number may soon be reused by an
        // unrelated program's terminal, which a client reopening the path must not get.
        if let Some(l) = &self.link_a {
            remove_symlink(l, &p.a.path);
        }
        if let Some(l) = &self.link_b {
            remove_symlink(l, &p.b.path);
        }
        // Closing the masters hangs up every client of the slaves (reads return EOF, writes EIO); the kept
        // slave descriptors go with them.
        drop(p.a);
        drop(p.b);
        Ok(())
    }

    /// Plugs the cable back: new ptys are created and the symlinks (if any) are pointed at them, so a program
    /// reopening the same symlink path gets the line back. (Without symlinks the paths change; path_a/path_b
    /// return the new ones.)
    pub fn replug(&mut self) -> Result<()> {
        if self.plugged.is_some() {
            return Ok(());
        }
        self.plug()
    }

    fn plug(&mut self) -> Result<()> {
        let a = Pty::open().context("creating end A's pty")?;
        let b = Pty::open().context("creating end B's pty")?;
        let (stop_rx, stop_tx) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe")?;
        let stop_rx = Arc::new(stop_rx);
        let mut threads = Vec::new();
        for (name, dir, src, dst) in
            [("A->B", &self.ab, &a.master, &b.master), ("B->A", &self.ba, &b.master, &a.master)]
        {
            let pump = Pump::new(self.start, dir.clone(), src.clone(), dst.clone(), stop_rx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("linkem {name}"))
                .spawn(move || pump.run(name))
                .context("spawning a linkem thread");
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    drop(stop_tx);
                    threads.into_iter().for_each(|t| drop(t.join()));
                    return Err(e);
                }
            }
        }
        let plugged = Plugged { a, b, stop_tx, threads };
        self.path_a = plugged.a.path.clone();
        self.path_b = plugged.b.path.clone();
        self.plugged = Some(plugged);
        // From here on `self` owns everything, so a failure below is cleaned up by unplug / Drop.
        for (link, path) in [(&self.link_a, &mut self.path_a), (&self.link_b, &mut self.path_b)] {
            if let Some(link) = link {
                point_symlink(link, path)?;
                *path = link.clone();
            }
        }
        Ok(())
    }

    /// Stops the emulator, removes the symlinks, and returns the final counters.
    pub fn stop(mut self) -> (LineCounters, LineCounters) {
        if let Err(e) = self.unplug() {
            tracing::warn!("linkem: stopping: {e:#}");
        }
        self.counters()
    }
}

impl Drop for Linkem {
    fn drop(&mut self) {
        if let Err(e) = self.unplug() {
            tracing::warn!("linkem: stopping: {e:#}");
        }
    }
}

fn print_paths(linkem: &Linkem) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "A {}", linkem.path_a().display())?;
    writeln!(out, "B {}", linkem.path_b().display())?;
    out.flush()?;
    Ok(())
}

fn format_counters(c: &LineCounters) -> String {
    format!(
        "written {} delivered {} bit_errors {} dropped {} duplicated {} inserted {}",
        c.written, c.delivered, c.bit_errors, c.dropped, c.duplicated, c.inserted
    )
}

/// `strand linkem`: start, print the two paths (one line each: "A /dev/pts/5" and "B /dev/pts/6", then flush
/// stdout so scripts can read them), run until SIGINT/SIGTERM, then print the counters of both directions and
/// exit. SIGUSR1 unplugs, SIGUSR2 replugs (so shell-driven tests can pull the cable).
pub async fn run(args: LinkemArgs) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut int, mut term) = (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
    let (mut usr1, mut usr2) = (signal(SignalKind::user_defined1())?, signal(SignalKind::user_defined2())?);
    let mut linkem = Linkem::start(&args)?;
    print_paths(&linkem)?;
    loop {
        tokio::select! {
            _ = usr1.recv() => {
                if linkem.plugged.is_some() {
                    linkem.unplug()?;
                    eprintln!("linkem: unplugged");
                }
            }
            _ = usr2.recv() => {
                if linkem.plugged.is_none() {
                    linkem.replug()?;
                    eprintln!("linkem: plugged in");
                    // The paths change unless symlinks were given; print them again for scripts.
                    print_paths(&linkem)?;
                }
            }
            _ = int.recv() => break,
            _ = term.recv() => break,
        }
    }
    let (ab, ba) = linkem.stop();
    let mut out = std::io::stdout().lock();
    writeln!(out, "A->B {}", format_counters(&ab))?;
    writeln!(out, "B->A {}", format_counters(&ba))?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Read as _;
    use std::sync::mpsc;

    /// Opens an end the way a client would (no controlling terminal).
    fn open_end(path: &Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NOCTTY.bits())
            .open(path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
    }

    /// Reads until `n` bytes arrived or `timeout` passed.
    fn read_for(f: &File, n: usize, timeout: Duration) -> Vec<u8> {
        let end = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while got.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
            wait_fds(&mut fds, Some(left.as_nanos() as u64)).unwrap();
            if revents(&fds[0]).contains(PollFlags::POLLIN) {
                let k = (&*f).read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..k]);
            }
        }
        got
    }

    /// Writes all of `data` from another thread (blocking writes, as a client program would).
    fn write_in_thread(f: &File, data: Vec<u8>) -> JoinHandle<Duration> {
        let mut w = f.try_clone().unwrap();
        std::thread::spawn(move || {
            let t = Instant::now();
            w.write_all(&data).unwrap();
            t.elapsed()
        })
    }

    fn args(baud: u64) -> LinkemArgs {
        LinkemArgs { baud, ..LinkemArgs::default() }
    }

    fn test_bytes() -> Vec<u8> {
        let mut data =
            vec![0x00, 0x03, 0x0d, 0x0a, 0x11, 0x13, 0x04, 0x1a, 0x1c, 0x7f, 0xff, 0x0d, 0x0d, 0x0a];
        for _ in 0..8 {
            data.extend(0..=255u8);
        }
        data.extend((0..=255u8).rev());
        data
    }

    #[test]
    fn clean_line_carries_every_byte_value_both_ways() {
        let lk = Linkem::start(&args(2_000_000)).unwrap();
        let (a, b) = (open_end(lk.path_a()), open_end(lk.path_b()));
        let data = test_bytes();
        let w = write_in_thread(&a, data.clone());
        assert_eq!(read_for(&b, data.len(), Duration::from_secs(3)), data, "A -> B");
        w.join().unwrap();
        let back: Vec<u8> = data.iter().rev().copied().collect();
        let w = write_in_thread(&b, back.clone());
        assert_eq!(read_for(&a, back.len(), Duration::from_secs(3)), back, "B -> A");
        w.join().unwrap();
        // Nothing extra (no echo) arrives on either side.
        assert!(read_for(&a, 1, Duration::from_millis(100)).is_empty());
        assert!(read_for(&b, 1, Duration::from_millis(100)).is_empty());
        let (ab, ba) = lk.stop();
        let n = data.len() as u64;
        assert_eq!((ab.written, ab.delivered, ab.bit_errors, ab.dropped), (n, n, 0, 0));
        assert_eq!((ba.written, ba.delivered, ba.bit_errors, ba.dropped), (n, n, 0, 0));
    }

    /// Sends `n` bytes A -> B and returns the rate at which they arrived, in bytes/s.
    fn measure_rate(baud: u64, n: usize) -> (f64, Duration) {
        let lk = Linkem::start(&args(baud)).unwrap();
        let (a, b) = (open_end(lk.path_a()), open_end(lk.path_b()));
        let data: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
        let t = Instant::now();
        let w = write_in_thread(&a, data.clone());
        let got = read_for(&b, n, Duration::from_secs(5));
        let took = t.elapsed();
        let wrote = w.join().unwrap();
        assert_eq!(got.len(), n);
        assert!(got == data);
        drop(lk);
        eprintln!(
            "{baud} bit/s: {n} bytes in {took:?} ({:.0} B/s); writer done after {wrote:?}",
            n as f64 / took.as_secs_f64()
        );
        (n as f64 / took.as_secs_f64(), took)
    }

    #[test]
    fn paces_at_115200() {
        // 23,040 bytes x 10 bits at 115200 bit/s = 2.0 s.
        let (rate, took) = measure_rate(115_200, 23_040);
        assert!((1.8..2.2).contains(&took.as_secs_f64()), "took {took:?}, {rate:.0} B/s");
    }

    #[test]
    fn paces_at_2_mbit() {
        // 400,000 bytes x 10 bits at 2 Mbit/s = 2.0 s.
        let (rate, took) = measure_rate(2_000_000, 400_000);
        assert!((1.9..2.1).contains(&took.as_secs_f64()), "took {took:?}, {rate:.0} B/s");
    }

    fn send_through(args: &LinkemArgs, data: &[u8]) -> (Vec<u8>, LineCounters) {
        let lk = Linkem::start(args).unwrap();
        let (a, b) = (open_end(lk.path_a()), open_end(lk.path_b()));
        let w = write_in_thread(&a, data.to_vec());
        let got = read_for(&b, data.len(), Duration::from_secs(3));
        w.join().unwrap();
        (got, lk.stop().0)
    }

    #[test]
    fn bit_errors_damage_bytes_reproducibly() {
        let data = test_bytes();
        let noisy = LinkemArgs { ber: 1e-3, seed: 5, ..args(2_000_000) };
        let (got, c) = send_through(&noisy, &data);
        assert_eq!(got.len(), data.len(), "bit errors keep the length");
        assert!(c.bit_errors > 0, "{c:?}");
        assert_ne!(got, data);
        let (again, c2) = send_through(&noisy, &data);
        assert_eq!((again, c2), (got, c), "the same seed gives the same damage");
        let (clean, c) = send_through(&LinkemArgs { ber: 0.0, ..noisy }, &data);
        assert_eq!(clean, data);
        assert_eq!(c.bit_errors, 0);
    }

    #[test]
    fn one_way_line_never_carries_b_to_a() {
        let lk = Linkem::start(&LinkemArgs { one_way: true, ..args(2_000_000) }).unwrap();
        let (a, b) = (open_end(lk.path_a()), open_end(lk.path_b()));
        (&b).write_all(&[0x55; 1000]).unwrap();
        assert!(read_for(&a, 1, Duration::from_millis(300)).is_empty());
        (&a).write_all(b"still one way").unwrap();
        assert_eq!(read_for(&b, 13, Duration::from_secs(1)), b"still one way");
        let (_, ba) = lk.stop();
        assert_eq!((ba.written, ba.delivered, ba.dropped), (1000, 0, 1000));
    }

    #[test]
    fn unplug_hangs_up_readers_and_replug_restores_the_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let (la, lb) = (dir.path().join("a"), dir.path().join("b"));
        let mut lk = Linkem::start(&LinkemArgs {
            link_a: Some(la.clone()),
            link_b: Some(lb.clone()),
            ..args(2_000_000)
        })
        .unwrap();
        assert_eq!((lk.path_a(), lk.path_b()), (la.as_path(), lb.as_path()));
        let (a, b) = (open_end(&la), open_end(&lb));
        (&a).write_all(b"before").unwrap();
        assert_eq!(read_for(&b, 6, Duration::from_secs(1)), b"before");

        // A reader blocked on B is woken by the unplug with EOF or an error.
        let mut reader = b.try_clone().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            let _ = tx.send(reader.read(&mut buf).map_err(|e| e.raw_os_error()));
        });
        std::thread::sleep(Duration::from_millis(100));
        lk.unplug().unwrap();
        let woke = rx.recv_timeout(Duration::from_secs(2)).expect("the blocked reader was not woken");
        assert!(matches!(woke, Ok(0) | Err(_)), "reader got {woke:?}");
        assert!((&a).write_all(b"into the void").is_err(), "a write after unplug must fail");
        assert!(matches!((&a).read(&mut [0u8; 4]), Ok(0) | Err(_)));
        assert!(!la.exists() && !lb.exists(), "no symlinks while unplugged");

        lk.replug().unwrap();
        assert_eq!((lk.path_a(), lk.path_b()), (la.as_path(), lb.as_path()));
        let (a, b) = (open_end(&la), open_end(&lb));
        (&a).write_all(b"after").unwrap();
        assert_eq!(read_for(&b, 5, Duration::from_secs(1)), b"after");
        (&b).write_all(b"and back").unwrap();
        assert_eq!(read_for(&a, 8, Duration::from_secs(1)), b"and back");
        let (ab, _) = lk.stop();
        assert_eq!((ab.written, ab.delivered), (11, 11));
    }

    #[test]
    fn symlinks_are_created_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (la, lb) = (dir.path().join("end-a"), dir.path().join("end-b"));
        std::fs::write(&la, b"stale file").unwrap(); // replaced
        let with_links = LinkemArgs { link_a: Some(la.clone()), link_b: Some(lb.clone()), ..args(115_200) };
        let lk = Linkem::start(&with_links).unwrap();
        for l in [&la, &lb] {
            assert!(std::fs::symlink_metadata(l).unwrap().file_type().is_symlink());
            assert!(std::fs::read_link(l).unwrap().starts_with("/dev/pts"), "{:?}", std::fs::read_link(l));
        }
        assert_ne!(std::fs::read_link(&la).unwrap(), std::fs::read_link(&lb).unwrap());
        lk.stop();
        assert!(std::fs::symlink_metadata(&la).is_err() && std::fs::symlink_metadata(&lb).is_err());
        // Dropping without stop() cleans up too.
        let lk = Linkem::start(&with_links).unwrap();
        assert!(la.exists() && lb.exists());
        drop(lk);
        assert!(std::fs::symlink_metadata(&la).is_err() && std::fs::symlink_metadata(&lb).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary files left");
    }

    #[test]
    fn bytes_wait_for_an_end_nobody_has_opened() {
        let lk = Linkem::start(&args(2_000_000)).unwrap();
        let a = open_end(lk.path_a());
        (&a).write_all(b"early").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let b = open_end(lk.path_b());
        assert_eq!(read_for(&b, 5, Duration::from_secs(1)), b"early");
    }

    #[test]
    fn a_receiver_that_does_not_read_overflows_in_order() {
        let lk = Linkem::start(&args(2_000_000)).unwrap();
        let (a, b) = (open_end(lk.path_a()), open_end(lk.path_b()));
        // 200 KB (1 s of line) into an end nobody reads: the pty buffer and the 64 KiB pending queue fill up.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        write_in_thread(&a, data.clone()).join().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let (ab, _) = lk.counters();
        assert_eq!(ab.written, data.len() as u64);
        assert!(ab.dropped > 0, "{ab:?}");
        assert_eq!(ab.delivered + ab.dropped, ab.written, "{ab:?}");
        // What was kept is the start of the stream, in order.
        let got = read_for(&b, ab.delivered as usize, Duration::from_secs(2));
        assert_eq!(got.len() as u64, ab.delivered);
        assert!(got == data[..got.len()]);
        assert!(read_for(&b, 1, Duration::from_millis(100)).is_empty());
    }

    #[test]
    fn parses_burst_and_rejects_bad_options() {
        let g = parse_burst("1e-5, 0.01,0.1").unwrap();
        assert_eq!((g.p_enter_bad, g.p_leave_bad, g.ber_bad), (1e-5, 0.01, 0.1));
        assert!(parse_burst("1e-5,0.01").is_err());
        assert!(parse_burst("1e-5,x,0.1").is_err());
        assert!(parse_burst("1e-5,0.01,2").is_err());
        assert!(line_configs(&LinkemArgs { ber: 1.5, ..LinkemArgs::default() }).is_err());
        assert!(line_configs(&LinkemArgs { baud: 0, ..LinkemArgs::default() }).is_err());
        let (ab, ba) = line_configs(&LinkemArgs { one_way: true, ..LinkemArgs::default() }).unwrap();
        assert!(!ab.cut && ba.cut);
    }
}
