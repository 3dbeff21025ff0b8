//! What `strand spool` finds to send in its `--out` directory: regular files one to three levels
//! down, as `nncp-xfer -tx` leaves them (`DIR/RECIPIENT/SENDER/PACKET`).
//!
//! Hidden names (`.strand-spool`, `.strand-partial`, editors' and tools' temporary files) and
//! NNCP's own files in the making (`nncpxfer*`, renamed into place when complete) are skipped, as
//! are symlinks and special files. Packets go oldest first (modification time, then name), so a
//! spool drains in the order it filled.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Prefix of the temporary files `nncp-xfer -tx` writes before renaming them to the packet's name.
pub const NNCP_TEMP_PREFIX: &str = "nncpxfer";

/// One packet waiting in the outgoing spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The file.
    pub path: PathBuf,
    /// Its path relative to the spool directory, `/`-separated: its name on the receiver.
    pub name: String,
    /// Its size when scanned.
    pub size: u64,
    /// Its modification time when scanned (nanoseconds since the epoch).
    pub mtime_ns: i128,
}

/// Why `name` (a path relative to a spool directory, `/`-separated) is not a packet strand carries:
/// the scan below never offers such a name, and a receiver refuses one that comes from the wire
/// (`diode-rx --spool`). A packet is one to three components (`RECIPIENT/SENDER/PACKET`), each a
/// plain file name that is not hidden and not one of `nncp-xfer`'s files in the making.
pub fn check_packet_name(name: &str) -> Result<(), String> {
    crate::transfer::names::check_spool_name(name)?;
    if name.split('/').any(|c| c.starts_with(NNCP_TEMP_PREFIX)) {
        return Err(format!(
            "a component starts with {NNCP_TEMP_PREFIX:?} (nncp-xfer's files in the making)"
        ));
    }
    Ok(())
}

/// Every packet under `dir`, oldest first.
pub fn outgoing(dir: &Path) -> io::Result<Vec<Outgoing>> {
    let mut found = Vec::new();
    walk(dir, "", 1, &mut found)?;
    found.sort_by(|a, b| a.mtime_ns.cmp(&b.mtime_ns).then_with(|| a.name.cmp(&b.name)));
    Ok(found)
}

fn walk(dir: &Path, prefix: &str, depth: usize, found: &mut Vec<Outgoing>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::warn!("skipping {}: its name is not UTF-8", entry.path().display());
            continue;
        };
        if name.starts_with('.') || name.starts_with(NNCP_TEMP_PREFIX) {
            continue;
        }
        if name.chars().any(char::is_control) {
            tracing::warn!("skipping {}: its name has control characters", entry.path().display());
            continue;
        }
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        // symlink_metadata: a link is never followed out of the spool.
        let meta = match fs::symlink_metadata(entry.path()) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // taken meanwhile
            Err(e) => return Err(e),
        };
        if meta.is_dir() && depth < 3 {
            walk(&entry.path(), &rel, depth + 1, found)?;
        } else if meta.is_file() {
            let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
            found.push(Outgoing { path: entry.path(), name: rel, size: meta.len(), mtime_ns });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_packets_in_the_nncp_layout_and_skips_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let put = |rel: &str| {
            let p = d.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, rel).unwrap();
        };
        put("BOB/ALICE/PKT1");
        put("BOB/ALICE/nncpxfer1234");
        put("BOB/ALICE/.tmp");
        put(".strand-spool/received");
        put("flat");
        put("A/B/C/too-deep");
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("BOB/ALICE/link")).unwrap();
        let mut names: Vec<String> = outgoing(d.path()).unwrap().into_iter().map(|o| o.name).collect();
        names.sort();
        assert_eq!(names, ["BOB/ALICE/PKT1", "flat"]);
    }

    #[test]
    fn packet_names_from_the_wire_follow_the_scan_rules() {
        for good in ["BOB/ALICE/PKT1", "flat", "A/B", "R/S/x..y"] {
            assert_eq!(check_packet_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "R/../../x",
            "R/S/..",
            "R//P",
            "R/S/P/",
            "A/B/C/too-deep",
            ".strand-spool/received",
            ".strand-diode/x",
            "R/.hidden/P",
            "R/S/nncpxfer1234",
            "R\\S",
            "R/S/a\nb",
            "R/S/a\u{1b}[2Jb",
        ] {
            assert!(check_packet_name(bad).is_err(), "{bad:?}");
        }
    }
}
