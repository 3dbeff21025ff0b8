//! Interop with real clients from Debian over `strand pipe` on an emulated
//! noisy 2 Mbit/s line: NNCP (`nncp-call` to `nncp-daemon -ucspi`) and ssh
//! (`ProxyCommand` to `sshd -i`). Skipped, with a message, where the tools are
//! not installed (`.ci/run` installs them).

mod common;

use common::nncp::{nncp_config, nncp_keys};
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn nncp_call_over_strand_pipe_on_a_noisy_line() {
    if !have("nncp-cfgnew") || !have("nncp-call") || !have("nncp-daemon") {
        eprintln!("skipped: NNCP is not installed (apt-get install nncp)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (alice, bob) = (work.path().join("alice"), work.path().join("bob"));
    for d in [&alice, &bob] {
        std::fs::create_dir_all(d.join("spool")).unwrap();
        std::fs::create_dir_all(d.join("in")).unwrap();
    }
    let (ka, kb) = (nncp_keys(), nncp_keys());
    let (ca, cb) = (alice.join("cfg.hjson"), bob.join("cfg.hjson"));
    std::fs::write(&ca, nncp_config(&alice, &ka, "bob", &kb)).unwrap();
    std::fs::write(&cb, nncp_config(&bob, &kb, "alice", &ka)).unwrap();
    let content = data(7, 600_000);
    let file = work.path().join("report.bin");
    std::fs::write(&file, &content).unwrap();
    let queued =
        Command::new("nncp-file").arg("-cfg").arg(&ca).arg("-quiet").arg(&file).arg("bob:").status().unwrap();
    assert!(queued.success(), "nncp-file failed");

    let line = Linkem::start(&["--baud", "2000000", "--ber", "1e-5", "--latency-ms", "1", "--seed", "7"]);
    let daemon = format!("nncp-daemon -ucspi -quiet -cfg {}", cb.display());
    let server = spawn(&["pipe", line.b.to_str().unwrap(), "--baud", "2000000", "--exec", &daemon], None);
    let proxy = format!("|{} pipe {} --baud 2000000", strand().display(), line.a.display());
    let call = Command::new("timeout")
        .args(["120", "nncp-call", "-quiet", "-onlinedeadline", "2", "-cfg"])
        .arg(&ca)
        .arg("bob")
        .arg(&proxy)
        .output()
        .unwrap();
    assert!(call.status.success(), "nncp-call failed: {}", String::from_utf8_lossy(&call.stderr));
    let served = server.finish(Duration::from_secs(60));
    assert!(served.status.success(), "bob's strand pipe: {}", served.stderr);
    let tossed = Command::new("nncp-toss").arg("-cfg").arg(&cb).arg("-quiet").status().unwrap();
    assert!(tossed.success());
    let got = std::fs::read(bob.join("in/report.bin")).expect("the file reached bob's incoming directory");
    assert_eq!(hash(&got), hash(&content));
}

#[test]
fn ssh_through_strand_pipe_proxycommand() {
    let sshd = Path::new("/usr/sbin/sshd");
    if !is_root() || !sshd.exists() || !have("ssh") || !have("ssh-keygen") {
        eprintln!(
            "skipped: needs root, sshd, ssh and ssh-keygen (apt-get install openssh-server openssh-client)"
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for (name, key) in [("host", "host_key"), ("client", "client_key")] {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(w.join(key))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    std::fs::copy(w.join("client_key.pub"), w.join("authorized_keys")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let cfg = w.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "HostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\nLogLevel ERROR\n",
            d = w.display()
        ),
    )
    .unwrap();
    let line = Linkem::start(&["--baud", "2000000", "--ber", "1e-5", "--latency-ms", "1", "--seed", "8"]);
    let content = data(8, 400_000);
    let remote_file = w.join("remote.bin");
    std::fs::write(&remote_file, &content).unwrap();
    let serve = format!("{} -i -f {}", sshd.display(), cfg.display());
    let server = spawn(&["pipe", line.b.to_str().unwrap(), "--baud", "2000000", "--exec", &serve], None);
    let proxy = format!("ProxyCommand={} pipe {} --baud 2000000", strand().display(), line.a.display());
    let out = Command::new("timeout")
        .args(["120", "ssh", "-F", "/dev/null", "-o"])
        .arg(&proxy)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-i",
        ])
        .arg(w.join("client_key"))
        .arg("root@strand-serial")
        .arg(format!("cat {}", remote_file.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(hash(&out.stdout), hash(&content), "the file read over ssh differs");
    let _ = server.finish(Duration::from_secs(30));
}
