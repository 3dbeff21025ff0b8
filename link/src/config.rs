//! Tunables of a link. Defaults suit a 2 Mbit/s USB-serial line; radios and
//! slow lines pass their own.

use crate::time::Duration;

/// Number of channels with a configurable priority; higher channels use priority 0.
pub const PRIORITY_CHANNELS: usize = 16;

/// Link configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest DATA payload this side sends. The link also never exceeds what
    /// its frame capacity allows or what the peer advertised.
    pub max_payload: u16,
    /// Largest DATA payload while the line is shared: another channel has data
    /// queued or in flight, or had within the last second (spec 6.6). A frame
    /// cannot be interrupted, so its length is how long it can delay another
    /// channel's packet; a driver sets this to keep that short (the host: 50 ms
    /// of line time) and `max_payload` larger for one bulk channel alone.
    /// 0: no separate limit.
    pub shared_payload: u16,
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
    /// With `line_rate`: DATA frames are handed out only while the bytes handed
    /// out before will have left the line within this time (0: no limit). It
    /// bounds how long a new packet waits behind frames already handed to the
    /// driver, which no priority can overtake, without depending on ACKs.
    pub max_queue: Duration,
    /// `max_queue` while the line is shared between channels (0: the same).
    /// A new interactive packet waits behind what was handed out before it;
    /// about one short frame keeps that wait small (spec 6.3).
    pub shared_queue: Duration,
    /// Most payload bytes of first transmissions unacknowledged before new
    /// fragments wait (0: only the window limits). A driver that knows the
    /// line rate sets a round trip's worth or somewhat more, so frames do not
    /// pile up in buffers; with `max_queue` it is only the bound that holds
    /// should the line run slower than `line_rate` says.
    pub max_in_flight_bytes: u32,
    /// In-frame forward error correction (section 6.7): frames this side sends
    /// are protected at the strength the peer's error reports call for, and
    /// the peer may protect its own. Off (or a build without feature `fec`):
    /// this side sends plain frames and its HELLO asks the peer to (NO_FEC, 4.1).
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
            shared_payload: 0,
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
            max_queue: Duration::ZERO,
            shared_queue: Duration::ZERO,
            max_in_flight_bytes: 0,
            fec: true,
            priorities,
        }
    }
}

/// Longest time one frame may occupy a serial line while the line is shared
/// by two channels ([`Config::shared_payload`]): another channel's packet that
/// arrives while a frame is on the line waits for it to end. With half of it
/// as the queue ahead of the wire ([`Config::shared_queue`]), an interactive
/// round trip through `strand forward` beside a bulk transfer at 2 Mbit/s
/// takes ~21 ms (p50; 57 ms with 50 ms frames and a queue of one frame).
pub const MAX_FRAME_TIME: Duration = Duration::from_millis(20);

/// The frame time the retransmission floor is made of (three of them + 20 ms):
/// the floor that simulation found best (see [`Config::for_serial_line`]),
/// kept when shared frames became shorter.
const RTO_FRAME_TIME: Duration = Duration::from_millis(50);

/// Longest time one frame may occupy a serial line while one channel has it to
/// itself (a file transfer): nobody waits behind it, and the ~24 bytes a frame
/// costs are 4% of a 50 ms frame at 115,200 bit/s but 1% of a 200 ms one.
pub const BULK_FRAME_TIME: Duration = Duration::from_millis(200);

/// How far ahead of the wire frames are handed to the driver on a serial line
/// ([`Config::max_queue`]): long enough that a busy host refills the line in
/// time, short enough that a new packet does not wait long behind frames
/// already handed out.
pub const MAX_QUEUE_TIME: Duration = Duration::from_millis(50);

impl Config {
    /// Settings for a serial line of `baud` bit/s with `bits_per_byte` bits on
    /// the wire per byte (8N1: 10), for a link of `frame_capacity` bytes (`N`).
    /// What the host uses:
    ///
    /// - frames of at most [`MAX_FRAME_TIME`] of line time while channels share
    ///   the line, and [`BULK_FRAME_TIME`] while one has it alone (spec 6.6);
    /// - the line rate, so retransmission timers run from when a frame leaves,
    ///   not from when it is queued behind the frames before it (6.4), and
    ///   frames are handed out at most [`MAX_QUEUE_TIME`] ahead of the wire
    ///   (6.3), half a shared frame while the line is shared;
    /// - at most 100 ms of line time plus two of the larger frames in flight: a
    ///   bound on what waits in buffers should the line be slower than its rate
    ///   (the queue limit above is what normally holds);
    /// - an RTO floor of three 50 ms frame times + 20 ms (170 ms at 115,200
    ///   bit/s), and an initial RTO of twice that rather than 1 s: a timer runs
    ///   from when its frame left, so it covers the round trip, not the queue;
    ///   lower floors (70, 120 ms) bought nothing at BER 1e-3 in simulation and
    ///   cost needless repeats;
    /// - HELLO repeats that keep to a tenth of a slow line.
    pub fn for_serial_line(baud: u32, bits_per_byte: u32, frame_capacity: usize) -> Config {
        let rate = (u64::from(baud) / u64::from(bits_per_byte.max(1))).max(1);
        let cap = frame_capacity as u64;
        let payload_for = |t: Duration| (rate * t.as_millis() / 1000).clamp(256, u64::from(u16::MAX)) as u16;
        let shared = payload_for(MAX_FRAME_TIME);
        let bulk = payload_for(BULK_FRAME_TIME);
        let larger = u64::from(shared).max(u64::from(bulk).min(cap));
        let in_flight = rate / 10 + 2 * larger;
        let time_of = |bytes: u64| Duration::from_micros(bytes * 1_000_000 / rate);
        let frame_time = time_of(u64::from(shared).min(cap));
        let rto_frame = time_of(u64::from(payload_for(RTO_FRAME_TIME)).min(cap));
        let defaults = Config::default();
        let min_rto = defaults.min_rto.max(rto_frame * 3 + Duration::from_millis(20));
        Config {
            max_payload: bulk,
            shared_payload: shared,
            max_in_flight_bytes: in_flight.min(u64::from(u32::MAX)) as u32,
            line_rate: rate.min(u64::from(u32::MAX)) as u32,
            max_queue: MAX_QUEUE_TIME,
            shared_queue: frame_time / 2,
            min_rto,
            initial_rto: 2 * min_rto,
            // A HELLO is ~30 bytes on the wire.
            hello_interval: defaults.hello_interval.max(time_of(30 * 10)),
            ..defaults
        }
    }

    /// Priority of `channel`.
    pub fn priority(&self, channel: u8) -> u8 {
        self.priorities.get(channel as usize).copied().unwrap_or(0)
    }
}
