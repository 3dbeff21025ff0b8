//! Sealing frames: the hook for authenticated encryption on public media
//! (radio), ready for the security work. A `Seal` turns a frame's payload
//! into ciphertext and a tag, with the header as associated data, and back;
//! the nonce is the sender's session id and the frame counter (spec 10.1),
//! which never repeat within a session. [`Plain`] seals nothing.

/// Seals and opens frame payloads.
pub trait Seal {
    /// Bytes a sealed payload grows by (the tag).
    const OVERHEAD: usize;

    /// Seals `payload` in place, appending the tag after it in `buf`
    /// (`buf[..len]` is the payload; `buf` has room for the tag). `header`
    /// is associated data; `session` and `counter` make the nonce. Returns
    /// the sealed length.
    fn seal(&mut self, header: &[u8], session: u32, counter: u32, buf: &mut [u8], len: usize) -> usize;

    /// Opens a sealed payload in place; returns the plain length, or `None`
    /// if it was not sealed by the peer's key (the frame is then dropped).
    fn open(&mut self, header: &[u8], session: u32, counter: u32, buf: &mut [u8]) -> Option<usize>;
}

/// No sealing: the payload goes as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Seal for Plain {
    const OVERHEAD: usize = 0;

    fn seal(&mut self, _header: &[u8], _session: u32, _counter: u32, _buf: &mut [u8], len: usize) -> usize {
        len
    }

    fn open(&mut self, _header: &[u8], _session: u32, _counter: u32, buf: &mut [u8]) -> Option<usize> {
        Some(buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_seals_nothing_and_opens_everything() {
        let mut buf = *b"payload";
        assert_eq!(Plain.seal(b"hdr", 1, 2, &mut buf, 7), 7);
        assert_eq!(Plain.open(b"hdr", 1, 2, &mut buf), Some(7));
        assert_eq!(&buf, b"payload");
    }
}
