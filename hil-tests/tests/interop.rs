//! Interop with real clients from Debian over `strand pipe` on an emulated 2 Mbit/s line: NNCP
//! (`nncp-call` to `nncp-daemon -ucspi`, served by `--exec` and, the way users wire it, over FIFOs)
//! and ssh (`ProxyCommand` to `sshd -i`). A test whose programs are missing is compiled ignored and
//! the summary names them (build.rs); `.ci/run` installs them and sets STRAND_REQUIRE_PEERS, so in CI
//! a missing one fails the build instead.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use strand_hil::nncp::{self, Call, Transport};

#[test]
#[cfg_attr(not(have_nncp), ignore = "NNCP is not installed (apt-get install nncp)")]
fn nncp_call_over_strand_pipe_on_a_noisy_line() {
    let work = tempfile::tempdir().unwrap();
    let (alice, bob) = nncp::pair(work.path()).unwrap();
    let content = data(7, 600_000);
    let file = work.path().join("report.bin");
    std::fs::write(&file, &content).unwrap();
    nncp::queue(&alice, &bob, &file).unwrap();

    let line = Linkem::start(&["--baud", "2000000", "--ber", "1e-5", "--latency-ms", "1", "--seed", "7"]);
    let daemon = format!("nncp-daemon -ucspi -quiet -cfg {}", bob.cfg.display());
    let server = spawn(&["pipe", line.b.to_str().unwrap(), "--baud", "2000000", "--exec", &daemon], None);
    let proxy = format!("|{} pipe {} --baud 2000000", strand().display(), line.a.display());
    let call = Command::new("timeout")
        .args(["120", "nncp-call", "-quiet", "-onlinedeadline", "2", "-cfg"])
        .arg(&alice.cfg)
        .arg(bob.name)
        .arg(&proxy)
        .output()
        .unwrap();
    assert!(call.status.success(), "nncp-call failed: {}", String::from_utf8_lossy(&call.stderr));
    let served = server.finish(Duration::from_secs(60));
    assert!(served.status.success(), "bob's strand pipe: {}", served.stderr);
    nncp::toss(&bob).unwrap();
    let got =
        std::fs::read(bob.incoming().join("report.bin")).expect("the file reached bob's incoming directory");
    assert_eq!(hash(&got), hash(&content));
}

/// Issue 11, case 4: a 1 MiB packet from `nncp-call` (pipe address `|strand pipe A`) to
/// `nncp-daemon -ucspi` whose stdin and stdout are FIFOs served by `strand pipe B` (not `--exec`), with
/// `-onlinedeadline 2`: a stall of 2 s ends the call. Passes only if the call and both `strand pipe`
/// ends exit 0 and the file arrives byte-exact after `nncp-toss`.
fn nncp_over_fifos(transport: Transport, ber: &str, seed: u64) {
    eprintln!("NNCP over FIFOs ({}), 2 Mbit/s, BER {ber}, linkem seed {seed}", transport.name());
    let work = tempfile::tempdir().unwrap();
    let (alice, bob) = nncp::pair(work.path()).unwrap();
    let line =
        Linkem::start(&["--baud", "2000000", "--ber", ber, "--latency-ms", "1", "--seed", &seed.to_string()]);
    let call = Call {
        work: work.path(),
        alice: &alice,
        bob: &bob,
        near: &line.a,
        far: &line.b,
        transport,
        limit: Duration::from_secs(120),
    };
    let (outcome, delivered) = nncp::exchange(&call, "backup.bin", &data(seed, 1 << 20)).unwrap();
    let failures = outcome.failures();
    assert!(failures.is_empty() && delivered.is_ok(), "seed {seed}: {} / {delivered:?}", outcome.describe());
    eprintln!(
        "packet done {:.2} s after the call started; the call took {:.2} s",
        outcome.done_secs(&bob).unwrap_or(f64::NAN),
        outcome.call_secs
    );
}

#[test]
#[cfg_attr(not(have_nncp), ignore = "NNCP is not installed (apt-get install nncp)")]
fn nncp_ucspi_over_fifos_clean_line() {
    nncp_over_fifos(Transport::Strand { strand: &strand(), baud: 2_000_000 }, "0", 21);
}

#[test]
#[cfg_attr(not(have_nncp), ignore = "NNCP is not installed (apt-get install nncp)")]
fn nncp_ucspi_over_fifos_ber_1e4() {
    nncp_over_fifos(Transport::Strand { strand: &strand(), baud: 2_000_000 }, "1e-4", 22);
}

/// The control of the two tests above: the same wiring with socat on the bare clean line (no strand),
/// so a failure there points at strand, not at NNCP, the FIFOs or the emulated line.
#[test]
#[cfg_attr(
    not(all(have_nncp, have_socat)),
    ignore = "NNCP or socat is not installed (apt-get install nncp socat)"
)]
fn nncp_ucspi_over_fifos_raw_line_control() {
    nncp_over_fifos(Transport::Socat, "0", 23);
}

#[test]
#[cfg_attr(
    not(have_ssh),
    ignore = "OpenSSH is not installed (apt-get install openssh-server openssh-client)"
)]
fn ssh_through_strand_pipe_proxycommand() {
    let sshd = Path::new(option_env!("STRAND_SSHD").unwrap_or("/usr/sbin/sshd"));
    if !needs_root("ssh_through_strand_pipe_proxycommand", "to run sshd -i and log in as root") {
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
