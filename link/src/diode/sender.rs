//! Spec section 13.8: the sender — what it sends, in which order.
//!
//! Sans-IO: the caller asks for the next frame ([`Sender::poll_frame`]) as
//! fast as its line or rate limit allows. When the sender needs an object's
//! bytes it says so ([`Poll::NeedBlock`]) and the caller hands them over
//! ([`Sender::provide_block`]); the sender never reads files or clocks.
//!
//! Order: rounds, then objects, then groups of blocks. Round 0 sends each
//! block's source symbols plus the configured repair; every later round sends
//! `k` *fresh* repair symbols per block (continuing where the last round
//! stopped, wrapping only after all `k + R` distinct symbols have gone out).
//! Within a group, symbols go round-robin across blocks, so a burst of lost
//! frames costs each block only its share. Each object's MANIFEST goes first
//! in every round and again every [`manifest_every`] symbols; a HEARTBEAT
//! goes out every `heartbeat` interval and three times at the end.

use super::code::{CodeError, Codec, EncodedBlock};
use super::layout::{repair_for_loss, Layout};
use super::wire::{AuthKey, DiodeFrame, HeartbeatRepr, ManifestRepr, SenderState, SymbolRepr};
use super::Manifest;
use crate::time::Instant;
use alloc::vec::Vec;
use core::time::Duration;

/// Most symbol frames between two repeats of an object's MANIFEST.
pub const MANIFEST_EVERY: u32 = 1024;
/// Fewest symbol frames between two repeats: caps the manifests' share at 3%.
pub const MANIFEST_MIN_EVERY: u32 = 32;

/// Symbol frames between two MANIFESTs of an object of `k` source symbols:
/// about eight per pass, so a receiver misses all of them only if it misses
/// nearly everything (p^8), yet they cost little on big objects.
pub fn manifest_every(k: u64) -> u32 {
    (k / 8).clamp(u64::from(MANIFEST_MIN_EVERY), u64::from(MANIFEST_EVERY)) as u32
}
/// Source bytes of an object encoded at once (a group of blocks interleaved
/// together); the sender holds them and their repair, twice this in memory.
/// Objects up to this size are one group, so every round sweeps all their
/// blocks and each block gets its fresh symbols early. Bigger objects are
/// sent group after group: a block waits for its group's turn in the next
/// round, which costs the carousel up to a group's worth of frames (measured:
/// 1.5-1.85x the limit for 32 MiB in 32 MiB groups) — the price of bounded memory.
pub const GROUP_BYTES: u64 = 256 << 20;
/// HEARTBEATs with state Done sent at the end, in case some are lost.
pub const DONE_HEARTBEATS: u32 = 3;
/// Per-block failure target of `Redundancy::ExpectLoss` (one pass).
pub const ONE_PASS_FAIL: f32 = 1e-5;

/// How much repair the first pass carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Redundancy {
    /// This share of each block's source symbols, rounded up (0.1 = 10%).
    Fixed(f32),
    /// Enough that a line losing this share of frames at random delivers
    /// every block with probability at least 1 - [`ONE_PASS_FAIL`].
    ExpectLoss(f32),
}

/// What the sender is configured to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SenderConfig {
    /// Repair sent with the first pass.
    pub redundancy: Redundancy,
    /// Passes over the objects: 1 = one pass; `None` = forever (carousel).
    pub rounds: Option<u32>,
    /// Longest gap between two heartbeats.
    pub heartbeat: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            redundancy: Redundancy::ExpectLoss(0.01),
            rounds: Some(1),
            heartbeat: Duration::from_secs(1),
        }
    }
}

/// One object to send: its manifest and its layout.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Name, size, mode, time and hash.
    pub manifest: Manifest,
    /// How it is cut into blocks (usually `Layout::choose`).
    pub layout: Layout,
}

/// What [`Sender::poll_frame`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// A raw frame of this many bytes is in the output buffer.
    Frame(usize),
    /// Hand over `len` bytes of object `object` at `offset` (block `block`)
    /// with [`Sender::provide_block`], then poll again.
    NeedBlock {
        /// Object number.
        object: u16,
        /// Block number.
        block: u16,
        /// Byte offset within the object.
        offset: u64,
        /// Bytes wanted.
        len: u64,
    },
    /// Everything is sent.
    Done,
}

/// Where the schedule stands.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    round: u32,
    object: usize,
    /// First block of the current group.
    group: u16,
    /// Position within the group's round-robin: `i` symbols per block so far, at block `b`.
    i: u32,
    b: u16,
    /// Manifest of this object sent in this round.
    manifest_sent: bool,
}

/// The one-way sender.
#[derive(Debug)]
pub struct Sender {
    session: u32,
    key: Option<AuthKey>,
    config: SenderConfig,
    objects: Vec<Outgoing>,
    cursor: Cursor,
    /// Encoded blocks of the current group (index = block - group start).
    group: Vec<Option<EncodedBlock>>,
    frames_sent: u64,
    symbols_since_manifest: u32,
    last_heartbeat: Option<Instant>,
    done_heartbeats: u32,
    codec: Codec,
}

impl Sender {
    /// A sender for `objects` (at most 65535) in session `session` (non-zero, random).
    pub fn new(
        session: u32,
        objects: Vec<Outgoing>,
        config: SenderConfig,
        key: Option<AuthKey>,
    ) -> Option<Sender> {
        let ok = session != 0
            && objects.len() < usize::from(u16::MAX)
            && objects
                .iter()
                .all(|o| o.manifest.size == o.layout.size && (o.layout.size == 0 || o.layout.valid()));
        if !ok {
            return None;
        }
        let mut sender = Sender {
            session,
            key,
            config,
            objects,
            cursor: Cursor { round: 0, object: 0, group: 0, i: 0, b: 0, manifest_sent: false },
            group: Vec::new(),
            frames_sent: 0,
            symbols_since_manifest: 0,
            last_heartbeat: None,
            done_heartbeats: 0,
            codec: Codec::default(),
        };
        // A first pass may ask for more repair than a GF(2^16) block was laid
        // out with: give such blocks the repair they need (the frames carry R).
        for i in 0..sender.objects.len() {
            let l = sender.objects[i].layout;
            if l.size == 0 || l.code != super::CodeId::Gf16 {
                continue;
            }
            let need = sender.first_pass_repair(&Layout { repair: u16::MAX, ..l }, 0);
            if need > u32::from(l.repair) {
                let repair = need.min(super::layout::GF16_MAX as u32) as u16;
                sender.objects[i].layout = Layout { repair, ..l };
            }
        }
        Some(sender)
    }

    /// Frames emitted so far.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    /// The current round (0 = first pass).
    pub fn round(&self) -> u32 {
        self.cursor.round
    }

    /// The session id.
    pub fn session(&self) -> u32 {
        self.session
    }

    /// Repair symbols block `b` of `layout` gets in round 0.
    pub fn first_pass_repair(&self, layout: &Layout, b: u16) -> u32 {
        let k = layout.block_symbols(b).unwrap_or(0);
        let r = match self.config.redundancy {
            Redundancy::Fixed(x) => {
                // ceil without std: the product is small and non-negative.
                let r = k as f32 * x.max(0.0);
                r as u32 + u32::from(r > (r as u32) as f32)
            }
            Redundancy::ExpectLoss(p) => repair_for_loss(k, p, ONE_PASS_FAIL),
        };
        r.min(u32::from(layout.repair))
    }

    fn finished_rounds(&self) -> bool {
        self.config.rounds.is_some_and(|n| self.cursor.round >= n) || self.objects.is_empty()
    }

    /// Symbols block `b` sends in round `round`.
    fn count(&self, layout: &Layout, b: u16, round: u32) -> u32 {
        let k = layout.block_symbols(b).unwrap_or(0);
        if round == 0 {
            k + self.first_pass_repair(layout, b)
        } else {
            k
        }
    }

    /// The symbol id of the `i`-th symbol of block `b` in round `round`.
    fn esi(&self, layout: &Layout, b: u16, round: u32, i: u32) -> u16 {
        let k = layout.block_symbols(b).unwrap_or(0);
        if round == 0 {
            return i as u16;
        }
        let total = u64::from(k) + u64::from(layout.repair);
        let first = u64::from(k + self.first_pass_repair(layout, b));
        ((first + u64::from(round - 1) * u64::from(k) + u64::from(i)) % total) as u16
    }

    fn group_len(layout: &Layout) -> u16 {
        let block_bytes = u64::from(layout.block_max) * u64::from(layout.symbol_size);
        (GROUP_BYTES / block_bytes.max(1)).clamp(1, u64::from(u16::MAX)) as u16
    }

    /// Hands over the bytes asked for by [`Poll::NeedBlock`].
    pub fn provide_block(&mut self, object: u16, block: u16, bytes: &[u8]) -> Result<(), CodeError> {
        let o = self.objects.get(usize::from(object)).ok_or(CodeError::BadBlock)?;
        if usize::from(object) != self.cursor.object || block < self.cursor.group {
            return Err(CodeError::BadBlock);
        }
        let slot = usize::from(block - self.cursor.group);
        let enc = self.codec.encode(&o.layout, block, bytes)?;
        let s = self.group.get_mut(slot).ok_or(CodeError::BadBlock)?;
        *s = Some(enc);
        Ok(())
    }

    /// The next frame to send, written into `out` (at least
    /// [`super::wire::MAX_FRAME`] bytes), or what the sender needs first.
    pub fn poll_frame(&mut self, now: Instant, out: &mut [u8]) -> Poll {
        let heartbeat_due = self.last_heartbeat.is_none_or(|t| now.since(t) >= self.config.heartbeat);
        if self.finished_rounds() {
            if self.done_heartbeats >= DONE_HEARTBEATS {
                return Poll::Done;
            }
            self.done_heartbeats += 1;
            return self.heartbeat(now, SenderState::Done, out);
        }
        if heartbeat_due {
            return self.heartbeat(now, SenderState::Sending, out);
        }
        loop {
            if self.finished_rounds() {
                return self.poll_frame(now, out);
            }
            let c = self.cursor;
            let o = &self.objects[c.object];
            let layout = o.layout;
            if !c.manifest_sent || self.symbols_since_manifest >= manifest_every(layout.source_symbols()) {
                self.cursor.manifest_sent = true;
                return self.manifest(c.object, out);
            }
            let blocks = layout.blocks();
            let group_end = (u64::from(c.group) + u64::from(Self::group_len(&layout))).min(blocks) as u16;
            if u64::from(c.group) >= blocks {
                // One more MANIFEST closes the object's pass, so even a tiny
                // object has two chances per round to be named.
                let trailing = blocks > 0 && self.symbols_since_manifest > 0;
                self.next_object();
                if trailing {
                    return self.manifest(c.object, out);
                }
                continue;
            }
            // Make sure the group is encoded.
            let want = usize::from(group_end - c.group);
            if self.group.len() != want {
                self.group.clear();
                self.group.resize(want, None);
            }
            if let Some(missing) = self.group.iter().position(|g| g.is_none()) {
                let block = c.group + missing as u16;
                return Poll::NeedBlock {
                    object: c.object as u16,
                    block,
                    offset: layout.block_offset(block),
                    len: layout.block_bytes(block),
                };
            }
            // Round-robin: the i-th symbol of each block in the group, skipping
            // blocks that have sent their count.
            let max_count = (c.group..group_end).map(|b| self.count(&layout, b, c.round)).max().unwrap_or(0);
            if c.i >= max_count {
                self.group.clear();
                self.cursor.group = group_end;
                self.cursor.i = 0;
                self.cursor.b = group_end;
                continue;
            }
            let b = c.b.max(c.group);
            if b >= group_end {
                self.cursor.i += 1;
                self.cursor.b = c.group;
                continue;
            }
            self.cursor.b = b + 1;
            if c.i >= self.count(&layout, b, c.round) {
                continue;
            }
            let esi = self.esi(&layout, b, c.round, c.i);
            self.symbols_since_manifest += 1;
            let Some(enc) = &self.group[usize::from(b - c.group)] else { continue };
            let frame = DiodeFrame::Symbol(SymbolRepr {
                object: c.object as u16,
                layout,
                block: b,
                esi,
                data: enc.symbol(esi).unwrap_or(&[]),
            });
            return emit_counted(self.session, self.key.as_ref(), &mut self.frames_sent, frame, out);
        }
    }

    fn manifest(&mut self, object: usize, out: &mut [u8]) -> Poll {
        self.symbols_since_manifest = 0;
        let m = &self.objects[object].manifest;
        let f = DiodeFrame::Manifest(ManifestRepr {
            object: object as u16,
            objects: self.objects.len() as u16,
            size: m.size,
            mode: m.mode,
            mtime: m.mtime,
            hash: m.hash,
            name: &m.name,
        });
        emit_counted(self.session, self.key.as_ref(), &mut self.frames_sent, f, out)
    }

    fn next_object(&mut self) {
        self.group.clear();
        let c = &mut self.cursor;
        c.object += 1;
        c.group = 0;
        c.i = 0;
        c.b = 0;
        c.manifest_sent = false;
        if c.object >= self.objects.len() {
            c.object = 0;
            c.round += 1;
        }
    }

    fn heartbeat(&mut self, now: Instant, state: SenderState, out: &mut [u8]) -> Poll {
        self.last_heartbeat = Some(now);
        let f = DiodeFrame::Heartbeat(HeartbeatRepr {
            objects: self.objects.len() as u16,
            state,
            interval_ms: self.config.heartbeat.as_millis().min(u128::from(u16::MAX)) as u16,
            round: self.cursor.round,
            frames_sent: self.frames_sent,
        });
        self.emit(f, out)
    }

    fn emit(&mut self, f: DiodeFrame<'_>, out: &mut [u8]) -> Poll {
        emit_counted(self.session, self.key.as_ref(), &mut self.frames_sent, f, out)
    }
}

/// Writes `f` into `out` and counts it. A free function over the fields it
/// needs, so a frame that borrows the sender's objects or encoded blocks can
/// be emitted without copying them out first.
fn emit_counted(
    session: u32,
    key: Option<&AuthKey>,
    frames_sent: &mut u64,
    f: DiodeFrame<'_>,
    out: &mut [u8],
) -> Poll {
    match f.emit(session, key, out) {
        Some(n) => {
            *frames_sent += 1;
            Poll::Frame(n)
        }
        // Only a too-small output buffer gets here (fields were validated in `new`).
        None => Poll::Done,
    }
}
