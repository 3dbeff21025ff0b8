//! Every decoder on arbitrary bytes: COBS deframing, frame, header, HELLO and
//! ACK payloads. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_link::framing::{Deframer, FeedResult};
use strand_link::wire::{AckPayload, AckRepr, Frame, Header, HelloPayload, HelloRepr};

fn parse(raw: &[u8]) {
    if let Ok(f) = Frame::new_checked(raw) {
        let _ = Header::parse(&f);
        let p = f.payload();
        if let Ok(a) = AckPayload::new_checked(p) {
            let a = AckRepr::parse(&a);
            let _ = (0..300).filter(|&i| a.sacked(i)).count();
        }
        if let Ok(h) = HelloPayload::new_checked(p) {
            let _ = HelloRepr::parse(&h);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    parse(data);
    // The FEC decoder sees damaged frames by design: it must survive any bytes.
    let mut copy = data.to_vec();
    if let strand_link::fec::Repair::Repaired { start, len, .. } =
        strand_link::fec::repair(&mut copy, |b| Frame::new_checked(b).is_ok())
    {
        parse(&copy[start..start + len]);
    }
    let mut d = Deframer::with_capacity(1024);
    let mut input = data;
    loop {
        match d.feed(input) {
            FeedResult::Consumed => break,
            FeedResult::Frame { frame, rest } => {
                parse(frame);
                input = rest;
            }
            FeedResult::Error { rest, .. } => input = rest,
        }
    }
});
