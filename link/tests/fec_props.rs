//! Property tests of the in-frame FEC (interleaved thin, light and heavy;
//! frame-wide wide2, wide4 and wide8): any error pattern within the parity of
//! every codeword is repaired exactly; heavier damage is reported, and a
//! frame is never handed on with wrong bytes.

use proptest::prelude::*;
use strand_link::fec::{self, codewords, protect, repair, Repair, Strength};
use strand_link::wire::frame::crc32c;

fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32c(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

fn crc_ok(b: &[u8]) -> bool {
    b.len() >= 4 && crc32c(&b[..b.len() - 4]).to_le_bytes() == b[b.len() - 4..]
}

fn strength() -> impl Strategy<Value = Strength> {
    prop_oneof![
        Just(Strength::Thin),
        Just(Strength::Light),
        Just(Strength::Heavy),
        Just(Strength::Wide2),
        Just(Strength::Wide4),
        Just(Strength::Wide8),
    ]
}

/// The symbols of codeword `c` of a protected frame with `l` raw bytes, each
/// as the buffer offsets of its bytes: single bytes in the interleaved codes,
/// byte pairs in the frame-wide ones (the odd last data symbol has one byte;
/// its other half is an implied zero and is never sent).
fn symbols(l: usize, s: Strength, c: usize) -> Vec<Vec<usize>> {
    if s.is_wide() {
        let data = (0..l.div_ceil(2)).map(|i| (2 * i..(2 * i + 2).min(l)).map(|o| 1 + o).collect());
        let parity = (0..s.parity()).map(|j| vec![1 + l + 2 * j, 2 + l + 2 * j]);
        data.chain(parity).collect()
    } else {
        let cw = codewords(l, s);
        (c..l)
            .step_by(cw)
            .map(|i| vec![1 + i])
            .chain((0..s.parity()).map(|j| vec![1 + l + j * cw + c]))
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn errors_within_the_parity_of_each_codeword_are_repaired(
        body in proptest::collection::vec(any::<u8>(), 12..4000),
        s in strength(),
        seed in any::<u64>(),
    ) {
        let raw = with_crc(body);
        let mut buf = vec![0u8; fec::protected_len(raw.len(), s)];
        let n = protect(&raw, s, &mut buf).unwrap();
        let clean = buf.clone();
        // Up to t damaged symbols in each codeword, anywhere in its data or parity.
        let (cw, t, l) = (codewords(raw.len(), s), s.corrects(), raw.len());
        let mut x = seed | 1;
        let mut rnd = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
        for c in 0..cw {
            let members = symbols(l, s, c);
            for _ in 0..(rnd() as usize % (t + 1)) {
                for &at in &members[rnd() as usize % members.len()] {
                    buf[at] ^= rnd() as u8;
                }
            }
        }
        let damaged = buf.iter().zip(&clean).filter(|(a, b)| a != b).count();
        match repair(&mut buf[..n], crc_ok) {
            Repair::Repaired { start, len, corrected } => {
                prop_assert_eq!(&buf[start..start + len], &raw[..]);
                prop_assert!(corrected <= damaged);
            }
            other => prop_assert!(false, "{:?} with {} damaged bytes", other, damaged),
        }
    }

    #[test]
    fn one_byte_past_the_parity_of_a_codeword_fails(
        body in proptest::collection::vec(any::<u8>(), 12..4000),
        s in strength(),
        pick in any::<usize>(),
        seed in any::<u64>(),
    ) {
        let raw = with_crc(body);
        let mut buf = vec![0u8; fec::protected_len(raw.len(), s)];
        let n = protect(&raw, s, &mut buf).unwrap();
        let (cw, t, l) = (codewords(raw.len(), s), s.corrects(), raw.len());
        // t + 1 distinct damaged symbols in one codeword: no decoder of this code
        // can restore it, so the frame must be dropped (a miscorrection fails the CRC).
        let c = pick % cw;
        let mut members = symbols(l, s, c);
        let mut x = seed | 1;
        let mut rnd = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
        prop_assume!(members.len() > t);
        for _ in 0..=t {
            let sym = members.swap_remove(rnd() as usize % members.len());
            buf[sym[0]] ^= (rnd() as u8) | 1;
        }
        prop_assert_eq!(repair(&mut buf[..n], crc_ok), Repair::Failed);
    }

    #[test]
    fn heavy_damage_is_reported_never_passed_on_wrong(
        body in proptest::collection::vec(any::<u8>(), 12..1500),
        s in strength(),
        noise in proptest::collection::vec((any::<usize>(), 1u8..), 20..200),
    ) {
        let raw = with_crc(body);
        let mut buf = vec![0u8; fec::protected_len(raw.len(), s)];
        let n = protect(&raw, s, &mut buf).unwrap();
        for (at, v) in noise {
            let at = 1 + at % (n - 1);
            buf[at] ^= v;
        }
        match repair(&mut buf[..n], crc_ok) {
            Repair::Repaired { start, len, .. } => prop_assert_eq!(&buf[start..start + len], &raw[..]),
            Repair::Failed => {}
            Repair::Plain => prop_assert!(false, "the marker was not touched"),
        }
    }

    #[test]
    fn repair_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let mut b = bytes;
        let _ = repair(&mut b, crc_ok);
    }
}
