//! Spec sections 13.1-13.6: the one-way frames — a common 8-byte header, a
//! type-specific body, an optional authentication trailer and the CRC-32C.
//!
//! ```text
//! 0       1       2       3       4               8                     n-4     n
//! +-------+-------+-------+-------+---------------+----------+-[auth]--+-------+
//! |version| type  | flags |  0    |  session (BE) |   body   | kid,tag |CRC(LE)|
//! +-------+-------+-------+-------+---------------+----------+---------+-------+
//! ```
//!
//! As in `crate::wire`, each body has a plain `Repr` with `parse` and `emit`
//! side by side. [`parse`] runs the receive-side checks of 13.7 in order and
//! never panics, whatever the bytes.

use crate::wire::frame::crc32c;
use crate::wire::{CRC_LEN, VERSION};

/// Length of the common header.
pub const HEADER_LEN: usize = 8;
/// Header and CRC: the least any diode frame costs.
pub const MIN_FRAME: usize = HEADER_LEN + CRC_LEN;
/// Length of the authentication trailer: key id (1) and tag (16).
pub const AUTH_LEN: usize = 1 + TAG_LEN;
/// Length of the truncated keyed-BLAKE3 tag.
pub const TAG_LEN: usize = 16;
/// Flag: the frame carries an authentication trailer (13.6).
pub const FLAG_AUTH: u8 = 0x80;
/// Largest raw diode frame a receiver must accept (13.1).
pub const MAX_FRAME: usize = 9216;
/// Largest symbol (13.2); symbols are even-sized (the GF(2^16) code works on 16-bit words).
pub const MAX_SYMBOL: usize = 8192;
/// Longest object name in a MANIFEST (13.3).
pub const MAX_NAME: usize = 1024;
/// Largest object size (48-bit field).
pub const MAX_OBJECT_SIZE: u64 = (1 << 48) - 1;

/// Diode frame types (spec 4, range 0x10-0x1f).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DiodeType {
    /// One encoding symbol of one block of an object (13.2).
    Symbol = 0x10,
    /// Name, size, mode and hash of an object (13.3).
    Manifest = 0x11,
    /// "The sender is alive", with its progress (13.4).
    Heartbeat = 0x12,
    /// Name, size, mode and time of an object whose hash is not known yet:
    /// a streaming sender hashes while it sends, and the hash follows in a
    /// MANIFEST (13.3).
    Announce = 0x13,
}

impl DiodeType {
    /// Decodes a type byte; `None` for anything else.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0x10 => Some(DiodeType::Symbol),
            0x11 => Some(DiodeType::Manifest),
            0x12 => Some(DiodeType::Heartbeat),
            0x13 => Some(DiodeType::Announce),
            _ => None,
        }
    }
}

/// Which erasure code an object's symbols use (13.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum CodeId {
    /// Reed-Solomon over GF(2^8), systematic Vandermonde (`reed-solomon-erasure` 6):
    /// at most 256 symbols per block, source and repair together.
    Gf8 = 1,
    /// Reed-Solomon over GF(2^16), Leopard-RS (`reed-solomon-simd` 3): up to
    /// 32768 source and 32768 repair symbols per block.
    Gf16 = 2,
}

impl CodeId {
    /// Decodes a code byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(CodeId::Gf8),
            2 => Some(CodeId::Gf16),
            _ => None,
        }
    }
}

/// Why bytes are not an acceptable diode frame. Receivers count these; none
/// is ever answered (there is no way back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiodeError {
    /// Shorter than the header and CRC, or than the body's fixed part.
    Truncated,
    /// Longer than [`MAX_FRAME`].
    TooLong,
    /// CRC-32C mismatch: line damage. On a diode this is an erasure.
    BadCrc,
    /// Not version 1, or not a diode type (0x10-0x13).
    NotDiode,
    /// An undefined flag bit is set, or the session id is 0.
    Malformed,
    /// A body field is out of range (13.2-13.4).
    BadField,
    /// The frame is authenticated but no key was given, or it carries a
    /// key id we do not hold.
    UnknownKey,
    /// A key is configured and the frame has no valid tag.
    BadTag,
}

impl core::fmt::Display for DiodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DiodeError::Truncated => "frame truncated",
            DiodeError::TooLong => "frame too long",
            DiodeError::BadCrc => "CRC mismatch",
            DiodeError::NotDiode => "not a version-1 diode frame",
            DiodeError::Malformed => "malformed header",
            DiodeError::BadField => "field out of range",
            DiodeError::UnknownKey => "authenticated frame with an unknown key id (or no key given)",
            DiodeError::BadTag => "authentication tag missing or wrong",
        })
    }
}

/// A pre-shared frame-authentication key (13.6).
#[derive(Clone)]
pub struct AuthKey {
    /// Sent in every frame so keys can be rotated.
    pub id: u8,
    key: [u8; 32],
}

impl core::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AuthKey {{ id: {}, .. }}", self.id)
    }
}

/// The context string of the key derivation (13.6).
pub const KDF_CONTEXT: &str = "strand diode v1 frame authentication";

impl AuthKey {
    /// Derives the 32-byte frame key from secret key material of any length
    /// (a key file's bytes) with BLAKE3's key-derivation mode.
    pub fn derive(id: u8, material: &[u8]) -> AuthKey {
        AuthKey { id, key: blake3::derive_key(KDF_CONTEXT, material) }
    }

    fn tag(&self, covered: &[u8]) -> [u8; TAG_LEN] {
        let full = blake3::keyed_hash(&self.key, covered);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&full.as_bytes()[..TAG_LEN]);
        t
    }
}

/// The common header of every diode frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiodeHeader {
    /// Frame type.
    pub kind: DiodeType,
    /// The sender's session id: random, never 0, fixed for a sender run.
    pub session: u32,
}

/// SYMBOL body (13.2): which object and block a symbol belongs to, the code
/// parameters needed to decode it, and the symbol itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolRepr<'a> {
    /// Object number within the session.
    pub object: u16,
    /// Code parameters; the same in every symbol of the object.
    pub layout: super::Layout,
    /// Block number within the object.
    pub block: u16,
    /// Encoding symbol id within the block: `0..k` source, `k..k+R` repair.
    pub esi: u16,
    /// The symbol: exactly `layout.symbol_size` bytes.
    pub data: &'a [u8],
}

/// Fixed part of a SYMBOL body.
pub const SYMBOL_FIXED: usize = 18;
/// Fixed part of a MANIFEST body.
pub const MANIFEST_FIXED: usize = 54;
/// Fixed part of an ANNOUNCE body: a MANIFEST's without the hash.
pub const ANNOUNCE_FIXED: usize = 22;
/// HEARTBEAT body length.
pub const HEARTBEAT_LEN: usize = 18;

/// MANIFEST body (13.3): what an object is and how to check it; without
/// a hash it travels as an ANNOUNCE frame (the hash follows in a MANIFEST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestRepr<'a> {
    /// Object number within the session.
    pub object: u16,
    /// How many objects the session holds (so a receiver knows what it never saw).
    pub objects: u16,
    /// Object size in bytes.
    pub size: u64,
    /// Unix permission bits (`& 0o7777`).
    pub mode: u32,
    /// Modification time, seconds since the Unix epoch (0: unknown).
    pub mtime: u64,
    /// BLAKE3 of the content; `None` in an ANNOUNCE (not hashed yet).
    pub hash: Option<[u8; 32]>,
    /// Relative path, UTF-8, `/`-separated; checked by the receiver (13.3).
    pub name: &'a str,
}

/// What the sender is doing, told by a HEARTBEAT (13.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SenderState {
    /// Sending symbols.
    Sending = 0,
    /// Alive but sending nothing (between rounds, or waiting for new input).
    Idle = 1,
    /// Finished: nothing more will be sent in this session.
    Done = 2,
}

/// HEARTBEAT body (13.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatRepr {
    /// How many objects the session holds.
    pub objects: u16,
    /// The sender's state.
    pub state: SenderState,
    /// Longest gap between two heartbeats while the sender runs, in ms.
    pub interval_ms: u16,
    /// Current round (0 = first pass).
    pub round: u32,
    /// Frames sent in this session before this one; with the frames received
    /// it gives the receiver the line's loss rate.
    pub frames_sent: u64,
}

/// A parsed, verified diode frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiodeFrame<'a> {
    /// A symbol.
    Symbol(SymbolRepr<'a>),
    /// A manifest (MANIFEST with the hash, ANNOUNCE without).
    Manifest(ManifestRepr<'a>),
    /// A heartbeat.
    Heartbeat(HeartbeatRepr),
}

impl DiodeFrame<'_> {
    /// The frame type.
    pub fn kind(&self) -> DiodeType {
        match self {
            DiodeFrame::Symbol(_) => DiodeType::Symbol,
            DiodeFrame::Manifest(m) if m.hash.is_none() => DiodeType::Announce,
            DiodeFrame::Manifest(_) => DiodeType::Manifest,
            DiodeFrame::Heartbeat(_) => DiodeType::Heartbeat,
        }
    }

    /// Length of the body in bytes.
    pub fn body_len(&self) -> usize {
        match self {
            DiodeFrame::Symbol(s) => SYMBOL_FIXED + s.data.len(),
            DiodeFrame::Manifest(m) if m.hash.is_none() => ANNOUNCE_FIXED + m.name.len(),
            DiodeFrame::Manifest(m) => MANIFEST_FIXED + m.name.len(),
            DiodeFrame::Heartbeat(_) => HEARTBEAT_LEN,
        }
    }

    /// Length of the whole raw frame, with or without the auth trailer.
    pub fn frame_len(&self, auth: bool) -> usize {
        HEADER_LEN + self.body_len() + if auth { AUTH_LEN } else { 0 } + CRC_LEN
    }

    /// Writes the whole raw frame (header, body, optional tag, CRC) into
    /// `out` and returns its length, or `None` if `out` is too small or a
    /// field is out of range.
    pub fn emit(&self, session: u32, key: Option<&AuthKey>, out: &mut [u8]) -> Option<usize> {
        let len = self.frame_len(key.is_some());
        if session == 0 || len > out.len() || len > MAX_FRAME {
            return None;
        }
        let out = &mut out[..len];
        out[0] = VERSION;
        out[1] = self.kind() as u8;
        out[2] = if key.is_some() { FLAG_AUTH } else { 0 };
        out[3] = 0;
        out[4..8].copy_from_slice(&session.to_be_bytes());
        let body = &mut out[HEADER_LEN..HEADER_LEN + self.body_len()];
        match self {
            DiodeFrame::Symbol(s) => {
                if !s.layout.valid() || s.data.len() != usize::from(s.layout.symbol_size) {
                    return None;
                }
                body[0..2].copy_from_slice(&s.object.to_be_bytes());
                body[2] = s.layout.code as u8;
                body[3] = 0;
                body[4..10].copy_from_slice(&s.layout.size.to_be_bytes()[2..]);
                body[10..12].copy_from_slice(&s.layout.block_max.to_be_bytes());
                body[12..14].copy_from_slice(&s.layout.repair.to_be_bytes());
                body[14..16].copy_from_slice(&s.block.to_be_bytes());
                body[16..18].copy_from_slice(&s.esi.to_be_bytes());
                body[18..].copy_from_slice(s.data);
            }
            DiodeFrame::Manifest(m) => {
                if m.size > MAX_OBJECT_SIZE || !(1..=MAX_NAME).contains(&m.name.len()) {
                    return None;
                }
                body[0..2].copy_from_slice(&m.object.to_be_bytes());
                body[2..4].copy_from_slice(&m.objects.to_be_bytes());
                body[4..10].copy_from_slice(&m.size.to_be_bytes()[2..]);
                body[10..14].copy_from_slice(&(m.mode & 0o7777).to_be_bytes());
                body[14..22].copy_from_slice(&m.mtime.to_be_bytes());
                let name_at = match &m.hash {
                    Some(h) => {
                        body[22..54].copy_from_slice(h);
                        MANIFEST_FIXED
                    }
                    None => ANNOUNCE_FIXED,
                };
                body[name_at..].copy_from_slice(m.name.as_bytes());
            }
            DiodeFrame::Heartbeat(h) => {
                body[0..2].copy_from_slice(&h.objects.to_be_bytes());
                body[2] = h.state as u8;
                body[3] = 0;
                body[4..6].copy_from_slice(&h.interval_ms.to_be_bytes());
                body[6..10].copy_from_slice(&h.round.to_be_bytes());
                body[10..18].copy_from_slice(&h.frames_sent.to_be_bytes());
            }
        }
        let mut at = HEADER_LEN + self.body_len();
        if let Some(k) = key {
            out[at] = k.id;
            at += 1;
            let tag = k.tag(&out[..at]);
            out[at..at + TAG_LEN].copy_from_slice(&tag);
            at += TAG_LEN;
        }
        let crc = crc32c(&out[..at]);
        out[at..].copy_from_slice(&crc.to_le_bytes());
        Some(len)
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be48(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x[2..].copy_from_slice(&b[..6]);
    u64::from_be_bytes(x)
}

/// True if `frame` is long enough and its CRC-32C trailer matches.
pub fn crc_ok(frame: &[u8]) -> bool {
    if frame.len() < MIN_FRAME {
        return false;
    }
    let (covered, trailer) = frame.split_at(frame.len() - CRC_LEN);
    crc32c(covered) == u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]])
}

/// Parses and verifies one raw diode frame, in the order of spec 13.7. With
/// `key` set, only frames carrying a valid tag under that key pass; without
/// it, authenticated frames are refused ([`DiodeError::UnknownKey`]) rather
/// than taken on trust.
pub fn parse<'a>(
    frame: &'a [u8],
    key: Option<&AuthKey>,
) -> Result<(DiodeHeader, DiodeFrame<'a>), DiodeError> {
    if frame.len() < MIN_FRAME {
        return Err(DiodeError::Truncated);
    }
    if frame.len() > MAX_FRAME {
        return Err(DiodeError::TooLong);
    }
    if !crc_ok(frame) {
        return Err(DiodeError::BadCrc);
    }
    let covered = &frame[..frame.len() - CRC_LEN];
    if covered[0] != VERSION {
        return Err(DiodeError::NotDiode);
    }
    let kind = DiodeType::from_u8(covered[1]).ok_or(DiodeError::NotDiode)?;
    let flags = covered[2];
    let session = u32::from_be_bytes([covered[4], covered[5], covered[6], covered[7]]);
    if flags & !FLAG_AUTH != 0 || session == 0 {
        return Err(DiodeError::Malformed);
    }
    let body_end = if flags & FLAG_AUTH != 0 {
        let Some(body_end) = covered.len().checked_sub(AUTH_LEN).filter(|&e| e >= HEADER_LEN) else {
            return Err(DiodeError::Truncated);
        };
        let k = key.filter(|k| k.id == covered[body_end]).ok_or(DiodeError::UnknownKey)?;
        let tag = k.tag(&covered[..=body_end]);
        if !constant_time_eq(&tag, &covered[body_end + 1..]) {
            return Err(DiodeError::BadTag);
        }
        body_end
    } else {
        if key.is_some() {
            return Err(DiodeError::BadTag);
        }
        covered.len()
    };
    let body = &covered[HEADER_LEN..body_end];
    let parsed = match kind {
        DiodeType::Symbol => DiodeFrame::Symbol(parse_symbol(body)?),
        DiodeType::Manifest => DiodeFrame::Manifest(parse_manifest(body, true)?),
        DiodeType::Announce => DiodeFrame::Manifest(parse_manifest(body, false)?),
        DiodeType::Heartbeat => DiodeFrame::Heartbeat(parse_heartbeat(body)?),
    };
    Ok((DiodeHeader { kind, session }, parsed))
}

/// Compares tags without an early exit, so timing tells a forger nothing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_symbol(body: &[u8]) -> Result<SymbolRepr<'_>, DiodeError> {
    if body.len() < SYMBOL_FIXED + 2 {
        return Err(DiodeError::Truncated);
    }
    let code = CodeId::from_u8(body[2]).ok_or(DiodeError::BadField)?;
    let data = &body[SYMBOL_FIXED..];
    let symbol_size = u16::try_from(data.len()).map_err(|_| DiodeError::BadField)?;
    let layout = super::Layout {
        code,
        size: be48(&body[4..10]),
        symbol_size,
        block_max: be16(&body[10..12]),
        repair: be16(&body[12..14]),
    };
    if body[3] != 0 || !layout.valid() {
        return Err(DiodeError::BadField);
    }
    let (block, esi) = (be16(&body[14..16]), be16(&body[16..18]));
    let k = layout.block_symbols(block).ok_or(DiodeError::BadField)?;
    if u32::from(esi) >= k + u32::from(layout.block_repair(block).unwrap_or(0)) {
        return Err(DiodeError::BadField);
    }
    Ok(SymbolRepr { object: be16(&body[0..2]), layout, block, esi, data })
}

/// MANIFEST (`hashed`) or ANNOUNCE body: the same fields, the hash only in the first.
fn parse_manifest(body: &[u8], hashed: bool) -> Result<ManifestRepr<'_>, DiodeError> {
    let fixed = if hashed { MANIFEST_FIXED } else { ANNOUNCE_FIXED };
    if body.len() < fixed + 1 {
        return Err(DiodeError::Truncated);
    }
    let name = &body[fixed..];
    if name.len() > MAX_NAME {
        return Err(DiodeError::BadField);
    }
    let name = core::str::from_utf8(name).map_err(|_| DiodeError::BadField)?;
    let (object, objects) = (be16(&body[0..2]), be16(&body[2..4]));
    let mode = u32::from_be_bytes([body[10], body[11], body[12], body[13]]);
    if object >= objects || mode & !0o7777 != 0 {
        return Err(DiodeError::BadField);
    }
    let hash = hashed.then(|| {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&body[22..54]);
        hash
    });
    let mut mtime = [0u8; 8];
    mtime.copy_from_slice(&body[14..22]);
    Ok(ManifestRepr {
        object,
        objects,
        size: be48(&body[4..10]),
        mode,
        mtime: u64::from_be_bytes(mtime),
        hash,
        name,
    })
}

fn parse_heartbeat(body: &[u8]) -> Result<HeartbeatRepr, DiodeError> {
    if body.len() < HEARTBEAT_LEN {
        return Err(DiodeError::Truncated);
    }
    if body.len() > HEARTBEAT_LEN || body[3] != 0 {
        return Err(DiodeError::BadField);
    }
    let state = match body[2] {
        0 => SenderState::Sending,
        1 => SenderState::Idle,
        2 => SenderState::Done,
        _ => return Err(DiodeError::BadField),
    };
    let mut frames = [0u8; 8];
    frames.copy_from_slice(&body[10..18]);
    Ok(HeartbeatRepr {
        objects: be16(&body[0..2]),
        state,
        interval_ms: be16(&body[4..6]),
        round: u32::from_be_bytes([body[6], body[7], body[8], body[9]]),
        frames_sent: u64::from_be_bytes(frames),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Layout;
    use super::*;

    fn layout() -> Layout {
        Layout::choose(1000, 8).unwrap()
    }

    #[test]
    fn symbol_round_trip_plain_and_authenticated() {
        let data = [7u8; 8];
        let f =
            DiodeFrame::Symbol(SymbolRepr { object: 3, layout: layout(), block: 0, esi: 130, data: &data });
        let key = AuthKey::derive(5, b"secret");
        for k in [None, Some(&key)] {
            let mut buf = [0u8; 128];
            let n = f.emit(0xDEAD_BEEF, k, &mut buf).unwrap();
            assert_eq!(n, f.frame_len(k.is_some()));
            let (h, back) = parse(&buf[..n], k).unwrap();
            assert_eq!((h.session, h.kind), (0xDEAD_BEEF, DiodeType::Symbol));
            assert_eq!(back, f);
        }
    }

    #[test]
    fn authentication_rejects_forgery_wrong_key_and_missing_key() {
        let data = [1u8; 8];
        let f = DiodeFrame::Symbol(SymbolRepr { object: 0, layout: layout(), block: 0, esi: 0, data: &data });
        let key = AuthKey::derive(1, b"right");
        let mut buf = [0u8; 128];
        let n = f.emit(9, Some(&key), &mut buf).unwrap();
        // Wrong key material under the same id.
        assert_eq!(parse(&buf[..n], Some(&AuthKey::derive(1, b"wrong"))), Err(DiodeError::BadTag));
        // Wrong id.
        assert_eq!(parse(&buf[..n], Some(&AuthKey::derive(2, b"right"))), Err(DiodeError::UnknownKey));
        // No key configured: refused, not trusted.
        assert_eq!(parse(&buf[..n], None), Err(DiodeError::UnknownKey));
        // A forger changes the symbol and fixes the CRC: the tag catches it.
        buf[HEADER_LEN + SYMBOL_FIXED] ^= 1;
        let crc = crc32c(&buf[..n - CRC_LEN]);
        buf[n - CRC_LEN..n].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(parse(&buf[..n], Some(&key)), Err(DiodeError::BadTag));
        // An unauthenticated frame where a key is required.
        let m = f.emit(9, None, &mut buf).unwrap();
        assert_eq!(parse(&buf[..m], Some(&key)), Err(DiodeError::BadTag));
    }

    #[test]
    fn manifest_and_heartbeat_round_trip() {
        let m = DiodeFrame::Manifest(ManifestRepr {
            object: 1,
            objects: 2,
            size: 1 << 40,
            mode: 0o644,
            mtime: 1_700_000_000,
            hash: Some([0xAB; 32]),
            name: "dir/file.txt",
        });
        let a = DiodeFrame::Manifest(ManifestRepr {
            object: 1,
            objects: 2,
            size: 77,
            mode: 0o755,
            mtime: 5,
            hash: None,
            name: "streamed",
        });
        assert_eq!((a.kind(), a.body_len()), (DiodeType::Announce, ANNOUNCE_FIXED + 8));
        let h = DiodeFrame::Heartbeat(HeartbeatRepr {
            objects: 2,
            state: SenderState::Done,
            interval_ms: 1000,
            round: 3,
            frames_sent: 123_456_789,
        });
        for f in [m, h, a] {
            let mut buf = [0u8; 256];
            let n = f.emit(1, None, &mut buf).unwrap();
            assert_eq!(parse(&buf[..n], None).unwrap().1, f);
        }
    }

    #[test]
    fn out_of_range_fields_are_refused() {
        let data = [0u8; 8];
        let l = layout();
        let k = l.block_symbols(0).unwrap() as u16;
        let r = l.block_repair(0).unwrap();
        let mut buf = [0u8; 128];
        // An ESI past the block's source and repair symbols.
        let bad = DiodeFrame::Symbol(SymbolRepr { object: 0, layout: l, block: 0, esi: k + r, data: &data });
        let n = bad.emit(1, None, &mut buf).unwrap();
        assert_eq!(parse(&buf[..n], None), Err(DiodeError::BadField));
        // A block that does not exist.
        let bad = DiodeFrame::Symbol(SymbolRepr { object: 0, layout: l, block: 1, esi: 0, data: &data });
        let n = bad.emit(1, None, &mut buf).unwrap();
        assert_eq!(parse(&buf[..n], None), Err(DiodeError::BadField));
        // Session 0 is never emitted.
        assert_eq!(bad.emit(0, None, &mut buf), None);
    }
}
