//! CMSDK APB UART, interrupt-driven: the RX interrupt moves each byte into a
//! ring, the TX interrupt feeds the UART from another. The main loop sees an
//! `embedded-io` device that never blocks.
//!
//! QEMU's model has no FIFO (one byte per interrupt), flow-controls its
//! chardev (a byte not yet read holds the socket), and does not pace bytes
//! by the baud rate.

use core::ptr::{read_volatile, write_volatile};
use strand_firmware::port::TxRoom;
use strand_firmware::ring::ByteRing;

/// Base addresses of UART0..UART4.
pub const BASES: [usize; 5] = [0x4000_4000, 0x4000_5000, 0x4000_6000, 0x4000_7000, 0x4000_9000];

mod reg {
    pub const DATA: usize = 0x00;
    pub const STATE: usize = 0x04;
    pub const CTRL: usize = 0x08;
    pub const INTSTATUS: usize = 0x0C;
    pub const BAUDDIV: usize = 0x10;
}
mod state {
    pub const TX_FULL: u32 = 1 << 0;
    pub const RX_FULL: u32 = 1 << 1;
}
mod ctrl {
    pub const TX_EN: u32 = 1 << 0;
    pub const RX_EN: u32 = 1 << 1;
    pub const TX_INT: u32 = 1 << 2;
    pub const RX_INT: u32 = 1 << 3;
}
mod int {
    pub const TX: u32 = 1 << 0;
    pub const RX: u32 = 1 << 1;
}

/// Ring sizes: RX holds what arrives while the main loop is busy (a few
/// frames). TX holds a whole frame (the drive step hands the port a unit
/// only when it fits whole) behind at most [`TX_AHEAD`] bytes.
pub const RX_RING: usize = 1024;
/// See [`RX_RING`].
pub const TX_RING: usize = 512;
/// Bytes the TX ring may still hold when it takes the next frame. Kept
/// small on purpose: bytes handed to the UART cannot be overtaken, so an ACK
/// the link wants out now waits behind whatever the ring holds. With 512
/// bytes of queue the host's round trips swung by ~40 ms more and its timers
/// fired needlessly; 64 ahead plus one frame is what the node ran with before
/// (a 64-byte ring and one frame staged in the firmware's own drive loop).
pub const TX_AHEAD: usize = 64;

/// The rings of one UART, shared with its interrupt handlers.
pub struct Rings {
    /// Received bytes: the RX handler produces, the main loop consumes.
    pub rx: ByteRing<RX_RING>,
    /// Bytes to send: the main loop produces, the TX handler consumes.
    pub tx: ByteRing<TX_RING>,
}

impl Rings {
    /// Empty rings.
    pub const fn new() -> Self {
        Rings { rx: ByteRing::new(), tx: ByteRing::new() }
    }
}

impl Default for Rings {
    fn default() -> Self {
        Self::new()
    }
}

fn read(base: usize, off: usize) -> u32 {
    // SAFETY: `base` is one of `BASES`, a CMSDK UART on the MPS2 memory map.
    unsafe { read_volatile((base + off) as *const u32) }
}

fn write(base: usize, off: usize, v: u32) {
    // SAFETY: as `read`.
    unsafe { write_volatile((base + off) as *mut u32, v) }
}

/// One UART and its rings.
pub struct Uart {
    base: usize,
    rings: &'static Rings,
}

impl Uart {
    /// Sets up UART `n` (0..=4) with both directions and interrupts on.
    /// QEMU requires a divider of at least 16 and ignores its value otherwise.
    pub fn new(n: usize, rings: &'static Rings) -> Uart {
        let base = BASES[n];
        write(base, reg::CTRL, 0);
        write(base, reg::BAUDDIV, 16);
        write(base, reg::INTSTATUS, int::TX | int::RX);
        write(base, reg::CTRL, ctrl::TX_EN | ctrl::RX_EN | ctrl::TX_INT | ctrl::RX_INT);
        Uart { base, rings }
    }

    /// Whether received bytes wait in the ring.
    pub fn has_input(&self) -> bool {
        !self.rings.rx.is_empty()
    }

    /// Starts sending if the UART is idle and bytes wait (the TX interrupt
    /// only fires when a byte finishes, so the first byte is written here).
    fn kick(&self) {
        cortex_m::interrupt::free(|_| {
            if read(self.base, reg::STATE) & state::TX_FULL == 0 {
                // SAFETY: interrupts are masked, so the TX handler (the
                // ring's consumer) cannot run concurrently.
                if let Some(b) = unsafe { self.rings.tx.pop() } {
                    write(self.base, reg::DATA, u32::from(b));
                }
            }
        });
    }
}

/// The RX interrupt of a UART: moves the byte into its ring. Returns whether
/// the main loop should look now: a frame delimiter arrived (before one,
/// the link can do nothing with the bytes), or the ring is half full.
pub fn on_rx(n: usize, rings: &Rings) -> bool {
    let base = BASES[n];
    write(base, reg::INTSTATUS, int::RX);
    let mut wake = false;
    while read(base, reg::STATE) & state::RX_FULL != 0 {
        let b = read(base, reg::DATA) as u8;
        // SAFETY: this handler is the only producer of the RX ring. A full
        // ring drops the byte (counted): the link's CRC and ARQ recover.
        unsafe { rings.rx.push(b) };
        wake |= b == strand_link::framing::DELIMITER;
    }
    wake || rings.rx.len() >= RX_RING / 2
}

/// The TX interrupt of a UART: the next byte, if any. Returns whether the
/// main loop should look now: the ring just drained to [`TX_AHEAD`], so it
/// takes the next frame (once per frame, not per byte).
pub fn on_tx(n: usize, rings: &Rings) -> bool {
    let base = BASES[n];
    write(base, reg::INTSTATUS, int::TX);
    if read(base, reg::STATE) & state::TX_FULL == 0 {
        // SAFETY: this handler is the ring's consumer; `kick` takes that role
        // only with interrupts masked.
        if let Some(b) = unsafe { rings.tx.pop() } {
            write(base, reg::DATA, u32::from(b));
            return rings.tx.len() == TX_AHEAD;
        }
    }
    false
}

/// RX overruns (bytes lost to a full ring).
impl Uart {
    /// Bytes dropped because the RX ring was full.
    pub fn overruns(&self) -> u32 {
        self.rings.rx.overruns()
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = core::convert::Infallible;
}

impl embedded_io::ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(self.has_input())
    }
}

impl embedded_io::Read for Uart {
    /// Never blocks when `read_ready` said yes; otherwise returns 0 (the
    /// port only reads when ready).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        // SAFETY: the main loop is the only consumer of the RX ring.
        Ok(unsafe { self.rings.rx.pop_into(buf) })
    }
}

impl embedded_io::WriteReady for Uart {
    fn write_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(self.rings.tx.free() > 0)
    }
}

impl TxRoom for Uart {
    /// The ring's free space while it holds at most [`TX_AHEAD`] bytes, else
    /// nothing: the next frame waits until the queue ahead of it is short.
    fn tx_room(&self) -> usize {
        if self.rings.tx.len() <= TX_AHEAD {
            self.rings.tx.free()
        } else {
            0
        }
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        // SAFETY: the main loop is the only producer of the TX ring.
        let n = unsafe { self.rings.tx.push_slice(buf) };
        self.kick();
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        while !self.rings.tx.is_empty() {
            self.kick();
        }
        Ok(())
    }
}
