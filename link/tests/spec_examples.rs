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
        // The tenth frame: count 9, masked with the session id (3.1).
        counter: 9 ^ 0x1234_5678,
    };
    assert_eq!(
        wire(h, b"hi"),
        hex("09 01 03 01 01 12 34 56 78 02 07 0c 03 12 34 56 71 68 69 4e 28 ac 0d 00")
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
    HelloRepr {
        min_version: 3,
        max_version: 3,
        max_frame: 4079,
        window: 64,
        echo: 0,
        src: 0,
        dst: 0,
        flags: 0,
    }
    .emit(&mut p);
    assert_eq!(
        wire(h, &p),
        hex("03 01 01 01 05 12 34 56 78 01 01 01 05 03 03 0f ef 02 40 01 01 01 05 ca ad 3f 8e 00")
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
        min_version: 3,
        max_version: 3,
        max_frame: 4079,
        window: 64,
        echo: 0x1234_5678,
        src: 0,
        dst: 0,
        flags: 0,
    }
    .emit(&mut p);
    assert_eq!(
        wire(h, &p),
        hex("03 01 02 01 05 9a bc de f0 01 01 01 05 03 03 0f ef 0a 40 12 34 56 78 3d 0f 66 e9 00")
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
        counter: 2 ^ 0x9abc_def0,
    };
    let mut ack = AckRepr::new(69);
    ack.sack[0] = 0x0a;
    ack.sack_len = 1;
    let mut p = [0u8; 3 + MAX_SACK_BYTES];
    let n = ack.emit(&mut p);
    assert_eq!(
        wire(h, &p[..n]),
        hex("04 01 04 01 05 9a bc de f0 01 01 06 05 9a bc de f2 06 45 01 0a 56 c3 02 5f 00")
    );
}
