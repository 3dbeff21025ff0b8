//! strand's hardware-in-the-loop tests and benchmarks.
//!
//! Today: the link benchmark (`linkbench`) over the emulated serial line of
//! `strand_link::sim`, and [`mesh`], the LoRa mesh simulator behind `meshsim`.
//! Host-level end-to-end tests over pseudo-terminals, firmware under
//! qemu-system-arm and real devices (named by environment variables, skipped
//! with a message when absent) join as those parts land.

pub mod mesh;
