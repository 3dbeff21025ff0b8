//! The benchmark's private network: an unprivileged network namespace
//! (`unshare -rn`) with its own loopback, shaped by `tc` so that traffic to the
//! relay's port crosses a 300 Mbit/s HTB class and everything else is not
//! limited. Nothing here touches the host's network.

use std::process::{Command, ExitCode};

/// Set in the environment of the copy of the benchmark running inside the namespace.
pub const INSIDE: &str = "DIODENET_NETNS";

/// Outside the namespace: runs this same program again under `unshare -rn`
/// and returns its exit code. `None` when already inside.
pub fn reexec_inside() -> Option<ExitCode> {
    if std::env::var_os(INSIDE).is_some() {
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return Some(skipped(&format!("cannot find this program to run it again: {e}"))),
    };
    let status = Command::new("unshare")
        .arg("-rn")
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INSIDE, "1")
        .status();
    match status {
        Ok(s) if s.code() == Some(SKIPPED) => Some(ExitCode::from(SKIPPED as u8)),
        Ok(s) => Some(ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8)),
        Err(e) => Some(skipped(&format!("cannot run `unshare -rn` ({e}): install util-linux"))),
    }
}

/// Exit code of a benchmark that could not set up its network.
pub const SKIPPED: i32 = 77;

/// Says loudly why nothing was measured.
pub fn skipped(why: &str) -> ExitCode {
    eprintln!("diodenet: SKIPPED, nothing measured: {why}");
    ExitCode::from(SKIPPED as u8)
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e} (apt-get install iproute2)", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Inside the namespace: brings loopback up and shapes datagrams to `port`
/// to `bits_per_s` with an HTB class (the rest of loopback is not limited).
pub fn shape(bits_per_s: u64, port: u16) -> Result<(), String> {
    run(&["ip", "link", "set", "lo", "up"])?;
    let rate = format!("{bits_per_s}bit");
    let port = port.to_string();
    run(&["tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "20"])?;
    run(&[
        "tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", &rate, "ceil",
        &rate, "quantum", "1514",
    ])?;
    run(&[
        "tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", "20gbit",
        "quantum", "65536",
    ])?;
    run(&[
        "tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match",
        "ip", "dport", &port, "0xffff", "flowid", "1:10",
    ])
}

/// The shaping as `tc` reports it, for the record.
pub fn describe() -> String {
    Command::new("tc")
        .args(["class", "show", "dev", "lo"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
        .unwrap_or_default()
}
