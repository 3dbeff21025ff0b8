//! NNCP between two nodes over a line, wired the way users wire it: `nncp-call` whose address is a
//! pipe command (`|strand pipe LINK`, NNCP's "pipe address") on end A, against `nncp-daemon -ucspi`
//! whose stdin and stdout are two FIFOs that the transport on end B serves (`strand pipe B < f1 > f2`
//! and `nncp-daemon -ucspi > f1 < f2`, each started by a shell that opens the FIFOs itself).
//!
//! Shared by the interop tests (`tests/interop.rs`) and `streambench nncp`; needs Debian's `nncp`
//! (8.8) and, for the raw-line comparison, `socat`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::procs::{describe, Group};

/// The NNCP programs used here.
pub const PROGRAMS: [&str; 6] =
    ["nncp-cfgnew", "nncp-file", "nncp-call", "nncp-daemon", "nncp-toss", "nncp-xfer"];

/// One NNCP node: its directory (spool, log, incoming) and config file.
#[derive(Debug, Clone)]
pub struct Node {
    /// How the other node calls it.
    pub name: &'static str,
    /// Its directory.
    pub dir: PathBuf,
    /// Its config (JSON, which is valid HJSON).
    pub cfg: PathBuf,
}

impl Node {
    /// Where tossed files from the other node land.
    pub fn incoming(&self) -> PathBuf {
        self.dir.join("in")
    }

    /// Its log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }
}

/// The `self:` keys of a fresh NNCP node, from `nncp-cfgnew`.
fn keys() -> Result<Vec<(String, String)>, String> {
    let out =
        Command::new("nncp-cfgnew").arg("-nocomments").output().map_err(|e| format!("nncp-cfgnew: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let block = &text[text.find("self: {").ok_or("nncp-cfgnew printed no self section")?..];
    ["id", "exchpub", "exchprv", "signpub", "signprv", "noiseprv", "noisepub"]
        .iter()
        .map(|k| {
            let at =
                block.find(&format!("{k}: ")).ok_or(format!("nncp-cfgnew printed no {k}"))? + k.len() + 2;
            let v = block[at..].split_whitespace().next().ok_or(format!("empty {k}"))?;
            Ok((k.to_string(), v.trim_end_matches(',').to_string()))
        })
        .collect()
}

/// An NNCP config for `me` in `dir`, knowing `other` as `other_name`.
fn config(dir: &Path, me: &[(String, String)], other_name: &str, other: &[(String, String)]) -> String {
    let obj = |keys: &[(String, String)], public_only: bool| {
        keys.iter()
            .filter(|(k, _)| !public_only || !k.ends_with("prv"))
            .map(|(k, v)| format!("\"{k}\": \"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{{\"spool\": \"{d}/spool\", \"log\": \"{d}/log\", \"self\": {{{}}}, \"neigh\": {{\"self\": {{{}}}, \"{other_name}\": {{{}, \"incoming\": \"{d}/in\"}}}}}}",
        obj(me, false),
        obj(me, true),
        obj(other, true),
        d = dir.display()
    )
}

/// Alice and Bob under `work`, each knowing the other.
pub fn pair(work: &Path) -> Result<(Node, Node), String> {
    let node = |name: &'static str| -> Result<Node, String> {
        let dir = work.join(name);
        for sub in ["spool", "in"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        Ok(Node { name, cfg: dir.join("cfg.hjson"), dir })
    };
    let (alice, bob) = (node("alice")?, node("bob")?);
    let (ka, kb) = (keys()?, keys()?);
    let write = |n: &Node, text: String| {
        std::fs::write(&n.cfg, text).map_err(|e| format!("{}: {e}", n.cfg.display()))
    };
    write(&alice, config(&alice.dir, &ka, bob.name, &kb))?;
    write(&bob, config(&bob.dir, &kb, alice.name, &ka))?;
    Ok((alice, bob))
}

/// Queues `file` at `from` for `to` (`nncp-file`).
pub fn queue(from: &Node, to: &Node, file: &Path) -> Result<(), String> {
    let out = Command::new("nncp-file")
        .arg("-cfg")
        .arg(&from.cfg)
        .arg("-quiet")
        .arg(file)
        .arg(format!("{}:", to.name))
        .output()
        .map_err(|e| format!("nncp-file: {e}"))?;
    if !out.status.success() {
        return Err(format!("nncp-file failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

/// Tosses what `node` received (`nncp-toss`), so that files land in its incoming directory.
pub fn toss(node: &Node) -> Result<(), String> {
    let out = Command::new("nncp-toss")
        .arg("-cfg")
        .arg(&node.cfg)
        .arg("-quiet")
        .output()
        .map_err(|e| format!("nncp-toss: {e}"))?;
    if !out.status.success() {
        return Err(format!("nncp-toss failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

/// When `node`'s log first records a whole packet received (`Got packet ... 100% ... done`).
pub fn got_packet_at(node: &Node) -> Option<SystemTime> {
    let text = std::fs::read_to_string(node.log()).ok()?;
    // Records are blocks of "Key: value" lines separated by blank lines; `When:` comes first.
    text.split("\n\n").find_map(|record| {
        let msg = record.lines().find_map(|l| l.strip_prefix("Msg: "))?;
        if !(msg.starts_with("Got packet") && msg.contains("100%") && msg.ends_with("done")) {
            return None;
        }
        parse_utc(record.lines().find_map(|l| l.strip_prefix("When: "))?)
    })
}

/// `2026-12-03T04:07:47.932046375Z` as a time.
fn parse_utc(s: &str) -> Option<SystemTime> {
    let s = s.trim().strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let nanos: u32 = format!("{:0<9}", &frac[..frac.len().min(9)]).parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(SystemTime::UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

/// What carries NNCP's bytes between the two ends of the line.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    /// `strand pipe DEVICE --baud BAUD` on both ends.
    Strand {
        /// The strand binary.
        strand: &'a Path,
        /// Line rate, bit/s.
        baud: u64,
    },
    /// `socat` on the bare line (no strand: NNCP's own protocol against the line's damage).
    Socat,
}

impl Transport<'_> {
    /// The command serving the line end `device` on its stdin and stdout.
    fn argv(&self, device: &Path) -> Vec<String> {
        match self {
            Transport::Strand { strand, baud } => vec![
                strand.display().to_string(),
                "pipe".into(),
                device.display().to_string(),
                "--baud".into(),
                baud.to_string(),
            ],
            Transport::Socat => {
                vec![
                    "socat".into(),
                    "-b65536".into(),
                    "STDIO".into(),
                    format!("FILE:{},rawer", device.display()),
                ]
            }
        }
    }

    /// Its name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Strand { .. } => "strand",
            Transport::Socat => "raw",
        }
    }
}

/// One NNCP call from alice to bob over the line.
pub struct Call<'a> {
    /// A fresh directory for the FIFOs, the wrapper and the logs of this call.
    pub work: &'a Path,
    /// The calling node (`nncp-call`).
    pub alice: &'a Node,
    /// The called node (`nncp-daemon -ucspi`).
    pub bob: &'a Node,
    /// Alice's end of the line.
    pub near: &'a Path,
    /// Bob's end of the line.
    pub far: &'a Path,
    /// What runs on both ends.
    pub transport: Transport<'a>,
    /// How long the call may take before it is killed (the other processes get 30 s more to end).
    pub limit: Duration,
}

/// How a call went: each process's end, and when it started.
#[derive(Debug)]
pub struct CallOutcome {
    /// Wall-clock time just before `nncp-call` was launched.
    pub started: SystemTime,
    /// Seconds until `nncp-call` exited.
    pub call_secs: f64,
    /// `nncp-call`'s status, or why it has none (a timeout).
    pub call: Result<ExitStatus, String>,
    /// Exit code of the transport `nncp-call` ran on end A (recorded by a wrapper: NNCP does not say).
    pub near: Result<i32, String>,
    /// The transport serving the daemon's FIFOs on end B.
    pub far: Result<ExitStatus, String>,
    /// `nncp-daemon -ucspi`.
    pub daemon: Result<ExitStatus, String>,
    /// The last lines of each log, for failure messages.
    pub last_words: Vec<(&'static str, String)>,
}

impl CallOutcome {
    /// Every way the call failed: a timeout or non-zero exit of the call or of either transport end.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let status = |what: &str, s: &Result<ExitStatus, String>| match s {
            Ok(st) if st.success() => None,
            Ok(st) => Some(format!("{what}: {}", describe(*st))),
            Err(e) => Some(format!("{what}: {e}")),
        };
        out.extend(status("nncp-call", &self.call));
        match &self.near {
            Ok(0) => {}
            Ok(code) => out.push(format!("near end (the call's transport): exit {code}")),
            Err(e) => out.push(format!("near end (the call's transport): {e}")),
        }
        out.extend(status("far end (the daemon's transport)", &self.far));
        out
    }

    /// Seconds from launching the call until `bob`'s log recorded the packet done.
    pub fn done_secs(&self, bob: &Node) -> Option<f64> {
        got_packet_at(bob)?.duration_since(self.started).ok().map(|d| d.as_secs_f64())
    }

    /// The failures, how the daemon ended, and the last words of every process, for a message.
    pub fn describe(&self) -> String {
        let mut s = self.failures().join("; ");
        match &self.daemon {
            Ok(st) if st.success() => {}
            Ok(st) => s.push_str(&format!("; nncp-daemon: {}", describe(*st))),
            Err(e) => s.push_str(&format!("; nncp-daemon: {e}")),
        }
        for (who, words) in &self.last_words {
            if !words.is_empty() {
                s.push_str(&format!("\n  {who}: {words}"));
            }
        }
        s
    }
}

/// Runs `call`: the far transport and the daemon joined by two FIFOs, then `nncp-call` with the near
/// transport as its pipe address. Returns once every process has ended or been killed (nothing is
/// left running).
pub fn call_over_fifos(call: &Call) -> Result<CallOutcome, String> {
    let work = call.work;
    let (to_line, from_line) = (work.join("daemon-out.fifo"), work.join("daemon-in.fifo"));
    for f in [&to_line, &from_line] {
        nix::unistd::mkfifo(f, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| format!("mkfifo {}: {e}", f.display()))?;
    }
    // Bob's end as a user's shell starts it: the transport reads what the daemon writes and writes what
    // it reads. Each shell opens the FIFOs in the order written; the transport's shell blocks opening
    // daemon-out for reading until the daemon's shell opens it for writing, and the daemon's shell then
    // blocks opening daemon-in until the transport's shell opens it for writing, so neither waits for
    // ever. `exec` keeps the shell's pid, so the status is the program's own.
    let mut far_cmd = Command::new("sh");
    far_cmd
        .args(["-c", r#"to=$1; from=$2; shift 2; exec "$@" < "$to" > "$from""#, "sh"])
        .arg(&to_line)
        .arg(&from_line)
        .args(call.transport.argv(call.far))
        .stdin(Stdio::null());
    let mut far = Group::spawn("far end", far_cmd, &work.join("far.log"), false)
        .map_err(|e| format!("cannot start the far end: {e}"))?;
    let mut daemon_cmd = Command::new("sh");
    daemon_cmd
        .args(["-c", r#"exec nncp-daemon -ucspi -quiet -cfg "$1" > "$2" < "$3""#, "sh"])
        .arg(&call.bob.cfg)
        .arg(&to_line)
        .arg(&from_line)
        .stdin(Stdio::null());
    let mut daemon = Group::spawn("nncp-daemon", daemon_cmd, &work.join("daemon.log"), false)
        .map_err(|e| format!("cannot start nncp-daemon: {e}"))?;

    // NNCP runs a pipe address itself (split at spaces, no shell) and does not report how the command
    // ended: a small wrapper records the near transport's exit code.
    let argv = call.transport.argv(call.near);
    let wrapper = work.join("near.sh");
    let (near_log, near_rc) = (work.join("near.log"), work.join("near.rc"));
    for p in argv
        .iter()
        .map(String::as_str)
        .chain([wrapper.to_str().unwrap_or(" "), near_log.to_str().unwrap_or(" ")])
    {
        if p.contains(char::is_whitespace) || p.contains('\'') {
            return Err(format!("NNCP pipe addresses cannot carry {p:?} (spaces or quotes)"));
        }
    }
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n# The call's transport; its exit code goes to near.rc (nncp-call does not report it).\n\
             \"$@\" 2>>'{log}'\necho $? > '{rc}.tmp' && mv '{rc}.tmp' '{rc}'\n",
            log = near_log.display(),
            rc = near_rc.display()
        ),
    )
    .map_err(|e| format!("{}: {e}", wrapper.display()))?;
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", wrapper.display()))?;
    let address = format!("|{} {}", wrapper.display(), argv.join(" "));
    let mut call_cmd = Command::new("nncp-call");
    call_cmd
        .args(["-quiet", "-onlinedeadline", "2", "-cfg"])
        .arg(&call.alice.cfg)
        .arg(call.bob.name)
        .arg(&address)
        .stdin(Stdio::null());
    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut caller = Group::spawn("nncp-call", call_cmd, &work.join("call.log"), true)
        .map_err(|e| format!("cannot start nncp-call: {e}"))?;
    let call_status = caller.wait_for(call.limit);
    let call_secs = t0.elapsed().as_secs_f64();
    // After a call that ended, the others get 30 s to finish in order; after a timeout, 5 s.
    let grace = Duration::from_secs(if call_status.is_some() { 30 } else { 5 });
    let ended = |g: &mut Group, limit| {
        g.wait_for(limit).ok_or_else(|| format!("still running {limit:?} after the call"))
    };
    let far_status = ended(&mut far, grace);
    let daemon_status = ended(&mut daemon, Duration::from_secs(5));
    let deadline = Instant::now() + grace;
    let near = loop {
        if let Ok(text) = std::fs::read_to_string(&near_rc) {
            break text.trim().parse::<i32>().map_err(|_| format!("wrapper wrote {text:?}"));
        }
        if Instant::now() >= deadline {
            break Err(if caller.members().is_empty() {
                "no exit code recorded: killed together with its wrapper".to_string()
            } else {
                format!("still running {grace:?} after the call")
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let last_words = vec![
        ("nncp-call", caller.last_words()),
        ("near end", crate::procs::shorten(last_line(&near_log).as_str(), 160)),
        ("far end", far.last_words()),
        ("nncp-daemon", daemon.last_words()),
    ];
    for g in [&mut caller, &mut far, &mut daemon] {
        g.kill_all();
    }
    Ok(CallOutcome {
        started,
        call_secs,
        call: call_status.ok_or_else(|| format!("timed out after {:?}", call.limit)),
        near,
        far: far_status,
        daemon: daemon_status,
        last_words,
    })
}

/// The last non-empty line of a file.
fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The whole exchange as the tests and the benchmark run it: queue `content` at alice as `name`, call
/// over the line, toss at bob, and compare. Returns the outcome and whether bob got `content` exactly.
pub fn exchange(
    call: &Call,
    name: &str,
    content: &[u8],
) -> Result<(CallOutcome, Result<(), String>), String> {
    let file = call.work.join(name);
    std::fs::write(&file, content).map_err(|e| format!("{}: {e}", file.display()))?;
    queue(call.alice, call.bob, &file)?;
    let outcome = call_over_fifos(call)?;
    let delivered = toss(call.bob).and_then(|()| {
        let got = std::fs::read(call.bob.incoming().join(name))
            .map_err(|_| format!("{name} did not reach bob's incoming directory"))?;
        if got == content {
            Ok(())
        } else {
            Err(format!("{name} differs: {} bytes, expected {}", got.len(), content.len()))
        }
    });
    Ok((outcome, delivered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nncp_log_times() {
        let t = parse_utc("2026-12-03T04:07:47.932046375Z").unwrap();
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        // date -u -d 2026-12-03T04:07:47Z +%s
        assert_eq!(d.as_secs(), 1_796_270_867);
        assert_eq!(d.subsec_nanos(), 932_046_375);
        let t = parse_utc("2000-02-29T00:00:00.5Z").unwrap();
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap(), Duration::from_millis(951_782_400_500));
        assert_eq!(parse_utc("2000-02-29 00:00:00"), None);
    }

    #[test]
    fn finds_the_done_record() {
        let dir = std::env::temp_dir().join(format!("nncp-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node = Node { name: "bob", cfg: dir.join("cfg"), dir: dir.clone() };
        std::fs::write(
            node.log(),
            "When: 2026-12-03T04:07:41.1Z\nWho: sp-info\nMsg: Packet X (1.0 MiB) (nice B): 0%\n\n\
             When: 2026-12-03T04:07:47.25Z\nWho: sp-file-done\nMsg: Got packet X 100% (1.0 MiB / 1.0 MiB): done\n\n",
        )
        .unwrap();
        let at = got_packet_at(&node).unwrap();
        assert_eq!(
            at.duration_since(parse_utc("2026-12-03T04:07:41.1Z").unwrap()).unwrap(),
            Duration::from_millis(6150)
        );
        std::fs::write(
            node.log(),
            "When: 2026-12-03T04:07:41.1Z\nMsg: Got packet X 40% (0.4 MiB / 1.0 MiB)\n",
        )
        .unwrap();
        assert_eq!(got_packet_at(&node), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
