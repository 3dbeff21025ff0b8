//! QEMU for the virtual hardware-in-the-loop tests: board builds, a machine
//! with its UARTs on local TCP ports, and a noisy line to put in front of one.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strand_link::sim::{Direction, LineConfig};

/// Says why a test cannot run: visibly (past the test harness's capture),
/// and as a failure when `STRAND_REQUIRE_QEMU=1` (CI installs QEMU and the
/// thumb targets, so a missing one there is a broken CI, not a skip).
pub fn skip(why: &str) {
    if std::env::var("STRAND_REQUIRE_QEMU").is_ok_and(|v| v == "1") {
        panic!("STRAND_REQUIRE_QEMU=1 but {why}");
    }
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// Whether `qemu-system-arm` is on PATH (else says the test is skipped).
pub fn qemu_present() -> bool {
    if super::have("qemu-system-arm") {
        return true;
    }
    skip("qemu-system-arm not installed (apt-get install qemu-system-arm)");
    false
}

/// Builds `bin` of board folder `board` (`cargo build --release` there, as CI
/// does; a no-op when up to date) and returns its ELF, or None (skipped)
/// when the board's Rust target is not installed.
pub fn board_elf(board: &str, target: &str, bin: &str) -> Option<PathBuf> {
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards");
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().ok()?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if !Path::new(&sysroot).join("lib/rustlib").join(target).exists() {
        skip(&format!("the {target} Rust target is not installed (rustup target add {target})"));
        return None;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "--bin", bin])
        .current_dir(boards.join(board))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "building {board}: {}", String::from_utf8_lossy(&out.stderr));
    Some(boards.join("target").join(target).join("release").join(bin))
}

/// A free local TCP port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A QEMU MPS2 machine running `elf` with UART0 and UART1 served on local
/// TCP ports (QEMU's chardev socket server: one client at a time).
pub struct Machine {
    child: Child,
    pub ports: [u16; 2],
    args: Vec<String>,
}

impl Machine {
    pub fn start(machine: &str, elf: &Path, ports: [u16; 2]) -> Machine {
        let mut args: Vec<String> = [
            "-machine",
            machine,
            "-nographic",
            "-monitor",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (i, p) in ports.iter().enumerate() {
            args.push("-chardev".into());
            args.push(format!("socket,id=u{i},host=127.0.0.1,port={p},server=on,wait=off"));
            args.push("-serial".into());
            args.push(format!("chardev:u{i}"));
        }
        args.push("-kernel".into());
        args.push(elf.display().to_string());
        let child = Self::spawn(&args, ports);
        Machine { child, ports, args }
    }

    fn spawn(args: &[String], ports: [u16; 2]) -> Child {
        let child = Command::new("qemu-system-arm")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start qemu-system-arm");
        // `strand pipe tcp:` does not retry its first connect: wait until
        // QEMU listens (a port we cannot bind is taken), without connecting.
        let deadline = Instant::now() + Duration::from_secs(20);
        for p in ports {
            while TcpListener::bind(("127.0.0.1", p)).is_ok() {
                assert!(Instant::now() < deadline, "QEMU never listened on port {p}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        child
    }

    /// Kills the machine at once (a node losing power).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Boots it again, on the same ports.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(&self.args, self.ports);
    }

    /// QEMU's CPU time so far (user + system), from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (in parentheses): state is field 3,
        // utime and stime (in clock ticks, 100 per second) fields 14 and 15.
        let rest: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
        let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let ticks = field(14) + field(15);
        assert!(rest.len() > 15, "unreadable /proc stat: {stat}");
        Duration::from_millis(ticks * 10)
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a QEMU binary that ends with a semihosting exit; its status and output.
pub fn run_to_exit(machine: &str, elf: &Path, limit: Duration) -> (bool, String) {
    let mut child = Command::new("qemu-system-arm")
        .args(["-machine", machine, "-nographic", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native", "-kernel"])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-arm");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not exit within {limit:?}", elf.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut out).unwrap();
    (status.success(), out)
}

/// A TCP relay with bit errors: clients connect to `port`; each connection
/// is joined to `upstream` through the core's seeded line model (the one
/// `strand linkem` and the simulations use) at `ber` in both directions.
/// Either side closing closes both; the next client gets a new connection.
pub struct NoisyRelay {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl NoisyRelay {
    pub fn start(upstream: u16, ber: f64, seed: u64) -> NoisyRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                n += 2;
                let dead = Arc::new(AtomicBool::new(false));
                for (from, to, k) in [(&client, &server, n), (&server, &client, n + 1)] {
                    let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    let (dead, stop) = (dead.clone(), s.clone());
                    std::thread::spawn(move || pump(from, to, ber, seed * 1000 + k, &dead, &stop));
                }
            }
        });
        NoisyRelay { port, stop }
    }
}

impl Drop for NoisyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Moves bytes from `from` to `to` through a noisy `Direction`.
fn pump(mut from: TcpStream, mut to: TcpStream, ber: f64, seed: u64, dead: &AtomicBool, stop: &AtomicBool) {
    // A line far faster than QEMU's UART: only the noise matters.
    let mut cfg = LineConfig::clean(1_000_000_000, Duration::ZERO).with_ber(ber);
    cfg.buffer = 1 << 20;
    let mut line = Direction::new(cfg, seed);
    let start = Instant::now();
    from.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    let mut buf = [0u8; 4096];
    while !dead.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        let now = start.elapsed().as_nanos() as u64;
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => line.write(now, &buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        let out = line.read(start.elapsed().as_nanos() as u64);
        if !out.is_empty() && to.write_all(&out).is_err() {
            break;
        }
    }
    dead.store(true, Ordering::Relaxed);
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}
