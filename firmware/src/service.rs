//! The node's own service on the link: its counters, readable by any host.
//!
//! A packet on [`SERVICE_CHANNEL`] (any content) asks; the node answers on
//! the same channel with one packet in the layout below. Binary and fixed,
//! not text, so the answer costs no formatting code in flash.
//!
//! ```text
//! 0        1      2        3        4 ..        then per port (PORT_FIELDS x u32 LE)
//! version  role   ports    0        node fields (NODE_FIELDS x u32 LE)
//! ```
//!
//! Node fields: uptime in ms, stream bytes relayed A->B, B->A, deliveries
//! dropped (stale or unrelayable), stream resets relayed, sessions restarted
//! by the node (fate sharing, see `bridge`). Port fields, in order: frames
//! sent, frames received, bytes sent, bytes received, retransmissions, CRC
//! errors, framing errors, peer restarts, payload bytes delivered, smoothed
//! RTT in µs, port errors (each counter modulo 2^32).

use strand_link::Stats;

/// The channel of the node's service (never relayed by a bridge).
pub const SERVICE_CHANNEL: u8 = 255;
/// Version of the answer's layout.
pub const STATS_VERSION: u8 = 1;
/// `u32` fields per port.
pub const PORT_FIELDS: usize = 11;
/// `u32` fields of the node.
pub const NODE_FIELDS: usize = 6;
/// Length of an answer with two ports.
pub const STATS_LEN_2: usize = 4 + 4 * (NODE_FIELDS + 2 * PORT_FIELDS);

/// Which role answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// [`crate::bridge::Bridge`].
    Bridge = 1,
    /// [`crate::loopback::Loopback`].
    Loopback = 2,
}

/// Counters of the node itself (not of one link).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Milliseconds since boot.
    pub uptime_ms: u32,
    /// Stream bytes written from port A's link into port B's.
    pub relayed_ab: u32,
    /// Stream bytes written from port B's link into port A's.
    pub relayed_ba: u32,
    /// Deliveries dropped: the rest of a restarted peer's old stream, or a
    /// packet that cannot cross (longer than one fragment).
    pub dropped: u32,
    /// Stream resets relayed.
    pub resets: u32,
    /// Sessions the node restarted itself, so that a restart on one side is
    /// seen on the other (fate sharing).
    pub restarts: u32,
}

/// Writes the answer into `out`; returns its length, or 0 if `out` is short.
pub fn encode(role: Role, node: &NodeStats, ports: &[(Stats, u32)], out: &mut [u8]) -> usize {
    let len = 4 + 4 * (NODE_FIELDS + ports.len() * PORT_FIELDS);
    if out.len() < len || ports.len() > usize::from(u8::MAX) {
        return 0;
    }
    out[..4].copy_from_slice(&[STATS_VERSION, role as u8, ports.len() as u8, 0]);
    let mut at = 4;
    let mut put = |v: u64| {
        out[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
        at += 4;
    };
    for v in [node.uptime_ms, node.relayed_ab, node.relayed_ba, node.dropped, node.resets, node.restarts] {
        put(u64::from(v));
    }
    for (s, errors) in ports {
        for v in [
            s.frames_tx,
            s.frames_rx,
            s.bytes_tx,
            s.bytes_rx,
            s.retransmits,
            s.crc_errors,
            s.framing_errors,
            s.peer_restarts,
            s.delivered_bytes,
            s.srtt_us,
            u64::from(*errors),
        ] {
            put(v);
        }
    }
    len
}

/// Reads field `i` of port `port` from an answer (for hosts and tests).
pub fn port_field(answer: &[u8], port: usize, i: usize) -> Option<u32> {
    field(answer, NODE_FIELDS + port * PORT_FIELDS + i)
}

/// Reads node field `i` from an answer.
pub fn node_field(answer: &[u8], i: usize) -> Option<u32> {
    field(answer, i)
}

fn field(answer: &[u8], i: usize) -> Option<u32> {
    let at = 4 + 4 * i;
    let b = answer.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_round_trips() {
        let node = NodeStats { uptime_ms: 7, relayed_ab: 1000, restarts: 2, ..Default::default() };
        let a = Stats { frames_tx: 5, srtt_us: 1234, ..Default::default() };
        let b = Stats { bytes_rx: (1 << 32) + 9, ..Default::default() };
        let mut out = [0u8; STATS_LEN_2];
        assert_eq!(encode(Role::Bridge, &node, &[(a.clone(), 0), (b, 3)], &mut out), STATS_LEN_2);
        assert_eq!(&out[..4], &[STATS_VERSION, 1, 2, 0]);
        assert_eq!(node_field(&out, 0), Some(7));
        assert_eq!(node_field(&out, 1), Some(1000));
        assert_eq!(node_field(&out, 5), Some(2));
        assert_eq!(port_field(&out, 0, 0), Some(5));
        assert_eq!(port_field(&out, 0, 9), Some(1234));
        assert_eq!(port_field(&out, 1, 3), Some(9), "counters travel modulo 2^32");
        assert_eq!(port_field(&out, 1, 10), Some(3));
        assert_eq!(port_field(&out, 2, 0), None);
        assert_eq!(encode(Role::Bridge, &node, &[(a, 0)], &mut out[..10]), 0);
    }
}
