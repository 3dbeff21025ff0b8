//! Spec section 13.7: the receiver — which frames it takes, when a block is
//! decoded and when an object is complete.
//!
//! The receiver keeps only bookkeeping (which symbols of which block it holds);
//! the bytes go to a [`Store`] the caller provides — memory in tests and
//! benchmarks, files on disk in `strand diode-rx` — so the same logic serves
//! both and a restarted receiver can [`Receiver::restore`] what its store kept.

use super::code::{CodeError, Codec};
use super::layout::Layout;
use super::wire::{self, AuthKey, DiodeError, DiodeFrame, SenderState};
use super::{safe_name, Manifest, ObjectKey};
use crate::time::Duration;
use crate::time::Instant;
use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

/// Where a receiver keeps symbols and decoded bytes.
pub trait Store {
    /// The store's error (I/O).
    type Error;
    /// Keeps one symbol of a block not yet decoded.
    fn put_symbol(
        &mut self,
        key: ObjectKey,
        layout: &Layout,
        block: u16,
        esi: u16,
        data: &[u8],
    ) -> Result<(), Self::Error>;
    /// Returns the kept symbols of a block (to decode it) and forgets them.
    fn take_symbols(&mut self, key: ObjectKey, block: u16) -> Result<Vec<(u16, Vec<u8>)>, Self::Error>;
    /// Writes a decoded block's bytes at byte `offset` of the object.
    fn put_block(
        &mut self,
        key: ObjectKey,
        layout: &Layout,
        offset: u64,
        data: &[u8],
    ) -> Result<(), Self::Error>;
    /// Reads back a decoded block's bytes (to hand them to the same content
    /// sent again under a new session).
    fn read_block(&mut self, key: ObjectKey, layout: &Layout, block: u16) -> Result<Vec<u8>, Self::Error>;
    /// Every byte is in and the manifest known: check the content against
    /// `manifest.hash` and, if it matches, publish it under `manifest.name`
    /// (atomically). Returns whether the hash matched.
    fn commit(&mut self, key: ObjectKey, manifest: &Manifest) -> Result<bool, Self::Error>;
    /// Forgets everything kept for an object.
    fn discard(&mut self, key: ObjectKey) -> Result<(), Self::Error>;
    /// Whether the store holds every source symbol of `block` where the
    /// block's bytes go (a store that writes source symbols in place): then
    /// the block needs no decoding, and a store that answers yes has recorded
    /// it as decoded. The default keeps symbols apart and says no.
    fn source_complete(&mut self, key: ObjectKey, layout: &Layout, block: u16) -> Result<bool, Self::Error> {
        let _ = (key, layout, block);
        Ok(false)
    }
    /// Takes over decoding `block`, which holds `k` symbols: a store that
    /// can decode away from the caller (on other threads, so the receiver
    /// goes on taking frames) takes the block's symbols now and answers
    /// yes; it then has the block's bytes in place before anything reads
    /// them back ([`Store::read_block`], [`Store::commit`]), and a decode
    /// that fails there makes `commit` answer false (never a wrong
    /// object). The default says no: the receiver decodes the block at once
    /// ([`Store::take_symbols`], then [`Store::put_block`]).
    fn decode_later(&mut self, key: ObjectKey, layout: &Layout, block: u16) -> Result<bool, Self::Error> {
        let _ = (key, layout, block);
        Ok(false)
    }
    /// Whether the object `manifest` describes (with its hash) is already
    /// published, byte for byte: then nothing more of it is needed.
    fn already_have(&mut self, manifest: &Manifest) -> Result<bool, Self::Error> {
        let _ = manifest;
        Ok(false)
    }
}

/// Limits that keep a hostile or broken sender from exhausting the receiver.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest object accepted.
    pub max_object: u64,
    /// Most bytes of unfinished objects tracked at once (their declared sizes summed).
    pub max_pending: u64,
    /// Most unfinished objects tracked at once.
    pub max_objects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_object: 16 << 30, max_pending: 64 << 30, max_objects: 4096 }
    }
}

/// Per-block bookkeeping.
#[derive(Debug, Clone, Default)]
struct BlockState {
    /// One bit per symbol id (source and repair); allocated on first symbol.
    have: Vec<u64>,
    count: u32,
    decoded: bool,
}

/// Per-object bookkeeping.
#[derive(Debug, Clone, Default)]
struct ObjectState {
    layout: Option<Layout>,
    manifest: Option<Manifest>,
    blocks: Vec<BlockState>,
    decoded: u64,
    committed: bool,
    failed: bool,
    /// Handed over to the same content under a later session, or superseded
    /// by another content under the same name: no longer reported.
    merged: bool,
    /// The store was asked whether it already has this content.
    checked_existing: bool,
    /// Earlier sessions' copies of this content were looked for.
    adopt_done: bool,
}

impl ObjectState {
    fn all_decoded(&self) -> bool {
        match (&self.layout, &self.manifest) {
            (Some(l), _) => self.decoded == l.blocks(),
            (None, Some(m)) => m.size == 0,
            _ => false,
        }
    }

    fn missing_symbols(&self) -> Option<u64> {
        let l = self.layout?;
        Some(
            (0..l.blocks() as u16)
                .map(|b| {
                    let s = self.blocks.get(usize::from(b));
                    if s.is_some_and(|s| s.decoded) {
                        0
                    } else {
                        u64::from(l.block_symbols(b).unwrap_or(0)) - u64::from(s.map_or(0, |s| s.count))
                    }
                })
                .sum(),
        )
    }
}

/// What a sender session has told us about itself.
#[derive(Debug, Clone, Copy, Default)]
struct SessionState {
    objects: Option<u16>,
    first_frame: Option<Instant>,
    last_frame: Option<Instant>,
    last_symbol: Option<Instant>,
    heartbeat: Option<(Instant, u16, SenderState)>,
    frames_received: u64,
    frames_sent: u64,
    /// Frames received when the latest heartbeat (by its count) arrived.
    received_at_heartbeat: u64,
}

/// What one frame did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new symbol was kept.
    Symbol,
    /// A symbol we already hold, or of a block already decoded.
    Duplicate,
    /// A block was decoded.
    BlockDecoded,
    /// An object was verified and published.
    Committed(ObjectKey),
    /// An object's content is already published (an earlier run, another
    /// session): nothing more of it is needed.
    AlreadyComplete(ObjectKey),
    /// An object decoded but did not match its manifest's hash; it was discarded.
    HashMismatch(ObjectKey),
    /// A manifest (new or repeated).
    Manifest,
    /// A heartbeat.
    Heartbeat,
    /// Dropped: an object beyond the receiver's limits.
    OverLimit,
}

/// Counters, for `--stats` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Frames that parsed and verified.
    pub frames: u64,
    /// Frames that failed the CRC (erasures).
    pub crc_errors: u64,
    /// Frames refused for failing authentication.
    pub auth_failures: u64,
    /// Frames refused otherwise (not diode, malformed, inconsistent, unsafe name).
    pub invalid: u64,
    /// Symbols kept.
    pub symbols: u64,
    /// Symbols already held.
    pub duplicates: u64,
    /// Blocks decoded.
    pub blocks_decoded: u64,
    /// Objects published.
    pub committed: u64,
    /// Objects dropped for a hash mismatch.
    pub hash_mismatches: u64,
    /// Frames dropped for the limits.
    pub over_limit: u64,
    /// Symbols and decoded blocks taken over from an earlier session's
    /// partial copy of the same content.
    pub adopted: u64,
    /// Objects found already published when their hash arrived.
    pub already_complete: u64,
}

/// How far an object got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Verified and published.
    Complete,
    /// Partly received: this many more symbols are needed (`None`: no symbol
    /// seen yet, so the count is unknown), and whether the manifest is known.
    Partial {
        /// Symbols still missing (at least), if any symbol was seen.
        missing: Option<u64>,
        /// Whether the manifest was received.
        manifest: bool,
    },
    /// Decoded but its hash did not match; discarded.
    Corrupt,
    /// Announced by the session (its object count) but no frame of it arrived.
    NeverSeen,
}

/// One line of the receiver's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectReport {
    /// Session and object number.
    pub key: ObjectKey,
    /// Name, if the manifest arrived.
    pub name: Option<alloc::string::String>,
    /// Size, if known.
    pub size: Option<u64>,
    /// Where it stands.
    pub status: Status,
}

/// What an unfinished object still lacks (for the receiver's report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// Blocks in the object.
    pub blocks: u64,
    /// Blocks not yet decoded.
    pub blocks_missing: u64,
    /// Symbols still needed, summed over those blocks.
    pub symbols_missing: u64,
    /// Symbols the block furthest from decoding still needs ...
    pub worst_missing: u32,
    /// ... of the source symbols that block has.
    pub worst_k: u32,
}

/// Liveness of a sender session, from the receiver's side (13.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Frames are arriving.
    Active,
    /// Heartbeats arrive but no symbols: the sender is alive with nothing to send.
    SenderSilent,
    /// The sender said it has finished.
    Finished,
    /// Nothing has arrived for three heartbeat intervals: the line (or the sender) is dead.
    LinkDead,
}

/// The one-way receiver.
#[derive(Debug, Default)]
pub struct Receiver {
    key: Option<AuthKey>,
    limits: Limits,
    objects: BTreeMap<ObjectKey, ObjectState>,
    sessions: BTreeMap<u32, SessionState>,
    stats: RxStats,
    codec: Codec,
}

impl Receiver {
    /// A receiver; with `key`, only frames authenticated under it are taken.
    pub fn new(key: Option<AuthKey>, limits: Limits) -> Receiver {
        Receiver { key, limits, ..Receiver::default() }
    }

    /// Counters so far.
    pub fn stats(&self) -> RxStats {
        self.stats
    }

    /// Restores what a store kept across a restart: an object's layout (if
    /// any symbol was seen), manifest, decoded blocks, and the symbols kept
    /// of undecoded blocks.
    pub fn restore(
        &mut self,
        key: ObjectKey,
        layout: Option<Layout>,
        manifest: Option<Manifest>,
        decoded: &[u16],
        symbols: &[(u16, u16)],
    ) {
        let o = self.objects.entry(key).or_default();
        if let Some(l) = layout.filter(|l| l.valid()) {
            o.layout = Some(l);
            o.blocks = vec![BlockState::default(); l.blocks() as usize];
            for &b in decoded {
                if let Some(s) = o.blocks.get_mut(usize::from(b)) {
                    if !s.decoded {
                        s.decoded = true;
                        o.decoded += 1;
                    }
                }
            }
            for &(b, esi) in symbols {
                mark(o, &l, b, esi);
            }
        }
        if manifest.is_some() {
            o.manifest = manifest;
        }
        let s = self.sessions.entry(key.session).or_default();
        if let Some(m) = &o.manifest {
            s.objects = Some(m.objects);
        }
    }

    /// Restores an object a store published in an earlier run, so a
    /// restarted receiver counts it complete instead of never seen.
    pub fn restore_complete(&mut self, key: ObjectKey, manifest: Manifest) {
        let s = self.sessions.entry(key.session).or_default();
        s.objects = Some(manifest.objects);
        let o = self.objects.entry(key).or_default();
        o.manifest = Some(manifest);
        o.committed = true;
        o.checked_existing = true;
    }

    /// Takes one raw frame (after deframing, and after in-frame FEC repair
    /// on byte streams) received at `now`.
    pub fn handle_frame<S: Store>(
        &mut self,
        now: Instant,
        raw: &[u8],
        store: &mut S,
    ) -> Result<Outcome, Rejected<S::Error>> {
        let (header, frame) = match wire::parse(raw, self.key.as_ref()) {
            Ok(x) => x,
            Err(e) => {
                match e {
                    DiodeError::BadCrc => self.stats.crc_errors += 1,
                    DiodeError::BadTag | DiodeError::UnknownKey => self.stats.auth_failures += 1,
                    _ => self.stats.invalid += 1,
                }
                return Err(Rejected::Frame(e));
            }
        };
        self.stats.frames += 1;
        let session = self.sessions.entry(header.session).or_default();
        session.first_frame.get_or_insert(now);
        session.last_frame = Some(now);
        session.frames_received += 1;
        match frame {
            DiodeFrame::Heartbeat(h) => {
                session.objects = Some(h.objects);
                session.heartbeat = Some((now, h.interval_ms, h.state));
                if h.frames_sent + 1 > session.frames_sent {
                    session.frames_sent = h.frames_sent + 1;
                    session.received_at_heartbeat = session.frames_received;
                }
                Ok(Outcome::Heartbeat)
            }
            DiodeFrame::Manifest(m) => {
                if !safe_name(m.name) {
                    self.stats.invalid += 1;
                    return Err(Rejected::Frame(DiodeError::BadField));
                }
                session.objects = Some(m.objects);
                let key = ObjectKey { session: header.session, object: m.object };
                let manifest = Manifest {
                    object: m.object,
                    objects: m.objects,
                    size: m.size,
                    mode: m.mode,
                    mtime: m.mtime,
                    hash: m.hash,
                    name: m.name.to_string(),
                };
                if !self.objects.contains_key(&key) && !self.admit(m.size) {
                    self.stats.over_limit += 1;
                    return Ok(Outcome::OverLimit);
                }
                let o = self.objects.entry(key).or_default();
                match (&o.manifest, &o.layout) {
                    (Some(old), _) if !old.agrees_with(&manifest) => {
                        self.stats.invalid += 1;
                        return Err(Rejected::Frame(DiodeError::BadField));
                    }
                    (_, Some(l)) if l.size != manifest.size => {
                        self.stats.invalid += 1;
                        return Err(Rejected::Frame(DiodeError::BadField));
                    }
                    _ => {}
                }
                // A repeat, or an ANNOUNCE after the MANIFEST, changes nothing.
                let repeat =
                    o.manifest.as_ref().is_some_and(|old| old.hash.is_some() || manifest.hash.is_none());
                if !repeat {
                    o.manifest = Some(manifest);
                }
                if let Some(done) = self.check_existing(key, store)? {
                    return Ok(done);
                }
                self.adopt_earlier(key, store)?;
                self.try_commit(key, store).map(|c| c.unwrap_or(Outcome::Manifest))
            }
            DiodeFrame::Symbol(s) => {
                session.last_symbol = Some(now);
                let key = ObjectKey { session: header.session, object: s.object };
                if !self.objects.contains_key(&key) && !self.admit(s.layout.size) {
                    self.stats.over_limit += 1;
                    return Ok(Outcome::OverLimit);
                }
                let o = self.objects.entry(key).or_default();
                if o.committed || o.failed || o.merged {
                    self.stats.duplicates += 1;
                    return Ok(Outcome::Duplicate);
                }
                let first_symbol = o.layout.is_none();
                match (&o.layout, &o.manifest) {
                    (Some(l), _) if *l != s.layout => {
                        self.stats.invalid += 1;
                        return Err(Rejected::Frame(DiodeError::BadField));
                    }
                    (None, Some(m)) if m.size != s.layout.size => {
                        self.stats.invalid += 1;
                        return Err(Rejected::Frame(DiodeError::BadField));
                    }
                    (None, _) => {
                        o.layout = Some(s.layout);
                        o.blocks = vec![BlockState::default(); s.layout.blocks() as usize];
                    }
                    _ => {}
                }
                let l = s.layout;
                if first_symbol && o.manifest.as_ref().is_some_and(|m| m.hash.is_some()) {
                    // The hash came first: an earlier session's copy can be taken over now.
                    self.adopt_earlier(key, store)?;
                    let o = self.objects.get_mut(&key).expect("inserted above");
                    if o.blocks.get(usize::from(s.block)).is_some_and(|b| b.decoded) {
                        self.stats.duplicates += 1;
                        return self.try_commit(key, store).map(|c| c.unwrap_or(Outcome::Duplicate));
                    }
                }
                let o = self.objects.get_mut(&key).expect("inserted above");
                if !mark(o, &l, s.block, s.esi) {
                    self.stats.duplicates += 1;
                    return Ok(Outcome::Duplicate);
                }
                self.stats.symbols += 1;
                store.put_symbol(key, &l, s.block, s.esi, s.data).map_err(Rejected::Store)?;
                let k = l.block_symbols(s.block).unwrap_or(0);
                if o.blocks[usize::from(s.block)].count < k {
                    return Ok(Outcome::Symbol);
                }
                self.decode_block(key, &l, s.block, store)?;
                self.try_commit(key, store).map(|c| c.unwrap_or(Outcome::BlockDecoded))
            }
        }
    }

    /// A block holds `k` symbols: decodes it, writes its bytes, drops its symbols.
    fn decode_block<S: Store>(
        &mut self,
        key: ObjectKey,
        l: &Layout,
        block: u16,
        store: &mut S,
    ) -> Result<(), Rejected<S::Error>> {
        let k = l.block_symbols(block).unwrap_or(0) as usize;
        let all_source = self.objects[&key]
            .blocks
            .get(usize::from(block))
            .is_some_and(|b| (0..k).all(|e| b.have.get(e / 64).is_some_and(|w| w & (1 << (e % 64)) != 0)));
        let in_place = all_source && store.source_complete(key, l, block).map_err(Rejected::Store)?;
        if !in_place && !store.decode_later(key, l, block).map_err(Rejected::Store)? {
            let symbols = store.take_symbols(key, block).map_err(Rejected::Store)?;
            let bytes = self
                .codec
                .decode(l, block, symbols.iter().map(|(e, d)| (*e, &d[..])))
                .map_err(Rejected::Code)?;
            store.put_block(key, l, l.block_offset(block), &bytes).map_err(Rejected::Store)?;
        }
        let o = self.objects.get_mut(&key).expect("the caller holds it");
        let b = &mut o.blocks[usize::from(block)];
        b.decoded = true;
        b.have = Vec::new();
        o.decoded += 1;
        self.stats.blocks_decoded += 1;
        Ok(())
    }

    /// Once an object's hash is known: if the store already has that content
    /// under its name, the object is complete without another frame.
    fn check_existing<S: Store>(
        &mut self,
        key: ObjectKey,
        store: &mut S,
    ) -> Result<Option<Outcome>, Rejected<S::Error>> {
        let Some(o) = self.objects.get_mut(&key) else { return Ok(None) };
        let Some(m) = o.manifest.as_ref().filter(|m| m.hash.is_some()) else { return Ok(None) };
        if o.committed || o.failed || o.checked_existing {
            return Ok(None);
        }
        o.checked_existing = true;
        if !store.already_have(m).map_err(Rejected::Store)? {
            return Ok(None);
        }
        o.committed = true;
        o.blocks = Vec::new();
        self.stats.already_complete += 1;
        store.discard(key).map_err(Rejected::Store)?;
        Ok(Some(Outcome::AlreadyComplete(key)))
    }

    /// Takes over what earlier sessions hold of the same content (same hash,
    /// same partition into blocks): their decoded blocks, their source
    /// symbols, and their repair symbols when the code and `R` agree (13.7).
    /// An earlier partial object of the same name but another hash is
    /// superseded and dropped. Needs this object's hash and layout.
    fn adopt_earlier<S: Store>(&mut self, into: ObjectKey, store: &mut S) -> Result<(), Rejected<S::Error>> {
        let Some(o) = self.objects.get(&into) else { return Ok(()) };
        let (Some(m), Some(l)) = (o.manifest.clone(), o.layout) else { return Ok(()) };
        let Some(hash) = m.hash else { return Ok(()) };
        if o.committed || o.failed || o.merged || o.adopt_done {
            return Ok(());
        }
        self.objects.get_mut(&into).expect("held").adopt_done = true;
        let earlier: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|(k, x)| k.session != into.session && !x.committed && !x.failed && !x.merged)
            .filter(|(_, x)| {
                x.manifest
                    .as_ref()
                    .is_some_and(|xm| xm.hash.is_some() && xm.name == m.name || xm.hash == Some(hash))
            })
            .map(|(k, _)| *k)
            .collect();
        for from in earlier {
            let f = &self.objects[&from];
            let same = f.manifest.as_ref().is_some_and(|fm| fm.hash == Some(hash));
            let fl = f.layout;
            let compatible = fl.is_some_and(|fl| {
                (fl.size, fl.symbol_size, fl.block_max) == (l.size, l.symbol_size, l.block_max)
            });
            if same && !compatible {
                // Cut differently (another symbol size): nothing to reuse; it expires.
                continue;
            }
            if same {
                let fl = fl.expect("compatible");
                let repairs_agree =
                    fl.code == l.code && (fl.repair == l.repair || l.code == super::CodeId::Gf8);
                for b in 0..l.blocks() as u16 {
                    let into_done = self.objects[&into].blocks.get(usize::from(b)).is_none_or(|s| s.decoded);
                    if into_done {
                        continue;
                    }
                    let from_state =
                        self.objects[&from].blocks.get(usize::from(b)).cloned().unwrap_or_default();
                    if from_state.decoded {
                        // What an earlier run left may be damaged or gone: then that
                        // block is simply not taken over (the hash check guards the rest).
                        let Some(bytes) = store
                            .read_block(from, &fl, b)
                            .ok()
                            .filter(|v| v.len() as u64 == l.block_bytes(b))
                        else {
                            continue;
                        };
                        store.take_symbols(into, b).map_err(Rejected::Store)?;
                        store.put_block(into, &l, l.block_offset(b), &bytes).map_err(Rejected::Store)?;
                        let o = self.objects.get_mut(&into).expect("held");
                        let s = &mut o.blocks[usize::from(b)];
                        s.decoded = true;
                        s.have = Vec::new();
                        o.decoded += 1;
                        self.stats.adopted += 1;
                        continue;
                    }
                    if from_state.count == 0 {
                        continue;
                    }
                    let k = l.block_symbols(b).unwrap_or(0);
                    for (esi, data) in store.take_symbols(from, b).unwrap_or_default() {
                        if (u32::from(esi) >= k && !repairs_agree) || data.len() != usize::from(l.symbol_size)
                        {
                            continue;
                        }
                        let o = self.objects.get_mut(&into).expect("held");
                        if mark(o, &l, b, esi) {
                            store.put_symbol(into, &l, b, esi, &data).map_err(Rejected::Store)?;
                            self.stats.adopted += 1;
                        }
                    }
                    if self.objects[&into].blocks[usize::from(b)].count >= k {
                        self.decode_block(into, &l, b, store)?;
                    }
                }
            }
            store.discard(from).map_err(Rejected::Store)?;
            let f = self.objects.get_mut(&from).expect("listed above");
            f.merged = true;
            f.blocks = Vec::new();
        }
        Ok(())
    }

    /// Whether a new object of `size` bytes fits the limits.
    fn admit(&self, size: u64) -> bool {
        let pending: Vec<&ObjectState> =
            self.objects.values().filter(|o| !o.committed && !o.failed).collect();
        let bytes: u64 = pending
            .iter()
            .map(|o| o.layout.map(|l| l.size).or(o.manifest.as_ref().map(|m| m.size)).unwrap_or(0))
            .sum();
        size <= self.limits.max_object
            && pending.len() < self.limits.max_objects
            && bytes.saturating_add(size) <= self.limits.max_pending
    }

    fn try_commit<S: Store>(
        &mut self,
        key: ObjectKey,
        store: &mut S,
    ) -> Result<Option<Outcome>, Rejected<S::Error>> {
        let Some(o) = self.objects.get_mut(&key) else { return Ok(None) };
        if o.committed || o.failed || o.merged || !o.all_decoded() {
            return Ok(None);
        }
        let Some(m) = o.manifest.clone().filter(|m| m.hash.is_some()) else { return Ok(None) };
        if store.commit(key, &m).map_err(Rejected::Store)? {
            o.committed = true;
            self.stats.committed += 1;
            // Whatever earlier sessions hold under this name is now obsolete:
            // an older version, or this content without its hash.
            let stale: Vec<ObjectKey> = self
                .objects
                .iter()
                .filter(|(k, x)| k.session != key.session && !x.committed && !x.failed && !x.merged)
                .filter(|(_, x)| x.manifest.as_ref().is_some_and(|xm| xm.name == m.name))
                .map(|(k, _)| *k)
                .collect();
            for k in stale {
                store.discard(k).map_err(Rejected::Store)?;
                let x = self.objects.get_mut(&k).expect("listed above");
                x.merged = true;
                x.blocks = Vec::new();
            }
            Ok(Some(Outcome::Committed(key)))
        } else {
            o.failed = true;
            o.blocks = Vec::new();
            self.stats.hash_mismatches += 1;
            store.discard(key).map_err(Rejected::Store)?;
            Ok(Some(Outcome::HashMismatch(key)))
        }
    }

    /// Every object seen or announced, and where it stands.
    pub fn report(&self) -> Vec<ObjectReport> {
        let mut out = Vec::new();
        for (&session, s) in &self.sessions {
            let count = s.objects.unwrap_or(0);
            let seen = self
                .objects
                .range(ObjectKey { session, object: 0 }..=ObjectKey { session, object: u16::MAX });
            let mut next = 0u16;
            for (key, o) in seen {
                for object in next..key.object.min(count) {
                    out.push(ObjectReport {
                        key: ObjectKey { session, object },
                        name: None,
                        size: None,
                        status: Status::NeverSeen,
                    });
                }
                next = key.object.saturating_add(1);
                if o.merged {
                    continue;
                }
                let status = if o.committed {
                    Status::Complete
                } else if o.failed {
                    Status::Corrupt
                } else {
                    Status::Partial { missing: o.missing_symbols(), manifest: o.manifest.is_some() }
                };
                out.push(ObjectReport {
                    key: *key,
                    name: o.manifest.as_ref().map(|m| m.name.clone()),
                    size: o.layout.map(|l| l.size).or(o.manifest.as_ref().map(|m| m.size)),
                    status,
                });
            }
            for object in next..count {
                out.push(ObjectReport {
                    key: ObjectKey { session, object },
                    name: None,
                    size: None,
                    status: Status::NeverSeen,
                });
            }
        }
        out
    }

    /// What an unfinished object still lacks, once any of its symbols was seen.
    pub fn shortfall(&self, key: ObjectKey) -> Option<Shortfall> {
        let o = self.objects.get(&key)?;
        let l = o.layout?;
        let mut s = Shortfall {
            blocks: l.blocks(),
            blocks_missing: 0,
            symbols_missing: 0,
            worst_missing: 0,
            worst_k: 0,
        };
        for b in 0..l.blocks() as u16 {
            let st = o.blocks.get(usize::from(b));
            if st.is_some_and(|st| st.decoded) {
                continue;
            }
            let k = l.block_symbols(b).unwrap_or(0);
            let missing = k.saturating_sub(st.map_or(0, |st| st.count));
            s.blocks_missing += 1;
            s.symbols_missing += u64::from(missing);
            if missing > s.worst_missing {
                (s.worst_missing, s.worst_k) = (missing, k);
            }
        }
        Some(s)
    }

    /// Whether a session's every announced object is complete.
    pub fn session_complete(&self, session: u32) -> bool {
        let Some(count) = self.sessions.get(&session).and_then(|s| s.objects) else { return false };
        (0..count).all(|object| self.objects.get(&ObjectKey { session, object }).is_some_and(|o| o.committed))
    }

    /// Sessions heard from, most recent last.
    pub fn sessions(&self) -> Vec<u32> {
        let mut v: Vec<(Instant, u32)> =
            self.sessions.iter().map(|(&id, s)| (s.last_frame.unwrap_or(Instant::ZERO), id)).collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// When the first frame of a session arrived.
    pub fn session_start(&self, session: u32) -> Option<Instant> {
        self.sessions.get(&session)?.first_frame
    }

    /// Frames a session's sender had sent by its latest heartbeat, and the
    /// frames received from it by then: their ratio is the line's delivery
    /// rate. `(0, n)` before any heartbeat, `n` all frames received.
    pub fn session_frames(&self, session: u32) -> Option<(u64, u64)> {
        self.sessions.get(&session).map(|s| {
            if s.frames_sent == 0 {
                (0, s.frames_received)
            } else {
                (s.frames_sent, s.received_at_heartbeat)
            }
        })
    }

    /// The manifest of an object, once received: lets a store persist it so
    /// a restarted receiver can commit an object whose manifest will not come
    /// round again soon.
    pub fn manifest(&self, key: ObjectKey) -> Option<&Manifest> {
        self.objects.get(&key).and_then(|o| o.manifest.as_ref())
    }

    /// The heartbeat interval a session's sender announced (`None` before its
    /// first heartbeat): a caller waiting for stragglers after the sender's
    /// Done heartbeat waits in units of it.
    pub fn heartbeat_interval(&self, session: u32) -> Option<Duration> {
        let h = self.sessions.get(&session)?.heartbeat?;
        Some(Duration::from_millis(u64::from(h.1.max(1))))
    }

    /// Liveness of a session at `now` (13.4).
    pub fn liveness(&self, session: u32, now: Instant) -> Option<Liveness> {
        let s = self.sessions.get(&session)?;
        let interval =
            s.heartbeat.map_or(Duration::from_secs(1), |h| Duration::from_millis(u64::from(h.1.max(1))));
        let last = s.last_frame?;
        if s.heartbeat.is_some_and(|h| h.2 == SenderState::Done) {
            return Some(Liveness::Finished);
        }
        if now.since(last) > interval * 3 {
            return Some(Liveness::LinkDead);
        }
        // Silent only once heard for three intervals with no symbol: a sender
        // that has just started (its first heartbeat) is not silent.
        let since = s.last_symbol.or(s.first_frame)?;
        if now.since(since) > interval * 3 {
            return Some(Liveness::SenderSilent);
        }
        Some(Liveness::Active)
    }
}

/// Records symbol `esi` of block `b`; false if it is a duplicate, out of
/// range, or its block is already decoded.
fn mark(o: &mut ObjectState, l: &Layout, b: u16, esi: u16) -> bool {
    let Some(k) = l.block_symbols(b) else { return false };
    let total = k as usize + usize::from(l.repair);
    let Some(s) = o.blocks.get_mut(usize::from(b)) else { return false };
    if s.decoded || usize::from(esi) >= total {
        return false;
    }
    if s.have.is_empty() {
        s.have = vec![0; total.div_ceil(64)];
    }
    let (w, bit) = (usize::from(esi) / 64, 1u64 << (esi % 64));
    if s.have[w] & bit != 0 {
        return false;
    }
    s.have[w] |= bit;
    s.count += 1;
    true
}

/// Why a frame was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected<E> {
    /// The frame itself (damaged, forged, malformed, inconsistent).
    Frame(DiodeError),
    /// The symbols of a block would not decode (should not happen: each was CRC-checked).
    Code(CodeError),
    /// The store failed (disk full, I/O error): nothing was lost from the
    /// line's point of view, but the caller must act.
    Store(E),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diode::{MemStore, Outgoing, Sender, SenderConfig};

    /// A store that takes every decode over and does it only when asked to
    /// commit, as one decoding on other threads may.
    #[derive(Default)]
    struct DeferringStore {
        inner: MemStore,
        deferred: Vec<(ObjectKey, Layout, u16)>,
        taken: usize,
    }

    impl Store for DeferringStore {
        type Error = core::convert::Infallible;
        fn put_symbol(
            &mut self,
            key: ObjectKey,
            l: &Layout,
            b: u16,
            esi: u16,
            d: &[u8],
        ) -> Result<(), Self::Error> {
            self.inner.put_symbol(key, l, b, esi, d)
        }
        fn take_symbols(&mut self, key: ObjectKey, block: u16) -> Result<Vec<(u16, Vec<u8>)>, Self::Error> {
            self.inner.take_symbols(key, block)
        }
        fn put_block(&mut self, key: ObjectKey, l: &Layout, at: u64, d: &[u8]) -> Result<(), Self::Error> {
            self.inner.put_block(key, l, at, d)
        }
        fn read_block(&mut self, key: ObjectKey, l: &Layout, block: u16) -> Result<Vec<u8>, Self::Error> {
            self.inner.read_block(key, l, block)
        }
        fn commit(&mut self, key: ObjectKey, manifest: &Manifest) -> Result<bool, Self::Error> {
            for (k, l, b) in core::mem::take(&mut self.deferred) {
                let symbols = self.inner.take_symbols(k, b)?;
                let Ok(bytes) = Codec::default().decode(&l, b, symbols.iter().map(|(e, d)| (*e, &d[..])))
                else {
                    return Ok(false);
                };
                self.inner.put_block(k, &l, l.block_offset(b), &bytes)?;
            }
            self.inner.commit(key, manifest)
        }
        fn discard(&mut self, key: ObjectKey) -> Result<(), Self::Error> {
            self.inner.discard(key)
        }
        fn decode_later(&mut self, key: ObjectKey, l: &Layout, block: u16) -> Result<bool, Self::Error> {
            self.deferred.push((key, *l, block));
            self.taken += 1;
            Ok(true)
        }
    }

    #[test]
    fn a_store_that_takes_decodes_over_gets_them_and_the_object_commits_after() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let manifest = Manifest {
            object: 0,
            objects: 1,
            size: bytes.len() as u64,
            mode: 0o600,
            mtime: 0,
            hash: Some(*blake3::hash(&bytes).as_bytes()),
            name: "d".into(),
        };
        let layout = Layout { block_max: 100, ..Layout::choose(bytes.len() as u64, 1000).unwrap() };
        let config =
            SenderConfig { redundancy: crate::diode::Redundancy::ExpectLoss(0.1), ..SenderConfig::default() };
        let mut tx = Sender::new(3, vec![Outgoing { manifest, layout }], config, None).unwrap();
        let (mut rx, mut store) = (Receiver::new(None, Limits::default()), DeferringStore::default());
        let mut n = 0u32;
        let mut committed = false;
        crate::diode::run_in_memory(&mut tx, &[&bytes], Duration::ZERO, |now, f| {
            n += 1;
            // Every ninth frame lost: every block needs repair, so decoding.
            if n % 9 != 4 {
                committed |= matches!(rx.handle_frame(now, f, &mut store), Ok(Outcome::Committed(_)));
            }
            true
        });
        assert!(committed);
        assert_eq!(store.taken as u64, layout.blocks(), "every block went to the store");
        assert_eq!(store.inner.files.get("d"), Some(&bytes));
    }

    #[test]
    fn manifest_and_heartbeat_interval_are_exposed_once_received() {
        let bytes = b"hello diode".to_vec();
        let manifest = Manifest {
            object: 0,
            objects: 1,
            size: bytes.len() as u64,
            mode: 0o600,
            mtime: 5,
            hash: Some(*blake3::hash(&bytes).as_bytes()),
            name: "a/b".into(),
        };
        let layout = Layout::choose(bytes.len() as u64, 8).unwrap();
        let config = SenderConfig { heartbeat: Duration::from_millis(250), ..SenderConfig::default() };
        let mut tx =
            Sender::new(9, vec![Outgoing { manifest: manifest.clone(), layout }], config, None).unwrap();
        let (mut rx, mut store) = (Receiver::new(None, Limits::default()), MemStore::default());
        let key = ObjectKey { session: 9, object: 0 };
        assert!(rx.manifest(key).is_none() && rx.heartbeat_interval(9).is_none());
        crate::diode::run_in_memory(&mut tx, &[&bytes], Duration::ZERO, |now, f| {
            drop(rx.handle_frame(now, f, &mut store));
            true
        });
        assert_eq!(rx.manifest(key), Some(&manifest));
        assert_eq!(rx.heartbeat_interval(9), Some(Duration::from_millis(250)));
    }
}
