//! Managed flooding's constants and the delays computed from them, in two sets:
//! Meshtasticator's (the reference REF-30's figures were measured with) and the
//! Meshtastic firmware's today. Sources: firmware `src/mesh/RadioInterface.{h,cpp}`
//! (`getTxDelayMsec`, `getTxDelayMsecWeighted`, `getCWsize`,
//! `getRetransmissionMsec`, `computeSlotTimeMsec`), `NextHopRouter.h`
//! (`NUM_RELIABLE_RETX`), `MeshTypes.h` (`HOP_RELIABLE`, `HOP_MAX`), `airtime.h`
//! (the channel-use gates); Meshtasticator `lib/mac.py`, `lib/phy.py`, `lib/config.py`.

use std::time::Duration;

use strand_link::lora::{Modulation, Preset};

use super::super::radio::{firmware_slot, meshtasticator_slot};
use super::wire::HEADER_LEN;

/// Meshtastic's default hop limit (`HOP_RELIABLE`).
pub const HOP_LIMIT_DEFAULT: u8 = 3;
/// The largest hop limit the header carries (`HOP_MAX`).
pub const HOP_LIMIT_MAX: u8 = 7;
/// Largest application payload (`meshtastic_Constants_DATA_PAYLOAD_LEN`).
pub const MAX_PAYLOAD: usize = 233;

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Rebroadcasts after an SNR-weighted wait, and cancels when it overhears another.
    Client,
    /// Rebroadcasts after a short wait (2 x CW slots), and cancels less readily.
    Router,
    /// Never rebroadcasts.
    ClientMute,
}

/// How a node measures channel use for its contention window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelUseWindow {
    /// Airtime heard and sent since the start, over the time since the start (Meshtasticator).
    SinceStart,
    /// The last minute, in six 10-second buckets (firmware `AirTime::channelUtilizationPercent`).
    LastMinute,
}

/// The constants of managed flooding.
#[derive(Debug, Clone, PartialEq)]
pub struct FloodParams {
    /// The modulation (for the retransmission timeout's airtime term).
    pub modulation: Modulation,
    /// The node's role.
    pub role: Role,
    /// Hop limit of messages this node originates (clamped to [`HOP_LIMIT_MAX`]).
    pub hop_limit: u8,
    /// Contention slot.
    pub slot: Duration,
    /// Smallest contention window exponent.
    pub cw_min: u32,
    /// Largest contention window exponent.
    pub cw_max: u32,
    /// SNR mapped to `cw_min`, dB.
    pub snr_min: f32,
    /// SNR mapped to `cw_max`, dB.
    pub snr_max: f32,
    /// If set, the SNR that sizes the contention window is RSSI minus this
    /// noise level (Meshtasticator); if not, the radio's SNR (firmware).
    pub snr_from_rssi_noise_dbm: Option<f32>,
    /// Slots every client rebroadcast waits before its random part, so routers go first
    /// (firmware: 2 x CWmax; Meshtasticator: none).
    pub client_offset_slots: u32,
    /// Extra slots in the retransmission timeout (firmware: 2 x CWmax; Meshtasticator: none).
    pub retx_extra_slots: u32,
    /// Fixed part of the retransmission timeout (`PROCESSING_TIME_MSEC`).
    pub processing: Duration,
    /// Retransmissions of a message nobody acknowledged (`NUM_RELIABLE_RETX`).
    pub retransmissions: u8,
    /// How channel use is measured for the contention window.
    pub channel_use_window: ChannelUseWindow,
    /// ACKs count only when heard from the destination itself, not relayed
    /// (Meshtasticator drops the ACK flag when relaying; the firmware keeps it).
    pub acks_only_direct: bool,
    /// An ACK is looked at only when the retransmission timer fires, so the
    /// message is settled then (Meshtasticator's generator loop); otherwise at once
    /// (firmware `stopRetransmission`).
    pub settle_at_timeout: bool,
    /// Payload of an ACK, bytes (Meshtasticator: 2).
    pub ack_payload_len: usize,
    /// Regional duty cycle the node keeps (`Router::send` refuses a packet while the
    /// last hour's transmit share is above it), parts per million; `None`: not enforced.
    pub duty_cycle_ppm: Option<u32>,
    /// Channel use above which background traffic is held back, percent (firmware 40).
    pub max_channel_use_percent: f32,
    /// Channel use above which telemetry is held back, percent (firmware 25).
    pub polite_channel_use_percent: f32,
}

impl FloodParams {
    /// Meshtasticator's managed flooding on `preset` (the REF-30 reference):
    /// CW 2..8 over SNR -20..15 dB from RSSI - (-119.25 dBm), slots of 8.5 symbols
    /// + 7.6 ms, no router offset, timeout 2 airtimes + (2^CW + 2^5) slots + 4.5 s.
    pub fn meshtasticator(preset: Preset) -> FloodParams {
        let modulation = preset.modulation();
        FloodParams {
            modulation,
            role: Role::Client,
            hop_limit: HOP_LIMIT_DEFAULT,
            slot: meshtasticator_slot(&modulation),
            cw_min: 2,
            cw_max: 8,
            snr_min: -20.0,
            snr_max: 15.0,
            snr_from_rssi_noise_dbm: Some(-119.25),
            client_offset_slots: 0,
            retx_extra_slots: 0,
            processing: Duration::from_millis(4500),
            retransmissions: 3,
            channel_use_window: ChannelUseWindow::SinceStart,
            acks_only_direct: true,
            settle_at_timeout: true,
            ack_payload_len: 2,
            duty_cycle_ppm: None,
            max_channel_use_percent: 40.0,
            polite_channel_use_percent: 25.0,
        }
    }

    /// The firmware's managed flooding today: CW 3..8 over SNR -20..10 dB, slots
    /// of 2.5 symbols + 7.6 ms (28 ms on LongFast), clients wait 2 x CWmax slots
    /// more than routers, channel use over the last minute, relayed ACKs count.
    pub fn firmware(preset: Preset) -> FloodParams {
        let modulation = preset.modulation();
        FloodParams {
            slot: firmware_slot(&modulation),
            cw_min: 3,
            cw_max: 8,
            snr_min: -20.0,
            snr_max: 10.0,
            snr_from_rssi_noise_dbm: None,
            client_offset_slots: 2 * 8,
            retx_extra_slots: 2 * 8,
            channel_use_window: ChannelUseWindow::LastMinute,
            acks_only_direct: false,
            settle_at_timeout: false,
            ..FloodParams::meshtasticator(preset)
        }
    }

    /// Contention window exponent for a rebroadcast of a frame heard at `snr_db`:
    /// a stronger signal waits longer, so the farthest receivers relay first.
    pub fn cw_for_snr(&self, snr_db: f32) -> u32 {
        let snr = snr_db.clamp(self.snr_min, self.snr_max);
        let span = (self.cw_max - self.cw_min) as f32;
        (((snr - self.snr_min) * span / (self.snr_max - self.snr_min)) + self.cw_min as f32) as u32
    }

    /// Contention window exponent for a node's own packets at `use_percent` channel use.
    pub fn cw_for_channel_use(&self, use_percent: f32) -> u32 {
        let span = (self.cw_max - self.cw_min) as f32;
        ((use_percent.clamp(0.0, 100.0) * span / 100.0) + self.cw_min as f32) as u32
    }

    /// How long an originator waits for an (implicit) ACK before retransmitting a
    /// frame of `frame_len` bytes, at `use_percent` channel use.
    pub fn retransmission_timeout(&self, frame_len: usize, use_percent: f32) -> Duration {
        let airtime = self.modulation.time_on_air(frame_len);
        let cw = self.cw_for_channel_use(use_percent);
        let slots = (1u32 << cw) + self.retx_extra_slots + (1u32 << ((self.cw_min + self.cw_max) / 2));
        2 * airtime + self.slot * slots + self.processing
    }

    /// Length of a frame carrying `payload` bytes.
    pub fn frame_len(payload: usize) -> usize {
        HEADER_LEN + payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contention_window_grows_with_snr() {
        let m = FloodParams::meshtasticator(Preset::LongFast);
        assert_eq!(m.cw_for_snr(-30.0), 2);
        assert_eq!(m.cw_for_snr(-20.0), 2);
        // -5.75 dB (RSSI -125 dBm): 14.25 x 6 / 35 + 2 = 4.44 -> 4.
        assert_eq!(m.cw_for_snr(-5.75), 4);
        assert_eq!(m.cw_for_snr(15.0), 8);
        assert_eq!(m.cw_for_snr(40.0), 8);
        let f = FloodParams::firmware(Preset::LongFast);
        assert_eq!(f.cw_for_snr(-20.0), 3);
        assert_eq!(f.cw_for_snr(10.0), 8);
        // The firmware's window is never smaller than Meshtasticator's at the same SNR.
        for snr in -25..20 {
            assert!(f.cw_for_snr(snr as f32) >= m.cw_for_snr(snr as f32), "{snr} dB");
        }
    }

    #[test]
    fn own_packets_wait_longer_on_a_busy_channel() {
        let m = FloodParams::meshtasticator(Preset::LongFast);
        assert_eq!(m.cw_for_channel_use(0.0), 2);
        assert_eq!(m.cw_for_channel_use(16.0), 2);
        assert_eq!(m.cw_for_channel_use(17.0), 3);
        assert_eq!(m.cw_for_channel_use(100.0), 8);
    }

    #[test]
    fn retransmission_timeout_on_long_fast() {
        // Meshtasticator, idle channel: 2 x 681.984 + (4 + 32) x 77.232 + 4500 ms = 8644.32 ms.
        let m = FloodParams::meshtasticator(Preset::LongFast);
        assert_eq!(m.retransmission_timeout(56, 0.0), Duration::from_micros(8_644_320));
        // Firmware: 2 x 681.984 + (8 + 16 + 32) x 28.08 + 4500 = 7436.448 ms (the "~7.5 s").
        let f = FloodParams::firmware(Preset::LongFast);
        assert_eq!(f.retransmission_timeout(56, 0.0), Duration::from_micros(7_436_448));
    }
}
