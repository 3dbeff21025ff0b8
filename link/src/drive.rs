//! The one drive step every driver calls — the host's tokio task, the
//! simulator, the firmware's main loop — so benchmarks measure what users run
//! and no driver keeps timers or protocol rules of its own.
//!
//! ```text
//! loop {
//!     let next = driver.step(&mut endpoint, &mut transport, now);
//!     // the application: endpoint.connection_mut(i).recv / send / poll_event
//!     // sleep until `next`, the transport is readable or writable, or the
//!     // application queued data
//! }
//! ```

use crate::endpoint::Endpoint;
use crate::framing::Framing;
use crate::storage::Buf;
use crate::time::Instant;

/// How a transport carries data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A byte stream: a serial line, a pty, TCP, stdio. Needs COBS framing.
    Stream,
    /// Whole datagrams: UDP, a radio packet.
    Datagram,
}

/// What a transport is: the facts the core and the framing need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Largest unit (datagram, or frame on a stream) the transport carries.
    pub mtu: usize,
    /// Stream or datagrams.
    pub kind: Kind,
    /// Sending and receiving exclude each other (a radio): a node that sends
    /// hears nothing meanwhile.
    pub half_duplex: bool,
    /// Bytes per second on the wire, 0 if not known (then the core measures
    /// the path, spec 6.8). A radio's airtime per byte is its inverse.
    pub rate: u32,
}

impl Capabilities {
    /// A byte stream of `rate` bytes/s (0: unknown) carrying frames of up to `mtu` bytes.
    pub const fn stream(mtu: usize, rate: u32) -> Self {
        Capabilities { mtu, kind: Kind::Stream, half_duplex: false, rate }
    }

    /// Datagrams of up to `mtu` bytes at `rate` bytes/s (0: unknown).
    pub const fn datagram(mtu: usize, rate: u32, half_duplex: bool) -> Self {
        Capabilities { mtu, kind: Kind::Datagram, half_duplex, rate }
    }
}

/// A transport as the drive step sees it: non-blocking, polled.
pub trait Transport {
    /// What it is.
    fn capabilities(&self) -> Capabilities;
    /// Moves what arrived since the last call into `buf` — bytes of a stream,
    /// or one datagram — and returns how many bytes; 0 when nothing did.
    fn recv(&mut self, buf: &mut [u8]) -> usize;
    /// Whether it takes a unit now. A unit is built only then, because from
    /// then on the core counts it as on its way (its timers run): a stream
    /// answers yes while its buffer has any room (it may run over by one
    /// unit), a datagram socket while it can send one.
    fn ready(&self) -> bool;
    /// Hands a unit over (only after `ready` said yes).
    fn send(&mut self, unit: &[u8]);
}

/// The drive step's state: the framing and a buffer each way.
pub struct Driver<'a, F: Framing> {
    /// The framing for the transport.
    pub framing: F,
    rx: Buf<'a, u8>,
    tx: Buf<'a, u8>,
}

impl<'a, F: Framing> Driver<'a, F> {
    /// A driver over the caller's buffers: `rx` for what the transport
    /// delivers (its largest datagram, or any size for a stream), `tx` for one
    /// unit ([`Framing::max_unit`] bytes).
    pub fn new(framing: F, rx: Buf<'a, u8>, tx: Buf<'a, u8>) -> Self {
        Driver { framing, rx, tx }
    }

    /// A driver owning its buffers.
    #[cfg(feature = "alloc")]
    pub fn owned(framing: F, rx_len: usize) -> Driver<'static, F> {
        let unit = framing.max_unit();
        Driver::new(framing, Buf::filled(rx_len, 0), Buf::filled(unit, 0))
    }

    /// One step at `now`: takes in everything the transport delivered, runs
    /// the timers, and hands the transport units while it takes them.
    /// Returns when the next step is due at the latest (call it sooner when
    /// the transport has input or room, or the application queued data).
    pub fn step<T: Transport>(&mut self, ep: &mut Endpoint<'_>, t: &mut T, now: Instant) -> Option<Instant> {
        self.step_with(ep, t, now, |_| {})
    }

    /// [`step`](Self::step), calling `refill` before each unit is built, so
    /// an application that keeps only a few fragments queued per channel
    /// (spec 8.1) tops them up between frames (the simulator, a firmware
    /// bridge); a host whose application runs elsewhere passes nothing.
    pub fn step_with<T: Transport>(
        &mut self,
        ep: &mut Endpoint<'_>,
        t: &mut T,
        now: Instant,
        refill: impl FnMut(&mut Endpoint<'_>),
    ) -> Option<Instant> {
        self.receive(ep, t, now);
        self.transmit(ep, t, now, refill);
        ep.poll_timeout()
    }

    /// The first half of a step: takes in everything the transport delivered
    /// and runs the timers (an application may then take its deliveries, so
    /// that the acknowledgements of the second half reopen its window).
    pub fn receive<T: Transport>(&mut self, ep: &mut Endpoint<'_>, t: &mut T, now: Instant) {
        loop {
            let n = t.recv(&mut self.rx);
            if n == 0 {
                break;
            }
            self.framing.input(ep, now, &self.rx[..n]);
        }
        ep.handle_timeout(now);
    }

    /// The second half: hands the transport units while it takes them.
    pub fn transmit<T: Transport>(
        &mut self,
        ep: &mut Endpoint<'_>,
        t: &mut T,
        now: Instant,
        mut refill: impl FnMut(&mut Endpoint<'_>),
    ) {
        self.flush(ep, t, now, &mut refill);
    }

    /// Hands units to the transport while it takes them.
    fn flush<T: Transport>(
        &mut self,
        ep: &mut Endpoint<'_>,
        t: &mut T,
        now: Instant,
        refill: &mut impl FnMut(&mut Endpoint<'_>),
    ) {
        while t.ready() {
            refill(ep);
            let Some(len) = self.framing.output(ep, now, &mut self.tx) else { return };
            t.send(&self.tx[..len]);
        }
    }

    /// Forgets partial input (the line was reopened: the ARQ sends what
    /// matters again).
    pub fn reset(&mut self) {
        self.framing.reset();
    }
}
