//! Spec section 13.8: the sender — what it sends, in which order.
//!
//! Sans-IO: the caller asks for the next frame ([`Sender::poll_frame`]) as
//! fast as its line or rate limit allows. The sender never reads files or
//! clocks; it says what it needs:
//!
//! - [`Poll::NeedBlock`]: the next stripe of a block's bytes
//!   ([`Sender::provide_block`]; more may be given). Source symbols are the
//!   bytes themselves, so they go out at once: the first frame waits for one
//!   stripe of each block, not for the group.
//! - [`Poll::NeedRepair`]: a block's repair symbols, the first time one is
//!   due. The caller encodes them (on another core, from its own copy of the
//!   bytes, with [`super::Codec::encode_repair`] and [`Sender::layout`]) and
//!   hands them over ([`Sender::provide_repair`]), or lets the sender encode
//!   them now ([`Sender::encode_repair`]).
//! - [`Poll::NeedHash`]: an object's BLAKE3, when its trailing MANIFEST is
//!   due and [`Sender::set_hash`] has not been called. A streaming caller
//!   hashes while it reads, so the hash is usually there long before.
//! - [`Poll::Wait`]: nothing to send before a time (the spread-out end).
//!
//! Order: rounds, then objects, then groups of blocks. Round 0 sends each
//! block's source symbols plus the configured repair; every later round sends
//! `k` *fresh* repair symbols per block (continuing where the last round
//! stopped, wrapping only after all `k + R` distinct symbols have gone out).
//! Within a group, symbols go round-robin across blocks, so a burst of lost
//! frames costs each block only its share. An object's ANNOUNCE (no hash yet)
//! or MANIFEST goes first in every round and again every [`manifest_every`]
//! symbols, a MANIFEST as soon as the hash is known, and one closes the
//! object's pass; one whose pass carried fewer than two MANIFESTs is echoed
//! [`ECHOES`] times among the frames that follow. A HEARTBEAT goes out every
//! `heartbeat` interval; at the end, [`END_ROUNDS`] rounds of Done
//! HEARTBEATs and the last objects' MANIFESTs, spread over about a second, so
//! one burst of loss cannot take them all.

use super::code::{CodeError, Codec};
use super::layout::{repair_for_loss, Layout};
use super::wire::{AuthKey, DiodeFrame, HeartbeatRepr, ManifestRepr, SenderState, SymbolRepr};
use super::Manifest;
use crate::time::Duration;
use crate::time::Instant;
use alloc::vec;
use alloc::vec::Vec;

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
/// Source bytes of an object sent as one group of interleaved blocks; the
/// sender holds a group's source and repair. Objects up to this size are one
/// group, so every round sweeps all their blocks and each block gets its
/// fresh symbols early. Bigger objects are sent group after group: a block
/// waits for its group's turn in the next round, which costs the carousel up
/// to a group's worth of frames (measured: 1.5-1.85x the limit for 32 MiB in
/// 32 MiB groups) — the price of bounded memory.
pub const GROUP_BYTES: u64 = 256 << 20;
/// Rounds of end frames (Done HEARTBEATs and the last MANIFESTs) at the end.
pub const END_ROUNDS: u32 = 16;
/// Done HEARTBEATs in each end round.
pub const END_HEARTBEATS: u32 = 3;
/// Gap after the first end round; it doubles each round up to [`END_GAP_MAX`].
pub const END_GAP_FIRST: Duration = Duration::from_millis(1);
/// Longest gap between two end rounds: the end takes about a second.
pub const END_GAP_MAX: Duration = Duration::from_millis(125);
/// Most objects whose MANIFEST is repeated in every end round.
pub const END_MANIFESTS: usize = 8;
/// Extra copies of a MANIFEST whose object's pass carried fewer than two.
pub const ECHOES: u32 = 3;
/// Frames between two echoes of a MANIFEST: longer than any burst the
/// interleaving is meant for.
pub const ECHO_SPACING: u64 = 97;
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
    /// The round to start at: a run that continues an earlier one (with the
    /// same files and redundancy) starts at 1 and sends repair symbols the
    /// earlier run's first pass did not, so a receiver holding that pass's
    /// symbols needs fewer frames of this one.
    pub first_round: u32,
    /// Longest gap between two heartbeats.
    pub heartbeat: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            redundancy: Redundancy::ExpectLoss(0.01),
            rounds: Some(1),
            first_round: 0,
            heartbeat: Duration::from_secs(1),
        }
    }
}

/// One object to send: its manifest and its layout.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Name, size, mode, time; the hash may be `None` until
    /// [`Sender::set_hash`] (a streaming caller hashes while it sends).
    pub manifest: Manifest,
    /// How it is cut into blocks (usually `Layout::choose`).
    pub layout: Layout,
}

/// What [`Sender::poll_frame`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// A raw frame of this many bytes is in the output buffer.
    Frame(usize),
    /// Hand over `len` bytes of object `object` at `offset` (the next
    /// stripe of block `block`, or the rest of it) with
    /// [`Sender::provide_block`], then poll again.
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
    /// Hand over the repair symbols of this block ([`Sender::provide_repair`]
    /// or [`Sender::encode_repair`]), then poll again.
    NeedRepair {
        /// Object number.
        object: u16,
        /// Block number.
        block: u16,
    },
    /// Hand over this object's BLAKE3 ([`Sender::set_hash`]), then poll again.
    NeedHash {
        /// Object number.
        object: u16,
    },
    /// Nothing to send before this time: poll again then.
    Wait(Instant),
    /// Everything is sent.
    Done,
}

/// Blocks of an object of this layout sent together as one group.
pub fn group_blocks(layout: &Layout) -> u16 {
    let block_bytes = u64::from(layout.block_max) * u64::from(layout.symbol_size);
    (GROUP_BYTES / block_bytes.max(1)).clamp(1, u64::from(u16::MAX)) as u16
}

/// Where the schedule stands.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    round: u32,
    object: usize,
    /// First block of the current group.
    group: u16,
    /// Position within the group's round-robin: `i` symbols per block so far, at block `b`.
    i: u32,
    b: u16,
    /// An ANNOUNCE or MANIFEST of this object went out in this pass.
    manifest_sent: bool,
    /// The last one sent in this pass carried the hash.
    hashed_sent: bool,
    /// MANIFESTs (with the hash) sent in this pass.
    hashed_count: u32,
}

/// Source symbols asked for at a time ([`Poll::NeedBlock`]): round 0 sends
/// symbol `i` of every block of a group before symbol `i+1` of any, so the
/// first frame needs only the first stripe of each block, not the group.
pub const STRIPE_SYMBOLS: u64 = 64;

/// One block of the group being sent.
#[derive(Debug, Default)]
struct Slot {
    /// The block's bytes handed over so far; `k·T` once complete (the last
    /// block zero-padded).
    source: Vec<u8>,
    /// Whether every byte of the block is in.
    complete: bool,
    /// `R·T` bytes.
    repair: Option<Vec<u8>>,
}

/// The loaded group: which one, its blocks, and the most symbols any of its
/// blocks sends in the current round.
#[derive(Debug, Default)]
struct Group {
    key: Option<(usize, u16)>,
    end: u16,
    slots: Vec<Slot>,
    max_count: u32,
    max_count_round: Option<u32>,
}

/// An object's first-pass repair for its two block sizes (blocks differ by
/// at most one symbol): computed once, not per frame.
#[derive(Debug, Clone, Copy)]
struct FirstPass {
    k_small: u32,
    r_small: u32,
    r_large: u32,
}

/// A MANIFEST to repeat among later frames.
#[derive(Debug, Clone, Copy)]
struct Echo {
    object: usize,
    left: u32,
    at_frame: u64,
}

/// The end: rounds of Done heartbeats and MANIFESTs, spread in time.
#[derive(Debug, Clone, Default)]
struct Ending {
    round: u32,
    step: usize,
    objects: Vec<usize>,
    not_before: Option<Instant>,
}

/// The one-way sender.
#[derive(Debug)]
pub struct Sender {
    session: u32,
    key: Option<AuthKey>,
    config: SenderConfig,
    objects: Vec<Outgoing>,
    first_pass: Vec<FirstPass>,
    cursor: Cursor,
    group: Group,
    frames_sent: u64,
    symbols_since_manifest: u32,
    last_heartbeat: Option<Instant>,
    echoes: Vec<Echo>,
    ending: Option<Ending>,
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
            first_pass: Vec::new(),
            cursor: Cursor { round: config.first_round, ..Cursor::default() },
            group: Group::default(),
            frames_sent: 0,
            symbols_since_manifest: 0,
            last_heartbeat: None,
            echoes: Vec::new(),
            ending: None,
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
        sender.first_pass = sender
            .objects
            .iter()
            .map(|o| {
                let l = &o.layout;
                let (k, z) = (l.source_symbols(), l.blocks().max(1));
                let k_small = (k / z) as u32;
                let r = |k: u32| sender.repair_for_k(k).min(u32::from(l.repair));
                FirstPass { k_small, r_small: r(k_small), r_large: r(k_small + 1) }
            })
            .collect();
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

    /// The object being sent and the share of its current pass already sent (0..=1).
    pub fn position(&self) -> (u16, f64) {
        let c = &self.cursor;
        let Some(o) = self.objects.get(c.object) else { return (0, 1.0) };
        let blocks = o.layout.blocks().max(1) as f64;
        let g = self.group_end(c.object, c.group).saturating_sub(c.group).max(1);
        let within =
            if self.group.max_count == 0 { 0.0 } else { f64::from(c.i) / f64::from(self.group.max_count) };
        (c.object as u16, ((f64::from(c.group) + within.min(1.0) * f64::from(g)) / blocks).min(1.0))
    }

    /// The session id.
    pub fn session(&self) -> u32 {
        self.session
    }

    /// The layout object `object` is sent with: `R` may have been raised for
    /// the first pass, so a caller encoding repair symbols itself uses this one.
    pub fn layout(&self, object: u16) -> Option<Layout> {
        self.objects.get(usize::from(object)).map(|o| o.layout)
    }

    /// Whether a group, once loaded, is kept for the following rounds: with
    /// one object of one group, the caller reads and encodes it only once.
    pub fn keeps_groups(&self) -> bool {
        self.objects.len() == 1
            && self.objects[0].layout.blocks() <= u64::from(group_blocks(&self.objects[0].layout))
    }

    /// Whether round `round` sends repair symbols of `object` (round 0 only
    /// with first-pass repair): a caller encoding ahead skips blocks that
    /// will never ask.
    pub fn sends_repair(&self, object: u16, round: u32) -> bool {
        let Some(fp) = self.first_pass.get(usize::from(object)) else { return false };
        round > 0 || fp.r_small > 0 || fp.r_large > 0
    }

    /// Repair symbols block `b` of `layout` gets in round 0.
    pub fn first_pass_repair(&self, layout: &Layout, b: u16) -> u32 {
        self.repair_for_k(layout.block_symbols(b).unwrap_or(0)).min(u32::from(layout.repair))
    }

    fn repair_for_k(&self, k: u32) -> u32 {
        match self.config.redundancy {
            Redundancy::Fixed(x) => {
                // ceil without std: the product is small and non-negative.
                let r = k as f32 * x.max(0.0);
                r as u32 + u32::from(r > (r as u32) as f32)
            }
            Redundancy::ExpectLoss(p) => repair_for_loss(k, p, ONE_PASS_FAIL),
        }
    }

    /// Ends the session where it stands: the frames that follow are the end
    /// (Done HEARTBEATs and the last MANIFESTs, as after the last round), then
    /// [`Poll::Done`]. A carousel whose objects changed ends this way before
    /// the next session starts, so receivers hear it finish rather than fall
    /// silent (which they would take for a dead link).
    pub fn finish(&mut self) {
        if !self.finished_rounds() {
            self.config.rounds = Some(self.cursor.round.saturating_sub(self.config.first_round));
        }
    }

    fn finished_rounds(&self) -> bool {
        self.config.rounds.is_some_and(|n| self.cursor.round >= self.config.first_round.saturating_add(n))
            || self.objects.is_empty()
    }

    /// Source symbols and first-pass repair of block `b` of object `o`.
    fn k_r0(&self, o: usize, b: u16) -> (u32, u32) {
        let fp = self.first_pass[o];
        let k = self.objects[o].layout.block_symbols(b).unwrap_or(0);
        (k, if k == fp.k_small { fp.r_small } else { fp.r_large })
    }

    /// Symbols block `b` of object `o` sends in round `round`.
    fn count(&self, o: usize, b: u16, round: u32) -> u32 {
        let (k, r0) = self.k_r0(o, b);
        if round == 0 {
            k + r0
        } else {
            k
        }
    }

    /// The symbol id of the `i`-th symbol of block `b` of object `o` in round `round`.
    fn esi(&self, o: usize, b: u16, round: u32, i: u32) -> u16 {
        if round == 0 {
            return i as u16;
        }
        let (k, r0) = self.k_r0(o, b);
        let total = u64::from(k) + u64::from(self.objects[o].layout.repair);
        let first = u64::from(k + r0);
        ((first + u64::from(round - 1) * u64::from(k) + u64::from(i)) % total) as u16
    }

    fn group_end(&self, o: usize, group: u16) -> u16 {
        let Some(obj) = self.objects.get(o) else { return group };
        (u64::from(group) + u64::from(group_blocks(&obj.layout))).min(obj.layout.blocks()) as u16
    }

    fn slot_mut(&mut self, object: u16, block: u16) -> Result<&mut Slot, CodeError> {
        let o = usize::from(object);
        match self.group.key {
            Some((go, start)) if go == o && block >= start && block < self.group.end => {
                self.group.slots.get_mut(usize::from(block - start)).ok_or(CodeError::BadBlock)
            }
            _ => Err(CodeError::BadBlock),
        }
    }

    /// Hands over bytes of a block: those asked for by [`Poll::NeedBlock`]
    /// (they start at its `offset`), or more of the block, up to all of it.
    /// The first hand-over of a whole block takes a `Vec` without a copy.
    pub fn provide_block(
        &mut self,
        object: u16,
        block: u16,
        bytes: impl Into<Vec<u8>>,
    ) -> Result<(), CodeError> {
        let layout = self.layout(object).ok_or(CodeError::BadBlock)?;
        let k = layout.block_symbols(block).ok_or(CodeError::BadBlock)? as usize;
        let total = layout.block_bytes(block) as usize;
        let bytes = bytes.into();
        let slot = self.slot_mut(object, block)?;
        if slot.complete || slot.source.len() + bytes.len() > total || bytes.is_empty() {
            return Err(CodeError::BadBlock);
        }
        if slot.source.is_empty() {
            slot.source = bytes;
        } else {
            slot.source.extend_from_slice(&bytes);
        }
        if slot.source.len() == total {
            slot.source.resize(k * usize::from(layout.symbol_size), 0);
            slot.complete = true;
        }
        Ok(())
    }

    /// Hands over a block's `R` repair symbols (`R·T` bytes, from
    /// [`super::Codec::encode_repair`] with [`Sender::layout`]). Repair for a
    /// block not in the current group is refused (it came too late or too early).
    pub fn provide_repair(&mut self, object: u16, block: u16, repair: Vec<u8>) -> Result<(), CodeError> {
        let layout = self.layout(object).ok_or(CodeError::BadBlock)?;
        if repair.len() != usize::from(layout.repair) * usize::from(layout.symbol_size) {
            return Err(CodeError::BadSymbol);
        }
        self.slot_mut(object, block)?.repair = Some(repair);
        Ok(())
    }

    /// Encodes a block's repair symbols here, from the bytes handed over.
    pub fn encode_repair(&mut self, object: u16, block: u16) -> Result<(), CodeError> {
        let layout = self.layout(object).ok_or(CodeError::BadBlock)?;
        let len = layout.block_bytes(block) as usize;
        let slot = self.slot_mut(object, block)?;
        if !slot.complete {
            return Err(CodeError::BadBlock);
        }
        let source = core::mem::take(&mut slot.source);
        let repair = self.codec.encode_repair(&layout, block, &source[..len]);
        let slot = self.slot_mut(object, block)?;
        slot.source = source;
        slot.repair = Some(repair?);
        Ok(())
    }

    /// Sets an object's BLAKE3 once it is known; the next MANIFEST carries it.
    pub fn set_hash(&mut self, object: u16, hash: [u8; 32]) {
        if let Some(o) = self.objects.get_mut(usize::from(object)) {
            o.manifest.hash = Some(hash);
        }
    }

    /// The next frame to send, written into `out` (at least
    /// [`super::wire::MAX_FRAME`] bytes), or what the sender needs first.
    pub fn poll_frame(&mut self, now: Instant, out: &mut [u8]) -> Poll {
        if self.finished_rounds() {
            return self.poll_end(now, out);
        }
        if self.last_heartbeat.is_none_or(|t| now.since(t) >= self.config.heartbeat) {
            return self.heartbeat(now, SenderState::Sending, out);
        }
        if let Some(i) = self.echoes.iter().position(|e| e.at_frame <= self.frames_sent) {
            let e = &mut self.echoes[i];
            let object = e.object;
            e.left -= 1;
            e.at_frame = self.frames_sent + ECHO_SPACING;
            if e.left == 0 {
                self.echoes.remove(i);
            }
            return self.manifest(object, out);
        }
        loop {
            if self.finished_rounds() {
                return self.poll_end(now, out);
            }
            let c = self.cursor;
            let layout = self.objects[c.object].layout;
            let hashed = self.objects[c.object].manifest.hash.is_some();
            let periodic = self.symbols_since_manifest >= manifest_every(layout.source_symbols());
            if !c.manifest_sent || periodic || (hashed && !c.hashed_sent) {
                return self.manifest(c.object, out);
            }
            let blocks = layout.blocks();
            if u64::from(c.group) >= blocks {
                // A MANIFEST with the hash closes the object's pass.
                if !hashed {
                    return Poll::NeedHash { object: c.object as u16 };
                }
                let (object, echo) = (c.object, c.hashed_count < 2 && blocks > 0);
                self.next_object();
                if echo {
                    self.echoes.retain(|e| e.object != object);
                    self.echoes.push(Echo {
                        object,
                        left: ECHOES,
                        at_frame: self.frames_sent + ECHO_SPACING,
                    });
                }
                if blocks > 0 {
                    return self.manifest(object, out);
                }
                continue;
            }
            // Make sure the group is loaded.
            let group_end = self.group_end(c.object, c.group);
            if self.group.key != Some((c.object, c.group)) {
                self.group = Group {
                    key: Some((c.object, c.group)),
                    end: group_end,
                    slots: (c.group..group_end).map(|_| Slot::default()).collect(),
                    ..Group::default()
                };
            }
            if self.group.max_count_round != Some(c.round) {
                self.group.max_count =
                    (c.group..group_end).map(|b| self.count(c.object, b, c.round)).max().unwrap_or(0);
                self.group.max_count_round = Some(c.round);
            }
            // Round-robin: the i-th symbol of each block in the group, skipping
            // blocks that have sent their count.
            if c.i >= self.group.max_count {
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
            if c.i >= self.count(c.object, b, c.round) {
                self.cursor.b = b + 1;
                continue;
            }
            let esi = self.esi(c.object, b, c.round, c.i);
            let k = layout.block_symbols(b).unwrap_or(0);
            let slot = &self.group.slots[usize::from(b - c.group)];
            let t = usize::from(layout.symbol_size);
            let have = slot.source.len() as u64;
            let need_bytes = |len: u64| Poll::NeedBlock {
                object: c.object as u16,
                block: b,
                offset: layout.block_offset(b) + have,
                len: len.min(layout.block_bytes(b) - have),
            };
            let data = if u32::from(esi) < k {
                let end = (usize::from(esi) + 1) * t;
                if !slot.complete && slot.source.len() < end {
                    // The next stripe of this block's bytes.
                    return need_bytes((STRIPE_SYMBOLS * t as u64).max(end as u64 - have));
                }
                &slot.source[usize::from(esi) * t..end]
            } else {
                let j = usize::from(esi) - k as usize;
                match slot.repair.as_deref() {
                    Some(r) => &r[j * t..][..t],
                    // Repair needs the whole block first.
                    None if !slot.complete => return need_bytes(u64::MAX),
                    None => return Poll::NeedRepair { object: c.object as u16, block: b },
                }
            };
            self.cursor.b = b + 1;
            self.symbols_since_manifest += 1;
            let frame =
                DiodeFrame::Symbol(SymbolRepr { object: c.object as u16, layout, block: b, esi, data });
            return emit_counted(self.session, self.key.as_ref(), &mut self.frames_sent, frame, out);
        }
    }

    /// The end: [`END_ROUNDS`] rounds of Done heartbeats and MANIFESTs of the
    /// last objects, the gap between rounds doubling from [`END_GAP_FIRST`].
    fn poll_end(&mut self, now: Instant, out: &mut [u8]) -> Poll {
        if self.ending.is_none() {
            self.group = Group::default();
            let mut objects: Vec<usize> = self.echoes.iter().map(|e| e.object).collect();
            if let Some(last) = self.objects.len().checked_sub(1) {
                if !objects.contains(&last) {
                    objects.push(last);
                }
            }
            let keep = objects.len().saturating_sub(END_MANIFESTS);
            objects.drain(..keep);
            self.ending = Some(Ending { objects, ..Ending::default() });
        }
        let e = self.ending.as_mut().expect("set above");
        if e.round >= END_ROUNDS {
            return Poll::Done;
        }
        if let Some(t) = e.not_before {
            if now < t {
                return Poll::Wait(t);
            }
            e.not_before = None;
        }
        let step = e.step;
        e.step += 1;
        let beats = END_HEARTBEATS as usize;
        if step < beats {
            return self.heartbeat(now, SenderState::Done, out);
        }
        if let Some(&object) = e.objects.get(step - beats) {
            if self.objects[object].manifest.hash.is_some() {
                return self.manifest(object, out);
            }
            return self.poll_end(now, out);
        }
        let gap = END_GAP_FIRST.saturating_mul(1u32 << e.round.min(16)).min(END_GAP_MAX);
        e.round += 1;
        e.step = 0;
        e.not_before = Some(now + gap);
        self.poll_end(now, out)
    }

    fn manifest(&mut self, object: usize, out: &mut [u8]) -> Poll {
        let m = &self.objects[object].manifest;
        if object == self.cursor.object {
            self.symbols_since_manifest = 0;
            self.cursor.manifest_sent = true;
            self.cursor.hashed_sent = m.hash.is_some();
            self.cursor.hashed_count += u32::from(m.hash.is_some());
        }
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
        let c = &mut self.cursor;
        let round = c.round + u32::from(c.object + 1 >= self.objects.len());
        let object = if c.object + 1 >= self.objects.len() { 0 } else { c.object + 1 };
        *c = Cursor { round, object, ..Cursor::default() };
        self.symbols_since_manifest = 0;
        // A group is kept across rounds only when it is the session's only one.
        if !self.keeps_groups() {
            self.group = Group::default();
        }
    }

    fn heartbeat(&mut self, now: Instant, state: SenderState, out: &mut [u8]) -> Poll {
        self.last_heartbeat = Some(now);
        let f = DiodeFrame::Heartbeat(HeartbeatRepr {
            objects: self.objects.len() as u16,
            state,
            interval_ms: self.config.heartbeat.as_millis().min(u64::from(u16::MAX)) as u16,
            round: self.cursor.round,
            frames_sent: self.frames_sent,
        });
        emit_counted(self.session, self.key.as_ref(), &mut self.frames_sent, f, out)
    }
}

/// Writes `f` into `out` and counts it. A free function over the fields it
/// needs, so a frame that borrows the sender's objects or blocks can be
/// emitted without copying them out first.
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

/// Drives a sender to the end against bytes in memory, encoding repair and
/// hashing here: for tests, simulations and benchmarks. `deliver` gets each
/// frame and the time it was sent (`step` apart); waits advance the clock.
/// Stops early when `deliver` returns false. Returns the frames sent.
pub fn run_in_memory(
    tx: &mut Sender,
    contents: &[&[u8]],
    step: Duration,
    mut deliver: impl FnMut(Instant, &[u8]) -> bool,
) -> u64 {
    let mut out = vec![0u8; super::wire::MAX_FRAME];
    let mut now = Instant::ZERO;
    loop {
        match tx.poll_frame(now, &mut out) {
            Poll::Frame(n) => {
                now = now + step;
                if !deliver(now, &out[..n]) {
                    return tx.frames_sent();
                }
            }
            Poll::NeedBlock { object, block, offset, len } => {
                let content = contents[usize::from(object)];
                let bytes = &content[offset as usize..(offset + len) as usize];
                tx.provide_block(object, block, bytes).expect("the block asked for");
                // As a streaming caller would: the hash is known once the last block is read.
                if offset + len == content.len() as u64 {
                    tx.set_hash(object, *blake3::hash(content).as_bytes());
                }
            }
            Poll::NeedRepair { object, block } => tx.encode_repair(object, block).expect("a loaded block"),
            Poll::NeedHash { object } => {
                tx.set_hash(object, *blake3::hash(contents[usize::from(object)]).as_bytes())
            }
            Poll::Wait(t) => now = t,
            Poll::Done => return tx.frames_sent(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diode::wire::{parse, DiodeType};
    use alloc::string::ToString;

    fn sender(size: usize, config: SenderConfig, hashed: bool) -> (Sender, Vec<u8>) {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let manifest = Manifest {
            object: 0,
            objects: 1,
            size: size as u64,
            mode: 0o644,
            mtime: 0,
            hash: hashed.then(|| *blake3::hash(&bytes).as_bytes()),
            name: "f".to_string(),
        };
        let layout = Layout::choose(size as u64, 64).unwrap();
        (Sender::new(5, vec![Outgoing { manifest, layout }], config, None).unwrap(), bytes)
    }

    fn kinds(tx: &mut Sender, bytes: &[u8]) -> Vec<(Instant, DiodeType, Option<SenderState>)> {
        let mut v = Vec::new();
        run_in_memory(tx, &[bytes], Duration::from_micros(10), |now, f| {
            let (h, frame) = parse(f, None).unwrap();
            let state = match frame {
                DiodeFrame::Heartbeat(h) => Some(h.state),
                _ => None,
            };
            v.push((now, h.kind, state));
            true
        });
        v
    }

    #[test]
    fn a_streamed_object_is_announced_then_its_hash_follows() {
        let (mut tx, bytes) = sender(100_000, SenderConfig::default(), false);
        let v = kinds(&mut tx, &bytes);
        // The first symbol follows the ANNOUNCE at once (one stripe of each
        // block is enough); the hash is handed over once the last stripe is
        // read, the MANIFEST follows, and no ANNOUNCE after it.
        assert_eq!(v.iter().position(|f| f.1 == DiodeType::Announce), Some(1));
        assert_eq!(v.iter().position(|f| f.1 == DiodeType::Symbol), Some(2));
        let first_manifest = v.iter().position(|f| f.1 == DiodeType::Manifest).unwrap();
        assert!(first_manifest > 100_000 / 64 - 64, "{first_manifest}");
        assert!(v[first_manifest..].iter().all(|f| f.1 != DiodeType::Announce));
        // Without the hash until the end of the pass, it is asked for there.
        let (mut tx, bytes) = sender(100_000, SenderConfig::default(), false);
        let mut out = vec![0u8; crate::diode::wire::MAX_FRAME];
        let mut symbols = 0;
        let asked = loop {
            match tx.poll_frame(Instant::ZERO, &mut out) {
                Poll::NeedBlock { object, block, offset, len } => {
                    tx.provide_block(object, block, &bytes[offset as usize..][..len as usize]).unwrap()
                }
                Poll::NeedRepair { object, block } => tx.encode_repair(object, block).unwrap(),
                Poll::Frame(n) => {
                    symbols += usize::from(parse(&out[..n], None).unwrap().0.kind == DiodeType::Symbol)
                }
                other => break other,
            }
        };
        assert_eq!(asked, Poll::NeedHash { object: 0 });
        assert!(symbols >= 100_000 / 64, "{symbols}");
    }

    #[test]
    fn the_end_is_spread_over_time_and_over_many_frames() {
        let (mut tx, bytes) = sender(10_000, SenderConfig::default(), true);
        let v = kinds(&mut tx, &bytes);
        let done: Vec<_> = v.iter().filter(|f| f.2 == Some(SenderState::Done)).collect();
        assert_eq!(done.len() as u32, END_ROUNDS * END_HEARTBEATS);
        let span = done.last().unwrap().0.since(done[0].0);
        assert!(span >= Duration::from_millis(500), "{span:?}");
        // Every end round repeats the last object's MANIFEST too.
        let first_done = v.iter().position(|f| f.2 == Some(SenderState::Done)).unwrap();
        let manifests = v[first_done..].iter().filter(|f| f.1 == DiodeType::Manifest).count();
        assert_eq!(manifests as u32, END_ROUNDS);
    }

    #[test]
    fn a_carousel_told_to_finish_ends_like_a_last_round() {
        let (mut tx, bytes) = sender(10_000, SenderConfig { rounds: None, ..SenderConfig::default() }, false);
        let mut v = Vec::new();
        run_in_memory(&mut tx, &[&bytes], Duration::from_micros(10), |_, f| {
            v.push(parse(f, None).unwrap().0.kind);
            v.len() < 500
        });
        assert!(tx.round() >= 1, "a few passes went out first");
        tx.finish();
        let end = kinds(&mut tx, &bytes);
        assert!(end.iter().all(|f| f.1 != DiodeType::Symbol), "no symbol after finish");
        let done = end.iter().filter(|f| f.2 == Some(SenderState::Done)).count();
        assert_eq!(done as u32, END_ROUNDS * END_HEARTBEATS);
        assert_eq!(tx.poll_frame(Instant::from_micros(1 << 40), &mut [0u8; 9000]), Poll::Done);
    }

    #[test]
    fn per_frame_work_does_not_grow_with_the_blocks() {
        // 64 blocks in one group, one pass with repair for 10% loss: the
        // first-pass repair is computed once per block size, not per frame.
        let (mut tx, bytes) = sender(
            64 * 4096 * 64,
            SenderConfig { redundancy: Redundancy::ExpectLoss(0.1), ..SenderConfig::default() },
            true,
        );
        let n = run_in_memory(&mut tx, &[&bytes], Duration::from_micros(1), |_, _| true);
        assert!(n > 64 * 4096, "{n}");
    }
}
