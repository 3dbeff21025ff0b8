//! Deterministic data and hashes, the same for the end-to-end tests and the benchmarks.

/// `len` pseudo-random bytes for `seed`: [`strand_link::sim::seeded_bytes`].
pub use strand_link::sim::seeded_bytes as data;

/// BLAKE3 of `bytes`, as hex.
pub fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}
