//! The disk [`Store`] of `strand diode-rx`: what a receiver holds survives a
//! restart, so symbols already received are never needed again.
//!
//! Under `DIR/.strand-diode/`, one directory per object, named
//! `SESSION-OBJECT` (session in hex):
//! - `part`: the object's bytes at their offsets. A source symbol is the
//!   object's own bytes, so it is written here as it arrives, and a decoded
//!   block adds only the symbols that were missing: every byte is written
//!   once, spread over the transfer instead of all at its end.
//! - `spool`: the symbols of blocks not yet decoded, appended as records
//!   `block u16 LE, esi u16 LE, len u16 LE, bytes` through a buffer (flushed
//!   on every tick of the receiver and at exit); a source symbol's record has
//!   `len` 0 and no bytes: they are in `part`. The symbols are also kept in
//!   memory up to [`MEMORY_BUDGET`], so decoding a block reads nothing back.
//!   A record cut short by a crash is dropped at start-up.
//! - `meta`: layout, manifest (once known) and the decoded blocks, rewritten
//!   atomically (temp file + rename) when one of them changes (completed
//!   blocks on the next flush), so it never claims a block whose bytes are
//!   not in `part`.
//!
//! `DIR/.strand-diode/complete` lists the objects published, so a restarted
//! receiver counts them complete rather than never seen. Object directories
//! untouched for longer than the keep time, and journal lines as old, are
//! removed when the store opens and every few minutes.
//!
//! A committed object's bytes are checked against the manifest's BLAKE3 and
//! renamed into `DIR/NAME`, created with the process umask and never
//! world-writable; then its directory is deleted. The check does not read
//! the file again: every write to `part` is hashed as it is made, into the
//! pieces of BLAKE3's tree it covers ([`TreeHash`]), and each completed
//! block is settled, so publishing reads back only the chunks across the
//! blocks' edges (a restarted receiver, which keeps no such pieces, reads
//! back what the earlier run wrote). Blocks that need decoding are decoded
//! on a few threads of the store's ([`Store::decode_later`]) while the
//! receiver goes on taking frames; a block is recorded in `meta` only once
//! its bytes are in `part`, and reading back or publishing an object waits
//! for its blocks under way. So little is left after the last datagram but
//! the fsync, whose writeback was started as the bytes were written.
//!
//! In a spool directory ([`DiskStore::open_spool`], `diode-rx --spool`) names
//! must be packets (`RECIPIENT/SENDER/PACKET`, [`check_packet_name`]), a file
//! is never replaced, and every packet placed is recorded, by name and
//! BLAKE3, in the spool journal `DIR/.strand-spool/received` that `strand
//! spool --in` keeps too: a packet sent again after a consumer (`nncp-xfer
//! -rx`) took it away counts as already here and is not placed twice. The
//! record is made (fsynced) before the rename, and a `placing` marker in the
//! object's directory, written before the record, lets a receiver stopped
//! between the two finish the rename when it opens again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::treehash::{Node, TreeHash};
use super::workers::Workers;
use crate::spool::check_packet_name;
use crate::transfer::journal::Journal;
use strand_link::diode::{safe_name, CodeId, Layout, Manifest, ObjectKey, Store};

mod pending;
mod records;
#[cfg(test)]
mod tests;

use pending::{
    decode_on_worker, missing_runs, Collect, DecodeJob, Decoded, Pending, SpoolEntry, Symbols, RUN_BYTES,
};
use records::{
    hash_file, load, manifest_line, parse_dir_name, parse_journal, parse_manifest, write_meta, write_placing,
};

/// The receiver's working directory below DIR.
pub const WORK_DIR: &str = ".strand-diode";
/// The journal of published objects, in [`WORK_DIR`].
pub const JOURNAL: &str = "complete";
/// Bytes of kept symbols held in memory besides the spool.
pub const MEMORY_BUDGET: u64 = 1 << 30;
/// Bytes written to `part` between two starts of its writeback, so the
/// fsync before publishing finds little left to write.
const WRITEBACK_EVERY: u64 = 2 << 20;
/// Bytes buffered before a spool write.
const SPOOL_BUFFER: usize = 1 << 20;
/// Most threads that decode blocks (fewer on a machine with fewer cores).
const DECODE_THREADS: usize = 4;

const META_MAGIC: &str = "strand-diode-meta 1";
/// Spool mode: in an object's directory, says its verified `part` is being
/// placed; holds the manifest line it is placed under.
const PLACING: &str = "placing";
/// Bytes of a spool record's header.
const RECORD_HEADER: usize = 6;

/// Why the store could not do what the receiver asked.
#[derive(Debug)]
pub enum StoreError {
    /// An I/O error on a file of the store (disk full, permissions, ...).
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The OS's error.
        err: io::Error,
    },
    /// The target exists with other content and `--overwrite` was not given.
    Exists(PathBuf),
    /// The name would land outside DIR (through a symlinked directory, say).
    Outside(String),
    /// Spool mode: the name is not a packet's (`RECIPIENT/SENDER/PACKET`).
    NotAPacket {
        /// The name the sender gave.
        name: String,
        /// Why it is refused.
        why: String,
    },
    /// Spool mode: another file of that name is in the spool (never replaced).
    Taken(PathBuf),
}

impl StoreError {
    /// Whether the receiver can go on (the object stays pending) rather than stop.
    pub fn recoverable(&self) -> bool {
        matches!(
            self,
            StoreError::Exists(_)
                | StoreError::Outside(_)
                | StoreError::NotAPacket { .. }
                | StoreError::Taken(_)
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { what, err } if err.raw_os_error() == Some(nix::libc::ENOSPC) => {
                write!(
                    f,
                    "{what}: disk full (no space left on device); free some space and run again to resume"
                )
            }
            StoreError::Io { what, err } => write!(f, "{what}: {err}"),
            StoreError::Exists(p) => {
                write!(f, "{} exists with different content: not replaced (use --overwrite)", p.display())
            }
            StoreError::Outside(n) => {
                write!(f, "{n:?} would be written outside the target directory: refused")
            }
            StoreError::NotAPacket { name, why } => {
                write!(f, "{name:?} is not a spool packet's name (RECIPIENT/SENDER/PACKET): {why}; refused")
            }
            StoreError::Taken(p) => {
                write!(f, "{} is another file of that name in the spool: not replaced", p.display())
            }
        }
    }
}

impl std::error::Error for StoreError {}

fn io_err(what: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> StoreError {
    move |err| StoreError::Io { what: what(), err }
}

/// What the store kept of one object, for `Receiver::restore`.
#[derive(Debug)]
pub struct Restored {
    /// The object.
    pub key: ObjectKey,
    /// Its layout, if a symbol was seen.
    pub layout: Option<Layout>,
    /// Its manifest, if it was received.
    pub manifest: Option<Manifest>,
    /// Blocks already decoded into `part`.
    pub decoded: Vec<u16>,
    /// Symbols kept of the other blocks: `(block, esi)`.
    pub symbols: Vec<(u16, u16)>,
}

/// What the store found when it opened.
#[derive(Debug, Default)]
pub struct Opened {
    /// Unfinished objects.
    pub partial: Vec<Restored>,
    /// Objects published by earlier runs whose files are still there.
    pub complete: Vec<(ObjectKey, Manifest)>,
    /// Unfinished objects removed because nothing touched them for the keep time.
    pub expired: usize,
    /// Spool mode: packets whose placement a stop interrupted, placed now.
    pub placed: usize,
}

/// The receiver's files under DIR.
#[derive(Debug)]
pub struct DiskStore {
    /// The target directory, canonical.
    root: PathBuf,
    work: PathBuf,
    overwrite: bool,
    keep: Duration,
    /// Permission bits the process umask removes (read once at start).
    umask: u32,
    objects: BTreeMap<ObjectKey, Pending>,
    memory: u64,
    /// BLAKE3 of files already in DIR, by (path, length, mtime in ns).
    hashed: HashMap<(PathBuf, u64, i128), [u8; 32]>,
    /// Spool mode: every packet ever placed in DIR.
    spool: Option<Journal>,
    /// Bytes the last commit read back from `part` to check its hash.
    read_back: u64,
    /// Threads decoding blocks, started with the first block to decode.
    workers: Option<Workers<(ObjectKey, u16), Result<Decoded, String>>>,
    /// They could not be started: blocks are decoded on the caller's thread.
    no_workers: bool,
}

/// The process umask, read without changing it for good.
fn process_umask() -> u32 {
    use nix::sys::stat::{umask, Mode};
    let old = umask(Mode::from_bits_truncate(0o077));
    umask(old);
    old.bits()
}

/// The permission bits of a received file: read/write as any new file
/// (0666, or 0777 if the sender's had an executable bit), less the umask,
/// and never writable by others, whatever the sender's mode was.
pub fn received_mode(sender_mode: u32, umask: u32) -> u32 {
    let base = if sender_mode & 0o111 != 0 { 0o777 } else { 0o666 };
    base & !umask & !0o002
}

impl DiskStore {
    /// Opens (creating it if needed) the store of `dir`, reads back what an
    /// earlier run left there, and removes what is older than `keep`.
    pub fn open(dir: &Path, overwrite: bool, keep: Duration) -> Result<(DiskStore, Opened), StoreError> {
        DiskStore::open_as(dir, overwrite, keep, false)
    }

    /// Opens the store of spool directory `dir` (see the module's text):
    /// packets only, never replaced, journalled; placements a stop
    /// interrupted are finished first.
    pub fn open_spool(dir: &Path, keep: Duration) -> Result<(DiskStore, Opened), StoreError> {
        DiskStore::open_as(dir, false, keep, true)
    }

    fn open_as(
        dir: &Path,
        overwrite: bool,
        keep: Duration,
        spool: bool,
    ) -> Result<(DiskStore, Opened), StoreError> {
        fs::create_dir_all(dir).map_err(io_err(|| format!("cannot create {}", dir.display())))?;
        let root = dir.canonicalize().map_err(io_err(|| format!("cannot open {}", dir.display())))?;
        let work = root.join(WORK_DIR);
        fs::create_dir_all(&work).map_err(io_err(|| format!("cannot create {}", work.display())))?;
        let mut store = DiskStore {
            root,
            work,
            overwrite,
            keep,
            umask: process_umask(),
            objects: BTreeMap::new(),
            memory: 0,
            hashed: HashMap::new(),
            spool: None,
            read_back: 0,
            workers: None,
            no_workers: false,
        };
        let mut placed = 0;
        if spool {
            let journal = Journal::open(&store.root).map_err(io_err(|| {
                format!(
                    "cannot open the spool journal in {}",
                    store.root.join(crate::transfer::SPOOL_STATE_DIR).display()
                )
            }))?;
            store.spool = Some(journal);
            placed = store.finish_placements()?;
        }
        let mut opened = store.scan()?;
        opened.complete = store.read_journal();
        opened.placed = placed;
        Ok((store, opened))
    }

    /// Spool mode: finishes the placements a stop interrupted (object
    /// directories with a [`PLACING`] marker); returns how many it placed.
    fn finish_placements(&mut self) -> Result<usize, StoreError> {
        let mut placed = 0;
        let entries =
            fs::read_dir(&self.work).map_err(io_err(|| format!("cannot read {}", self.work.display())))?;
        for e in entries.flatten() {
            let dir = e.path();
            if e.file_name().to_str().and_then(parse_dir_name).is_none() {
                continue;
            }
            let Ok(line) = fs::read_to_string(dir.join(PLACING)) else { continue };
            let Some(m) = parse_manifest(line.trim_end()) else {
                tracing::warn!("ignoring {}: unreadable", dir.join(PLACING).display());
                let _ = fs::remove_file(dir.join(PLACING));
                continue;
            };
            let part = dir.join("part");
            match hash_file(&part) {
                Ok((len, h)) if len == m.size && Some(h) == m.hash => {
                    self.record(&m.name, &h)?;
                    let target = self.target(&m.name)?;
                    match crate::transfer::place_spool(&part, &target) {
                        Ok(()) => placed += 1,
                        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                            tracing::warn!("{}", StoreError::Taken(target));
                            continue;
                        }
                        Err(err) => {
                            return Err(StoreError::Io {
                                what: format!("cannot create {}", target.display()),
                                err,
                            })
                        }
                    }
                }
                // Renamed before the stop: only the directory was left.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                _ => {
                    // Not what was verified: received again from the start.
                    tracing::warn!("{}: does not match its manifest; dropped", part.display());
                }
            }
            let _ = fs::remove_dir_all(&dir);
        }
        Ok(placed)
    }

    /// Spool mode: records a packet in the journal (fsynced).
    fn record(&mut self, name: &str, hash: &[u8; 32]) -> Result<(), StoreError> {
        let Some(j) = self.spool.as_mut() else { return Ok(()) };
        let path = j.path().to_path_buf();
        j.record(name, hash).map_err(io_err(|| format!("cannot record {name} in {}", path.display())))
    }

    /// Spool mode: whether this packet was placed before (maybe taken away since).
    fn placed_before(&self, name: &str, hash: Option<[u8; 32]>) -> bool {
        match (&self.spool, hash) {
            (Some(j), Some(h)) => j.contains(name, &h),
            _ => false,
        }
    }

    /// Reads every object directory; ones without a readable meta file are
    /// leftovers of a crash before the first symbol was kept, and ones not
    /// touched for the keep time are stale: both are removed.
    fn scan(&mut self) -> Result<Opened, StoreError> {
        let mut out = Opened::default();
        let entries =
            fs::read_dir(&self.work).map_err(io_err(|| format!("cannot read {}", self.work.display())))?;
        for e in entries.flatten() {
            let path = e.path();
            let Some(key) = e.file_name().to_str().and_then(parse_dir_name) else { continue };
            if self.is_stale(&path) {
                let _ = fs::remove_dir_all(&path);
                out.expired += 1;
                continue;
            }
            match load(&path) {
                Ok(Some(p)) => {
                    let symbols =
                        p.index.iter().flat_map(|(&b, v)| v.iter().map(move |s| (b, s.esi))).collect();
                    out.partial.push(Restored {
                        key,
                        layout: p.layout,
                        manifest: p.manifest.clone(),
                        decoded: p.decoded.iter().copied().collect(),
                        symbols,
                    });
                    self.objects.insert(key, p);
                }
                Ok(None) => {
                    let _ = fs::remove_dir_all(&path);
                }
                Err(err) => tracing::warn!("ignoring {}: {err}", path.display()),
            }
        }
        out.partial.sort_by_key(|r| r.key);
        Ok(out)
    }

    /// Whether an object directory was last touched longer ago than the keep time.
    fn is_stale(&self, dir: &Path) -> bool {
        let newest = ["meta", "spool", "part"]
            .iter()
            .filter_map(|f| fs::metadata(dir.join(f)).and_then(|m| m.modified()).ok())
            .max();
        newest.is_some_and(|t| t.elapsed().is_ok_and(|age| age > self.keep))
    }

    /// Removes unfinished objects nobody touched for the keep time (a
    /// receiver that runs for weeks); returns the keys removed.
    pub fn expire(&mut self) -> Vec<ObjectKey> {
        let stale: Vec<ObjectKey> =
            self.objects.iter().filter(|(_, p)| self.is_stale(&p.dir)).map(|(k, _)| *k).collect();
        for k in &stale {
            self.drop_object(*k);
        }
        stale
    }

    /// Journal lines younger than the keep time whose files are still there
    /// with their size; the journal is rewritten without the others.
    fn read_journal(&self) -> Vec<(ObjectKey, Manifest)> {
        let path = self.work.join(JOURNAL);
        let Ok(text) = fs::read_to_string(&path) else { return Vec::new() };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut kept = String::new();
        let mut out = Vec::new();
        for line in text.lines() {
            let Some((at, rest)) = line.split_once(' ') else { continue };
            let Some((key, m)) = parse_journal(rest) else { continue };
            let fresh = at.parse::<u64>().is_ok_and(|t| now.saturating_sub(t) <= self.keep.as_secs());
            let there = fs::metadata(self.root.join(&m.name)).is_ok_and(|f| f.is_file() && f.len() == m.size)
                || self.placed_before(&m.name, m.hash);
            if fresh && there {
                kept += line;
                kept.push('\n');
                out.push((key, m));
            }
        }
        let tmp = self.work.join("complete.tmp");
        if fs::write(&tmp, kept).is_ok() {
            let _ = fs::rename(&tmp, &path);
        }
        out
    }

    fn journal(&self, key: ObjectKey, m: &Manifest) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        // The key's object number, whatever the manifest says (they agree on the wire).
        let m = Manifest { object: key.object, ..m.clone() };
        let line = format!("{now} {:08x} {}\n", key.session, manifest_line(&m));
        let appended = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.work.join(JOURNAL))
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            tracing::warn!("cannot record {} as complete: {e}", m.name);
        }
    }

    /// Records an object's manifest so a restarted receiver knows it; a
    /// manifest that gained its hash is recorded again.
    pub fn remember_manifest(&mut self, key: ObjectKey, manifest: &Manifest) -> Result<(), StoreError> {
        let Some(p) = self.objects.get_mut(&key) else { return Ok(()) };
        if p.manifest.as_ref().is_some_and(|m| m.hash.is_some() || manifest.hash.is_none()) {
            return Ok(());
        }
        p.manifest = Some(manifest.clone());
        write_meta(p)
    }

    /// Objects held whose manifest, with its hash, is not recorded yet.
    pub fn without_manifest(&self) -> Vec<ObjectKey> {
        self.objects
            .iter()
            .filter(|(_, p)| p.manifest.as_ref().is_none_or(|m| m.hash.is_none()))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Writes buffered symbols to the spools and completed blocks to `meta`
    /// (the receiver calls it on every tick, so a crash loses at most a
    /// tick's worth).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.collect_decodes(Collect::Ready)?;
        for p in self.objects.values_mut() {
            p.write_runs(None)?;
            if p.meta_stale {
                write_meta(p)?;
                p.meta_stale = false;
            }
            if let Some(w) = &mut p.spool {
                w.flush().map_err(io_err(|| format!("cannot write {}", p.dir.join("spool").display())))?;
            }
        }
        Ok(())
    }

    /// Takes in the blocks the workers have decoded: their hash-tree nodes,
    /// and only then their place in `meta` (its bytes are in `part` by then).
    fn collect_decodes(&mut self, wait: Collect) -> Result<(), StoreError> {
        let mut waited = false;
        loop {
            let Some(w) = self.workers.as_mut() else { return Ok(()) };
            let busy = match wait {
                Collect::Ready => false,
                Collect::One => !waited,
                Collect::Object(key) => self.objects.get(&key).is_some_and(|p| !p.decoding.is_empty()),
                Collect::All => w.in_flight() > 0,
            };
            let done = if busy { w.wait_done() } else { w.try_done() };
            waited |= busy;
            let Some(((key, block), result)) = done else { return Ok(()) };
            // An object dropped meanwhile (superseded, expired) has no use for it.
            let Some(p) = self.objects.get_mut(&key) else { continue };
            p.decoding.remove(&block);
            match result.and_then(|r| r) {
                Ok(d) => {
                    if let Some(t) = p.tree() {
                        t.graft(d.nodes);
                    }
                    p.decode_times.0 += 1;
                    for (sum, t) in p.decode_times.1.iter_mut().zip(d.times) {
                        *sum += t;
                    }
                    p.decoded.insert(block);
                    p.meta_stale = true;
                }
                Err(why) => {
                    // Say which object and block: the worker knows only its job.
                    let why = format!("{}: block {block}: {why}", p.dir.display());
                    tracing::warn!("{why}");
                    p.decode_failed.get_or_insert(why);
                }
            }
        }
    }

    fn pending(&mut self, key: ObjectKey, layout: &Layout) -> Result<&mut Pending, StoreError> {
        if !self.objects.contains_key(&key) {
            let dir = self.work.join(format!("{:08x}-{}", key.session, key.object));
            fs::create_dir_all(&dir).map_err(io_err(|| format!("cannot create {}", dir.display())))?;
            let p = Pending { dir, layout: Some(*layout), ..Pending::default() };
            // The meta file first: a spool without one is unreadable after a crash.
            write_meta(&p)?;
            self.objects.insert(key, p);
        }
        let p = self.objects.get_mut(&key).expect("inserted above");
        if p.layout.is_none() {
            p.layout = Some(*layout);
            write_meta(p)?;
        }
        Ok(p)
    }

    /// Where `name` goes below DIR, refusing anything that would leave it.
    fn target(&self, name: &str) -> Result<PathBuf, StoreError> {
        let rel = Path::new(name);
        if !safe_name(name) || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(StoreError::Outside(name.into()));
        }
        if self.spool.is_some() {
            check_packet_name(name).map_err(|why| StoreError::NotAPacket { name: name.into(), why })?;
        }
        let target = self.root.join(rel);
        let parent = target.parent().unwrap_or(&self.root).to_path_buf();
        // A spool's new RECIPIENT/SENDER directories are made durable before a packet goes in.
        let made = match self.spool {
            Some(_) => crate::transfer::create_synced(&parent),
            None => fs::create_dir_all(&parent),
        };
        made.map_err(io_err(|| format!("cannot create {}", parent.display())))?;
        // A directory of the path may be a symlink planted to lead elsewhere.
        let real = parent.canonicalize().map_err(io_err(|| format!("cannot open {}", parent.display())))?;
        if !real.starts_with(&self.root) || real.starts_with(&self.work) {
            return Err(StoreError::Outside(name.into()));
        }
        Ok(real.join(target.file_name().ok_or_else(|| StoreError::Outside(name.into()))?))
    }

    /// BLAKE3 of an existing regular file, remembered while it stays the same.
    fn hash_existing(&mut self, path: &Path) -> Option<(u64, [u8; 32])> {
        let meta = fs::symlink_metadata(path).ok().filter(|m| m.is_file())?;
        let stamp = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        let id = (path.to_path_buf(), meta.len(), stamp);
        if let Some(h) = self.hashed.get(&id) {
            return Some((meta.len(), *h));
        }
        let (len, h) = hash_file(path).ok()?;
        self.hashed.insert(id, h);
        Some((len, h))
    }

    /// Gives a verified `part` the mode and time it is published with, and syncs it.
    fn seal(&self, part: &Path, manifest: &Manifest) -> Result<(), StoreError> {
        let f = OpenOptions::new()
            .write(true)
            .open(part)
            .map_err(io_err(|| format!("cannot open {}", part.display())))?;
        f.set_permissions(fs::Permissions::from_mode(received_mode(manifest.mode, self.umask)))
            .map_err(io_err(|| format!("cannot set the mode of {}", part.display())))?;
        if manifest.mtime > 0 {
            let _ = f.set_modified(UNIX_EPOCH + Duration::from_secs(manifest.mtime));
        }
        tracing::debug!("{}: hash matches; syncing", manifest.name);
        f.sync_all().map_err(io_err(|| format!("cannot write {}", part.display())))?;
        tracing::debug!("{}: synced", manifest.name);
        Ok(())
    }

    /// Spool mode: publishes a verified packet — unless it was placed before
    /// (a consumer may have taken it since) — never over another file, with
    /// the journal record made before the rename (see the module's text).
    fn place_packet(
        &mut self,
        key: ObjectKey,
        manifest: &Manifest,
        part: &Path,
        hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        if self.placed_before(&manifest.name, Some(hash)) {
            tracing::debug!("{}: placed before; not again", manifest.name);
            self.drop_object(key);
            self.journal(key, manifest);
            return Ok(true);
        }
        let target = self.target(&manifest.name)?;
        if fs::symlink_metadata(&target).is_ok() {
            if self.hash_existing(&target).is_some_and(|(len, h)| len == manifest.size && h == hash) {
                self.record(&manifest.name, &hash)?;
                self.drop_object(key);
                self.journal(key, manifest);
                return Ok(true);
            }
            return Err(StoreError::Taken(target));
        }
        self.seal(part, manifest)?;
        let dir = part.parent().unwrap_or(&self.work).to_path_buf();
        write_placing(&dir, manifest)?;
        self.record(&manifest.name, &hash)?;
        match crate::transfer::place_spool(part, &target) {
            Ok(()) => {}
            // Appeared since the look above; the marker makes a later start try again.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(StoreError::Taken(target)),
            Err(err) => {
                return Err(StoreError::Io { what: format!("cannot create {}", target.display()), err })
            }
        }
        self.drop_object(key);
        self.journal(key, manifest);
        Ok(true)
    }

    fn drop_object(&mut self, key: ObjectKey) {
        if let Some(p) = self.objects.remove(&key) {
            let held: u64 =
                p.index.values().flatten().filter(|e| e.bytes.is_some()).map(|e| u64::from(e.len)).sum();
            self.memory = self.memory.saturating_sub(held);
            let _ = fs::remove_dir_all(&p.dir);
        }
    }
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        // Decodes under way are let finish and recorded: a restarted receiver
        // would otherwise decode those blocks again.
        if let Err(e) = self.collect_decodes(Collect::All) {
            tracing::warn!("{e}");
        }
        // Gathered source symbols and buffered spool records are what a
        // restarted receiver would otherwise ask for again.
        if let Err(e) = self.flush() {
            tracing::warn!("{e}");
        }
    }
}

impl Store for DiskStore {
    type Error = StoreError;

    fn put_symbol(
        &mut self,
        key: ObjectKey,
        layout: &Layout,
        block: u16,
        esi: u16,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let in_memory = self.memory + data.len() as u64 <= MEMORY_BUDGET;
        let p = self.pending(key, layout)?;
        let spool_path = p.dir.join("spool");
        if p.spool.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&spool_path)
                .map_err(io_err(|| format!("cannot open {}", spool_path.display())))?;
            p.spool_len = f.metadata().map(|m| m.len()).unwrap_or(0);
            p.spool = Some(BufWriter::with_capacity(SPOOL_BUFFER, f));
        }
        let len = u16::try_from(data.len()).map_err(|_| StoreError::Io {
            what: format!("symbol of {} bytes", data.len()),
            err: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        // A source symbol goes to its place in `part`; its record only says so.
        let k = layout.block_symbols(block).unwrap_or(0);
        let source = u32::from(esi) < k;
        let part_at = layout.block_offset(block) + u64::from(esi) * u64::from(layout.symbol_size);
        if source {
            let keep = (layout.size.saturating_sub(part_at) as usize).min(data.len());
            let joins = p.runs.get(&block).is_some_and(|(at, v)| at + v.len() as u64 == part_at);
            if !joins || p.runs.get(&block).is_some_and(|(_, v)| v.len() >= RUN_BYTES) {
                p.write_runs(Some(block))?;
            }
            p.runs
                .entry(block)
                .or_insert_with(|| (part_at, Vec::with_capacity(RUN_BYTES)))
                .1
                .extend_from_slice(&data[..keep]);
            p.in_part.entry(block).or_default().insert(esi);
        }
        let body: &[u8] = if source { &[] } else { data };
        let w = p.spool.as_mut().expect("opened above");
        let mut head = [0u8; RECORD_HEADER];
        head[0..2].copy_from_slice(&block.to_le_bytes());
        head[2..4].copy_from_slice(&esi.to_le_bytes());
        head[4..6].copy_from_slice(&(body.len() as u16).to_le_bytes());
        if let Err(err) = w.write_all(&head).and_then(|()| w.write_all(body)) {
            // Cut a half-written record so later appends stay aligned.
            let _ = w.flush();
            let _ = w.get_ref().set_len(p.spool_len);
            p.spool = None;
            return Err(StoreError::Io { what: format!("cannot write {}", spool_path.display()), err });
        }
        let offset = if source { part_at } else { p.spool_len + RECORD_HEADER as u64 };
        p.spool_len += (RECORD_HEADER + body.len()) as u64;
        // Source symbols are read back from `part` if a decode needs them.
        let in_memory = in_memory && !source;
        let bytes = in_memory.then(|| data.to_vec());
        p.index.entry(block).or_default().push(SpoolEntry { esi, offset, len, in_part: source, bytes });
        if in_memory {
            self.memory += data.len() as u64;
        }
        Ok(())
    }

    fn take_symbols(&mut self, key: ObjectKey, block: u16) -> Result<Vec<(u16, Vec<u8>)>, StoreError> {
        let Some(p) = self.objects.get_mut(&key) else { return Ok(Vec::new()) };
        let (gather, held) = p.gather(block)?;
        self.memory = self.memory.saturating_sub(held);
        gather.read().map(Symbols::into_vec)
    }

    fn put_block(
        &mut self,
        key: ObjectKey,
        layout: &Layout,
        offset: u64,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let p = self.pending(key, layout)?;
        let block = block_at(layout, offset);
        p.write_runs(block)?;
        // Source symbols already in `part` are not written again: runs of the others are.
        let have = block.and_then(|b| p.in_part.remove(&b)).unwrap_or_default();
        for (a, z) in missing_runs(data.len(), usize::from(layout.symbol_size), &have) {
            p.write_part(&data[a..z], offset + a as u64)?;
        }
        let mut freed = 0;
        if let Some(b) = block {
            p.settle(layout, b)?;
            p.decoded.insert(b);
            if let Some(v) = p.index.remove(&b) {
                freed = v.iter().filter_map(|e| e.bytes.as_ref()).map(|b| b.len() as u64).sum();
            }
        }
        p.meta_stale = true;
        self.memory = self.memory.saturating_sub(freed);
        Ok(())
    }

    fn read_block(&mut self, key: ObjectKey, layout: &Layout, block: u16) -> Result<Vec<u8>, StoreError> {
        self.collect_decodes(Collect::Object(key))?;
        let Some(p) = self.objects.get_mut(&key) else { return Ok(Vec::new()) };
        p.write_runs(Some(block))?;
        let path = p.dir.join("part");
        let mut buf = vec![0u8; layout.block_bytes(block) as usize];
        File::open(&path)
            .and_then(|f| f.read_exact_at(&mut buf, layout.block_offset(block)))
            .map_err(io_err(|| format!("cannot read {}", path.display())))?;
        Ok(buf)
    }

    fn commit(&mut self, key: ObjectKey, manifest: &Manifest) -> Result<bool, StoreError> {
        // Every block's bytes in place first: the workers' last decodes.
        self.collect_decodes(Collect::Object(key))?;
        let mut tree = None;
        if let Some((n, [read, decode, write])) =
            self.objects.get(&key).map(|p| p.decode_times).filter(|d| d.0 > 0)
        {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            tracing::debug!(
                "{}: {n} blocks decoded on {} threads: {:.1} ms reading symbols, {:.1} ms decoding, {:.1} ms writing and hashing",
                manifest.name,
                self.workers.as_ref().map_or(0, Workers::threads),
                ms(read),
                ms(decode),
                ms(write)
            );
        }
        let part = match self.objects.get_mut(&key) {
            Some(p) if p.decode_failed.is_some() || !p.decoding.is_empty() => {
                tracing::debug!("{}: a block did not decode; not published", manifest.name);
                return Ok(false);
            }
            Some(p) => {
                // Nothing more will be appended: the spool's buffer can go.
                p.write_runs(None)?;
                p.spool = None;
                p.part = None;
                tree = p.tree.take().filter(|t| t.len() == manifest.size);
                p.dir.join("part")
            }
            None => {
                // An empty object never had a symbol: give it its own directory.
                let dir = self.work.join(format!("{:08x}-{}", key.session, key.object));
                fs::create_dir_all(&dir).map_err(io_err(|| format!("cannot create {}", dir.display())))?;
                self.objects.insert(key, Pending { dir: dir.clone(), ..Pending::default() });
                dir.join("part")
            }
        };
        if manifest.size == 0 {
            File::create(&part).map_err(io_err(|| format!("cannot create {}", part.display())))?;
        }
        tracing::debug!("{}: every block in; checking the hash", manifest.name);
        let hashed = match tree {
            // What was hashed as it was written, and the rest read back.
            Some(mut t) => File::open(&part).and_then(|f| {
                let len = f.metadata()?.len();
                let before = t.read_back();
                let h = t.finish(&mut |at, buf| f.read_exact_at(buf, at))?;
                self.read_back = t.read_back() - before;
                Ok((len, h))
            }),
            None => hash_file(&part).inspect(|&(len, _)| self.read_back = len),
        };
        let hash = match hashed {
            Ok((len, h)) if len == manifest.size => h,
            Ok(_) => return Ok(false),
            // A `part` shorter than the manifest says: not the object.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(err) => return Err(StoreError::Io { what: format!("cannot read {}", part.display()), err }),
        };
        tracing::debug!("{}: {} bytes read back for the hash", manifest.name, self.read_back);
        if Some(hash) != manifest.hash {
            return Ok(false);
        }
        if self.spool.is_some() {
            return self.place_packet(key, manifest, &part, hash);
        }
        let target = self.target(&manifest.name)?;
        match fs::symlink_metadata(&target) {
            Ok(m)
                if m.is_file()
                    && self.hash_existing(&target).is_some_and(|(_, h)| Some(h) == manifest.hash) =>
            {
                // Already there (an earlier run, another round): nothing to replace.
                self.drop_object(key);
                self.journal(key, manifest);
                return Ok(true);
            }
            Ok(m) if !self.overwrite || !m.is_file() => return Err(StoreError::Exists(target)),
            _ => {}
        }
        self.seal(&part, manifest)?;
        fs::rename(&part, &target).map_err(io_err(|| format!("cannot create {}", target.display())))?;
        self.drop_object(key);
        self.journal(key, manifest);
        Ok(true)
    }

    fn discard(&mut self, key: ObjectKey) -> Result<(), StoreError> {
        self.drop_object(key);
        Ok(())
    }

    fn decode_later(&mut self, key: ObjectKey, layout: &Layout, block: u16) -> Result<bool, StoreError> {
        if self.no_workers {
            return Ok(false);
        }
        if self.workers.is_none() {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(DECODE_THREADS);
            match Workers::new(threads) {
                Ok(w) => self.workers = Some(w),
                Err(e) => {
                    tracing::warn!("cannot start decoding threads ({e}): decoding on the receiving thread");
                    self.no_workers = true;
                    return Ok(false);
                }
            }
        }
        self.collect_decodes(Collect::Ready)?;
        // A bounded queue: each job holds a block's symbols.
        if self.workers.as_ref().is_some_and(|w| w.in_flight() >= 2 * DECODE_THREADS) {
            self.collect_decodes(Collect::One)?;
        }
        let Some(p) = self.objects.get_mut(&key) else { return Ok(false) };
        let (gather, held) = p.gather(block)?;
        let path = p.dir.join("part");
        let part = p.part()?.try_clone().map_err(io_err(|| format!("cannot open {}", path.display())))?;
        let have = p.in_part.remove(&block).unwrap_or_default();
        let from = layout.block_offset(block);
        let tree = p
            .tree()
            .map_or_else(|| TreeHash::new(layout.size), |t| t.part(from, from + layout.block_bytes(block)));
        p.decoding.insert(block);
        self.memory = self.memory.saturating_sub(held);
        let layout = *layout;
        let job = DecodeJob { layout, block, gather, have, part, path, tree };
        let job = move |codec: &mut strand_link::diode::Codec| decode_on_worker(codec, job);
        self.workers.as_mut().expect("started above").submit((key, block), Box::new(job));
        Ok(true)
    }

    fn source_complete(&mut self, key: ObjectKey, layout: &Layout, block: u16) -> Result<bool, StoreError> {
        let Some(p) = self.objects.get_mut(&key) else { return Ok(false) };
        let k = layout.block_symbols(block).unwrap_or(0) as usize;
        if p.in_part.get(&block).is_none_or(|s| s.len() < k) {
            return Ok(false);
        }
        // Every source symbol is in place: the block is done without decoding.
        p.write_runs(Some(block))?;
        p.settle(layout, block)?;
        p.in_part.remove(&block);
        let freed: u64 = p
            .index
            .remove(&block)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.bytes.as_ref())
            .map(|b| b.len() as u64)
            .sum();
        p.decoded.insert(block);
        p.meta_stale = true;
        self.memory = self.memory.saturating_sub(freed);
        Ok(true)
    }

    fn already_have(&mut self, manifest: &Manifest) -> Result<bool, StoreError> {
        if self.placed_before(&manifest.name, manifest.hash) {
            return Ok(true);
        }
        let Ok(target) = self.target(&manifest.name) else { return Ok(false) };
        let there = self
            .hash_existing(&target)
            .is_some_and(|(len, h)| len == manifest.size && Some(h) == manifest.hash);
        if let (true, Some(h)) = (there, manifest.hash) {
            // A packet found in place counts as received: once a consumer takes it, a copy sent
            // again is not placed a second time.
            self.record(&manifest.name, &h)?;
        }
        Ok(there)
    }
}

/// Starts writing a file's dirty pages from `offset` on (`len` bytes, 0:
/// to the end) to disk without waiting: the fsync that publishing needs
/// then waits for little.
fn start_writeback(f: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
    // SAFETY: sync_file_range only reads its arguments; the descriptor is open
    // for the call's duration. A failure only means the fsync waits longer.
    let _ =
        unsafe { nix::libc::sync_file_range(f.as_raw_fd(), offset, len, nix::libc::SYNC_FILE_RANGE_WRITE) };
}

/// The block whose bytes start at `offset`.
fn block_at(layout: &Layout, offset: u64) -> Option<u16> {
    let (mut lo, mut hi) = (0u64, layout.blocks());
    while lo < hi {
        let mid = (lo + hi) / 2;
        let at = layout.block_offset(mid as u16);
        if at == offset {
            return Some(mid as u16);
        }
        if at < offset {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    None
}
