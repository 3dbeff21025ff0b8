//! A port's link and the static memory it lives in.
//!
//! The core keeps no memory of its own (`strand_link::storage`): a
//! connection's window each way, its stream ledger, the framing's buffers
//! and the drive step's are slices the caller lends it. On a board they are
//! `static` arrays, so the linker map shows every byte the node uses and
//! nothing large is built on the stack. The types here are those arrays, all
//! uninitialised at boot (they cost no flash and sit in `.bss`) and filled in
//! place when the link is made:
//!
//! ```ignore
//! static mut MEM_A: StreamPortMemory<'static, 8, 236, 32, { stream_unit(236) }> = StreamPortMemory::new();
//! // SAFETY: the only reference to MEM_A, made once.
//! let a = unsafe { &mut *addr_of_mut!(MEM_A) }.link(config, now, seed);
//! ```

use core::mem::MaybeUninit;
use strand_link::drive::Driver;
use strand_link::framing::{DatagramFraming, Framing, StreamFraming};
use strand_link::wire::OVERHEAD;
use strand_link::{Buf, Config, ConnStorage, Connection, Endpoint, Instant, RxSlot, StreamEntry, TxSlot};

/// The strand link on one port: an endpoint holding one connection (a
/// point-to-point line) and the core's drive step with the port's framing.
/// Roles call [`Driver::step`] (or its halves) on it; nothing else drives it.
pub struct PortLink<'a, F: Framing> {
    /// The endpoint: connection 0 is the peer on this port.
    pub ep: Endpoint<'a>,
    /// The drive step's state: the framing and its buffers.
    pub driver: Driver<'a, F>,
}

impl<'a, F: Framing> PortLink<'a, F> {
    /// The connection to the peer on this port.
    pub fn conn(&self) -> &Connection<'a> {
        self.ep.connection(0)
    }

    /// The same, to send, receive and poll events on.
    pub fn conn_mut(&mut self) -> &mut Connection<'a> {
        self.ep.connection_mut(0)
    }
}

/// The largest unit the stream framing writes for payloads of `payload`
/// bytes: the size of a [`StreamPortMemory`]'s framing buffers.
pub const fn stream_unit(payload: usize) -> usize {
    StreamFraming::unit_capacity(payload + OVERHEAD)
}

/// The memory of one connection: a window of `W` frames each way (a power
/// of two) of payloads of up to `P` bytes, a stream ledger for `S` stream
/// channels (spec 8.3: a session can carry streams on at most `S` distinct
/// channels), and the connection itself.
pub struct ConnMemory<'a, const W: usize, const P: usize, const S: usize> {
    tx_slots: MaybeUninit<[TxSlot; W]>,
    tx_data: MaybeUninit<[[u8; P]; W]>,
    rx_slots: MaybeUninit<[RxSlot; W]>,
    rx_data: MaybeUninit<[[u8; P]; W]>,
    streams: MaybeUninit<[StreamEntry; S]>,
    conn: MaybeUninit<[Connection<'a>; 1]>,
}

impl<const W: usize, const P: usize, const S: usize> Default for ConnMemory<'_, W, P, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, const W: usize, const P: usize, const S: usize> ConnMemory<'a, W, P, S> {
    /// Uninitialised memory (for a `static`).
    pub const fn new() -> Self {
        ConnMemory {
            tx_slots: MaybeUninit::uninit(),
            tx_data: MaybeUninit::uninit(),
            rx_slots: MaybeUninit::uninit(),
            rx_data: MaybeUninit::uninit(),
            streams: MaybeUninit::uninit(),
            conn: MaybeUninit::uninit(),
        }
    }

    /// A point-to-point endpoint of one connection in this memory, starting
    /// at `now`. `seed` must differ between boots (it makes the session ids
    /// by which a peer tells that the node restarted).
    pub fn endpoint(&'a mut self, config: Config, now: Instant, seed: u64) -> Endpoint<'a> {
        let ConnMemory { tx_slots, tx_data, rx_slots, rx_data, streams, conn } = self;
        let storage = ConnStorage {
            tx_slots: Buf::Borrowed(tx_slots.write([TxSlot::EMPTY; W])),
            tx_data: Buf::Borrowed(tx_data.write([[0; P]; W]).as_flattened_mut()),
            rx_slots: Buf::Borrowed(rx_slots.write([RxSlot::EMPTY; W])),
            rx_data: Buf::Borrowed(rx_data.write([[0; P]; W]).as_flattened_mut()),
            streams: Buf::Borrowed(streams.write([StreamEntry::EMPTY; S])),
        };
        let c = Connection::new(config.clone(), storage, 0, now, seed);
        Endpoint::new(config, 0, Buf::Borrowed(conn.write([c])), now)
    }
}

/// The memory of a byte-stream port's link (a UART): the connection's
/// ([`ConnMemory`]) and the stream framing's and drive step's buffers of `U`
/// bytes each, `U` at least [`stream_unit`]`(P)`.
pub struct StreamPortMemory<'a, const W: usize, const P: usize, const S: usize, const U: usize> {
    conn: ConnMemory<'a, W, P, S>,
    accumulator: MaybeUninit<[u8; U]>,
    frame: MaybeUninit<[u8; U]>,
    protected: MaybeUninit<[u8; U]>,
    rx: MaybeUninit<[u8; U]>,
    unit: MaybeUninit<[u8; U]>,
}

impl<const W: usize, const P: usize, const S: usize, const U: usize> Default
    for StreamPortMemory<'_, W, P, S, U>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, const W: usize, const P: usize, const S: usize, const U: usize> StreamPortMemory<'a, W, P, S, U> {
    const FITS: () = assert!(U >= stream_unit(P), "StreamPortMemory: U must be at least stream_unit(P)");

    /// Largest raw frame (header, payload, CRC) of this link.
    pub const MAX_RAW: usize = P + OVERHEAD;

    /// Uninitialised memory (for a `static`).
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        StreamPortMemory {
            conn: ConnMemory::new(),
            accumulator: MaybeUninit::uninit(),
            frame: MaybeUninit::uninit(),
            protected: MaybeUninit::uninit(),
            rx: MaybeUninit::uninit(),
            unit: MaybeUninit::uninit(),
        }
    }

    /// The link on a byte-stream port, in this memory (see
    /// [`ConnMemory::endpoint`] for `seed`).
    pub fn link(&'a mut self, config: Config, now: Instant, seed: u64) -> PortLink<'a, StreamFraming<'a>> {
        let StreamPortMemory { conn, accumulator, frame, protected, rx, unit } = self;
        let raw = Self::MAX_RAW;
        let framing = StreamFraming::new(
            Buf::Borrowed(&mut accumulator.write([0; U])[..StreamFraming::encoded_capacity(raw)]),
            Buf::Borrowed(&mut frame.write([0; U])[..raw]),
            Buf::Borrowed(&mut protected.write([0; U])[..raw]),
            config.idle_resync,
        );
        let driver = Driver::new(
            framing,
            Buf::Borrowed(rx.write([0; U])),
            Buf::Borrowed(&mut unit.write([0; U])[..StreamFraming::unit_capacity(raw)]),
        );
        PortLink { ep: conn.endpoint(config, now, seed), driver }
    }
}

/// The memory of a datagram port's link (a radio): the connection's
/// ([`ConnMemory`]) and the drive step's two datagram buffers of `M` bytes,
/// the largest datagram, at least `P` plus the frame overhead.
pub struct DatagramPortMemory<'a, const W: usize, const P: usize, const S: usize, const M: usize> {
    conn: ConnMemory<'a, W, P, S>,
    rx: MaybeUninit<[u8; M]>,
    unit: MaybeUninit<[u8; M]>,
}

impl<const W: usize, const P: usize, const S: usize, const M: usize> Default
    for DatagramPortMemory<'_, W, P, S, M>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, const W: usize, const P: usize, const S: usize, const M: usize> DatagramPortMemory<'a, W, P, S, M> {
    const FITS: () = assert!(M >= P + OVERHEAD, "DatagramPortMemory: M must hold P plus the frame overhead");

    /// Largest raw frame (header, payload, CRC) of this link: one datagram.
    pub const MAX_RAW: usize = P + OVERHEAD;

    /// Uninitialised memory (for a `static`).
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        DatagramPortMemory { conn: ConnMemory::new(), rx: MaybeUninit::uninit(), unit: MaybeUninit::uninit() }
    }

    /// The link on a datagram port, in this memory (see
    /// [`ConnMemory::endpoint`] for `seed`).
    pub fn link(&'a mut self, config: Config, now: Instant, seed: u64) -> PortLink<'a, DatagramFraming> {
        let DatagramPortMemory { conn, rx, unit } = self;
        let driver = Driver::new(
            DatagramFraming::new(Self::MAX_RAW),
            Buf::Borrowed(rx.write([0; M])),
            Buf::Borrowed(unit.write([0; M])),
        );
        PortLink { ep: conn.endpoint(config, now, seed), driver }
    }
}
