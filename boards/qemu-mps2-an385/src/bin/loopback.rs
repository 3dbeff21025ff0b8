//! The echo service on QEMU's mps2-an385, UART0 (for tests).
#![no_std]
#![no_main]

strand_board_mps2::handlers!();

#[cortex_m_rt::entry]
fn main() -> ! {
    strand_board_mps2::node::run_loopback()
}
