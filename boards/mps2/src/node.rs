//! The node's main loop on an MPS2 machine: UART0 and UART1 as ports, the
//! tickless clock, and WFI whenever there is nothing to do.

use crate::irq;
use crate::semihosting;
use crate::timer::Timers;
use crate::uart::{Uart, TX_AHEAD, TX_RING};
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;
use strand_firmware::bridge::{node_config, Bridge, HOST_PACKET_CHANNELS};
use strand_firmware::clock::Clock;
use strand_firmware::loopback::Loopback;
use strand_firmware::memory::{stream_unit, StreamPortMemory};
use strand_firmware::port::ByteStream;
use strand_link::framing::StreamFraming;

/// The node's links: a window of 8 frames each way, payloads of up to 236
/// bytes (raw frames of 256, about 200 bytes of payload once room for heavy
/// FEC parity is kept).
pub const W: usize = 8;
/// See [`W`].
pub const P: usize = 236;
/// Stream channels a session may carry (the written-up-to ledger, spec 8.3):
/// a host's `strand forward` uses one per connection at a time.
pub const S: usize = 32;
/// The framing's buffers: one encoded frame with its delimiters.
pub const U: usize = stream_unit(P);
/// The memory of one port's link.
pub type PortMemory = StreamPortMemory<'static, W, P, S, U>;
/// Largest raw frame of the node's links.
pub const MAX_RAW: usize = PortMemory::MAX_RAW;

const _: () = assert!(TX_AHEAD + U <= TX_RING, "the UART's TX ring must take a whole frame behind TX_AHEAD");

/// The rate the node's links assume for their ports. QEMU does not pace its
/// UART, but moving a byte per interrupt it carries ~13-15 KB/s into the
/// node. A link told no rate (`Config::default`) times its frames from when
/// they were queued: in one run in five or so its retransmission timer sat at
/// the 50 ms floor behind ~150 ms of queue, and the node and host A fell into
/// retransmitting each other's frames (10,022 duplicates and 9,684 host
/// retransmissions for 200 KB: 77 s instead of 15). With a rate the core
/// times frames from when they leave and keeps its queue short (spec 6.3);
/// 115,200 bit/s capped the node at ~9.7 KB/s, 230,400 keeps it stable at
/// 10-14 KB/s.
pub const NOMINAL_BAUD: u32 = 230_400;

/// The bridge as this board builds it.
pub type NodeBridge = Bridge<'static, StreamFraming<'static>, StreamFraming<'static>, P>;
/// The echo node as this board builds it.
pub type NodeLoopback = Loopback<'static, StreamFraming<'static>, P>;

/// Where the links and the roles live: statics, so their size shows in the
/// ELF's RAM figures rather than hiding on the stack. Uninitialised at boot
/// (`.bss`), filled in place when the node starts.
static mut MEM_A: PortMemory = PortMemory::new();
static mut MEM_B: PortMemory = PortMemory::new();
static mut BRIDGE: MaybeUninit<NodeBridge> = MaybeUninit::uninit();
static mut LOOPBACK: MaybeUninit<NodeLoopback> = MaybeUninit::uninit();

/// Entropy for session ids: QEMU has no RNG, so the time the first byte
/// arrives (40 ns ticks, moved by host scheduling) mixed with the host's
/// clock in seconds. Hosts send HELLOs until answered, so a byte comes.
fn seed(timers: &Timers) -> u64 {
    while irq::UART_RINGS.iter().all(|r| r.rx.is_empty()) {
        irq::wait_for_work();
    }
    (u64::from(semihosting::host_time()) << 32) ^ u64::from(timers.ticks())
}

/// UART `n` as a port of the node's links.
fn port(n: usize) -> ByteStream<Uart> {
    ByteStream::new(Uart::new(n, &irq::UART_RINGS[n]), MAX_RAW, NOMINAL_BAUD / 10)
}

/// Runs the bridge between UART0 (port A) and UART1 (port B). Never returns.
pub fn run_bridge() -> ! {
    let mut timers = Timers::new();
    let (mut pa, mut pb) = (port(0), port(1));
    irq::enable();
    let seed = seed(&timers);
    let now = timers.now();
    let cfg = node_config(NOMINAL_BAUD, MAX_RAW);
    // SAFETY: the only references to MEM_A, MEM_B and BRIDGE, made once, here.
    let bridge = unsafe {
        let a = (*addr_of_mut!(MEM_A)).link(cfg.clone(), now, seed);
        let b = (*addr_of_mut!(MEM_B)).link(cfg, now, !seed);
        (*addr_of_mut!(BRIDGE)).write(Bridge::new(a, b, HOST_PACKET_CHANNELS, now))
    };
    loop {
        let now = timers.now();
        let deadline = bridge.poll(now, &mut pa, &mut pb);
        timers.set_alarm(deadline);
        irq::wait_for_work();
    }
}

/// Runs the echo service on UART0. Never returns.
pub fn run_loopback() -> ! {
    let mut timers = Timers::new();
    let mut port = port(0);
    irq::enable();
    let seed = seed(&timers);
    let now = timers.now();
    // SAFETY: the only references to MEM_A and LOOPBACK, made once, here.
    let node = unsafe {
        let link = (*addr_of_mut!(MEM_A)).link(node_config(NOMINAL_BAUD, MAX_RAW), now, seed);
        (*addr_of_mut!(LOOPBACK)).write(Loopback::new(link, HOST_PACKET_CHANNELS, now))
    };
    loop {
        let now = timers.now();
        let deadline = node.poll(now, &mut port);
        timers.set_alarm(deadline);
        irq::wait_for_work();
    }
}

/// The interrupt and fault handlers every MPS2 binary needs; call once at
/// the crate root of a binary.
#[macro_export]
macro_rules! handlers {
    () => {
        #[cortex_m_rt::exception]
        unsafe fn DefaultHandler(irqn: i16) {
            $crate::irq::dispatch(irqn);
        }

        #[cortex_m_rt::exception]
        unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
            $crate::semihosting::exit(2)
        }

        /// A panic ends the QEMU run with a failure status (a test sees it);
        /// the message is not formatted, which keeps core::fmt out of flash.
        #[panic_handler]
        fn panic(_: &core::panic::PanicInfo) -> ! {
            $crate::semihosting::exit(101)
        }
    };
}
