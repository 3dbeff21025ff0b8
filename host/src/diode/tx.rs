//! `strand diode-tx`: reads the files, runs the core's [`Sender`] and writes
//! its frames, paced so that neither a serial port's buffers nor a UDP path
//! are overrun (nothing comes back to slow the sender down).

use super::endpoint::{open_sink, Endpoint, Side, Sink};
use super::TxArgs;
use crate::transport::SerialSettings;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as StdInstant};
use strand_link::diode::stream;
use strand_link::diode::wire::MAX_FRAME;
use strand_link::diode::{safe_name, Layout, Manifest, Outgoing, Poll, Redundancy, Sender, SenderConfig};
use strand_link::fec::Strength;
use strand_link::time::Instant;
use tokio::io::AsyncWriteExt;

/// Where an object's bytes are read from.
enum Content {
    File(fs::File),
    Memory(Vec<u8>),
}

/// One object to send and where its bytes are.
struct Item {
    manifest: Manifest,
    content: Content,
    path: String,
}

/// A non-zero session id from the OS: sessions of different runs must differ (13.2).
fn session_id() -> u32 {
    loop {
        let seed = crate::driver::os_seed();
        let id = seed as u32 ^ (seed >> 32) as u32;
        if id != 0 {
            return id;
        }
    }
}

/// Lists what the FILE arguments name: `(name, path)`; `None` path = stdin.
fn collect(args: &[PathBuf]) -> Result<Vec<(String, Option<PathBuf>)>, String> {
    let mut out = Vec::new();
    for a in args {
        if a.as_os_str() == "-" {
            out.push(("stdin".to_string(), None));
            continue;
        }
        let meta = fs::metadata(a).map_err(|e| format!("{}: {e}", a.display()))?;
        if meta.is_dir() {
            let before = out.len();
            walk(a, a, &mut out)?;
            out[before..].sort();
        } else if meta.is_file() {
            let name = a
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| format!("{}: the name is not UTF-8", a.display()))?;
            out.push((name.to_string(), Some(a.clone())));
        } else {
            return Err(format!("{}: not a regular file or directory", a.display()));
        }
    }
    let mut names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("two files would be received as {:?}: send them separately", w[0]));
    }
    if out.len() >= usize::from(u16::MAX) {
        return Err(format!("{} files: one session carries at most 65534", out.len()));
    }
    Ok(out)
}

/// Every regular file below `dir` (symlinks are not followed), named relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Option<PathBuf>)>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = e.path();
        let ft = e.file_type().map_err(|e| format!("{}: {e}", path.display()))?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
            let name = parts.ok_or_else(|| format!("{}: the name is not UTF-8", path.display()))?.join("/");
            out.push((name, Some(path)));
        }
    }
    Ok(())
}

/// Reads and hashes every object (the manifest carries the hash, and goes out first).
async fn load(list: Vec<(String, Option<PathBuf>)>) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for (name, path) in list {
        if !safe_name(&name) {
            return Err(format!("{name:?} cannot be sent: a receiver would refuse the name"));
        }
        let (content, size, mode, mtime, hash, shown) = match path {
            None => {
                let mut v = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut v)
                    .await
                    .map_err(|e| format!("reading stdin: {e}"))?;
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let hash = *blake3::hash(&v).as_bytes();
                let size = v.len() as u64;
                (Content::Memory(v), size, 0o644, now.as_secs(), hash, "stdin".to_string())
            }
            Some(p) => {
                let shown = p.display().to_string();
                let f = fs::File::open(&p).map_err(|e| format!("{shown}: {e}"))?;
                let meta = f.metadata().map_err(|e| format!("{shown}: {e}"))?;
                let mut h = blake3::Hasher::new();
                h.update_reader(&f).map_err(|e| format!("{shown}: {e}"))?;
                let hash = *h.finalize().as_bytes();
                (Content::File(f), meta.len(), meta.mode() & 0o7777, meta.mtime().max(0) as u64, hash, shown)
            }
        };
        let manifest = Manifest { object: 0, objects: 0, size, mode, mtime, hash, name };
        items.push(Item { manifest, content, path: shown });
    }
    Ok(items)
}

/// Paces writes to a byte rate: a token bucket that may go briefly negative,
/// so the sleep's granularity (about a millisecond) is made up on later frames.
struct Pacer {
    rate: f64,
    tokens: f64,
    burst: f64,
    last: StdInstant,
}

impl Pacer {
    fn new(bytes_per_s: f64) -> Pacer {
        // A few milliseconds' worth, and at least two big frames, may go at once.
        let burst = (bytes_per_s * 0.005).max(2.0 * MAX_FRAME as f64);
        Pacer { rate: bytes_per_s, tokens: burst, burst, last: StdInstant::now() }
    }

    async fn take(&mut self, bytes: usize) {
        let now = StdInstant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        self.tokens -= bytes as f64;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / self.rate)).await;
        }
    }
}

/// Runs `strand diode-tx`.
pub async fn run(args: &TxArgs) -> Result<(), String> {
    let ep = Endpoint::parse(&args.link, Side::Tx)?;
    let stream = ep.is_stream();
    let symbol_size = args.symbol_size.unwrap_or(if stream { 1024 } else { 1400 });
    if symbol_size < 2
        || symbol_size % 2 != 0
        || usize::from(symbol_size) > strand_link::diode::wire::MAX_SYMBOL
    {
        return Err(format!("--symbol-size {symbol_size}: use an even number of bytes from 2 to 8192"));
    }
    if !stream && usize::from(symbol_size) > 1400 {
        tracing::warn!(
            "--symbol-size {symbol_size}: datagrams over the path MTU are fragmented, and lost whole"
        );
    }
    let redundancy = match (args.redundancy, args.expect_loss) {
        (Some(p), _) if (0.0..=1000.0).contains(&p) => Redundancy::Fixed(p / 100.0),
        (Some(p), _) => return Err(format!("--redundancy {p}: use a percentage from 0 to 1000")),
        (None, Some(p)) if (0.0..=95.0).contains(&p) => Redundancy::ExpectLoss(p / 100.0),
        (None, Some(p)) => return Err(format!("--expect-loss {p}: use a percentage from 0 to 95")),
        (None, None) => Redundancy::ExpectLoss(0.01),
    };
    if args.rounds == 0 {
        return Err("--rounds must be at least 1 (or use --forever)".into());
    }
    let heartbeat = u16::try_from(args.heartbeat)
        .ok()
        .filter(|&h| h > 0)
        .ok_or_else(|| format!("--heartbeat {}: use 1 to 65535 ms", args.heartbeat))?;
    let fec = match (args.fec, &ep) {
        (Some(f), _) if !stream && f != Strength::Off => {
            return Err(
                "--fec is for byte streams: UDP datagrams carry raw frames (a damaged one is dropped)".into(),
            )
        }
        (Some(f), _) => f,
        (None, Endpoint::Serial(_)) => Strength::Light,
        (None, _) => Strength::Off,
    };
    let serial = SerialSettings { baud: args.baud, ..SerialSettings::default() };
    // Bytes per second on the wire.
    let rate = match (args.rate, &ep) {
        (Some(0), _) => return Err("--rate must be > 0".into()),
        (Some(r), Endpoint::Serial(_)) => Some(r as f64 / 10.0),
        (Some(r), _) => Some(r as f64 / 8.0),
        // 98%: a sender slightly slower than the UART never fills the OS buffers.
        (None, Endpoint::Serial(_)) => Some(f64::from(args.baud) * 0.98 / 10.0),
        (None, Endpoint::Udp(_)) => Some(10_000_000.0 / 8.0),
        (None, _) => None,
    };
    let key = args.key.load()?;

    let items = load(collect(&args.files)?).await?;
    let mut objects = Vec::with_capacity(items.len());
    for it in &items {
        let layout = Layout::choose(it.manifest.size, symbol_size).ok_or_else(|| {
            format!("{}: too big for one-way transfer with {symbol_size}-byte symbols", it.path)
        })?;
        objects.push(Outgoing { manifest: it.manifest.clone(), layout });
    }
    let config = SenderConfig {
        redundancy,
        rounds: if args.forever { None } else { Some(args.rounds) },
        heartbeat: Duration::from_millis(u64::from(heartbeat)),
    };
    let session = session_id();
    if objects.len() >= usize::from(u16::MAX) {
        return Err(format!(
            "{} files: one session carries at most {} (object numbers are 16 bits); send them in several runs or as a tar file",
            objects.len(),
            u16::MAX - 1
        ));
    }
    // Layouts come from `Layout::choose` and sizes from the files, so only a bug gets here.
    let mut sender = Sender::new(session, objects, config, key)
        .ok_or("internal error: the diode sender refused a layout it was given")?;
    let mut sink = open_sink(&ep, &serial).await?;
    tracing::info!("session {session:08x}: {} object(s) to {}", items.len(), args.link);

    let mut pacer = rate.map(Pacer::new);
    let start = StdInstant::now();
    let mut raw = vec![0u8; MAX_FRAME];
    let mut wire = Vec::with_capacity(stream::STREAM_CAPACITY + 1);
    let mut wire_bytes = 0u64;
    // A leading delimiter on the first frame flushes whatever noise the receiver's deframer holds.
    let mut leading = true;
    loop {
        let now = Instant::from_micros(start.elapsed().as_micros() as u64);
        match sender.poll_frame(now, &mut raw) {
            Poll::Done => break,
            Poll::NeedBlock { object, block, offset, len } => {
                let it = &items[usize::from(object)];
                let bytes = read_block(it, offset, len)?;
                sender.provide_block(object, block, &bytes).map_err(|e| format!("{}: {e:?}", it.path))?;
            }
            Poll::Frame(n) => {
                let out: &[u8] = match &sink {
                    Sink::Udp(..) => &raw[..n],
                    Sink::Stream(_) => {
                        wire.clear();
                        stream::encode_frame(&raw[..n], fec, std::mem::take(&mut leading), &mut wire);
                        &wire
                    }
                };
                if let Some(p) = &mut pacer {
                    p.take(out.len()).await;
                }
                wire_bytes += out.len() as u64;
                match &mut sink {
                    Sink::Stream(w) => w.write_all(out).await.map_err(|e| write_error(&args.link, e))?,
                    Sink::Udp(s, to) => {
                        if let Err(e) = s.send_to(out, *to).await {
                            // Nothing can come back on a diode: a refused datagram
                            // (no receiver yet) is only worth a note.
                            tracing::debug!("udp send: {e}");
                        }
                    }
                }
            }
        }
    }
    if let Sink::Stream(w) = &mut sink {
        w.flush().await.map_err(|e| write_error(&args.link, e))?;
        w.shutdown().await.ok();
    }
    eprintln!(
        "diode-tx: session {session:08x}: {} object(s), {} frames, {} bytes in {:.1} s",
        items.len(),
        sender.frames_sent(),
        wire_bytes,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_error(link: &str, e: std::io::Error) -> String {
    if e.raw_os_error() == Some(nix::libc::ENOSPC) {
        return format!("writing {link}: disk full (no space left on device)");
    }
    format!("writing {link}: {e}")
}

/// Reads `len` bytes at `offset` of an object, failing clearly if the file
/// shrank since it was hashed.
fn read_block(it: &Item, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    match &it.content {
        Content::Memory(v) => Ok(v[offset as usize..(offset + len) as usize].to_vec()),
        Content::File(f) => {
            let mut buf = vec![0u8; len as usize];
            f.read_exact_at(&mut buf, offset).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => format!("{}: the file shrank while being sent", it.path),
                _ => format!("{}: {e}", it.path),
            })?;
            Ok(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_walked_into_slash_separated_relative_names() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("tree/a/b")).unwrap();
        fs::write(d.path().join("tree/z"), b"1").unwrap();
        fs::write(d.path().join("tree/a/b/c"), b"2").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("tree/link")).unwrap();
        let got: Vec<String> =
            collect(&[d.path().join("tree")]).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, ["a/b/c", "z"]);
        // The same name twice would overwrite itself at the receiver.
        fs::write(d.path().join("z"), b"3").unwrap();
        let e = collect(&[d.path().join("z"), d.path().join("tree/z")]).unwrap_err();
        assert!(e.contains("\"z\""), "{e}");
    }
}
