//! `strand send` / `strand recv`: the file transfer protocol (`transfer`) over
//! one link channel, resumed automatically when the link is lost and comes back.

use crate::driver::{channel, LinkHandle};
use crate::transfer::{self, PacketIo, RecvOptions, SendOptions, TransferError};
use std::time::Duration;
use strand_link::{Delivery, Reassembled, Reassembly};

/// One link channel as a reliable packet pipe: fragments are reassembled (a
/// packet longer than the transfer protocol's limit is an error, not memory), and
/// any operation fails once the peer restarted (the transfer then resumes in
/// the new session) or has been silent for the link's give-up time.
pub struct ChannelIo {
    link: LinkHandle,
    channel: u8,
    generation: u64,
    partial: Reassembly<'static>,
}

impl ChannelIo {
    /// A pipe on `channel` for the link's current session.
    pub fn new(link: LinkHandle, channel: u8) -> Self {
        let generation = link.generation();
        ChannelIo { link, channel, generation, partial: Reassembly::with_limit(transfer::proto::MAX_PACKET) }
    }
}

impl PacketIo for ChannelIo {
    async fn send(&mut self, packet: &[u8]) -> anyhow::Result<()> {
        self.link.send(self.channel, packet, self.generation).await?;
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            let f = self.link.recv(self.channel, self.generation).await?;
            let d =
                Delivery { channel: self.channel, more: f.more, fin: f.fin, reset: f.reset, restart: false };
            match self.partial.push(&d, &f.data) {
                Reassembled::Partial => {}
                Reassembled::Packet(p) => return Ok(p.to_vec()),
                Reassembled::TooLong { len } => return Err(transfer::TooLong(len).into()),
            }
        }
    }
}

/// Whether an error means "the link went away; run again to resume".
fn resumable(e: &TransferError) -> bool {
    e.exit_code() == 4
}

/// Runs a transfer on a fresh channel pipe, again after each link loss, until
/// it ends otherwise or the peer stays away longer than `wait`.
async fn resuming<T, F, Fut>(link: &LinkHandle, wait: Duration, mut run: F) -> Result<T, TransferError>
where
    F: FnMut(ChannelIo) -> Fut,
    Fut: std::future::Future<Output = Result<T, TransferError>>,
{
    loop {
        match run(ChannelIo::new(link.clone(), channel::FILES)).await {
            Err(e) if resumable(&e) => {
                tracing::warn!("{e}; resuming when the peer is back");
                // Heard again, not merely still "connected": a silent peer keeps
                // its session, and retrying into silence would never end.
                if link.wait_up(wait).await.is_err() {
                    return Err(e);
                }
            }
            other => return other,
        }
    }
}

/// Sends files, resuming after link loss until done or the peer stays away.
pub async fn send(
    link: &LinkHandle,
    opts: &SendOptions,
    wait: Duration,
) -> Result<transfer::SendReport, TransferError> {
    resuming(link, wait, |mut io| async move { transfer::send_files(&mut io, opts).await }).await
}

/// Receives files, resuming after link loss until the sender says it is done.
pub async fn recv(
    link: &LinkHandle,
    opts: &RecvOptions,
    wait: Duration,
) -> Result<transfer::RecvReport, TransferError> {
    resuming(link, wait, |mut io| async move { transfer::recv_files(&mut io, opts).await }).await
}

/// The summary of `strand send`: files the receiver now has, bytes sent, and what it had already.
pub fn send_summary(
    report: &transfer::SendReport,
    elapsed: Duration,
    stats: strand_link::Stats,
) -> crate::summary::Summary {
    let mut what = format!("sent {} {}", report.files, plural(report.files, "file", "files"));
    if report.bytes_skipped > 0 {
        what.push_str(&format!(
            " ({} the receiver already had, resumed or identical)",
            transfer::fmt_bytes(report.bytes_skipped)
        ));
    }
    let mut s = crate::summary::Summary::new("send", what, report.bytes_sent, 0)
        .with("files", report.files)
        .with("bytes_already_there", report.bytes_skipped);
    s.elapsed = elapsed;
    s.stats = Some(stats);
    s
}

/// The summary of `strand recv`: files written, files already here, bytes taken over from an
/// earlier run (only when there were some).
pub fn recv_summary(
    report: &transfer::RecvReport,
    elapsed: Duration,
    stats: strand_link::Stats,
) -> crate::summary::Summary {
    let n = report.files.len();
    let mut what = format!("received {n} {}", plural(n, "file", "files"));
    if !report.already_had.is_empty() {
        what.push_str(&format!(", {} already here", report.already_had.len()));
    }
    if report.bytes_resumed > 0 {
        what.push_str(&format!(
            ", {} resumed from an earlier run",
            transfer::fmt_bytes(report.bytes_resumed)
        ));
    }
    let mut s = crate::summary::Summary::new("recv", what, 0, report.bytes_received)
        .with("files", n)
        .with("files_already_here", report.already_had.len())
        .with("bytes_resumed", report.bytes_resumed);
    s.elapsed = elapsed;
    s.stats = Some(stats);
    s
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}
