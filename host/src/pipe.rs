//! `strand pipe LINK`: stdin to the peer, the peer to stdout, reliably — what
//! `ssh -o ProxyCommand`, NNCP's pipe address and `nncp-daemon -ucspi` ride on.
//!
//! Exit 0 means delivered, both ways: every byte read from stdin (and its end)
//! was confirmed *written* at the far end — not merely acknowledged by the
//! peer's link (spec 8.3) — and the peer's stream ended cleanly and was
//! written here. Anything else exits non-zero with one line saying what
//! arrived and what did not, and why; the peer learns of a local failure (a
//! signal, a write error) through a stream reset and fails the same way.
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | everything delivered both ways |
//! | 1 | the link could not be used (no peer, wrong protocol version) |
//! | 3 | local I/O failed: stdin could not be read or stdout written |
//! | 4 | the link was lost: the peer silent for `--connect-timeout`, the line closed, or the peer restarted |
//! | 6 | the peer stopped: its output failed or it was interrupted |
//! | 128+N | interrupted by signal N (SIGINT 130, SIGTERM 143, SIGHUP 129) |

use crate::driver::{channel::PIPE, LinkError, LinkHandle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};

/// Exit status: local I/O failed.
pub const EXIT_IO: u8 = 3;
/// Exit status: the link was lost.
pub const EXIT_LINK_LOST: u8 = 4;
/// Exit status: the peer stopped with an error.
pub const EXIT_PEER: u8 = 6;

/// How long a failing pipe waits for its reset to reach the peer.
const RESET_GRACE: Duration = Duration::from_secs(2);

/// Why a stream was reset: the first byte of the reset's payload, the rest a
/// human-readable reason (spec 8.3 leaves the payload to the application).
pub mod reason {
    /// The process was interrupted by a signal.
    pub const INTERRUPTED: u8 = 1;
    /// Writing the peer's stream to its destination failed.
    pub const WRITE_FAILED: u8 = 2;
    /// Reading our input failed.
    pub const READ_FAILED: u8 = 3;
}

/// A reset payload: the code and the text.
pub fn reset_payload(code: u8, text: &str) -> Vec<u8> {
    let mut v = vec![code];
    v.extend_from_slice(text.as_bytes());
    v
}

/// What a peer's reset says, for a message.
pub fn reset_reason(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload.get(1..).unwrap_or(&[])).into_owned();
    match payload.first() {
        Some(&reason::INTERRUPTED) => format!("it was interrupted ({text})"),
        Some(&reason::WRITE_FAILED) => format!("its output failed ({text})"),
        Some(&reason::READ_FAILED) => format!("its input failed ({text})"),
        _ => format!("it aborted the stream ({text})"),
    }
}

/// Bytes moved so far, for the final line.
#[derive(Default)]
struct Tally {
    /// Bytes read from our input.
    read: AtomicU64,
    /// Of those, handed to the link.
    taken: AtomicU64,
    /// Whether our input ended and the end went to the link.
    ended: AtomicBool,
    /// Bytes of the peer's stream received here.
    received: AtomicU64,
    /// Of those, written to our output.
    written: AtomicU64,
    /// The peer's stream ended and our output was closed.
    peer_ended: AtomicBool,
}

/// A pipe that did not deliver everything.
#[derive(Debug)]
pub struct PipeFailure {
    /// The exit status.
    pub code: u8,
    /// One line: why, what arrived and what did not.
    pub message: String,
}

/// How one direction or the whole pipe ended early.
enum Stop {
    Link(LinkError),
    ReadFailed(std::io::Error),
    WriteFailed(std::io::Error),
    PeerReset(String),
    Signal(&'static str, u8),
}

impl Stop {
    fn code(&self) -> u8 {
        match self {
            Stop::Link(LinkError::Timeout(_)) => 1,
            Stop::Link(_) => EXIT_LINK_LOST,
            Stop::ReadFailed(_) | Stop::WriteFailed(_) => EXIT_IO,
            Stop::PeerReset(_) => EXIT_PEER,
            Stop::Signal(_, n) => 128 + n,
        }
    }

    fn why(&self) -> String {
        match self {
            Stop::Link(e) => e.to_string(),
            Stop::ReadFailed(e) => format!("cannot read stdin: {e}"),
            Stop::WriteFailed(e) => format!("cannot write the peer's stream to stdout: {e}"),
            Stop::PeerReset(r) => format!("the peer stopped: {r}"),
            Stop::Signal(name, _) => format!("interrupted by {name}"),
        }
    }

    /// What to tell the peer, when we are the one who stops.
    fn reset(&self) -> Option<Vec<u8>> {
        match self {
            Stop::ReadFailed(e) => Some(reset_payload(reason::READ_FAILED, &e.to_string())),
            Stop::WriteFailed(e) => Some(reset_payload(reason::WRITE_FAILED, &e.to_string())),
            Stop::Signal(name, _) => Some(reset_payload(reason::INTERRUPTED, name)),
            Stop::Link(_) | Stop::PeerReset(_) => None,
        }
    }
}

/// Relays `input` to the peer and the peer to `output` until both directions
/// have ended and everything is confirmed delivered. SIGHUP, SIGTERM and
/// SIGINT stop it (ssh ends its ProxyCommand with SIGHUP): if everything was
/// delivered by then it is a success, otherwise the peer gets a reset.
pub async fn relay<R, Wr>(link: &LinkHandle, input: R, output: Wr) -> Result<(), PipeFailure>
where
    R: AsyncRead + Unpin + Send + 'static,
    Wr: AsyncWrite + Unpin + Send + 'static,
{
    let generation = link.generation();
    let tally = Arc::new(Tally::default());
    let mut hup = signal(SignalKind::hangup()).map_err(setup)?;
    let mut term = signal(SignalKind::terminate()).map_err(setup)?;
    let mut int = signal(SignalKind::interrupt()).map_err(setup)?;
    let peer_ended = Arc::new(tokio::sync::Notify::new());
    let mut up = tokio::spawn(send_side(link.clone(), input, tally.clone(), generation));
    let mut down =
        tokio::spawn(receive_side(link.clone(), output, tally.clone(), generation, peer_ended.clone()));
    let flat = |r: Result<Result<(), Stop>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(Stop::Link(LinkError::Closed(format!("internal error: {e}")))))
    };
    let mut up_done = false;
    let ended = peer_ended.notified();
    tokio::pin!(ended);
    // Whichever side fails first says why; the other is cut short. The
    // receiving side runs on after the peer's end: a reset may still follow.
    let stop = loop {
        tokio::select! {
            r = &mut down => break flat(r).err().unwrap_or(Stop::Link(LinkError::Closed("internal error".into()))),
            r = &mut up, if !up_done => {
                up_done = true;
                if let Err(stop) = flat(r) {
                    break stop;
                }
            }
            _ = &mut ended, if up_done => {}
            _ = hup.recv() => break Stop::Signal("SIGHUP", 1),
            _ = int.recv() => break Stop::Signal("SIGINT", 2),
            _ = term.recv() => break Stop::Signal("SIGTERM", 15),
        }
        if up_done && tally.peer_ended.load(Ordering::SeqCst) {
            down.abort();
            return Ok(());
        }
    };
    up.abort();
    down.abort();
    if let Some(payload) = stop.reset() {
        // Best effort: the peer learns why within the grace, else it times out.
        match link.abort_stream(PIPE, &payload, generation, RESET_GRACE).await {
            // The peer writes what came before the reset, then stops: its
            // last written counts are still on their way.
            Ok(()) => settle(link).await,
            Err(e) => tracing::debug!("reset not delivered: {e}"),
        }
    }
    Err(failure(link, &tally, &stop))
}

/// Waits until the peer's written counts stop changing (at most a second),
/// so the final line counts what it wrote before it stopped.
async fn settle(link: &LinkHandle) {
    let step = (2 * link.rto()).clamp(Duration::from_millis(100), Duration::from_millis(500));
    let end = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut last = link.stream_unconfirmed(PIPE);
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(step).await;
        let now = link.stream_unconfirmed(PIPE);
        if now == last {
            return;
        }
        last = now;
    }
}

fn setup(e: std::io::Error) -> PipeFailure {
    PipeFailure { code: 1, message: format!("cannot install signal handlers: {e}") }
}

/// The final line: why, what was delivered and what was not.
fn failure(link: &LinkHandle, tally: &Tally, stop: &Stop) -> PipeFailure {
    let (read, taken) = (tally.read.load(Ordering::SeqCst), tally.taken.load(Ordering::SeqCst));
    let ended = tally.ended.load(Ordering::SeqCst);
    // Units the peer has not confirmed: bytes, plus one for the end of stream.
    let open = u64::from(link.stream_unconfirmed(PIPE));
    let pending_end = u64::from(ended && open > 0);
    let delivered = taken.saturating_sub(open.saturating_sub(pending_end));
    let (received, written) = (tally.received.load(Ordering::SeqCst), tally.written.load(Ordering::SeqCst));
    let not = read - delivered;
    let lost_here = received - written;
    PipeFailure {
        code: stop.code(),
        message: format!(
            "{}: {delivered} of {read} bytes read from stdin delivered to the peer ({not} not){}; {received} bytes received{}",
            stop.why(),
            if ended { "" } else { ", input not finished" },
            if lost_here > 0 { format!(", {written} written to stdout ({lost_here} not)") } else { String::new() },
        ),
    }
}

/// Reads our input into the link, ends the stream, and waits until the peer
/// confirms every byte and the end written at its end.
async fn send_side<R: AsyncRead + Unpin>(
    link: LinkHandle,
    mut input: R,
    tally: Arc<Tally>,
    generation: u64,
) -> Result<(), Stop> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = input.read(&mut buf).await.map_err(Stop::ReadFailed)?;
        tally.read.fetch_add(n as u64, Ordering::SeqCst);
        if n == 0 {
            link.finish_stream(PIPE, generation).await.map_err(Stop::Link)?;
            tally.ended.store(true, Ordering::SeqCst);
            tracing::debug!("input ended; waiting for the peer to confirm everything written");
            break;
        }
        // Counted as the link takes them: an interruption may come between.
        let mut at = 0;
        while at < n {
            let took = link.write_stream_some(PIPE, &buf[at..n], generation).await.map_err(Stop::Link)?;
            tally.taken.fetch_add(took as u64, Ordering::SeqCst);
            at += took;
        }
    }
    link.wait_confirmed(PIPE, generation).await.map_err(Stop::Link)?;
    tracing::debug!("the peer confirmed everything written");
    Ok(())
}

/// Writes the peer's stream to our output, confirming each write back to the
/// peer, until its end (which closes our output, so a child reading it sees
/// end-of-file). Returns only on failure, a reset among them: after the end
/// it goes on watching the channel, as the peer may still abort the exchange
/// (its reset of the whole channel can follow its end of stream).
async fn receive_side<Wr: AsyncWrite + Unpin>(
    link: LinkHandle,
    output: Wr,
    tally: Arc<Tally>,
    generation: u64,
    ended: Arc<tokio::sync::Notify>,
) -> Result<(), Stop> {
    // Dropped at the end of stream: a child's stdin closes only then.
    let mut output = Some(output);
    loop {
        let f = link.recv(PIPE, generation).await.map_err(Stop::Link)?;
        if f.reset {
            return Err(Stop::PeerReset(reset_reason(&f.data)));
        }
        let Some(out) = output.as_mut() else {
            tracing::warn!("the peer sent {} bytes after its end of stream; ignored", f.data.len());
            continue;
        };
        tally.received.fetch_add(f.data.len() as u64, Ordering::SeqCst);
        // Interactive use (a shell over ssh) needs every byte out at once.
        let wrote = async {
            out.write_all(&f.data).await?;
            out.flush().await
        };
        wrote.await.map_err(Stop::WriteFailed)?;
        tally.written.fetch_add(f.data.len() as u64, Ordering::SeqCst);
        link.stream_written(PIPE, f.data.len() as u32);
        if f.fin {
            tracing::debug!("the peer's stream ended; closing our output");
            if let Some(mut out) = output.take() {
                out.shutdown().await.map_err(Stop::WriteFailed)?;
            }
            link.stream_written(PIPE, 1);
            tally.peer_ended.store(true, Ordering::SeqCst);
            ended.notify_one();
        }
    }
}

/// Relays the stream to a child's stdin and from its stdout (`sh -c COMMAND`):
/// the serving end (`--exec 'nncp-daemon -ucspi'`, `--exec 'sshd -i'`). The
/// child's stdout closing ends our stream; the peer's end closes its stdin.
#[allow(dead_code)] // `strand pipe --exec` now runs exec_status::relay_exec, which also sends the status
pub async fn relay_exec(link: &LinkHandle, cmd: &str) -> Result<(), PipeFailure> {
    let (mut child, stdin, stdout) =
        crate::transport::spawn_child(cmd).map_err(|e| PipeFailure { code: 1, message: e.to_string() })?;
    let r = relay(link, stdout, stdin).await;
    let _ = child.wait().await;
    r
}
