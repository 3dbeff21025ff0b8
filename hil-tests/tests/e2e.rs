//! End-to-end: two `strand` processes over `strand linkem` pseudo-terminals,
//! through the real serial-port code path, verified by hash.

mod common;

use common::*;
use std::time::Duration;

const FAST: &[&str] = &["--baud", "2000000"];

fn args<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

fn pipe_both_ways(ber: &str, seed: u64) {
    let line =
        Linkem::start(&["--baud", "2000000", "--ber", ber, "--latency-ms", "1", "--seed", &seed.to_string()]);
    let (a, b) = (line.a.to_str().unwrap(), line.b.to_str().unwrap());
    let (ab, ba) = (data(seed, 1 << 20), data(seed + 1, 700_000));
    let pa = spawn(&args(&["pipe", a, "--stats"], FAST), Some(ab.clone()));
    let pb = spawn(&args(&["pipe", b, "--stats"], FAST), Some(ba.clone()));
    let (oa, ob) = (pa.finish(Duration::from_secs(90)), pb.finish(Duration::from_secs(90)));
    assert!(oa.status.success(), "seed {seed} A failed: {}", oa.stderr);
    assert!(ob.status.success(), "seed {seed} B failed: {}", ob.stderr);
    assert_eq!(hash(&ob.stdout), hash(&ab), "seed {seed}: A->B differs");
    assert_eq!(hash(&oa.stdout), hash(&ba), "seed {seed}: B->A differs");
}

#[test]
fn pipe_clean_line() {
    pipe_both_ways("0", 1);
}

#[test]
fn pipe_noisy_line_1e5() {
    pipe_both_ways("1e-5", 2);
}

/// A TCP echo server on a free local port, one thread per connection.
fn echo_server() -> u16 {
    use std::io::{Read, Write};
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in echo.incoming() {
            let mut c = c.unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    echo_port
}

/// Starts `strand forward` on both ends of `line`, A listening and relaying
/// to an echo server on B's side; returns the port to connect to.
fn forward_to_echo(line: &Linkem) -> (u16, Running, Running) {
    let echo_port = echo_server();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let spec = format!("{port}:127.0.0.1:{echo_port}");
    let fa = spawn(&args(&["forward", line.a.to_str().unwrap(), "-L", &spec], FAST), None);
    let fb = spawn(&args(&["forward", line.b.to_str().unwrap()], FAST), None);
    // Wait for the listener across the link to come up.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "forward never listened on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (port, fa, fb)
}

/// Sends `payload` through the forwarded `port` and reads the echo back.
fn echo_through(port: u16, payload: Vec<u8>) -> bool {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = c.try_clone().unwrap();
    let p2 = payload.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&p2).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    hash(&got) == hash(&payload)
}

#[test]
fn forward_several_connections() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "3"]);
    let (port, fa, fb) = forward_to_echo(&line);
    let clients: Vec<_> =
        (0..4u64).map(|i| std::thread::spawn(move || echo_through(port, data(100 + i, 150_000)))).collect();
    for (i, c) in clients.into_iter().enumerate() {
        assert!(c.join().unwrap(), "connection {i} not echoed exactly");
    }
    fa.kill();
    fb.kill();
}

/// Short connections one after another, while a long one keeps the line
/// busy: a channel freed on one side is opened again at once, before the other
/// side may have let go of it (each must still get a working connection).
#[test]
fn forward_reuses_channels_at_once() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "6"]);
    let (port, fa, fb) = forward_to_echo(&line);
    let long = std::thread::spawn(move || echo_through(port, data(200, 1 << 20)));
    for i in 0..40u64 {
        assert!(echo_through(port, data(300 + i, 2000)), "short connection {i} not echoed exactly");
    }
    assert!(long.join().unwrap(), "the long connection was not echoed exactly");
    fa.kill();
    fb.kill();
}

fn write_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn send_recv_survives_a_pulled_cable() {
    let line = Linkem::start(&["--baud", "2000000", "--ber", "1e-5", "--seed", "4"]);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let content = data(4, 3 << 20);
    let file = write_file(work.path(), "payload.bin", &content);
    let rx = spawn(&args(&["recv", line.b.to_str().unwrap(), "--dir", out.to_str().unwrap()], FAST), None);
    let tx = spawn(&args(&["send", line.a.to_str().unwrap(), file.to_str().unwrap()], FAST), None);
    std::thread::sleep(Duration::from_millis(4000));
    assert!(!out.join("payload.bin").exists(), "the file must not appear before it is complete");
    line.unplug();
    std::thread::sleep(Duration::from_millis(3000));
    line.replug();
    let (ot, or) = (tx.finish(Duration::from_secs(120)), rx.finish(Duration::from_secs(120)));
    assert!(ot.status.success(), "send failed: {}", ot.stderr);
    assert!(or.status.success(), "recv failed: {}", or.stderr);
    assert_eq!(hash(&std::fs::read(out.join("payload.bin")).unwrap()), hash(&content));
}

#[test]
fn send_recv_resumes_after_the_receiver_restarts() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "5"]);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let content = data(5, 4 << 20);
    let file = write_file(work.path(), "big.bin", &content);
    let b = line.b.to_str().unwrap().to_string();
    let rx = spawn(&args(&["recv", &b, "--dir", out.to_str().unwrap()], FAST), None);
    let tx = spawn(&args(&["send", line.a.to_str().unwrap(), file.to_str().unwrap()], FAST), None);
    std::thread::sleep(Duration::from_millis(5000));
    rx.kill(); // the receiver crashes mid-file
    assert!(!out.join("big.bin").exists());
    let rx = spawn(&args(&["recv", &b, "--dir", out.to_str().unwrap()], FAST), None);
    let (ot, or) = (tx.finish(Duration::from_secs(120)), rx.finish(Duration::from_secs(120)));
    assert!(ot.status.success(), "send failed: {}", ot.stderr);
    assert!(or.status.success(), "recv failed: {}", or.stderr);
    assert_eq!(hash(&std::fs::read(out.join("big.bin")).unwrap()), hash(&content));
    assert!(
        or.stderr.contains("resumed from an earlier run"),
        "the second receiver should have resumed from its partial file: {}",
        or.stderr
    );
}

// ---- bad input: one clear line, a non-zero exit code, nothing lost ----

fn fails_with(o: &Outcome, needle: &str) {
    assert!(!o.status.success(), "expected failure, got success; stderr: {}", o.stderr);
    assert!(o.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", o.stderr);
}

#[test]
fn nonexistent_device() {
    let o = spawn(&["pipe", "/dev/ttyUSB-strand-test-missing"], None).finish(Duration::from_secs(10));
    fails_with(&o, "no such device: /dev/ttyUSB-strand-test-missing");
}

#[test]
fn unsupported_baud() {
    let line = Linkem::start(&[]);
    let o = spawn(&["pipe", line.a.to_str().unwrap(), "--baud", "40000000"], None)
        .finish(Duration::from_secs(10));
    fails_with(&o, "baud rate 40000000 is not supported");
}

#[test]
fn busy_device() {
    let line = Linkem::start(&[]);
    let a = line.a.to_str().unwrap();
    let first = spawn(&["pipe", a, "--connect-timeout", "20"], None);
    std::thread::sleep(Duration::from_millis(700));
    let o = spawn(&["pipe", a], None).finish(Duration::from_secs(10));
    fails_with(&o, "is busy");
    first.kill();
}

#[test]
#[cfg_attr(not(have_runuser), ignore = "runuser is not installed (apt-get install util-linux)")]
fn permission_denied() {
    if !needs_root("permission_denied", "to open a pty as an unprivileged user (runuser -u nobody)") {
        return;
    }
    let line = Linkem::start(&[]);
    let target = std::fs::canonicalize(&line.a).unwrap();
    let o = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(strand())
        .args(["pipe", target.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("permission denied opening"), "{err}");
    assert!(err.contains("dialout"), "the message says what to do: {err}");
}

#[test]
fn peer_that_is_not_strand() {
    use std::io::Write;
    let line = Linkem::start(&["--baud", "2000000"]);
    // Something else on the other end: a program writing text.
    let b = line.b.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let noise = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().read(true).write(true).open(b).unwrap();
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = f.write_all(b"login: Password: \r\nWelcome to BusyBox\r\n\x1b[0m# ");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let o = spawn(&args(&["pipe", line.a.to_str().unwrap(), "--connect-timeout", "3"], FAST), None)
        .finish(Duration::from_secs(20));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    noise.join().unwrap();
    fails_with(&o, "no valid strand frame");
}

#[test]
fn peer_of_another_protocol_version() {
    use std::io::Write;
    use strand_link::framing;
    use strand_link::wire::{FrameType, Header, HelloRepr};
    let line = Linkem::start(&["--baud", "2000000"]);
    // The previous strand (protocol version 2, before core 2.0's frame counter): its HELLO
    // frames, as it sends them (every version keeps the HELLO layout).
    let mut raw = [0u8; 26];
    let mut p = [0u8; 10];
    HelloRepr {
        min_version: 2,
        max_version: 2,
        max_frame: 4079,
        window: 64,
        echo: 0,
        src: 0,
        dst: 0,
        flags: 0,
    }
    .emit(&mut p);
    let n = Header {
        frame_type: FrameType::Hello,
        flags: 0,
        channel: 0,
        session: 0x2222_2222,
        seq: 0,
        ack: 0,
        counter: 0,
    }
    .emit_frame(&p, &mut raw);
    let mut wire = vec![0u8; 64];
    let w = framing::encode(&raw[..n], &mut wire).unwrap();
    wire.truncate(w);
    let b = line.b.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().read(true).write(true).open(b).unwrap();
        for _ in 0..40 {
            let _ = f.write_all(&wire);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let o = spawn(&args(&["pipe", line.a.to_str().unwrap(), "--connect-timeout", "3"], FAST), None)
        .finish(Duration::from_secs(20));
    writer.join().unwrap();
    fails_with(&o, "the peer speaks strand protocol version 2 but this strand speaks version 3");
}

#[test]
fn disk_full_on_the_receiver_keeps_the_partial_and_resumes() {
    if !needs_root("disk_full_on_the_receiver_keeps_the_partial_and_resumes", "to mount a small tmpfs") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("small");
    std::fs::create_dir(&out).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        skip_at_run_time(
            "disk_full_on_the_receiver_keeps_the_partial_and_resumes",
            "root",
            "cannot mount a tmpfs here",
        );
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(out.clone());
    let line = Linkem::start(&["--baud", "2000000"]);
    let content = data(6, 2 << 20);
    let file = write_file(work.path(), "big.bin", &content);
    let (a, b, o) = (line.a.to_str().unwrap(), line.b.to_str().unwrap(), out.to_str().unwrap());
    // The file fits when offered; then something else fills the disk mid-transfer.
    let rx = spawn(&args(&["recv", b, "--dir", o], FAST), None);
    let tx = spawn(&args(&["send", a, file.to_str().unwrap()], FAST), None);
    std::thread::sleep(Duration::from_millis(3000));
    let filler = out.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 3 << 20]); // fills the rest; the error is expected
    let (ot, or) = (tx.finish(Duration::from_secs(60)), rx.finish(Duration::from_secs(60)));
    fails_with(&or, "disk full");
    assert_eq!(or.status.code(), Some(3), "{}", or.stderr);
    assert!(!ot.status.success(), "the sender must not report success: {}", ot.stderr);
    assert!(!out.join("big.bin").exists(), "no partial file presented as complete");
    // Space is freed; the same commands finish the job from where it stopped.
    std::fs::remove_file(&filler).unwrap();
    let rx = spawn(&args(&["recv", b, "--dir", o], FAST), None);
    let tx = spawn(&args(&["send", a, file.to_str().unwrap()], FAST), None);
    let (ot, or) = (tx.finish(Duration::from_secs(60)), rx.finish(Duration::from_secs(60)));
    assert!(ot.status.success() && or.status.success(), "resume failed: {} / {}", ot.stderr, or.stderr);
    assert_eq!(hash(&std::fs::read(out.join("big.bin")).unwrap()), hash(&content));
    assert!(
        or.stderr.contains("resumed from an earlier run"),
        "it resumed from the partial file: {}",
        or.stderr
    );
}

#[test]
fn refusing_to_run_out_of_space_before_sending() {
    if !needs_root("refusing_to_run_out_of_space_before_sending", "to mount a small tmpfs") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("tiny");
    std::fs::create_dir(&out).unwrap();
    if !std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success())
    {
        skip_at_run_time("refusing_to_run_out_of_space_before_sending", "root", "cannot mount a tmpfs here");
        return;
    }
    let line = Linkem::start(&["--baud", "2000000"]);
    let file = write_file(work.path(), "toobig.bin", &data(9, 1 << 20));
    let rx = spawn(&args(&["recv", line.b.to_str().unwrap(), "--dir", out.to_str().unwrap()], FAST), None);
    let tx = spawn(&args(&["send", line.a.to_str().unwrap(), file.to_str().unwrap()], FAST), None);
    let (ot, or) = (tx.finish(Duration::from_secs(60)), rx.finish(Duration::from_secs(60)));
    let _ = std::process::Command::new("umount").arg(&out).status();
    fails_with(&or, "not enough space");
    fails_with(&ot, "not enough space");
}

#[test]
fn hostile_file_name_is_refused() {
    let line = Linkem::start(&["--baud", "2000000"]);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // A name with a terminal escape sequence: the receiver refuses it.
    let file = write_file(work.path(), "\u{1b}[2Jx", b"harmless bytes, hostile name");
    let rx = spawn(&args(&["recv", line.b.to_str().unwrap(), "--dir", out.to_str().unwrap()], FAST), None);
    let tx = spawn(&args(&["send", line.a.to_str().unwrap(), file.to_str().unwrap()], FAST), None);
    let (ot, or) = (tx.finish(Duration::from_secs(60)), rx.finish(Duration::from_secs(60)));
    // Refused before anything is sent (the receiver would refuse it too), and
    // the message does not replay the escape sequence to the user's terminal.
    fails_with(&ot, "copy it under another name");
    assert!(!ot.stderr.contains('\u{1b}'), "raw escape in the message: {:?}", ot.stderr);
    let written: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with(".strand"))
        .collect();
    assert!(written.is_empty(), "nothing written: {written:?} (recv: {})", or.stderr);
}

// ---- pipe --exec: the command's exit status is both ends' ----

#[test]
fn pipe_exec_status_becomes_the_status_of_both_ends() {
    for (script, want) in [("cat; exit 7", 7), ("cat", 0), ("cat; kill -TERM $$", 128 + 15)] {
        let line = Linkem::start(&["--baud", "2000000", "--seed", "71"]);
        let input = data(71, 20_000);
        let server = spawn(&args(&["pipe", line.b.to_str().unwrap(), "--exec", script], FAST), None);
        let client = spawn(&args(&["pipe", line.a.to_str().unwrap()], FAST), Some(input.clone()));
        let (c, s) = (client.finish(Duration::from_secs(30)), server.finish(Duration::from_secs(30)));
        assert_eq!(hash(&c.stdout), hash(&input), "{script}: the command's output arrived");
        assert_eq!(s.status.code(), Some(want), "{script}: serving end: {}", s.stderr);
        assert_eq!(c.status.code(), Some(want), "{script}: client end: {}", c.stderr);
        assert!(c.stderr.is_empty(), "{script}: no message of strand's own: {}", c.stderr);
    }
}
