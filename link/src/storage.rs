//! Caller-owned memory: the core never builds its buffers itself.
//!
//! A connection's send pool and receive ring, their payload arenas and its
//! stream ledger are slices the caller hands over — `static` arrays on a
//! microcontroller (through a `StaticCell`), `Vec`s on a host — and the core
//! initialises them in place. Nothing large is built by value or moved, so no
//! thread needs a raised stack, and a firmware's RAM use is what its linker
//! map says. The smoltcp `ManagedSlice` idea: a [`Buf`] is borrowed for a
//! lifetime, or (feature `alloc`) owned.

use core::ops::{Deref, DerefMut};

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// A slice the core works in: borrowed from the caller, or owned.
#[derive(Debug)]
pub enum Buf<'a, T> {
    /// Memory the caller keeps (a static array on an MCU).
    Borrowed(&'a mut [T]),
    /// Memory the buffer owns (a host).
    #[cfg(feature = "alloc")]
    Owned(Vec<T>),
}

impl<T> Deref for Buf<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Buf::Borrowed(s) => s,
            #[cfg(feature = "alloc")]
            Buf::Owned(v) => v,
        }
    }
}

impl<T> DerefMut for Buf<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Buf::Borrowed(s) => s,
            #[cfg(feature = "alloc")]
            Buf::Owned(v) => v,
        }
    }
}

impl<'a, T> From<&'a mut [T]> for Buf<'a, T> {
    fn from(s: &'a mut [T]) -> Self {
        Buf::Borrowed(s)
    }
}

#[cfg(feature = "alloc")]
impl<T> From<Vec<T>> for Buf<'static, T> {
    fn from(v: Vec<T>) -> Self {
        Buf::Owned(v)
    }
}

#[cfg(feature = "alloc")]
impl<T: Clone> Buf<'static, T> {
    /// An owned buffer of `n` copies of `value`.
    pub fn filled(n: usize, value: T) -> Self {
        Buf::Owned(alloc::vec![value; n])
    }
}
