//! Where the tasks meet the bridge: byte pipes for the serial port, datagram
//! channels for the radio, and one signal that wakes the bridge task.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::pipe::Pipe;
use embassy_sync::signal::Signal;
use strand_firmware::port::{Port, Radio};

/// Largest LoRa datagram.
pub const LORA_MTU: usize = 255;
/// One radio datagram.
pub type Datagram = heapless::Vec<u8, LORA_MTU>;

/// Bytes from the serial port, for the bridge.
pub static SERIAL_RX: Pipe<CriticalSectionRawMutex, 1024> = Pipe::new();
/// Bytes from the bridge, for the serial port.
pub static SERIAL_TX: Pipe<CriticalSectionRawMutex, 512> = Pipe::new();
/// Datagrams the radio received.
pub static RADIO_RX: Channel<CriticalSectionRawMutex, Datagram, 4> = Channel::new();
/// Datagrams to transmit.
pub static RADIO_TX: Channel<CriticalSectionRawMutex, Datagram, 2> = Channel::new();
/// Raised whenever a queue gains input or room: the bridge has work.
pub static WAKE: Signal<CriticalSectionRawMutex, ()> = Signal::new();

/// The serial side of the bridge.
pub struct SerialPort;

impl Port for SerialPort {
    const DATAGRAM: bool = false;
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        SERIAL_RX.try_read(buf).unwrap_or(0)
    }
    fn send(&mut self, data: &[u8]) -> usize {
        SERIAL_TX.try_write(data).unwrap_or(0)
    }
}

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
    fn transmit(&mut self, frame: &[u8]) -> bool {
        match Datagram::from_slice(frame) {
            Ok(d) => RADIO_TX.try_send(d).is_ok(),
            // Longer than a LoRa frame: cannot happen with a link sized for
            // the MTU; dropped rather than retried for ever.
            Err(_) => true,
        }
    }
}
