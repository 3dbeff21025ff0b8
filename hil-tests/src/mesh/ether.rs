//! The shared medium: which frames are on the air, what every receiver makes
//! of them (heard, collided, missed while transmitting), and what channel
//! activity detection reports. It knows nothing of protocols or event queues,
//! so the simulator and a future "ether" process serving QEMU nodes over their
//! radio UARTs drive the same model: `start` a frame, `end` it, ask `cad_busy`.
//!
//! The rules (docs/mesh.md discusses each):
//! - a frame is heard by a receiver where its RSSI is at or above sensitivity;
//! - half duplex: a node that is transmitting when a frame starts, or starts
//!   transmitting during it, does not receive it;
//! - when a frame starts at a receiver while an earlier heard frame is on air
//!   there, and more than the grace (the first preamble symbols) overlaps, the
//!   two collide: both are lost unless one is `capture_db` stronger, which
//!   survives; a frame lost at its start does not go on to collide with later ones;
//! - CAD reports busy while the node receives a frame, or while a frame above
//!   the CAD threshold has been on air for at least the CAD blind time.

use std::time::Duration;

use rand::RngExt;
use rand_pcg::Pcg64Mcg;
use strand_link::Instant;

use super::radio::{Links, RadioConfig};

/// Index of a frame while it is on the air.
pub type FrameId = usize;

/// A frame on the air.
#[derive(Debug, Clone)]
struct Frame {
    tx: usize,
    start: Instant,
    end: Instant,
    bytes: Vec<u8>,
}

/// A frame as one receiver experiences it.
#[derive(Debug, Clone)]
struct Arrival {
    frame: FrameId,
    rssi: f64,
    start: Instant,
    end: Instant,
    /// At or above sensitivity: can be decoded, and can collide.
    heard: bool,
    /// Takes part in collisions with frames that start later (heard, and not lost at its start).
    interferes: bool,
    /// The receiver is locked onto it (heard, not lost at its start, receiver not transmitting).
    receiving: bool,
    collided: bool,
    /// The receiver was transmitting during it.
    deaf: bool,
}

/// What a receiver got when a frame ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Decoded.
    Received,
    /// Heard but lost to a collision.
    Collided,
    /// Heard but missed because the receiver was transmitting.
    Deaf,
}

/// One receiver's result for an ended frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reception {
    /// The receiving node.
    pub rx: usize,
    /// What it got.
    pub outcome: Outcome,
    /// The frame's RSSI there, dBm.
    pub rssi_dbm: f64,
}

/// The end of a frame: who sent it, its bytes, and every receiver's result.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The transmitting node.
    pub tx: usize,
    /// The frame.
    pub bytes: Vec<u8>,
    /// Its time on air.
    pub airtime: Duration,
    /// One entry per node that heard it (at or above sensitivity).
    pub receptions: Vec<Reception>,
}

/// The medium shared by all nodes of one run.
#[derive(Debug)]
pub struct Ether {
    cfg: RadioConfig,
    links: Links,
    /// Receivers worth telling about each transmitter's frames (above the CAD threshold).
    audience: Vec<Vec<usize>>,
    frames: Vec<Option<Frame>>,
    free: Vec<FrameId>,
    transmitting: Vec<Option<FrameId>>,
    arrivals: Vec<Vec<Arrival>>,
    cad_rng: Vec<Pcg64Mcg>,
}

impl Ether {
    /// An empty medium over `links`; `seed` drives the CAD's false alarms.
    pub fn new(cfg: RadioConfig, links: Links, seed: u64) -> Ether {
        let n = links.len();
        let cad = cfg.cad_threshold_dbm();
        let audience =
            (0..n).map(|tx| (0..n).filter(|&rx| rx != tx && links.rssi(tx, rx) >= cad).collect()).collect();
        Ether {
            audience,
            frames: Vec::new(),
            free: Vec::new(),
            transmitting: vec![None; n],
            arrivals: vec![Vec::new(); n],
            cad_rng: (0..n).map(|i| super::stream(seed, super::stream::CAD, i as u64)).collect(),
            cfg,
            links,
        }
    }

    /// The radio configuration.
    pub fn config(&self) -> &RadioConfig {
        &self.cfg
    }

    /// The links.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// Whether `node` is transmitting.
    pub fn is_transmitting(&self, node: usize) -> bool {
        self.transmitting[node].is_some()
    }

    /// Puts `bytes` from `tx` on the air at `now` for `airtime`; the caller ends it
    /// with [`Ether::end`] at `now + airtime`.
    pub fn start(&mut self, now: Instant, tx: usize, bytes: &[u8], airtime: Duration) -> FrameId {
        assert!(self.transmitting[tx].is_none(), "node {tx} is already transmitting");
        let end = now + airtime;
        let frame = Frame { tx, start: now, end, bytes: bytes.to_vec() };
        let id = match self.free.pop() {
            Some(id) => {
                self.frames[id] = Some(frame);
                id
            }
            None => {
                self.frames.push(Some(frame));
                self.frames.len() - 1
            }
        };
        self.transmitting[tx] = Some(id);
        // Half duplex: whatever the transmitter was receiving is lost to it.
        for a in &mut self.arrivals[tx] {
            a.deaf = true;
            a.receiving = false;
        }
        let grace = now + self.cfg.overlap_grace();
        for i in 0..self.audience[tx].len() {
            let rx = self.audience[tx][i];
            let rssi = self.links.rssi(tx, rx);
            let heard = rssi >= self.cfg.sensitivity_dbm;
            let mut new = Arrival {
                frame: id,
                rssi,
                start: now,
                end,
                heard,
                interferes: false,
                receiving: false,
                collided: false,
                deaf: false,
            };
            if heard {
                for other in self.arrivals[rx].iter_mut().filter(|o| o.interferes && o.end > grace) {
                    let margin = new.rssi - other.rssi;
                    if margin.abs() < self.cfg.capture_db {
                        new.collided = true;
                        other.collided = true;
                    } else if margin < 0.0 {
                        new.collided = true;
                    } else {
                        other.collided = true;
                    }
                }
                new.deaf = self.transmitting[rx].is_some();
                new.interferes = !new.collided;
                new.receiving = !new.collided && !new.deaf;
            }
            self.arrivals[rx].push(new);
        }
        id
    }

    /// Ends frame `id` at `now` (its end time) and reports what each receiver got.
    pub fn end(&mut self, now: Instant, id: FrameId) -> Ended {
        let frame = self.frames[id].take().expect("ending a frame that is not on the air");
        debug_assert_eq!(now, frame.end);
        self.free.push(id);
        self.transmitting[frame.tx] = None;
        let mut receptions = Vec::new();
        for &rx in &self.audience[frame.tx] {
            let list = &mut self.arrivals[rx];
            let Some(pos) = list.iter().position(|a| a.frame == id) else { continue };
            let a = list.swap_remove(pos);
            if !a.heard {
                continue;
            }
            let outcome = if a.collided {
                Outcome::Collided
            } else if a.deaf {
                Outcome::Deaf
            } else {
                Outcome::Received
            };
            receptions.push(Reception { rx, outcome, rssi_dbm: a.rssi });
        }
        Ended { tx: frame.tx, bytes: frame.bytes, airtime: frame.end.since(frame.start).into(), receptions }
    }

    /// Channel activity detection at `node`, `now`: busy while it transmits or
    /// receives, or while a frame above the CAD threshold has been on air for the
    /// CAD blind time, or by a false alarm (`cad_false_busy`).
    pub fn cad_busy(&mut self, now: Instant, node: usize) -> bool {
        if self.cfg.cad_false_busy > 0.0 && self.cad_rng[node].random_bool(self.cfg.cad_false_busy) {
            return true;
        }
        let blind = self.cfg.cad_blind;
        self.transmitting[node].is_some()
            || self.arrivals[node].iter().any(|a| a.receiving || (a.start + blind <= now && now <= a.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1000;

    /// Three nodes with chosen RSSIs (`rssi[tx][rx]`) and no false CAD alarms.
    fn ether(rssi: [[f64; 3]; 3]) -> Ether {
        let mut cfg = RadioConfig::ref30();
        cfg.cad_false_busy = 0.0;
        let links = Links::from_matrix(&rssi.iter().map(|r| r.to_vec()).collect::<Vec<_>>());
        Ether::new(cfg, links, 1)
    }

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * MS)
    }

    fn outcome_at(e: &Ended, rx: usize) -> Option<Outcome> {
        e.receptions.iter().find(|r| r.rx == rx).map(|r| r.outcome)
    }

    const AIR: Duration = Duration::from_millis(680);

    #[test]
    fn a_lone_frame_is_received_where_it_is_heard() {
        // 0 -> 1 at -120 dBm (heard), 0 -> 2 at -133 dBm (below -131.5: not heard, but CAD sees it).
        let mut e = ether([[0.0, -120.0, -133.0], [-120.0, 0.0, -200.0], [-133.0, -200.0, 0.0]]);
        let f = e.start(at(0), 0, b"hello", AIR);
        assert!(e.is_transmitting(0));
        let end = e.end(at(680), f);
        assert_eq!(end.bytes, b"hello");
        assert_eq!(outcome_at(&end, 1), Some(Outcome::Received));
        assert_eq!(outcome_at(&end, 2), None, "below sensitivity");
        assert!(!e.is_transmitting(0));
    }

    #[test]
    fn overlapping_frames_of_similar_strength_both_collide() {
        // 0 and 2 both reach 1, 3 dB apart: both lost at 1.
        let mut e = ether([[0.0, -110.0, -200.0], [-200.0, 0.0, -200.0], [-200.0, -113.0, 0.0]]);
        let a = e.start(at(0), 0, b"a", AIR);
        let b = e.start(at(300), 2, b"b", AIR);
        assert_eq!(outcome_at(&e.end(at(680), a), 1), Some(Outcome::Collided));
        assert_eq!(outcome_at(&e.end(at(980), b), 1), Some(Outcome::Collided));
    }

    #[test]
    fn a_frame_6_db_stronger_captures_the_receiver() {
        // Later and 6 dB stronger: it survives, the earlier one is lost.
        let mut e = ether([[0.0, -120.0, -200.0], [-200.0, 0.0, -200.0], [-200.0, -114.0, 0.0]]);
        let weak = e.start(at(0), 0, b"w", AIR);
        let strong = e.start(at(300), 2, b"s", AIR);
        assert_eq!(outcome_at(&e.end(at(680), weak), 1), Some(Outcome::Collided));
        assert_eq!(outcome_at(&e.end(at(980), strong), 1), Some(Outcome::Received));
        // Earlier and 6 dB stronger: it survives, the later one is lost.
        let mut e = ether([[0.0, -114.0, -200.0], [-200.0, 0.0, -200.0], [-200.0, -120.0, 0.0]]);
        let strong = e.start(at(0), 0, b"s", AIR);
        let weak = e.start(at(300), 2, b"w", AIR);
        assert_eq!(outcome_at(&e.end(at(680), strong), 1), Some(Outcome::Received));
        assert_eq!(outcome_at(&e.end(at(980), weak), 1), Some(Outcome::Collided));
        // 5.9 dB is not enough.
        let mut e = ether([[0.0, -114.1, -200.0], [-200.0, 0.0, -200.0], [-200.0, -120.0, 0.0]]);
        let a = e.start(at(0), 0, b"a", AIR);
        let b = e.start(at(300), 2, b"b", AIR);
        assert_eq!(outcome_at(&e.end(at(680), a), 1), Some(Outcome::Collided));
        assert_eq!(outcome_at(&e.end(at(980), b), 1), Some(Outcome::Collided));
    }

    #[test]
    fn a_frame_starting_in_the_last_preamble_symbols_of_another_does_not_collide() {
        // Grace: 11 LongFast symbols = 90.112 ms. A starts at 0 and ends at 680 ms.
        let rssi = [[0.0, -110.0, -200.0], [-200.0, 0.0, -200.0], [-200.0, -111.0, 0.0]];
        let mut e = ether(rssi);
        let a = e.start(at(0), 0, b"a", AIR);
        let b = e.start(at(600), 2, b"b", AIR); // 600 + 90.1 > 680: only its preamble overlaps
        assert_eq!(outcome_at(&e.end(at(680), a), 1), Some(Outcome::Received));
        assert_eq!(outcome_at(&e.end(at(1280), b), 1), Some(Outcome::Received));
        let mut e = ether(rssi);
        let a = e.start(at(0), 0, b"a", AIR);
        let b = e.start(at(580), 2, b"b", AIR); // 580 + 90.1 < 680: more than the grace overlaps
        assert_eq!(outcome_at(&e.end(at(680), a), 1), Some(Outcome::Collided));
        assert_eq!(outcome_at(&e.end(at(1260), b), 1), Some(Outcome::Collided));
    }

    #[test]
    fn half_duplex_a_transmitting_node_hears_nothing() {
        let rssi = [[0.0, -110.0, -200.0], [-110.0, 0.0, -110.0], [-200.0, -110.0, 0.0]];
        // 1 transmits first: 0's frame, starting during it, is lost to 1.
        let mut e = ether(rssi);
        let own = e.start(at(0), 1, b"own", AIR);
        let other = e.start(at(100), 0, b"x", AIR);
        let end = e.end(at(680), own);
        assert_eq!(outcome_at(&end, 0), Some(Outcome::Deaf), "0 was transmitting when 1's frame ended");
        assert_eq!(outcome_at(&end, 2), Some(Outcome::Received));
        assert_eq!(outcome_at(&e.end(at(780), other), 1), Some(Outcome::Deaf));
        // 1 starts transmitting while receiving: the frame in progress is lost to it.
        let mut e = ether(rssi);
        let incoming = e.start(at(0), 0, b"in", AIR);
        let _own = e.start(at(200), 1, b"own", AIR);
        assert_eq!(outcome_at(&e.end(at(680), incoming), 1), Some(Outcome::Deaf));
    }

    #[test]
    fn cad_sees_frames_after_the_blind_time_and_receptions_at_once() {
        // 0 -> 1 heard; 2 -> 1 only above the CAD threshold (-133 dBm, threshold -134.5).
        let rssi = [[0.0, -110.0, -200.0], [-200.0, 0.0, -200.0], [-200.0, -133.0, 0.0]];
        let mut e = ether(rssi);
        assert!(!e.cad_busy(at(0), 1));
        let weak = e.start(at(0), 2, b"w", AIR);
        assert!(!e.cad_busy(at(50), 1), "within the 77.2 ms blind time");
        assert!(e.cad_busy(at(78), 1), "after it");
        assert!(!e.cad_busy(at(78), 0), "0 does not hear 2 at all");
        e.end(at(680), weak);
        assert!(!e.cad_busy(at(680), 1));
        // A heard frame makes the receiver busy from its start (it is receiving).
        let strong = e.start(at(1000), 0, b"s", AIR);
        assert!(e.cad_busy(at(1000), 1));
        assert!(e.cad_busy(at(1000), 0), "a transmitting node's channel is busy");
        e.end(at(1680), strong);
        assert!(!e.cad_busy(at(1680), 1));
    }

    #[test]
    fn false_cad_alarms_come_at_the_configured_rate() {
        let mut e = ether([[0.0, -110.0, -110.0], [-110.0, 0.0, -110.0], [-110.0, -110.0, 0.0]]);
        e.cfg.cad_false_busy = 0.1;
        let busy = (0..10_000).filter(|_| e.cad_busy(at(0), 0)).count();
        assert!((800..1200).contains(&busy), "{busy} of 10,000 (seed 1)");
    }
}
