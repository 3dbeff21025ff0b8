//! Meshtastic's managed flooding, as the baseline strand's mesh must beat.
//!
//! Behaviour (firmware `FloodingRouter.cpp`, `ReliableRouter.cpp`,
//! `NextHopRouter.cpp`, `RadioLibInterface.cpp`, and Meshtasticator `lib/node.py`,
//! which produced the reference figures; docs/mesh.md lists where they differ):
//! - Every packet is known by (originator, id). A node counts the copies it
//!   hears; the first copy of a broadcast, or of a message for it, goes to the
//!   application.
//! - The first copy of a packet not for this node, with hops left, is queued
//!   for rebroadcast with its hop limit decreased. Packets leave one at a time:
//!   the packet at the head of the queue waits a random number of slots (for a
//!   rebroadcast, from a window that grows with the SNR it was heard at, so
//!   distant nodes relay first; for the node's own packets, from a window that
//!   grows with channel use), then senses the channel (CAD) and waits again if
//!   it is busy. When the wait ends, a client that has heard the packet more
//!   than once (someone else rebroadcast it) drops it instead.
//! - An originator wants an ACK for every message: hearing any copy of its own
//!   packet relayed is an implicit ACK; the destination of a direct message
//!   floods a real ACK back. Without one, it retransmits after a timeout, three
//!   times.
//! - With a duty cycle set, a node refuses to queue anything while its last
//!   hour's transmit share is above it (firmware `Router::send`).

pub mod params;
#[cfg(test)]
mod tests;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::RngExt;
use rand_pcg::Pcg64Mcg;
use strand_link::lora::DutyCycle;
use strand_link::Instant;

use super::protocol::{Class, MeshProtocol, MessageId, NodeId, RadioEvent, RxInfo, SendError, BROADCAST};
pub use params::{ChannelUseWindow, FloodParams, Role, HOP_LIMIT_DEFAULT, HOP_LIMIT_MAX, MAX_PAYLOAD};
use wire::{Header, Port};

/// What this node knows about a packet.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Copies heard.
    copies: u32,
    /// This node has sent (queued) its ACK for it.
    acked: bool,
}

/// Why a packet is in the transmit queue.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// This node's message, first transmission or a retransmission.
    Own,
    /// A rebroadcast of someone else's packet, heard with this signal.
    Relay(RxInfo),
    /// This node's ACK.
    Ack,
}

#[derive(Debug, Clone)]
struct Outgoing {
    frame: Vec<u8>,
    key: (NodeId, u32),
    kind: Kind,
}

/// A message of this node's that waits for an ACK.
#[derive(Debug, Clone)]
struct Pending {
    id: u32,
    to: NodeId,
    frame: Vec<u8>,
    next_at: Instant,
    left: u8,
    /// An ACK came (looked at when the timer fires, if `settle_at_timeout`).
    acked: bool,
}

/// Channel use as a node measures it: airtime it sent and heard.
#[derive(Debug, Clone)]
struct ChannelUse {
    total: Duration,
    /// Six 10-second buckets: (bucket number, airtime).
    buckets: [(u64, Duration); 6],
}

impl ChannelUse {
    const BUCKET_US: u64 = 10_000_000;

    fn new() -> Self {
        ChannelUse { total: Duration::ZERO, buckets: [(u64::MAX, Duration::ZERO); 6] }
    }

    fn add(&mut self, now: Instant, airtime: Duration) {
        self.total += airtime;
        let n = now.as_micros() / Self::BUCKET_US;
        let b = &mut self.buckets[(n % 6) as usize];
        if b.0 != n {
            *b = (n, Duration::ZERO);
        }
        b.1 += airtime;
    }

    /// Percent of the time since the start.
    fn since_start(&self, now: Instant) -> f32 {
        let t = now.as_micros();
        if t == 0 {
            0.0
        } else {
            (self.total.as_micros() as f64 * 100.0 / t as f64) as f32
        }
    }

    /// Percent of the last minute (the current bucket and the five before it).
    fn last_minute(&self, now: Instant) -> f32 {
        let n = now.as_micros() / Self::BUCKET_US;
        let sum: Duration = self.buckets.iter().filter(|(b, _)| *b <= n && n - *b < 6).map(|(_, d)| *d).sum();
        (sum.as_micros() as f64 * 100.0 / 60e6) as f32
    }
}

/// What a flooding node did, for reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FloodStats {
    /// Frames transmitted.
    pub transmitted: u64,
    /// Rebroadcasts queued.
    pub relays_queued: u64,
    /// Queued packets dropped because another copy was overheard first.
    pub cancelled: u64,
    /// Retransmissions of own messages.
    pub retransmissions: u64,
    /// ACKs queued.
    pub acks_sent: u64,
    /// Own messages acknowledged (implicitly or explicitly).
    pub acked: u64,
    /// Own messages given up after the last retransmission.
    pub failed: u64,
    /// Packets refused by the duty cycle.
    pub duty_cycle_refused: u64,
    /// CAD found the channel busy.
    pub cad_busy: u64,
}

/// One node running managed flooding.
#[derive(Debug)]
pub struct FloodNode {
    id: NodeId,
    p: FloodParams,
    rng: Pcg64Mcg,
    next_id: u32,
    seen: HashMap<(NodeId, u32), Seen>,
    queue: VecDeque<Outgoing>,
    /// When the head of the queue's wait ends.
    head_due: Option<Instant>,
    transmitting: bool,
    pending: Vec<Pending>,
    deliveries: VecDeque<(NodeId, Vec<u8>)>,
    settled: VecDeque<(MessageId, bool)>,
    channel_use: ChannelUse,
    duty: DutyCycle<2048>,
    /// What the node did.
    pub stats: FloodStats,
}

impl FloodNode {
    /// Node `id` with `params`, its random choices from `rng`.
    pub fn new(id: NodeId, params: FloodParams, rng: Pcg64Mcg) -> FloodNode {
        let duty = DutyCycle::per_hour(params.duty_cycle_ppm.unwrap_or(strand_link::lora::NO_LIMIT_PPM));
        FloodNode {
            id,
            p: params,
            rng,
            next_id: 1,
            seen: HashMap::new(),
            queue: VecDeque::new(),
            head_due: None,
            transmitting: false,
            pending: Vec::new(),
            deliveries: VecDeque::new(),
            settled: VecDeque::new(),
            channel_use: ChannelUse::new(),
            duty,
            stats: FloodStats::default(),
        }
    }

    /// The node's address.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The parameters.
    pub fn params(&self) -> &FloodParams {
        &self.p
    }

    /// Channel use (sent and heard) in percent, as this node's contention window sees it.
    pub fn channel_use_percent(&self, now: Instant) -> f32 {
        match self.p.channel_use_window {
            ChannelUseWindow::SinceStart => self.channel_use.since_start(now),
            ChannelUseWindow::LastMinute => self.channel_use.last_minute(now),
        }
    }

    /// The random wait before `kind` may be sent.
    fn contention_delay(&mut self, now: Instant, kind: Kind) -> Duration {
        let slots = match kind {
            Kind::Relay(info) => {
                let snr = match self.p.snr_from_rssi_noise_dbm {
                    Some(noise) => info.rssi_dbm - noise,
                    None => info.snr_db,
                };
                let cw = self.p.cw_for_snr(snr);
                match self.p.role {
                    Role::Router => self.rng.random_range(0..2 * cw),
                    Role::Client | Role::ClientMute => {
                        self.p.client_offset_slots + self.rng.random_range(0..1u32 << cw)
                    }
                }
            }
            Kind::Own | Kind::Ack => {
                let cw = self.p.cw_for_channel_use(self.channel_use_percent(now));
                self.rng.random_range(0..1u32 << cw)
            }
        };
        self.p.slot * slots
    }

    /// Queues a frame, unless the duty cycle is used up (firmware `Router::send`).
    fn enqueue(&mut self, now: Instant, out: Outgoing) -> Result<(), SendError> {
        if self.p.duty_cycle_ppm.is_some() && self.duty.used(now) > self.duty.limit() {
            self.stats.duty_cycle_refused += 1;
            return Err(SendError::DutyCycle);
        }
        self.queue.push_back(out);
        if self.queue.len() == 1 && !self.transmitting {
            self.head_due = Some(now + self.contention_delay(now, self.queue[0].kind));
        }
        Ok(())
    }

    /// The head has left (sent or dropped): the next one starts its wait.
    fn next_head(&mut self, now: Instant) {
        self.queue.pop_front();
        self.head_due = match self.queue.front() {
            Some(o) => {
                let kind = o.kind;
                Some(now + self.contention_delay(now, kind))
            }
            None => None,
        };
    }

    /// An ACK for own packet `id` came: no more retransmissions.
    fn acknowledged(&mut self, id: u32) {
        let Some(i) = self.pending.iter().position(|p| p.id == id && !p.acked) else { return };
        self.stats.acked += 1;
        if self.p.settle_at_timeout {
            self.pending[i].acked = true;
        } else {
            self.pending.swap_remove(i);
            self.settled.push_back((id, true));
        }
    }

    fn on_frame(&mut self, now: Instant, frame: &[u8], info: RxInfo) {
        let Some((h, payload)) = Header::parse(frame) else { return };
        let key = (h.from, h.id);
        let seen = self.seen.entry(key).or_default();
        seen.copies += 1;
        let (first, acked) = (seen.copies == 1, seen.acked);
        if h.from == self.id {
            // Someone relayed our packet: an implicit ACK.
            self.acknowledged(h.id);
            return;
        }
        if h.port == Port::Routing && h.to == self.id {
            if payload.len() >= 2 && (!self.p.acks_only_direct || h.hop_start == h.hop_limit) {
                let request = u16::from_le_bytes([payload[0], payload[1]]);
                if let Some(p) = self.pending.iter().find(|p| p.to == h.from && p.id as u16 == request) {
                    let id = p.id;
                    self.acknowledged(id);
                }
            }
            return;
        }
        if h.to == self.id {
            if first {
                self.deliveries.push_back((h.from, payload.to_vec()));
            }
            if h.want_ack && !acked {
                if let Some(s) = self.seen.get_mut(&key) {
                    s.acked = true;
                }
                let ack = Header {
                    to: h.from,
                    from: self.id,
                    id: self.take_id(),
                    hop_limit: self.hop_limit(),
                    hop_start: self.hop_limit(),
                    want_ack: false,
                    port: Port::Routing,
                    relay: self.id as u8,
                };
                let mut body = vec![0; self.p.ack_payload_len.max(2)];
                body[..2].copy_from_slice(&(h.id as u16).to_le_bytes());
                let out = Outgoing { frame: ack.to_frame(&body), key: (self.id, ack.id), kind: Kind::Ack };
                if self.enqueue(now, out).is_ok() {
                    self.stats.acks_sent += 1;
                }
            }
            return;
        }
        if first && h.to == BROADCAST && h.port == Port::Text {
            self.deliveries.push_back((h.from, payload.to_vec()));
        }
        if first && h.hop_limit > 0 && self.p.role != Role::ClientMute {
            let relay = Header { hop_limit: h.hop_limit - 1, relay: self.id as u8, ..h };
            let out =
                Outgoing { frame: relay.to_frame(payload), key: (h.from, h.id), kind: Kind::Relay(info) };
            if self.enqueue(now, out).is_ok() {
                self.stats.relays_queued += 1;
            }
        }
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn hop_limit(&self) -> u8 {
        self.p.hop_limit.min(HOP_LIMIT_MAX)
    }

    /// Copies of a packet heard after which a queued copy is dropped.
    fn cancel_after(&self) -> u32 {
        match self.p.role {
            Role::Router => 2,
            Role::Client | Role::ClientMute => 1,
        }
    }
}

impl MeshProtocol for FloodNode {
    fn send(
        &mut self,
        now: Instant,
        to: NodeId,
        class: Class,
        payload: &[u8],
    ) -> Result<MessageId, SendError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(SendError::TooLong);
        }
        let gate = match class {
            Class::Message => None,
            Class::Background => Some(self.p.max_channel_use_percent),
            Class::Telemetry => Some(self.p.polite_channel_use_percent),
        };
        if gate.is_some_and(|g| self.channel_use.last_minute(now) >= g) {
            return Err(SendError::ChannelBusy);
        }
        let h = Header {
            to,
            from: self.id,
            id: self.take_id(),
            hop_limit: self.hop_limit(),
            hop_start: self.hop_limit(),
            want_ack: true,
            port: Port::Text,
            relay: self.id as u8,
        };
        let frame = h.to_frame(payload);
        self.seen.entry((self.id, h.id)).or_default();
        let timeout = self.p.retransmission_timeout(frame.len(), self.channel_use_percent(now));
        self.enqueue(now, Outgoing { frame: frame.clone(), key: (self.id, h.id), kind: Kind::Own })?;
        self.pending.push(Pending {
            id: h.id,
            to,
            frame,
            next_at: now + timeout,
            left: self.p.retransmissions,
            acked: false,
        });
        Ok(h.id)
    }

    fn handle_radio(&mut self, now: Instant, event: RadioEvent<'_>) {
        match event {
            RadioEvent::Received { frame, info, airtime } => {
                self.channel_use.add(now, airtime);
                self.on_frame(now, frame, info);
            }
            RadioEvent::Garbled { airtime } => self.channel_use.add(now, airtime),
            RadioEvent::TxDone => {
                self.transmitting = false;
                self.next_head(now);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].next_at > now {
                i += 1;
                continue;
            }
            if self.pending[i].acked {
                let p = self.pending.swap_remove(i);
                self.settled.push_back((p.id, true));
                continue;
            }
            if self.pending[i].left == 0 {
                let p = self.pending.swap_remove(i);
                self.settled.push_back((p.id, false));
                self.stats.failed += 1;
                continue;
            }
            self.pending[i].left -= 1;
            let timeout =
                self.p.retransmission_timeout(self.pending[i].frame.len(), self.channel_use_percent(now));
            self.pending[i].next_at = now + timeout;
            let out = Outgoing {
                frame: self.pending[i].frame.clone(),
                key: (self.id, self.pending[i].id),
                kind: Kind::Own,
            };
            if self.enqueue(now, out).is_ok() {
                self.stats.retransmissions += 1;
            }
            i += 1;
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let head = if self.transmitting { None } else { self.head_due };
        let retx = self.pending.iter().map(|p| p.next_at).min();
        match (head, retx) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        cad: &mut dyn FnMut() -> bool,
        buf: &mut [u8],
    ) -> Option<usize> {
        loop {
            if self.transmitting || self.head_due? > now {
                return None;
            }
            if cad() {
                self.stats.cad_busy += 1;
                let kind = self.queue.front()?.kind;
                self.head_due = Some(now + self.contention_delay(now, kind));
                return None;
            }
            let head = self.queue.front()?;
            let copies = self.seen.get(&head.key).map_or(0, |s| s.copies);
            if head.kind != Kind::Ack && copies > self.cancel_after() {
                // Someone else's rebroadcast got there first.
                self.stats.cancelled += 1;
                self.next_head(now);
                continue;
            }
            let len = head.frame.len();
            buf.get_mut(..len)?.copy_from_slice(&head.frame);
            let airtime = self.p.modulation.time_on_air(len);
            self.transmitting = true;
            self.channel_use.add(now, airtime);
            self.duty.record(now, airtime);
            self.stats.transmitted += 1;
            return Some(len);
        }
    }

    fn poll_delivery(&mut self, buf: &mut [u8]) -> Option<(NodeId, usize)> {
        let (from, payload) = self.deliveries.front()?;
        let n = payload.len().min(buf.len());
        buf[..n].copy_from_slice(&payload[..n]);
        let from = *from;
        self.deliveries.pop_front();
        Some((from, n))
    }

    fn poll_settled(&mut self) -> Option<(MessageId, bool)> {
        self.settled.pop_front()
    }
}
