//! The strand bridge node on embassy, shared by the radio boards: a serial
//! port (a UART, or USB-CDC) on one side and a LoRa radio through lora-phy on
//! the other, with the bridge role of `strand-firmware` in between.
//!
//! The bridge is synchronous and never blocks; embassy tasks own the
//! peripherals and meet it through queues ([`queues`]): a reader and a writer
//! task per serial port ([`serial`]), one task for the radio ([`radio`]),
//! and the bridge task ([`node`]) that sleeps until a queue signals or the
//! next deadline is due. A board crate only sets up its pins and spawns them.
#![no_std]
#![warn(missing_docs)]

pub mod node;
pub mod queues;
pub mod radio;
pub mod serial;

/// strand's time from embassy's: both count from boot.
pub fn now() -> strand_link::Instant {
    strand_link::Instant::from_micros(embassy_time::Instant::now().as_micros())
}
