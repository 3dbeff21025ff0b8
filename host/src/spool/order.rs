//! `strand spool --ordered` on the sending side: Filespooler-like ordered delivery.
//!
//! Each packet of `--out` gets a sequence number the first time a scan sees it, numbered per
//! directory (`RECIPIENT/SENDER`, or the spool itself for flat files) from 1, oldest first. It
//! travels as the packet's name, `DIR/SEQ.NAME` with SEQ twelve digits, and the receiver places a
//! packet only when SEQ is the next one due in that directory
//! ([`crate::transfer::journal::sequenced`]), so packets appear in the order they were spooled,
//! across sessions, whatever was cut in between. The numbers are kept in
//! `OUT/.strand-spool/sequence` (written to a temporary file, fsynced and renamed into place
//! before any packet with a new number is offered), one line per fact:
//! `next N DIR` (the last number given in DIR) and `seq N NAME` (a packet not yet delivered).

use super::Outgoing;
use crate::transfer::SPOOL_STATE_DIR;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// File name of the sender's sequence state inside [`SPOOL_STATE_DIR`].
pub const SEQUENCE: &str = "sequence";

/// The sequence numbers of one outgoing spool.
#[derive(Debug)]
pub struct Sequencer {
    path: PathBuf,
    /// Per directory: the last number given.
    next: BTreeMap<String, u64>,
    /// Per packet not yet delivered: its number.
    assigned: BTreeMap<String, u64>,
}

/// A packet's directory within the spool (`""` for a flat file) and its last component.
fn split(name: &str) -> (&str, &str) {
    name.rsplit_once('/').unwrap_or(("", name))
}

/// The name a packet travels under: `DIR/SEQ.NAME`.
pub fn wire_name(name: &str, seq: u64) -> String {
    match split(name) {
        ("", last) => format!("{seq:012}.{last}"),
        (dir, last) => format!("{dir}/{seq:012}.{last}"),
    }
}

impl Sequencer {
    /// Reads the state of the spool `out` (none yet: numbering starts at 1).
    pub fn open(out: &Path) -> io::Result<Sequencer> {
        let path = out.join(SPOOL_STATE_DIR).join(SEQUENCE);
        let mut s = Sequencer { path, next: BTreeMap::new(), assigned: BTreeMap::new() };
        let text = match fs::read_to_string(&s.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(s),
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            let mut parts = line.splitn(3, ' ');
            let (kind, n, rest) = (parts.next(), parts.next().and_then(|n| n.parse().ok()), parts.next());
            match (kind, n, rest) {
                (Some("next"), Some(n), Some(dir)) => {
                    s.next.insert(dir.to_string(), n);
                }
                (Some("seq"), Some(n), Some(name)) if !name.is_empty() => {
                    s.assigned.insert(name.to_string(), n);
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} has a line strand did not write: {line:?}", s.path.display()),
                    ))
                }
            }
        }
        Ok(s)
    }

    /// Numbers the packets of `batch` that have none yet (in the batch's order, oldest first),
    /// forgets packets no longer in the spool (delivered), saves the state, and returns the batch
    /// in sequence order with each packet's wire name.
    pub fn assign(&mut self, batch: Vec<Outgoing>) -> io::Result<Vec<(Outgoing, String)>> {
        self.assigned.retain(|name, _| batch.iter().any(|o| &o.name == name));
        for o in &batch {
            if !self.assigned.contains_key(&o.name) {
                let next = self.next.entry(split(&o.name).0.to_string()).or_insert(0);
                *next += 1;
                self.assigned.insert(o.name.clone(), *next);
            }
        }
        self.save()?;
        let mut out: Vec<(Outgoing, String, u64)> = batch
            .into_iter()
            .map(|o| {
                let seq = self.assigned[&o.name];
                let wire = wire_name(&o.name, seq);
                (o, wire, seq)
            })
            .collect();
        out.sort_by(|a, b| (a.2, split(&a.0.name).0).cmp(&(b.2, split(&b.0.name).0)));
        Ok(out.into_iter().map(|(o, w, _)| (o, w)).collect())
    }

    fn save(&self) -> io::Result<()> {
        let mut text = String::new();
        for (dir, n) in &self.next {
            text.push_str(&format!("next {n} {dir}\n"));
        }
        for (name, n) in &self.assigned {
            text.push_str(&format!("seq {n} {name}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(name: &str, t: i128) -> Outgoing {
        Outgoing { path: PathBuf::from(name), name: name.into(), size: 1, mtime_ns: t }
    }

    #[test]
    fn numbers_stick_across_runs_and_count_on_per_directory() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Sequencer::open(d.path()).unwrap();
        let got = s.assign(vec![packet("R/S/a", 1), packet("R/S/b", 2), packet("R/T/c", 3)]).unwrap();
        let names: Vec<&str> = got.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(names, ["R/S/000000000001.a", "R/T/000000000001.c", "R/S/000000000002.b"]);
        // a was delivered; b not; d is new. A new process reads the state back.
        let mut s = Sequencer::open(d.path()).unwrap();
        let got = s.assign(vec![packet("R/S/b", 2), packet("R/S/d", 4)]).unwrap();
        let names: Vec<&str> = got.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(names, ["R/S/000000000002.b", "R/S/000000000003.d"]);
        assert_eq!(wire_name("flat", 7), "000000000007.flat");
        std::fs::write(d.path().join(SPOOL_STATE_DIR).join(SEQUENCE), "garbage\n").unwrap();
        assert!(Sequencer::open(d.path()).is_err(), "a damaged state is an error, not a restart at 1");
    }
}
