//! Messages over a [`PacketIo`]: encoding, the `HELLO` exchange, and best-effort `ABORT`s.

use std::time::Duration;

use super::error::TransferError;
use super::names::printable;
use super::proto::{decode_hello, HelloError, Message, Role, MAX_DETAIL, PROTOCOL_VERSION};
use super::PacketIo;

/// How long a best-effort `ABORT` may wait for the link before we give up telling the peer.
const ABORT_GRACE: Duration = Duration::from_secs(2);

/// A packet longer than [`MAX_PACKET`](super::proto::MAX_PACKET) arrived and
/// was dropped before it could take memory: a [`PacketIo`] reports it with
/// this error, and it reads as garbage from the peer, not as a lost link.
#[derive(Debug, thiserror::Error)]
#[error("a packet of {0} bytes (the limit is {max})", max = super::proto::MAX_PACKET)]
pub struct TooLong(pub usize);

/// Why no message could be read.
#[derive(Debug)]
pub enum RecvError {
    /// The channel failed: the link is gone.
    Lost(anyhow::Error),
    /// A packet arrived that is not a valid message (text says what it was).
    Garbage(String),
}

/// One side's end of the conversation.
pub struct Wire<'a, P: PacketIo> {
    io: &'a mut P,
}

impl<'a, P: PacketIo> Wire<'a, P> {
    /// Speaks over `io`.
    pub fn new(io: &'a mut P) -> Self {
        Wire { io }
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &Message) -> anyhow::Result<()> {
        self.io.send(&msg.encode()).await
    }

    /// The next message.
    pub async fn recv(&mut self) -> Result<Message, RecvError> {
        let packet = self.io.recv().await.map_err(|e| match e.downcast_ref::<TooLong>() {
            Some(too_long) => RecvError::Garbage(too_long.to_string()),
            None => RecvError::Lost(e),
        })?;
        Message::decode(&packet).map_err(RecvError::Garbage)
    }

    /// Sends our `HELLO` and checks the peer's: a strand peer, same version, the other role.
    pub async fn hello(&mut self, role: Role) -> Result<(), TransferError> {
        let stage = || "before the transfer started".to_string();
        let ours = Message::Hello(super::proto::Hello::ours(role));
        self.send(&ours).await.map_err(|e| TransferError::link_lost(stage(), e))?;
        let packet = self.io.recv().await.map_err(|e| TransferError::link_lost(stage(), e))?;
        let expected = match role {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        };
        let hello = decode_hello(&packet).map_err(|e| match e {
            HelloError::NotStrand(got) => TransferError::NotStrand { got, expected: expected.command() },
            HelloError::Version(theirs) => TransferError::VersionMismatch { ours: PROTOCOL_VERSION, theirs },
            HelloError::Malformed(what) => TransferError::Protocol { detail: format!("{what} as its HELLO") },
        })?;
        if hello.role != expected {
            return Err(TransferError::SameRole { ours: role.command(), other: expected.command() });
        }
        Ok(())
    }

    /// Tells the peer the session is over because of `error`, if the link lets us within a moment;
    /// the peer then shows our reason instead of a bare "link lost".
    pub async fn abort(&mut self, error: &TransferError) {
        let msg = Message::Abort { detail: detail_text(&error.to_string()) };
        let _ = tokio::time::timeout(ABORT_GRACE, self.send(&msg)).await;
    }

    /// Like [`abort`](Self::abort) for an error found before the `HELLO` exchange: sends our
    /// `HELLO` first so the peer reads the `ABORT` as ours rather than as garbage.
    pub async fn abort_before_hello(&mut self, role: Role, error: &TransferError) {
        let hello = Message::Hello(super::proto::Hello::ours(role));
        if let Ok(Ok(())) = tokio::time::timeout(ABORT_GRACE, self.send(&hello)).await {
            self.abort(error).await;
        }
    }
}

/// `text` cut to what a detail field may carry (at a character boundary).
pub fn detail_text(text: &str) -> String {
    let mut end = text.len().min(MAX_DETAIL);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The error for a message that is not allowed where it arrived (`context` says where), or for the
/// peer's `ABORT`.
pub fn unexpected(msg: Message, context: &str) -> TransferError {
    match msg {
        Message::Abort { detail } => TransferError::PeerAborted { reason: printable(&detail) },
        other => TransferError::Protocol { detail: format!("{} {context}", other.kind()) },
    }
}

/// The error for a packet that did not decode.
pub fn garbage(what: String, context: &str) -> TransferError {
    TransferError::Protocol { detail: format!("{what} {context}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that sends one packet too long to take, then a valid one.
    struct Hostile(u8);

    impl PacketIo for Hostile {
        async fn send(&mut self, _: &[u8]) -> anyhow::Result<()> {
            Ok(())
        }
        async fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
            self.0 += 1;
            match self.0 {
                1 => Err(TooLong(1 << 30).into()),
                _ => Ok(Message::Bye.encode()),
            }
        }
    }

    #[tokio::test]
    async fn a_too_long_packet_is_the_peers_garbage_not_a_lost_link() {
        let mut io = Hostile(0);
        let mut wire = Wire::new(&mut io);
        match wire.recv().await {
            Err(RecvError::Garbage(what)) => assert!(what.contains("1073741824 bytes"), "{what}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(wire.recv().await, Ok(Message::Bye)));
    }
}
