//! `strand forward LINK -L [BIND:]PORT:HOST:HOSTPORT -R ...`: TCP port
//! forwarding across the link, in either direction, many connections at once,
//! each on its own channel (like `ssh -L` / `ssh -R`).
//!
//! Both ends run `strand forward` on the same link; either may carry `-L` and
//! `-R` specs. Control messages are small text packets on channel 0:
//!
//! | message | meaning |
//! |---|---|
//! | `LISTEN <bind> <target>` | (for `-R`) listen on `<bind>` here; relay each connection to `<target>` on the sender's side |
//! | `OPEN <channel> <target>` | a connection was accepted and is relayed on `<channel>`: connect to `<target>` |
//! | `FAIL <channel> <reason>` | connecting failed; the opener closes its connection |
//!
//! Connection data is a byte stream on its channel; end-of-stream in each
//! direction closes that half. The side with the lower session id opens even
//! channels, the other odd ones, so simultaneous opens never collide.
//!
//! A side lets go of a channel once both halves have ended there, which can
//! be a moment before the other side has: an `OPEN` for a channel still held
//! here waits for it (its old stream has already ended), and is never refused,
//! because unread data on a channel holds up every channel behind it.

use crate::driver::{channel, LinkError, LinkHandle};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One `-L` or `-R` specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Where to listen (`ADDR:PORT`).
    pub bind: String,
    /// Where the other side connects (`HOST:PORT`).
    pub target: String,
}

impl std::str::FromStr for Spec {
    type Err = String;
    /// `PORT:HOST:HOSTPORT` (listening on 127.0.0.1) or `BIND:PORT:HOST:HOSTPORT`.
    fn from_str(s: &str) -> Result<Spec, String> {
        let bad = || format!("bad forward {s:?}: write [BIND:]PORT:HOST:HOSTPORT, e.g. 8022:localhost:22");
        let (rest, hport) = s.rsplit_once(':').ok_or_else(bad)?;
        let (rest, host) = rest.rsplit_once(':').ok_or_else(bad)?;
        hport.parse::<u16>().map_err(|_| bad())?;
        let bind = match rest.rsplit_once(':') {
            Some((addr, port)) => {
                port.parse::<u16>().map_err(|_| bad())?;
                format!("{addr}:{port}")
            }
            None => {
                rest.parse::<u16>().map_err(|_| bad())?;
                format!("127.0.0.1:{rest}")
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Spec { bind, target: format!("{host}:{hport}") })
    }
}

/// Channels in use by connections of this session.
#[derive(Default)]
struct Channels {
    busy: BTreeSet<u8>,
}

struct Forwarder {
    link: LinkHandle,
    generation: u64,
    channels: Mutex<Channels>,
    /// Signalled whenever a channel is released.
    freed: Notify,
    /// This side opens channels of this parity.
    parity: u8,
}

impl Forwarder {
    fn allocate(&self) -> Option<u8> {
        let mut c = self.channels.lock().expect("not poisoned");
        let ch =
            (channel::FORWARD_FIRST..=u8::MAX).find(|ch| ch % 2 == self.parity && !c.busy.contains(ch))?;
        c.busy.insert(ch);
        Some(ch)
    }

    /// Whether the peer may open `ch` (a forwarding channel of its parity).
    fn peers_channel(&self, ch: u8) -> bool {
        ch >= channel::FORWARD_FIRST && ch % 2 != self.parity
    }

    /// Takes `ch` for a connection the peer opened, waiting while the
    /// connection that used it before is still winding down here.
    async fn claim(&self, ch: u8) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.channels.lock().expect("not poisoned").busy.insert(ch) {
                return;
            }
            tracing::debug!(
                "channel {ch}: reopened by the peer; waiting for its last connection to end here"
            );
            freed.await;
        }
    }

    fn release(&self, ch: u8) {
        self.channels.lock().expect("not poisoned").busy.remove(&ch);
        self.freed.notify_waiters();
    }

    async fn control(&self, msg: &str) -> Result<(), LinkError> {
        self.link.send(channel::CONTROL, msg.as_bytes(), self.generation).await.map(|_| ())
    }

    /// Relays one TCP connection over `ch` until both directions have ended.
    async fn relay(self: Arc<Self>, ch: u8, tcp: TcpStream) {
        let (mut rd, mut wr) = tcp.into_split();
        let up_self = self.clone();
        let up = tokio::spawn(async move {
            let link = &up_self.link;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => link.write_stream(ch, &buf[..n], up_self.generation).await?,
                }
            }
            link.finish_stream(ch, up_self.generation).await
        });
        let down = async {
            loop {
                let f = self.link.recv(ch, self.generation).await?;
                if wr.write_all(&f.data).await.is_err() {
                    // The local side went away: keep draining so the channel
                    // does not hold up the shared window.
                    while !self.link.recv(ch, self.generation).await?.fin {}
                    return Ok::<(), LinkError>(());
                }
                if f.fin {
                    let _ = wr.shutdown().await;
                    return Ok(());
                }
            }
        };
        let (d, u) = tokio::join!(down, up);
        if let Err(e) = d.and(u.unwrap_or(Ok(()))) {
            tracing::debug!("channel {ch}: {e}");
        }
        self.release(ch);
    }

    /// Accepts connections on `bind` and relays each to `target` on the other side.
    async fn listen(self: Arc<Self>, bind: String, target: String) {
        let listener = match TcpListener::bind(&bind).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot listen on {bind}: {e}");
                return;
            }
        };
        tracing::info!("forwarding {bind} -> {target} (on the other side)");
        loop {
            let Ok((tcp, from)) = listener.accept().await else { continue };
            let Some(ch) = self.allocate() else {
                tracing::warn!("{bind}: connection from {from} refused: all channels busy");
                continue;
            };
            tracing::info!("{bind}: connection from {from} on channel {ch}");
            if self.control(&format!("OPEN {ch} {target}")).await.is_err() {
                return;
            }
            tokio::spawn(self.clone().relay(ch, tcp));
        }
    }

    /// The peer accepted a connection for us to complete.
    async fn open(self: Arc<Self>, ch: u8, target: String) {
        let connect = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&target)).await;
        match connect {
            Ok(Ok(tcp)) => {
                tcp.set_nodelay(true).ok();
                self.relay(ch, tcp).await;
            }
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                tracing::warn!("channel {ch}: cannot connect to {target}: {why}");
                let _ = self.control(&format!("FAIL {ch} {why}")).await;
                let _ = self.link.finish_stream(ch, self.generation).await;
                while let Ok(f) = self.link.recv(ch, self.generation).await {
                    if f.fin {
                        break;
                    }
                }
                self.release(ch);
            }
        }
    }
}

/// Runs the forwarder until the link closes. `remote` specs are sent to the
/// peer; `local` ones listen here.
pub async fn run(link: LinkHandle, local: Vec<Spec>, remote: Vec<Spec>) -> anyhow::Result<()> {
    loop {
        let generation = link.generation();
        let (me, peer) = link.sessions();
        let fwd = Arc::new(Forwarder {
            link: link.clone(),
            generation,
            channels: Mutex::default(),
            freed: Notify::new(),
            parity: u8::from(me > peer.unwrap_or(0)),
        });
        let mut tasks = Vec::new();
        for s in &local {
            tasks.push(tokio::spawn(fwd.clone().listen(s.bind.clone(), s.target.clone())));
        }
        for s in &remote {
            fwd.control(&format!("LISTEN {} {}", s.bind, s.target)).await?;
        }
        let r = serve_control(&fwd, &mut tasks).await;
        for t in tasks {
            t.abort();
        }
        match r {
            Err(LinkError::PeerRestarted) => {
                tracing::warn!("the peer restarted: open connections were dropped; forwarding again");
                link.wait_connected(Duration::from_secs(3600)).await?;
            }
            Err(e) => return Err(e.into()),
            Ok(()) => return Ok(()),
        }
    }
}

async fn serve_control(
    fwd: &Arc<Forwarder>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), LinkError> {
    let mut packet = Vec::new();
    loop {
        let f = fwd.link.recv(channel::CONTROL, fwd.generation).await?;
        packet.extend_from_slice(&f.data);
        if f.more {
            continue;
        }
        let msg = String::from_utf8_lossy(&std::mem::take(&mut packet)).into_owned();
        let mut words = msg.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("LISTEN"), Some(bind), Some(target)) => {
                tasks.push(tokio::spawn(fwd.clone().listen(bind.to_string(), target.to_string())));
            }
            (Some("OPEN"), Some(ch), Some(target)) => match ch.parse::<u8>() {
                Ok(ch) if fwd.peers_channel(ch) => {
                    let (fwd, target) = (fwd.clone(), target.to_string());
                    tokio::spawn(async move {
                        fwd.claim(ch).await;
                        fwd.open(ch, target).await;
                    });
                }
                _ => tracing::warn!("peer sent a bad OPEN: {msg:?}"),
            },
            (Some("FAIL"), Some(ch), reason) => {
                tracing::warn!("channel {ch}: the other side could not connect: {}", reason.unwrap_or(""));
            }
            _ => tracing::warn!("peer sent an unknown control message: {msg:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_like_ssh() {
        assert_eq!(
            "8022:localhost:22".parse::<Spec>(),
            Ok(Spec { bind: "127.0.0.1:8022".into(), target: "localhost:22".into() })
        );
        assert_eq!(
            "0.0.0.0:8022:10.1.2.3:22".parse::<Spec>(),
            Ok(Spec { bind: "0.0.0.0:8022".into(), target: "10.1.2.3:22".into() })
        );
        assert!("8022:22".parse::<Spec>().is_err());
        assert!("x:host:22".parse::<Spec>().is_err());
        assert!("8022::22".parse::<Spec>().is_err());
    }
}
