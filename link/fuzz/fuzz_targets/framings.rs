//! The datagram and KISS framings on arbitrary input, each in front of an
//! endpoint of three connections on a shared medium (addresses 1-3, this
//! node 9): chunks are datagrams to one and a KISS byte stream to the other.
//! Must never panic; frames of strangers must be dropped, not routed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_link::framing::{DatagramFraming, Framing, KissFraming};
use strand_link::wire::OVERHEAD;
use strand_link::{Buf, Config, ConnStorage, Connection, Endpoint, Instant};

fn node() -> Endpoint<'static> {
    let conns: Vec<Connection<'static>> = (1..=3u16)
        .map(|peer| {
            Connection::new(Config::default(), ConnStorage::owned(4, 237 - OVERHEAD, 2), peer, Instant::ZERO, u64::from(peer))
        })
        .collect();
    Endpoint::new(Config::default(), 9, Buf::from(conns), Instant::ZERO)
}

fuzz_target!(|data: &[u8]| {
    let (mut a, mut b) = (node(), node());
    let mut dgram = DatagramFraming::new(237);
    let mut kiss = KissFraming::owned(237);
    let mut out = vec![0u8; kiss.max_unit().max(dgram.max_unit())];
    let mut t = 0u64;
    for chunk in data.chunks(61) {
        t += u64::from(chunk[0]) * 4_000;
        let now = Instant::from_micros(t);
        dgram.input(&mut a, now, &chunk[1..]);
        kiss.input(&mut b, now, &chunk[1..]);
        for (ep, f) in [(&mut a, &mut dgram as &mut dyn Framing), (&mut b, &mut kiss as &mut dyn Framing)] {
            ep.handle_timeout(now);
            while f.output(ep, now, &mut out).is_some() {}
            for i in 0..3 {
                let c = ep.connection_mut(i);
                while c.poll_event().is_some() {}
                while c.recv(|_, p| p.len()).is_some() {}
            }
        }
    }
});
