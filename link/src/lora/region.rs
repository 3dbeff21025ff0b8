//! Regional rules a LoRa transmitter must keep: which sub-band a channel is in,
//! its duty-cycle limit and power, and the US915 dwell time.
//!
//! EU868: the sub-bands of ETSI EN 300 220-2 as LoRaWAN's regional parameters
//! (RP002, EU863-870) and The Things Network tabulate them; 1% in most of the
//! band, 0.1% in 868.7-869.2 MHz, 10% and 500 mW ERP in 869.40-869.65 MHz (where
//! Meshtastic's EU_868 region puts LongFast, at 869.525 MHz). Duty cycle is
//! counted per sub-band, over a rolling hour.
//!
//! US915 (902-928 MHz, FCC part 15.247): no duty cycle, but a transmission may
//! occupy a channel for at most 400 ms (the dwell time LoRaWAN's US915 plan keeps).

use core::time::Duration;

use super::duty_cycle::{DutyCycle, NO_LIMIT_PPM};
use crate::time::Instant;

/// A band with one set of rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubBand {
    /// Name as the regional plans use it ("g3").
    pub name: &'static str,
    /// Lower edge, Hz.
    pub low_hz: u32,
    /// Upper edge, Hz.
    pub high_hz: u32,
    /// Share of any hour a transmitter may be on air, parts per million
    /// ([`NO_LIMIT_PPM`] = no limit).
    pub duty_cycle_ppm: u32,
    /// Highest radiated power, dBm ERP.
    pub max_erp_dbm: i8,
}

/// EU868 sub-bands (ETSI EN 300 220-2; names as in LoRaWAN RP002 and TTN's duty-cycle page).
pub const EU868_SUB_BANDS: [SubBand; 5] = [
    SubBand { name: "g", low_hz: 863_000_000, high_hz: 868_000_000, duty_cycle_ppm: 10_000, max_erp_dbm: 14 },
    SubBand {
        name: "g1",
        low_hz: 868_000_000,
        high_hz: 868_600_000,
        duty_cycle_ppm: 10_000,
        max_erp_dbm: 14,
    },
    SubBand { name: "g2", low_hz: 868_700_000, high_hz: 869_200_000, duty_cycle_ppm: 1_000, max_erp_dbm: 14 },
    SubBand {
        name: "g3",
        low_hz: 869_400_000,
        high_hz: 869_650_000,
        duty_cycle_ppm: 100_000,
        max_erp_dbm: 27,
    },
    SubBand {
        name: "g4",
        low_hz: 869_700_000,
        high_hz: 870_000_000,
        duty_cycle_ppm: 10_000,
        max_erp_dbm: 14,
    },
];

/// US915: one band, no duty cycle, 30 dBm conducted (FCC 15.247).
pub const US915_BAND: SubBand = SubBand {
    name: "US915",
    low_hz: 902_000_000,
    high_hz: 928_000_000,
    duty_cycle_ppm: NO_LIMIT_PPM,
    max_erp_dbm: 30,
};

/// US915 dwell time: the longest one transmission may occupy a channel.
pub const US915_MAX_DWELL: Duration = Duration::from_millis(400);

/// A regional frequency plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// Europe, 863-870 MHz.
    Eu868,
    /// North America, 902-928 MHz.
    Us915,
}

/// Why a transmission is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionError {
    /// The channel (centre +- half the bandwidth) does not lie inside one sub-band of the plan.
    OutsidePlan,
    /// The frame is longer than the region's dwell time.
    DwellTime {
        /// The frame's time on air.
        airtime: Duration,
        /// The limit.
        max: Duration,
    },
    /// The sub-band's duty cycle would be exceeded; the frame may start at `earliest`
    /// (`None`: it is longer than a whole window's allowance).
    DutyCycle {
        /// When the frame would fit.
        earliest: Option<Instant>,
    },
}

impl Region {
    /// The sub-bands of the plan.
    pub fn sub_bands(self) -> &'static [SubBand] {
        match self {
            Region::Eu868 => &EU868_SUB_BANDS,
            Region::Us915 => core::slice::from_ref(&US915_BAND),
        }
    }

    /// Index (into [`Region::sub_bands`]) of the sub-band holding the whole channel
    /// `centre_hz +- bw_hz / 2`.
    pub fn sub_band_index(self, centre_hz: u32, bw_hz: u32) -> Option<usize> {
        let (lo, hi) = (centre_hz as u64 - (bw_hz / 2) as u64, centre_hz as u64 + bw_hz.div_ceil(2) as u64);
        self.sub_bands().iter().position(|b| lo >= b.low_hz as u64 && hi <= b.high_hz as u64)
    }

    /// The sub-band holding the whole channel `centre_hz +- bw_hz / 2`.
    pub fn sub_band(self, centre_hz: u32, bw_hz: u32) -> Option<SubBand> {
        self.sub_band_index(centre_hz, bw_hz).map(|i| self.sub_bands()[i])
    }

    /// The longest one transmission may last, if the region limits it.
    pub fn max_dwell(self) -> Option<Duration> {
        match self {
            Region::Eu868 => None,
            Region::Us915 => Some(US915_MAX_DWELL),
        }
    }

    /// Checks the rules that depend only on the frame: the channel is in the plan
    /// and the frame respects the dwell time.
    pub fn check_frame(self, centre_hz: u32, bw_hz: u32, airtime: Duration) -> Result<SubBand, RegionError> {
        let band = self.sub_band(centre_hz, bw_hz).ok_or(RegionError::OutsidePlan)?;
        match self.max_dwell() {
            Some(max) if airtime > max => Err(RegionError::DwellTime { airtime, max }),
            _ => Ok(band),
        }
    }
}

/// Duty-cycle accounting for every sub-band of a region, for one radio: a frame
/// is charged to the sub-band its channel lies in.
#[derive(Debug, Clone)]
pub struct RegionDutyCycle<const N: usize> {
    region: Region,
    /// One log per sub-band, in [`Region::sub_bands`] order (EU868 has five).
    bands: [DutyCycle<N>; 5],
}

impl<const N: usize> RegionDutyCycle<N> {
    /// Empty accounting for `region`.
    pub fn new(region: Region) -> Self {
        let bands = core::array::from_fn(|i| {
            let ppm = region.sub_bands().get(i).map_or(NO_LIMIT_PPM, |b| b.duty_cycle_ppm);
            DutyCycle::per_hour(ppm)
        });
        RegionDutyCycle { region, bands }
    }

    /// The region.
    pub fn region(&self) -> Region {
        self.region
    }

    /// The accounting of the sub-band holding the channel, if it is in the plan.
    pub fn sub_band(&self, centre_hz: u32, bw_hz: u32) -> Option<&DutyCycle<N>> {
        self.region.sub_band_index(centre_hz, bw_hz).map(|i| &self.bands[i])
    }

    /// Whether a frame of `airtime` may start at `now` on this channel: in the plan,
    /// within the dwell time and within its sub-band's duty cycle.
    pub fn check(
        &self,
        now: Instant,
        centre_hz: u32,
        bw_hz: u32,
        airtime: Duration,
    ) -> Result<(), RegionError> {
        self.region.check_frame(centre_hz, bw_hz, airtime)?;
        let dc = self.sub_band(centre_hz, bw_hz).ok_or(RegionError::OutsidePlan)?;
        if dc.allows(now, airtime) {
            Ok(())
        } else {
            Err(RegionError::DutyCycle { earliest: dc.earliest(now, airtime) })
        }
    }

    /// Charges a transmission to its sub-band (one outside the plan is not counted:
    /// [`RegionDutyCycle::check`] refuses those).
    pub fn record(&mut self, start: Instant, centre_hz: u32, bw_hz: u32, airtime: Duration) {
        if let Some(i) = self.region.sub_band_index(centre_hz, bw_hz) {
            self.bands[i].record(start, airtime);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lora::airtime::{CodingRate, Modulation};

    #[test]
    fn meshtastic_eu868_long_fast_is_in_the_ten_percent_sub_band() {
        // 869.525 MHz +- 125 kHz fills g3 (869.40-869.65) exactly.
        let band = Region::Eu868.sub_band(869_525_000, 250_000).unwrap();
        assert_eq!(band.name, "g3");
        assert_eq!(band.duty_cycle_ppm, 100_000);
        assert_eq!(band.max_erp_dbm, 27);
        // 1% in most of the band, 0.1% in g2.
        assert_eq!(Region::Eu868.sub_band(868_100_000, 125_000).unwrap().duty_cycle_ppm, 10_000);
        assert_eq!(Region::Eu868.sub_band(867_500_000, 125_000).unwrap().duty_cycle_ppm, 10_000);
        assert_eq!(Region::Eu868.sub_band(869_000_000, 125_000).unwrap().duty_cycle_ppm, 1_000);
        assert_eq!(Region::Eu868.sub_band(869_850_000, 125_000).unwrap().name, "g4");
    }

    #[test]
    fn channels_that_straddle_or_miss_a_sub_band_are_outside_the_plan() {
        // 250 kHz centred at 869.55 MHz would reach 869.675: past g3's edge.
        assert_eq!(Region::Eu868.sub_band(869_550_000, 250_000), None);
        // In the gap between g1 and g2.
        assert_eq!(Region::Eu868.sub_band(868_650_000, 50_000), None);
        assert_eq!(
            Region::Eu868.check_frame(915_000_000, 125_000, Duration::from_millis(10)),
            Err(RegionError::OutsidePlan)
        );
    }

    #[test]
    fn us915_dwell_time_limits_one_frame_to_400_ms() {
        let band = Region::Us915.check_frame(915_000_000, 125_000, Duration::from_millis(400)).unwrap();
        assert_eq!(band.duty_cycle_ppm, NO_LIMIT_PPM);
        // SF10 at 125 kHz (Tsym 8.192 ms): 24 bytes take 370.688 ms, 25 bytes 411.648 ms
        // (LoRaWAN's US915 DR0 allows 11 bytes of application payload: 24 on air).
        let sf10 = Modulation::new(10, 125_000, CodingRate::Cr45).unwrap();
        assert_eq!(sf10.time_on_air(24), Duration::from_micros(370_688));
        assert!(Region::Us915.check_frame(915_000_000, 125_000, sf10.time_on_air(24)).is_ok());
        assert_eq!(
            Region::Us915.check_frame(915_000_000, 125_000, sf10.time_on_air(25)),
            Err(RegionError::DwellTime { airtime: Duration::from_micros(411_648), max: US915_MAX_DWELL })
        );
        // EU868 has no dwell limit.
        assert!(Region::Eu868.check_frame(869_525_000, 250_000, Duration::from_secs(3)).is_ok());
    }

    #[test]
    fn duty_cycle_is_accounted_per_sub_band() {
        let mut dc = RegionDutyCycle::<32>::new(Region::Eu868);
        let t0 = Instant::ZERO;
        // Fill g1 (1%: 36 s per hour) completely.
        dc.record(t0, 868_100_000, 125_000, Duration::from_secs(36));
        let later = Instant::from_micros(40_000_000);
        let err = dc.check(later, 868_300_000, 125_000, Duration::from_millis(100)).unwrap_err();
        // The 100 ms fit once the first 100 ms of the 36 s frame have left the hour.
        assert_eq!(err, RegionError::DutyCycle { earliest: Some(Instant::from_micros(3_600_000_000)) });
        // g3 (10%) and g (1%) are untouched by g1's use.
        assert!(dc.check(later, 869_525_000, 250_000, Duration::from_secs(30)).is_ok());
        assert!(dc.check(later, 867_100_000, 125_000, Duration::from_secs(30)).is_ok());
        assert_eq!(dc.sub_band(868_100_000, 125_000).unwrap().used(later), Duration::from_secs(36));
        assert_eq!(dc.sub_band(869_525_000, 250_000).unwrap().used(later), Duration::ZERO);
    }
}
