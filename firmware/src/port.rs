//! Ports as the core's drive step sees them: each is a
//! [`strand_link::drive::Transport`] — a byte stream (a UART, USB-CDC) that
//! the driver frames with [`StreamFraming`](strand_link::framing::StreamFraming),
//! or a datagram medium (a radio) framed with
//! [`DatagramFraming`](strand_link::framing::DatagramFraming), one frame per
//! datagram. Nothing here knows the protocol: the driver builds a unit only
//! when the port says it takes one whole, and hands it over.

use embedded_io::{Read, ReadReady, Write};
pub use strand_link::drive::{Capabilities, Transport};
use strand_link::framing::StreamFraming;

/// A node port: a transport for the drive step, and the errors it saw for
/// the node's counters (see [`crate::service`]).
pub trait Port: Transport {
    /// Errors the port saw (UART overrun, framing, a failed radio transfer).
    fn errors(&self) -> u32 {
        0
    }
}

/// Room in a byte-stream device's transmit buffer.
pub trait TxRoom {
    /// How many bytes one `write` takes now, all of them (0: none). A device
    /// may say less than its free space to keep its queue short: what it
    /// holds delays every frame behind it, acknowledgements included.
    fn tx_room(&self) -> usize;
}

/// A byte-stream port over any `embedded-io` device that says when it can be
/// read without blocking and how much one write takes (a UART with
/// interrupt-fed rings, a buffered USB-CDC class). It takes a unit only when
/// the largest one the framing writes fits whole, so a frame is never cut
/// and nothing is staged outside the device. Device errors lose the call's
/// bytes and are counted: the link's CRC and ARQ recover what they touched.
pub struct ByteStream<T> {
    /// The device.
    pub io: T,
    caps: Capabilities,
    unit: usize,
    errors: u32,
}

impl<T> ByteStream<T> {
    /// Wraps a device carrying raw frames of up to `max_raw` bytes (the
    /// connection's [`max_raw`](strand_link::Connection::max_raw)) at
    /// `rate` bytes per second (0: unknown).
    pub fn new(io: T, max_raw: usize, rate: u32) -> Self {
        ByteStream {
            io,
            caps: Capabilities::stream(max_raw, rate),
            unit: StreamFraming::unit_capacity(max_raw),
            errors: 0,
        }
    }

    /// The largest unit the stream framing writes for these frames: the
    /// room the device must have before a unit is built.
    pub fn unit(&self) -> usize {
        self.unit
    }
}

impl<T: Read + ReadReady + Write + TxRoom> Transport for ByteStream<T> {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn recv(&mut self, buf: &mut [u8]) -> usize {
        match self.io.read_ready() {
            Ok(true) => match self.io.read(buf) {
                Ok(n) => n,
                Err(_) => {
                    self.errors = self.errors.wrapping_add(1);
                    0
                }
            },
            Ok(false) => 0,
            Err(_) => {
                self.errors = self.errors.wrapping_add(1);
                0
            }
        }
    }

    fn ready(&self) -> bool {
        self.io.tx_room() >= self.unit
    }

    fn send(&mut self, unit: &[u8]) {
        let mut at = 0;
        while at < unit.len() {
            match self.io.write(&unit[at..]) {
                Ok(n) if n > 0 => at += n,
                // Cannot happen after `ready`; the frame is lost like on a
                // noisy line (the ARQ sends it again), never retried forever.
                _ => {
                    self.errors = self.errors.wrapping_add(1);
                    return;
                }
            }
        }
    }
}

impl<T: Read + ReadReady + Write + TxRoom> Port for ByteStream<T> {
    fn errors(&self) -> u32 {
        self.errors
    }
}

/// A radio (or any datagram medium) as the hooks a radio driver fills in:
/// one frame per datagram, at most `MTU` bytes, half duplex.
pub trait Radio {
    /// Largest datagram the radio carries (255 for LoRa).
    const MTU: usize;
    /// A received datagram, if one is waiting: its length in `buf`.
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// Whether [`transmit`](Self::transmit) takes a frame now.
    fn can_transmit(&self) -> bool;
    /// Queues `frame` for transmission (only after `can_transmit` said
    /// yes); false if it was dropped.
    fn transmit(&mut self, frame: &[u8]) -> bool;
}

/// The plain datagram adapter: a [`Radio`] as a [`Port`].
pub struct Datagrams<R> {
    /// The radio.
    pub radio: R,
    rate: u32,
    errors: u32,
}

impl<R> Datagrams<R> {
    /// Wraps a radio moving `rate` bytes per second on air (0: unknown).
    pub fn new(radio: R, rate: u32) -> Self {
        Datagrams { radio, rate, errors: 0 }
    }
}

impl<R: Radio> Transport for Datagrams<R> {
    fn capabilities(&self) -> Capabilities {
        Capabilities::datagram(R::MTU, self.rate, true)
    }

    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.radio.receive(buf).map_or(0, |n| n.min(buf.len()))
    }

    fn ready(&self) -> bool {
        self.radio.can_transmit()
    }

    fn send(&mut self, unit: &[u8]) {
        // A frame longer than the MTU cannot come from a link sized for it;
        // dropped rather than wedging the port.
        if unit.len() > R::MTU || !self.radio.transmit(unit) {
            self.errors = self.errors.wrapping_add(1);
        }
    }
}

impl<R: Radio> Port for Datagrams<R> {
    fn errors(&self) -> u32 {
        self.errors
    }
}
