//! On-target tests of the strand-link core: run under QEMU, they report
//! through semihosting and end the run with exit status 0 (all passed) or 1.
//! They catch what host tests cannot: code that panics, overflows its stack
//! or misbehaves on a 32-bit Cortex-M (usize is 32 bits here).

use crate::node::{NodeBridge, PortMemory, MAX_RAW, P, U, W};
use core::mem::size_of;
use core::ptr::addr_of_mut;
use cortex_m_semihosting::hprintln;
use strand_link::drive::{Capabilities, Transport};
use strand_link::fec::{self, Repair, Strength};
use strand_link::framing::{self, Deframer, FeedResult};
use strand_link::wire::frame::crc32c;
use strand_link::{Config, Connection, Endpoint, Instant};

/// A named on-target test.
type Test = (&'static str, fn() -> bool);

/// A seeded xorshift: the line's damage and the test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn crc_check_value() -> bool {
    crc32c(b"123456789") == 0xE306_9283
}

fn framing_round_trip() -> bool {
    let raw = [0u8, 1, 0, 0, 2, 255, 0, 7];
    let mut wire = [0u8; 16];
    let Some(n) = framing::encode(&raw, &mut wire) else { return false };
    if wire[..n - 1].contains(&0) || wire[n - 1] != 0 {
        return false;
    }
    let mut acc = [0u8; 64];
    let mut d = Deframer::new(&mut acc[..]);
    // Junk first: the delimiter resynchronises.
    matches!(d.feed(&[9, 9, 0]), FeedResult::Error { .. } | FeedResult::Consumed);
    match d.feed(&wire[..n]) {
        FeedResult::Frame { frame, .. } => frame == &raw[..],
        _ => false,
    }
}

fn fec_repairs_damage() -> bool {
    let mut raw = [0u8; 200];
    let mut rng = Rng(7);
    for b in raw.iter_mut() {
        *b = rng.next() as u8;
    }
    let mut out = [0u8; 256];
    let Some(n) = fec::protect(&raw, Strength::Heavy, &mut out) else { return false };
    for i in [3, 50, 120, 199] {
        out[i] ^= 0x5A;
    }
    let original = raw;
    match fec::repair(&mut out[..n], |f| f == &original[..]) {
        Repair::Repaired { start, len, corrected } => corrected == 4 && out[start..start + len] == original,
        _ => false,
    }
}

/// One direction of an in-memory serial line: what one side sent and the
/// other has not read yet, damaged on the way.
struct Wire {
    buf: [u8; 1024],
    len: usize,
}

/// One side's view of the line, as a transport for the drive step.
struct Line<'w> {
    rx: &'w mut Wire,
    tx: &'w mut Wire,
    noise: &'w mut Rng,
}

impl Transport for Line<'_> {
    fn capabilities(&self) -> Capabilities {
        Capabilities::stream(MAX_RAW, 0)
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = self.rx.len.min(buf.len());
        buf[..n].copy_from_slice(&self.rx.buf[..n]);
        self.rx.buf.copy_within(n..self.rx.len, 0);
        self.rx.len -= n;
        n
    }
    fn ready(&self) -> bool {
        self.tx.len + U <= self.tx.buf.len()
    }
    fn send(&mut self, unit: &[u8]) {
        let at = self.tx.len;
        self.tx.buf[at..at + unit.len()].copy_from_slice(unit);
        for byte in &mut self.tx.buf[at..at + unit.len()] {
            // About one damaged byte in 5,000.
            if self.noise.next() % 5000 == 0 {
                *byte ^= 1 << (self.noise.next() % 8);
            }
        }
        self.tx.len += unit.len();
    }
}

/// Two nodes as the bridge builds its ports (static memory, stream framing,
/// the core's drive step) over an in-memory line with byte errors, in
/// simulated time: a stream each way, byte-exact, both ends of stream
/// confirmed written.
fn links_transfer_over_a_noisy_line() -> bool {
    static mut MEM: [PortMemory; 2] = [PortMemory::new(), PortMemory::new()];
    static mut WIRES: [Wire; 2] = [Wire { buf: [0; 1024], len: 0 }, Wire { buf: [0; 1024], len: 0 }];
    const LEN: usize = 24_000;
    // SAFETY: the only references to MEM and WIRES.
    let ([ma, mb], [ab, ba]) = unsafe { (&mut *addr_of_mut!(MEM), &mut *addr_of_mut!(WIRES)) };
    let mut nodes =
        [ma.link(Config::default(), Instant::ZERO, 11), mb.link(Config::default(), Instant::ZERO, 12)];
    let data = |seed: u64, i: usize| (seed.wrapping_mul(i as u64 + 1) >> 3) as u8;
    let (mut sent, mut got, mut fin, mut finished) = ([0usize; 2], [0usize; 2], [false; 2], [false; 2]);
    let mut noise = Rng(99);
    let mut chunk = [0u8; 64];
    for ms in 0..120_000u64 {
        let now = Instant::from_millis(ms);
        for (side, node) in nodes.iter_mut().enumerate() {
            let conn = node.ep.connection_mut(0);
            let seed = side as u64 + 3;
            if sent[side] < LEN {
                let n = (LEN - sent[side]).min(chunk.len());
                for (i, c) in chunk[..n].iter_mut().enumerate() {
                    *c = data(seed, sent[side] + i);
                }
                sent[side] += conn.write_stream(1, &chunk[..n]);
            } else if !finished[side] {
                finished[side] = conn.finish_stream(1);
            }
            let (rx, tx) = if side == 0 { (&mut *ba, &mut *ab) } else { (&mut *ab, &mut *ba) };
            node.driver.step(&mut node.ep, &mut Line { rx, tx, noise: &mut noise }, now);
            let other = 1 - side;
            let mut ok = true;
            let conn = node.ep.connection_mut(0);
            while let Some(n) = conn.recv(|d, p| {
                for (i, &x) in p.iter().enumerate() {
                    ok &= x == data(other as u64 + 3, got[side] + i);
                }
                fin[side] |= d.fin;
                p.len() as u32 + u32::from(d.fin)
            }) {
                got[side] += n as usize;
                conn.stream_written(now, 1, n);
            }
            if !ok {
                hprintln!("  byte mismatch on side {}", side);
                return false;
            }
        }
        let unconfirmed = |ep: &Endpoint<'_>| ep.connection(0).stream_unconfirmed(1);
        if fin == [true, true] && unconfirmed(&nodes[0].ep) == 0 && unconfirmed(&nodes[1].ep) == 0 {
            let s = nodes[0].ep.stats();
            hprintln!(
                "  {} bytes each way in {} simulated ms; A: {} CRC errors, {} FEC-corrected, {} retransmitted",
                LEN,
                ms,
                s.crc_errors,
                s.fec_corrected,
                s.retransmits
            );
            // FIN counts one unit in `got`.
            return got == [LEN + 1, LEN + 1];
        }
    }
    hprintln!("  unfinished: got {:?}, fin {:?}", got, fin);
    false
}

/// Runs every test, prints the results and ends the QEMU run: exit status 0
/// if all passed, 1 otherwise.
pub fn run() -> ! {
    hprintln!(
        "strand-link on target: a port's link ({} frames of {} payload bytes) = {} bytes of memory, Connection = {} bytes, bridge (two endpoints and relays) = {} bytes",
        W,
        P,
        size_of::<PortMemory>(),
        size_of::<Connection<'static>>(),
        size_of::<NodeBridge>()
    );
    let tests: [Test; 4] = [
        ("crc32c check value", crc_check_value),
        ("COBS framing round trip", framing_round_trip),
        ("FEC repairs 4 damaged bytes", fec_repairs_damage),
        ("two nodes over a noisy line (the drive step)", links_transfer_over_a_noisy_line),
    ];
    let mut failed = 0;
    for (name, test) in tests {
        let ok = test();
        hprintln!("{} {}", if ok { "ok  " } else { "FAIL" }, name);
        failed += usize::from(!ok);
    }
    hprintln!("{} passed, {} failed", tests.len() - failed, failed);
    crate::semihosting::exit(if failed == 0 { 0 } else { 1 })
}
