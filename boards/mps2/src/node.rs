//! The node's main loop on an MPS2 machine: UART0 and UART1 as ports, the
//! tickless clock, and WFI whenever there is nothing to do.

use crate::irq;
use crate::semihosting;
use crate::timer::Timers;
use crate::uart::Uart;
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;
use strand_firmware::bridge::{node_config, Bridge, HOST_PACKET_CHANNELS};
use strand_firmware::clock::Clock;
use strand_firmware::loopback::Loopback;
use strand_firmware::port::ByteStream;

/// The node's links: 8 frames of window, 256-byte frames (about 220 bytes of
/// payload once room for heavy FEC parity is kept), 258 bytes of staging.
pub const W: usize = 8;
/// See [`W`].
pub const N: usize = 256;
/// See [`W`].
pub const T: usize = N + 2;

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
pub type NodeBridge = Bridge<W, N, T>;

/// Where the bridge lives: a static, so its size shows in the ELF's RAM
/// figures rather than hiding on the stack.
static mut BRIDGE: MaybeUninit<NodeBridge> = MaybeUninit::uninit();
static mut LOOPBACK: MaybeUninit<Loopback<W, N, T>> = MaybeUninit::uninit();

/// Entropy for session ids: QEMU has no RNG, so the time the first byte
/// arrives (40 ns ticks, moved by host scheduling) mixed with the host's
/// clock in seconds. Hosts send HELLOs until answered, so a byte comes.
fn seed(timers: &Timers) -> u64 {
    while irq::UART_RINGS.iter().all(|r| r.rx.is_empty()) {
        irq::wait_for_work();
    }
    (u64::from(semihosting::host_time()) << 32) ^ u64::from(timers.ticks())
}

/// Runs the bridge between UART0 (port A) and UART1 (port B). Never returns.
pub fn run_bridge() -> ! {
    let mut timers = Timers::new();
    let mut pa = ByteStream::new(Uart::new(0, &irq::UART_RINGS[0]));
    let mut pb = ByteStream::new(Uart::new(1, &irq::UART_RINGS[1]));
    irq::enable();
    let seed = seed(&timers);
    let now = timers.now();
    let cfg = node_config(NOMINAL_BAUD, N);
    // SAFETY: the only reference to BRIDGE, made once, here.
    let bridge = unsafe {
        (*addr_of_mut!(BRIDGE)).write(Bridge::new(cfg.clone(), cfg, HOST_PACKET_CHANNELS, now, seed))
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
    let mut port = ByteStream::new(Uart::new(0, &irq::UART_RINGS[0]));
    irq::enable();
    let seed = seed(&timers);
    let now = timers.now();
    // SAFETY: the only reference to LOOPBACK, made once, here.
    let node = unsafe {
        (*addr_of_mut!(LOOPBACK)).write(Loopback::new(
            node_config(NOMINAL_BAUD, N),
            HOST_PACKET_CHANNELS,
            now,
            seed,
        ))
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
