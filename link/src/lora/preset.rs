//! Meshtastic's modem presets (firmware `src/mesh/MeshRadio.h`,
//! `modemPresetToParams`), so a simulated or real strand node can share a
//! channel with Meshtastic nodes and be compared with them on equal terms.

use super::airtime::{CodingRate, Modulation};

/// Meshtastic's preamble: 16 symbols, not the radio's default 8 ("we use longer
/// to increase the amount of sleep time when receiving", RadioInterface.h).
pub const MESHTASTIC_PREAMBLE: u16 = 16;

/// A Meshtastic modem preset (the sub-GHz bandwidths; 2.4 GHz "wide LoRa" ones differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// SF7, 500 kHz, 4/5.
    ShortTurbo,
    /// SF7, 250 kHz, 4/5.
    ShortFast,
    /// SF8, 250 kHz, 4/5.
    ShortSlow,
    /// SF9, 250 kHz, 4/5.
    MediumFast,
    /// SF10, 250 kHz, 4/5.
    MediumSlow,
    /// SF11, 500 kHz, 4/8.
    LongTurbo,
    /// SF11, 250 kHz, 4/5: Meshtastic's default, and REF-30's.
    LongFast,
    /// SF11, 125 kHz, 4/8.
    LongModerate,
    /// SF12, 125 kHz, 4/8.
    LongSlow,
}

impl Preset {
    /// Every preset, fastest first.
    pub const ALL: [Preset; 9] = [
        Preset::ShortTurbo,
        Preset::ShortFast,
        Preset::ShortSlow,
        Preset::MediumFast,
        Preset::MediumSlow,
        Preset::LongTurbo,
        Preset::LongFast,
        Preset::LongModerate,
        Preset::LongSlow,
    ];

    /// (spreading factor, bandwidth in Hz, coding rate).
    pub const fn params(self) -> (u8, u32, CodingRate) {
        match self {
            Preset::ShortTurbo => (7, 500_000, CodingRate::Cr45),
            Preset::ShortFast => (7, 250_000, CodingRate::Cr45),
            Preset::ShortSlow => (8, 250_000, CodingRate::Cr45),
            Preset::MediumFast => (9, 250_000, CodingRate::Cr45),
            Preset::MediumSlow => (10, 250_000, CodingRate::Cr45),
            Preset::LongTurbo => (11, 500_000, CodingRate::Cr48),
            Preset::LongFast => (11, 250_000, CodingRate::Cr45),
            Preset::LongModerate => (11, 125_000, CodingRate::Cr48),
            Preset::LongSlow => (12, 125_000, CodingRate::Cr48),
        }
    }

    /// The modulation, with Meshtastic's 16-symbol preamble, explicit header and CRC.
    pub const fn modulation(self) -> Modulation {
        let (sf, bw, cr) = self.params();
        match Modulation::new(sf, bw, cr) {
            Ok(m) => m.with_preamble(MESHTASTIC_PREAMBLE),
            // Every preset above is a valid modulation (checked by a test).
            Err(_) => panic!("invalid preset"),
        }
    }

    /// The preset's name as Meshtastic writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Preset::ShortTurbo => "ShortTurbo",
            Preset::ShortFast => "ShortFast",
            Preset::ShortSlow => "ShortSlow",
            Preset::MediumFast => "MediumFast",
            Preset::MediumSlow => "MediumSlow",
            Preset::LongTurbo => "LongTurbo",
            Preset::LongFast => "LongFast",
            Preset::LongModerate => "LongModerate",
            Preset::LongSlow => "LongSlow",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn every_preset_is_a_valid_modulation() {
        for p in Preset::ALL {
            let m = p.modulation();
            assert_eq!(m.preamble(), 16, "{}", p.name());
            assert!(m.time_on_air(255) > m.time_on_air(0));
        }
    }

    #[test]
    fn long_fast_is_sf11_at_250_khz() {
        let m = Preset::LongFast.modulation();
        assert_eq!((m.sf(), m.bw_hz(), m.coding_rate()), (11, 250_000, CodingRate::Cr45));
        // Meshtastic's comment on preambleTimeMsec: "165 ... the default for LongFast" ((16 + 4.25) Tsym).
        assert_eq!(m.preamble_time(), Duration::from_micros(165_888));
        // LongSlow needs the low-data-rate optimisation (32.768 ms symbols), LongFast does not.
        assert!(Preset::LongSlow.modulation().low_data_rate());
        assert!(!m.low_data_rate());
    }
}
