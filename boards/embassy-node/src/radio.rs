//! The radio task: a LoRa chip through lora-phy as a half-duplex datagram
//! port. It listens continuously and breaks off to transmit whenever the
//! bridge queued a frame (a frame being received then is lost; the link's
//! ARQ repairs that). Duty-cycle limits and listen-before-talk belong to
//! the radio issue; this is the plain datagram adapter until then.

use crate::queues::{Datagram, LORA_MTU, RADIO_RX, RADIO_TX, WAKE};
use embassy_futures::select::{select, Either};
use embassy_time::Timer;
use lora_phy::mod_params::{Bandwidth, CodingRate, SpreadingFactor};
use lora_phy::mod_traits::RadioKind;
use lora_phy::{DelayNs, LoRa, RxMode};

/// The modulation both radios of a link use.
#[derive(Debug, Clone, Copy)]
pub struct RadioParams {
    /// Centre frequency in Hz (e.g. 869_525_000 in EU868's 10% sub-band).
    pub frequency_hz: u32,
    /// Spreading factor.
    pub sf: SpreadingFactor,
    /// Bandwidth.
    pub bw: Bandwidth,
    /// Coding rate.
    pub cr: CodingRate,
    /// Transmit power in dBm.
    pub power_dbm: i32,
    /// Preamble symbols.
    pub preamble: u16,
}

impl RadioParams {
    /// SF7, 125 kHz, 4/5 on `frequency_hz` at `power_dbm`: ~5.5 kbit/s.
    pub fn sf7(frequency_hz: u32, power_dbm: i32) -> Self {
        RadioParams {
            frequency_hz,
            sf: SpreadingFactor::_7,
            bw: Bandwidth::_125KHz,
            cr: CodingRate::_4_5,
            power_dbm,
            preamble: 8,
        }
    }

    /// The raw bit rate in bytes per second (`SF · BW / 2^SF · 4/(4+CR)`), for
    /// the link's `Config::line_rate`: SF7/125 kHz/4-5 gives 683.
    pub fn byte_rate(&self) -> u32 {
        let sf = self.sf as u32 + 5;
        let bw: u32 = match self.bw {
            Bandwidth::_250KHz => 250_000,
            Bandwidth::_500KHz => 500_000,
            _ => 125_000,
        };
        let cr = match self.cr {
            CodingRate::_4_5 => 5,
            CodingRate::_4_6 => 6,
            CodingRate::_4_7 => 7,
            _ => 8,
        };
        (u64::from(sf) * u64::from(bw) * 4 / ((1u64 << sf) * cr * 8)) as u32
    }
}

/// Runs the radio. Never returns; a radio that fails to answer is retried
/// every second.
pub async fn run<RK: RadioKind, D: DelayNs>(mut lora: LoRa<RK, D>, p: RadioParams) -> ! {
    let mut buf = [0u8; LORA_MTU];
    loop {
        let Ok(mdltn) = lora.create_modulation_params(p.sf, p.bw, p.cr, p.frequency_hz) else {
            Timer::after_secs(1).await;
            continue;
        };
        let (Ok(mut tx_params), Ok(rx_params)) = (
            lora.create_tx_packet_params(p.preamble, false, true, false, &mdltn),
            lora.create_rx_packet_params(p.preamble, false, LORA_MTU as u8, true, false, &mdltn),
        ) else {
            Timer::after_secs(1).await;
            continue;
        };
        loop {
            if lora.prepare_for_rx(RxMode::Continuous, &mdltn, &rx_params).await.is_err() {
                Timer::after_secs(1).await;
                break;
            }
            match select(lora.rx(&rx_params, &mut buf), RADIO_TX.receive()).await {
                Either::First(Ok((n, _status))) => {
                    let n = usize::from(n).min(LORA_MTU);
                    if let Ok(d) = Datagram::from_slice(&buf[..n]) {
                        // A full queue drops the frame: the ARQ repeats it.
                        let _ = RADIO_RX.try_send(d);
                    }
                    WAKE.signal(());
                }
                Either::First(Err(_)) => {}
                Either::Second(frame) => {
                    if lora.prepare_for_tx(&mdltn, &mut tx_params, p.power_dbm, &frame).await.is_ok() {
                        let _ = lora.tx().await;
                    }
                    WAKE.signal(());
                }
            }
        }
    }
}
