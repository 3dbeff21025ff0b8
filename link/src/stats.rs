//! Counters for `strand stats`, benchmarks and tests.

/// Per-link counters. All only ever grow, except the gauges marked as such.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the driver.
    pub frames_tx: u64,
    /// Bytes handed to the driver (COBS and delimiters included).
    pub bytes_tx: u64,
    /// Bytes fed in by the driver.
    pub bytes_rx: u64,
    /// Frames that passed the CRC.
    pub frames_rx: u64,
    /// DATA frames sent for the first time.
    pub data_tx: u64,
    /// DATA frames sent again.
    pub retransmits: u64,
    /// Payload bytes of those.
    pub retransmitted_bytes: u64,
    /// Retransmissions triggered by SACK evidence rather than a timeout.
    pub fast_retransmits: u64,
    /// Retransmission timeouts that fired.
    pub timeouts: u64,
    /// Retransmitted frames whose first copy turned out to have arrived: the
    /// acknowledgement came too soon after the repeat to be for it (spec 6.4).
    pub spurious_retransmits: u64,
    /// ACK frames sent.
    pub acks_tx: u64,
    /// Frames dropped for a bad CRC.
    pub crc_errors: u64,
    /// Byte runs dropped for invalid COBS, overflow, or too short for a frame.
    pub framing_errors: u64,
    /// CRC-valid frames of unknown type, other version or bad fields.
    pub invalid_frames: u64,
    /// Frames carrying a session id that is not the current peer's.
    pub foreign_session: u64,
    /// DATA frames received twice.
    pub duplicates: u64,
    /// DATA frames outside the receive window.
    pub out_of_window: u64,
    /// Payload bytes delivered to the application.
    pub delivered_bytes: u64,
    /// Times the peer restarted.
    pub peer_restarts: u64,
    /// HELLOs of another session that did not end a live session: the peer
    /// was heard after them (stale, replayed or foreign; spec 5.3).
    pub stale_hellos: u64,
    /// POLLs sent because written confirmations were missing with nothing in
    /// flight (spec 8.3): the ACK that carried them was lost, or the peer's
    /// application is slow to write.
    pub confirm_polls: u64,
    /// Gauge: smoothed round-trip time in microseconds (0 until measured).
    pub srtt_us: u64,
    /// Gauge: current retransmission timeout in microseconds.
    pub rto_us: u64,
    /// Gauge: DATA payload size currently used for new fragments.
    pub payload_size: u16,
    /// Gauge: frames in flight.
    pub in_flight: u16,
    /// Gauge: the path's delivery rate in bytes/s as measured from
    /// acknowledgements (spec 6.8; 0 until measured).
    pub path_rate: u64,
    /// Protected (FEC) frames received.
    pub fec_frames_rx: u64,
    /// Symbols the FEC corrected (bytes; byte pairs in frame-wide codes).
    pub fec_corrected: u64,
    /// Protected frames beyond repair.
    pub fec_failed: u64,
    /// Protected frames sent.
    pub fec_frames_tx: u64,
    /// Gauge: the peer's last error report, the ACK hint of spec 6.7
    /// (255: none yet).
    pub fec_hint: u8,
    /// Gauge: the FEC strength of frames sent now.
    pub fec_strength: crate::fec::Strength,
}

impl Stats {
    /// Adds `other`'s counters to these and takes its gauges: a line's
    /// counters and its connections' summed (with one connection, its gauges).
    pub fn absorb(&mut self, other: &Stats) {
        macro_rules! sum {
            ($($f:ident),*) => { $( self.$f += other.$f; )* };
        }
        sum!(
            frames_tx,
            bytes_tx,
            bytes_rx,
            frames_rx,
            data_tx,
            retransmits,
            retransmitted_bytes,
            fast_retransmits,
            timeouts,
            spurious_retransmits,
            acks_tx,
            crc_errors,
            framing_errors,
            invalid_frames,
            foreign_session,
            duplicates,
            out_of_window,
            delivered_bytes,
            peer_restarts,
            stale_hellos,
            confirm_polls,
            fec_frames_rx,
            fec_corrected,
            fec_failed,
            fec_frames_tx
        );
        self.srtt_us = other.srtt_us;
        self.rto_us = other.rto_us;
        self.payload_size = other.payload_size;
        self.in_flight = other.in_flight;
        self.path_rate = other.path_rate;
        self.fec_hint = other.fec_hint;
        self.fec_strength = other.fec_strength;
    }
}
