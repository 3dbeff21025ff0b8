//! Man pages: `strand(1)` and one page per subcommand (`strand-spool(1)`, ...), each with its
//! options from clap, its EXIT STATUS ([`crate::exit`]) and EXAMPLES. `strand man` prints one,
//! `strand man --dir DIR` writes them all (what the Debian package installs).

use clap_mangen::roff::{roman, Roff};
use clap_mangen::Man;
use std::path::{Path, PathBuf};

/// Examples per subcommand: (what it does, the command line).
fn examples(command: &str) -> &'static [(&'static str, &'static str)] {
    match command {
        "strand" => &[("Try it without hardware", "strand demo"), ("Find the serial ports", "strand list")],
        "pipe" => &[
            ("stdin to the peer, the peer to stdout", "strand pipe /dev/ttyUSB0 --baud 2000000 < file"),
            ("serve ssh over the line", "strand pipe /dev/ttyUSB0 --baud 2000000 --exec '/usr/sbin/sshd -i'"),
            ("ssh through it", "ssh -o ProxyCommand='strand pipe /dev/ttyUSB0 --baud 2000000' user@host"),
        ],
        "forward" => &[
            ("on the server", "strand forward /dev/ttyUSB0"),
            (
                "on the client: local port 8022 to the server's ssh",
                "strand forward /dev/ttyUSB0 -L 8022:localhost:22",
            ),
        ],
        "send" => &[("send files, resumable", "strand send /dev/ttyUSB0 --baud 2000000 backup.tar")],
        "recv" => {
            &[("receive into a directory", "strand recv /dev/ttyUSB0 --baud 2000000 --dir /srv/incoming")]
        }
        "spool" => &[
            ("fill the outgoing spool with NNCP", "nncp-xfer -tx -mkdir /var/spool/out"),
            (
                "sync both ways (run on both ends)",
                "strand spool /dev/ttyUSB0 --out /var/spool/out --in /var/spool/in",
            ),
            ("hand the received packets to NNCP", "nncp-xfer -rx /var/spool/in && nncp-toss"),
        ],
        "list" => &[("ports and their stable names", "strand list"), ("for scripts", "strand list --json")],
        "console" => &[
            ("a router's console at 115200 8N1", "strand console /dev/ttyUSB0"),
            (
                "a boot loader at 1500000 baud, logged",
                "strand console /dev/ttyUSB0 --baud 1500000 --log boot.log",
            ),
        ],
        "shell" => &[("a login shell on the far side", "strand shell /dev/ttyUSB0 --baud 2000000")],
        "serve" => &[(
            "give the far side's strand shell a shell",
            "strand serve /dev/ttyUSB0 --baud 2000000 --allow-shell",
        )],
        "diode-tx" => &[
            (
                "a directory three times over a TX-only cable",
                "strand diode-tx /dev/ttyUSB0 --baud 2000000 --rounds 3 reports/",
            ),
            (
                "one way over UDP",
                "strand diode-tx udp:192.0.2.7:7100 --rate 50000000 --expect-loss 2 backup.tar",
            ),
        ],
        "diode-rx" => {
            &[("keep a receiver running", "strand diode-rx /dev/ttyUSB0 --baud 2000000 --dir /srv/incoming")]
        }
        "linkem" => &[(
            "an emulated noisy 2 Mbit/s line",
            "strand linkem --baud 2000000 --ber 1e-5 --link-a /tmp/a --link-b /tmp/b",
        )],
        "demo" => &[("a file over the built-in emulated line", "strand demo")],
        "airtime" => &[(
            "a LoRa frame's time on air",
            "strand airtime --sf 9 --bw 125 --cr 5 --preamble 8 --payload 12",
        )],
        "man" => &[("install every page", "strand man --dir /usr/local/share/man/man1")],
        "completions" => &[("bash completion", "strand completions bash > /etc/bash_completion.d/strand")],
        _ => &[],
    }
}

/// The name of a page: `strand` or `strand-SUBCOMMAND`.
fn page_name(sub: Option<&str>) -> String {
    sub.map_or_else(|| "strand".to_string(), |s| format!("strand-{s}"))
}

/// The page of `sub` (None: the top page), in roff; `None` for an unknown subcommand.
pub fn page(root: &clap::Command, sub: Option<&str>) -> Option<String> {
    let mut root = root.clone().disable_help_subcommand(true);
    root.build();
    let (cmd, key) = match sub {
        None => (root.clone(), "strand".to_string()),
        Some(s) => (root.find_subcommand(s)?.clone(), s.to_string()),
    };
    let name = page_name(sub);
    let cmd = cmd
        .version(env!("CARGO_PKG_VERSION"))
        .display_name(name.clone())
        .bin_name(name.replacen('-', " ", 1));
    let man = Man::new(cmd.clone()).title(name.to_uppercase()).section("1").manual("strand manual");
    let mut out = Vec::new();
    man.render_title(&mut out).ok()?;
    man.render_name_section(&mut out).ok()?;
    man.render_synopsis_section(&mut out).ok()?;
    man.render_description_section(&mut out).ok()?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).ok()?;
    }
    if sub.is_none() {
        man.render_subcommands_section(&mut out).ok()?;
    }
    let mut roff = Roff::default();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in crate::exit::table(&key) {
        roff.control("TP", []).text([roman(*code)]).text([roman(*meaning)]);
    }
    let examples = examples(&key);
    if !examples.is_empty() {
        roff.control("SH", ["EXAMPLES"]);
        for (what, line) in examples {
            roff.control("TP", []).text([roman(*what)]);
            roff.control("EX", []).text([roman(*line)]).control("EE", []);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let see: Vec<String> = if sub.is_none() {
        root.get_subcommands().map(|s| format!("strand-{}(1)", s.get_name())).collect()
    } else {
        vec!["strand(1)".into()]
    };
    roff.text([roman(see.join(", ")), roman(". The user guide: docs/user-guide.md.")]);
    roff.to_writer(&mut out).ok()?;
    man.render_version_section(&mut out).ok()?;
    String::from_utf8(out).ok()
}

/// Writes `strand.1` and every `strand-SUBCOMMAND.1` into `dir`; returns the files written.
pub fn write_all(root: &clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let subs: Vec<Option<String>> = std::iter::once(None)
        .chain(root.get_subcommands().filter(|s| !s.is_hide_set()).map(|s| Some(s.get_name().to_string())))
        .collect();
    let mut written = Vec::new();
    for sub in subs {
        let text = page(root, sub.as_deref()).ok_or_else(|| std::io::Error::other("cannot render a page"))?;
        let path = dir.join(format!("{}.1", page_name(sub.as_deref())));
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_a_page_with_exit_status_and_examples() {
        let root = <crate::Cli as clap::CommandFactory>::command();
        let dir = tempfile::tempdir().unwrap();
        let written = write_all(&root, dir.path()).unwrap();
        let names: Vec<String> =
            written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        for expected in
            ["strand.1", "strand-spool.1", "strand-console.1", "strand-shell.1", "strand-diode-rx.1"]
        {
            assert!(names.contains(&expected.to_string()), "{expected} missing from {names:?}");
        }
        for path in &written {
            let text = std::fs::read_to_string(path).unwrap();
            let name = path.display();
            assert!(text.contains(".SH \"EXIT STATUS\""), "{name} has no EXIT STATUS");
            assert!(text.contains(".SH EXAMPLES"), "{name} has no EXAMPLES");
            assert!(text.contains(".SH SYNOPSIS"), "{name} has no SYNOPSIS");
        }
        let spool = std::fs::read_to_string(dir.path().join("strand-spool.1")).unwrap();
        assert!(spool.contains("\\-\\-out") && spool.contains("nncp\\-xfer"), "{spool}");
        assert!(page(&root, Some("no-such-command")).is_none());
    }
}
