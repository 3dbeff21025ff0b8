//! The bridge task: serial port on side A, radio on side B.

use crate::queues::{RadioQueues, SerialPort, LORA_MTU, RADIO_RX, SERIAL_RX, WAKE};
use core::mem::MaybeUninit;
use embassy_futures::select::select;
use embassy_time::{Duration, Timer};
use strand_firmware::bridge::{node_config, Bridge, HOST_PACKET_CHANNELS};
use strand_firmware::clock::MAX_SLEEP_US;
use strand_firmware::memory::{stream_unit, DatagramPortMemory, StreamPortMemory};
use strand_firmware::port::Datagrams;
use strand_link::framing::{DatagramFraming, StreamFraming};
use strand_link::wire::OVERHEAD;
use strand_link::Config;

/// The node's links: a window of 8 frames each way.
pub const W: usize = 8;
/// The serial side's payloads: raw frames of 256 bytes, as on the MPS2 node.
pub const SERIAL_P: usize = 236;
/// The radio side's payloads: one frame fills one LoRa datagram.
pub const RADIO_P: usize = LORA_MTU - OVERHEAD;
/// Stream channels a session may carry (the written-up-to ledger, spec 8.3).
pub const S: usize = 32;
/// The serial link's memory.
pub type SerialMemory = StreamPortMemory<'static, W, SERIAL_P, S, { stream_unit(SERIAL_P) }>;
/// The radio link's memory.
pub type RadioMemory = DatagramPortMemory<'static, W, RADIO_P, S, LORA_MTU>;
/// The bridge as the radio boards build it (its relays carry one delivery
/// of either side).
pub type RadioBridge = Bridge<'static, StreamFraming<'static>, DatagramFraming, SERIAL_P>;

const _: () = assert!(SERIAL_P >= RADIO_P, "the relays' carry holds a delivery of either side");

/// Everything the node keeps: both links' memory and the bridge, for one
/// `static` the board provides (uninitialised at boot, so it costs no flash
/// and its size shows in the RAM figures).
pub struct NodeMemory {
    serial: SerialMemory,
    radio: RadioMemory,
    bridge: MaybeUninit<RadioBridge>,
}

impl Default for NodeMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeMemory {
    /// Uninitialised memory (for a `static`).
    pub const fn new() -> Self {
        NodeMemory { serial: SerialMemory::new(), radio: RadioMemory::new(), bridge: MaybeUninit::uninit() }
    }
}

/// Link settings for the radio side: LoRa at `byte_rate` bytes per second
/// (`RadioParams::byte_rate`) is slow and half duplex, so timers are long and
/// frames are timed from when they leave. A placeholder for the radio issue.
pub fn radio_config(byte_rate: u32) -> Config {
    let mut c = Config::for_serial_line(byte_rate.max(1) * 10, 10, RadioMemory::MAX_RAW);
    c.fec = true;
    c.keepalive = strand_link::time::Duration::from_secs(10);
    c.link_timeout = strand_link::time::Duration::from_secs(60);
    c.max_rto = strand_link::time::Duration::from_secs(30);
    c
}

/// Runs the bridge in `memory` between the serial port at `baud` (8N1) and
/// the radio at `radio_rate` bytes per second on air. `entropy` must differ
/// between boots where the board has a random source; the arrival time of
/// the first byte is mixed in too. Never returns.
pub async fn run(memory: &'static mut NodeMemory, baud: u32, radio_rate: u32, entropy: u64) -> ! {
    // Wait for the first sign of a peer: its arrival time (µs) is entropy a
    // board without a random source still has.
    while SERIAL_RX.is_empty() && RADIO_RX.is_empty() {
        WAKE.wait().await;
    }
    let seed = entropy ^ embassy_time::Instant::now().as_ticks().rotate_left(32);
    let now = crate::now();
    let NodeMemory { serial, radio, bridge } = memory;
    let a = serial.link(node_config(baud, SerialMemory::MAX_RAW), now, seed);
    let b = radio.link(radio_config(radio_rate), now, !seed);
    let bridge = bridge.write(Bridge::new(a, b, HOST_PACKET_CHANNELS, now));
    let mut serial = SerialPort::new(SerialMemory::MAX_RAW, baud / 10);
    let mut radio = Datagrams::new(RadioQueues, radio_rate);
    loop {
        let now = crate::now();
        let deadline = bridge.poll(now, &mut serial, &mut radio);
        let sleep = strand_firmware::clock::sleep_micros(now, deadline).min(MAX_SLEEP_US);
        select(Timer::after(Duration::from_micros(sleep)), WAKE.wait()).await;
    }
}
