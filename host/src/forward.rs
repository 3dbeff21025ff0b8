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
//! | `NOLISTEN <bind> <reason>` | listening on `<bind>` failed: the requester exits non-zero (ssh's ExitOnForwardFailure) |
//! | `OPEN <channel> <target>` | a connection was accepted and is relayed on `<channel>`: connect to `<target>` |
//! | `FAIL <channel> <reason>` | connecting failed; the opener closes its connection |
//!
//! Connection data is a byte stream on its channel; end-of-stream in each
//! direction closes that half. A connection closes in order only once the
//! far side confirmed every byte written to its socket (spec 8.3); if that
//! cannot happen — a socket fails on either side, the peer is gone for
//! `--connect-timeout`, the peer restarts — both sockets are reset instead, so
//! no client takes a cut connection for a completed one. The side with the
//! lower session id opens even channels, the other odd ones, so simultaneous
//! opens never collide.
//!
//! A side lets go of a channel once both halves have ended there, which can
//! be a moment before the other side has: an `OPEN` for a channel still held
//! here waits for it (its old stream has already ended), and is never refused,
//! because unread data on a channel holds up every channel behind it.

use crate::driver::{channel, LinkError, LinkHandle};
use crate::pipe::{reason, reset_payload, reset_reason};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strand_link::{Delivery, Reassembled, Reassembly};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Longest control message taken from the peer (`LISTEN`, `NOLISTEN` and
/// their addresses fit many times over); longer ones are dropped unread.
const MAX_CONTROL: usize = 4096;

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

/// A bound `-L` listener and where its connections go on the other side.
pub struct Listening {
    listener: TcpListener,
    spec: Spec,
}

/// Binds every `-L` spec; the first that cannot be bound is the error.
pub async fn bind_all(local: &[Spec]) -> anyhow::Result<Vec<Arc<Listening>>> {
    let mut out = Vec::new();
    for spec in local {
        let listener = TcpListener::bind(&spec.bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", spec.bind))?;
        eprintln!("strand: forwarding {} -> {} (on the other side)", spec.bind, spec.target);
        out.push(Arc::new(Listening { listener, spec: spec.clone() }));
    }
    Ok(out)
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

/// Closes a socket with a reset (RST), not an orderly end (FIN): the
/// client must not take a cut connection for a complete one.
fn reset(tcp: TcpStream) {
    // Deprecated because a non-zero linger blocks in drop; a zero linger
    // never does: the kernel sends RST and frees the socket at once.
    #[allow(deprecated)]
    let _ = tcp.set_linger(Some(Duration::ZERO));
    drop(tcp);
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

    /// Relays one TCP connection over `ch` until both directions have ended,
    /// then lets the channel go.
    async fn relay(self: Arc<Self>, ch: u8, tcp: TcpStream) {
        match self.relay_until_done(ch, tcp).await {
            Ok(()) => tracing::debug!("channel {ch}: closed in order"),
            Err(why) => tracing::info!("channel {ch}: reset: {why}"),
        }
        self.release(ch);
    }

    async fn relay_until_done(&self, ch: u8, tcp: TcpStream) -> Result<(), String> {
        let link = &self.link;
        let generation = self.generation;
        let (mut rd, mut wr) = tcp.into_split();
        let mut buf = vec![0u8; 16 * 1024];
        let (mut up_done, mut down_done) = (false, false);
        // Both halves in one loop, so a failure of either ends the other at once.
        // The channel is watched until the end: a reset may follow the
        // peer's end of stream.
        let failure: String = loop {
            tokio::select! {
                // Every byte of ours must be written at the far end before the
                // connection closes in order.
                r = link.wait_confirmed(ch, generation), if up_done && down_done => match r {
                    Ok(()) => return Ok(()),
                    Err(e) => break e.to_string(),
                },
                r = rd.read(&mut buf), if !up_done => match r {
                    Ok(0) => {
                        if let Err(e) = link.finish_stream(ch, generation).await {
                            break e.to_string();
                        }
                        up_done = true;
                    }
                    Ok(n) => {
                        if let Err(e) = link.write_stream(ch, &buf[..n], generation).await {
                            break e.to_string();
                        }
                    }
                    Err(e) => {
                        let why = format!("the connection failed here: {e}");
                        self.abort(ch, reset_payload(reason::READ_FAILED, &why)).await;
                        self.drain(ch, &mut down_done).await;
                        break why;
                    }
                },
                r = link.recv_reset(ch, generation), if down_done => match r {
                    Err(e) => break e.to_string(),
                    Ok(f) => {
                        if !up_done {
                            self.abort(ch, reset_payload(reason::WRITE_FAILED, "reset by the other side")).await;
                        }
                        break format!("the other side stopped: {}", reset_reason(&f.data));
                    }
                },
                r = link.recv(ch, generation), if !down_done => match r {
                    Err(e) => break e.to_string(),
                    Ok(f) if f.reset => {
                        if !up_done {
                            self.abort(ch, reset_payload(reason::WRITE_FAILED, "reset by the other side")).await;
                        }
                        break format!("the other side stopped: {}", reset_reason(&f.data));
                    }
                    Ok(f) => {
                        if let Err(e) = wr.write_all(&f.data).await {
                            let why = format!("the connection failed here: {e}");
                            self.abort(ch, reset_payload(reason::WRITE_FAILED, &why)).await;
                            down_done = f.fin;
                            self.drain(ch, &mut down_done).await;
                            break why;
                        }
                        link.stream_written(ch, f.data.len() as u32);
                        if f.fin {
                            let _ = wr.shutdown().await;
                            link.stream_written(ch, 1);
                            down_done = true;
                        }
                    }
                },
            }
        };
        if let Ok(tcp) = rd.reunite(wr) {
            reset(tcp);
        }
        Err(failure)
    }

    /// Resets our half of channel `ch`.
    async fn abort(&self, ch: u8, payload: Vec<u8>) {
        let _ = self.link.abort_stream(ch, &payload, self.generation, Duration::from_secs(2)).await;
    }

    /// Takes what the peer still sends on `ch` until its end or reset, so the
    /// channel does not hold up the others (deliveries are in order).
    async fn drain(&self, ch: u8, done: &mut bool) {
        while !*done {
            match self.link.recv(ch, self.generation).await {
                Ok(f) => *done = f.fin || f.reset,
                Err(_) => return,
            }
        }
    }

    /// Accepts connections on `l` and relays each to its target on the other side.
    async fn listen(self: Arc<Self>, l: Arc<Listening>) {
        loop {
            let Ok((tcp, from)) = l.listener.accept().await else { continue };
            tcp.set_nodelay(true).ok();
            let Some(ch) = self.allocate() else {
                tracing::warn!("{}: connection from {from} refused: all channels busy", l.spec.bind);
                reset(tcp);
                continue;
            };
            tracing::info!("{}: connection from {from} on channel {ch}", l.spec.bind);
            if let Err(e) = self.control(&format!("OPEN {ch} {}", l.spec.target)).await {
                tracing::warn!("{}: connection from {from} reset: {e}", l.spec.bind);
                reset(tcp);
                self.release(ch);
                continue;
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
                self.abort(
                    ch,
                    reset_payload(reason::WRITE_FAILED, &format!("cannot connect to {target}: {why}")),
                )
                .await;
                self.drain(ch, &mut false).await;
                self.release(ch);
            }
        }
    }
}

/// Refuses (resets) connections while there is no peer to relay them to.
async fn refuse(l: Arc<Listening>) {
    loop {
        if let Ok((tcp, from)) = l.listener.accept().await {
            tracing::warn!("{}: connection from {from} reset: the peer is not there", l.spec.bind);
            reset(tcp);
        }
    }
}

/// Runs the forwarder until the link closes for good: `listeners` relay
/// here, `remote` specs are sent to the peer to listen there. A peer gone for
/// `give_up` resets every connection; forwarding resumes in a new session
/// when it is back.
pub async fn run(
    link: LinkHandle,
    listeners: Vec<Arc<Listening>>,
    remote: Vec<Spec>,
    give_up: Duration,
) -> anyhow::Result<()> {
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
        for l in &listeners {
            tasks.push(tokio::spawn(fwd.clone().listen(l.clone())));
        }
        let r = async {
            for s in &remote {
                fwd.control(&format!("LISTEN {} {}", s.bind, s.target)).await?;
            }
            serve_control(&fwd, &mut tasks).await
        }
        .await;
        for t in tasks {
            t.abort();
        }
        let why = match r {
            Err(Stopped::Link(e @ (LinkError::PeerRestarted | LinkError::Gone(_)))) => e,
            Err(Stopped::Link(e)) => return Err(e.into()),
            Err(Stopped::Refused(why)) => anyhow::bail!("{why}"),
            Ok(()) => return Ok(()),
        };
        tracing::warn!("{why}: open connections were reset; forwarding again once the peer is back");
        if matches!(why, LinkError::Gone(_)) {
            // Both sides start afresh when the line returns, rather than
            // resuming streams whose sockets were reset here.
            link.restart_session();
        }
        let refusing: Vec<_> = listeners.iter().map(|l| tokio::spawn(refuse(l.clone()))).collect();
        let back = loop {
            match link.wait_connected(give_up).await {
                Ok(()) => break Ok(()),
                Err(e @ LinkError::Closed(_)) => break Err(e),
                Err(_) => {}
            }
        };
        for t in refusing {
            t.abort();
        }
        back?;
    }
}

/// Why the control loop ended.
enum Stopped {
    Link(LinkError),
    /// The peer could not listen for one of our `-R` specs.
    Refused(String),
}

impl From<LinkError> for Stopped {
    fn from(e: LinkError) -> Self {
        Stopped::Link(e)
    }
}

async fn serve_control(
    fwd: &Arc<Forwarder>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), Stopped> {
    let mut packets = Reassembly::with_limit(MAX_CONTROL);
    loop {
        let f = fwd.link.recv(channel::CONTROL, fwd.generation).await?;
        let d =
            Delivery { channel: channel::CONTROL, more: f.more, fin: f.fin, reset: f.reset, restart: false };
        let msg = match packets.push(&d, &f.data) {
            Reassembled::Partial => continue,
            Reassembled::Packet(p) => String::from_utf8_lossy(p).into_owned(),
            Reassembled::TooLong { len } => {
                tracing::warn!(
                    "ignored a {len}-byte control message from the peer (the limit is {MAX_CONTROL})"
                );
                continue;
            }
        };
        let mut words = msg.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("LISTEN"), Some(bind), Some(target)) => match TcpListener::bind(bind).await {
                Ok(listener) => {
                    let spec = Spec { bind: bind.to_string(), target: target.to_string() };
                    tracing::info!("forwarding {bind} -> {target} (on the other side), asked by the peer");
                    tasks.push(tokio::spawn(fwd.clone().listen(Arc::new(Listening { listener, spec }))));
                }
                Err(e) => {
                    tracing::error!("cannot listen on {bind} for the peer: {e}");
                    fwd.control(&format!("NOLISTEN {bind} {e}")).await?;
                }
            },
            (Some("NOLISTEN"), Some(bind), reason) => {
                return Err(Stopped::Refused(format!(
                    "the other side cannot listen on {bind}: {}",
                    reason.unwrap_or("")
                )));
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
