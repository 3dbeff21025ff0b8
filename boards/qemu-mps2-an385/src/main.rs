//! The strand bridge node on QEMU's mps2-an385 (Cortex-M3): UART0 is port A,
//! UART1 port B. See docs/user-guide.md for how to run it.
#![no_std]
#![no_main]

strand_board_mps2::handlers!();

#[cortex_m_rt::entry]
fn main() -> ! {
    strand_board_mps2::node::run_bridge()
}
