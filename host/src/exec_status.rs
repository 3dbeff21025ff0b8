//! `strand pipe --exec`: the child's exit status becomes the exit status of both ends, as ssh
//! returns the remote command's.
//!
//! Built around `pipe`'s relay, not inside it: the serving end runs the child, relays its stdio
//! with [`pipe::relay`], waits for it, and — only when everything was delivered both ways — sends
//! one `EXIT` packet (`b"EXIT"` and the status as i32, big-endian) on channel 0, which a pipe
//! otherwise never uses. The other end, after its own relay succeeded, lingers while the peer
//! still speaks (as every pipe does) and then takes that packet if it came; a peer without
//! `--exec` sends none, and the status stays 0. Statuses outside 0..=255 (a child killed by
//! signal N is 128+N) are clamped into it.

use crate::driver::LinkHandle;
use crate::pipe::{self, PipeFailure};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// The channel of the `EXIT` packet.
pub const CHANNEL: u8 = 0;
const MAGIC: &[u8; 4] = b"EXIT";

/// The `EXIT` packet for `status`.
pub fn encode(status: i32) -> Vec<u8> {
    [&MAGIC[..], &status.to_be_bytes()].concat()
}

/// The status in an `EXIT` packet; anything else is `None`.
pub fn decode(p: &[u8]) -> Option<i32> {
    let rest = p.strip_prefix(&MAGIC[..])?;
    Some(i32::from_be_bytes(rest.try_into().ok()?))
}

/// A status as a process exit code.
pub fn exit_code(status: i32) -> u8 {
    status.clamp(0, 255) as u8
}

/// Serves the stream to `sh -c COMMAND`; on success returns the child's status, already sent to
/// the peer.
pub async fn relay_exec(link: &LinkHandle, cmd: &str) -> Result<i32, PipeFailure> {
    let generation = link.generation();
    let (mut child, stdin, stdout) =
        crate::transport::spawn_child(cmd).map_err(|e| PipeFailure { code: 1, message: e.to_string() })?;
    let r = pipe::relay(link, stdout, stdin).await;
    let status = child.wait().await;
    r?;
    let status = match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => return Err(PipeFailure { code: 1, message: format!("cannot wait for {cmd:?}: {e}") }),
    };
    if let Err(e) = link.send(CHANNEL, &encode(status), generation).await {
        tracing::warn!("the command's status {status} could not be sent: {e}");
    }
    Ok(status)
}

/// After a successful relay and the linger: the peer's child status, if it sent one.
pub async fn peer_status(link: &LinkHandle, generation: u64) -> Option<i32> {
    let got = tokio::time::timeout(Duration::from_millis(10), link.recv(CHANNEL, generation)).await;
    decode(&got.ok()?.ok()?.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_packets() {
        for s in [0, 1, 7, 255, 143, -1, i32::MAX] {
            assert_eq!(decode(&encode(s)), Some(s));
        }
        assert_eq!(decode(b"EXIT"), None);
        assert_eq!(decode(b"LISTEN 1 2"), None);
        assert_eq!((exit_code(-1), exit_code(7), exit_code(300)), (0, 7, 255));
    }
}
