//! A complete experiment: layout, radio, traffic, how long, and the regional
//! duty cycle that is measured (and, by protocols that keep it, enforced).

use std::time::Duration;

use strand_link::lora::Region;

use super::layout::Layout;
use super::radio::RadioConfig;
use super::traffic::Traffic;

/// REF-30's light load: one message per node every 600 s on average.
pub const LIGHT: Duration = Duration::from_secs(600);
/// REF-30's heavy load: one message per node every 100 s on average.
pub const HEAVY: Duration = Duration::from_secs(100);

/// When nodes hand their messages to the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    /// Poisson per node, drawn before the run: every protocol is offered exactly the
    /// same messages at the same times (REF-30).
    Poisson,
    /// A node draws the interval to its next message only once its previous one is
    /// settled (acknowledged, or given up after the last retransmission), as
    /// Meshtasticator's message generator does: a busy node offers less.
    AfterSettled,
}

/// Everything a run needs except the protocol and the seed.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The nodes.
    pub layout: Layout,
    /// The channel.
    pub radio: RadioConfig,
    /// Broadcast or direct messages.
    pub traffic: Traffic,
    /// Mean interval between a node's messages.
    pub mean_interval: Duration,
    /// Open (Poisson) or closed-loop arrivals.
    pub arrivals: Arrivals,
    /// Application payload per message, bytes.
    pub payload_len: usize,
    /// Messages are offered during this long.
    pub traffic_time: Duration,
    /// Then the run goes on this long with no new messages, so late ones can finish.
    pub drain: Duration,
    /// Duty cycle of the sub-band the channel is in, parts per million.
    pub duty_cycle_ppm: u32,
}

impl Scenario {
    /// REF-30 on layout `n` (1..=5): LongFast at 869.525 MHz (EU868 sub-band g3,
    /// 10% duty cycle), 40-byte messages, two hours of traffic and a 120 s drain.
    pub fn ref30(n: usize, traffic: Traffic, mean_interval: Duration) -> Option<Scenario> {
        let radio = RadioConfig::ref30();
        let band = Region::Eu868.sub_band(radio.freq_hz, radio.modulation.bw_hz())?;
        Some(Scenario {
            layout: Layout::ref30(n)?,
            radio,
            traffic,
            mean_interval,
            arrivals: Arrivals::Poisson,
            payload_len: 40,
            traffic_time: Duration::from_secs(2 * 3600),
            drain: Duration::from_secs(120),
            duty_cycle_ppm: band.duty_cycle_ppm,
        })
    }

    /// Total simulated time.
    pub fn duration(&self) -> Duration {
        self.traffic_time + self.drain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref30_is_long_fast_in_the_ten_percent_sub_band() {
        let s = Scenario::ref30(1, Traffic::Broadcast, LIGHT).unwrap();
        assert_eq!(s.duty_cycle_ppm, 100_000);
        assert_eq!(s.duration(), Duration::from_secs(7320));
        assert_eq!(s.radio.modulation.time_on_air(16 + s.payload_len), Duration::from_micros(681_984));
        assert!(Scenario::ref30(6, Traffic::Broadcast, LIGHT).is_none());
    }
}
