//! Spec section 13: one-way transfer over a data diode, where nothing ever
//! comes back.
//!
//! With no acknowledgement, delivery rests on packet-level erasure coding: a
//! frame that fails its CRC is simply missing, and any `k` distinct symbols
//! of a block rebuild it. Every frame is self-describing (session, object,
//! block, symbol id and code parameters), so a receiver started late or
//! restarted picks up from the next frame.
//!
//! | spec section             | module       |
//! |--------------------------|--------------|
//! | 13.1 streams, datagrams  | [`stream`]   |
//! | 13.2-13.4, 13.6 frames   | [`wire`]     |
//! | 13.5 blocks and codes    | [`layout`], [`code`] |
//! | 13.7 receiver            | [`receiver`] |
//! | 13.8 sender              | [`sender`]   |
//!
//! Needs the `diode` feature (an allocator: block sizes are chosen at run time).

pub mod code;
pub mod layout;
pub mod receiver;
pub mod sender;
pub mod stream;
pub mod wire;

pub use code::{decode_block, CodeError, Codec, EncodedBlock};
pub use layout::{repair_for_loss, Layout};
pub use receiver::{
    Limits, Liveness, ObjectReport, Outcome, Receiver, Rejected, RxStats, Shortfall, Status, Store,
};
pub use sender::{group_blocks, run_in_memory, Outgoing, Poll, Redundancy, Sender, SenderConfig};
pub use wire::{AuthKey, CodeId, DiodeError, DiodeFrame, SenderState};

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Identifies an object: the sender's session and the object's number in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Sender session id.
    pub session: u32,
    /// Object number within the session.
    pub object: u16,
}

/// An object's manifest (13.3), owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Object number within the session.
    pub object: u16,
    /// Objects in the session.
    pub objects: u16,
    /// Size in bytes.
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch (0: unknown).
    pub mtime: u64,
    /// BLAKE3 of the content; `None` until known (an ANNOUNCE carries no
    /// hash: a streaming sender sends it in a later MANIFEST).
    pub hash: Option<[u8; 32]>,
    /// Relative path; [`safe_name`] holds for every manifest a receiver accepts.
    pub name: String,
}

impl Manifest {
    /// Whether `other` describes the same object, one of them perhaps
    /// without the hash yet.
    pub fn agrees_with(&self, other: &Manifest) -> bool {
        let hashes_agree = match (self.hash, other.hash) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        hashes_agree
            && (self.object, self.objects, self.size, self.mode, self.mtime, &self.name)
                == (other.object, other.objects, other.size, other.mode, other.mtime, &other.name)
    }
}

/// True if `name` is a path a receiver may create below its directory (13.3):
/// relative, `/`-separated, no empty, `.` or `..` component, no backslash,
/// no NUL or other control character, at most [`wire::MAX_NAME`] bytes.
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= wire::MAX_NAME
        && !name.chars().any(|c| c.is_control() || c == '\\')
        && name.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Symbols kept per block: `(esi, bytes)`.
type KeptSymbols = BTreeMap<(ObjectKey, u16), Vec<(u16, Vec<u8>)>>;

/// A [`Store`] in memory: for tests, simulations and benchmarks.
#[derive(Debug, Default)]
pub struct MemStore {
    symbols: KeptSymbols,
    partial: BTreeMap<ObjectKey, Vec<u8>>,
    layouts: BTreeMap<ObjectKey, Layout>,
    /// Published objects by name.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl MemStore {
    /// Symbols currently kept (of blocks not yet decoded).
    pub fn kept_symbols(&self) -> Vec<(ObjectKey, u16, u16)> {
        self.symbols.iter().flat_map(|(&(key, b), v)| v.iter().map(move |(e, _)| (key, b, *e))).collect()
    }

    /// The layout of an object, from its kept symbols' store record.
    pub fn layout_of(&self, key: ObjectKey) -> Option<Layout> {
        self.layouts.get(&key).copied()
    }

    /// Objects with bytes but not yet published.
    pub fn partial_objects(&self) -> Vec<ObjectKey> {
        self.partial.keys().copied().collect()
    }
}

impl Store for MemStore {
    type Error = core::convert::Infallible;

    fn put_symbol(
        &mut self,
        key: ObjectKey,
        layout: &Layout,
        block: u16,
        esi: u16,
        data: &[u8],
    ) -> Result<(), Self::Error> {
        self.layouts.insert(key, *layout);
        self.symbols.entry((key, block)).or_default().push((esi, data.to_vec()));
        Ok(())
    }

    fn take_symbols(&mut self, key: ObjectKey, block: u16) -> Result<Vec<(u16, Vec<u8>)>, Self::Error> {
        Ok(self.symbols.remove(&(key, block)).unwrap_or_default())
    }

    fn put_block(
        &mut self,
        key: ObjectKey,
        layout: &Layout,
        offset: u64,
        data: &[u8],
    ) -> Result<(), Self::Error> {
        let buf = self.partial.entry(key).or_default();
        buf.resize(layout.size as usize, 0);
        buf[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn read_block(&mut self, key: ObjectKey, layout: &Layout, block: u16) -> Result<Vec<u8>, Self::Error> {
        let at = layout.block_offset(block) as usize;
        let len = layout.block_bytes(block) as usize;
        Ok(self.partial.get(&key).and_then(|b| b.get(at..at + len)).map(<[u8]>::to_vec).unwrap_or_default())
    }

    fn commit(&mut self, key: ObjectKey, manifest: &Manifest) -> Result<bool, Self::Error> {
        let bytes = self.partial.remove(&key).unwrap_or_default();
        if bytes.len() as u64 != manifest.size || Some(*blake3::hash(&bytes).as_bytes()) != manifest.hash {
            return Ok(false);
        }
        self.files.insert(manifest.name.clone(), bytes);
        Ok(true)
    }

    fn already_have(&mut self, manifest: &Manifest) -> Result<bool, Self::Error> {
        Ok(self.files.get(&manifest.name).is_some_and(|b| Some(*blake3::hash(b).as_bytes()) == manifest.hash))
    }

    fn discard(&mut self, key: ObjectKey) -> Result<(), Self::Error> {
        self.partial.remove(&key);
        self.layouts.remove(&key);
        self.symbols.retain(|(k, _), _| *k != key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn hostile_names_are_refused() {
        for bad in
            ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\\b", "a\0b", "a\nb", "x/"]
        {
            assert!(!safe_name(bad), "{bad:?}");
        }
        for good in ["a", "dir/file.txt", "..a", "a..", "r\u{e9}sum\u{e9}.pdf"] {
            assert!(safe_name(good), "{good:?}");
        }
        assert!(!safe_name(&"a".repeat(1025)));
    }
}
