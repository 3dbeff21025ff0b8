//! The producer of `strand diode-tx`: a thread that reads each group of
//! blocks ahead of the sender, hashes objects as it reads them (the hash goes
//! in the trailing MANIFEST, so nothing is read twice before the first
//! datagram), and encodes repair symbols, on several threads when asked.
//! It follows the sender's schedule (rounds, objects, groups; spec 13.8) and
//! hands its results over a bounded channel, so at most about two groups are
//! in memory.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use strand_link::diode::sender::STRIPE_SYMBOLS;
use strand_link::diode::{group_blocks, Codec, Layout};

/// Where an object's bytes are read from.
pub enum Content {
    /// A file, with the length and modification time it had when listed.
    File {
        /// The open file.
        file: File,
        /// Length when listed.
        len: u64,
        /// Modification time when listed (ns).
        mtime: i128,
    },
    /// Bytes read before sending (stdin).
    Memory(Arc<Vec<u8>>),
}

/// One object as the producer sees it.
pub struct Source {
    /// How the sender cuts it (with the sender's `R`).
    pub layout: Layout,
    /// Its bytes.
    pub content: Content,
    /// Shown in errors.
    pub path: String,
    /// Whether the producer must hash it (its hash is not known yet).
    pub hash: bool,
}

/// What the producer hands over.
pub enum Prepared {
    /// A stripe of a block's bytes.
    Source {
        /// Object number.
        object: u16,
        /// Block number.
        block: u16,
        /// Byte offset within the object.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A block's repair symbols.
    Repair {
        /// Object number.
        object: u16,
        /// Block number.
        block: u16,
        /// `R·T` bytes.
        bytes: Vec<u8>,
    },
    /// An object's BLAKE3, once its last block was read.
    Hash {
        /// Object number.
        object: u16,
        /// The hash.
        hash: [u8; 32],
    },
    /// Reading failed (the file vanished, shrank or changed): sending stops.
    Failed(String),
}

/// The sender's schedule, as the producer needs it.
pub struct Plan {
    /// The objects, in order.
    pub objects: Vec<Source>,
    /// Rounds (`None`: forever) starting at `first_round`.
    pub rounds: Option<u32>,
    /// The first round.
    pub first_round: u32,
    /// Whether the sender keeps its only group across rounds (read it once).
    pub keeps_groups: bool,
    /// For each object, whether round 0 sends repair symbols.
    pub first_pass_repair: Vec<bool>,
    /// Threads that encode repair symbols.
    pub threads: usize,
}

/// Channel capacity: a few stripes of every block of a group, and its repairs.
pub fn capacity(plan: &Plan) -> usize {
    let most = plan
        .objects
        .iter()
        .map(|o| usize::from(group_blocks(&o.layout)).min(o.layout.blocks() as usize))
        .max();
    8 * most.unwrap_or(1) + 16
}

/// Runs the plan, sending what it prepares on `out`, until the plan ends,
/// `stop` is set or the receiving side goes away.
pub fn run(plan: Plan, out: SyncSender<Prepared>, stop: Arc<AtomicBool>) {
    let mut codecs: Vec<Codec> = (0..plan.threads.max(1)).map(|_| Codec::default()).collect();
    let mut round = plan.first_round;
    loop {
        if plan.rounds.is_some_and(|n| round >= plan.first_round.saturating_add(n)) {
            return;
        }
        for (o, src) in plan.objects.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let first = round == plan.first_round;
            // A kept group is read once: encode its repair now if any later round needs it.
            let later = plan.keeps_groups && plan.rounds != Some(1);
            let repair = round > 0 || plan.first_pass_repair[o] || later;
            if let Err(e) = object(o as u16, src, first && src.hash, repair, &mut codecs, &out) {
                let _ = out.send(Prepared::Failed(e));
                return;
            }
        }
        if plan.keeps_groups {
            return;
        }
        round += 1;
    }
}

/// Reads, hashes and encodes one object's pass; `Err` says what went wrong
/// with the file, `Ok` also when the receiving side went away.
fn object(
    object: u16,
    src: &Source,
    hash: bool,
    repair: bool,
    codecs: &mut [Codec],
    out: &SyncSender<Prepared>,
) -> Result<(), String> {
    let l = &src.layout;
    check_unchanged(src)?;
    let mut hasher = hash.then(blake3::Hasher::new);
    if l.size == 0 {
        if let Some(h) = hasher {
            let _ = out.send(Prepared::Hash { object, hash: *h.finalize().as_bytes() });
        }
        return Ok(());
    }
    let blocks = l.blocks() as u16;
    let per_group = group_blocks(l);
    let stripe = STRIPE_SYMBOLS * u64::from(l.symbol_size);
    let mut start = 0u16;
    while start < blocks {
        let end = (u32::from(start) + u32::from(per_group)).min(u32::from(blocks)) as u16;
        // Stripes in the order the sender asks for them: the first stripe of
        // every block of the group, then the second, ... So its first frame
        // waits for one stripe per block, not for the group.
        let mut group: Vec<(u16, Vec<u8>)> =
            (start..end).map(|b| (b, Vec::with_capacity(l.block_bytes(b) as usize))).collect();
        let mut at = 0u64;
        while group.iter().any(|(b, v)| (v.len() as u64) < l.block_bytes(*b)) {
            for (b, v) in group.iter_mut() {
                let total = l.block_bytes(*b);
                if at >= total {
                    continue;
                }
                let len = stripe.min(total - at);
                let offset = l.block_offset(*b) + at;
                let bytes = read(src, offset, len)?;
                v.extend_from_slice(&bytes);
                if out.send(Prepared::Source { object, block: *b, offset, bytes }).is_err() {
                    return Ok(());
                }
            }
            at += stripe;
        }
        if let Some(h) = &mut hasher {
            for (_, v) in &group {
                h.update(v);
            }
        }
        if end == blocks {
            if let Some(h) = hasher.take() {
                if out.send(Prepared::Hash { object, hash: *h.finalize().as_bytes() }).is_err() {
                    return Ok(());
                }
            }
        }
        if repair {
            for (block, bytes) in encode(l, &group, codecs)? {
                if out.send(Prepared::Repair { object, block, bytes }).is_err() {
                    return Ok(());
                }
            }
        }
        start = end;
    }
    Ok(())
}

/// Blocks and their bytes (source or repair), by block number.
type Blocks = Vec<(u16, Vec<u8>)>;

/// Repair symbols of a group's blocks, in block order, spread over the codecs' threads.
fn encode(l: &Layout, group: &[(u16, Vec<u8>)], codecs: &mut [Codec]) -> Result<Blocks, String> {
    let chunk = group.len().div_ceil(codecs.len().max(1)).max(1);
    let results: Vec<Result<Blocks, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = group
            .chunks(chunk)
            .zip(codecs.iter_mut())
            .map(|(part, codec)| {
                s.spawn(move || {
                    part.iter()
                        .map(|(b, bytes)| {
                            codec
                                .encode_repair(l, *b, bytes)
                                .map(|r| (*b, r))
                                .map_err(|e| format!("encoding block {b}: {e}"))
                        })
                        .collect::<Result<Vec<_>, String>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("an encoder thread panicked".into())))
            .collect()
    });
    let mut all = Vec::with_capacity(group.len());
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

/// Fails clearly if a file changed since it was listed: the hash sent (or
/// to be sent) would not match the bytes.
fn check_unchanged(src: &Source) -> Result<(), String> {
    if let Content::File { file, len, mtime } = &src.content {
        let m = file.metadata().map_err(|e| format!("{}: {e}", src.path))?;
        let now = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
        if m.len() != *len || now != *mtime {
            return Err(format!(
                "{} changed while being sent: receivers would reject it; send it again once it is written",
                src.path
            ));
        }
    }
    Ok(())
}

/// Reads `len` bytes at `offset`, failing clearly if the file shrank.
fn read(src: &Source, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    match &src.content {
        Content::Memory(v) => Ok(v[offset as usize..(offset + len) as usize].to_vec()),
        Content::File { file, .. } => {
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, offset).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    format!("{}: the file shrank while being sent", src.path)
                }
                _ => format!("{}: {e}", src.path),
            })?;
            Ok(buf)
        }
    }
}
