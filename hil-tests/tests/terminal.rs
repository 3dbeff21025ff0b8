//! The terminal commands on pseudo-terminals: `strand shell` against `strand serve --allow-shell`
//! over an emulated line (the client on a pty of the test's, whose size the far shell sees and
//! follows), and `strand list`.

mod common;

use common::*;
use nix::pty::{openpty, Winsize};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

nix::ioctl_write_ptr_bad!(set_winsize, nix::libc::TIOCSWINSZ, Winsize);

/// A pty whose slave a child uses as its terminal, and everything read from the master.
struct Terminal {
    master: File,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn new(rows: u16, cols: u16) -> (Terminal, OwnedFd) {
        let ws = Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = openpty(Some(&ws), None).unwrap();
        let master = File::from(pty.master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().unwrap(), seen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (Terminal { master, seen }, pty.slave)
    }

    fn type_in(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
    }

    fn resize(&self, rows: u16, cols: u16) {
        let ws = Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        unsafe { set_winsize(self.master.as_raw_fd(), &ws) }.unwrap();
    }

    /// Waits until the screen shows `what`.
    fn expect(&self, what: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let text = String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned();
            if text.contains(what) {
                return;
            }
            assert!(Instant::now() < deadline, "the terminal never showed {what:?}; it shows:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn strand_on(slave: &OwnedFd, args: &[&str]) -> Child {
    Command::new(strand())
        .args(args)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shell_runs_commands_on_the_far_side_and_follows_the_window_size() {
    let line = Linkem::start(&["--baud", "2000000", "--ber", "1e-6", "--latency-ms", "1", "--seed", "41"]);
    let mut server = Command::new(strand())
        .args(["serve", line.b.to_str().unwrap(), "--baud", "2000000", "--allow-shell"])
        .env("SHELL", "/bin/sh")
        .env("ENV", "/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut term, slave) = Terminal::new(33, 101);
    let mut client = strand_on(&slave, &["shell", line.a.to_str().unwrap(), "--baud", "2000000"]);
    // The far shell's prompt: the client's terminal is raw by then (keys typed before that are
    // cooked by the local terminal, as with ssh).
    term.expect(if is_root() { "# " } else { "$ " }, Duration::from_secs(20));
    term.type_in("stty size; echo far-$((6*7))-side\r");
    term.expect("33 101", Duration::from_secs(20));
    term.expect("far-42-side", Duration::from_secs(5));
    term.resize(40, 120);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(client.id() as i32),
        nix::sys::signal::Signal::SIGWINCH,
    )
    .unwrap();
    // The resize travels on its own; give it a moment before asking.
    std::thread::sleep(Duration::from_millis(300));
    term.type_in("stty size\r");
    term.expect("40 120", Duration::from_secs(10));
    term.type_in("exit 7\r");
    let status = wait_exit(&mut client, Duration::from_secs(20));
    assert_eq!(status.code(), Some(7), "the far shell's exit status is the client's");
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn serve_without_allow_shell_refuses() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "42"]);
    let mut server = Command::new(strand())
        .args(["serve", line.b.to_str().unwrap(), "--baud", "2000000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = spawn(&["shell", line.a.to_str().unwrap(), "--baud", "2000000"], None);
    let out = client.finish(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(255), "strand's own failure, as ssh's: {}", out.stderr);
    assert!(out.stderr.contains("refused a shell") && out.stderr.contains("--allow-shell"), "{}", out.stderr);
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn list_prints_a_table_or_json() {
    let out = spawn(&["list"], None).finish(Duration::from_secs(10));
    assert!(out.status.success(), "{}", out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.is_empty());
    let out = spawn(&["list", "--json"], None).finish(Duration::from_secs(10));
    assert!(out.status.success(), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON array");
    for port in v.as_array().expect("an array") {
        assert!(port["device"].as_str().is_some_and(|d| d.starts_with("/dev/")), "{port}");
        assert!(port.get("vid").is_some() && port.get("by_id").is_some(), "{port}");
    }
}

/// Collects what a reader yields, on a thread.
fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = r.read(&mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    seen
}

fn wait_for(seen: &Arc<Mutex<Vec<u8>>>, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
        if text.contains(what) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {what:?}; saw:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A device at the far end of the line that answers every byte in upper case, and opens its end
/// again when the cable comes back.
fn upper_case_echo(path: std::path::PathBuf, stop: Arc<std::sync::atomic::AtomicBool>) {
    std::thread::spawn(move || {
        use std::sync::atomic::Ordering;
        while !stop.load(Ordering::SeqCst) {
            let Ok(mut dev) = std::fs::OpenOptions::new().read(true).write(true).open(&path) else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            if let Ok(mut t) = nix::sys::termios::tcgetattr(&dev) {
                nix::sys::termios::cfmakeraw(&mut t);
                let _ = nix::sys::termios::tcsetattr(&dev, nix::sys::termios::SetArg::TCSANOW, &t);
            }
            let mut buf = [0u8; 256];
            while let Ok(n @ 1..) = dev.read(&mut buf) {
                if dev.write_all(&buf[..n].to_ascii_uppercase()).is_err() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

#[test]
fn console_talks_to_a_serial_device_logs_and_comes_back_after_an_unplug() {
    let line = Linkem::start(&["--baud", "115200", "--seed", "43"]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    upper_case_echo(line.b.clone(), stop.clone());
    let log = line.dir.path().join("console.log");
    let mut console = Command::new(strand())
        .args(["console", line.a.to_str().unwrap(), "--baud", "115200", "--echo", "--log"])
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = (collect(console.stdout.take().unwrap()), collect(console.stderr.take().unwrap()));
    let mut keys = console.stdin.take().unwrap();
    wait_for(&err, "115200 baud", Duration::from_secs(10));
    keys.write_all(b"hello\r").unwrap();
    wait_for(&out, "HELLO", Duration::from_secs(10));
    wait_for(&out, "hello", Duration::from_secs(1)); // --echo: what was typed, too
    line.unplug();
    wait_for(&err, "is gone", Duration::from_secs(10));
    line.replug();
    wait_for(&err, "is back", Duration::from_secs(10));
    keys.write_all(b"again\r").unwrap();
    wait_for(&out, "AGAIN", Duration::from_secs(10));
    keys.write_all(b"\x14?").unwrap();
    wait_for(&err, "Ctrl-T then: q quit", Duration::from_secs(5));
    keys.write_all(b"\x14q").unwrap();
    let status = wait_exit(&mut console, Duration::from_secs(10));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(status.success(), "{status:?}");
    let logged = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    assert!(logged.contains("HELLO") && logged.contains("AGAIN") && !logged.contains("hello"), "{logged}");
}
