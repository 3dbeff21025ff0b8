//! The emulated line of one run: a `strand linkem` process joining two pseudo-terminals, and what it
//! counted when it stopped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::procs::{isolate, Group};

/// Bytes written into and bit errors applied to one direction of the line.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct DirCounters {
    /// Bytes the sending end wrote onto the line.
    pub written: u64,
    /// Bits the emulator flipped.
    pub bit_errors: u64,
    /// Bytes lost: overrun at a receiver that did not read (64 KiB behind), or on the wire at the end.
    pub dropped: u64,
}

/// What linkem reported on exit: (A -> B, B -> A).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LineCounters {
    /// The sender's direction.
    pub a_to_b: DirCounters,
    /// The receiver's direction (acks, NAKs, headers).
    pub b_to_a: DirCounters,
}

/// A running `strand linkem`.
pub struct Linkem {
    group: Group,
    /// End A (the sender's), resolved to the pty itself (`/dev/pts/N`).
    pub a: PathBuf,
    /// End B (the receiver's).
    pub b: PathBuf,
    /// Everything linkem printed after its paths (the counters), read until it exits.
    rest: Option<JoinHandle<Vec<String>>>,
}

impl Linkem {
    /// Starts `strand linkem` with the symlinks in `dir` and extra `args`; waits for its "A"/"B" lines.
    pub fn start(strand: &Path, dir: &Path, args: &[String]) -> Result<Linkem, String> {
        let (link_a, link_b) = (dir.join("a"), dir.join("b"));
        let log = dir.join("linkem.log");
        let mut cmd = Command::new(strand);
        cmd.arg("linkem").arg("--link-a").arg(&link_a).arg("--link-b").arg(&link_b).args(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let err = std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        cmd.stderr(err);
        isolate(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {} linkem: {e}", strand.display()))?;
        let stdout = child.stdout.take().ok_or("linkem has no stdout")?;
        let group = Group::adopt("linkem", child, &log);
        let (tx, rx) = mpsc::channel();
        // One thread reads all of linkem's stdout: the two path lines come through the channel at once,
        // the rest (its counters, printed on SIGTERM) when it exits. Reading until EOF also keeps linkem
        // from ever blocking on a full pipe.
        let reader = std::thread::spawn(move || {
            let mut rest = Vec::new();
            let mut paths_seen = 0;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if paths_seen < 2 && (line.starts_with("A ") || line.starts_with("B ")) {
                    paths_seen += 1;
                    let _ = tx.send(());
                } else {
                    rest.push(line);
                }
            }
            rest
        });
        let mut line = Linkem { group, a: link_a.clone(), b: link_b.clone(), rest: Some(reader) };
        for _ in 0..2 {
            if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                return Err(format!("linkem did not print its pty paths: {}", line.group.last_words()));
            }
        }
        let resolve = |p: &Path| std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()));
        line.a = resolve(&link_a)?;
        line.b = resolve(&link_b)?;
        Ok(line)
    }

    /// The emulator's process id (the ZMODEM tcdrain shim looks at its pty masters).
    pub fn pid(&self) -> u32 {
        self.group.pid()
    }

    /// Stops linkem (SIGTERM, then SIGKILL after 5 s) and returns its counters, if it printed them.
    pub fn stop(mut self) -> Option<LineCounters> {
        self.group.stop(Signal::SIGTERM, Duration::from_secs(5));
        let lines = self.rest.take()?.join().ok()?;
        parse_counters(&lines)
    }
}

/// Parses linkem's exit lines, e.g. `A->B written 1060868 delivered 1060868 bit_errors 0 dropped 0 ...`.
pub fn parse_counters(lines: &[String]) -> Option<LineCounters> {
    let direction = |prefix: &str| -> Option<DirCounters> {
        let line = lines.iter().find(|l| l.starts_with(prefix))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let value = |key: &str| -> Option<u64> {
            let at = words.iter().position(|w| *w == key)?;
            words.get(at + 1)?.parse().ok()
        };
        Some(DirCounters {
            written: value("written")?,
            bit_errors: value("bit_errors")?,
            dropped: value("dropped").unwrap_or(0),
        })
    };
    Some(LineCounters { a_to_b: direction("A->B")?, b_to_a: direction("B->A")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_linkem_counters() {
        let lines = vec![
            "A->B written 1060868 delivered 1060868 bit_errors 3 dropped 0 duplicated 0 inserted 0"
                .to_string(),
            "B->A written 8998 delivered 8998 bit_errors 0 dropped 0 duplicated 0 inserted 0".to_string(),
        ];
        let c = parse_counters(&lines).unwrap();
        assert_eq!(c.a_to_b, DirCounters { written: 1_060_868, bit_errors: 3, dropped: 0 });
        assert_eq!(c.b_to_a, DirCounters { written: 8998, bit_errors: 0, dropped: 0 });
        assert_eq!(parse_counters(&lines[..1]), None);
    }
}
