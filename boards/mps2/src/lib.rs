//! Board support for QEMU's MPS2 machines (AN385: Cortex-M3, AN386:
//! Cortex-M4F; same memory map and peripherals), and the bridge node that
//! runs on them.
//!
//! No peripheral access crate: the few CMSDK registers used are named in
//! [`uart`] and [`timer`]. Device interrupts reach cortex-m-rt's
//! `DefaultHandler`, which [`irq::dispatch`] routes by number.
#![no_std]
#![warn(missing_docs)]

pub mod irq;
pub mod node;
pub mod selftest;
pub mod semihosting;
pub mod timer;
pub mod uart;

/// Peripheral clock of the MPS2 machines (Hz).
pub const SYSCLK_HZ: u32 = 25_000_000;
