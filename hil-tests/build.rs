//! Finds the peer programs that tests drive (NNCP, OpenSSH, socat, runuser) and tells the compiler
//! which are here: `cfg(have_nncp)` and so on. A test whose peer is missing is compiled with
//! `#[cfg_attr(not(have_nncp), ignore = "why")]`, so `cargo test` counts it as ignored and prints the
//! reason instead of reporting a pass that ran nothing. `cfg(have_hw_ports)` does the same for the
//! hardware tests (STRAND_TEST_PORT_A and STRAND_TEST_PORT_B set).
//!
//! `STRAND_REQUIRE_PEERS=nncp,ssh,socat,runuser,root` (which `.ci/run` sets) turns a missing peer into
//! a build failure that names it. `root` is checked when the tests run, not here: whether the tests run
//! as root is not known when they are built (`sudo` on a test binary, a build shared between users), so
//! a build-time cfg for it would be unsound (see `tests/common/mod.rs`).
//!
//! Cargo runs this again when PATH, STRAND_REQUIRE_PEERS or the hardware variables change, and when a
//! program is installed into or removed from a directory searched (cargo watches those directories).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A peer: its name in STRAND_REQUIRE_PEERS, its cfg, the programs it needs, how to install it.
struct Peer {
    name: &'static str,
    cfg: &'static str,
    programs: &'static [&'static str],
    install: &'static str,
}

const PEERS: &[Peer] = &[
    Peer {
        name: "nncp",
        cfg: "have_nncp",
        programs: &["nncp-cfgnew", "nncp-file", "nncp-call", "nncp-daemon", "nncp-toss", "nncp-xfer"],
        install: "apt-get install nncp",
    },
    Peer {
        name: "ssh",
        cfg: "have_ssh",
        programs: &["ssh", "ssh-keygen", "sshd"],
        install: "apt-get install openssh-server openssh-client",
    },
    Peer { name: "socat", cfg: "have_socat", programs: &["socat"], install: "apt-get install socat" },
    Peer {
        name: "runuser",
        cfg: "have_runuser",
        programs: &["runuser"],
        install: "apt-get install util-linux",
    },
];

/// Names STRAND_REQUIRE_PEERS may hold besides the peers above: `root` (the ssh, runuser and tmpfs
/// tests; checked when they run) and `hardware` (STRAND_TEST_PORT_A and _B set; checked here and when
/// the hardware tests run).
const OTHER_REQUIREMENTS: &[&str] = &["root", "hardware"];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for var in ["PATH", "STRAND_REQUIRE_PEERS", "STRAND_TEST_PORT_A", "STRAND_TEST_PORT_B"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    for p in PEERS {
        println!("cargo::rustc-check-cfg=cfg({})", p.cfg);
    }
    println!("cargo::rustc-check-cfg=cfg(have_hw_ports)");

    let dirs = search_dirs();
    for d in &dirs {
        // Installing or removing a program changes its directory's modification time.
        println!("cargo::rerun-if-changed={}", d.display());
    }
    let required: BTreeSet<String> = std::env::var("STRAND_REQUIRE_PEERS")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut errors = Vec::new();
    for name in &required {
        if !PEERS.iter().any(|p| p.name == name) && !OTHER_REQUIREMENTS.contains(&name.as_str()) {
            let known: Vec<&str> =
                PEERS.iter().map(|p| p.name).chain(OTHER_REQUIREMENTS.iter().copied()).collect();
            errors
                .push(format!("STRAND_REQUIRE_PEERS names {name:?}, which is none of {}", known.join(", ")));
        }
    }
    for peer in PEERS {
        let missing: Vec<&str> = peer.programs.iter().copied().filter(|p| find(p, &dirs).is_none()).collect();
        if missing.is_empty() {
            println!("cargo::rustc-cfg={}", peer.cfg);
        } else if required.contains(peer.name) {
            errors.push(format!(
                "STRAND_REQUIRE_PEERS requires {} but {} not found on PATH or in /usr/sbin, /sbin ({})",
                peer.name,
                missing.join(", "),
                peer.install
            ));
        }
    }
    if let Some(sshd) = find("sshd", &dirs) {
        // The ssh test runs the sshd found here (a user's PATH often lacks /usr/sbin).
        println!("cargo::rustc-env=STRAND_SSHD={}", sshd.display());
    }
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    if set("STRAND_TEST_PORT_A") && set("STRAND_TEST_PORT_B") {
        println!("cargo::rustc-cfg=have_hw_ports");
    } else if required.contains("hardware") {
        errors.push("STRAND_REQUIRE_PEERS requires hardware but STRAND_TEST_PORT_A or _B is not set".into());
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        std::process::exit(1);
    }
}

/// PATH's directories, then the sbin directories (sshd lives there, and not every PATH has them).
fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    let mut seen = BTreeSet::new();
    dirs.retain(|d| {
        d.is_absolute() && d.is_dir() && seen.insert(d.canonicalize().unwrap_or_else(|_| d.clone()))
    });
    dirs
}

/// The first executable file `program` in `dirs`.
fn find(program: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    dirs.iter().map(|d| d.join(program)).find(|p| executable(p))
}
