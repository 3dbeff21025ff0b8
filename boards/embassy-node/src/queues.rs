//! Where the tasks meet the bridge: byte pipes for the serial port, datagram
//! channels for the radio, and one signal that wakes the bridge task.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::pipe::Pipe;
use embassy_sync::signal::Signal;
use strand_firmware::port::{Capabilities, Port, Radio, Transport};
use strand_link::framing::StreamFraming;

/// Largest LoRa datagram.
pub const LORA_MTU: usize = 255;
/// One radio datagram.
pub type Datagram = heapless::Vec<u8, LORA_MTU>;

/// Bytes from the serial port, for the bridge.
pub static SERIAL_RX: Pipe<CriticalSectionRawMutex, 1024> = Pipe::new();
/// Bytes from the bridge, for the serial port: room for one whole frame
/// behind a short queue.
pub static SERIAL_TX: Pipe<CriticalSectionRawMutex, 512> = Pipe::new();
/// Datagrams the radio received.
pub static RADIO_RX: Channel<CriticalSectionRawMutex, Datagram, 4> = Channel::new();
/// Datagrams to transmit.
pub static RADIO_TX: Channel<CriticalSectionRawMutex, Datagram, 2> = Channel::new();
/// Raised whenever a queue gains input or room: the bridge has work.
pub static WAKE: Signal<CriticalSectionRawMutex, ()> = Signal::new();

/// The serial side of the bridge: a byte stream through the pipes.
pub struct SerialPort {
    caps: Capabilities,
    unit: usize,
}

impl SerialPort {
    /// The port for raw frames of up to `max_raw` bytes at `rate` bytes/s.
    pub fn new(max_raw: usize, rate: u32) -> Self {
        SerialPort { caps: Capabilities::stream(max_raw, rate), unit: StreamFraming::unit_capacity(max_raw) }
    }
}

impl Transport for SerialPort {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        SERIAL_RX.try_read(buf).unwrap_or(0)
    }
    /// A unit is built only when the pipe takes it whole.
    fn ready(&self) -> bool {
        SERIAL_TX.free_capacity() >= self.unit
    }
    fn send(&mut self, unit: &[u8]) {
        // All of it fits (`ready`); only this task writes the pipe.
        let _ = SERIAL_TX.try_write(unit);
    }
}

impl Port for SerialPort {}

/// The radio side of the bridge, as `strand-firmware`'s datagram hook.
pub struct RadioQueues;

impl Radio for RadioQueues {
    const MTU: usize = LORA_MTU;
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        let d = RADIO_RX.try_receive().ok()?;
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Some(n)
    }
    fn can_transmit(&self) -> bool {
        !RADIO_TX.is_full()
    }
    fn transmit(&mut self, frame: &[u8]) -> bool {
        // Longer than a LoRa frame: cannot happen with a link sized for the
        // MTU; dropped (and counted) rather than retried for ever.
        Datagram::from_slice(frame).is_ok_and(|d| RADIO_TX.try_send(d).is_ok())
    }
}
