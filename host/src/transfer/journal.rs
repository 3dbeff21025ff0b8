//! The spool receiver's journal: every packet it ever placed, by name and BLAKE3, so that a packet
//! offered again (the sender was stopped before it could delete it) is answered `HAVE` even after
//! a consumer such as `nncp-xfer -rx` took the file away. Nothing is delivered twice.
//!
//! The journal is `DIR/.strand-spool/received`, one line per packet: the BLAKE3 in hex, a space,
//! the spool name (names are checked, so they hold no newline). A record is appended and fsynced
//! *before* the verified partial file is renamed into place: a crash between the two leaves the
//! record and the `.part`, and the next offer finishes the rename (see `Receiver` in `recv.rs`).
//! A torn last line (a crash while appending) is ignored when the journal is read back.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::SPOOL_STATE_DIR;

/// File name of the journal inside [`SPOOL_STATE_DIR`].
pub const JOURNAL: &str = "received";

/// The packets a spool directory has received, loaded in memory, appended to on disk.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    entries: HashSet<(String, [u8; 32])>,
    /// `--ordered`: the highest sequence number placed per directory (see [`sequenced`]).
    last_seq: HashMap<String, u64>,
}

/// `--ordered` names: the last component is `SEQ.NAME`, SEQ twelve decimal digits numbering the
/// packets of its directory (`RECIPIENT/SENDER`) from 1. Returns the directory and SEQ.
pub fn sequenced(name: &str) -> Option<(&str, u64)> {
    let (dir, last) = name.rsplit_once('/').unwrap_or(("", name));
    let (seq, rest) = last.split_once('.')?;
    if seq.len() != 12 || !seq.bytes().all(|b| b.is_ascii_digit()) || rest.is_empty() {
        return None;
    }
    Some((dir, seq.parse().ok()?))
}

impl Journal {
    /// Opens (creating if needed) the journal of spool directory `dir` and reads it.
    pub fn open(dir: &Path) -> io::Result<Journal> {
        let state = dir.join(SPOOL_STATE_DIR);
        fs::create_dir_all(&state)?;
        let path = state.join(JOURNAL);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut entries = HashSet::new();
        let mut last_seq = HashMap::new();
        for line in BufReader::new(&file).split(b'\n') {
            if let Some(entry) = parse(&line?) {
                note_seq(&mut last_seq, &entry.0);
                entries.insert(entry);
            }
        }
        // A torn last line has no newline: end it, so the next record starts a line of its own.
        if file.metadata()?.len() > 0 && !ends_with_newline(&path)? {
            file.write_all(b"\n")?;
            file.sync_data()?;
        }
        Ok(Journal { path, file, entries, last_seq })
    }

    /// Whether the packet `name` with content `hash` was placed before.
    pub fn contains(&self, name: &str, hash: &[u8; 32]) -> bool {
        self.entries.contains(&(name.to_string(), *hash))
    }

    /// Records a packet durably (appended and fsynced before this returns).
    pub fn record(&mut self, name: &str, hash: &[u8; 32]) -> io::Result<()> {
        if self.contains(name, hash) {
            return Ok(());
        }
        let line = format!("{} {name}\n", blake3::Hash::from_bytes(*hash).to_hex());
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()?;
        self.entries.insert((name.to_string(), *hash));
        note_seq(&mut self.last_seq, name);
        Ok(())
    }

    /// `--ordered`: the highest sequence number placed in directory `dir` (0: none yet).
    pub fn last_seq(&self, dir: &str) -> u64 {
        self.last_seq.get(dir).copied().unwrap_or(0)
    }

    /// Where the journal lives (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn note_seq(last: &mut HashMap<String, u64>, name: &str) {
    if let Some((dir, seq)) = sequenced(name) {
        let e = last.entry(dir.to_string()).or_insert(0);
        *e = (*e).max(seq);
    }
}

fn ends_with_newline(path: &Path) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::End(-1))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(b[0] == b'\n')
}

/// One line of the journal; `None` for a torn or foreign line.
fn parse(line: &[u8]) -> Option<(String, [u8; 32])> {
    let text = std::str::from_utf8(line).ok()?;
    let (hex, name) = text.split_once(' ')?;
    let hash = blake3::Hash::from_hex(hex).ok()?;
    (!name.is_empty()).then(|| (name.to_string(), *hash.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen_and_torn_lines_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let h = *blake3::hash(b"x").as_bytes();
        {
            let mut j = Journal::open(dir.path()).unwrap();
            assert!(!j.contains("R/S/P", &h));
            j.record("R/S/P", &h).unwrap();
            j.record("R/S/P", &h).unwrap();
        }
        // A crash while appending leaves half a line.
        let path = dir.path().join(SPOOL_STATE_DIR).join(JOURNAL);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"abc1").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "one record, once, and the torn line: {text}");
        let mut j = Journal::open(dir.path()).unwrap();
        assert!(j.contains("R/S/P", &h));
        let h2 = *blake3::hash(b"z").as_bytes();
        j.record("R/S/Z", &h2).unwrap();
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        assert!(j.contains("R/S/Z", &h2), "a record after a torn line is read back");
    }

    #[test]
    fn sequence_numbers_per_directory() {
        assert_eq!(sequenced("R/S/000000000042.pkt"), Some(("R/S", 42)));
        assert_eq!(sequenced("000000000001.x"), Some(("", 1)));
        for bad in ["R/S/42.pkt", "R/S/000000000042", "R/S/000000000042.", "R/S/00000000004x.p"] {
            assert_eq!(sequenced(bad), None, "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let h = *blake3::hash(b"x").as_bytes();
        let mut j = Journal::open(dir.path()).unwrap();
        j.record("R/S/000000000002.b", &h).unwrap();
        j.record("R/T/000000000007.c", &h).unwrap();
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!((j.last_seq("R/S"), j.last_seq("R/T"), j.last_seq("X/Y")), (2, 7, 0));
        assert!(!j.contains("R/S/Q", &h));
        assert!(!j.contains("R/S/P", blake3::hash(b"y").as_bytes()));
    }
}
