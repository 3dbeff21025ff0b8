//! Messages over a [`PacketIo`]: encoding, the `HELLO` exchange, and best-effort `ABORT`s.

use std::time::Duration;

use super::error::TransferError;
use super::names::printable;
use super::proto::{decode_hello, HelloError, Message, Role, MAX_DETAIL, PROTOCOL_VERSION};
use super::PacketIo;

/// How long a best-effort `ABORT` may wait for the link before we give up telling the peer.
const ABORT_GRACE: Duration = Duration::from_secs(2);

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
        let packet = self.io.recv().await.map_err(RecvError::Lost)?;
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
