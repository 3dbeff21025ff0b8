//! Time on air of a LoRa frame, per Semtech's formula (AN1200.13, the SX127x
//! datasheet section 4.1.1.7 and the LoRa calculator).
//!
//! ```text
//! Tsym      = 2^SF / BW
//! preamble  = (n_preamble + 4.25) Tsym
//! payload   = 8 + max(ceil((8 PL - 4 SF + 28 + 16 CRC - 20 IH) / (4 (SF - 2 DE))) (CR + 4), 0) symbols
//! DE        = 1 (low-data-rate optimisation) when Tsym > 16 ms
//! ```
//!
//! Everything is integer arithmetic (quarter symbols, nanoseconds), so the
//! result is exact to the nanosecond, needs no libm and is the same on a
//! Cortex-M0 as on a host.

use core::time::Duration;

/// Coding rate 4/(4+n): the denominator is 5..=8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodingRate {
    /// 4/5: one parity bit per four data bits (Meshtastic's fast presets).
    Cr45,
    /// 4/6.
    Cr46,
    /// 4/7.
    Cr47,
    /// 4/8: Meshtastic's LongModerate and LongSlow.
    Cr48,
}

impl CodingRate {
    /// The coding rate whose denominator is `d` (5 for 4/5 ... 8 for 4/8).
    pub const fn from_denominator(d: u8) -> Option<CodingRate> {
        match d {
            5 => Some(CodingRate::Cr45),
            6 => Some(CodingRate::Cr46),
            7 => Some(CodingRate::Cr47),
            8 => Some(CodingRate::Cr48),
            _ => None,
        }
    }

    /// The denominator: coded bits per four data bits (5..=8).
    pub const fn denominator(self) -> u32 {
        match self {
            CodingRate::Cr45 => 5,
            CodingRate::Cr46 => 6,
            CodingRate::Cr47 => 7,
            CodingRate::Cr48 => 8,
        }
    }
}

/// Whether the low-data-rate optimisation (DE) is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LowDataRate {
    /// On exactly when the symbol time exceeds 16 ms, as Semtech recommends
    /// (SF11 and SF12 at 125 kHz, SF10 and up at 62.5 kHz...).
    #[default]
    Auto,
    /// Forced on.
    On,
    /// Forced off.
    Off,
}

/// Why a set of modulation parameters was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModulationError {
    /// The spreading factor is outside 5..=12.
    SpreadingFactor(u8),
    /// The bandwidth is zero or above 2 MHz.
    Bandwidth(u32),
}

/// The spreading factors LoRa radios implement (SX126x: 5..=12; SX127x: 6..=12).
pub const SF_RANGE: core::ops::RangeInclusive<u8> = 5..=12;

/// LoRa modulation and packet parameters: everything the time on air depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Modulation {
    sf: u8,
    bw_hz: u32,
    cr: CodingRate,
    preamble: u16,
    explicit_header: bool,
    crc: bool,
    low_data_rate: LowDataRate,
}

impl Modulation {
    /// SF `sf` at `bw_hz` and coding rate `cr`, with the radio defaults: an
    /// 8-symbol preamble, explicit header, CRC on, automatic low-data-rate
    /// optimisation.
    pub const fn new(sf: u8, bw_hz: u32, cr: CodingRate) -> Result<Modulation, ModulationError> {
        if sf < *SF_RANGE.start() || sf > *SF_RANGE.end() {
            return Err(ModulationError::SpreadingFactor(sf));
        }
        if bw_hz == 0 || bw_hz > 2_000_000 {
            return Err(ModulationError::Bandwidth(bw_hz));
        }
        Ok(Modulation {
            sf,
            bw_hz,
            cr,
            preamble: 8,
            explicit_header: true,
            crc: true,
            low_data_rate: LowDataRate::Auto,
        })
    }

    /// The same with an `n`-symbol programmed preamble (Meshtastic uses 16).
    pub const fn with_preamble(mut self, n: u16) -> Modulation {
        self.preamble = n;
        self
    }

    /// The same with an explicit (true) or implicit (false) header.
    pub const fn with_explicit_header(mut self, explicit: bool) -> Modulation {
        self.explicit_header = explicit;
        self
    }

    /// The same with the payload CRC on or off.
    pub const fn with_crc(mut self, crc: bool) -> Modulation {
        self.crc = crc;
        self
    }

    /// The same with the low-data-rate optimisation chosen.
    pub const fn with_low_data_rate(mut self, ldro: LowDataRate) -> Modulation {
        self.low_data_rate = ldro;
        self
    }

    /// Spreading factor.
    pub const fn sf(&self) -> u8 {
        self.sf
    }

    /// Bandwidth in Hz.
    pub const fn bw_hz(&self) -> u32 {
        self.bw_hz
    }

    /// Coding rate.
    pub const fn coding_rate(&self) -> CodingRate {
        self.cr
    }

    /// Programmed preamble length in symbols.
    pub const fn preamble(&self) -> u16 {
        self.preamble
    }

    /// Whether the header is explicit.
    pub const fn explicit_header(&self) -> bool {
        self.explicit_header
    }

    /// Whether the payload CRC is on.
    pub const fn crc(&self) -> bool {
        self.crc
    }

    /// Duration of one symbol, 2^SF / BW.
    pub const fn symbol_time(&self) -> Duration {
        Duration::from_nanos(self.ns_for_quarter_symbols(4))
    }

    /// Whether the low-data-rate optimisation is in effect.
    pub const fn low_data_rate(&self) -> bool {
        match self.low_data_rate {
            LowDataRate::On => true,
            LowDataRate::Off => false,
            // Tsym > 16 ms  <=>  2^SF / BW > 0.016 s  <=>  2^SF * 1000 > 16 * BW.
            LowDataRate::Auto => (1u64 << self.sf) * 1000 > 16 * self.bw_hz as u64,
        }
    }

    /// Symbols after the preamble (header and payload) for `payload_len` bytes.
    pub const fn payload_symbols(&self, payload_len: usize) -> u32 {
        let sf = self.sf as i64;
        let de = self.low_data_rate() as i64;
        let ih = !self.explicit_header as i64;
        let crc = self.crc as i64;
        let numerator = 8 * payload_len as i64 - 4 * sf + 28 + 16 * crc - 20 * ih;
        // SF >= 5 and DE <= 1, so the divisor is at least 12.
        let divisor = 4 * (sf - 2 * de);
        let blocks = if numerator > 0 { (numerator + divisor - 1) / divisor } else { 0 };
        8 + (blocks as u32) * self.cr.denominator()
    }

    /// Preamble duration: (n + 4.25) symbols.
    pub const fn preamble_time(&self) -> Duration {
        Duration::from_nanos(self.ns_for_quarter_symbols(4 * self.preamble as u64 + 17))
    }

    /// Time on air of a frame carrying `payload_len` bytes (the PHY payload:
    /// everything the radio is given, headers of upper layers included).
    pub const fn time_on_air(&self, payload_len: usize) -> Duration {
        let quarters = 4 * self.preamble as u64 + 17 + 4 * self.payload_symbols(payload_len) as u64;
        Duration::from_nanos(self.ns_for_quarter_symbols(quarters))
    }

    /// Equivalent bit rate, as Semtech's calculator gives it:
    /// SF x 4/CR x BW / 2^SF bit/s.
    pub fn bit_rate(&self) -> f32 {
        self.sf as f32 * 4.0 / self.cr.denominator() as f32 * self.bw_hz as f32 / (1u32 << self.sf) as f32
    }

    /// Nanoseconds in `q` quarter symbols, rounded to the nearest: q 2^SF 1e9 / (4 BW).
    /// No overflow: q stays below 2^19 (a 65,535-symbol preamble and 255 bytes), 2^SF <= 2^12.
    const fn ns_for_quarter_symbols(&self, q: u64) -> u64 {
        let num = q * (1u64 << self.sf) * 1_000_000_000;
        let den = 4 * self.bw_hz as u64;
        (num + den / 2) / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> f64 {
        d.as_nanos() as f64 / 1e6
    }

    #[test]
    fn semtech_check_value_sf9_bw125_12_bytes() {
        // The issue's check value, also what Semtech's calculator gives.
        let m = Modulation::new(9, 125_000, CodingRate::Cr45).unwrap();
        assert_eq!(m.symbol_time(), Duration::from_micros(4096));
        assert!(!m.low_data_rate());
        assert_eq!(m.payload_symbols(12), 23);
        assert_eq!(m.preamble_time(), Duration::from_micros(50_176));
        assert_eq!(m.time_on_air(12), Duration::from_micros(144_384));
    }

    #[test]
    fn long_fast_frames_match_the_formula_by_hand() {
        // Meshtastic LongFast: SF11, 250 kHz, 4/5, 16-symbol preamble. Tsym 8.192 ms.
        let m = Modulation::new(11, 250_000, CodingRate::Cr45).unwrap().with_preamble(16);
        assert_eq!(m.symbol_time(), Duration::from_micros(8192));
        assert!(!m.low_data_rate(), "8.192 ms symbols do not need DE");
        // 56 bytes (16 header + 40): ceil((448 - 44 + 44) / 44) = 11 blocks of 5 -> 63 symbols.
        assert_eq!(m.payload_symbols(56), 63);
        assert_eq!(m.time_on_air(56), Duration::from_micros(681_984));
        // 18 bytes (16 header + 2-byte ACK): ceil(144 / 44) = 4 blocks -> 28 symbols.
        assert_eq!(m.time_on_air(18), Duration::from_micros(395_264));
    }

    #[test]
    fn low_data_rate_optimisation_starts_above_16_ms_symbols() {
        let sf11_125 = Modulation::new(11, 125_000, CodingRate::Cr45).unwrap();
        assert_eq!(ms(sf11_125.symbol_time()), 16.384);
        assert!(sf11_125.low_data_rate());
        let sf10_125 = Modulation::new(10, 125_000, CodingRate::Cr45).unwrap();
        assert!(!sf10_125.low_data_rate());
        // DE divides by 4 (SF - 2): SF12 at 125 kHz, 4/5, 10 bytes:
        // ceil((80 - 48 + 44) / 40) = 2 blocks -> 18 symbols; (8 + 4.25 + 18) x 32.768 ms.
        let sf12 = Modulation::new(12, 125_000, CodingRate::Cr45).unwrap();
        assert_eq!(sf12.payload_symbols(10), 18);
        assert_eq!(sf12.time_on_air(10), Duration::from_nanos(991_232_000));
        // Forcing it off changes the divisor back to 4 SF.
        let off = sf12.with_low_data_rate(LowDataRate::Off);
        assert_eq!(off.payload_symbols(10), 8 + 2 * 5);
        // 12 bytes: ceil(92 / 48) = 2 blocks without DE, ceil(92 / 40) = 3 with it.
        assert_eq!(off.payload_symbols(12), 8 + 2 * 5);
        assert_eq!(sf12.payload_symbols(12), 8 + 3 * 5);
    }

    #[test]
    fn implicit_header_and_no_crc_save_symbols() {
        let m = Modulation::new(7, 125_000, CodingRate::Cr45).unwrap();
        // Explicit header, CRC: ceil((80 - 28 + 44) / 28) = 4 blocks.
        assert_eq!(m.payload_symbols(10), 8 + 4 * 5);
        // Implicit header, no CRC: ceil((80 - 28 + 28 - 20) / 28) = 3 blocks.
        let lean = m.with_explicit_header(false).with_crc(false);
        assert_eq!(lean.payload_symbols(10), 8 + 3 * 5);
        // Never fewer than 8 symbols, even for an empty implicit frame.
        assert_eq!(lean.payload_symbols(0), 8);
    }

    #[test]
    fn coding_rate_multiplies_the_payload_blocks() {
        let base = Modulation::new(9, 125_000, CodingRate::Cr45).unwrap();
        for (cr, d) in
            [(CodingRate::Cr45, 5), (CodingRate::Cr46, 6), (CodingRate::Cr47, 7), (CodingRate::Cr48, 8)]
        {
            let m = Modulation { cr, ..base };
            assert_eq!(m.payload_symbols(12), 8 + 3 * d);
            assert_eq!(CodingRate::from_denominator(d as u8), Some(cr));
        }
        assert_eq!(CodingRate::from_denominator(4), None);
    }

    #[test]
    fn bit_rate_is_the_calculators_equivalent_rate() {
        let m = Modulation::new(9, 125_000, CodingRate::Cr45).unwrap();
        assert!((m.bit_rate() - 1_757.812_5).abs() < 1e-3);
        let lf = Modulation::new(11, 250_000, CodingRate::Cr45).unwrap();
        assert!((lf.bit_rate() - 1_074.218_8).abs() < 1e-3);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert_eq!(Modulation::new(4, 125_000, CodingRate::Cr45), Err(ModulationError::SpreadingFactor(4)));
        assert_eq!(Modulation::new(13, 125_000, CodingRate::Cr45), Err(ModulationError::SpreadingFactor(13)));
        assert_eq!(Modulation::new(7, 0, CodingRate::Cr45), Err(ModulationError::Bandwidth(0)));
    }

    #[test]
    fn longest_frame_does_not_overflow() {
        let m = Modulation::new(12, 7_800, CodingRate::Cr48).unwrap().with_preamble(u16::MAX);
        let t = m.time_on_air(255);
        assert!(t > Duration::from_secs(30_000), "{t:?}");
    }
}
