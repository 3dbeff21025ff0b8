//! Shared harness of the end-to-end tests: the `strand` binary, `strand linkem`
//! as a process, and helpers to run commands with a deadline.
#![allow(dead_code)]

pub mod qemu;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `strand` binary: `$STRAND_BIN`, else `target/debug/strand` of this
/// workspace (built by `cargo test --workspace`, which the README runs).
pub fn strand() -> PathBuf {
    if let Some(p) = std::env::var_os("STRAND_BIN") {
        return p.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/strand");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p strand` first)",
        bin.display()
    );
    bin
}

/// A `strand linkem` process joining two ptys, reachable through symlinks.
pub struct Linkem {
    child: Child,
    pub a: PathBuf,
    pub b: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Linkem {
    /// Starts an emulated line with extra `strand linkem` arguments.
    pub fn start(args: &[&str]) -> Linkem {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut child = Command::new(strand())
            .arg("linkem")
            .arg("--link-a")
            .arg(&a)
            .arg("--link-b")
            .arg(&b)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = 0;
        let mut line = String::new();
        while seen < 2 {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "linkem exited before printing its paths");
            if line.starts_with("A ") || line.starts_with("B ") {
                seen += 1;
            }
        }
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Linkem { child, a, b, dir }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Pulls the cable: both ptys close.
    pub fn unplug(&self) {
        self.signal(nix::sys::signal::Signal::SIGUSR1);
    }

    /// Plugs it back: fresh ptys behind the same symlinks.
    pub fn replug(&self) {
        self.signal(nix::sys::signal::Signal::SIGUSR2);
    }
}

impl Drop for Linkem {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished process left.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// A spawned `strand` with captured output, killed if it outlives its deadline.
pub struct Running {
    child: Child,
    out: std::thread::JoinHandle<Vec<u8>>,
    err: std::thread::JoinHandle<Vec<u8>>,
    name: String,
}

/// Spawns `strand ARGS` with `stdin` fed from `input` (None: empty stdin).
pub fn spawn(args: &[&str], input: Option<Vec<u8>>) -> Running {
    let mut cmd = Command::new(strand());
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        if let Some(data) = input {
            let _ = stdin.write_all(&data);
        }
    });
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    Running { child, out, err, name: args.join(" ") }
}

impl Running {
    /// Waits up to `limit`; a process still running then is killed and the test fails.
    pub fn finish(mut self, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = String::from_utf8_lossy(&self.err.join().unwrap()).into_owned();
                panic!("`strand {}` still running after {limit:?}; stderr:\n{err}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Outcome {
            status,
            stdout: self.out.join().unwrap(),
            stderr: String::from_utf8_lossy(&self.err.join().unwrap()).into_owned(),
        }
    }

    /// Waits up to `limit`; a process still running then gets SIGTERM (a
    /// `strand pipe` closes its stream and prints its `--stats`), then is
    /// killed 5 s later. The flag says whether the limit was reached.
    pub fn finish_or_stop(mut self, limit: Duration) -> (Outcome, bool) {
        let mut deadline = Instant::now() + limit;
        let mut stopped = false;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                if stopped {
                    let _ = self.child.kill();
                    break self.child.wait().unwrap();
                }
                stopped = true;
                deadline = Instant::now() + Duration::from_secs(5);
                let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                continue;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let outcome = Outcome {
            status,
            stdout: self.out.join().unwrap(),
            stderr: String::from_utf8_lossy(&self.err.join().unwrap()).into_owned(),
        };
        (outcome, stopped)
    }

    /// Kills the process now (a crash, from the peer's point of view).
    pub fn kill(mut self) -> Outcome {
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        Outcome {
            status,
            stdout: self.out.join().unwrap(),
            stderr: String::from_utf8_lossy(&self.err.join().unwrap()).into_owned(),
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

/// Deterministic test data and its hash: the library's, shared with the benchmarks.
#[allow(unused_imports)] // not every test file uses both
pub use strand_hil::testdata::{data, hash};

/// Whether we run as root (some fault tests need it, some need not to be).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Whether `STRAND_REQUIRE_PEERS` (comma-separated; `.ci/run` sets it) names `what`.
pub fn required(what: &str) -> bool {
    std::env::var("STRAND_REQUIRE_PEERS").is_ok_and(|v| v.split(',').any(|s| s.trim() == what))
}

/// A test that cannot run here for a reason only known at run time (not root, no tmpfs), so it cannot
/// be compiled `#[ignore]` like a test whose peer program is missing (see build.rs). It says so in a
/// line that reaches the terminal even while the harness captures test output (written to stderr
/// directly, not through `eprintln!`), between the `test ... ok` lines of the summary; and if
/// `STRAND_REQUIRE_PEERS` names `requirement` it fails instead.
pub fn skip_at_run_time(test: &str, requirement: &str, why: &str) {
    if required(requirement) {
        panic!("{test}: {why}, but STRAND_REQUIRE_PEERS requires {requirement}");
    }
    let _ =
        writeln!(std::io::stderr(), "SKIPPED {test}: {why} (its result line says ok, but it ran nothing)");
}

/// True when running as root; otherwise reports `test` skipped (or fails it when root is required).
pub fn needs_root(test: &str, what_for: &str) -> bool {
    if is_root() {
        return true;
    }
    skip_at_run_time(test, "root", &format!("needs root {what_for}"));
    false
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Spool tests: packets (regular files, hidden names aside) below `dir`, by relative path, with their content.
pub fn packets(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, rel: &str, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if name.starts_with('.') {
                continue;
            }
            let r = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &r, out);
            } else {
                out.insert(r, std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

/// Creates each of `names` below `base`; returns their paths.
pub fn mkdirs(base: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let d = base.join(n);
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect()
}

/// Runs an NNCP program (`args[0]`) with config `cfg`, quietly; fails the test if it fails.
pub fn nncp(args: &[&str], cfg: &Path) {
    // Go's flag package: options before the operands.
    let out = Command::new(args[0]).arg("-cfg").arg(cfg).arg("-quiet").args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}
