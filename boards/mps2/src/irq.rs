//! Device interrupts without a peripheral access crate: cortex-m-rt sends
//! every one to `DefaultHandler`, which passes its number here.

use crate::{timer, uart};
use core::sync::atomic::{AtomicBool, Ordering};

/// UART0 RX, UART0 TX, UART1 RX, UART1 TX: UARTn RX is `2n`, TX `2n + 1`.
pub const UART0_RX: u16 = 0;
/// See [`UART0_RX`].
pub const UART1_TX: u16 = 3;

/// Set by every interrupt that gives the main loop work: the idle wait
/// checks it with interrupts masked, so no wake-up is lost.
pub static WORK: AtomicBool = AtomicBool::new(false);

/// The rings of UART0 and UART1.
pub static UART_RINGS: [uart::Rings; 2] = [uart::Rings::new(), uart::Rings::new()];

/// Routes device interrupt `irqn`.
pub fn dispatch(irqn: i16) {
    match irqn {
        // Woken per frame, not per byte: under QEMU, whose UART interrupts
        // once per byte, a pass of the main loop per byte cost most of the
        // emulator's time.
        0 | 2 => {
            let n = (irqn as usize) / 2;
            if !uart::on_rx(n, &UART_RINGS[n]) {
                return;
            }
        }
        1 | 3 => {
            let n = (irqn as usize) / 2;
            // Only a ring that can take the next frame needs the main loop:
            // byte-by-byte wake-ups would cost cycles.
            if !uart::on_tx(n, &UART_RINGS[n]) {
                return;
            }
        }
        9 => timer::on_alarm(),
        _ => return,
    }
    WORK.store(true, Ordering::Release);
}

/// Enables the interrupts the node uses in the NVIC.
pub fn enable() {
    #[derive(Clone, Copy)]
    struct Irq(u16);
    // SAFETY: the numbers are this machine's; `Irq` only names them.
    unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
        fn number(self) -> u16 {
            self.0
        }
    }
    for n in [UART0_RX, 1, 2, UART1_TX, timer::TIMER1_IRQ] {
        // SAFETY: the handlers only touch their own rings and flags.
        unsafe { cortex_m::peripheral::NVIC::unmask(Irq(n)) };
    }
}

/// Sleeps until an interrupt brings work, unless some is already waiting.
/// Interrupts that bring none (a byte in the middle of a frame, a byte sent
/// while the TX ring is still long) end the sleep only to start it again:
/// the main loop runs once per frame, not once per byte.
pub fn wait_for_work() {
    loop {
        let work = cortex_m::interrupt::free(|_| {
            if WORK.swap(false, Ordering::AcqRel) {
                return true;
            }
            // WFI wakes on a pending interrupt even while PRIMASK masks it;
            // the handler runs once the critical section ends.
            cortex_m::asm::wfi();
            false
        });
        if work {
            return;
        }
    }
}
