//! Tunables of a link. Defaults suit a 2 Mbit/s USB-serial line; radios and
//! slow lines pass their own.

use core::time::Duration;

/// Number of channels with a configurable priority; higher channels use priority 0.
pub const PRIORITY_CHANNELS: usize = 16;

/// Link configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest DATA payload this side sends. The link also never exceeds what
    /// its frame capacity allows or what the peer advertised.
    pub max_payload: u16,
    /// Smallest payload the adaptive sizer will choose.
    pub min_payload: u16,
    /// Shrink frames when the measured frame loss says shorter frames would
    /// carry more (section 6.6), grow them back when the line is clean.
    pub adaptive_payload: bool,
    /// Retransmission timeout before any round trip was measured.
    pub initial_rto: Duration,
    /// Floor of the retransmission timeout.
    pub min_rto: Duration,
    /// Ceiling of the retransmission timeout, backoff included.
    pub max_rto: Duration,
    /// HELLO repeat interval while the handshake is incomplete.
    pub hello_interval: Duration,
    /// Silence after which an ACK with POLL is sent to probe the peer.
    pub keepalive: Duration,
    /// Silence after which the link is reported down.
    pub link_timeout: Duration,
    /// Acknowledge at once after this many in-order DATA frames.
    pub ack_every: u8,
    /// Otherwise acknowledge at most this long after a DATA frame arrives.
    pub ack_delay: Duration,
    /// A frame is deemed lost once a frame sent this many transmissions after
    /// it has been acknowledged (1 on serial lines, which never reorder).
    pub reorder_threshold: u8,
    /// Send a delimiter before a frame when the line was idle this long, so a
    /// frame never merges with noise that arrived in between.
    pub idle_resync: Duration,
    /// The line's rate in bytes per second (8N1: bit rate / 10), or 0 if not
    /// known. With it the core works out when each frame's last byte leaves,
    /// behind the bytes it handed out before, and runs the frame's
    /// retransmission timer and RTT sample from then (spec 6.3, 6.4): on a slow
    /// line the wait in the driver's buffer can be longer than the round trip.
    pub line_rate: u32,
    /// Most bytes of new frames in flight (0: only the window limits). A driver
    /// that knows the line rate sets about one round trip of it, so frames do
    /// not queue in buffers where they inflate the RTT and fire timers.
    pub max_in_flight_bytes: u32,
    /// Allow in-frame forward error correction on frames this side sends, at
    /// the strength the peer's error reports call for (section 6.7).
    pub fec: bool,
    /// Priority per channel (higher goes first). Default: 255 minus the channel
    /// number, so channel 0 (control) beats 1 (interactive) beats 2 (bulk).
    pub priorities: [u8; PRIORITY_CHANNELS],
}

impl Default for Config {
    fn default() -> Self {
        let mut priorities = [0u8; PRIORITY_CHANNELS];
        for (ch, p) in priorities.iter_mut().enumerate() {
            *p = 255 - ch as u8;
        }
        Config {
            max_payload: u16::MAX,
            min_payload: 64,
            adaptive_payload: true,
            initial_rto: Duration::from_millis(1000),
            min_rto: Duration::from_millis(50),
            max_rto: Duration::from_millis(2000),
            hello_interval: Duration::from_millis(50),
            keepalive: Duration::from_millis(1000),
            link_timeout: Duration::from_millis(5000),
            ack_every: 2,
            ack_delay: Duration::from_millis(2),
            reorder_threshold: 1,
            idle_resync: Duration::from_millis(10),
            line_rate: 0,
            max_in_flight_bytes: 0,
            fec: true,
            priorities,
        }
    }
}

impl Config {
    /// Priority of `channel`.
    pub fn priority(&self, channel: u8) -> u8 {
        self.priorities.get(channel as usize).copied().unwrap_or(0)
    }
}
