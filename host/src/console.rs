//! `strand console PORT`: a raw terminal on a plain serial line, like picocom or tio — for the
//! serial console of a router, a board's boot loader, a modem. No strand peer is involved: bytes
//! typed go to the port as they are, bytes from the port go to the screen.
//!
//! The escape key (Ctrl-T, `--escape` changes the letter) followed by a command key:
//! `q` quit, `b` next baud rate, `p` next parity, `f` flow control on/off, `e` local echo on/off,
//! `l` logging on/off (with `--log`), `?` the help line; the escape key twice sends it once.
//! When the port goes away (a USB adapter unplugged) the console says so and reopens it every
//! half second until it is back, then carries on. The end of stdin (when it is not a terminal)
//! ends the console too, after what the port sends within [`DRAIN`].

use crate::address::Address;
use crate::transport::{self, Duplex, Flow, Parity, SerialSettings};
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

/// How often a vanished port is tried again.
const REOPEN_EVERY: Duration = Duration::from_millis(500);
/// How long output is still shown after stdin ended.
pub const DRAIN: Duration = Duration::from_millis(300);
/// The rates `b` steps through.
const BAUDS: [u32; 12] =
    [1200, 9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600, 1_000_000, 2_000_000, 3_000_000];

/// `strand console`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ConsoleArgs {
    /// The serial port (a device path such as /dev/ttyUSB0, or a /dev/serial/by-id path).
    pub port: PathBuf,
    /// Line rate in bit/s.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Parity.
    #[arg(long, value_enum, default_value_t = Parity::None)]
    pub parity: Parity,
    /// Flow control.
    #[arg(long, value_enum, default_value_t = Flow::None)]
    pub flow: Flow,
    /// Append everything received from the port to FILE.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Show what is typed (for devices that do not echo it).
    #[arg(long)]
    pub echo: bool,
    /// The escape key: Ctrl and this letter.
    #[arg(long, default_value_t = 't', value_parser = parse_letter)]
    pub escape: char,
}

fn parse_letter(s: &str) -> Result<char, String> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => Ok(c.to_ascii_lowercase()),
        _ => Err("one letter, a to z (Ctrl and that letter is the escape key)".into()),
    }
}

/// The help line the escape key's `?` shows.
pub fn help(escape: char) -> String {
    let e = escape.to_ascii_uppercase();
    format!(
        "Ctrl-{e} then: q quit, b next baud, p next parity, f flow control, e local echo, l logging, ? help, Ctrl-{e} send Ctrl-{e}"
    )
}

/// What the console is doing; the command keys change it.
struct State {
    args: ConsoleArgs,
    serial: SerialSettings,
    echo: bool,
    log: Option<std::fs::File>,
    logging: bool,
    /// The escape key was pressed; the next key is a command.
    escaped: bool,
}

/// What a key from stdin asks for.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// Send these bytes to the port.
    Send(Vec<u8>),
    /// Reopen the port with the new settings.
    Reopen,
    /// Leave.
    Quit,
}

impl State {
    fn note(&self, text: &str) {
        // Raw mode: \r\n, and on a line of its own.
        eprint!("\r\n[strand console: {text}]\r\n");
    }

    fn settings(&self) -> String {
        let s = &self.serial;
        format!(
            "{} at {} baud, parity {:?}, flow {:?}, echo {}, log {}",
            self.args.port.display(),
            s.baud,
            s.parity,
            s.flow,
            if self.echo { "on" } else { "off" },
            if self.log.is_none() {
                "none"
            } else if self.logging {
                "on"
            } else {
                "off"
            },
        )
        .to_lowercase()
    }

    /// Interprets typed bytes: escape commands, everything else for the port.
    fn keys(&mut self, bytes: &[u8]) -> Vec<Action> {
        let esc = (self.args.escape as u8) & 0x1f;
        let mut actions = Vec::new();
        let mut plain = Vec::new();
        for &b in bytes {
            if !self.escaped {
                if b == esc {
                    self.escaped = true;
                } else {
                    plain.push(b);
                }
                continue;
            }
            self.escaped = false;
            if b == esc {
                plain.push(b);
                continue;
            }
            if !plain.is_empty() {
                actions.push(Action::Send(std::mem::take(&mut plain)));
            }
            match b.to_ascii_lowercase() {
                b'q' | b'x' => {
                    actions.push(Action::Quit);
                    return actions;
                }
                b'b' => {
                    let next = BAUDS.iter().copied().find(|&r| r > self.serial.baud).unwrap_or(BAUDS[0]);
                    self.serial.baud = next;
                    actions.push(Action::Reopen);
                }
                b'p' => {
                    self.serial.parity = match self.serial.parity {
                        Parity::None => Parity::Even,
                        Parity::Even => Parity::Odd,
                        Parity::Odd => Parity::None,
                    };
                    actions.push(Action::Reopen);
                }
                b'f' => {
                    self.serial.flow = match self.serial.flow {
                        Flow::None => Flow::RtsCts,
                        Flow::RtsCts => Flow::None,
                    };
                    actions.push(Action::Reopen);
                }
                b'e' => {
                    self.echo = !self.echo;
                    self.note(&self.settings());
                }
                b'l' if self.log.is_some() => {
                    self.logging = !self.logging;
                    self.note(&self.settings());
                }
                b'l' => self.note("no log file: start with --log FILE"),
                _ => self.note(&help(self.args.escape)),
            }
        }
        if !plain.is_empty() {
            actions.push(Action::Send(plain));
        }
        actions
    }
}

/// An open port: its write half here, its read half in a task that forwards what it reads
/// (an empty chunk: the port is gone).
struct Port {
    /// Which opening this is: chunks of an earlier one still queued are dropped.
    id: u64,
    wr: WriteHalf<Box<dyn Duplex>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Port {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn open(
    state: &State,
    tx: &tokio::sync::mpsc::Sender<(u64, Vec<u8>)>,
    id: u64,
) -> Result<Port, transport::OpenError> {
    let opened = transport::open(&Address::Serial(state.args.port.clone()), &state.serial).await?;
    let (rd, wr): (ReadHalf<Box<dyn Duplex>>, _) = tokio::io::split(opened.duplex);
    let tx = tx.clone();
    let reader = tokio::spawn(async move {
        let mut rd = rd;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = rd.read(&mut buf).await.unwrap_or(0);
            if tx.send((id, buf[..n].to_vec())).await.is_err() || n == 0 {
                return;
            }
        }
    });
    Ok(Port { id, wr, reader })
}

/// Runs the console until `q` or the end of stdin.
pub async fn run(args: &ConsoleArgs) -> Result<(), String> {
    let log = match &args.log {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let serial = SerialSettings { baud: args.baud, parity: args.parity, flow: args.flow };
    let mut state =
        State { args: args.clone(), serial, echo: args.echo, logging: log.is_some(), log, escaped: false };
    let (tx, mut from_port) = tokio::sync::mpsc::channel::<(u64, Vec<u8>)>(8);
    let mut opened = 0u64;
    // The first open must work: a wrong path is an error, not something to wait for.
    let mut port = Some(open(&state, &tx, opened).await.map_err(|e| e.to_string())?);
    let _raw = crate::shell::tty::RawMode::enable(std::io::stdin().as_fd());
    state.note(&format!("{}; {}", state.settings(), help(args.escape)));
    let mut stdin = tokio::io::stdin();
    let mut stdout = std::io::stdout();
    let mut kbuf = vec![0u8; 1024];
    let mut stdin_done: Option<tokio::time::Instant> = None;
    let gone =
        |state: &State| state.note(&format!("{} is gone; waiting for it to come back", args.port.display()));
    loop {
        let drain_end = async {
            match stdin_done {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = drain_end => return Ok(()),
            n = stdin.read(&mut kbuf), if stdin_done.is_none() => {
                let n = n.unwrap_or(0);
                if n == 0 {
                    stdin_done = Some(tokio::time::Instant::now() + DRAIN);
                    continue;
                }
                for action in state.keys(&kbuf[..n]) {
                    match action {
                        Action::Quit => return Ok(()),
                        Action::Send(bytes) => {
                            if state.echo {
                                let _ = stdout.write_all(&bytes).and_then(|()| stdout.flush());
                            }
                            if let Some(p) = port.as_mut() {
                                if p.wr.write_all(&bytes).await.and(p.wr.flush().await).is_err() {
                                    port = None;
                                    gone(&state);
                                }
                            }
                        }
                        Action::Reopen => {
                            port = None; // closed before reopening: the port is opened exclusively
                            opened += 1;
                            match open(&state, &tx, opened).await {
                                Ok(p) => {
                                    port = Some(p);
                                    state.note(&state.settings());
                                }
                                Err(e) => state.note(&format!("{e}; trying again")),
                            }
                        }
                    }
                }
            }
            Some((id, bytes)) = from_port.recv() => {
                if port.as_ref().is_none_or(|p| p.id != id) {
                    continue; // an earlier opening's last words
                }
                if bytes.is_empty() {
                    if port.take().is_some() {
                        gone(&state);
                    }
                    continue;
                }
                let _ = stdout.write_all(&bytes).and_then(|()| stdout.flush());
                if state.logging {
                    if let Some(log) = state.log.as_mut() {
                        if let Err(e) = log.write_all(&bytes) {
                            state.logging = false;
                            state.note(&format!("logging stopped: {e}"));
                        }
                    }
                }
            }
            _ = tokio::time::sleep(REOPEN_EVERY), if port.is_none() => {
                opened += 1;
                if let Ok(p) = open(&state, &tx, opened).await {
                    port = Some(p);
                    state.note(&format!("{} is back", args.port.display()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let args = ConsoleArgs {
            port: "/dev/null".into(),
            baud: 115_200,
            parity: Parity::None,
            flow: Flow::None,
            log: None,
            echo: false,
            escape: 't',
        };
        State {
            serial: SerialSettings::default(),
            args,
            echo: false,
            log: None,
            logging: false,
            escaped: false,
        }
    }

    #[test]
    fn escape_commands() {
        let mut s = state();
        assert_eq!(s.keys(b"ab"), [Action::Send(b"ab".to_vec())]);
        assert_eq!(s.keys(b"x\x14"), [Action::Send(b"x".to_vec())], "the escape waits for its command");
        assert_eq!(s.keys(b"b"), [Action::Reopen]);
        assert_eq!(s.serial.baud, 230_400);
        assert_eq!(s.keys(b"\x14\x14"), [Action::Send(vec![0x14])], "escape twice sends it");
        assert_eq!(s.keys(b"\x14p"), [Action::Reopen]);
        assert_eq!(s.serial.parity, Parity::Even);
        assert_eq!(s.keys(b"\x14f"), [Action::Reopen]);
        assert_eq!(s.serial.flow, Flow::RtsCts);
        assert!(s.keys(b"\x14e").is_empty());
        assert!(s.echo);
        assert_eq!(s.keys(b"k\x14qzz"), [Action::Send(b"k".to_vec()), Action::Quit], "nothing after quit");
        s.serial.baud = 3_000_000;
        s.keys(b"\x14b");
        assert_eq!(s.serial.baud, 1200, "the rates wrap around");
        assert!(parse_letter("T").is_ok() && parse_letter("1").is_err() && parse_letter("ab").is_err());
    }
}
