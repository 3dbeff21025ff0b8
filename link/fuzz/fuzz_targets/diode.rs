//! The high side of a diode must not be crashable: arbitrary bytes go through
//! the stream decoder (COBS, in-frame FEC repair), the frame parser with and
//! without a key, and a receiver with an in-memory store.
//!
//! Random bytes almost never pass the CRC, so every datagram is also fed with
//! a valid CRC appended: the body parsers (SYMBOL, MANIFEST, HEARTBEAT,
//! ANNOUNCE) and the receiver's bookkeeping see hostile fields. The same
//! frames are fed again under other session ids, so a receiver holding one
//! session's partial objects takes them over into another's (spec 13.7).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_link::diode::stream::StreamDecoder;
use strand_link::diode::{wire, AuthKey, Limits, MemStore, Receiver};
use strand_link::time::Instant;
use strand_link::wire::frame::crc32c;

/// `d` with its CRC-32C appended, as a sender would emit it.
fn with_crc(d: &[u8]) -> Vec<u8> {
    let mut v = d.to_vec();
    v.extend_from_slice(&crc32c(d).to_le_bytes());
    v
}

fuzz_target!(|data: &[u8]| {
    let key = AuthKey::derive(0, b"fuzz");
    let _ = wire::parse(data, None);
    let _ = wire::parse(data, Some(&key));
    let _ = wire::parse(&with_crc(data), None);

    // Small limits so hostile sizes are refused rather than allocated.
    let limits = Limits { max_object: 1 << 20, max_pending: 4 << 20, max_objects: 16 };
    let mut rx = Receiver::new(None, limits);
    let mut store = MemStore::default();
    let mut now = 0u64;
    // The input as datagrams: split at 0xFF bytes; each as it is and with a valid CRC.
    for dgram in data.split(|&b| b == 0xFF) {
        now += 1000;
        let _ = rx.handle_frame(Instant::from_micros(now), dgram, &mut store);
        let _ = rx.handle_frame(Instant::from_micros(now), &with_crc(dgram), &mut store);
    }
    // The same frames from another session: the same content under new keys.
    for dgram in data.split(|&b| b == 0xFF).filter(|d| d.len() >= 8) {
        let mut d = dgram.to_vec();
        d[4] ^= 0x5A;
        now += 1000;
        let _ = rx.handle_frame(Instant::from_micros(now), &with_crc(&d), &mut store);
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
        let _ = rx.session_frames(s);
    }
    for r in rx.report() {
        let _ = rx.shortfall(r.key);
    }
});
