//! The worked examples of docs/protocol.md section 11, byte for byte: if the
//! code and the spec drift apart, this fails.

use strand_link::framing;
use strand_link::wire::{flags, FrameType, Header, HelloRepr};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

fn wire(h: Header, payload: &[u8]) -> Vec<u8> {
    let mut raw = vec![0u8; h.len() + payload.len() + strand_link::wire::CRC_LEN];
    let n = h.emit_frame(payload, &mut raw);
    let mut out = vec![0u8; framing::wire_len(n)];
    let w = framing::encode(&raw[..n], &mut out).unwrap();
    out.truncate(w);
    out
}

#[test]
fn section_11_1_data_frame() {
    let h = Header {
        frame_type: FrameType::Data,
        flags: flags::ACK,
        channel: 1,
        session: 0x1234_5678,
        seq: 7,
        ack: 3,
        counter: 9,
    };
    assert_eq!(
        wire(h, b"hi"),
        hex("09 01 03 01 01 12 34 56 78 02 07 02 03 01 01 08 09 68 69 ad 16 b6 8a 00")
    );
}

#[test]
fn section_11_2_hello_frame() {
    let h = Header {
        frame_type: FrameType::Hello,
        flags: 0,
        channel: 0,
        session: 0x1234_5678,
        seq: 0,
        ack: 0,
        counter: 0,
    };
    let mut p = [0u8; 10];
    HelloRepr { min_version: 1, max_version: 1, max_frame: 4079, window: 64, echo: 0, src: 0, dst: 0 }
        .emit(&mut p);
    assert_eq!(
        wire(h, &p),
        hex("03 01 01 01 05 12 34 56 78 01 01 01 05 01 01 0f ef 02 40 01 01 01 05 10 f6 ee f0 00")
    );
}

#[test]
fn section_11_3_hello_ack_frame() {
    let h = Header {
        frame_type: FrameType::HelloAck,
        flags: 0,
        channel: 0,
        session: 0x9abc_def0,
        seq: 0,
        ack: 0,
        counter: 0,
    };
    let mut p = [0u8; 10];
    HelloRepr {
        min_version: 1,
        max_version: 1,
        max_frame: 4079,
        window: 64,
        echo: 0x1234_5678,
        src: 0,
        dst: 0,
    }
    .emit(&mut p);
    assert_eq!(
        wire(h, &p),
        hex("03 01 02 01 05 9a bc de f0 01 01 01 05 01 01 0f ef 0a 40 12 34 56 78 e7 54 b7 97 00")
    );
}

#[test]
fn section_11_4_ack_frame_with_sack() {
    use strand_link::wire::{AckRepr, MAX_SACK_BYTES};
    let h = Header {
        frame_type: FrameType::Ack,
        flags: flags::ACK,
        channel: 0,
        session: 0x9abc_def0,
        seq: 0,
        ack: 5,
        counter: 2,
    };
    let mut ack = AckRepr::new(69);
    ack.sack[0] = 0x0a;
    ack.sack_len = 1;
    let mut p = [0u8; 3 + MAX_SACK_BYTES];
    let n = ack.emit(&mut p);
    assert_eq!(
        wire(h, &p[..n]),
        hex("04 01 04 01 05 9a bc de f0 01 01 02 05 01 01 02 02 08 45 01 0a a1 d5 91 96 00")
    );
}
