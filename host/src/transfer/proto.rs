//! The messages of the file-transfer protocol (version [`PROTOCOL_VERSION`]) and their encoding.
//!
//! Every packet on the [`PacketIo`](super::PacketIo) channel is exactly one [`Message`], encoded
//! with `postcard` (variant index as a varint, then the fields in order; integers are varints,
//! strings and byte strings are a varint length followed by the bytes). The channel is reliable and
//! ordered, so the protocol has no checksums, timers or retransmissions of its own.
//!
//! | # | message | fields | sent by | when |
//! |---|---------|--------|---------|------|
//! | 0 | `HELLO`  | magic `"STRANDFT"`, version, role (sender/receiver) | both | first packet from each side; never changes layout |
//! | 1 | `OFFER`  | [`Manifest`]: name, size, mode, mtime (s, ns), BLAKE3 | sender | to start each file (again after a verification failure) |
//! | 2 | `HAVE`   | – | receiver | reply to `OFFER`: an identical file (same BLAKE3) is already there; skipped |
//! | 3 | `REFUSE` | [`Refusal`], detail text | receiver | reply to `OFFER`: this file will not be taken; the batch goes on |
//! | 4 | `ACCEPT` | offset | receiver | reply to `OFFER`: send from this offset (bytes already in the partial file) |
//! | 5 | `DATA`   | offset, bytes (at most [`CHUNK`]) | sender | after `ACCEPT`, contiguous from the accepted offset |
//! | 6 | `ACK`    | offset | receiver | every [`ACK_EVERY`] bytes written; the sender keeps at most [`WINDOW`] bytes unacknowledged |
//! | 7 | `END`    | – | sender | after the last `DATA` of a file (offset == size) |
//! | 8 | `DONE`   | – | receiver | reply to `END`: the file verified and is in place |
//! | 9 | `FAILED` | [`Failure`], detail text | receiver | instead of `DONE`, or in place of an `ACK` when a write fails |
//! | 10 | `BYE`   | – | both | sender: no more files; receiver: reply to it. Also the sender's reply to `FAILED{NoSpace/Io}` |
//! | 11 | `ABORT` | detail text | both | a fatal error ends the session; the text says why (shown to the peer's user) |
//!
//! Conversation: both sides send `HELLO`; then per file `OFFER` → `HAVE` | `REFUSE` | `ACCEPT`, and
//! after `ACCEPT`: `DATA`… (interleaved with `ACK`s) `END` → `DONE` | `FAILED`. After
//! `FAILED{Verify}` the receiver has deleted its partial data and waits for the next `OFFER` (the
//! sender retries the file once from offset 0). After `FAILED{NoSpace|Io}` the receiver keeps its
//! partial data, discards any `DATA`/`END` still in flight and stops when the sender's `BYE` arrives.
//! After the last file: sender `BYE` → receiver `BYE`.
//!
//! Why the window: the sender must notice a receiver-side failure (disk full) within a bounded
//! number of bytes, but [`PacketIo`](super::PacketIo) cannot be read while a send is waiting, so
//! the sender only reads when it has [`WINDOW`] bytes unacknowledged. The receiver therefore never
//! has more than `WINDOW / ACK_EVERY + 2` packets queued towards a sender that is not reading.
//!
//! Compatibility: `HELLO` is variant 0 and its first three fields keep their layout in every
//! version, so any two versions can tell each other which version they speak.

use serde::{Deserialize, Serialize};

/// Version of this message set; a peer with another version is refused at `HELLO`.
pub const PROTOCOL_VERSION: u32 = 1;
/// First field of every `HELLO`: tells a strand transfer peer apart from anything else on the channel.
pub const MAGIC: [u8; 8] = *b"STRANDFT";
/// Largest packet either side sends or accepts.
pub const MAX_PACKET: usize = 64 * 1024;
/// Data bytes per `DATA` message (half a packet: large enough for line rate, small enough for any link).
pub const CHUNK: usize = 32 * 1024;
/// Bytes the sender may have in flight beyond the receiver's last `ACK`.
pub const WINDOW: u64 = 2 * 1024 * 1024;
/// The receiver acknowledges after this many bytes written since its last `ACK`.
pub const ACK_EVERY: u64 = 256 * 1024;
/// Longest file name accepted, in bytes (the usual file-system limit).
pub const MAX_NAME: usize = 255;
/// Longest detail text sent in `REFUSE`, `FAILED` or `ABORT`, in bytes.
pub const MAX_DETAIL: usize = 1000;

/// Which side of the transfer a peer is; both sides say it in `HELLO`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `strand send`.
    Sender,
    /// `strand recv`.
    Receiver,
}

impl Role {
    /// The command a user runs for this role (for error messages).
    pub fn command(self) -> &'static str {
        match self {
            Role::Sender => "strand send",
            Role::Receiver => "strand recv",
        }
    }
}

/// Contents of `HELLO`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 8],
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Which side sent it.
    pub role: Role,
}

impl Hello {
    /// Our own `HELLO` for `role`.
    pub fn ours(role: Role) -> Self {
        Hello { magic: MAGIC, version: PROTOCOL_VERSION, role }
    }
}

/// What the sender says about a file in `OFFER`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Base name (no directories); the receiver validates it before touching the disk.
    pub name: String,
    /// Length in bytes.
    pub size: u64,
    /// Unix permission bits (the receiver applies only `0o777` of them).
    pub mode: u32,
    /// Modification time, seconds since the Unix epoch (negative before it).
    pub mtime_secs: i64,
    /// Nanoseconds part of the modification time (below 1,000,000,000).
    pub mtime_nanos: u32,
    /// BLAKE3 of the whole content; names the receiver's partial file.
    pub hash: [u8; 32],
}

/// Why the receiver will not take a file (`REFUSE`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The name is empty, too long, has separators, traversal or control characters.
    BadName,
    /// A different file of that name exists and the receiver has no `--overwrite`.
    Exists,
    /// Something that is not a regular file (a directory, say) has that name.
    NotAFile,
    /// The receiver's file system has less free space than the rest of the file needs.
    NoSpace,
    /// Another receiver is writing the same content into the same directory right now.
    Busy,
}

/// Why the receiver could not finish a file (`FAILED`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The received content does not have the offered BLAKE3; partial data deleted, session goes on.
    Verify,
    /// The receiver's disk is full; partial data kept, session ends.
    NoSpace,
    /// Another write error on the receiver; partial data kept, session ends.
    Io,
}

/// Bytes of one `DATA` message; encoded as a postcard byte string (length + raw bytes) rather than
/// as a sequence of `u8`s, which would cost a function call per byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk(pub Vec<u8>);

impl Serialize for Chunk {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Chunk {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl serde::de::Visitor<'_> for BytesVisitor {
            type Value = Chunk;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Chunk, E> {
                Ok(Chunk(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Chunk, E> {
                Ok(Chunk(v))
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// One packet of the protocol; see the module documentation for who sends what when.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// First packet from each side.
    Hello(Hello),
    /// The sender proposes a file.
    Offer(Manifest),
    /// The receiver already has identical content under that name.
    Have,
    /// The receiver will not take the file.
    Refuse {
        /// The class of reason.
        why: Refusal,
        /// One line for the sender's user.
        detail: String,
    },
    /// The receiver wants the file from `offset` on.
    Accept {
        /// Bytes the receiver already holds for this content.
        offset: u64,
    },
    /// File content at `offset`.
    Data {
        /// Position of the first byte; always where the previous `DATA` ended.
        offset: u64,
        /// The bytes.
        bytes: Chunk,
    },
    /// The receiver has written everything below `offset`.
    Ack {
        /// Bytes of the current file now on the receiver's disk.
        offset: u64,
    },
    /// The sender has sent the whole file.
    End,
    /// The file verified and is in place.
    Done,
    /// The receiver could not finish the file.
    Failed {
        /// The class of failure (says whether the session goes on).
        why: Failure,
        /// One line for the sender's user.
        detail: String,
    },
    /// Sender: no more files. Receiver: acknowledged, goodbye.
    Bye,
    /// A fatal error; the session is over.
    Abort {
        /// One line for the peer's user.
        detail: String,
    },
}

impl Message {
    /// Upper-case name used in the protocol table and in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "HELLO",
            Message::Offer(_) => "OFFER",
            Message::Have => "HAVE",
            Message::Refuse { .. } => "REFUSE",
            Message::Accept { .. } => "ACCEPT",
            Message::Data { .. } => "DATA",
            Message::Ack { .. } => "ACK",
            Message::End => "END",
            Message::Done => "DONE",
            Message::Failed { .. } => "FAILED",
            Message::Bye => "BYE",
            Message::Abort { .. } => "ABORT",
        }
    }

    /// The packet for this message.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding into a Vec cannot fail for these types (no maps, no unsized sequences).
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Parses one packet; anything malformed, oversized, unknown or with trailing bytes is an error.
    pub fn decode(packet: &[u8]) -> Result<Message, String> {
        if packet.len() > MAX_PACKET {
            return Err(format!("a packet of {} bytes (the limit is {MAX_PACKET})", packet.len()));
        }
        match postcard::take_from_bytes::<Message>(packet) {
            Ok((msg, [])) => Ok(msg),
            Ok((msg, rest)) => Err(format!("{} bytes of garbage after a {} message", rest.len(), msg.kind())),
            Err(_) => Err(format!("an undecodable packet ({})", describe_bytes(packet))),
        }
    }
}

/// The fields every version's `HELLO` starts with: variant index 0, magic, version.
#[derive(Deserialize)]
struct HelloPrefix {
    variant: u8,
    magic: [u8; 8],
    version: u32,
}

/// What went wrong with the peer's first packet.
#[derive(Debug, PartialEq, Eq)]
pub enum HelloError {
    /// Not a strand transfer `HELLO` at all (text says what arrived).
    NotStrand(String),
    /// A strand peer with another protocol version.
    Version(u32),
    /// Right version, but the packet does not parse or has another message first.
    Malformed(String),
}

/// Reads the peer's first packet, which must be a `HELLO` of our version.
pub fn decode_hello(packet: &[u8]) -> Result<Hello, HelloError> {
    // Read only the frozen prefix first, so a peer of another version gets "version N" rather than
    // "garbage" even if the rest of its HELLO has grown.
    match postcard::take_from_bytes::<HelloPrefix>(packet) {
        Ok((prefix, _)) if prefix.variant == 0 && prefix.magic == MAGIC => {
            if prefix.version != PROTOCOL_VERSION {
                return Err(HelloError::Version(prefix.version));
            }
        }
        _ => return Err(HelloError::NotStrand(describe_bytes(packet))),
    }
    match Message::decode(packet) {
        Ok(Message::Hello(hello)) => Ok(hello),
        Ok(other) => Err(HelloError::Malformed(format!("a {} message", other.kind()))),
        Err(e) => Err(HelloError::Malformed(e)),
    }
}

/// A short, printable description of a packet that did not decode (length and first bytes).
fn describe_bytes(packet: &[u8]) -> String {
    let head: Vec<String> = packet.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let more = if packet.len() > 8 { " …" } else { "" };
    format!("{} bytes: {}{more}", packet.len(), head.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            name: "x".into(),
            size: 3,
            mode: 0o644,
            mtime_secs: -5,
            mtime_nanos: 7,
            hash: *blake3::hash(b"abc").as_bytes(),
        }
    }

    #[test]
    fn every_message_round_trips() {
        let all = [
            Message::Hello(Hello::ours(Role::Sender)),
            Message::Offer(manifest()),
            Message::Have,
            Message::Refuse { why: Refusal::Exists, detail: "d".into() },
            Message::Accept { offset: 5 },
            Message::Data { offset: 1 << 40, bytes: Chunk(vec![1, 2, 3]) },
            Message::Ack { offset: 9 },
            Message::End,
            Message::Done,
            Message::Failed { why: Failure::NoSpace, detail: "full".into() },
            Message::Bye,
            Message::Abort { detail: "why".into() },
        ];
        for msg in all {
            assert_eq!(Message::decode(&msg.encode()).unwrap(), msg);
        }
    }

    #[test]
    fn data_bytes_are_a_byte_string() {
        let packet = Message::Data { offset: 0, bytes: Chunk(vec![0xAA; CHUNK]) }.encode();
        // variant (1) + offset (1) + length varint (3) + raw bytes: no per-byte overhead.
        assert_eq!(packet.len(), 1 + 1 + 3 + CHUNK);
    }

    #[test]
    fn hostile_packets_are_errors_not_panics() {
        assert!(Message::decode(&[]).is_err());
        assert!(Message::decode(&[200]).is_err(), "unknown variant");
        assert!(Message::decode(&[5, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err(), "length past the end");
        assert!(Message::decode(&[7, 0]).is_err(), "trailing byte");
        assert!(Message::decode(&vec![0; MAX_PACKET + 1]).is_err(), "oversized");
        for seed in 0u32..2000 {
            let bytes: Vec<u8> =
                (0..(seed % 40)).map(|i| (seed.wrapping_mul(2654435761) >> (i % 24)) as u8).collect();
            let _ = Message::decode(&bytes);
            let _ = decode_hello(&bytes);
        }
    }

    #[test]
    fn hello_versions_are_told_apart() {
        let ours = Message::Hello(Hello::ours(Role::Receiver)).encode();
        assert_eq!(decode_hello(&ours).unwrap().role, Role::Receiver);
        let mut future = Message::Hello(Hello { version: 9, ..Hello::ours(Role::Sender) }).encode();
        future.extend_from_slice(b"fields of a later version");
        assert_eq!(decode_hello(&future), Err(HelloError::Version(9)));
        assert!(matches!(decode_hello(b"SSH-2.0-OpenSSH"), Err(HelloError::NotStrand(_))));
        assert!(matches!(decode_hello(&Message::Bye.encode()), Err(HelloError::NotStrand(_))));
    }
}
