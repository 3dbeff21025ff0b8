//! Ports as the drive loop sees them: non-blocking, either a byte stream (a
//! UART, USB-CDC) or a datagram medium with its own framing (a radio).

use embedded_io::{Read, ReadReady, Write, WriteReady};

/// A node port. Neither call ever waits.
pub trait Port {
    /// Whether each `recv` returns one whole datagram and each `send` must
    /// take a whole frame or nothing (a radio), rather than any run of bytes
    /// (a UART).
    const DATAGRAM: bool;
    /// Moves received bytes (or one datagram) into `buf`; 0 if none.
    fn recv(&mut self, buf: &mut [u8]) -> usize;
    /// Takes bytes of `data` to send, as many as fit now (a datagram port:
    /// all of them or none); returns how many.
    fn send(&mut self, data: &[u8]) -> usize;
    /// Errors the port saw (UART overrun, framing, failed radio transfer).
    fn errors(&self) -> u32 {
        0
    }
}

/// A byte-stream port over any `embedded-io` device that says when it can be
/// read and written without blocking (a UART with interrupt-fed rings, a
/// buffered USB-CDC class). Device errors drop the call's bytes and are
/// counted: the link's CRC and ARQ recover whatever they touched.
pub struct ByteStream<T> {
    /// The device.
    pub io: T,
    errors: u32,
}

impl<T> ByteStream<T> {
    /// Wraps a device.
    pub fn new(io: T) -> Self {
        ByteStream { io, errors: 0 }
    }
}

impl<T: Read + ReadReady + Write + WriteReady> Port for ByteStream<T> {
    const DATAGRAM: bool = false;

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

    fn send(&mut self, data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        match self.io.write_ready() {
            Ok(true) => match self.io.write(data) {
                Ok(n) => n,
                Err(_) => {
                    self.errors = self.errors.wrapping_add(1);
                    // The frame is lost like on a noisy line; do not retry it forever.
                    data.len()
                }
            },
            Ok(false) => 0,
            Err(_) => {
                self.errors = self.errors.wrapping_add(1);
                0
            }
        }
    }

    fn errors(&self) -> u32 {
        self.errors
    }
}

/// A radio (or any datagram medium) as the hooks the radio issue fills in:
/// one frame per datagram, at most `MTU` bytes. Until frames are separated
/// from byte-stream framing in the core (issue 13), a datagram carries one
/// delimited COBS frame exactly as a UART would, so the link's `N + 2` must
/// not exceed the MTU.
pub trait Radio {
    /// Largest datagram the radio carries (255 for LoRa).
    const MTU: usize;
    /// A received datagram, if one is waiting: its length in `buf`.
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// Queues `frame` for transmission; false if the radio is busy (the drive
    /// loop offers it again later).
    fn transmit(&mut self, frame: &[u8]) -> bool;
}

/// The plain datagram adapter: a [`Radio`] as a [`Port`].
pub struct Datagrams<R> {
    /// The radio.
    pub radio: R,
    errors: u32,
}

impl<R> Datagrams<R> {
    /// Wraps a radio.
    pub fn new(radio: R) -> Self {
        Datagrams { radio, errors: 0 }
    }
}

impl<R: Radio> Port for Datagrams<R> {
    const DATAGRAM: bool = true;

    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.radio.receive(buf).map_or(0, |n| n.min(buf.len()))
    }

    fn send(&mut self, data: &[u8]) -> usize {
        if data.len() > R::MTU {
            // Cannot happen with a link sized for the MTU; drop rather than wedge.
            self.errors = self.errors.wrapping_add(1);
            return data.len();
        }
        if self.radio.transmit(data) {
            data.len()
        } else {
            0
        }
    }

    fn errors(&self) -> u32 {
        self.errors
    }
}
