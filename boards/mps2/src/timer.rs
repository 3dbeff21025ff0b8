//! The tickless clock: CMSDK TIMER0 runs free as a 32-bit down-counter at
//! 25 MHz (read when needed, never interrupting), and TIMER1 is a one-shot
//! alarm for the next deadline. No periodic tick: an idle node sleeps until
//! a byte arrives or a deadline is due (at most `MAX_SLEEP_US`).

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};
use strand_firmware::clock::{self, Clock, Extender};
use strand_link::Instant;

const TIMER0: usize = 0x4000_0000;
const TIMER1: usize = 0x4000_1000;
/// TIMER1's interrupt number.
pub const TIMER1_IRQ: u16 = 9;

mod reg {
    pub const CTRL: usize = 0x00;
    pub const VALUE: usize = 0x04;
    pub const RELOAD: usize = 0x08;
    pub const INTCLEAR: usize = 0x0C;
}
mod ctrl {
    pub const ENABLE: u32 = 1 << 0;
    pub const IRQ_EN: u32 = 1 << 3;
}

fn read(base: usize, off: usize) -> u32 {
    // SAFETY: TIMER0/TIMER1 registers of the MPS2 memory map.
    unsafe { read_volatile((base + off) as *const u32) }
}

fn write(base: usize, off: usize, v: u32) {
    // SAFETY: as `read`.
    unsafe { write_volatile((base + off) as *mut u32, v) }
}

/// Set by the alarm's interrupt.
pub static ALARM_FIRED: AtomicBool = AtomicBool::new(false);

/// The alarm interrupt: one shot, so stop the timer.
pub fn on_alarm() {
    write(TIMER1, reg::INTCLEAR, 1);
    write(TIMER1, reg::CTRL, 0);
    ALARM_FIRED.store(true, Ordering::Release);
}

/// TIMER0 as the node's clock, TIMER1 as its alarm.
pub struct Timers {
    ext: Extender,
}

impl Timers {
    /// Starts TIMER0 free-running; TIMER1 stays off until an alarm is set.
    pub fn new() -> Timers {
        write(TIMER0, reg::CTRL, 0);
        write(TIMER0, reg::RELOAD, u32::MAX);
        write(TIMER0, reg::VALUE, u32::MAX);
        write(TIMER0, reg::CTRL, ctrl::ENABLE);
        write(TIMER1, reg::CTRL, 0);
        write(TIMER1, reg::INTCLEAR, 1);
        Timers { ext: Extender::default() }
    }

    /// Raw ticks counting up (TIMER0 counts down).
    pub fn ticks(&self) -> u32 {
        u32::MAX - read(TIMER0, reg::VALUE)
    }
}

impl Default for Timers {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for Timers {
    fn now(&mut self) -> Instant {
        let t = self.ext.extend(self.ticks());
        Instant::from_micros(clock::ticks_to_micros(t, crate::SYSCLK_HZ))
    }

    fn set_alarm(&mut self, at: Option<Instant>) {
        let now = self.now();
        let us = clock::sleep_micros(now, at);
        // At least one tick; at most what the 32-bit counter holds (171 s,
        // more than MAX_SLEEP_US).
        let ticks = clock::micros_to_ticks(us, crate::SYSCLK_HZ).clamp(1, u64::from(u32::MAX)) as u32;
        write(TIMER1, reg::CTRL, 0);
        write(TIMER1, reg::INTCLEAR, 1);
        write(TIMER1, reg::RELOAD, ticks);
        write(TIMER1, reg::VALUE, ticks);
        write(TIMER1, reg::CTRL, ctrl::ENABLE | ctrl::IRQ_EN);
    }
}
