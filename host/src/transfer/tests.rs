//! End-to-end tests of `send_files` against `recv_files` (and against scripted peers) over an
//! in-memory packet channel that can be cut to simulate a lost link.

use std::fs::{self, File, FileTimes, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::proto::{Chunk, Failure, Hello, Manifest, Message, Refusal, Role, PROTOCOL_VERSION};
use super::recv::{recv_files_with, PartSink};
use super::*;

// ---------------------------------------------------------------------------------------------
// In-memory link

enum Packet {
    Data(Vec<u8>),
    /// The link went down (sent by the end whose send hit the cut).
    Cut,
}

/// Shared state of a pair: how many more packets may pass, and whether the link is down.
struct CutState {
    remaining: AtomicUsize,
    down: AtomicBool,
}

/// One end of an in-memory link: tokio channels both ways, optionally cut after N packets.
struct MemIo {
    tx: mpsc::UnboundedSender<Packet>,
    rx: mpsc::UnboundedReceiver<Packet>,
    /// Feeds our own `rx`, so a cut we cause also ends our own pending and later reads.
    to_self: mpsc::UnboundedSender<Packet>,
    cut: Arc<CutState>,
}

/// Two connected ends; with `cut_after = Some(n)` the link fails when packet n+1 (counted over
/// both directions) is sent, and both ends see errors from then on.
fn pair(cut_after: Option<usize>) -> (MemIo, MemIo) {
    let (a_tx, b_rx) = mpsc::unbounded_channel();
    let (b_tx, a_rx) = mpsc::unbounded_channel();
    let cut = Arc::new(CutState {
        remaining: AtomicUsize::new(cut_after.unwrap_or(usize::MAX)),
        down: AtomicBool::new(false),
    });
    let (a_self, b_self) = (b_tx.clone(), a_tx.clone());
    (
        MemIo { tx: a_tx, rx: a_rx, to_self: a_self, cut: cut.clone() },
        MemIo { tx: b_tx, rx: b_rx, to_self: b_self, cut },
    )
}

impl MemIo {
    /// Sends any packet, even one larger than the protocol allows (for hostile-peer tests).
    async fn inject(&mut self, packet: &[u8]) {
        self.tx.send(Packet::Data(packet.to_vec())).unwrap();
    }
}

impl PacketIo for MemIo {
    async fn send(&mut self, packet: &[u8]) -> anyhow::Result<()> {
        assert!(packet.len() <= proto::MAX_PACKET, "a {}-byte packet", packet.len());
        if self.cut.down.load(Ordering::SeqCst) {
            anyhow::bail!("link down");
        }
        let allowed =
            self.cut.remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if !allowed {
            // Packets already sent were delivered; everything after the cut is lost, both ways.
            self.cut.down.store(true, Ordering::SeqCst);
            let _ = self.tx.send(Packet::Cut);
            let _ = self.to_self.send(Packet::Cut);
            anyhow::bail!("link cut");
        }
        self.tx.send(Packet::Data(packet.to_vec())).map_err(|_| anyhow::anyhow!("peer gone"))?;
        // Let the other end run, as a real link with a window would.
        tokio::task::yield_now().await;
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        match self.rx.recv().await {
            Some(Packet::Data(packet)) => Ok(packet),
            Some(Packet::Cut) => anyhow::bail!("link cut"),
            None => anyhow::bail!("peer gone"),
        }
    }
}

/// A scripted peer speaking raw messages.
struct Raw(MemIo);

impl Raw {
    async fn send(&mut self, msg: &Message) {
        self.0.send(&msg.encode()).await.unwrap();
    }
    async fn recv(&mut self) -> Message {
        Message::decode(&self.0.recv().await.unwrap()).unwrap()
    }
    async fn hello(&mut self, role: Role) {
        self.send(&Message::Hello(Hello::ours(role))).await;
        assert!(matches!(self.recv().await, Message::Hello(_)));
    }
}

// ---------------------------------------------------------------------------------------------
// Files

/// Deterministic pseudo-random bytes, so failures reproduce.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    strand_link::sim::seeded_bytes(seed, len)
}

fn write_file(dir: &Path, name: &str, content: &[u8], mode: u32, mtime: SystemTime) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, content).unwrap();
    let file = File::options().write(true).open(&path).unwrap();
    file.set_times(FileTimes::new().set_modified(mtime)).unwrap();
    fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
    path
}

fn some_mtime(seed: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(1_600_000_000 + seed * 1000, 123_456_789)
}

fn assert_same_file(src: &Path, dst: &Path) {
    let (a, b) = (fs::metadata(src).unwrap(), fs::metadata(dst).unwrap());
    assert!(fs::read(src).unwrap() == fs::read(dst).unwrap(), "{} differs", dst.display());
    assert_eq!(a.mode() & 0o777, b.mode() & 0o777, "mode of {}", dst.display());
    assert_eq!((a.mtime(), a.mtime_nsec()), (b.mtime(), b.mtime_nsec()), "mtime of {}", dst.display());
}

/// Names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn part_files(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir.join(PARTIAL_DIR)) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    dst: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&dst).unwrap();
    Setup { _tmp: tmp, src, dst }
}

fn send_opts(files: &[PathBuf]) -> SendOptions {
    SendOptions { files: files.to_vec(), progress: false, ..Default::default() }
}

fn recv_opts(dir: &Path, overwrite: bool) -> RecvOptions {
    RecvOptions { dir: dir.to_path_buf(), overwrite, progress: false, spool: false, ordered: false }
}

type Both = (Result<SendReport, TransferError>, Result<RecvReport, TransferError>);

async fn transfer(files: &[PathBuf], dir: &Path, overwrite: bool, cut_after: Option<usize>) -> Both {
    let (mut a, mut b) = pair(cut_after);
    let (s, r) = (send_opts(files), recv_opts(dir, overwrite));
    tokio::join!(send_files(&mut a, &s), recv_files(&mut b, &r))
}

const MB5: usize = 5_000_000;

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn several_files_arrive_exact_with_mode_and_mtime() {
    let t = setup();
    let files = vec![
        write_file(&t.src, "empty", b"", 0o600, some_mtime(1)),
        write_file(&t.src, "small.txt", &bytes(1000, 2), 0o640, some_mtime(2)),
        write_file(&t.src, "big.bin", &bytes(MB5, 3), 0o755, some_mtime(3)),
    ];
    let (sent, received) = transfer(&files, &t.dst, false, None).await;
    let (sent, received) = (sent.unwrap(), received.unwrap());
    assert_eq!(sent, SendReport { files: 3, bytes_sent: MB5 as u64 + 1000, bytes_skipped: 0, removed: 0 });
    assert_eq!(received.files, ["empty", "small.txt", "big.bin"].map(|n| t.dst.join(n)));
    assert_eq!(received.bytes_received, MB5 as u64 + 1000);
    assert_eq!(received.bytes_resumed, 0);
    for file in &files {
        assert_same_file(file, &t.dst.join(file.file_name().unwrap()));
    }
    assert_eq!(listing(&t.dst), [".strand-partial", "big.bin", "empty", "small.txt"]);
    assert!(part_files(&t.dst).is_empty(), "no partial files left behind");
}

#[tokio::test]
async fn a_cut_link_resumes_without_resending() {
    let t = setup();
    let file = write_file(&t.src, "big.bin", &bytes(MB5, 4), 0o644, some_mtime(4));
    let (sent, received) = transfer(std::slice::from_ref(&file), &t.dst, false, Some(60)).await;
    let (sent, received) = (sent.unwrap_err(), received.unwrap_err());
    for e in [&sent, &received] {
        assert_eq!(e.exit_code(), EXIT_LINK_LOST, "{e}");
        assert!(e.to_string().contains("run the same command again to resume"), "{e}");
    }
    assert!(received.to_string().starts_with("link lost during transfer of \"big.bin\" ("), "{received}");
    assert!(received.to_string().contains("MiB of 4.8 MiB received)"), "{received}");
    assert!(sent.to_string().contains("confirmed by the receiver"), "{sent}");
    assert!(!t.dst.join("big.bin").exists(), "an incomplete file must not appear");
    let parts = part_files(&t.dst);
    assert_eq!(parts.len(), 1);
    let have = fs::metadata(&parts[0]).unwrap().len();
    assert!(have > 0 && have < MB5 as u64, "{have}");

    let (sent, received) = transfer(std::slice::from_ref(&file), &t.dst, false, None).await;
    let (sent, received) = (sent.unwrap(), received.unwrap());
    assert!(sent.bytes_sent < MB5 as u64);
    assert_eq!(sent.bytes_sent, MB5 as u64 - have, "bytes already received are not sent again");
    assert_eq!(sent.bytes_skipped, have);
    assert_eq!(received.bytes_resumed, have);
    assert_same_file(&file, &t.dst.join("big.bin"));
    assert!(part_files(&t.dst).is_empty());
}

#[tokio::test]
async fn an_identical_file_is_not_sent_again() {
    let t = setup();
    let content = bytes(300_000, 5);
    let file = write_file(&t.src, "doc", &content, 0o644, some_mtime(5));
    let existing = write_file(&t.dst, "doc", &content, 0o600, some_mtime(6));
    let (sent, received) = transfer(&[file], &t.dst, false, None).await;
    assert_eq!(sent.unwrap(), SendReport { files: 1, bytes_sent: 0, bytes_skipped: 300_000, removed: 0 });
    let received = received.unwrap();
    assert_eq!(received.already_had, std::slice::from_ref(&existing));
    assert!(received.files.is_empty());
    // Left untouched, mode and mtime included.
    let meta = fs::metadata(&existing).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.modified().unwrap(), some_mtime(6));
}

#[tokio::test]
async fn a_different_file_is_replaced_only_with_overwrite() {
    let t = setup();
    let file = write_file(&t.src, "conf", b"new content", 0o644, some_mtime(7));
    let other = write_file(&t.src, "other", b"unrelated", 0o644, some_mtime(8));
    write_file(&t.dst, "conf", b"old content", 0o644, some_mtime(9));

    let (sent, received) = transfer(&[file.clone(), other.clone()], &t.dst, false, None).await;
    let (sent, received) = (sent.unwrap_err(), received.unwrap_err());
    assert_eq!(sent.exit_code(), EXIT_REFUSED);
    assert_eq!(received.exit_code(), EXIT_REFUSED);
    assert_eq!(
        received.to_string(),
        format!("{} exists; pass --overwrite to replace it", t.dst.join("conf").display())
    );
    assert!(sent.to_string().starts_with("the receiver refused \"conf\": "), "{sent}");
    assert!(sent.to_string().contains("pass --overwrite"), "{sent}");
    assert_eq!(fs::read(t.dst.join("conf")).unwrap(), b"old content");
    assert_same_file(&other, &t.dst.join("other")); // the batch went on

    let (sent, received) = transfer(&[file.clone(), other], &t.dst, true, None).await;
    assert_eq!(sent.unwrap().files, 2);
    assert_eq!(received.unwrap().files, [t.dst.join("conf")]);
    assert_same_file(&file, &t.dst.join("conf"));
}

#[tokio::test]
async fn hostile_names_are_refused_and_nothing_is_written() {
    let t = setup();
    let hostile =
        ["../x", "/etc/passwd", "a/b", "..", ".", "", "x\0y", "\u{1b}[31m", "a\\b", ".strand-partial"];
    let long = "n".repeat(256);
    let (a, mut b) = pair(None);
    let mut peer = Raw(a);
    let opts = recv_opts(&t.dst, true);
    let script = async {
        peer.hello(Role::Sender).await;
        for name in hostile.iter().copied().chain([long.as_str()]) {
            let manifest = Manifest {
                name: name.to_string(),
                size: 4,
                mode: 0o4755,
                mtime_secs: 0,
                mtime_nanos: 0,
                hash: *blake3::hash(b"evil").as_bytes(),
            };
            peer.send(&Message::Offer(manifest)).await;
            match peer.recv().await {
                Message::Refuse { why: Refusal::BadName, detail } => {
                    assert!(detail.starts_with("refusing file name \""), "{detail}");
                }
                other => panic!("{name:?}: {other:?}"),
            }
        }
        peer.send(&Message::Bye).await;
        assert_eq!(peer.recv().await, Message::Bye);
    };
    let (_, result) = tokio::join!(script, recv_files(&mut b, &opts));
    let error = result.unwrap_err();
    assert_eq!(error.exit_code(), EXIT_REFUSED);
    assert!(
        error
            .to_string()
            .starts_with("refusing file name \"../x\": it leaves the target directory (and 10 more"),
        "{error}"
    );
    assert!(listing(&t.dst).is_empty(), "nothing written: {:?}", listing(&t.dst));
    assert_eq!(listing(t.dst.parent().unwrap()), ["dst", "src"], "nothing written outside DIR");
}

#[tokio::test]
async fn messages_from_a_hostile_sender_are_printable() {
    let t = setup();
    let (a, mut b) = pair(None);
    let mut peer = Raw(a);
    let opts = recv_opts(&t.dst, false);
    let script = async {
        peer.hello(Role::Sender).await;
        peer.send(&Message::Abort { detail: "\u{1b}]0;owned\u{7}bye".into() }).await;
    };
    let (_, result) = tokio::join!(script, recv_files(&mut b, &opts));
    let error = result.unwrap_err();
    assert_eq!(error.exit_code(), EXIT_PEER);
    assert!(!error.to_string().chars().any(char::is_control), "{error:?}");
}

#[tokio::test]
async fn a_corrupted_partial_file_is_caught_and_sent_again() {
    let t = setup();
    let file = write_file(&t.src, "big.bin", &bytes(MB5, 10), 0o644, some_mtime(10));
    let (sent, _) = transfer(std::slice::from_ref(&file), &t.dst, false, Some(70)).await;
    assert_eq!(sent.unwrap_err().exit_code(), EXIT_LINK_LOST);
    let part = part_files(&t.dst).pop().unwrap();
    let mut data = fs::read(&part).unwrap();
    let have = data.len() as u64;
    data[1000] ^= 0x20;
    fs::write(&part, &data).unwrap();

    let (sent, received) = transfer(std::slice::from_ref(&file), &t.dst, false, None).await;
    let (sent, received) = (sent.unwrap(), received.unwrap());
    assert_eq!(sent.files, 1);
    assert_eq!(sent.bytes_sent, (MB5 as u64 - have) + MB5 as u64, "the rest, then everything again");
    assert_eq!(sent.bytes_skipped, 0);
    assert_eq!(received.bytes_resumed, 0);
    assert_same_file(&file, &t.dst.join("big.bin"));
    assert!(part_files(&t.dst).is_empty());
}

#[tokio::test]
async fn the_sender_gives_up_after_two_verification_failures() {
    let t = setup();
    let file = write_file(&t.src, "f", &bytes(100_000, 11), 0o644, some_mtime(11));
    let (mut a, b) = pair(None);
    let mut peer = Raw(b);
    let script = async {
        peer.hello(Role::Receiver).await;
        for _ in 0..2 {
            assert!(matches!(peer.recv().await, Message::Offer(_)));
            peer.send(&Message::Accept { offset: 0 }).await;
            while peer.recv().await != Message::End {}
            peer.send(&Message::Failed { why: Failure::Verify, detail: "mismatch".into() }).await;
        }
        assert_eq!(peer.recv().await, Message::Bye);
        peer.send(&Message::Bye).await;
    };
    let opts = send_opts(&[file]);
    let (_, result) = tokio::join!(script, send_files(&mut a, &opts));
    let error = result.unwrap_err();
    assert_eq!(error.exit_code(), EXIT_VERIFY, "{error}");
    assert!(error.to_string().starts_with("\"f\" failed its BLAKE3 check twice"), "{error}");
}

/// A sink that takes `room` bytes and then fails like a full disk.
struct FullDisk {
    file: File,
    room: u64,
}

impl PartSink for FullDisk {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let fits = (bytes.len() as u64).min(self.room) as usize;
        PartSink::append(&mut self.file, &bytes[..fits])?;
        self.room -= fits as u64;
        if fits < bytes.len() {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

#[tokio::test]
async fn a_full_disk_keeps_the_partial_file_and_a_later_run_resumes() {
    let t = setup();
    let file = write_file(&t.src, "big.bin", &bytes(MB5, 12), 0o644, some_mtime(12));
    let room = 1_000_000 + 123;
    let (mut a, mut b) = pair(None);
    let (s, r) = (send_opts(std::slice::from_ref(&file)), recv_opts(&t.dst, false));
    let full = |f: File| -> Box<dyn PartSink> { Box::new(FullDisk { file: f, room }) };
    let (sent, received) = tokio::join!(send_files(&mut a, &s), recv_files_with(&mut b, &r, &full));
    let (sent, received) = (sent.unwrap_err(), received.unwrap_err());
    assert_eq!(received.exit_code(), EXIT_IO);
    assert!(matches!(received, TransferError::DiskFull { .. }), "{received:?}");
    let part = part_files(&t.dst).pop().unwrap();
    assert_eq!(
        received.to_string(),
        format!("disk full writing {}: free space and run strand recv again to resume", part.display())
    );
    assert_eq!(sent.exit_code(), EXIT_IO);
    assert!(
        sent.to_string().starts_with("the receiver could not store \"big.bin\": disk full writing"),
        "{sent}"
    );
    assert_eq!(fs::metadata(&part).unwrap().len(), room, "the partial file is kept");
    assert!(!t.dst.join("big.bin").exists());

    let (sent, received) = transfer(std::slice::from_ref(&file), &t.dst, false, None).await;
    assert_eq!(sent.unwrap().bytes_skipped, room);
    assert_eq!(received.unwrap().bytes_resumed, room);
    assert_same_file(&file, &t.dst.join("big.bin"));
}

#[tokio::test]
async fn garbage_or_another_version_is_a_clear_protocol_error() {
    let t = setup();
    // Garbage instead of HELLO, to each side.
    for garbage in [&b"SSH-2.0-OpenSSH_9.6\r\n"[..], &[], &[0xff; 70_000]] {
        let (mut peer, mut b) = pair(None);
        let opts = recv_opts(&t.dst, false);
        let (_, result) = tokio::join!(peer.inject(garbage), recv_files(&mut b, &opts));
        let error = result.unwrap_err();
        assert_eq!(error.exit_code(), EXIT_PEER);
        assert!(matches!(error, TransferError::NotStrand { .. }), "{error:?}");
        assert!(error.to_string().contains("run strand send on the other end"), "{error}");
    }
    // Another version.
    let (a, mut b) = pair(None);
    let mut peer = Raw(a);
    let hello = Message::Hello(Hello { version: PROTOCOL_VERSION + 1, ..Hello::ours(Role::Receiver) });
    let file = write_file(&t.src, "f", b"x", 0o644, some_mtime(13));
    let opts = send_opts(&[file]);
    let (_, result) = tokio::join!(peer.send(&hello), send_files(&mut b, &opts));
    let error = result.unwrap_err();
    assert_eq!(error.exit_code(), EXIT_PEER);
    assert_eq!(
        error.to_string(),
        format!(
            "the peer speaks file-transfer protocol version {}, this strand speaks {PROTOCOL_VERSION}: \
             install the same strand version on both ends",
            PROTOCOL_VERSION + 1
        )
    );
    // An unknown message type after HELLO: the receiver stops and tells the sender why.
    let (a, mut b) = pair(None);
    let mut peer = Raw(a);
    let opts = recv_opts(&t.dst, false);
    let script = async {
        peer.hello(Role::Sender).await;
        peer.0.send(&[200, 1, 2, 3]).await.unwrap();
        peer.recv().await
    };
    let (reply, result) = tokio::join!(script, recv_files(&mut b, &opts));
    let error = result.unwrap_err();
    assert_eq!(error.exit_code(), EXIT_PEER);
    assert!(error.to_string().starts_with("protocol error: the peer sent an undecodable packet"), "{error}");
    assert!(matches!(reply, Message::Abort { .. }), "{reply:?}");
    assert!(listing(&t.dst).is_empty());
}

#[tokio::test]
async fn data_out_of_order_is_a_protocol_error() {
    let t = setup();
    let (a, mut b) = pair(None);
    let mut peer = Raw(a);
    let opts = recv_opts(&t.dst, false);
    let content = b"hello world";
    let script = async {
        peer.hello(Role::Sender).await;
        let manifest = Manifest {
            name: "f".into(),
            size: content.len() as u64,
            mode: 0o644,
            mtime_secs: 0,
            mtime_nanos: 0,
            hash: *blake3::hash(content).as_bytes(),
        };
        peer.send(&Message::Offer(manifest)).await;
        assert_eq!(peer.recv().await, Message::Accept { offset: 0 });
        peer.send(&Message::Data { offset: 0, bytes: Chunk(content[..5].to_vec()) }).await;
        peer.send(&Message::Data { offset: 6, bytes: Chunk(content[6..].to_vec()) }).await;
        peer.recv().await
    };
    let (reply, result) = tokio::join!(script, recv_files(&mut b, &opts));
    let error = result.unwrap_err();
    assert_eq!(error.exit_code(), EXIT_PEER);
    assert!(error.to_string().contains("DATA of \"f\" at offset 6 where 5 was expected"), "{error}");
    assert!(matches!(reply, Message::Abort { .. }));
    assert!(!t.dst.join("f").exists());
}

#[tokio::test]
async fn random_packets_from_a_peer_never_panic() {
    let t = setup();
    let file = write_file(&t.src, "f", &bytes(70_000, 14), 0o644, some_mtime(14));
    for seed in 0..150u64 {
        // After HELLO, a few random packets (biased towards valid variant indices) to each side.
        let packets: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                let mut p = bytes(1 + (seed as usize * 7 + i) % 50, seed * 31 + i as u64);
                p[0] %= 14;
                p
            })
            .collect();
        let (a, mut b) = pair(None);
        let mut peer = Raw(a);
        let opts = recv_opts(&t.dst, false);
        let script = async {
            peer.hello(Role::Sender).await;
            for p in &packets {
                if peer.0.send(p).await.is_err() {
                    break;
                }
            }
            drop(peer);
        };
        let (_, result) = tokio::join!(script, recv_files(&mut b, &opts));
        assert!(result.is_err());

        let (a, mut b) = pair(None);
        let mut peer = Raw(a);
        let opts = send_opts(std::slice::from_ref(&file));
        let script = async {
            peer.hello(Role::Receiver).await;
            for p in &packets {
                if peer.0.send(p).await.is_err() {
                    break;
                }
            }
            drop(peer);
        };
        let (_, result) = tokio::join!(script, send_files(&mut b, &opts));
        assert!(result.is_err());
    }
}

#[tokio::test]
async fn a_directory_is_refused_before_anything_is_sent() {
    let t = setup();
    let (sent, received) = transfer(std::slice::from_ref(&t.src), &t.dst, false, None).await;
    let sent = sent.unwrap_err();
    assert_eq!(sent.exit_code(), EXIT_REFUSED);
    assert!(sent.to_string().contains("it is a directory"), "{sent}");
    let received = received.unwrap_err();
    assert!(matches!(received, TransferError::PeerAborted { .. }), "{received:?}");
    assert!(received.to_string().contains("it is a directory"), "{received}");
    assert!(listing(&t.dst).is_empty());
}

#[tokio::test]
async fn duplicate_names_and_a_missing_dir_are_usage_errors() {
    let t = setup();
    let one = write_file(&t.src, "same", b"1", 0o644, some_mtime(15));
    fs::create_dir(t.src.join("sub")).unwrap();
    let two = write_file(&t.src.join("sub"), "same", b"2", 0o644, some_mtime(15));
    let (sent, _) = transfer(&[one.clone(), two], &t.dst, false, None).await;
    assert!(matches!(sent.unwrap_err(), TransferError::DuplicateName { .. }));

    let missing = t.dst.join("nope");
    let (sent, received) = transfer(&[one], &missing, false, None).await;
    let received = received.unwrap_err();
    assert_eq!(received.exit_code(), EXIT_REFUSED);
    assert!(
        received.to_string().ends_with("it does not exist; create it or pass another --dir"),
        "{received}"
    );
    assert!(matches!(sent.unwrap_err(), TransferError::PeerAborted { .. }));
}

#[tokio::test]
async fn two_senders_are_told_to_run_recv() {
    let t = setup();
    let file = write_file(&t.src, "f", b"x", 0o644, some_mtime(16));
    let (mut a, mut b) = pair(None);
    let opts = send_opts(&[file]);
    let (x, y) = tokio::join!(send_files(&mut a, &opts), send_files(&mut b, &opts));
    for e in [x.unwrap_err(), y.unwrap_err()] {
        assert_eq!(e.to_string(), "the peer is running strand send too: run strand recv on the other end");
    }
}

#[tokio::test]
async fn several_problems_report_the_first_and_count_the_rest() {
    let t = setup();
    let files: Vec<PathBuf> =
        (0..3).map(|i| write_file(&t.src, &format!("f{i}"), b"new", 0o644, some_mtime(17))).collect();
    for i in 0..2 {
        write_file(&t.dst, &format!("f{i}"), b"old", 0o644, some_mtime(17));
    }
    let (sent, received) = transfer(&files, &t.dst, false, None).await;
    let received = received.unwrap_err();
    assert!(received
        .to_string()
        .ends_with("pass --overwrite to replace it (and 1 more failed; see the log)"));
    assert_eq!(received.exit_code(), EXIT_REFUSED);
    assert_eq!(sent.unwrap_err().exit_code(), EXIT_REFUSED);
    assert_eq!(fs::read(t.dst.join("f2")).unwrap(), b"new");
}

// ---------------------------------------------------------------------------------------------
// Spool mode (`strand spool`)

/// Sends `names` (relative to `src`) in spool mode into `dst`, over a link cut after `cut_after`.
async fn spool(src: &Path, names: &[&str], dst: &Path, cut_after: Option<usize>) -> Both {
    let (mut a, mut b) = pair(cut_after);
    let s = SendOptions {
        files: names.iter().map(|n| src.join(n)).collect(),
        progress: false,
        spool_names: names.iter().map(|n| n.to_string()).collect(),
    };
    let r = RecvOptions {
        dir: dst.to_path_buf(),
        overwrite: false,
        progress: false,
        spool: true,
        ordered: false,
    };
    tokio::join!(send_files(&mut a, &s), recv_files(&mut b, &r))
}

fn spool_file(dir: &Path, name: &str, content: &[u8]) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, content).unwrap();
}

#[tokio::test]
async fn spool_packets_keep_their_path_and_leave_the_sender_once_confirmed() {
    let t = setup();
    let names = ["BOB/ALICE/P1", "BOB/ALICE/P2", "CAROL/ALICE/P3"];
    for (i, n) in names.iter().enumerate() {
        spool_file(&t.src, n, &bytes(100_000 + i, i as u64));
    }
    let (sent, received) = spool(&t.src, &names, &t.dst, None).await;
    let (sent, received) = (sent.unwrap(), received.unwrap());
    assert_eq!((sent.files, sent.removed), (3, 3));
    assert_eq!(received.files.len(), 3);
    for (i, n) in names.iter().enumerate() {
        assert_eq!(fs::read(t.dst.join(n)).unwrap(), bytes(100_000 + i, i as u64), "{n}");
        assert!(!t.src.join(n).exists(), "{n} deleted on the sender after DONE");
    }
    assert!(t.src.join("BOB/ALICE").is_dir(), "the sender's directories stay (nncp-xfer -tx needs them)");
    let journal = fs::read_to_string(t.dst.join(SPOOL_STATE_DIR).join("received")).unwrap();
    assert_eq!(journal.lines().count(), 3, "{journal}");

    // A consumer takes the packets away; the sender was stopped before deleting one and offers it
    // again: it is answered HAVE, not delivered twice, and deleted on the sender.
    fs::remove_file(t.dst.join(names[0])).unwrap();
    spool_file(&t.src, names[0], &bytes(100_000, 0));
    let (sent, received) = spool(&t.src, &names[..1], &t.dst, None).await;
    let (sent, received) = (sent.unwrap(), received.unwrap());
    assert_eq!((sent.files, sent.bytes_sent, sent.removed), (1, 0, 1));
    assert!(received.files.is_empty() && received.already_had.len() == 1);
    assert!(!t.dst.join(names[0]).exists(), "not delivered again after the consumer took it");
    assert!(!t.src.join(names[0]).exists());
}

#[tokio::test]
async fn spool_sender_keeps_what_was_not_confirmed_and_the_next_run_resumes() {
    let t = setup();
    let names = ["R/S/small", "R/S/big"];
    spool_file(&t.src, names[0], &bytes(1000, 1));
    spool_file(&t.src, names[1], &bytes(MB5, 2));
    let (sent, received) = spool(&t.src, &names, &t.dst, Some(40)).await;
    assert_eq!(sent.unwrap_err().exit_code(), EXIT_LINK_LOST);
    assert_eq!(received.unwrap_err().exit_code(), EXIT_LINK_LOST);
    assert!(!t.src.join(names[0]).exists(), "the confirmed packet is gone from the sender");
    assert!(t.src.join(names[1]).exists(), "the cut one stays");
    assert!(!t.dst.join(names[1]).exists(), "and has not appeared");
    let (sent, received) = spool(&t.src, &names[1..], &t.dst, None).await;
    let (sent, received) = (sent.unwrap(), received.unwrap());
    assert!(sent.bytes_sent < MB5 as u64 && received.bytes_resumed > 0, "resumed");
    assert_eq!(fs::read(t.dst.join(names[1])).unwrap(), bytes(MB5, 2));
    assert!(!t.src.join(names[1]).exists());
}

#[tokio::test]
async fn spool_receiver_finishes_a_rename_a_crash_interrupted() {
    let t = setup();
    let content = bytes(5000, 9);
    spool_file(&t.src, "R/S/P", &content);
    // The state a crash leaves between the journal record and the rename.
    let hash = *blake3::hash(&content).as_bytes();
    let part = t.dst.join(PARTIAL_DIR).join(format!("{}.part", blake3::Hash::from_bytes(hash).to_hex()));
    fs::create_dir_all(part.parent().unwrap()).unwrap();
    fs::write(&part, &content).unwrap();
    super::journal::Journal::open(&t.dst).unwrap().record("R/S/P", &hash).unwrap();
    let (sent, received) = spool(&t.src, &["R/S/P"], &t.dst, None).await;
    assert_eq!(sent.unwrap().bytes_sent, 0);
    assert_eq!(received.unwrap().already_had.len(), 1);
    assert_eq!(fs::read(t.dst.join("R/S/P")).unwrap(), content, "placed on recovery");
    assert!(!part.exists());
}

#[tokio::test]
async fn spool_never_replaces_a_different_file() {
    let t = setup();
    spool_file(&t.src, "R/S/P", b"new");
    spool_file(&t.dst, "R/S/P", b"old");
    let (sent, received) = spool(&t.src, &["R/S/P"], &t.dst, None).await;
    assert_eq!(sent.unwrap_err().exit_code(), EXIT_REFUSED);
    assert_eq!(received.unwrap_err().exit_code(), EXIT_REFUSED);
    assert_eq!(fs::read(t.dst.join("R/S/P")).unwrap(), b"old");
    assert!(t.src.join("R/S/P").exists(), "a refused packet stays on the sender");
}

#[tokio::test]
async fn ordered_spool_takes_packets_only_in_sequence() {
    let t = setup();
    let names = ["R/S/000000000001.a", "R/S/000000000003.c", "R/S/000000000002.b"];
    for (i, n) in names.iter().enumerate() {
        spool_file(&t.src, n, &bytes(1000, i as u64));
    }
    let ordered = |names: &[&str]| {
        let (s, r) = (
            SendOptions {
                files: names.iter().map(|n| t.src.join(n)).collect(),
                progress: false,
                spool_names: names.iter().map(|n| n.to_string()).collect(),
            },
            RecvOptions { dir: t.dst.clone(), overwrite: false, progress: false, spool: true, ordered: true },
        );
        async move {
            let (mut a, mut b) = pair(None);
            tokio::join!(send_files(&mut a, &s), recv_files(&mut b, &r))
        }
    };
    // 1, then 3 (a gap: refused, kept by the sender), then 2.
    let (sent, received) = ordered(&names).await;
    assert_eq!(sent.unwrap_err().exit_code(), EXIT_REFUSED);
    let e = received.unwrap_err();
    assert!(e.to_string().contains("number 3 of \"R/S\", and number 2 is the next one due"), "{e}");
    assert!(t.dst.join(names[0]).exists() && t.dst.join(names[2]).exists());
    assert!(!t.dst.join(names[1]).exists() && t.src.join(names[1]).exists(), "3 waited");
    // Next session: 3 is due now.
    let (sent, received) = ordered(&names[1..2]).await;
    assert_eq!((sent.unwrap().removed, received.unwrap().files.len()), (1, 1));
    // A name without a sequence number is refused in ordered mode.
    spool_file(&t.src, "R/S/plain", b"x");
    let (sent, _) = ordered(&["R/S/plain"]).await;
    assert_eq!(sent.unwrap_err().exit_code(), EXIT_REFUSED);
}
