//! The report `strand diode-rx` prints at the end (and when stopped): one
//! line per object of the senders heard in this run — complete, or what is
//! missing and how much more repair would have finished it — then the
//! counters, what this host dropped, and what the path lost.

use super::exit;
use std::collections::BTreeSet;
use strand_link::diode::stream::StreamStats;
use strand_link::diode::{ObjectKey, Receiver, Status};

/// What the report reads from a run.
pub trait Source {
    /// The core receiver.
    fn receiver(&self) -> &Receiver;
    /// Why the store refused to publish an object, if it did.
    fn refused(&self, key: ObjectKey) -> Option<&str>;
    /// Stream bytes read and the stream decoder's counters.
    fn stream(&self) -> (u64, StreamStats);
    /// Datagrams dropped on this host: by the kernel (socket buffer full) and
    /// by this process (queue over budget); `None` when not on UDP.
    fn local_drops(&self) -> Option<(u64, u64)>;
}

/// Objects of the current run by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Verified and published (or already there).
    pub complete: u32,
    /// Partly received, or corrupt.
    pub partial: u32,
    /// Announced, never a frame.
    pub never: u32,
}

impl Counts {
    /// Whether no object of the current run got anywhere.
    pub fn nothing(&self) -> bool {
        self.complete + self.partial == 0
    }
}

/// The report's lines and the counts the exit code follows.
pub struct Lines {
    /// Lines, without the `diode-rx: ` prefix.
    pub text: Vec<String>,
    /// Objects by outcome.
    pub counts: Counts,
}

/// The exit code for these counts: refused files are an error (1); never-seen
/// objects or nothing at all 3; partial ones 2; else 0.
pub fn exit_code(counts: &Counts, refused: bool) -> u8 {
    if refused {
        exit::ERROR
    } else if counts.never > 0 || counts.nothing() {
        exit::NOTHING
    } else if counts.partial > 0 {
        exit::PARTIAL
    } else {
        exit::COMPLETE
    }
}

/// The share of a session's frames the path lost: sent (per its latest
/// heartbeat), minus received, minus those this host dropped itself.
fn path_loss(rx: &Receiver, session: u32, local: u64) -> Option<(u64, u64, f64)> {
    let (sent, got) = rx.session_frames(session)?;
    if sent == 0 {
        return None;
    }
    let lost = sent.saturating_sub(got).saturating_sub(local);
    Some((sent, got, lost as f64 / sent as f64))
}

/// Builds the report. Objects of sessions not heard in this run (left in the
/// store by an earlier one) are listed only if unfinished, marked, and do not
/// count; local drops are counted against the path only when one session was heard.
pub fn lines(src: &impl Source) -> Lines {
    let rx = src.receiver();
    let heard: BTreeSet<u32> =
        rx.sessions().into_iter().filter(|&s| rx.session_frames(s).is_some_and(|(_, got)| got > 0)).collect();
    let local = src.local_drops().map_or(0, |(k, q)| k + q);
    let single = heard.len() == 1;
    let mut counts = Counts::default();
    let mut text = Vec::new();
    for r in rx.report() {
        let name = r
            .name
            .clone()
            .unwrap_or_else(|| format!("object {} of session {:08x}", r.key.object, r.key.session));
        let current = heard.contains(&r.key.session);
        let stale = if current { "" } else { " [earlier run]" };
        let line = match &r.status {
            Status::Complete if !current => continue,
            Status::Complete => {
                counts.complete += 1;
                format!("complete    {name} ({} bytes)", r.size.unwrap_or(0))
            }
            Status::Partial { manifest, .. } => {
                counts.partial += u32::from(current);
                let missing = match rx.shortfall(r.key) {
                    Some(s) => {
                        let loss = if single && current {
                            path_loss(rx, r.key.session, local).map_or(0.0, |l| l.2)
                        } else {
                            0.0
                        };
                        let more = 100.0 * f64::from(s.worst_missing)
                            / f64::from(s.worst_k.max(1))
                            / (1.0 - loss).max(0.05);
                        format!(
                            "{} of {} blocks missing, {} symbols short (the worst block {} of {}); about {:.1}% more \
                             repair per block would have finished it: run diode-tx again, this receiver keeps what it has",
                            s.blocks_missing, s.blocks, s.symbols_missing, s.worst_missing, s.worst_k, more
                        )
                    }
                    None => "no data yet".to_string(),
                };
                let m = if *manifest { "" } else { "; name and hash not received" };
                let refused = src.refused(r.key).map(|e| format!("; {e}")).unwrap_or_default();
                format!("partial     {name}: {missing}{m}{refused}")
            }
            Status::Corrupt => {
                counts.partial += u32::from(current);
                format!("corrupt     {name} (hash mismatch)")
            }
            Status::NeverSeen => {
                counts.never += u32::from(current);
                format!("never seen  {name}")
            }
        };
        text.push(format!("{line}{stale}"));
    }
    let s = rx.stats();
    let (stream_bytes, st) = src.stream();
    text.push(format!(
        "{} frames ok, {} failed CRC, {} failed authentication, {} invalid, {} over limits; \
         {} symbols kept, {} duplicates, {} taken over from earlier runs, {} blocks decoded, {} objects committed{}",
        s.frames,
        s.crc_errors + st.fec_failed,
        s.auth_failures,
        s.invalid,
        s.over_limit,
        s.symbols,
        s.duplicates,
        s.adopted,
        s.blocks_decoded,
        s.committed,
        if s.already_complete > 0 { format!(", {} already here", s.already_complete) } else { String::new() }
    ));
    if let Some((kernel, queue)) = src.local_drops() {
        text.push(format!(
            "{} datagrams dropped on this host ({kernel} by the kernel, socket buffer full; {queue} by diode-rx, queue full): \
             not the path's loss",
            kernel + queue
        ));
    }
    for &session in &heard {
        if let Some((sent, got, loss)) = path_loss(rx, session, if single { local } else { 0 }) {
            text.push(format!(
                "session {session:08x}: by its latest heartbeat the sender had sent {sent} frames, {got} had arrived; \
                 the path lost {:.2}%",
                loss * 100.0
            ));
        }
    }
    if stream_bytes > 0 {
        text.push(format!(
            "stream: {} bytes, {} framing errors, {} frames repaired by FEC ({} bytes), {} frames beyond repair",
            stream_bytes, st.framing_errors, st.fec_repaired, st.fec_corrected, st.fec_failed
        ));
    }
    Lines { text, counts }
}
