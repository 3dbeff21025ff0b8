//! Faults on the stream path (issue 11): exit 0 means delivered, a dead peer
//! is given up on within `--connect-timeout`, stale and replayed HELLOs do not
//! end a live session, and `strand forward` resets its connections when the
//! peer is gone and refuses to start on a port it cannot bind. Real `strand`
//! processes over `strand linkem` ptys or a TCP relay.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FAST: &[&str] = &["--baud", "2000000"];

fn args<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

/// The last line of a process's stderr that strand itself wrote.
fn verdict(o: &Outcome) -> String {
    o.stderr.lines().rev().find(|l| l.starts_with("strand:")).unwrap_or("").to_string()
}

/// "N of M bytes read from stdin delivered" in a verdict: (N, M).
fn delivered(line: &str) -> (u64, u64) {
    let head = line.split(" bytes read from stdin delivered").next().unwrap();
    let mut words = head.rsplit(' ');
    let total = words.next().unwrap().parse().unwrap();
    assert_eq!(words.next(), Some("of"), "{line}");
    let n = words.next().unwrap().parse().unwrap();
    (n, total)
}

/// `strand pipe DEV` with an empty stdin and its stdout a pipe the test
/// holds (to leave unread, or to close).
fn receiver_with_piped_stdout(dev: &str) -> std::process::Child {
    Command::new(strand())
        .args(args(&["pipe", dev], FAST))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a child started by [`receiver_with_piped_stdout`]: status and stderr.
fn finish_child(mut c: std::process::Child) -> (std::process::ExitStatus, String) {
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (c.wait().unwrap(), err)
}

#[test]
fn sigterm_on_the_sender_mid_stream_fails_both_ends() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "11"]);
    let data = data(11, 3 << 20);
    let b = spawn(&args(&["pipe", line.b.to_str().unwrap()], FAST), None);
    let a = spawn(&args(&["pipe", line.a.to_str().unwrap()], FAST), Some(data.clone()));
    std::thread::sleep(Duration::from_secs(4));
    signal(a.id(), nix::sys::signal::Signal::SIGTERM);
    let (oa, ob) = (a.finish(Duration::from_secs(20)), b.finish(Duration::from_secs(20)));
    assert_eq!(oa.status.code(), Some(143), "A: {}", oa.stderr);
    assert!(verdict(&oa).contains("interrupted by SIGTERM"), "A: {}", oa.stderr);
    assert_eq!(ob.status.code(), Some(6), "B must not report success: {}", ob.stderr);
    assert!(verdict(&ob).contains("the peer stopped: it was interrupted"), "B: {}", ob.stderr);
    // What B wrote is a prefix of what A read, and A says exactly how much of it arrived.
    assert!(ob.stdout.len() < data.len() && ob.stdout[..] == data[..ob.stdout.len()], "B got a prefix");
    let (n, _) = delivered(&verdict(&oa));
    assert_eq!(n, ob.stdout.len() as u64, "A's count of delivered bytes is what B wrote: {}", oa.stderr);
}

#[test]
fn sigterm_on_a_receiver_holding_unwritten_bytes_fails_the_sender() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "12"]);
    let data = data(12, 1 << 20);
    // B's stdout is a pipe nobody reads: once it is full B holds bytes its
    // link has acknowledged but that never reach their destination.
    let mut b = receiver_with_piped_stdout(line.b.to_str().unwrap());
    let stuck = b.stdout.take().unwrap();
    let a = spawn(&args(&["pipe", line.a.to_str().unwrap()], FAST), Some(data));
    std::thread::sleep(Duration::from_secs(6));
    signal(b.id(), nix::sys::signal::Signal::SIGTERM);
    let oa = a.finish(Duration::from_secs(20));
    let (b_status, b_err) = finish_child(b);
    drop(stuck);
    assert_eq!(b_status.code(), Some(143), "B: {b_err}");
    assert_eq!(oa.status.code(), Some(6), "A must not exit 0 for bytes only acknowledged: {}", oa.stderr);
    let (n, total) = delivered(&verdict(&oa));
    // At most what a pipe holds (64 KiB) was written; the rest was not.
    assert!(
        n <= 65536 && n < total,
        "A counts {n} of {total} bytes delivered, more than B could write: {}",
        oa.stderr
    );
}

#[test]
fn a_receiver_killed_outright_is_given_up_on_within_the_timeout() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "13"]);
    let b = spawn(&args(&["pipe", line.b.to_str().unwrap(), "--connect-timeout", "5"], FAST), None);
    let a = spawn(
        &args(&["pipe", line.a.to_str().unwrap(), "--connect-timeout", "5"], FAST),
        Some(data(13, 4 << 20)),
    );
    std::thread::sleep(Duration::from_secs(3));
    b.kill();
    let t = Instant::now();
    let oa = a.finish(Duration::from_secs(30));
    assert!(t.elapsed() < Duration::from_secs(10), "gave up after {:?} (timeout 5 s)", t.elapsed());
    assert_eq!(oa.status.code(), Some(4), "{}", oa.stderr);
    assert!(verdict(&oa).contains("it is gone"), "{}", oa.stderr);
}

#[test]
fn a_receiver_whose_stdout_is_closed_fails_both_ends_at_once() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "14"]);
    let mut b = receiver_with_piped_stdout(line.b.to_str().unwrap());
    drop(b.stdout.take()); // EPIPE on B's first write
    let a = spawn(&args(&["pipe", line.a.to_str().unwrap()], FAST), Some(data(14, 1 << 20)));
    let t = Instant::now();
    let oa = a.finish(Duration::from_secs(30));
    let (b_status, b_err) = finish_child(b);
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    assert_eq!(b_status.code(), Some(3), "B: {b_err}");
    assert!(b_err.contains("cannot write the peer's stream to stdout"), "B: {b_err}");
    assert_eq!(oa.status.code(), Some(6), "A: {}", oa.stderr);
    assert!(verdict(&oa).contains("its output failed"), "A: {}", oa.stderr);
}

#[test]
fn a_cable_pulled_for_good_fails_both_ends_within_the_timeout() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "15"]);
    let to = ["--connect-timeout", "4"];
    let a = spawn(&args(&args(&["pipe", line.a.to_str().unwrap()], &to), FAST), Some(data(15, 4 << 20)));
    let b = spawn(&args(&args(&["pipe", line.b.to_str().unwrap()], &to), FAST), Some(data(16, 4 << 20)));
    std::thread::sleep(Duration::from_secs(3));
    line.unplug();
    let t = Instant::now();
    let (oa, ob) = (a.finish(Duration::from_secs(30)), b.finish(Duration::from_secs(30)));
    assert!(t.elapsed() < Duration::from_secs(9), "took {:?} (timeout 4 s)", t.elapsed());
    for (name, o) in [("A", &oa), ("B", &ob)] {
        assert_eq!(o.status.code(), Some(4), "{name}: {}", o.stderr);
        let (n, total) = delivered(&verdict(o));
        assert!(n < total, "{name} cannot have delivered everything: {}", o.stderr);
    }
}

#[test]
fn stale_hellos_of_a_dead_session_do_not_disturb_the_next_one() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "17"]);
    // A first strand speaks alone for a while (its HELLOs pile up in the
    // buffers toward B's end), then dies.
    let early = spawn(&args(&["pipe", line.a.to_str().unwrap()], FAST), None);
    std::thread::sleep(Duration::from_millis(1500));
    early.kill();
    let (ab, ba) = (data(17, 1 << 20), data(18, 300_000));
    let b = spawn(&args(&["pipe", line.b.to_str().unwrap()], FAST), Some(ba.clone()));
    let a = spawn(&args(&["pipe", line.a.to_str().unwrap()], FAST), Some(ab.clone()));
    let (oa, ob) = (a.finish(Duration::from_secs(60)), b.finish(Duration::from_secs(60)));
    assert!(oa.status.success() && ob.status.success(), "A: {}\nB: {}", oa.stderr, ob.stderr);
    assert_eq!((hash(&ob.stdout), hash(&oa.stdout)), (hash(&ab), hash(&ba)));
    for o in [&oa, &ob] {
        assert!(!o.stderr.contains("restarted"), "a session was restarted: {}", o.stderr);
    }
}

/// A TCP relay between two `strand pipe tcp:` ends that can put bytes of its
/// own into both directions, as a stale buffer or an attacker would.
struct Relay {
    ports: (u16, u16),
    inject: std::sync::mpsc::Sender<Vec<u8>>,
    /// The first bytes that came from the first end to connect.
    first_bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Relay {
    fn start() -> Relay {
        let (l1, l2) = (
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        );
        let ports = (l1.local_addr().unwrap().port(), l2.local_addr().unwrap().port());
        let (inject, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let first_bytes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let fb = first_bytes.clone();
        std::thread::spawn(move || {
            let (c1, _) = l1.accept().unwrap();
            let (c2, _) = l2.accept().unwrap();
            let (w1, w2) = (
                std::sync::Arc::new(std::sync::Mutex::new(c1.try_clone().unwrap())),
                std::sync::Arc::new(std::sync::Mutex::new(c2.try_clone().unwrap())),
            );
            let pump = |mut from: std::net::TcpStream,
                        to: std::sync::Arc<std::sync::Mutex<std::net::TcpStream>>,
                        rec: Option<std::sync::Arc<std::sync::Mutex<Vec<u8>>>>| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if let Some(r) = &rec {
                            let mut r = r.lock().unwrap();
                            let take = n.min(256usize.saturating_sub(r.len()));
                            r.extend_from_slice(&buf[..take]);
                        }
                        if to.lock().unwrap().write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.lock().unwrap().shutdown(std::net::Shutdown::Write);
                })
            };
            let t1 = pump(c1, w2.clone(), Some(fb));
            let t2 = pump(c2, w1.clone(), None);
            for bytes in rx {
                let _ = w1.lock().unwrap().write_all(&bytes);
                let _ = w2.lock().unwrap().write_all(&bytes);
            }
            let _ = (t1.join(), t2.join());
        });
        Relay { ports, inject, first_bytes }
    }
}

/// The HELLO a strand sent first: its bytes from the start up to and
/// including the delimiter that ends the first non-empty frame.
fn first_frame(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).expect("a frame");
    let end = start + bytes[start..].iter().position(|&b| b == 0).expect("its delimiter");
    bytes[..=end].to_vec()
}

#[test]
fn a_hello_copied_from_an_earlier_session_and_injected_does_not_end_a_live_one() {
    // An earlier session through a relay: keep the HELLO its first end sent.
    let old = {
        let r = Relay::start();
        let a = spawn(&["pipe", &format!("tcp:127.0.0.1:{}", r.ports.0)], Some(b"x".to_vec()));
        let b = spawn(&["pipe", &format!("tcp:127.0.0.1:{}", r.ports.1)], Some(b"y".to_vec()));
        let (oa, ob) = (a.finish(Duration::from_secs(30)), b.finish(Duration::from_secs(30)));
        assert!(oa.status.success() && ob.status.success(), "{}\n{}", oa.stderr, ob.stderr);
        let bytes = r.first_bytes.lock().unwrap().clone();
        first_frame(&bytes)
    };
    assert!(old.len() < 64, "a HELLO: {} bytes", old.len());
    let r = Relay::start();
    let (ab, ba) = (data(19, 2 << 20), data(20, 2 << 20));
    let a = spawn(&["pipe", &format!("tcp:127.0.0.1:{}", r.ports.0)], Some(ab.clone()));
    let b = spawn(&["pipe", &format!("tcp:127.0.0.1:{}", r.ports.1)], Some(ba.clone()));
    // Mid-transfer, the old HELLO appears in both directions, again and again.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..20 {
        r.inject.send(old.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(r.inject);
    let (oa, ob) = (a.finish(Duration::from_secs(60)), b.finish(Duration::from_secs(60)));
    assert!(oa.status.success() && ob.status.success(), "A: {}\nB: {}", oa.stderr, ob.stderr);
    assert_eq!((hash(&ob.stdout), hash(&oa.stdout)), (hash(&ab), hash(&ba)));
    for o in [&oa, &ob] {
        assert!(!o.stderr.contains("restarted"), "the live session was ended: {}", o.stderr);
    }
}

/// A TCP echo server on a free local port.
fn echo_server() -> u16 {
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in echo.incoming() {
            let mut c = c.unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn forward_resets_its_connections_when_the_peer_is_gone() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "21"]);
    let port = free_port();
    let spec = format!("{port}:127.0.0.1:{}", echo_server());
    let to = ["--connect-timeout", "4"];
    let fa = spawn(&args(&args(&["forward", line.a.to_str().unwrap(), "-L", &spec], &to), FAST), None);
    let fb = spawn(&args(&args(&["forward", line.b.to_str().unwrap()], &to), FAST), None);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        if let Ok(c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            break c;
        }
        assert!(Instant::now() < deadline, "forward never listened");
        std::thread::sleep(Duration::from_millis(100));
    };
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    fb.kill(); // the far side dies with the connection open
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t = Instant::now();
    let mut rest = Vec::new();
    let r = c.read_to_end(&mut rest);
    assert!(t.elapsed() < Duration::from_secs(10), "the connection stayed open {:?}", t.elapsed());
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "reset, not an orderly end: {r:?}"
    );
    // New connections while the peer is away are ended at once, not left hanging.
    let mut c2 = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c2.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = c2.write_all(b"hello?");
    let t = Instant::now();
    let mut got = Vec::new();
    let r = c2.read_to_end(&mut got);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a connection with no peer behind it hung {:?}",
        t.elapsed()
    );
    assert!(got.is_empty(), "nothing answered it: {r:?}");
    if let Err(e) = &r {
        assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "timed out, not ended");
    }
    fa.kill();
}

#[test]
fn forward_fails_at_start_when_it_cannot_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let line = Linkem::start(&["--baud", "2000000"]);
    let spec = format!("{port}:127.0.0.1:9");
    let o = spawn(&args(&["forward", line.a.to_str().unwrap(), "-L", &spec], FAST), None)
        .finish(Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr);
    assert!(o.stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{}", o.stderr);
}
