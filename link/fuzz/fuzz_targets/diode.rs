//! The high side of a diode must not be crashable: arbitrary bytes go through
//! the stream decoder (COBS, in-frame FEC repair), the frame parser with and
//! without a key, and a receiver with an in-memory store.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_link::diode::stream::StreamDecoder;
use strand_link::diode::{wire, AuthKey, Limits, MemStore, Receiver};
use strand_link::time::Instant;

fuzz_target!(|data: &[u8]| {
    let key = AuthKey::derive(0, b"fuzz");
    let _ = wire::parse(data, None);
    let _ = wire::parse(data, Some(&key));

    // Small limits so hostile sizes are refused rather than allocated.
    let limits = Limits { max_object: 1 << 20, max_pending: 4 << 20, max_objects: 16 };
    let mut rx = Receiver::new(None, limits);
    let mut store = MemStore::default();
    let mut now = 0u64;
    // The input as datagrams: split at 0xFF bytes.
    for dgram in data.split(|&b| b == 0xFF) {
        now += 1000;
        let _ = rx.handle_frame(Instant::from_micros(now), dgram, &mut store);
    }
    // The input as a byte stream.
    let mut dec = StreamDecoder::default();
    dec.feed(data, |frame| {
        now += 1000;
        let _ = rx.handle_frame(Instant::from_micros(now), frame, &mut store);
    });
    let _ = rx.report();
    for s in rx.sessions() {
        let _ = rx.liveness(s, Instant::from_micros(now));
    }
});
