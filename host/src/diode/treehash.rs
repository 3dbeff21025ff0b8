//! The BLAKE3 of a file built up while its bytes are written, in any order,
//! so checking a received object at the end reads back almost nothing.
//!
//! BLAKE3 is a tree over 1 KiB chunks: every aligned run of 2^j whole chunks
//! inside the file is a node of that tree (the whole file, when it is itself
//! 2^j chunks, is the root and is finalized differently), and a node's
//! chaining value depends only on its bytes and its position. So each write
//! hashes the aligned runs of whole chunks it covers ([`TreeHash::absorb`]),
//! siblings merge into their parent as they meet, and the root is computed at
//! the end from what is known, reading from the file only the chunks no write
//! covered whole ([`TreeHash::finish`]) — the chunks that straddle two writes.
//! A completed block can be settled on the way ([`TreeHash::settle`]), so the
//! end reads only the chunks straddling two blocks.
//!
//! Correctness rests on one rule: a node is kept only while the bytes it was
//! computed from are what the file holds. A write over any part of a known
//! node forgets that node ([`TreeHash::absorb`] does it first), and whatever
//! is unknown is read from the file. A tree that knows nothing (a receiver
//! restarted with its nodes lost) reads the whole file: the plain hash.

use std::collections::BTreeMap;
use std::io;

use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode};
use blake3::{Hasher, CHUNK_LEN};

/// Bytes per BLAKE3 chunk.
const CHUNK: u64 = CHUNK_LEN as u64;
/// Bytes read at a time where the file must be read.
const READ: u64 = 1 << 20;

/// The largest power of two `<= x` (`x >= 1`).
fn floor_pow2(x: u64) -> u64 {
    1 << (63 - x.leading_zeros())
}

/// A node of the tree: its first chunk, its chunks (2^j), its chaining value.
pub type Node = (u64, u64, ChainingValue);

/// The BLAKE3 of a file of known length, from the pieces hashed so far.
#[derive(Debug, Clone)]
pub struct TreeHash {
    len: u64,
    /// Nodes known: first chunk -> (chunks, chaining value). Each is an
    /// aligned run of 2^j whole chunks of the file, never the root; they do
    /// not overlap.
    nodes: BTreeMap<u64, (u64, ChainingValue)>,
    /// Bytes read back from the file (settling and finishing), for tests and logs.
    read_back: u64,
}

impl TreeHash {
    /// Nothing known yet of a file of `len` bytes.
    pub fn new(len: u64) -> TreeHash {
        TreeHash { len, nodes: BTreeMap::new(), read_back: 0 }
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Bytes read back from the file so far.
    pub fn read_back(&self) -> u64 {
        self.read_back
    }

    /// Chunks in the file (an empty file is one empty chunk).
    fn chunks(&self) -> u64 {
        self.len.div_ceil(CHUNK).max(1)
    }

    /// Chunk `c`'s end in bytes (the last one may be short).
    fn chunk_end(&self, c: u64) -> u64 {
        (c * CHUNK).min(self.len)
    }

    /// Aligned runs of 2^j whole chunks covering `[first, last)`, largest
    /// first, never the root.
    fn runs(&self, first: u64, last: u64) -> Vec<(u64, u64)> {
        let n = self.chunks();
        let mut out = Vec::new();
        let mut c = first;
        while c < last {
            let align = if c == 0 { u64::MAX } else { 1 << c.trailing_zeros() };
            let mut s = align.min(floor_pow2(last - c));
            if c == 0 && s == n {
                // The whole file is the root: its two halves are the nodes.
                s /= 2;
            }
            out.push((c, s));
            c += s;
        }
        out
    }

    /// Chunks wholly inside bytes `[from, to)`: the last chunk counts when
    /// `to` is the file's end.
    fn whole_chunks(&self, from: u64, to: u64) -> (u64, u64) {
        let last = if to >= self.len { self.chunks() } else { to / CHUNK };
        (from.div_ceil(CHUNK), last)
    }

    /// Forgets every node with a byte in `[from, to)`.
    fn forget(&mut self, from: u64, to: u64) {
        let (lo, hi) = (from / CHUNK, to.div_ceil(CHUNK));
        let gone: Vec<u64> =
            self.nodes.range(..hi).rev().take_while(|(c, (s, _))| *c + *s > lo).map(|(c, _)| *c).collect();
        for c in gone {
            self.nodes.remove(&c);
        }
    }

    /// Keeps node `(c, s)`, merging it with its sibling while that is known
    /// (never into the root).
    fn insert(&mut self, mut c: u64, mut s: u64, mut cv: ChainingValue) {
        let n = self.chunks();
        loop {
            let left = (c / s) % 2 == 0;
            let sibling = if left { c + s } else { c - s };
            let parent = c.min(sibling);
            if parent == 0 && 2 * s == n {
                break;
            }
            match self.nodes.get(&sibling) {
                Some(&(ss, scv)) if ss == s => {
                    self.nodes.remove(&sibling);
                    cv = if left {
                        merge_subtrees_non_root(&cv, &scv, Mode::Hash)
                    } else {
                        merge_subtrees_non_root(&scv, &cv, Mode::Hash)
                    };
                    c = parent;
                    s *= 2;
                }
                _ => break,
            }
        }
        self.nodes.insert(c, (s, cv));
    }

    /// `data` now lies at byte `offset` of the file: forgets what it
    /// overwrote and hashes the whole chunks it covers. Bytes beyond the
    /// file's end are not the file's: such a write is only forgotten.
    pub fn absorb(&mut self, offset: u64, data: &[u8]) {
        let Some(end) = offset.checked_add(data.len() as u64) else { return };
        if data.is_empty() {
            return;
        }
        self.forget(offset, end);
        if end > self.len || self.chunks() < 2 {
            // A one-chunk file has no node but its root: hashed at the end.
            return;
        }
        let (first, last) = self.whole_chunks(offset, end);
        for (c, s) in self.runs(first, last) {
            let from = (c * CHUNK - offset) as usize;
            let to = (self.chunk_end(c + s) - offset) as usize;
            let cv = Hasher::new().set_input_offset(c * CHUNK).update(&data[from..to]).finalize_non_root();
            self.insert(c, s, cv);
        }
    }

    /// Bytes `[from, to)` of the file are complete (a block): computes the
    /// nodes wholly inside them from what is known, reading the rest with
    /// `read`, so [`TreeHash::finish`] has only the chunks across their edges left.
    pub fn settle(
        &mut self,
        from: u64,
        to: u64,
        read: &mut impl FnMut(u64, &mut [u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.chunks() < 2 || to > self.len {
            return Ok(());
        }
        let (first, last) = self.whole_chunks(from, to);
        for (c, s) in self.runs(first, last) {
            // Already inside a known node (the block's neighbours settled with it)?
            let known = self.nodes.range(..=c).next_back().is_some_and(|(&kc, &(ks, _))| kc + ks >= c + s);
            if known {
                continue;
            }
            let cv = self.node(c, s, read)?;
            self.forget(c * CHUNK, self.chunk_end(c + s));
            self.insert(c, s, cv);
        }
        Ok(())
    }

    /// A tree of the same file that knows only the nodes wholly inside
    /// bytes `[from, to)`: handed to another thread, which writes the rest of
    /// that range, settles it, and gives back [`TreeHash::nodes`] for
    /// [`TreeHash::graft`].
    pub fn part(&self, from: u64, to: u64) -> TreeHash {
        let (first, last) = self.whole_chunks(from, to.min(self.len));
        let nodes = self
            .nodes
            .range(first..last)
            .filter(|(c, (s, _))| *c + *s <= last)
            .map(|(c, v)| (*c, *v))
            .collect();
        TreeHash { len: self.len, nodes, read_back: 0 }
    }

    /// The nodes known.
    pub fn nodes(&self) -> Vec<Node> {
        self.nodes.iter().map(|(c, (s, cv))| (*c, *s, *cv)).collect()
    }

    /// Takes in nodes [`TreeHash::block_nodes`] computed from what the file
    /// now holds, in place of whatever was known of their bytes. Anything
    /// that is not a node of this file's tree is ignored.
    pub fn graft(&mut self, nodes: impl IntoIterator<Item = Node>) {
        let n = self.chunks();
        for (c, s, cv) in nodes {
            let node = s.is_power_of_two() && c % s == 0 && c.checked_add(s).is_some_and(|e| e <= n) && s < n;
            if node {
                self.forget(c * CHUNK, self.chunk_end(c + s));
                self.insert(c, s, cv);
            }
        }
    }

    /// The file's BLAKE3, reading with `read` whatever is not known.
    pub fn finish(
        &mut self,
        read: &mut impl FnMut(u64, &mut [u8]) -> io::Result<()>,
    ) -> io::Result<[u8; 32]> {
        let n = self.chunks();
        if n < 2 {
            let mut buf = vec![0u8; self.len as usize];
            read(0, &mut buf)?;
            self.read_back += self.len;
            return Ok(*blake3::hash(&buf).as_bytes());
        }
        let left = floor_pow2(n - 1);
        let l = self.node(0, left, read)?;
        let r = self.node(left, n - left, read)?;
        Ok(*merge_subtrees_root(&l, &r, Mode::Hash).as_bytes())
    }

    /// The chaining value of the tree's node of chunks `[c, c + m)` (`m`
    /// chunks, 2^j unless it ends at the file's end): known, read, or merged
    /// from its children.
    fn node(
        &mut self,
        c: u64,
        m: u64,
        read: &mut impl FnMut(u64, &mut [u8]) -> io::Result<()>,
    ) -> io::Result<ChainingValue> {
        if let Some(&(s, cv)) = self.nodes.get(&c) {
            if s == m {
                return Ok(cv);
            }
        }
        if m == 1 || self.nodes.range(c..c + m).next().is_none() {
            // Nothing known inside: read it and hash it as one subtree.
            let (start, end) = (c * CHUNK, self.chunk_end(c + m));
            let mut h = Hasher::new();
            h.set_input_offset(start);
            let mut buf = vec![0u8; (end - start).min(READ) as usize];
            let mut at = start;
            while at < end {
                let len = (end - at).min(READ) as usize;
                read(at, &mut buf[..len])?;
                h.update(&buf[..len]);
                at += len as u64;
            }
            self.read_back += end - start;
            return Ok(h.finalize_non_root());
        }
        let left = floor_pow2(m - 1);
        let l = self.node(c, left, read)?;
        let r = self.node(c + left, m - left, read)?;
        Ok(merge_subtrees_non_root(&l, &r, Mode::Hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed).collect()
    }

    fn reader(file: &[u8]) -> impl FnMut(u64, &mut [u8]) -> io::Result<()> + '_ {
        |at, buf| {
            let at = at as usize;
            buf.copy_from_slice(&file[at..at + buf.len()]);
            Ok(())
        }
    }

    #[test]
    fn written_in_any_order_in_any_pieces_it_is_blake3() {
        // Sizes around the tree's edges: empty, one chunk, powers of two and beside them.
        let sizes =
            [0usize, 1, 1023, 1024, 1025, 2048, 3000, 4096, 4097, 7 * 1024 + 5, 65_536, 100_000, 1 << 20];
        for (i, &len) in sizes.iter().enumerate() {
            let file = content(len, i as u8);
            let want = *blake3::hash(&file).as_bytes();
            for piece in [1usize, 700, 1024, 1400, 5000, 1 << 20] {
                let mut t = TreeHash::new(len as u64);
                // Odd pieces first, then even ones: writes meet from both sides.
                let starts: Vec<usize> = (0..len).step_by(piece).collect();
                for pass in [1, 0] {
                    for (j, &s) in starts.iter().enumerate() {
                        if j % 2 == pass {
                            t.absorb(s as u64, &file[s..(s + piece).min(len)]);
                        }
                    }
                }
                assert_eq!(t.finish(&mut reader(&file)).unwrap(), want, "len {len} piece {piece}");
                // Only chunks across the pieces' edges were read back.
                let edges = (len / piece + 1) as u64 * 2 * CHUNK;
                assert!(t.read_back() <= edges.max(CHUNK), "len {len} piece {piece}: {}", t.read_back());
            }
            // Nothing known: the file is read once, whole.
            let mut t = TreeHash::new(len as u64);
            assert_eq!(t.finish(&mut reader(&file)).unwrap(), want);
            assert_eq!(t.read_back(), len as u64);
        }
    }

    #[test]
    fn settled_blocks_leave_only_their_edges_to_the_end() {
        let len = 12 * 1000 * 1400 + 777;
        let file = content(len, 9);
        let mut t = TreeHash::new(len as u64);
        let block = 1000 * 1400;
        // As the disk store writes a block: runs of the source symbols that
        // arrived (one symbol in ten lost), then the lost ones once decoded;
        // then the block is settled. Blocks complete in no particular order.
        for b in [3, 0, 12, 1, 2, 11, 4, 10, 5, 9, 6, 8, 7] {
            let (lo, hi) = (b * block, ((b + 1) * block).min(len));
            let holes: Vec<usize> = (lo..hi).step_by(1400).skip(3).step_by(10).collect();
            let mut at = lo;
            for &h in holes.iter().chain([hi].iter()) {
                if h > at {
                    t.absorb(at as u64, &file[at..h]);
                }
                at = (h + 1400).min(hi);
            }
            for &h in &holes {
                t.absorb(h as u64, &file[h..(h + 1400).min(hi)]);
            }
            t.settle(lo as u64, hi as u64, &mut reader(&file)).unwrap();
        }
        // Settling read the chunks across the holes' edges: about two a hole.
        let settled = t.read_back();
        assert!(settled <= len as u64 / 10 * 2 * 1024 / 1400 + 13 * CHUNK, "{settled}");
        assert_eq!(t.finish(&mut reader(&file)).unwrap(), *blake3::hash(&file).as_bytes());
        // The end read one chunk per block edge at most.
        assert!(t.read_back() - settled <= 13 * CHUNK, "{}", t.read_back() - settled);
    }

    #[test]
    fn random_writes_overwrites_and_settles_always_give_the_files_hash() {
        // xorshift: the same cases every run.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        for case in 0..200 {
            let len = next(40_000) as usize + if case % 3 == 0 { 0 } else { 1024 * next(40) as usize };
            let mut file = content(len, case as u8);
            let mut t = TreeHash::new(len as u64);
            for _ in 0..next(30) {
                let at = next(len as u64 + 1) as usize;
                let n = (next(9000) as usize).min(len - at);
                match next(4) {
                    0 => t.settle(at as u64, (at + n) as u64, &mut reader(&file)).unwrap(),
                    1 => {
                        // Other bytes over what may be known already.
                        let junk = content(n, next(255) as u8);
                        file[at..at + n].copy_from_slice(&junk);
                        t.absorb(at as u64, &junk);
                    }
                    _ => t.absorb(at as u64, &file[at..at + n]),
                }
            }
            // Whatever was written since the last look, the end is the file's hash.
            let clean = content(len, case as u8);
            let at = next(len as u64 + 1) as usize;
            file[at..].copy_from_slice(&clean[at..]);
            t.absorb(at as u64, &clean[at..]);
            assert_eq!(t.finish(&mut reader(&file)).unwrap(), *blake3::hash(&file).as_bytes(), "case {case}");
        }
    }

    #[test]
    fn nodes_worked_out_elsewhere_graft_in() {
        let len = 9 * 70_000 + 11;
        let file = content(len, 3);
        let mut t = TreeHash::new(len as u64);
        // Blocks of 70,000 bytes: some written here piecewise, the others worked out apart.
        for b in 0..10u64 {
            let (lo, hi) = (b * 70_000, ((b + 1) * 70_000).min(len as u64));
            if b % 3 == 1 {
                // Half the block here, the rest written and settled elsewhere.
                let mid = lo + 30_000;
                t.absorb(lo, &file[lo as usize..mid as usize]);
                let mut apart = t.part(lo, hi);
                apart.absorb(mid, &file[mid as usize..hi as usize]);
                apart.settle(lo, hi, &mut reader(&file)).unwrap();
                assert!(apart.read_back() <= 2 * CHUNK, "only the chunks across the halves");
                t.graft(apart.nodes());
            } else {
                t.absorb(lo, &file[lo as usize..hi as usize]);
            }
        }
        // Not nodes of this tree: ignored, whatever they claim.
        t.graft([(3, 2, [0; 32]), (0, 1 << 20, [0; 32]), (u64::MAX, 1, [0; 32])]);
        assert_eq!(t.finish(&mut reader(&file)).unwrap(), *blake3::hash(&file).as_bytes());
        assert!(t.read_back() <= 10 * CHUNK, "{}", t.read_back());
    }

    #[test]
    fn an_overwrite_forgets_what_it_covered() {
        let len = 50_000;
        let mut file = content(len, 1);
        let mut t = TreeHash::new(len as u64);
        t.absorb(0, &file);
        // The file changes under a known node: the new bytes count, not the old.
        file[20_000..20_010].copy_from_slice(&[0xAA; 10]);
        t.absorb(20_000, &file[20_000..20_010]);
        assert_eq!(t.finish(&mut reader(&file)).unwrap(), *blake3::hash(&file).as_bytes());
        // A write past the end is not the file's and only forgets.
        let mut t = TreeHash::new(len as u64);
        t.absorb(0, &file);
        t.absorb(49_000, &[1u8; 2000]);
        assert_eq!(t.finish(&mut reader(&file)).unwrap(), *blake3::hash(&file).as_bytes());
        // A read that fails is an error, not a hash.
        let mut t = TreeHash::new(len as u64);
        assert!(t.finish(&mut |_, _| Err(io::Error::other("gone"))).is_err());
    }
}
