//! The command line: help, man page, completions, and clear errors for bad
//! addresses and config entries. (Its presence also makes `cargo test` build
//! the `strand` binary that the end-to-end tests in hil-tests run.)

use std::process::Command;

fn strand(args: &[&str]) -> (bool, String, String) {
    let o =
        Command::new(env!("CARGO_BIN_EXE_strand")).args(args).env_remove("STRAND_CONFIG").output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

#[test]
fn help_lists_every_command() {
    let (ok, out, _) = strand(&["--help"]);
    assert!(ok);
    for cmd in ["pipe", "forward", "send", "recv", "linkem", "demo", "man", "completions"] {
        assert!(out.contains(cmd), "--help lacks {cmd}:\n{out}");
    }
}

#[test]
fn man_page_and_completions_are_generated() {
    let (ok, out, _) = strand(&["man"]);
    assert!(ok && out.contains(".TH STRAND 1") && out.contains(".SH \"EXIT STATUS\""), "{out}");
    let (ok, out, _) = strand(&["man", "pipe"]);
    assert!(ok && out.contains(".TH STRAND-PIPE 1") && out.contains(".SH \"EXIT STATUS\""), "{out}");
    let (ok, out, _) = strand(&["completions", "bash"]);
    assert!(ok && out.contains("_strand"), "{out}");
}

#[test]
fn malformed_address_says_how_to_write_it() {
    let (ok, _, err) = strand(&["pipe", "tcp:nohost"]);
    assert!(!ok);
    assert!(err.contains("write tcp:HOST:PORT"), "{err}");
}

#[test]
fn unknown_link_name_points_at_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("strand.toml");
    std::fs::write(&cfg, "[links.lab]\naddress = \"/dev/ttyUSB-strand-test-missing\"\nbaud = 2000000\n")
        .unwrap();
    let (ok, _, err) = strand(&["--config", cfg.to_str().unwrap(), "pipe", "backup"]);
    assert!(!ok);
    assert!(err.contains("unknown link \"backup\"") && err.contains("strand.toml"), "{err}");
    // A known name resolves to its device, whose absence is then reported.
    let (ok, _, err) = strand(&["--config", cfg.to_str().unwrap(), "pipe", "lab"]);
    assert!(!ok);
    assert!(err.contains("no such device: /dev/ttyUSB-strand-test-missing"), "{err}");
}

#[test]
fn config_typos_are_reported_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("strand.toml");
    std::fs::write(&cfg, "[links.lab]\nadress = \"/dev/ttyUSB0\"\n").unwrap();
    let (ok, _, err) = strand(&["--config", cfg.to_str().unwrap(), "pipe", "lab"]);
    assert!(!ok);
    assert!(err.contains("strand.toml") && err.contains("adress"), "{err}");
}
