//! `strand pipe LINK`: stdin to the peer, the peer to stdout, reliably — what
//! `ssh -o ProxyCommand`, NNCP's pipe address and `nncp-daemon -ucspi` ride on.
//!
//! End of stdin becomes end-of-stream at the peer once everything before it
//! is acknowledged; the command exits 0 when its own data (and end-of-stream)
//! is acknowledged and the peer's end-of-stream has arrived.

use crate::driver::{channel::PIPE, LinkHandle};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};

/// How long a closing pipe waits for its end-of-stream to be acknowledged.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Relays `input` to the peer and the peer to `output` until both directions
/// end. A peer silent for `give_up` ends it with an error. SIGHUP, SIGTERM or
/// SIGINT (ssh ends its ProxyCommand with SIGHUP) close our direction cleanly:
/// the peer gets end-of-stream instead of waiting for a dead process.
pub async fn relay<R, Wr>(link: &LinkHandle, input: R, output: Wr, give_up: Duration) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    Wr: AsyncWrite + Unpin,
{
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let generation = link.generation();
    tokio::select! {
        r = relay_until_done(link, input, output, give_up) => r,
        _ = hup.recv() => close_on_signal(link, generation, "SIGHUP").await,
        _ = term.recv() => close_on_signal(link, generation, "SIGTERM").await,
        _ = int.recv() => close_on_signal(link, generation, "SIGINT").await,
    }
}

async fn close_on_signal(link: &LinkHandle, generation: u64, name: &str) -> anyhow::Result<()> {
    tracing::info!("{name}: closing the stream");
    let close = async {
        link.finish_stream(PIPE, generation).await?;
        link.wait_send_idle(generation).await
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, close).await;
    Ok(())
}

async fn relay_until_done<R, Wr>(
    link: &LinkHandle,
    mut input: R,
    mut output: Wr,
    give_up: Duration,
) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    Wr: AsyncWrite + Unpin,
{
    let generation = link.generation();
    let up_link = link.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = input.read(&mut buf).await?;
            if n == 0 {
                up_link.finish_stream(PIPE, generation).await?;
                break;
            }
            up_link.write_stream(PIPE, &buf[..n], generation).await?;
        }
        up_link.guarded(give_up, up_link.wait_send_idle(generation)).await?;
        anyhow::Ok(())
    });
    loop {
        let f = link.guarded(give_up, link.recv(PIPE, generation)).await?;
        output.write_all(&f.data).await?;
        // Interactive use (a shell over ssh) needs every byte out at once.
        output.flush().await?;
        if f.fin {
            break;
        }
    }
    // The peer is done: close our output now, so a child reading it (--exec)
    // sees end-of-file and can finish its own output.
    output.shutdown().await?;
    drop(output);
    up.await??;
    Ok(())
}

/// Relays the stream to a child's stdin and from its stdout (`sh -c COMMAND`);
/// the child's exit status does not matter, its stdout closing ends our side.
pub async fn relay_exec(link: &LinkHandle, cmd: &str, give_up: Duration) -> anyhow::Result<()> {
    // Separate stdin and stdout (not one duplex): dropping stdin is how the
    // child learns the peer's stream ended.
    let (mut child, stdin, stdout) = crate::transport::spawn_child(cmd)?;
    relay(link, stdout, stdin, give_up).await?;
    let _ = child.wait().await;
    Ok(())
}
