//! Child processes that never outlive a run: each peer program and the line emulator runs in its own
//! process group (so a timeout kills whatever it forked too) and dies with the benchmark (so Ctrl-C on
//! the benchmark leaves nothing behind). Shared by peerbench, streambench and the tests that drive
//! external programs (NNCP, the soak).

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// A running child in its own process group, its stderr (and usually stdout) going to a log file.
pub struct Group {
    child: Child,
    /// What it is, for messages ("sender", "receiver", "linkem").
    pub role: &'static str,
    /// Its log file.
    pub log: PathBuf,
    status: Option<ExitStatus>,
}

/// Makes `cmd` start a new process group and die with the benchmark.
pub fn isolate(cmd: &mut Command) {
    cmd.process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes one async-signal-safe system call.
    unsafe {
        cmd.pre_exec(|| {
            // The benchmark's death (Ctrl-C, a kill) takes its children along instead of leaving a peer or
            // an emulator running; children are in their own groups, so the terminal's SIGINT misses them.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)
        });
    }
}

impl Group {
    /// Spawns `cmd` isolated, with stderr (and stdout unless `cmd` already set it) appended to `log`.
    pub fn spawn(role: &'static str, mut cmd: Command, log: &Path, stdout_to_log: bool) -> io::Result<Group> {
        let file = File::options().create(true).append(true).open(log)?;
        if stdout_to_log {
            cmd.stdout(Stdio::from(file.try_clone()?));
        }
        cmd.stderr(Stdio::from(file));
        isolate(&mut cmd);
        let child = cmd.spawn()?;
        Ok(Group { child, role, log: log.to_path_buf(), status: None })
    }

    /// Takes charge of a child already spawned with [`isolate`].
    pub fn adopt(role: &'static str, child: Child, log: &Path) -> Group {
        Group { child, role, log: log.to_path_buf(), status: None }
    }

    /// The process id (also the group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has exited (reaped once, then remembered).
    pub fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Takes the pipes of a child spawned with `Stdio::piped()` stdin and stdout.
    pub fn take_stdio(&mut self) -> (Option<ChildStdin>, Option<ChildStdout>) {
        (self.child.stdin.take(), self.child.stdout.take())
    }

    /// Waits up to `limit` for it to exit; returns its status, or None if it still runs.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while self.poll().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.poll()
    }

    /// The processes still in its group (what the leader forked, still running after the leader exited).
    pub fn members(&self) -> Vec<i32> {
        let pgid = self.pid() as i32;
        let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| {
                // /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    stat.rfind(')')
                        .and_then(|at| stat[at + 1..].split_whitespace().nth(2)?.parse::<i32>().ok())
                        == Some(pgid)
                })
            })
            .collect()
    }

    /// Kills every process of its group, also after the leader has exited: each is named by its own
    /// id, found in /proc with the group's id, so nothing outside the group is touched.
    pub fn kill_all(&mut self) {
        self.kill();
        for pid in self.members() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// Kills the whole group at once (the leader and anything it forked) and reaps the leader.
    ///
    /// A leader that has already exited and been reaped is left alone: its id could by now belong to
    /// another process, and none of the peer programs leaves forked children behind.
    pub fn kill(&mut self) {
        if self.poll().is_none() {
            let _ = killpg(Pid::from_raw(self.pid() as i32), Signal::SIGKILL);
            self.status = self.child.wait().ok();
        }
    }

    /// Sends `signal` to the leader, waits up to `grace` for it to exit, then kills the group.
    pub fn stop(&mut self, signal: Signal, grace: Duration) {
        if self.poll().is_none() {
            let _ = nix::sys::signal::kill(Pid::from_raw(self.pid() as i32), signal);
            let deadline = Instant::now() + grace;
            while self.poll().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill();
    }

    /// The last non-empty line of its log, shortened, to say why it failed.
    pub fn last_words(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        // Progress meters (rz/sz) redraw one line with carriage returns: keep the last redraw.
        let line = text
            .lines()
            .rev()
            .flat_map(|l| l.rsplit('\r'))
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        shorten(line, 100)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The release `strand` a benchmark drives: `explicit` if given, else the one next to the running
/// benchmark (`cargo build --release` puts both in target/release), else target/release of
/// `$CARGO_TARGET_DIR` or of this workspace.
pub fn release_strand(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("strand")));
            match beside.filter(|p| p.is_file() && p.parent().is_some_and(|d| d.ends_with("release"))) {
                Some(p) => p,
                None => std::env::var_os("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
                    .join("release/strand"),
            }
        }
    };
    if !path.is_file() {
        return Err(format!("{} is missing: run `cargo build --release -p strand` first", path.display()));
    }
    Ok(path)
}

/// `s` cut to its last `max` characters (where error messages say what went wrong; gensio's start with
/// the whole stack string), with an ellipsis when cut.
pub fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        "...".to_string() + &s.chars().skip(n - max).collect::<String>()
    }
}

/// How a finished process ended, in words ("exit 1", "killed by SIGSEGV").
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        _ => "ended oddly".to_string(),
    }
}

/// Waits until process `pid` has `device` open (one of its descriptors points at it), it exits, or
/// `limit` passes; returns whether it did. Starting the sender only then keeps every peer's first bytes
/// from arriving at an end nobody is listening on yet, without a fixed sleep that would count against
/// every tool's time.
pub fn wait_until_open(group: &mut Group, device: &Path, limit: Duration) -> bool {
    let fd_dir = PathBuf::from(format!("/proc/{}/fd", group.pid()));
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && group.poll().is_none() {
        let open = std::fs::read_dir(&fd_dir)
            .map(|entries| entries.flatten().any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == device)))
            .unwrap_or(false);
        if open {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}
