//! A single-producer, single-consumer byte ring: how bytes cross between an
//! interrupt handler and the main loop without a lock.
//!
//! The UART's RX interrupt pushes each byte as it arrives and the main loop
//! drains them in batches; for TX the main loop pushes whole frames and the
//! TX interrupt feeds the UART one byte at a time. Only atomic loads and
//! stores are used (no compare-and-swap), so it works on Cortex-M0 as well.
//!
//! Indices run freely and wrap; `N` must be a power of two so `index % N`
//! stays consistent across the wrap.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// A byte ring of `N` bytes (a power of two) shared by one producer context
/// and one consumer context.
pub struct ByteRing<const N: usize> {
    buf: UnsafeCell<[u8; N]>,
    /// Bytes ever written (producer-owned).
    head: AtomicUsize,
    /// Bytes ever read (consumer-owned).
    tail: AtomicUsize,
    /// Bytes refused because the ring was full (producer-owned).
    overruns: AtomicU32,
}

// SAFETY: the buffer is only written at positions the producer owns (between
// `head` and `tail + N`) and only read at positions the consumer owns
// (between `tail` and `head`); ownership passes with Release/Acquire on the
// indices. The unsafe methods' contracts keep each role to one context.
unsafe impl<const N: usize> Sync for ByteRing<N> {}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteRing<N> {
    const VALID: () = assert!(N.is_power_of_two(), "ByteRing size must be a power of two");

    /// An empty ring.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID;
        ByteRing {
            buf: UnsafeCell::new([0; N]),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            overruns: AtomicU32::new(0),
        }
    }

    /// Bytes waiting to be read.
    pub fn len(&self) -> usize {
        self.head.load(Ordering::Acquire).wrapping_sub(self.tail.load(Ordering::Acquire))
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room for more bytes.
    pub fn free(&self) -> usize {
        N - self.len()
    }

    /// Bytes refused because the ring was full.
    pub fn overruns(&self) -> u32 {
        self.overruns.load(Ordering::Relaxed)
    }

    /// Appends one byte; false (and counted) if the ring is full.
    ///
    /// # Safety
    /// Only one context (one interrupt handler, or the main loop) may act as
    /// the producer (`push`, `push_slice`) of a ring.
    pub unsafe fn push(&self, byte: u8) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        if head.wrapping_sub(self.tail.load(Ordering::Acquire)) >= N {
            let n = self.overruns.load(Ordering::Relaxed);
            self.overruns.store(n.wrapping_add(1), Ordering::Relaxed);
            return false;
        }
        // SAFETY: position `head` is free and owned by the producer until
        // `head` is published below.
        unsafe { (*self.buf.get())[head % N] = byte };
        self.head.store(head.wrapping_add(1), Ordering::Release);
        true
    }

    /// Appends as many bytes of `data` as fit; returns how many.
    ///
    /// # Safety
    /// As [`push`](Self::push).
    pub unsafe fn push_slice(&self, data: &[u8]) -> usize {
        let head = self.head.load(Ordering::Relaxed);
        let room = N - head.wrapping_sub(self.tail.load(Ordering::Acquire));
        let n = room.min(data.len());
        let buf = self.buf.get();
        for (i, &b) in data[..n].iter().enumerate() {
            // SAFETY: positions head .. head + room are free (see `push`).
            unsafe { (*buf)[head.wrapping_add(i) % N] = b };
        }
        self.head.store(head.wrapping_add(n), Ordering::Release);
        n
    }

    /// Takes the oldest byte.
    ///
    /// # Safety
    /// Only one context may act as the consumer (`pop`, `pop_into`) of a ring.
    pub unsafe fn pop(&self) -> Option<u8> {
        let tail = self.tail.load(Ordering::Relaxed);
        if self.head.load(Ordering::Acquire) == tail {
            return None;
        }
        // SAFETY: position `tail` was published by the producer and is not
        // reused before `tail` moves on below.
        let b = unsafe { (*self.buf.get())[tail % N] };
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        Some(b)
    }

    /// Moves up to `out.len()` of the oldest bytes into `out`; returns how many.
    ///
    /// # Safety
    /// As [`pop`](Self::pop).
    pub unsafe fn pop_into(&self, out: &mut [u8]) -> usize {
        let tail = self.tail.load(Ordering::Relaxed);
        let n = self.head.load(Ordering::Acquire).wrapping_sub(tail).min(out.len());
        let buf = self.buf.get();
        for (i, o) in out[..n].iter_mut().enumerate() {
            // SAFETY: positions tail .. tail + n were published (see `pop`).
            *o = unsafe { (*buf)[tail.wrapping_add(i) % N] };
        }
        self.tail.store(tail.wrapping_add(n), Ordering::Release);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_in_order_across_the_wrap() {
        let r = ByteRing::<8>::new();
        let mut out = [0u8; 8];
        let mut next_in = 0u8;
        let mut next_out = 0u8;
        for round in 0..50 {
            let want = 1 + round % 7;
            let data: [u8; 7] = core::array::from_fn(|i| next_in.wrapping_add(i as u8));
            let n = unsafe { r.push_slice(&data[..want]) };
            next_in = next_in.wrapping_add(n as u8);
            let got = unsafe { r.pop_into(&mut out[..(round % 5) + 1]) };
            for &b in &out[..got] {
                assert_eq!(b, next_out);
                next_out = next_out.wrapping_add(1);
            }
        }
        while let Some(b) = unsafe { r.pop() } {
            assert_eq!(b, next_out);
            next_out = next_out.wrapping_add(1);
        }
        assert_eq!(next_in, next_out);
    }

    #[test]
    fn a_full_ring_refuses_and_counts() {
        let r = ByteRing::<4>::new();
        for b in 0..4 {
            assert!(unsafe { r.push(b) });
        }
        assert!(!unsafe { r.push(9) });
        assert_eq!((r.len(), r.free(), r.overruns()), (4, 0, 1));
        assert_eq!(unsafe { r.push_slice(&[1, 2]) }, 0);
        assert_eq!(unsafe { r.pop() }, Some(0));
        assert_eq!(unsafe { r.push_slice(&[7, 8]) }, 1);
    }

    #[test]
    fn one_thread_produces_while_another_consumes() {
        static RING: ByteRing<64> = ByteRing::new();
        const TOTAL: usize = 200_000;
        let producer = std::thread::spawn(|| {
            let mut i = 0usize;
            while i < TOTAL {
                if unsafe { RING.push(i as u8) } {
                    i += 1;
                }
            }
        });
        let mut got = 0usize;
        let mut buf = [0u8; 16];
        while got < TOTAL {
            let n = unsafe { RING.pop_into(&mut buf) };
            for &b in &buf[..n] {
                assert_eq!(b, got as u8);
                got += 1;
            }
        }
        producer.join().unwrap();
    }
}
