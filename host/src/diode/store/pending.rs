//! What the store holds of an object while it arrives: where each kept
//! symbol is, which blocks are complete, and the decodes under way.

use super::*;

/// Where one kept symbol is (its object's spool, or `part` for a source
/// symbol), and its bytes while in memory.
#[derive(Debug, Clone)]
pub(super) struct SpoolEntry {
    pub(super) esi: u16,
    pub(super) offset: u64,
    pub(super) len: u16,
    pub(super) in_part: bool,
    pub(super) bytes: Option<Vec<u8>>,
}

/// One unfinished object on disk.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) dir: PathBuf,
    pub(super) layout: Option<Layout>,
    pub(super) manifest: Option<Manifest>,
    pub(super) decoded: BTreeSet<u16>,
    pub(super) spool: Option<BufWriter<File>>,
    /// Length of the spool, buffered bytes included.
    pub(super) spool_len: u64,
    pub(super) index: HashMap<u16, Vec<SpoolEntry>>,
    /// `part`, open for writing.
    pub(super) part: Option<File>,
    /// Source symbols of undecoded blocks already written to `part`.
    pub(super) in_part: HashMap<u16, BTreeSet<u16>>,
    /// Bytes written to `part` since its writeback was last started.
    pub(super) unsynced: u64,
    /// Source symbols not yet written to `part`, per block: a block's
    /// symbols arrive in order, so they gather into one write.
    pub(super) runs: HashMap<u16, (u64, Vec<u8>)>,
    /// The BLAKE3 of `part` as far as it is written: every write to `part`
    /// is hashed as it goes and every completed block settled, so the check
    /// before publishing reads back only the chunks across blocks' edges.
    /// Not kept across a restart: what an earlier run wrote is read back then.
    pub(super) tree: Option<TreeHash>,
    /// Blocks being decoded on the store's workers.
    pub(super) decoding: BTreeSet<u16>,
    /// Why a block failed to decode there: the object cannot be published.
    pub(super) decode_failed: Option<String>,
    /// Blocks were completed since `meta` was last written. It is
    /// rewritten on the next flush rather than at once: a `meta` that lags
    /// only under-claims (the spool still holds those blocks' symbols, so a
    /// restart completes them again), and a file's blocks complete together
    /// at its end, where a rewrite each would hold up publishing it.
    pub(super) meta_stale: bool,
    /// Blocks decoded there, and the time spent reading their symbols,
    /// decoding, and writing and hashing (for the debug log).
    pub(super) decode_times: (u64, [Duration; 3]),
}

/// Where a block's kept symbols are read from: the first half of taking
/// them, done where the store's state is; the reading can go to a worker.
pub(super) struct Gather {
    pub(super) entries: Vec<SpoolEntry>,
    /// `part`, if source symbols are read from it.
    pub(super) part: Option<(File, PathBuf)>,
    /// The spool, if symbols are read from it.
    pub(super) spool: Option<(File, PathBuf)>,
}

/// A block's symbols as read: the source symbols as ranges of one read of
/// `part` (no copy each), the others owned.
pub(super) struct Symbols {
    pub(super) from_part: Vec<u8>,
    pub(super) list: Vec<(u16, Sym)>,
}

/// Where one of [`Symbols`] is.
pub(super) enum Sym {
    /// At this offset of `from_part`, this long.
    Part(usize, usize),
    Owned(Vec<u8>),
}

impl Symbols {
    /// `(esi, bytes)` of each.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u16, &[u8])> {
        self.list.iter().map(|(e, s)| {
            let bytes = match s {
                Sym::Part(at, len) => &self.from_part[*at..*at + *len],
                Sym::Owned(v) => &v[..],
            };
            (*e, bytes)
        })
    }

    pub(super) fn into_vec(self) -> Vec<(u16, Vec<u8>)> {
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
    pub(super) fn read(self) -> Result<Symbols, StoreError> {
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
pub(super) enum Collect {
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
pub(super) fn missing_runs(len: usize, t: usize, have: &BTreeSet<u16>) -> Vec<(usize, usize)> {
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
pub(super) struct DecodeJob {
    pub(super) layout: Layout,
    pub(super) block: u16,
    /// Its symbols.
    pub(super) gather: Gather,
    /// Its source symbols already in `part`.
    pub(super) have: BTreeSet<u16>,
    /// `part`, and its path for messages.
    pub(super) part: File,
    pub(super) path: PathBuf,
    /// What is known of the block's hash tree.
    pub(super) tree: TreeHash,
}

/// A decode on a worker: symbols in, the block's missing bytes written to
/// `part`, the block's hash-tree nodes (from what `part` then holds) out.
pub(super) fn decode_on_worker(
    codec: &mut strand_link::diode::Codec,
    job: DecodeJob,
) -> Result<Decoded, String> {
    let DecodeJob { layout, block, gather, have, part, path, mut tree } = job;
    let began = std::time::Instant::now();
    let symbols = gather.read().map_err(|e| e.to_string())?;
    let read = began.elapsed();
    let data =
        codec.decode(&layout, block, symbols.iter()).map_err(|e| format!("would not decode: {e:?}"))?;
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
pub(super) struct Decoded {
    pub(super) nodes: Vec<Node>,
    pub(super) times: [Duration; 3],
}

/// Largest run of source symbols held before it is written.
pub(super) const RUN_BYTES: usize = 256 << 10;

impl Pending {
    /// Writes the gathered source symbols of `block` (all blocks if `None`) to `part`.
    pub(super) fn write_runs(&mut self, block: Option<u16>) -> Result<(), StoreError> {
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
    pub(super) fn gather(&mut self, block: u16) -> Result<(Gather, u64), StoreError> {
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
    pub(super) fn write_part(&mut self, bytes: &[u8], at: u64) -> Result<(), StoreError> {
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
    pub(super) fn tree(&mut self) -> Option<&mut TreeHash> {
        if self.tree.is_none() {
            self.tree = self.layout.map(|l| TreeHash::new(l.size));
        }
        self.tree.as_mut()
    }

    /// Block `block` is complete in `part` (its runs written): hashes what
    /// of it the writes left unhashed, so the end has only its edges left.
    pub(super) fn settle(&mut self, layout: &Layout, block: u16) -> Result<(), StoreError> {
        let path = self.dir.join("part");
        self.part()?;
        self.tree();
        let (Some(f), Some(t)) = (self.part.as_ref(), self.tree.as_mut()) else { return Ok(()) };
        let from = layout.block_offset(block);
        t.settle(from, from + layout.block_bytes(block), &mut |at, buf| f.read_exact_at(buf, at))
            .map_err(io_err(|| format!("cannot read {}", path.display())))
    }

    pub(super) fn part(&mut self) -> Result<&File, StoreError> {
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
