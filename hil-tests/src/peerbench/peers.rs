//! The programs compared and how each is driven over the two ptys: strand, gensio relpkt (`gensiot`),
//! ZMODEM (lrzsz `sz`/`rz`) and C-Kermit. Each peer gets a receiver command (started first, on end B,
//! writing into a directory) and a sender command (end A, sending one file); both must exit 0 and the
//! received file must hash like the source.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// relpkt over msgdelim as the gensio issue measured it: 1019-byte packets (msgdelim's 1024-byte buffer
/// less relpkt's 5-byte header) and 64 packets in flight, the largest the stack allows.
pub const RELPKT_STACK: &str = "relpkt(max_pktsize=1019,max_packets=64),msgdelim(readbuf=1024,writebuf=1024)";

/// C-Kermit's sliding-window, long-packet settings (both ends).
/// - `window 8`, `packet-length 1024`, `block-check 3` (CRC-16), streaming off: the settings.
/// - `delay 0`: the default 1 s pause before the first packet is for a human to escape back to a
///   terminal; `exit hangup off`: the default drops DTR on exit and sleeps 0.5 s; `set protocol kermit
///   {} {} {}`: the default first sends an auto-upload command ("kermit -ir") and sleeps 0.4 s. None of
///   them is part of the protocol, and together they cost ~0.9 s per transfer (measured with strace).
/// - `carrier-watch off`, `flow none`: a pty has no modem lines and the emulated line no RTS/CTS.
/// - Never `set prefixing none`: it reports success on truncated files.
const KERMIT_SETTINGS: &str = "set carrier-watch off, set flow none, set exit hangup off, set delay 0, \
     set protocol kermit {} {} {}, set file type binary, set window 8, set receive packet-length 1024, \
     set send packet-length 1024, set block-check 3, set streaming off";

/// One of the compared programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// `strand send` / `strand recv`.
    Strand,
    /// gensio relpkt over msgdelim (`gensiot`).
    Relpkt,
    /// ZMODEM, lrzsz `sz`/`rz` with 8 KiB blocks.
    Zmodem,
    /// C-Kermit with sliding windows and long packets.
    Kermit,
}

/// Everything a peer's commands need for one run.
pub struct Ends<'a> {
    /// The `strand` binary.
    pub strand: &'a Path,
    /// Line rate in bit/s.
    pub rate: u64,
    /// The sender's pty (`/dev/pts/N`).
    pub a: &'a Path,
    /// The receiver's pty.
    pub b: &'a Path,
    /// The file to send.
    pub src: &'a Path,
    /// The receiver's directory (empty at the start).
    pub out: &'a Path,
    /// The ZMODEM tcdrain shim, if it was built.
    pub shim: Option<&'a Path>,
    /// The line emulator's pid (for the shim).
    pub linkem_pid: u32,
}

/// A command to start, and whether its stdout should go to the log (false when it is the pty).
pub struct Launch {
    /// The command, ready to spawn.
    pub cmd: Command,
    /// Whether stdout is free for the log.
    pub stdout_to_log: bool,
}

impl Peer {
    /// All peers, in table order.
    pub const ALL: [Peer; 4] = [Peer::Strand, Peer::Relpkt, Peer::Zmodem, Peer::Kermit];

    /// Short name (CSV `tool` column, `--tools`).
    pub fn name(self) -> &'static str {
        match self {
            Peer::Strand => "strand",
            Peer::Relpkt => "relpkt",
            Peer::Zmodem => "zmodem",
            Peer::Kermit => "kermit",
        }
    }

    /// Name for tables and plots.
    pub fn title(self) -> &'static str {
        match self {
            Peer::Strand => "strand",
            Peer::Relpkt => "gensio relpkt",
            Peer::Zmodem => "ZMODEM (lrzsz)",
            Peer::Kermit => "C-Kermit",
        }
    }

    /// The peer with this short name.
    pub fn from_name(name: &str) -> Option<Peer> {
        Peer::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The program that must be on PATH, and the Debian package that has it (None for strand).
    fn program(self) -> Option<(&'static str, &'static str)> {
        match self {
            Peer::Strand => None,
            Peer::Relpkt => Some(("gensiot", "gensio-bin")),
            Peer::Zmodem => Some(("sz", "lrzsz")),
            Peer::Kermit => Some(("kermit", "ckermit")),
        }
    }

    /// The settings used, in words (CSV `settings` column).
    pub fn settings(self, rate: u64, shim: bool) -> String {
        match self {
            Peer::Strand => format!("strand recv --dir D / strand send --baud {rate} FILE; default config"),
            Peer::Relpkt => format!(
                "{RELPKT_STACK},serialdev,DEV,{rate}N81,local; receiver -a with conacc; both exit when the \
                 sender closes at end of file"
            ),
            Peer::Zmodem => format!(
                "sz -b -8 FILE / rz -b -y, stdin+stdout on the pty; {}",
                if shim { "tcdrain shim (LD_PRELOAD)" } else { "NO tcdrain shim (gcc failed)" }
            ),
            Peer::Kermit => format!("set speed {rate}, {KERMIT_SETTINGS}; send FILE / receive"),
        }
    }

    /// The receiver and sender commands of one run, or why they cannot run.
    pub fn commands(self, e: &Ends) -> Result<(Launch, Launch), String> {
        if let Some((program, package)) = self.program() {
            if !on_path(program) {
                return Err(format!("{program} not found (apt-get install {package})"));
            }
        }
        let rate = e.rate.to_string();
        Ok(match self {
            Peer::Strand => {
                let mut recv = Command::new(e.strand);
                recv.arg("recv")
                    .arg(e.b)
                    .args(["--baud", &rate, "--no-progress", "--stats", "--dir"])
                    .arg(e.out);
                let mut send = Command::new(e.strand);
                send.arg("send").arg(e.a).args(["--baud", &rate, "--no-progress", "--stats"]).arg(e.src);
                (plain(recv), plain(send))
            }
            Peer::Relpkt => {
                let stack = |dev: &Path, accept: bool| {
                    let conacc = if accept { "conacc," } else { "" };
                    format!("{RELPKT_STACK},{conacc}serialdev,{},{rate}N81,local", dev.display())
                };
                let mut recv = Command::new("gensiot");
                recv.arg("-i").arg(format!("file(outfile={},create)", received(e).display()));
                recv.arg("-a").arg(stack(e.b, true));
                let mut send = Command::new("gensiot");
                send.arg("-i").arg(format!("file(infile={})", e.src.display())).arg(stack(e.a, false));
                (plain(recv), plain(send))
            }
            Peer::Zmodem => {
                let mut recv = Command::new("rz");
                recv.args(["-b", "-y"]).current_dir(e.out);
                let mut send = Command::new("sz");
                send.args(["-b", "-8"]).arg(e.src);
                (on_pty(recv, e.b, e)?, on_pty(send, e.a, e)?)
            }
            Peer::Kermit => {
                // In batch mode Kermit prints no error; `exit 1 TEXT` puts the transfer's own message
                // ("Too many retries") in the log, where the failure reason is taken from.
                let script = |line: &Path, action: &str, verb: &str| {
                    format!(
                        "set line {}, set speed {rate}, {KERMIT_SETTINGS}, {action}, \
                         if fail exit 1 {verb} failed: \\v(xfermsg), exit 0",
                        line.display()
                    )
                };
                let mut recv = Command::new("kermit");
                recv.args(["-Y", "-B", "-C"]).arg(script(e.b, "receive", "receive")).current_dir(e.out);
                let mut send = Command::new("kermit");
                send.args(["-Y", "-B", "-C"]).arg(script(e.a, &format!("send {}", e.src.display()), "send"));
                (plain(recv), plain(send))
            }
        })
    }

    /// The version, as the program reports it, plus the Debian package version when there is one.
    pub fn version(self, strand: &Path) -> String {
        let Some((program, package)) = self.program() else {
            return first_line(Command::new(strand).arg("--version")).unwrap_or_else(|| "unknown".into());
        };
        if !on_path(program) {
            return "not installed".into();
        }
        let own = match self {
            // "Version 2.6.2"
            Peer::Relpkt => first_line(Command::new("gensiot").arg("--version"))
                .map(|l| format!("gensio {}", l.trim_start_matches("Version").trim())),
            // "sz (lrzsz) 0.12.21rc"
            Peer::Zmodem => first_line(Command::new("sz").arg("--version")),
            // "C-Kermit 10.0 Beta.08, 15 Dec 2022, for Linux+SSL (64-bit)", after a copyright banner.
            Peer::Kermit => line_starting(
                Command::new("kermit").args(["-Y", "-B", "-C", "show version, exit"]),
                "C-Kermit",
            )
            .map(|l| l.split(", for ").next().unwrap_or(&l).to_string()),
            Peer::Strand => None,
        };
        let deb = first_line(Command::new("dpkg-query").args(["-W", "-f=${Version}", package]));
        match (own, deb) {
            (Some(v), Some(d)) => format!("{v} (Debian {package} {d})"),
            (Some(v), None) => v,
            (None, Some(d)) => format!("Debian {package} {d}"),
            (None, None) => "unknown".into(),
        }
    }
}

/// Where the receiver puts the file.
pub fn received(e: &Ends) -> PathBuf {
    e.out.join(e.src.file_name().unwrap_or_default())
}

/// A command with no stdin whose stdout goes to the log.
fn plain(mut cmd: Command) -> Launch {
    cmd.stdin(Stdio::null());
    Launch { cmd, stdout_to_log: true }
}

/// A command whose stdin and stdout are the pty `dev` (how sz/rz talk to a serial line), with the
/// tcdrain shim preloaded when there is one.
fn on_pty(mut cmd: Command, dev: &Path, e: &Ends) -> Result<Launch, String> {
    let open = || {
        File::options()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY)
            .open(dev)
            .map_err(|err| format!("cannot open {}: {err}", dev.display()))
    };
    cmd.stdin(open()?).stdout(open()?);
    if let Some(shim) = e.shim {
        cmd.env("LD_PRELOAD", shim).env("PEERBENCH_LINKEM_PID", e.linkem_pid.to_string());
    }
    Ok(Launch { cmd, stdout_to_log: false })
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The first non-empty line a quick command prints (stdout, else stderr), trimmed.
fn first_line(cmd: &mut Command) -> Option<String> {
    line_starting(cmd, "")
}

/// The first non-empty line starting with `prefix` that a quick command prints (stdout, else stderr).
fn line_starting(cmd: &mut Command, prefix: &str) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).output().ok()?;
    let text =
        String::from_utf8_lossy(if out.stdout.is_empty() { &out.stderr } else { &out.stdout }).into_owned();
    text.lines().map(str::trim).find(|l| !l.is_empty() && l.starts_with(prefix)).map(str::to_string)
}

/// Builds the ZMODEM tcdrain shim (`hil-tests/bench/tcdrain_shim.c`, compiled into the binary) with gcc
/// into `dir`; returns the library, or why not.
pub fn build_shim(dir: &Path) -> Result<PathBuf, String> {
    let source = dir.join("tcdrain_shim.c");
    let library = dir.join("tcdrain_shim.so");
    std::fs::write(&source, include_str!("../../bench/tcdrain_shim.c"))
        .map_err(|e| format!("cannot write {}: {e}", source.display()))?;
    let out = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&library)
        .arg(&source)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !out.status.success() {
        return Err(format!("gcc failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(library)
}
