//! Every command's exit statuses, written once: `--help`, the man pages and the user guide's
//! table come from here (a test checks the guide against it).
//!
//! One scheme for the commands that move data over a two-way link; `diode-rx`, `shell` and
//! `console` have their own, said on their pages.

/// The statuses of the two-way link commands (`pipe`, `forward`, `send`, `recv`, `spool`).
pub const LINK: &[(&str, &str)] = &[
    ("0", "success: everything delivered and confirmed written at the far end"),
    ("1", "the link could not be used: no strand peer answered, another protocol version, a bad address, a port that cannot be listened on"),
    ("2", "usage: the command line was not understood; send, recv and spool: a file or packet was refused"),
    ("3", "local I/O failed (stdin, stdout, a file, a full disk); send, recv and spool resume when run again"),
    ("4", "the link was lost: the peer silent for --connect-timeout, the line closed, or the peer restarted; send, recv and spool resume when run again"),
    ("5", "verification failed twice (BLAKE3), or a file changed while it was sent"),
    ("6", "the peer stopped with an error (its output failed, it was interrupted, it broke the protocol)"),
    ("128+N", "pipe: interrupted by signal N (129 SIGHUP, 130 SIGINT, 143 SIGTERM); the peer exits 6"),
];

/// `diode-rx`.
pub const DIODE_RX: &[(&str, &str)] = &[
    ("0", "every file the sender announced arrived and was verified"),
    ("1", "an error: bad option, link not opened, disk full, an existing file or a name refused"),
    ("2", "some files arrived only in part (or failed their hash): run again on more frames"),
    ("3", "nothing arrived, or some announced files were never seen at all"),
];

/// `shell`: the far shell's status, as ssh returns the remote command's.
pub const SHELL: &[(&str, &str)] = &[
    ("0-254", "the exit status of the shell on the far side"),
    ("255", "strand itself failed: no peer, the link lost, the far side refused a shell"),
];

/// Commands that only exit 0 or 1 (`console`, `serve`, `list`, `linkem`, `demo`, ...).
pub const SIMPLE: &[(&str, &str)] = &[
    ("0", "success (console: quit with Ctrl-T q or the end of stdin)"),
    ("1", "an error, said in one line on stderr (a port that cannot be opened, a bad option)"),
    ("2", "usage: the command line was not understood"),
];

/// The table for `command` (a subcommand name, or `strand` for the whole program).
pub fn table(command: &str) -> &'static [(&'static str, &'static str)] {
    match command {
        "pipe" | "forward" | "send" | "recv" | "spool" | "strand" => LINK,
        "diode-rx" => DIODE_RX,
        "shell" => SHELL,
        _ => SIMPLE,
    }
}

/// The table as plain text, one status a line (for `--help`).
pub fn text(command: &str) -> String {
    let mut s = String::from("Exit status:\n");
    for (code, meaning) in table(command) {
        s.push_str(&format!("  {code:<6} {meaning}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guide's exit status table is this one: every status with its meaning's start.
    #[test]
    fn the_user_guide_says_the_same() {
        let guide = include_str!("../../docs/user-guide.md");
        for (name, table) in [("link", LINK), ("diode-rx", DIODE_RX), ("shell", SHELL)] {
            for (code, meaning) in table {
                let row = format!("| {code} | {meaning} |");
                assert!(guide.contains(&row), "docs/user-guide.md lacks the {name} row {row:?}");
            }
        }
    }
}
