//! Semihosting under QEMU: exit codes for on-target tests, host time for
//! entropy. Only for the QEMU boards: on real hardware without a debugger a
//! semihosting call faults.

/// Ends the QEMU run with `code` as its exit status.
pub fn exit(code: i32) -> ! {
    cortex_m_semihosting::debug::exit(if code == 0 {
        cortex_m_semihosting::debug::EXIT_SUCCESS
    } else {
        cortex_m_semihosting::debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Seconds since the epoch on the machine running QEMU (SYS_TIME).
pub fn host_time() -> u32 {
    // SAFETY: SYS_TIME takes no argument; QEMU answers it when started with
    // `-semihosting-config enable=on`.
    unsafe { cortex_m_semihosting::syscall!(TIME) as u32 }
}
