//! The core alone: one `Link<8, 256>` driven from a byte source and sink at
//! made-up addresses, so that everything the core does at run time (framing,
//! CRC, FEC, ARQ, streams) is linked in and nothing else is. Sized with
//! `cargo size --release` / `readelf -S`; never run.
#![no_std]
#![no_main]

use core::mem::MaybeUninit;
use core::ptr::{addr_of_mut, read_volatile, write_volatile};
use strand_link::{Config, Instant, Link};

const RX: *const u32 = 0x4000_0000 as *const u32;
const TX: *mut u32 = 0x4000_0004 as *mut u32;
const CLOCK: *const u32 = 0x4000_0008 as *const u32;

static mut LINK: MaybeUninit<Link<8, 256>> = MaybeUninit::uninit();

#[cortex_m_rt::entry]
fn main() -> ! {
    // SAFETY: made-up registers: this program only exists to be measured.
    let now = || Instant::from_micros(u64::from(unsafe { read_volatile(CLOCK) }));
    // SAFETY: the only reference to LINK.
    let link = unsafe { (*addr_of_mut!(LINK)).write(Link::new(Config::default(), now(), 1)) };
    let mut out = [0u8; 258];
    loop {
        let b = unsafe { read_volatile(RX) } as u8;
        link.handle_input(now(), &[b]);
        link.handle_timeout(now());
        while let Some(n) = link.poll_transmit(now(), &mut out) {
            for &b in &out[..n] {
                unsafe { write_volatile(TX, u32::from(b)) };
            }
        }
        while link.poll_event().is_some() {}
        while let Some(n) = link.recv(|_, p| p.len()) {
            let taken = link.write_stream(1, &out[..n]);
            link.stream_written(now(), 1, taken as u32);
        }
        let _ = link.poll_timeout();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::asm::udf()
}
