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

/// Where one kept symbol is (its object's spool, or `part` for a source
/// symbol), and its bytes while in memory.
#[derive(Debug, Clone)]
struct SpoolEntry {
    esi: u16,
    offset: u64,
    len: u16,
    in_part: bool,
    bytes: Option<Vec<u8>>,
}

/// One unfinished object on disk.
#[derive(Debug, Default)]
struct Pending {
    dir: PathBuf,
    layout: Option<Layout>,
    manifest: Option<Manifest>,
    decoded: BTreeSet<u16>,
    spool: Option<BufWriter<File>>,
    /// Length of the spool, buffered bytes included.
    spool_len: u64,
    index: HashMap<u16, Vec<SpoolEntry>>,
    /// `part`, open for writing.
    part: Option<File>,
    /// Source symbols of undecoded blocks already written to `part`.
    in_part: HashMap<u16, BTreeSet<u16>>,
    /// Bytes written to `part` since its writeback was last started.
    unsynced: u64,
    /// Source symbols not yet written to `part`, per block: a block's
    /// symbols arrive in order, so they gather into one write.
    runs: HashMap<u16, (u64, Vec<u8>)>,
    /// The BLAKE3 of `part` as far as it is written: every write to `part`
    /// is hashed as it goes and every completed block settled, so the check
    /// before publishing reads back only the chunks across blocks' edges.
    /// Not kept across a restart: what an earlier run wrote is read back then.
    tree: Option<TreeHash>,
    /// Blocks being decoded on the store's workers.
    decoding: BTreeSet<u16>,
    /// Why a block failed to decode there: the object cannot be published.
    decode_failed: Option<String>,
    /// Blocks were completed since `meta` was last written. It is
    /// rewritten on the next flush rather than at once: a `meta` that lags
    /// only under-claims (the spool still holds those blocks' symbols, so a
    /// restart completes them again), and a file's blocks complete together
    /// at its end, where a rewrite each would hold up publishing it.
    meta_stale: bool,
    /// Blocks decoded there, and the time spent reading their symbols,
    /// decoding, and writing and hashing (for the debug log).
    decode_times: (u64, [Duration; 3]),
}

/// Where a block's kept symbols are read from: the first half of taking
/// them, done where the store's state is; the reading can go to a worker.
struct Gather {
    entries: Vec<SpoolEntry>,
    /// `part`, if source symbols are read from it.
    part: Option<(File, PathBuf)>,
    /// The spool, if symbols are read from it.
    spool: Option<(File, PathBuf)>,
}

/// A block's symbols as read: the source symbols as ranges of one read of
/// `part` (no copy each), the others owned.
struct Symbols {
    from_part: Vec<u8>,
    list: Vec<(u16, Sym)>,
}

/// Where one of [`Symbols`] is.
enum Sym {
    /// At this offset of `from_part`, this long.
    Part(usize, usize),
    Owned(Vec<u8>),
}

impl Symbols {
    /// `(esi, bytes)` of each.
    fn iter(&self) -> impl Iterator<Item = (u16, &[u8])> {
        self.list.iter().map(|(e, s)| {
            let bytes = match s {
                Sym::Part(at, len) => &self.from_part[*at..*at + *len],
                Sym::Owned(v) => &v[..],
            };
            (*e, bytes)
        })
    }

    fn into_vec(self) -> Vec<(u16, Vec<u8>)> {
        let from_part = self.from_part;
        self.list
            .into_iter()
            .map(|(e, s)| match s {
                Sym::Part(at, len) => (e, from_part[at..at + len].to_vec()),
                Sym::Owned(v) => (e, v),
            })
            .collect()
    }
}

impl Gather {
    /// The symbols.
    fn read(self) -> Result<Symbols, StoreError> {
        // Source symbols come from `part`: the block's range, read once.
        let mut from_part = Vec::new();
        let first = self.entries.iter().filter(|e| e.in_part && e.bytes.is_none()).map(|e| e.offset).min();
        if let (Some(first), Some((f, path))) = (first, &self.part) {
            let last = self
                .entries
                .iter()
                .filter(|e| e.in_part)
                .map(|e| e.offset + u64::from(e.len))
                .max()
                .unwrap_or(first);
            let avail = f.metadata().map(|m| m.len()).unwrap_or(0).saturating_sub(first);
            from_part = vec![0u8; (last - first) as usize];
            let n = (avail as usize).min(from_part.len());
            f.read_exact_at(&mut from_part[..n], first)
                .map_err(io_err(|| format!("cannot read {}", path.display())))?;
        }
        let mut list = Vec::with_capacity(self.entries.len());
        for e in self.entries {
            match e.bytes {
                Some(b) => list.push((e.esi, Sym::Owned(b))),
                None if e.in_part => {
                    // The object's own bytes; the last symbol is zero-padded past its end.
                    let at = (e.offset - first.unwrap_or(e.offset)) as usize;
                    list.push((e.esi, Sym::Part(at, usize::from(e.len))));
                }
                None => {
                    let Some((f, path)) = &self.spool else { continue };
                    let mut buf = vec![0u8; usize::from(e.len)];
                    f.read_exact_at(&mut buf, e.offset)
                        .map_err(io_err(|| format!("cannot read {}", path.display())))?;
                    list.push((e.esi, Sym::Owned(buf)));
                }
            }
        }
        Ok(Symbols { from_part, list })
    }
}

/// How long [`DiskStore::collect_decodes`] waits.
#[derive(Debug, Clone, Copy)]
enum Collect {
    /// Not at all: only what is done.
    Ready,
    /// For at least one.
    One,
    /// Until none of this object's blocks is left.
    Object(ObjectKey),
    /// Until none at all is left.
    All,
}

/// Byte ranges of a decoded block of `len` bytes, in symbols of `t`, that
/// hold symbols other than `have` (those already in `part`): runs of them,
/// each written at once.
fn missing_runs(len: usize, t: usize, have: &BTreeSet<u16>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i * t < len {
        if have.contains(&(i as u16)) {
            i += 1;
            continue;
        }
        let run_start = i;
        while i * t < len && !have.contains(&(i as u16)) {
            i += 1;
        }
        out.push((run_start * t, (i * t).min(len)));
    }
    out
}

/// A block to decode on a worker.
struct DecodeJob {
    layout: Layout,
    block: u16,
    /// Its symbols.
    gather: Gather,
    /// Its source symbols already in `part`.
    have: BTreeSet<u16>,
    /// `part`, and its path for messages.
    part: File,
    path: PathBuf,
    /// What is known of the block's hash tree.
    tree: TreeHash,
}

/// A decode on a worker: symbols in, the block's missing bytes written to
/// `part`, the block's hash-tree nodes (from what `part` then holds) out.
fn decode_on_worker(codec: &mut strand_link::diode::Codec, job: DecodeJob) -> Result<Decoded, String> {
    let DecodeJob { layout, block, gather, have, part, path, mut tree } = job;
    let began = std::time::Instant::now();
    let symbols = gather.read().map_err(|e| e.to_string())?;
    let read = began.elapsed();
    let data = codec
        .decode(&layout, block, symbols.iter())
        .map_err(|e| format!("block {block} would not decode: {e:?}"))?;
    let decoded = began.elapsed();
    let offset = layout.block_offset(block);
    let holes = missing_runs(data.len(), usize::from(layout.symbol_size), &have);
    for &(a, z) in &holes {
        part.write_all_at(&data[a..z], offset + a as u64)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    start_writeback(&part, offset, data.len() as u64);
    // Where the decoded block agrees with every source symbol `part` held
    // (read from it just now, and nothing else writes this block), `part`
    // now holds exactly `data`: hashed whole, in the tree's largest runs.
    // Otherwise (more than `k` symbols can decode to other bytes than those
    // already written) the bytes written are hashed as written, and the
    // chunks across them and the symbols held are read back from `part`.
    let t = usize::from(layout.symbol_size);
    let held: BTreeSet<u16> = symbols.iter().map(|(e, _)| e).filter(|e| have.contains(e)).collect();
    let agrees = held.len() == have.len()
        && symbols.iter().filter(|(e, _)| have.contains(e)).all(|(e, d)| {
            let a = usize::from(e) * t;
            let z = (a + t).min(data.len());
            a <= z && data.get(a..z) == d.get(..z - a)
        });
    if agrees {
        tree.absorb(offset, &data);
    } else {
        for &(a, z) in &holes {
            tree.absorb(offset + a as u64, &data[a..z]);
        }
        tree.settle(offset, offset + data.len() as u64, &mut |at, buf| part.read_exact_at(buf, at))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    }
    Ok(Decoded { nodes: tree.nodes(), times: [read, decoded - read, began.elapsed() - decoded] })
}

/// What a worker made of a block: its hash-tree nodes, and how long it took
/// to read its symbols, decode them, and write and hash the bytes.
struct Decoded {
    nodes: Vec<Node>,
    times: [Duration; 3],
}

/// Largest run of source symbols held before it is written.
const RUN_BYTES: usize = 256 << 10;

impl Pending {
    /// Writes the gathered source symbols of `block` (all blocks if `None`) to `part`.
    fn write_runs(&mut self, block: Option<u16>) -> Result<(), StoreError> {
        let blocks: Vec<u16> = match block {
            Some(b) => vec![b],
            None => self.runs.keys().copied().collect(),
        };
        for b in blocks {
            let Some((at, bytes)) = self.runs.remove(&b) else { continue };
            self.write_part(&bytes, at)?;
        }
        Ok(())
    }

    /// Takes block `block`'s kept symbols out of the index (their bytes held
    /// in memory come along; returns how many bytes those are); the rest is
    /// read by [`Gather::read`].
    fn gather(&mut self, block: u16) -> Result<(Gather, u64), StoreError> {
        let entries = self.index.remove(&block).unwrap_or_default();
        let held = entries.iter().filter_map(|e| e.bytes.as_ref()).map(|b| b.len() as u64).sum();
        let mut g = Gather { entries, part: None, spool: None };
        if g.entries.iter().any(|e| e.in_part && e.bytes.is_none()) {
            self.write_runs(Some(block))?;
            let path = self.dir.join("part");
            let f = self.part()?.try_clone().map_err(io_err(|| format!("cannot open {}", path.display())))?;
            g.part = Some((f, path));
        }
        if g.entries.iter().any(|e| !e.in_part && e.bytes.is_none()) {
            let path = self.dir.join("spool");
            if self.spool.is_none() {
                let f = OpenOptions::new()
                    .append(true)
                    .read(true)
                    .open(&path)
                    .map_err(io_err(|| format!("cannot open {}", path.display())))?;
                self.spool = Some(BufWriter::with_capacity(SPOOL_BUFFER, f));
            }
            let w = self.spool.as_mut().expect("opened above");
            w.flush().map_err(io_err(|| format!("cannot write {}", path.display())))?;
            let f = w.get_ref().try_clone().map_err(io_err(|| format!("cannot open {}", path.display())))?;
            g.spool = Some((f, path));
        }
        Ok((g, held))
    }

    /// Writes `bytes` at `at` of `part` and hashes them into the tree.
    fn write_part(&mut self, bytes: &[u8], at: u64) -> Result<(), StoreError> {
        let path = self.dir.join("part");
        self.part()?
            .write_all_at(bytes, at)
            .map_err(io_err(|| format!("cannot write {}", path.display())))?;
        self.unsynced += bytes.len() as u64;
        if self.unsynced >= WRITEBACK_EVERY {
            self.unsynced = 0;
            start_writeback(self.part()?, 0, 0);
        }
        if let Some(t) = self.tree() {
            t.absorb(at, bytes);
        }
        Ok(())
    }

    /// The object's tree hash, once its size is known.
    fn tree(&mut self) -> Option<&mut TreeHash> {
        if self.tree.is_none() {
            self.tree = self.layout.map(|l| TreeHash::new(l.size));
        }
        self.tree.as_mut()
    }

    /// Block `block` is complete in `part` (its runs written): hashes what
    /// of it the writes left unhashed, so the end has only its edges left.
    fn settle(&mut self, layout: &Layout, block: u16) -> Result<(), StoreError> {
        let path = self.dir.join("part");
        self.part()?;
        self.tree();
        let (Some(f), Some(t)) = (self.part.as_ref(), self.tree.as_mut()) else { return Ok(()) };
        let from = layout.block_offset(block);
        t.settle(from, from + layout.block_bytes(block), &mut |at, buf| f.read_exact_at(buf, at))
            .map_err(io_err(|| format!("cannot read {}", path.display())))
    }

    fn part(&mut self) -> Result<&File, StoreError> {
        if self.part.is_none() {
            let path = self.dir.join("part");
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err(|| format!("cannot open {}", path.display())))?;
            self.part = Some(f);
        }
        Ok(self.part.as_ref().expect("opened above"))
    }
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

/// Length and BLAKE3 of a file.
fn hash_file(path: &Path) -> io::Result<(u64, [u8; 32])> {
    let mut f = File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((len, *h.finalize().as_bytes()));
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
}

fn parse_dir_name(s: &str) -> Option<ObjectKey> {
    let (session, object) = s.split_once('-')?;
    Some(ObjectKey { session: u32::from_str_radix(session, 16).ok()?, object: object.parse().ok()? })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A manifest as one line: `object objects size mode mtime hash name`, the
/// hash `-` while unknown (safe_name has no control characters, so the name
/// is the rest of the line).
fn manifest_line(m: &Manifest) -> String {
    let hash = m.hash.as_ref().map_or_else(|| "-".to_string(), |h| hex(h));
    format!("{} {} {} {} {} {hash} {}", m.object, m.objects, m.size, m.mode, m.mtime, m.name)
}

/// Spool mode: marks an object's directory as placing its `part` as
/// `manifest` (written and synced, with its directory, before the journal
/// record that follows it).
fn write_placing(dir: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    let path = dir.join(PLACING);
    let write = || -> io::Result<()> {
        let mut f = File::create(&path)?;
        f.write_all(format!("{}\n", manifest_line(manifest)).as_bytes())?;
        f.sync_all()?;
        File::open(dir)?.sync_all()
    };
    write().map_err(io_err(|| format!("cannot write {}", path.display())))
}

/// Rewrites an object's meta file atomically.
fn write_meta(p: &Pending) -> Result<(), StoreError> {
    let mut s = format!("{META_MAGIC}\n");
    if let Some(l) = p.layout {
        s += &format!("layout {} {} {} {} {}\n", l.code as u8, l.size, l.symbol_size, l.block_max, l.repair);
    }
    if let Some(m) = &p.manifest {
        s += &format!("manifest {}\n", manifest_line(m));
    }
    let blocks: Vec<String> = p.decoded.iter().map(u16::to_string).collect();
    s += &format!("decoded {}\n", blocks.join(" "));
    let (tmp, path) = (p.dir.join("meta.tmp"), p.dir.join("meta"));
    fs::write(&tmp, s).map_err(io_err(|| format!("cannot write {}", tmp.display())))?;
    fs::rename(&tmp, &path).map_err(io_err(|| format!("cannot write {}", path.display())))
}

/// Reads an object directory; `None` if it has no usable meta file.
fn load(dir: &Path) -> io::Result<Option<Pending>> {
    let Ok(text) = fs::read_to_string(dir.join("meta")) else { return Ok(None) };
    let mut lines = text.lines();
    if lines.next() != Some(META_MAGIC) {
        return Ok(None);
    }
    let mut p = Pending { dir: dir.to_path_buf(), ..Pending::default() };
    for line in lines {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "layout" => p.layout = parse_layout(rest).filter(Layout::valid),
            "manifest" => p.manifest = parse_manifest(rest),
            "decoded" => p.decoded = rest.split_whitespace().filter_map(|b| b.parse().ok()).collect(),
            _ => {}
        }
    }
    let Some(layout) = p.layout else { return Ok(None) };
    p.decoded.retain(|&b| u64::from(b) < layout.blocks());
    // The spool: whole records only; a tail cut by a crash is truncated away.
    let spool = dir.join("spool");
    if let Ok(f) = File::open(&spool) {
        let mut r = BufReader::new(f);
        let mut at = 0u64;
        let mut head = [0u8; RECORD_HEADER];
        loop {
            if r.read_exact(&mut head).is_err() {
                break;
            }
            let block = u16::from_le_bytes([head[0], head[1]]);
            let esi = u16::from_le_bytes([head[2], head[3]]);
            let len = u16::from_le_bytes([head[4], head[5]]);
            let mut skip = vec![0u8; usize::from(len)];
            if r.read_exact(&mut skip).is_err() {
                break;
            }
            let k = layout.block_symbols(block).unwrap_or(0);
            if !p.decoded.contains(&block) && u64::from(block) < layout.blocks() {
                if len == 0 && u32::from(esi) < k {
                    // A source symbol, in `part`.
                    let t = layout.symbol_size;
                    let offset = layout.block_offset(block) + u64::from(esi) * u64::from(t);
                    p.index.entry(block).or_default().push(SpoolEntry {
                        esi,
                        offset,
                        len: t,
                        in_part: true,
                        bytes: None,
                    });
                    p.in_part.entry(block).or_default().insert(esi);
                } else if len > 0 {
                    p.index.entry(block).or_default().push(SpoolEntry {
                        esi,
                        offset: at + RECORD_HEADER as u64,
                        len,
                        in_part: false,
                        bytes: None,
                    });
                }
            }
            at += (RECORD_HEADER + usize::from(len)) as u64;
        }
        let f = OpenOptions::new().append(true).read(true).open(&spool)?;
        if f.metadata()?.len() != at {
            f.set_len(at)?;
        }
        p.spool_len = at;
        p.spool = Some(BufWriter::with_capacity(SPOOL_BUFFER, f));
    }
    Ok(Some(p))
}

fn parse_layout(s: &str) -> Option<Layout> {
    let v: Vec<u64> = s.split_whitespace().map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let [code, size, symbol, block_max, repair] = v[..] else { return None };
    Some(Layout {
        code: CodeId::from_u8(u8::try_from(code).ok()?)?,
        size,
        symbol_size: u16::try_from(symbol).ok()?,
        block_max: u16::try_from(block_max).ok()?,
        repair: u16::try_from(repair).ok()?,
    })
}

fn parse_manifest(s: &str) -> Option<Manifest> {
    let mut it = s.splitn(7, ' ');
    let mut num = || it.next()?.parse::<u64>().ok();
    let (object, objects, size, mode, mtime) = (num()?, num()?, num()?, num()?, num()?);
    let hash = match it.next()? {
        "-" => None,
        h => Some(unhex(h)?),
    };
    let name = it.next()?.to_string();
    safe_name(&name).then_some(Manifest {
        object: u16::try_from(object).ok()?,
        objects: u16::try_from(objects).ok()?,
        size,
        mode: u32::try_from(mode).ok()?,
        mtime,
        hash,
        name,
    })
}

/// A journal line after its time: `SESSION` then a manifest line.
fn parse_journal(s: &str) -> Option<(ObjectKey, Manifest)> {
    let (session, rest) = s.split_once(' ')?;
    let m = parse_manifest(rest).filter(|m| m.hash.is_some())?;
    Some((ObjectKey { session: u32::from_str_radix(session, 16).ok()?, object: m.object }, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Duration = Duration::from_secs(7 * 86_400);

    fn layout() -> Layout {
        Layout::choose(10_000, 1000).unwrap()
    }

    fn manifest(bytes: &[u8], name: &str) -> Manifest {
        Manifest {
            object: 0,
            objects: 1,
            size: bytes.len() as u64,
            mode: 0o640,
            mtime: 1_700_000_000,
            hash: Some(*blake3::hash(bytes).as_bytes()),
            name: name.into(),
        }
    }

    #[test]
    fn symbols_blocks_and_manifest_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let key = ObjectKey { session: 0xabc, object: 3 };
        let l = layout();
        // Source symbols 4 and 9 are the object's own bytes; a repair symbol goes to the spool.
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i / 1000) as u8).collect();
        {
            let (mut s, r) = DiskStore::open(dir.path(), false, KEEP).unwrap();
            assert!(r.partial.is_empty());
            s.put_symbol(key, &l, 0, 4, &bytes[4000..5000]).unwrap();
            s.put_symbol(key, &l, 0, 9, &bytes[9000..]).unwrap();
            s.put_symbol(key, &l, 0, 12, &[0xAB; 1000]).unwrap();
            s.remember_manifest(key, &manifest(&bytes, "x/y")).unwrap();
        }
        // A torn record at the end is cut, the rest kept.
        let spool = dir.path().join(WORK_DIR).join("00000abc-3/spool");
        let mut f = OpenOptions::new().append(true).open(&spool).unwrap();
        f.write_all(&[0, 0, 1, 0, 0xe8]).unwrap();
        let (mut s, r) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        let r = r.partial;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].key, key);
        assert_eq!(r[0].layout, Some(l));
        assert_eq!(r[0].manifest.as_ref().map(|m| m.name.as_str()), Some("x/y"));
        let mut syms = r[0].symbols.clone();
        syms.sort();
        assert_eq!(syms, vec![(0, 4), (0, 9), (0, 12)]);
        let mut got = s.take_symbols(key, 0).unwrap();
        got.sort();
        assert_eq!(got, vec![(4, vec![4; 1000]), (9, vec![9; 1000]), (12, vec![0xAB; 1000])]);
        s.put_block(key, &l, 0, &bytes).unwrap();
        assert!(s.commit(key, &manifest(&bytes, "x/y")).unwrap());
        assert_eq!(fs::read(dir.path().join("x/y")).unwrap(), bytes);
        assert!(!dir.path().join(WORK_DIR).join("00000abc-3").exists());
        // The journal makes a restarted store count it complete.
        let (_, r) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        assert_eq!(r.complete.len(), 1);
        assert_eq!((r.complete[0].0, r.complete[0].1.name.as_str()), (key, "x/y"));
        // ... as long as the file is there.
        fs::remove_file(dir.path().join("x/y")).unwrap();
        assert!(DiskStore::open(dir.path(), false, KEEP).unwrap().1.complete.is_empty());
    }

    #[test]
    fn received_files_get_the_umask_and_are_never_world_writable() {
        assert_eq!(received_mode(0o777, 0o022), 0o755);
        assert_eq!(received_mode(0o777, 0), 0o775);
        assert_eq!(received_mode(0o644, 0o022), 0o644);
        assert_eq!(received_mode(0o600, 0o022), 0o644);
        assert_eq!(received_mode(0o4777, 0o077), 0o700);
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        let key = ObjectKey { session: 1, object: 0 };
        let bytes = vec![3u8; 10_000];
        s.put_block(key, &layout(), 0, &bytes).unwrap();
        let m = Manifest { mode: 0o777, ..manifest(&bytes, "exe") };
        assert!(s.commit(key, &m).unwrap());
        let mode = fs::metadata(dir.path().join("exe")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, received_mode(0o777, process_umask()));
        assert_eq!(mode & 0o002, 0);
    }

    #[test]
    fn stale_partial_objects_expire() {
        let dir = tempfile::tempdir().unwrap();
        let key = ObjectKey { session: 5, object: 0 };
        {
            let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
            s.put_symbol(key, &layout(), 0, 1, &[1; 1000]).unwrap();
        }
        // Kept for a week: still there.
        assert_eq!(DiskStore::open(dir.path(), false, KEEP).unwrap().1.partial.len(), 1);
        // Age its files by two days, keep for one: removed and counted.
        let old = SystemTime::now() - Duration::from_secs(2 * 86_400);
        for f in ["meta", "spool", "part"] {
            let f = File::options()
                .write(true)
                .open(dir.path().join(WORK_DIR).join("00000005-0").join(f))
                .unwrap();
            f.set_modified(old).unwrap();
        }
        let (_, opened) = DiskStore::open(dir.path(), false, Duration::from_secs(86_400)).unwrap();
        assert_eq!((opened.partial.len(), opened.expired), (0, 1));
        assert!(!dir.path().join(WORK_DIR).join("00000005-0").exists());
    }

    #[test]
    fn content_already_in_dir_is_recognised_by_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        let bytes = vec![9u8; 5000];
        assert!(!s.already_have(&manifest(&bytes, "a")).unwrap());
        fs::write(dir.path().join("a"), &bytes).unwrap();
        assert!(s.already_have(&manifest(&bytes, "a")).unwrap());
        assert!(!s.already_have(&manifest(&[1u8; 5000], "a")).unwrap());
        assert!(!s.already_have(&Manifest { hash: None, ..manifest(&bytes, "a") }).unwrap());
    }

    #[test]
    fn wrong_hash_is_not_published_and_existing_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        let l = layout();
        let key = ObjectKey { session: 1, object: 0 };
        let bytes = vec![5u8; 10_000];
        s.put_block(key, &l, 0, &bytes).unwrap();
        assert!(!s.commit(key, &manifest(&[6u8; 10_000], "f")).unwrap());
        assert!(!dir.path().join("f").exists());
        fs::write(dir.path().join("f"), b"other").unwrap();
        assert!(matches!(s.commit(key, &manifest(&bytes, "f")), Err(StoreError::Exists(_))));
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"other");
        // The same content already there counts as done.
        fs::write(dir.path().join("f"), &bytes).unwrap();
        assert!(s.commit(key, &manifest(&bytes, "f")).unwrap());
    }

    #[test]
    fn names_through_a_symlinked_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("sneaky")).unwrap();
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        let key = ObjectKey { session: 1, object: 0 };
        let bytes = vec![1u8; 10];
        s.put_block(key, &Layout::choose(10, 10).unwrap(), 0, &bytes).unwrap();
        assert!(matches!(s.commit(key, &manifest(&bytes, "sneaky/f")), Err(StoreError::Outside(_))));
        assert!(!elsewhere.path().join("f").exists());
    }

    /// A whole object `bytes` of session `session`, ready to commit.
    fn object(s: &mut DiskStore, session: u32, bytes: &[u8]) -> ObjectKey {
        let key = ObjectKey { session, object: 0 };
        s.put_block(key, &Layout::choose(bytes.len() as u64, 1000).unwrap(), 0, bytes).unwrap();
        key
    }

    #[test]
    fn a_spool_places_a_packet_once_even_after_a_consumer_took_it() {
        let dir = tempfile::tempdir().unwrap();
        let name = "BOB/ALICE/PKT";
        let bytes = vec![7u8; 3000];
        let m = manifest(&bytes, name);
        {
            let (mut s, _) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
            assert!(!s.already_have(&m).unwrap());
            let key = object(&mut s, 1, &bytes);
            assert!(s.commit(key, &m).unwrap());
        }
        assert_eq!(fs::read(dir.path().join(name)).unwrap(), bytes);
        let journal = dir.path().join(crate::transfer::SPOOL_STATE_DIR).join("received");
        assert!(fs::read_to_string(&journal).unwrap().contains(name), "journalled");
        // nncp-xfer -rx takes it away; the sender sends it again (another session).
        fs::remove_file(dir.path().join(name)).unwrap();
        let (mut s, _) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
        assert!(s.already_have(&m).unwrap(), "known by its hash before a symbol is needed");
        let key = object(&mut s, 2, &bytes);
        assert!(s.commit(key, &m).unwrap(), "counts as complete");
        assert!(!dir.path().join(name).exists(), "placed a second time");
        assert!(!dir.path().join(WORK_DIR).join("00000002-0").exists());
        // Another content under that name is another packet.
        let other = vec![8u8; 3000];
        let key = object(&mut s, 3, &other);
        assert!(s.commit(key, &manifest(&other, name)).unwrap());
        assert_eq!(fs::read(dir.path().join(name)).unwrap(), other);
    }

    #[test]
    fn a_spool_refuses_names_that_are_not_packets_and_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
        let bytes = vec![1u8; 100];
        for bad in ["A/B/C/D", ".strand-spool/received", "R/.x/P", "R/S/nncpxfer42", "R/S/a\u{202e}b"] {
            let key = object(&mut s, 9, &bytes);
            let e = s.commit(key, &manifest(&bytes, bad)).unwrap_err();
            assert!(matches!(e, StoreError::NotAPacket { .. }) && e.recoverable(), "{bad:?}: {e}");
            s.discard(key).unwrap();
        }
        for bad in ["../x", "/etc/x", "R/../../x"] {
            let key = object(&mut s, 9, &bytes);
            assert!(matches!(s.commit(key, &manifest(&bytes, bad)), Err(StoreError::Outside(_))), "{bad:?}");
            s.discard(key).unwrap();
        }
        fs::create_dir_all(dir.path().join("R/S")).unwrap();
        fs::write(dir.path().join("R/S/P"), b"someone else's").unwrap();
        let key = object(&mut s, 10, &bytes);
        let e = s.commit(key, &manifest(&bytes, "R/S/P")).unwrap_err();
        assert!(matches!(e, StoreError::Taken(_)) && e.recoverable(), "{e}");
        assert_eq!(fs::read(dir.path().join("R/S/P")).unwrap(), b"someone else's");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 3, "only R, .strand-diode and .strand-spool: {names:?}");
    }

    #[test]
    fn a_placement_cut_by_a_stop_is_finished_when_the_spool_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        let name = "BOB/ALICE/CUT";
        let bytes = vec![4u8; 5000];
        let m = manifest(&bytes, name);
        {
            // Stopped after the marker and the journal record, before the rename.
            let (mut s, _) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
            object(&mut s, 5, &bytes);
            s.flush().unwrap();
            let obj = dir.path().join(WORK_DIR).join("00000005-0");
            write_placing(&obj, &m).unwrap();
            s.record(name, blake3::hash(&bytes).as_bytes()).unwrap();
            s.objects.clear();
        }
        let (_, opened) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
        assert_eq!((opened.placed, opened.partial.len()), (1, 0));
        assert_eq!(fs::read(dir.path().join(name)).unwrap(), bytes);
        assert!(!dir.path().join(WORK_DIR).join("00000005-0").exists());
        // Stopped after the rename, before the directory went: it just goes.
        let obj = dir.path().join(WORK_DIR).join("00000006-0");
        fs::create_dir_all(&obj).unwrap();
        write_placing(&obj, &m).unwrap();
        let (_, opened) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
        assert_eq!((opened.placed, opened.partial.len()), (0, 0));
        assert!(!obj.exists());
        assert_eq!(fs::read(dir.path().join(name)).unwrap(), bytes);
    }

    /// An object of several GF(2^16) blocks of 500 symbols of 1400 bytes, and its bytes.
    fn blocks_object(len: usize) -> (Layout, Vec<u8>) {
        let l =
            Layout { code: CodeId::Gf16, size: len as u64, symbol_size: 1400, block_max: 500, repair: 250 };
        assert!(l.valid() && l.blocks() > 2);
        (l, (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect())
    }

    /// Source symbol `esi` of block `b`, zero-padded as on the wire.
    fn symbol(l: &Layout, bytes: &[u8], b: u16, esi: u16) -> Vec<u8> {
        let at = (l.block_offset(b) + u64::from(esi) * 1400) as usize;
        let mut v = bytes[at..(at + 1400).min(bytes.len())].to_vec();
        v.resize(1400, 0);
        v
    }

    #[test]
    fn commit_reads_back_only_the_edges_of_blocks_hashed_as_they_completed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        let (l, bytes) = blocks_object(3_000_000);
        let key = ObjectKey { session: 7, object: 0 };
        for b in 0..l.blocks() as u16 {
            let k = l.block_symbols(b).unwrap() as u16;
            if b == 1 {
                // This block loses every seventh source symbol and is decoded:
                // the decoder's output goes in with put_block.
                for esi in (0..k).filter(|e| e % 7 != 3) {
                    s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
                }
                assert!(!s.source_complete(key, &l, b).unwrap());
                let at = l.block_offset(b);
                s.put_block(key, &l, at, &bytes[at as usize..(at + l.block_bytes(b)) as usize]).unwrap();
                continue;
            }
            for esi in 0..k {
                s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
            }
            assert!(s.source_complete(key, &l, b).unwrap());
        }
        assert!(s.commit(key, &manifest(&bytes, "big")).unwrap());
        assert_eq!(fs::read(dir.path().join("big")).unwrap(), bytes);
        // The check read back at most the chunk across each edge between two
        // blocks, not the file.
        assert!(s.read_back <= l.blocks() * 1024, "{} bytes read back", s.read_back);
    }

    #[test]
    fn after_a_restart_the_hash_reads_back_what_the_earlier_run_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let (l, bytes) = blocks_object(2_500_000);
        let key = ObjectKey { session: 8, object: 0 };
        let put = |s: &mut DiskStore, b: u16| {
            for esi in 0..l.block_symbols(b).unwrap() as u16 {
                s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
            }
            assert!(s.source_complete(key, &l, b).unwrap());
        };
        {
            let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
            put(&mut s, 0);
            put(&mut s, 1);
        }
        let (mut s, opened) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        assert_eq!(opened.partial[0].decoded, vec![0, 1]);
        for b in 2..l.blocks() as u16 {
            put(&mut s, b);
        }
        assert!(s.commit(key, &manifest(&bytes, "resumed")).unwrap());
        assert_eq!(fs::read(dir.path().join("resumed")).unwrap(), bytes);
        let earlier = l.block_offset(2);
        assert!(s.read_back >= earlier, "{} of {earlier}", s.read_back);
        // And a part that differs from what was hashed as written is caught:
        // the hash is of the bytes in the file.
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        let key = ObjectKey { session: 9, object: 0 };
        for b in 0..l.blocks() as u16 {
            for esi in 0..l.block_symbols(b).unwrap() as u16 {
                s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
            }
            assert!(s.source_complete(key, &l, b).unwrap());
        }
        let part = s.objects[&key].dir.join("part");
        OpenOptions::new().write(true).open(&part).unwrap().write_all_at(b"X", 1_000_000).unwrap();
        s.objects.get_mut(&key).unwrap().tree = None;
        assert!(!s.commit(key, &manifest(&bytes, "damaged")).unwrap());
    }

    #[test]
    fn blocks_decoded_on_the_workers_are_in_place_and_hashed_before_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        let (l, bytes) = blocks_object(3_000_000);
        let key = ObjectKey { session: 11, object: 0 };
        let mut codec = strand_link::diode::Codec::default();
        for b in 0..l.blocks() as u16 {
            let k = l.block_symbols(b).unwrap() as u16;
            let at = l.block_offset(b) as usize;
            let repair = codec.encode_repair(&l, b, &bytes[at..at + l.block_bytes(b) as usize]).unwrap();
            // One source symbol in five lost, made up by as many repair symbols.
            let lost: Vec<u16> = (0..k).filter(|e| e % 5 == 2).collect();
            for esi in (0..k).filter(|e| e % 5 != 2) {
                s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
            }
            for j in 0..lost.len() {
                s.put_symbol(key, &l, b, k + j as u16, &repair[j * 1400..][..1400]).unwrap();
            }
            assert!(s.decode_later(key, &l, b).unwrap(), "taken by a worker");
        }
        assert!(s.commit(key, &manifest(&bytes, "decoded")).unwrap());
        assert_eq!(fs::read(dir.path().join("decoded")).unwrap(), bytes);
        assert!(s.read_back <= l.blocks() * 1024, "{} bytes read back", s.read_back);
        assert_eq!(s.memory, 0, "the symbols held in memory went with the decode");

        // A block that cannot decode (too few symbols): nothing is published.
        let key = ObjectKey { session: 12, object: 0 };
        for b in 0..l.blocks() as u16 {
            let k = l.block_symbols(b).unwrap() as u16;
            let from = if b == 2 { 1 } else { 0 };
            for esi in from..k {
                s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
            }
            if b == 2 {
                assert!(s.decode_later(key, &l, b).unwrap());
            } else {
                assert!(s.source_complete(key, &l, b).unwrap());
            }
        }
        assert!(!s.commit(key, &manifest(&bytes, "short")).unwrap());
        assert!(!dir.path().join("short").exists());
    }

    #[test]
    fn a_decode_that_disagrees_with_the_symbols_in_part_is_checked_against_part() {
        // More than k symbols, one source symbol damaged and taken last: the
        // decoder rebuilds that position from the repair symbol instead, so
        // the decoded block is not what `part` holds. The hash must be of
        // `part`: with the manifest of the true bytes, nothing is published.
        // A restart in between, so nothing of the block was hashed as it came.
        let dir = tempfile::tempdir().unwrap();
        let (l, bytes) = blocks_object(1_500_000);
        let key = ObjectKey { session: 14, object: 0 };
        {
            let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
            let mut codec = strand_link::diode::Codec::default();
            for b in 0..l.blocks() as u16 {
                let k = l.block_symbols(b).unwrap() as u16;
                for esi in (0..k).filter(|&e| b != 1 || e != 5) {
                    s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
                }
                if b == 1 {
                    let at = l.block_offset(b) as usize;
                    let repair =
                        codec.encode_repair(&l, b, &bytes[at..at + l.block_bytes(b) as usize]).unwrap();
                    s.put_symbol(key, &l, b, k, &repair[..1400]).unwrap();
                    s.put_symbol(key, &l, b, 5, &[0xEE; 1400]).unwrap();
                }
            }
        }
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        for b in 0..l.blocks() as u16 {
            if b == 1 {
                assert!(s.decode_later(key, &l, b).unwrap());
            } else {
                assert!(s.source_complete(key, &l, b).unwrap());
            }
        }
        assert!(!s.commit(key, &manifest(&bytes, "true")).unwrap());
        assert!(!dir.path().join("true").exists());
    }

    #[test]
    fn a_decode_under_way_when_the_store_closes_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let (l, bytes) = blocks_object(2_000_000);
        let key = ObjectKey { session: 13, object: 0 };
        {
            let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
            let k = l.block_symbols(0).unwrap() as u16;
            let repair = strand_link::diode::Codec::default()
                .encode_repair(&l, 0, &bytes[..l.block_bytes(0) as usize])
                .unwrap();
            for esi in 1..k {
                s.put_symbol(key, &l, 0, esi, &symbol(&l, &bytes, 0, esi)).unwrap();
            }
            s.put_symbol(key, &l, 0, k, &repair[..1400]).unwrap();
            assert!(s.decode_later(key, &l, 0).unwrap());
        }
        let (_, opened) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        assert_eq!(opened.partial[0].decoded, vec![0]);
        let part = fs::read(dir.path().join(WORK_DIR).join("0000000d-0").join("part")).unwrap();
        assert_eq!(part[..l.block_bytes(0) as usize], bytes[..l.block_bytes(0) as usize]);
    }

    #[test]
    fn empty_objects_are_published() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        assert!(s.commit(ObjectKey { session: 1, object: 0 }, &manifest(&[], "empty")).unwrap());
        assert_eq!(fs::read(dir.path().join("empty")).unwrap(), b"");
    }
}
