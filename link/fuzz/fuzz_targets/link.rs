//! A whole point-to-point endpoint behind the byte-stream framing, driven by
//! arbitrary input: the bytes are split into chunks fed at advancing times,
//! with timers and transmissions serviced in between. Must never panic, and
//! garbage must never become delivered data unless it forms CRC-valid frames
//! of a real session.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_link::framing::{Framing, StreamFraming};
use strand_link::wire::OVERHEAD;
use strand_link::{Buf, Config, ConnStorage, Connection, Endpoint, Instant};

fuzz_target!(|data: &[u8]| {
    let conn = Connection::new(Config::default(), ConnStorage::owned(8, 253 - OVERHEAD, 4), 0, Instant::ZERO, 1);
    let mut ep = Endpoint::new(Config::default(), 0, Buf::from(vec![conn]), Instant::ZERO);
    let mut framing = StreamFraming::owned(253, Config::default().idle_resync);
    let mut out = vec![0u8; framing.max_unit()];
    let _ = ep.connection_mut(0).send(1, b"probe");
    let mut t = 0u64;
    for chunk in data.chunks(97) {
        // The first byte of each chunk advances the clock by up to ~1 s.
        t += u64::from(chunk[0]) * 4_000;
        let now = Instant::from_micros(t);
        framing.input(&mut ep, now, &chunk[1..]);
        ep.handle_timeout(now);
        while framing.output(&mut ep, now, &mut out).is_some() {}
        let c = ep.connection_mut(0);
        while c.poll_event().is_some() {}
        while c.recv(|_, p| p.len()).is_some() {}
        let _ = ep.poll_timeout();
    }
});
