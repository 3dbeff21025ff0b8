//! Link addresses end to end: `unix:` sockets, upper-case schemes, and a bare relative path
//! (a pty's symlink in the current directory, no `./`) taken as the file it names.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn pipe_over_a_unix_socket_with_any_case_of_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("strand.sock");
    let (there, back) = (data(61, 200_000), data(62, 100_000));
    let server = spawn(&["pipe", &format!("unix-listen:{}", sock.display())], Some(there.clone()));
    let client = spawn(&["pipe", &format!("UNIX:{}", sock.display())], Some(back.clone()));
    let (s, c) = (server.finish(Duration::from_secs(30)), client.finish(Duration::from_secs(30)));
    assert!(s.status.success() && c.status.success(), "{} / {}", s.stderr, c.stderr);
    assert_eq!(hash(&c.stdout), hash(&there));
    assert_eq!(hash(&s.stdout), hash(&back));
    assert!(!sock.exists(), "the listening side removes its socket file");
}

#[test]
fn a_bare_relative_path_is_the_file_it_names() {
    let line = Linkem::start(&["--baud", "2000000", "--seed", "63"]);
    let payload = data(63, 50_000);
    // Both ends run in the line's directory and name their pty as "a" and "b", without "./".
    let run = |end: &str, input: Vec<u8>| {
        let mut child = Command::new(strand())
            .current_dir(line.dir.path())
            // No config file: "a" can only be the file.
            .env_remove("STRAND_CONFIG")
            .env("HOME", line.dir.path())
            .env("XDG_CONFIG_HOME", line.dir.path())
            .args(["pipe", end, "--baud", "2000000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        child
    };
    let (mut a, mut b) = (run("a", payload.clone()), run("b", Vec::new()));
    let mut got = Vec::new();
    b.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    let (sa, sb) = (a.wait().unwrap(), b.wait().unwrap());
    let mut err = String::new();
    b.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(sa.success() && sb.success(), "{err}");
    assert_eq!(hash(&got), hash(&payload));
}
