//! The core alone: one endpoint of one connection (a window of 8 frames of
//! up to 256 bytes each way, a 4-channel stream ledger) with stream framing
//! (COBS: a serial node) or, with feature `datagram`, datagram framing (a
//! radio node), driven by the core's drive step over a byte source and sink
//! at made-up addresses, so that everything the core does at run time
//! (framing, CRC, ARQ, streams, the drive step) is linked in and nothing else
//! is. As the smallest nodes build it: without in-frame FEC (the HELLO asks
//! peers for plain frames) and the float models of the adaptive sizer and
//! pacer; feature `full` puts them back (strand-link's defaults). Its
//! memory is static arrays lent to the core, as on a node. Sized with
//! `readelf -S` (`../footprint.sh`); never run.
#![no_std]
#![no_main]

use core::mem::MaybeUninit;
use core::ptr::{addr_of_mut, read_volatile, write_volatile};
use strand_link::drive::{Capabilities, Driver, Transport};
#[cfg(feature = "datagram")]
use strand_link::framing::DatagramFraming;
use strand_link::framing::StreamFraming;
use strand_link::wire::OVERHEAD;
use strand_link::{Buf, Config, ConnStorage, Connection, Endpoint, Instant, RxSlot, StreamEntry, TxSlot};

const STATUS: *const u32 = 0x4000_0000 as *const u32;
const RX: *const u32 = 0x4000_0004 as *const u32;
const TX: *mut u32 = 0x4000_0008 as *mut u32;
const CLOCK: *const u32 = 0x4000_000C as *const u32;

/// Window in frames, largest raw frame, its payload, stream channels.
const W: usize = 8;
const MAX_RAW: usize = 256;
const P: usize = MAX_RAW - OVERHEAD;
const S: usize = 4;
#[cfg(not(feature = "datagram"))]
const ENCODED: usize = StreamFraming::encoded_capacity(MAX_RAW);
const UNIT: usize = StreamFraming::unit_capacity(MAX_RAW);

static mut TX_SLOTS: MaybeUninit<[TxSlot; W]> = MaybeUninit::uninit();
static mut RX_SLOTS: MaybeUninit<[RxSlot; W]> = MaybeUninit::uninit();
static mut STREAMS: MaybeUninit<[StreamEntry; S]> = MaybeUninit::uninit();
static mut TX_DATA: [u8; W * P] = [0; W * P];
static mut RX_DATA: [u8; W * P] = [0; W * P];
#[cfg(not(feature = "datagram"))]
static mut ACCUMULATOR: [u8; ENCODED] = [0; ENCODED];
#[cfg(not(feature = "datagram"))]
static mut FRAME: [u8; MAX_RAW] = [0; MAX_RAW];
#[cfg(not(feature = "datagram"))]
static mut PROTECTED: [u8; MAX_RAW] = [0; MAX_RAW];
static mut RX_BUF: [u8; 64] = [0; 64];
static mut UNIT_BUF: [u8; UNIT] = [0; UNIT];
static mut CONN: MaybeUninit<[Connection<'static>; 1]> = MaybeUninit::uninit();
static mut ENDPOINT: MaybeUninit<Endpoint<'static>> = MaybeUninit::uninit();
#[cfg(not(feature = "datagram"))]
type Framing = StreamFraming<'static>;
#[cfg(feature = "datagram")]
type Framing = DatagramFraming;
static mut DRIVER: MaybeUninit<Driver<'static, Framing>> = MaybeUninit::uninit();

/// The byte device at the made-up addresses.
struct Uart;

impl Transport for Uart {
    fn capabilities(&self) -> Capabilities {
        if cfg!(feature = "datagram") {
            Capabilities::datagram(MAX_RAW, 0, true)
        } else {
            Capabilities::stream(MAX_RAW, 0)
        }
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        // SAFETY: made-up registers: this program only exists to be measured.
        while n < buf.len() && unsafe { read_volatile(STATUS) } & 1 != 0 {
            buf[n] = unsafe { read_volatile(RX) } as u8;
            n += 1;
        }
        n
    }
    fn ready(&self) -> bool {
        // SAFETY: as above.
        (unsafe { read_volatile(STATUS) } & 2) != 0
    }
    fn send(&mut self, unit: &[u8]) {
        for &b in unit {
            // SAFETY: as above.
            unsafe { write_volatile(TX, u32::from(b)) };
        }
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    // SAFETY: as above.
    let now = || Instant::from_micros(u64::from(unsafe { read_volatile(CLOCK) }));
    let config = Config::default();
    // SAFETY: the only references to the statics, made once, here.
    let (ep, driver) = unsafe {
        let storage = ConnStorage {
            tx_slots: Buf::Borrowed((*addr_of_mut!(TX_SLOTS)).write([TxSlot::EMPTY; W])),
            tx_data: Buf::Borrowed(&mut *addr_of_mut!(TX_DATA)),
            rx_slots: Buf::Borrowed((*addr_of_mut!(RX_SLOTS)).write([RxSlot::EMPTY; W])),
            rx_data: Buf::Borrowed(&mut *addr_of_mut!(RX_DATA)),
            streams: Buf::Borrowed((*addr_of_mut!(STREAMS)).write([StreamEntry::EMPTY; S])),
        };
        let conn = Connection::new(config.clone(), storage, 0, now(), 1);
        let conns = (*addr_of_mut!(CONN)).write([conn]);
        let ep =
            (*addr_of_mut!(ENDPOINT)).write(Endpoint::new(config.clone(), 0, Buf::Borrowed(conns), now()));
        #[cfg(not(feature = "datagram"))]
        let framing = StreamFraming::new(
            Buf::Borrowed(&mut *addr_of_mut!(ACCUMULATOR)),
            Buf::Borrowed(&mut *addr_of_mut!(FRAME)),
            Buf::Borrowed(&mut *addr_of_mut!(PROTECTED)),
            config.idle_resync,
        );
        #[cfg(feature = "datagram")]
        let framing = DatagramFraming::new(MAX_RAW);
        let driver = (*addr_of_mut!(DRIVER)).write(Driver::new(
            framing,
            Buf::Borrowed(&mut *addr_of_mut!(RX_BUF)),
            Buf::Borrowed(&mut *addr_of_mut!(UNIT_BUF)),
        ));
        (ep, driver)
    };
    let mut uart = Uart;
    let mut echo = [0u8; P];
    loop {
        let _next = driver.step(ep, &mut uart, now());
        let conn = ep.connection_mut(0);
        while conn.poll_event().is_some() {}
        while let Some(n) = conn.recv(|_, p| {
            echo[..p.len()].copy_from_slice(p);
            p.len()
        }) {
            let taken = conn.write_stream(1, &echo[..n]);
            conn.stream_written(now(), 1, taken as u32);
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::asm::udf()
}
