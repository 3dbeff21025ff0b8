//! Property tests: the decoders never panic, never accept a damaged frame that
//! CRC-32C is guaranteed to catch, and framing round-trips across any split.

use proptest::prelude::*;
use std::time::Duration;
use strand_link::framing::{self, Deframer, FeedResult};
use strand_link::sim::Node;
use strand_link::sim::{LineConfig, Pair};
use strand_link::wire::{
    flags, AckPayload, AckRepr, Frame, FrameType, Header, HelloPayload, HelloRepr, OVERHEAD,
};
use strand_link::{Config, Instant};

fn header() -> impl Strategy<Value = Header> {
    (
        prop_oneof![
            Just(FrameType::Hello),
            Just(FrameType::HelloAck),
            Just(FrameType::Data),
            Just(FrameType::Ack)
        ],
        0u8..16,
        any::<u8>(),
        any::<u32>(),
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
    )
        .prop_map(|(frame_type, fl, channel, session, seq, ack, counter)| Header {
            frame_type,
            flags: fl & (flags::ACK | flags::MORE | flags::FIN | flags::POLL),
            channel,
            session,
            seq,
            ack,
            counter: if matches!(frame_type, FrameType::Data | FrameType::Ack) { counter } else { 0 },
        })
}

/// Runs every decoder of the crate over `bytes`; only a panic can fail this.
fn decode_everything(bytes: &[u8]) {
    if let Ok(f) = Frame::new_checked(bytes) {
        let _ = Header::parse(&f);
    }
    if let Ok(p) = AckPayload::new_checked(bytes) {
        let a = AckRepr::parse(&p);
        let _ = (0..300).filter(|&i| a.sacked(i)).count();
    }
    if let Ok(p) = HelloPayload::new_checked(bytes) {
        let _ = HelloRepr::parse(&p);
    }
    let mut d = Deframer::with_capacity(512);
    let mut input = bytes;
    loop {
        match d.feed(input) {
            FeedResult::Consumed => break,
            FeedResult::Frame { rest, .. } | FeedResult::Error { rest, .. } => input = rest,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_everything(&bytes);
    }

    #[test]
    fn a_link_fed_garbage_never_panics_and_never_delivers(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..8),
        seed in any::<u64>(),
    ) {
        let mut node = Node::new(Config::default(), 8, 512, Instant::ZERO, seed);
        for (i, c) in chunks.iter().enumerate() {
            let now = Instant::from_millis(i as u64 * 100);
            node.input(now, c);
            while node.output(now).is_some() {}
            while node.link_mut().poll_event().is_some() {}
        }
        prop_assert!(node.link_mut().recv(|_, _| ()).is_none(), "garbage must not become data");
    }

    #[test]
    fn emit_parse_round_trip(h in header(), payload in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let mut buf = vec![0u8; OVERHEAD + payload.len()];
        let n = h.emit_frame(&payload, &mut buf);
        let f = Frame::new_checked(&buf[..n]).unwrap();
        prop_assert_eq!(Header::parse(&f).unwrap(), h);
        prop_assert_eq!(f.payload(), &payload[..]);
    }

    #[test]
    fn up_to_three_bit_errors_are_always_caught(
        h in header(),
        payload in proptest::collection::vec(any::<u8>(), 0..4080),
        bits in proptest::collection::btree_set(any::<usize>(), 1..=3),
    ) {
        let mut buf = vec![0u8; OVERHEAD + payload.len()];
        let n = h.emit_frame(&payload, &mut buf);
        for b in &bits {
            let b = b % (n * 8);
            buf[b / 8] ^= 1 << (b % 8);
        }
        // Distinct positions modulo the length may collapse; only real damage counts.
        let mut clean = vec![0u8; n];
        h.emit_frame(&payload, &mut clean);
        prop_assume!(clean != buf);
        prop_assert!(Frame::new_checked(&buf[..n]).is_err());
    }

    #[test]
    fn bursts_up_to_32_bits_are_always_caught(
        h in header(),
        payload in proptest::collection::vec(any::<u8>(), 0..2000),
        start in any::<usize>(),
        pattern in 1u32..,
    ) {
        let mut buf = vec![0u8; OVERHEAD + payload.len()];
        let n = h.emit_frame(&payload, &mut buf);
        let start = start % (n * 8 - 31);
        for k in 0..32 {
            if pattern & (1 << k) != 0 {
                let b = start + k;
                buf[b / 8] ^= 1 << (b % 8);
            }
        }
        prop_assert!(Frame::new_checked(&buf[..n]).is_err());
    }

    #[test]
    fn random_damage_is_caught(
        h in header(),
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        noise in proptest::collection::vec(any::<u8>(), 1..64),
        at in any::<usize>(),
    ) {
        // Overwrite a run of bytes with random ones: accepted only at 2^-32 odds.
        let mut buf = vec![0u8; OVERHEAD + payload.len()];
        let n = h.emit_frame(&payload, &mut buf);
        let clean = buf.clone();
        let at = at % n;
        for (i, b) in noise.iter().enumerate() {
            if at + i < n {
                buf[at + i] = *b;
            }
        }
        prop_assume!(clean != buf);
        prop_assert!(Frame::new_checked(&buf[..n]).is_err());
    }

    #[test]
    fn framing_round_trips_across_any_split(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..10),
        cut in proptest::collection::vec(1usize..64, 1..20),
    ) {
        let mut wire = Vec::new();
        for f in &frames {
            let mut enc = vec![0u8; framing::wire_len(f.len())];
            let n = framing::encode(f, &mut enc).unwrap();
            prop_assert!(!enc[..n - 1].contains(&0));
            wire.extend_from_slice(&enc[..n]);
        }
        let mut d = Deframer::with_capacity(512);
        let mut got = Vec::new();
        let mut pos = 0;
        let mut k = 0;
        while pos < wire.len() {
            let end = (pos + cut[k % cut.len()]).min(wire.len());
            k += 1;
            let mut input = &wire[pos..end];
            loop {
                match d.feed(input) {
                    FeedResult::Consumed => break,
                    FeedResult::Frame { frame, rest } => { got.push(frame.to_vec()); input = rest; }
                    FeedResult::Error { .. } => prop_assert!(false, "clean input misframed"),
                }
            }
            pos = end;
        }
        prop_assert_eq!(got, frames);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Random impairment mixes: whatever the line does, the stream arrives exact.
    #[test]
    fn any_impaired_line_delivers_exactly(
        seed in any::<u64>(),
        ber in prop_oneof![Just(0.0), 1e-7..1e-4],
        drop in prop_oneof![Just(0.0), 1e-6..1e-4],
        dup in prop_oneof![Just(0.0), 1e-6..1e-4],
        insert in prop_oneof![Just(0.0), 1e-6..1e-4],
        latency_ms in 0u64..30,
    ) {
        let line = LineConfig {
            drop_rate: drop,
            dup_rate: dup,
            insert_rate: insert,
            ..LineConfig::clean(1_000_000, Duration::from_millis(latency_ms)).with_ber(ber)
        };
        let mut pair = Pair::<32, 1024>::symmetric(Config::default(), line, seed);
        let data: Vec<u8> = (0..60_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
        pair.a.write_stream(1, data.clone(), true);
        pair.b.stream_channels.insert(1);
        let done = pair.run_until(Duration::from_secs(120), |p| p.b.fin(1));
        prop_assert!(done, "seed {}: not finished", seed);
        prop_assert!(pair.b.stream(1) == &data[..], "seed {}: stream differs", seed);
    }
}
