//! The bridge task: serial port on side A, radio on side B.

use crate::queues::{RadioQueues, SerialPort, RADIO_RX, SERIAL_RX, WAKE};
use embassy_futures::select::select;
use embassy_time::{Duration, Timer};
use strand_firmware::bridge::{Bridge, HOST_PACKET_CHANNELS};
use strand_firmware::clock::MAX_SLEEP_US;
use strand_firmware::port::Datagrams;
use strand_link::Config;

/// The node's links: 8 frames of window, frames of 253 bytes so that a
/// delimited frame (`N + 2`) fits one 255-byte LoRa datagram.
pub const W: usize = 8;
/// See [`W`].
pub const N: usize = 253;
/// See [`W`].
pub const T: usize = N + 2;

/// The bridge as the radio boards build it.
pub type RadioBridge = Bridge<W, N, T>;

/// Link settings for the radio side: LoRa at `byte_rate` bytes per second
/// (`RadioParams::byte_rate`) is slow and half duplex, so timers are long and
/// frames are timed from when they leave. A placeholder for the radio issue.
pub fn radio_config(byte_rate: u32) -> Config {
    let mut c = Config::for_serial_line(byte_rate.max(1) * 10, 10, N);
    c.fec = true;
    c.keepalive = core::time::Duration::from_secs(10);
    c.link_timeout = core::time::Duration::from_secs(60);
    c.max_rto = core::time::Duration::from_secs(30);
    c
}

/// Runs the bridge in `bridge` (a static the board provides, so its ~23 KB
/// show in the RAM figures). `entropy` must differ between boots where the
/// board has a random source; the arrival time of the first byte is mixed in
/// too. Never returns.
pub async fn run(
    bridge: &'static mut core::mem::MaybeUninit<RadioBridge>,
    serial: Config,
    radio: Config,
    entropy: u64,
) -> ! {
    // Wait for the first sign of a peer: its arrival time (µs) is entropy a
    // board without a random source still has.
    while SERIAL_RX.is_empty() && RADIO_RX.is_empty() {
        WAKE.wait().await;
    }
    let seed = entropy ^ embassy_time::Instant::now().as_ticks().rotate_left(32);
    let bridge = bridge.write(RadioBridge::new(serial, radio, HOST_PACKET_CHANNELS, crate::now(), seed));
    let (mut serial, mut radio) = (SerialPort, Datagrams::new(RadioQueues));
    loop {
        let now = crate::now();
        let deadline = bridge.poll(now, &mut serial, &mut radio);
        let sleep = strand_firmware::clock::sleep_micros(now, deadline).min(MAX_SLEEP_US);
        select(Timer::after(Duration::from_micros(sleep)), WAKE.wait()).await;
    }
}
