//! A whole link endpoint driven by arbitrary input: the bytes are split into
//! chunks fed at advancing times, with timers and transmissions serviced in
//! between. Must never panic, and garbage must never become delivered data
//! unless it forms CRC-valid frames of a real session.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_link::{Config, Instant, Link};

fuzz_target!(|data: &[u8]| {
    let mut link = Box::new(Link::<8, 256>::new(Config::default(), Instant::ZERO, 1));
    let mut out = [0u8; 258];
    let _ = link.send(1, b"probe");
    let mut t = 0u64;
    for chunk in data.chunks(97) {
        // The first byte of each chunk advances the clock by up to ~1 s.
        t += u64::from(chunk[0]) * 4_000;
        let now = Instant::from_micros(t);
        link.handle_input(now, &chunk[1..]);
        link.handle_timeout(now);
        while link.poll_transmit(now, &mut out).is_some() {}
        while link.poll_event().is_some() {}
        while link.recv(|_, p| p.len()).is_some() {}
        let _ = link.poll_timeout();
    }
});
