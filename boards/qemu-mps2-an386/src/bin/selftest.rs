//! On-target tests of the strand-link core on mps2-an386 (Cortex-M4F): exit
//! status 0 if all pass. `cargo run --release --bin selftest` in this folder,
//! or the `on_target_core_tests` test of hil-tests.
#![no_std]
#![no_main]

strand_board_mps2::handlers!();

#[cortex_m_rt::entry]
fn main() -> ! {
    strand_board_mps2::selftest::run()
}
