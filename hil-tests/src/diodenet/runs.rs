//! One run of one tool under one condition: start the receiver, the relay
//! and the sender, wait until the receiver has the file (or a deadline),
//! and record the time, the bytes the sender put on the path, the CPU each
//! side used (from `wait4`) and whether the file arrived byte for byte.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::relay::{Loss, Relay};
use super::report::Record;

/// Where the sender sends (the shaped class matches this port).
pub const RELAY_PORT: u16 = 7000;
/// Where the receiver listens.
pub const DEST_PORT: u16 = 7001;
/// lidi's TCP hops: file client to diode-send, and diode-receive to the file server.
const LIDI_IN: u16 = 7100;
const LIDI_OUT: u16 = 7101;

/// What every run shares.
pub struct Setup {
    /// The `strand` binary.
    pub strand: PathBuf,
    /// Directory of lidi's release binaries, if lidi runs.
    pub lidi: Option<PathBuf>,
    /// The file sent.
    pub file: PathBuf,
    /// Its bytes (to check what arrives).
    pub bytes: Vec<u8>,
    /// The shaped rate, bit/s.
    pub cap: u64,
    /// Scratch space.
    pub work: PathBuf,
    /// Longest a run may take.
    pub deadline: Duration,
}

/// A child process whose CPU time is read when it is reaped.
struct Proc {
    child: Child,
    cpu: Option<f64>,
    status: Option<i32>,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: &Path) -> std::io::Result<Proc> {
        let f = fs::File::create(log)?;
        let child = cmd.stdin(Stdio::null()).stdout(f.try_clone()?).stderr(f).spawn()?;
        Ok(Proc { child, cpu: None, status: None })
    }

    /// Reaps the process if it has exited, with its user and system time.
    fn poll(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        let mut status = 0;
        // SAFETY: plain wait4 on our own child with valid out-pointers; std never
        // waits on this child afterwards (its Child is only dropped).
        let mut ru: nix::libc::rusage = unsafe { std::mem::zeroed() };
        let pid = self.child.id() as i32;
        let r = unsafe { nix::libc::wait4(pid, &mut status, nix::libc::WNOHANG, &mut ru) };
        if r == pid {
            let secs = |t: nix::libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            self.cpu = Some(secs(ru.ru_utime) + secs(ru.ru_stime));
            self.status =
                Some(if nix::libc::WIFEXITED(status) { nix::libc::WEXITSTATUS(status) } else { -1 });
            return true;
        }
        false
    }

    fn wait_until(&mut self, until: Instant) -> bool {
        while Instant::now() < until {
            if self.poll() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.poll()
    }

    /// Stops the process (SIGTERM, then SIGKILL) and reaps it.
    fn stop(&mut self) {
        if self.poll() {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if !self.wait_until(Instant::now() + Duration::from_secs(3)) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            self.wait_until(Instant::now() + Duration::from_secs(3));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// strand: `onepass` (one pass with --expect-loss p) or `carousel`
/// (--forever with the default first-pass repair; the receiver's completion ends it).
pub fn strand(setup: &Setup, mode: &str, loss: Loss, seed: u64) -> Result<Record, String> {
    let dir = setup.work.join(format!("strand-{mode}-{}-{seed}", loss.label()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join("out");
    let relay =
        Relay::start(addr(RELAY_PORT), addr(DEST_PORT), loss, seed).map_err(|e| format!("relay: {e}"))?;
    // Debug logging says when every block of the file is in (before the hash check).
    let mut rx = Proc::spawn(
        Command::new(&setup.strand)
            .env("RUST_LOG", "debug")
            .args(["diode-rx", &format!("udp-listen:127.0.0.1:{DEST_PORT}"), "--dir"])
            .arg(&out)
            .args(["--exit-when-complete", "--no-progress", "--rate", &setup.cap.to_string()]),
        &dir.join("rx.log"),
    )
    .map_err(|e| format!("diode-rx: {e}"))?;
    std::thread::sleep(Duration::from_millis(300));
    let expect = format!("{}", loss.p() * 100.0);
    let mut cmd = Command::new(&setup.strand);
    // Debug logging says when the first frame and the last data frame went (--keep-work).
    cmd.env("RUST_LOG", "debug").args([
        "diode-tx",
        &format!("udp:127.0.0.1:{RELAY_PORT}"),
        "--rate",
        &setup.cap.to_string(),
        "--no-progress",
    ]);
    if mode == "onepass" {
        cmd.args(["--expect-loss", &expect]);
    } else {
        cmd.arg("--forever");
    }
    cmd.arg(&setup.file);
    let start = Instant::now();
    let mut tx = Proc::spawn(&mut cmd, &dir.join("tx.log")).map_err(|e| format!("diode-tx: {e}"))?;
    let done = rx.wait_until(start + setup.deadline);
    let secs = start.elapsed().as_secs_f64();
    let at_exit = relay.bytes_in();
    // What a carousel needed: the bytes the sender had put on the path when
    // the relay forwarded the last datagram the receiver took before it had
    // the file (it says how many: `complete after N datagrams`, debug log).
    // What went out while it decoded, verified and published is in `at_exit`.
    let log = fs::read_to_string(dir.join("rx.log")).unwrap_or_default();
    let taken = log
        .lines()
        .find_map(|l| l.split("complete after ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    let mut wire = taken.and_then(|n| relay.bytes_when_forwarded(n)).unwrap_or(at_exit);
    if mode == "onepass" {
        // The whole pass counts: the sender cannot know when to stop.
        tx.wait_until(Instant::now() + Duration::from_secs(10));
        wire = relay.bytes_in();
    }
    let wire_at_exit = if mode == "onepass" { wire } else { at_exit };
    tx.stop();
    rx.stop();
    let got = fs::read(out.join(setup.file.file_name().unwrap_or_default())).ok();
    let ok = done && rx.status == Some(0) && got.as_deref() == Some(&setup.bytes[..]);
    let log = fs::read_to_string(dir.join("rx.log")).unwrap_or_default();
    // With datagrams dropped on the receiving host the count would not line up: use the bytes at exit.
    let local_drops: u64 = log
        .lines()
        .find(|l| l.contains("dropped on this host"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if local_drops > 0 && mode != "onepass" {
        wire = wire_at_exit;
    }
    let note = if ok { String::new() } else { last_line(&log) };
    Ok(Record::new_with_exit(
        wire_at_exit,
        format!("strand {mode}"),
        loss,
        seed,
        setup,
        ok,
        secs,
        wire,
        (tx.cpu.unwrap_or(0.0), rx.cpu.unwrap_or(0.0)),
        local_drops,
        relay.counts.relay_overflow.load(std::sync::atomic::Ordering::Relaxed),
        note,
    ))
}

/// lidi 2.1.1: diode-send-file -> diode-send -> (relay) -> diode-receive ->
/// diode-receive-file, with its repair percentage `repair`.
pub fn lidi(setup: &Setup, repair: u32, loss: Loss, seed: u64) -> Result<Record, String> {
    let bin = setup.lidi.as_ref().ok_or("no lidi")?;
    let dir = setup.work.join(format!("lidi-{repair}-{}-{seed}", loss.label()));
    let _ = fs::remove_dir_all(&dir);
    let out = dir.join("out");
    fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let relay =
        Relay::start(addr(RELAY_PORT), addr(DEST_PORT), loss, seed).map_err(|e| format!("relay: {e}"))?;
    let r = repair.to_string();
    let mut rfile = Proc::spawn(
        Command::new(bin.join("diode-receive-file"))
            .args(["--from-tcp", &format!("127.0.0.1:{LIDI_OUT}"), "--max-files", "1", "--log-level", "Warn"])
            .arg(&out),
        &dir.join("receive-file.log"),
    )
    .map_err(|e| format!("diode-receive-file: {e}"))?;
    let mut recv = Proc::spawn(
        Command::new(bin.join("diode-receive")).args([
            "--from",
            &format!("127.0.0.1:{DEST_PORT}"),
            "--to-tcp",
            &format!("127.0.0.1:{LIDI_OUT}"),
            "--repair",
            &r,
            "--log-level",
            "Warn",
        ]),
        &dir.join("receive.log"),
    )
    .map_err(|e| format!("diode-receive: {e}"))?;
    let mut send = Proc::spawn(
        Command::new(bin.join("diode-send")).args([
            "--from-tcp",
            &format!("127.0.0.1:{LIDI_IN}"),
            "--to",
            &format!("127.0.0.1:{RELAY_PORT}"),
            "--repair",
            &r,
            "--log-level",
            "Warn",
        ]),
        &dir.join("send.log"),
    )
    .map_err(|e| format!("diode-send: {e}"))?;
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let mut sfile = Proc::spawn(
        Command::new(bin.join("diode-send-file"))
            .args(["--to-tcp", &format!("127.0.0.1:{LIDI_IN}"), "--log-level", "Warn"])
            .arg(&setup.file),
        &dir.join("send-file.log"),
    )
    .map_err(|e| format!("diode-send-file: {e}"))?;
    // lidi's file receiver logs an error and waits on when a block fails:
    // that is the end of this transfer.
    let gave_up = || fs::read_to_string(dir.join("receive-file.log")).is_ok_and(|l| l.contains("ERROR"));
    let done = loop {
        if rfile.poll() {
            break true;
        }
        if Instant::now() > start + setup.deadline || gave_up() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = start.elapsed().as_secs_f64();
    let wire = relay.bytes_in();
    let wire_at_exit = wire;
    for p in [&mut sfile, &mut send, &mut recv, &mut rfile] {
        p.stop();
    }
    let got = fs::read(out.join(setup.file.file_name().unwrap_or_default())).ok();
    let ok = done && got.as_deref() == Some(&setup.bytes[..]);
    let note = if ok {
        String::new()
    } else if done {
        "wrong or missing file".into()
    } else if gave_up() {
        "gave up: a block could not be decoded (loss beyond its repair)".into()
    } else {
        "stalled (no file by the deadline)".into()
    };
    let cpu = |a: &Proc, b: &Proc| a.cpu.unwrap_or(0.0) + b.cpu.unwrap_or(0.0);
    Ok(Record::new_with_exit(
        wire_at_exit,
        format!("lidi repair {repair}"),
        loss,
        seed,
        setup,
        ok,
        secs,
        wire,
        (cpu(&sfile, &send), cpu(&recv, &rfile)),
        0,
        relay.counts.relay_overflow.load(std::sync::atomic::Ordering::Relaxed),
        note,
    ))
}

/// lidi's repair settings for a loss condition, as one would configure it
/// knowing p: its overhead p/(1-p) with a quarter more and 2 points, and a
/// generous one (twice the overhead and 5 points). On a clean path: 2 (its
/// default) and 10.
pub fn lidi_repairs(loss: Loss) -> [u32; 2] {
    let o = 100.0 * loss.p() / (1.0 - loss.p());
    if o == 0.0 {
        return [2, 10];
    }
    [(o * 1.25 + 2.0).ceil() as u32, (o * 2.0 + 5.0).ceil() as u32]
}

fn last_line(log: &str) -> String {
    log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").chars().take(160).collect()
}
