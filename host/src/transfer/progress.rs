//! Progress bars on stderr (when the caller asks for them), byte counts for messages, and hashing
//! files with progress.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Makes one progress bar per file, or hidden ones when progress is off (so callers need no `if`).
#[derive(Debug, Clone, Copy)]
pub struct Bars {
    enabled: bool,
}

impl Bars {
    /// Visible bars on stderr if `enabled`, else invisible ones.
    pub fn new(enabled: bool) -> Self {
        Bars { enabled }
    }

    /// A bar for `label` (e.g. "sending x") over `total` bytes, starting at `start` (resumed bytes).
    pub fn bar(&self, label: String, total: u64, start: u64) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template(
            "{msg:30!} [{bar:25}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_message(label)
            .with_position(start);
        // Resumed bytes arrived in an earlier run: leave them out of the rate and the ETA.
        bar.reset_eta();
        bar
    }
}

/// `n` bytes for people: "512 B", "1.5 KiB", "12.0 MiB".
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// BLAKE3 of everything in `file` from its start, advancing `bar`; returns the file, the hash and
/// the number of bytes hashed. Runs on a blocking thread: hashing gigabytes takes seconds.
pub async fn hash_file(mut file: File, bar: ProgressBar) -> io::Result<(File, [u8; 32], u64)> {
    tokio::task::spawn_blocking(move || {
        file.seek(SeekFrom::Start(0))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            total += n as u64;
            bar.inc(n as u64);
        }
        Ok((file, *hasher.finalize().as_bytes(), total))
    })
    .await
    .map_err(io::Error::other)?
}

/// BLAKE3 of the file at `path`.
pub async fn hash_path(path: &Path, bar: ProgressBar) -> io::Result<[u8; 32]> {
    let file = File::open(path)?;
    hash_file(file, bar).await.map(|(_, hash, _)| hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(fmt_bytes(0), "0 B");
        assert_eq!(fmt_bytes(1023), "1023 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(fmt_bytes(u64::MAX), "16.0 EiB");
    }
}
