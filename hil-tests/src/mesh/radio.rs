//! The radio channel between fixed nodes: transmit power, log-distance path
//! loss with per-link shadowing, and what each receiver can hear, sense or
//! capture. Everything about a run's links is drawn once, from its seed.

use std::time::Duration;

use rand::RngExt;
use strand_link::lora::{Modulation, Preset};

use super::layout::Layout;
use super::stream;

/// Log-distance path loss: `PL(d) = pl_d0 + 10 n log10(d / d0)` dB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogDistance {
    /// Loss at the reference distance, dB.
    pub pl_d0_db: f64,
    /// Reference distance, m.
    pub d0_m: f64,
    /// Path-loss exponent n.
    pub exponent: f64,
}

impl LogDistance {
    /// The model Meshtasticator (and LoRaSim before it) calls "log-distance":
    /// 127.41 dB at 40 m, exponent 2.08 (Bor et al., measured at 868 MHz).
    pub const REF30: LogDistance = LogDistance { pl_d0_db: 127.41, d0_m: 40.0, exponent: 2.08 };

    /// Path loss at `d_m` metres, dB. Distances under a millimetre count as one
    /// (co-located nodes must not give an infinite signal).
    pub fn loss_db(&self, d_m: f64) -> f64 {
        self.pl_d0_db + 10.0 * self.exponent * (d_m.max(1e-3) / self.d0_m).log10()
    }
}

/// LoRa receiver sensitivity: thermal noise in the bandwidth, plus the noise
/// figure, plus the lowest SNR the spreading factor demodulates
/// (-7.5 dB at SF7 down to -20 dB at SF12, Semtech SX127x datasheet).
pub fn sensitivity_dbm(m: &Modulation, noise_figure_db: f64) -> f64 {
    noise_floor_dbm(m, noise_figure_db) + demod_snr_db(m.sf())
}

/// Noise power in the bandwidth: -174 dBm/Hz + 10 log10(BW) + noise figure.
pub fn noise_floor_dbm(m: &Modulation, noise_figure_db: f64) -> f64 {
    -174.0 + 10.0 * (m.bw_hz() as f64).log10() + noise_figure_db
}

/// Lowest SNR a spreading factor demodulates, dB: -2.5 dB per step from SF7's -7.5.
pub fn demod_snr_db(sf: u8) -> f64 {
    -7.5 - 2.5 * (sf as f64 - 7.0)
}

/// Everything about the channel that is the same for every node.
#[derive(Debug, Clone, PartialEq)]
pub struct RadioConfig {
    /// Modulation of every frame.
    pub modulation: Modulation,
    /// Carrier frequency, Hz (duty-cycle sub-band).
    pub freq_hz: u32,
    /// Transmit power, dBm (antenna gains 0 dBi).
    pub tx_power_dbm: f64,
    /// Median path loss.
    pub path_loss: LogDistance,
    /// Standard deviation of the shadowing added to each directed link, dB,
    /// drawn once per run (links are not symmetric).
    pub shadowing_sigma_db: f64,
    /// A frame at or above this RSSI is heard (and can collide with others).
    pub sensitivity_dbm: f64,
    /// Channel activity detection sees frames this much weaker than sensitivity.
    pub cad_margin_db: f64,
    /// Noise floor from which the SNR a receiver reports is computed, dBm.
    pub noise_floor_dbm: f64,
    /// Of two overlapping frames, one this much stronger survives (capture), dB.
    pub capture_db: f64,
    /// A frame that starts while another is on air does not collide with it if
    /// only this many of its first preamble symbols overlap (the receiver still
    /// locks onto the rest of its preamble).
    pub overlap_grace_symbols: u32,
    /// A CAD sees a frame only once it has been on air this long (CAD duration,
    /// turnaround and processing: Meshtastic's slot time).
    pub cad_blind: Duration,
    /// Chance that a CAD reports a busy channel regardless (traffic outside the mesh).
    pub cad_false_busy: f64,
}

impl RadioConfig {
    /// REF-30's radio: LongFast at 869.525 MHz, 27 dBm, the log-distance model
    /// with 3 dB shadowing, -131.5 dBm sensitivity, 6 dB capture — and, where the
    /// shared README is silent, what Meshtasticator (the reference) does: CAD 3 dB
    /// below sensitivity after its 77.2 ms slot, 11 symbols of preamble overlap
    /// forgiven, a -119.25 dBm noise level, and a 10% chance a CAD reports busy
    /// (its "interference level" 0.05 as the code reads it). docs/mesh.md lists these.
    pub fn ref30() -> RadioConfig {
        let modulation = Preset::LongFast.modulation();
        RadioConfig {
            modulation,
            freq_hz: 869_525_000,
            tx_power_dbm: 27.0,
            path_loss: LogDistance::REF30,
            shadowing_sigma_db: 3.0,
            sensitivity_dbm: -131.5,
            cad_margin_db: 3.0,
            noise_floor_dbm: -119.25,
            capture_db: 6.0,
            overlap_grace_symbols: modulation.preamble() as u32 - 5,
            cad_blind: meshtasticator_slot(&modulation),
            cad_false_busy: 0.1,
        }
    }

    /// The RSSI threshold of channel activity detection.
    pub fn cad_threshold_dbm(&self) -> f64 {
        self.sensitivity_dbm - self.cad_margin_db
    }

    /// Time at the start of a frame during which another frame may start on top
    /// of it without a collision.
    pub fn overlap_grace(&self) -> Duration {
        self.modulation.symbol_time() * self.overlap_grace_symbols
    }
}

/// Meshtasticator's slot time: 8.5 symbols of CAD + 0.2 ms propagation + 0.4 ms
/// turnaround + 7 ms MAC processing (77.232 ms for LongFast). The firmware
/// today counts 2.5 symbols of CAD (28.08 ms).
pub fn meshtasticator_slot(m: &Modulation) -> Duration {
    m.symbol_time().mul_f64(8.5) + Duration::from_micros(7_600)
}

/// Meshtastic firmware's slot time (`RadioInterface::computeSlotTimeMsec`): 2.5
/// symbols of CAD (SX126x, RadioLib's 2-symbol CAD + 0.5) + 7.6 ms.
pub fn firmware_slot(m: &Modulation) -> Duration {
    m.symbol_time().mul_f64(2.5) + Duration::from_micros(7_600)
}

/// The received power on every directed link of one run.
#[derive(Debug, Clone)]
pub struct Links {
    n: usize,
    /// `rssi[tx * n + rx]`, dBm.
    rssi: Vec<f64>,
}

impl Links {
    /// Draws the run's links: median path loss from the layout, plus one
    /// Gaussian shadowing term per directed link from `seed`'s shadowing stream.
    pub fn new(layout: &Layout, cfg: &RadioConfig, seed: u64) -> Links {
        let n = layout.len();
        let mut rng = stream(seed, stream::SHADOWING, 0);
        let mut rssi = vec![f64::NEG_INFINITY; n * n];
        for tx in 0..n {
            for rx in 0..n {
                if tx == rx {
                    continue;
                }
                let d = layout.positions[tx].distance(&layout.positions[rx]);
                let shadow = cfg.shadowing_sigma_db * standard_normal(&mut rng);
                rssi[tx * n + rx] = cfg.tx_power_dbm - cfg.path_loss.loss_db(d) - shadow;
            }
        }
        Links { n, rssi }
    }

    /// Links with given RSSI values (`rssi[tx][rx]`, the diagonal ignored): for tests.
    pub fn from_matrix(rssi: &[Vec<f64>]) -> Links {
        let n = rssi.len();
        let mut flat = vec![f64::NEG_INFINITY; n * n];
        for (tx, row) in rssi.iter().enumerate() {
            for (rx, &v) in row.iter().enumerate().take(n) {
                if tx != rx {
                    flat[tx * n + rx] = v;
                }
            }
        }
        Links { n, rssi: flat }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// RSSI at `rx` of a frame from `tx`, dBm.
    pub fn rssi(&self, tx: usize, rx: usize) -> f64 {
        self.rssi[tx * self.n + rx]
    }

    /// Whether `rx` hears `tx` (at or above sensitivity).
    pub fn usable(&self, cfg: &RadioConfig, tx: usize, rx: usize) -> bool {
        tx != rx && self.rssi(tx, rx) >= cfg.sensitivity_dbm
    }
}

/// A standard normal sample (Box-Muller; one of the pair is enough here).
fn standard_normal(rng: &mut rand_pcg::Pcg64Mcg) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::layout::Position;

    #[test]
    fn path_loss_is_127_41_db_at_40_m_and_20_8_db_per_decade() {
        let pl = LogDistance::REF30;
        assert!((pl.loss_db(40.0) - 127.41).abs() < 1e-9);
        assert!((pl.loss_db(400.0) - 148.21).abs() < 1e-9);
        // REF-30's range: 27 dBm - PL(d) = -131.5 dBm at d = 40 m x 10^(31.09 / 20.8) = 1250 m.
        let range = 40.0 * 10f64.powf((27.0 + 131.5 - 127.41) / 20.8);
        assert!((range - 1249.6).abs() < 0.1, "{range}");
        assert!((27.0 - pl.loss_db(range) + 131.5).abs() < 1e-9);
    }

    #[test]
    fn long_fast_sensitivity_is_minus_131_5_dbm() {
        let m = Preset::LongFast.modulation();
        // -174 + 10 log10(250 kHz) + 6 dB noise figure - 17.5 dB (SF11).
        assert!((sensitivity_dbm(&m, 6.0) - -131.52).abs() < 0.01);
        assert!((sensitivity_dbm(&Preset::ShortTurbo.modulation(), 6.0) - -118.51).abs() < 0.01);
    }

    #[test]
    fn slot_times_of_meshtasticator_and_the_firmware() {
        let m = Preset::LongFast.modulation();
        assert_eq!(meshtasticator_slot(&m), Duration::from_micros(77_232));
        assert_eq!(firmware_slot(&m), Duration::from_micros(28_080));
    }

    #[test]
    fn shadowing_is_per_directed_link_fixed_by_the_seed_and_has_sigma_3_db() {
        let layout = Layout {
            name: "ring".into(),
            positions: (0..40)
                .map(|i| {
                    let a = i as f64 * std::f64::consts::TAU / 40.0;
                    Position { x: 500.0 * a.cos(), y: 500.0 * a.sin(), z: 1.0 }
                })
                .collect(),
        };
        let cfg = RadioConfig::ref30();
        let a = Links::new(&layout, &cfg, 7);
        let b = Links::new(&layout, &cfg, 7);
        let c = Links::new(&layout, &cfg, 8);
        assert_eq!(a.rssi, b.rssi, "same seed, same links");
        assert_ne!(a.rssi, c.rssi, "another seed, other links");
        // The shadowing terms over 1560 directed links: mean ~0, sigma ~3 dB.
        let mut terms = Vec::new();
        for tx in 0..40 {
            for rx in 0..40 {
                if tx != rx {
                    let d = layout.positions[tx].distance(&layout.positions[rx]);
                    terms.push(cfg.tx_power_dbm - cfg.path_loss.loss_db(d) - a.rssi(tx, rx));
                }
            }
        }
        let mean = terms.iter().sum::<f64>() / terms.len() as f64;
        let sd = (terms.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / terms.len() as f64).sqrt();
        assert!(mean.abs() < 0.3 && (sd - 3.0).abs() < 0.3, "seed 7: mean {mean:.2} dB, sigma {sd:.2} dB");
        // Directed: a->b and b->a differ.
        assert_ne!(a.rssi(0, 1), a.rssi(1, 0));
    }
}
