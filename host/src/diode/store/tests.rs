//! The disk store's tests: restarts, resume, publishing and spool mode.

use super::*;

const KEEP: Duration = Duration::from_secs(7 * 86_400);

fn layout() -> Layout {
    Layout::choose(10_000, 1000).unwrap()
}

fn manifest(bytes: &[u8], name: &str) -> Manifest {
    Manifest {
        object: 0,
        objects: 1,
        size: bytes.len() as u64,
        mode: 0o640,
        mtime: 1_700_000_000,
        hash: Some(*blake3::hash(bytes).as_bytes()),
        name: name.into(),
    }
}

#[test]
fn symbols_blocks_and_manifest_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = ObjectKey { session: 0xabc, object: 3 };
    let l = layout();
    // Source symbols 4 and 9 are the object's own bytes; a repair symbol goes to the spool.
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i / 1000) as u8).collect();
    {
        let (mut s, r) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        assert!(r.partial.is_empty());
        s.put_symbol(key, &l, 0, 4, &bytes[4000..5000]).unwrap();
        s.put_symbol(key, &l, 0, 9, &bytes[9000..]).unwrap();
        s.put_symbol(key, &l, 0, 12, &[0xAB; 1000]).unwrap();
        s.remember_manifest(key, &manifest(&bytes, "x/y")).unwrap();
    }
    // A torn record at the end is cut, the rest kept.
    let spool = dir.path().join(WORK_DIR).join("00000abc-3/spool");
    let mut f = OpenOptions::new().append(true).open(&spool).unwrap();
    f.write_all(&[0, 0, 1, 0, 0xe8]).unwrap();
    let (mut s, r) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    let r = r.partial;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].key, key);
    assert_eq!(r[0].layout, Some(l));
    assert_eq!(r[0].manifest.as_ref().map(|m| m.name.as_str()), Some("x/y"));
    let mut syms = r[0].symbols.clone();
    syms.sort();
    assert_eq!(syms, vec![(0, 4), (0, 9), (0, 12)]);
    let mut got = s.take_symbols(key, 0).unwrap();
    got.sort();
    assert_eq!(got, vec![(4, vec![4; 1000]), (9, vec![9; 1000]), (12, vec![0xAB; 1000])]);
    s.put_block(key, &l, 0, &bytes).unwrap();
    assert!(s.commit(key, &manifest(&bytes, "x/y")).unwrap());
    assert_eq!(fs::read(dir.path().join("x/y")).unwrap(), bytes);
    assert!(!dir.path().join(WORK_DIR).join("00000abc-3").exists());
    // The journal makes a restarted store count it complete.
    let (_, r) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    assert_eq!(r.complete.len(), 1);
    assert_eq!((r.complete[0].0, r.complete[0].1.name.as_str()), (key, "x/y"));
    // ... as long as the file is there.
    fs::remove_file(dir.path().join("x/y")).unwrap();
    assert!(DiskStore::open(dir.path(), false, KEEP).unwrap().1.complete.is_empty());
}

#[test]
fn received_files_get_the_umask_and_are_never_world_writable() {
    assert_eq!(received_mode(0o777, 0o022), 0o755);
    assert_eq!(received_mode(0o777, 0), 0o775);
    assert_eq!(received_mode(0o644, 0o022), 0o644);
    assert_eq!(received_mode(0o600, 0o022), 0o644);
    assert_eq!(received_mode(0o4777, 0o077), 0o700);
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    let key = ObjectKey { session: 1, object: 0 };
    let bytes = vec![3u8; 10_000];
    s.put_block(key, &layout(), 0, &bytes).unwrap();
    let m = Manifest { mode: 0o777, ..manifest(&bytes, "exe") };
    assert!(s.commit(key, &m).unwrap());
    let mode = fs::metadata(dir.path().join("exe")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, received_mode(0o777, process_umask()));
    assert_eq!(mode & 0o002, 0);
}

#[test]
fn stale_partial_objects_expire() {
    let dir = tempfile::tempdir().unwrap();
    let key = ObjectKey { session: 5, object: 0 };
    {
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        s.put_symbol(key, &layout(), 0, 1, &[1; 1000]).unwrap();
    }
    // Kept for a week: still there.
    assert_eq!(DiskStore::open(dir.path(), false, KEEP).unwrap().1.partial.len(), 1);
    // Age its files by two days, keep for one: removed and counted.
    let old = SystemTime::now() - Duration::from_secs(2 * 86_400);
    for f in ["meta", "spool", "part"] {
        let f =
            File::options().write(true).open(dir.path().join(WORK_DIR).join("00000005-0").join(f)).unwrap();
        f.set_modified(old).unwrap();
    }
    let (_, opened) = DiskStore::open(dir.path(), false, Duration::from_secs(86_400)).unwrap();
    assert_eq!((opened.partial.len(), opened.expired), (0, 1));
    assert!(!dir.path().join(WORK_DIR).join("00000005-0").exists());
}

#[test]
fn content_already_in_dir_is_recognised_by_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    let bytes = vec![9u8; 5000];
    assert!(!s.already_have(&manifest(&bytes, "a")).unwrap());
    fs::write(dir.path().join("a"), &bytes).unwrap();
    assert!(s.already_have(&manifest(&bytes, "a")).unwrap());
    assert!(!s.already_have(&manifest(&[1u8; 5000], "a")).unwrap());
    assert!(!s.already_have(&Manifest { hash: None, ..manifest(&bytes, "a") }).unwrap());
}

#[test]
fn wrong_hash_is_not_published_and_existing_files_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    let l = layout();
    let key = ObjectKey { session: 1, object: 0 };
    let bytes = vec![5u8; 10_000];
    s.put_block(key, &l, 0, &bytes).unwrap();
    assert!(!s.commit(key, &manifest(&[6u8; 10_000], "f")).unwrap());
    assert!(!dir.path().join("f").exists());
    fs::write(dir.path().join("f"), b"other").unwrap();
    assert!(matches!(s.commit(key, &manifest(&bytes, "f")), Err(StoreError::Exists(_))));
    assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"other");
    // The same content already there counts as done.
    fs::write(dir.path().join("f"), &bytes).unwrap();
    assert!(s.commit(key, &manifest(&bytes, "f")).unwrap());
}

#[test]
fn names_through_a_symlinked_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("sneaky")).unwrap();
    let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    let key = ObjectKey { session: 1, object: 0 };
    let bytes = vec![1u8; 10];
    s.put_block(key, &Layout::choose(10, 10).unwrap(), 0, &bytes).unwrap();
    assert!(matches!(s.commit(key, &manifest(&bytes, "sneaky/f")), Err(StoreError::Outside(_))));
    assert!(!elsewhere.path().join("f").exists());
}

/// A whole object `bytes` of session `session`, ready to commit.
fn object(s: &mut DiskStore, session: u32, bytes: &[u8]) -> ObjectKey {
    let key = ObjectKey { session, object: 0 };
    s.put_block(key, &Layout::choose(bytes.len() as u64, 1000).unwrap(), 0, bytes).unwrap();
    key
}

#[test]
fn a_spool_places_a_packet_once_even_after_a_consumer_took_it() {
    let dir = tempfile::tempdir().unwrap();
    let name = "BOB/ALICE/PKT";
    let bytes = vec![7u8; 3000];
    let m = manifest(&bytes, name);
    {
        let (mut s, _) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
        assert!(!s.already_have(&m).unwrap());
        let key = object(&mut s, 1, &bytes);
        assert!(s.commit(key, &m).unwrap());
    }
    assert_eq!(fs::read(dir.path().join(name)).unwrap(), bytes);
    let journal = dir.path().join(crate::transfer::SPOOL_STATE_DIR).join("received");
    assert!(fs::read_to_string(&journal).unwrap().contains(name), "journalled");
    // nncp-xfer -rx takes it away; the sender sends it again (another session).
    fs::remove_file(dir.path().join(name)).unwrap();
    let (mut s, _) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
    assert!(s.already_have(&m).unwrap(), "known by its hash before a symbol is needed");
    let key = object(&mut s, 2, &bytes);
    assert!(s.commit(key, &m).unwrap(), "counts as complete");
    assert!(!dir.path().join(name).exists(), "placed a second time");
    assert!(!dir.path().join(WORK_DIR).join("00000002-0").exists());
    // Another content under that name is another packet.
    let other = vec![8u8; 3000];
    let key = object(&mut s, 3, &other);
    assert!(s.commit(key, &manifest(&other, name)).unwrap());
    assert_eq!(fs::read(dir.path().join(name)).unwrap(), other);
}

#[test]
fn a_spool_refuses_names_that_are_not_packets_and_never_replaces_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
    let bytes = vec![1u8; 100];
    for bad in ["A/B/C/D", ".strand-spool/received", "R/.x/P", "R/S/nncpxfer42", "R/S/a\u{202e}b"] {
        let key = object(&mut s, 9, &bytes);
        let e = s.commit(key, &manifest(&bytes, bad)).unwrap_err();
        assert!(matches!(e, StoreError::NotAPacket { .. }) && e.recoverable(), "{bad:?}: {e}");
        s.discard(key).unwrap();
    }
    for bad in ["../x", "/etc/x", "R/../../x"] {
        let key = object(&mut s, 9, &bytes);
        assert!(matches!(s.commit(key, &manifest(&bytes, bad)), Err(StoreError::Outside(_))), "{bad:?}");
        s.discard(key).unwrap();
    }
    fs::create_dir_all(dir.path().join("R/S")).unwrap();
    fs::write(dir.path().join("R/S/P"), b"someone else's").unwrap();
    let key = object(&mut s, 10, &bytes);
    let e = s.commit(key, &manifest(&bytes, "R/S/P")).unwrap_err();
    assert!(matches!(e, StoreError::Taken(_)) && e.recoverable(), "{e}");
    assert_eq!(fs::read(dir.path().join("R/S/P")).unwrap(), b"someone else's");
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names.len(), 3, "only R, .strand-diode and .strand-spool: {names:?}");
}

#[test]
fn a_placement_cut_by_a_stop_is_finished_when_the_spool_opens_again() {
    let dir = tempfile::tempdir().unwrap();
    let name = "BOB/ALICE/CUT";
    let bytes = vec![4u8; 5000];
    let m = manifest(&bytes, name);
    {
        // Stopped after the marker and the journal record, before the rename.
        let (mut s, _) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
        object(&mut s, 5, &bytes);
        s.flush().unwrap();
        let obj = dir.path().join(WORK_DIR).join("00000005-0");
        write_placing(&obj, &m).unwrap();
        s.record(name, blake3::hash(&bytes).as_bytes()).unwrap();
        s.objects.clear();
    }
    let (_, opened) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
    assert_eq!((opened.placed, opened.partial.len()), (1, 0));
    assert_eq!(fs::read(dir.path().join(name)).unwrap(), bytes);
    assert!(!dir.path().join(WORK_DIR).join("00000005-0").exists());
    // Stopped after the rename, before the directory went: it just goes.
    let obj = dir.path().join(WORK_DIR).join("00000006-0");
    fs::create_dir_all(&obj).unwrap();
    write_placing(&obj, &m).unwrap();
    let (_, opened) = DiskStore::open_spool(dir.path(), KEEP).unwrap();
    assert_eq!((opened.placed, opened.partial.len()), (0, 0));
    assert!(!obj.exists());
    assert_eq!(fs::read(dir.path().join(name)).unwrap(), bytes);
}

/// An object of several GF(2^16) blocks of 500 symbols of 1400 bytes, and its bytes.
fn blocks_object(len: usize) -> (Layout, Vec<u8>) {
    let l = Layout { code: CodeId::Gf16, size: len as u64, symbol_size: 1400, block_max: 500, repair: 250 };
    assert!(l.valid() && l.blocks() > 2);
    (l, (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect())
}

/// Source symbol `esi` of block `b`, zero-padded as on the wire.
fn symbol(l: &Layout, bytes: &[u8], b: u16, esi: u16) -> Vec<u8> {
    let at = (l.block_offset(b) + u64::from(esi) * 1400) as usize;
    let mut v = bytes[at..(at + 1400).min(bytes.len())].to_vec();
    v.resize(1400, 0);
    v
}

#[test]
fn commit_reads_back_only_the_edges_of_blocks_hashed_as_they_completed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    let (l, bytes) = blocks_object(3_000_000);
    let key = ObjectKey { session: 7, object: 0 };
    for b in 0..l.blocks() as u16 {
        let k = l.block_symbols(b).unwrap() as u16;
        if b == 1 {
            // This block loses every seventh source symbol and is decoded:
            // the decoder's output goes in with put_block.
            for esi in (0..k).filter(|e| e % 7 != 3) {
                s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
            }
            assert!(!s.source_complete(key, &l, b).unwrap());
            let at = l.block_offset(b);
            s.put_block(key, &l, at, &bytes[at as usize..(at + l.block_bytes(b)) as usize]).unwrap();
            continue;
        }
        for esi in 0..k {
            s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
        }
        assert!(s.source_complete(key, &l, b).unwrap());
    }
    assert!(s.commit(key, &manifest(&bytes, "big")).unwrap());
    assert_eq!(fs::read(dir.path().join("big")).unwrap(), bytes);
    // The check read back at most the chunk across each edge between two
    // blocks, not the file.
    assert!(s.read_back <= l.blocks() * 1024, "{} bytes read back", s.read_back);
}

#[test]
fn after_a_restart_the_hash_reads_back_what_the_earlier_run_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let (l, bytes) = blocks_object(2_500_000);
    let key = ObjectKey { session: 8, object: 0 };
    let put = |s: &mut DiskStore, b: u16| {
        for esi in 0..l.block_symbols(b).unwrap() as u16 {
            s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
        }
        assert!(s.source_complete(key, &l, b).unwrap());
    };
    {
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        put(&mut s, 0);
        put(&mut s, 1);
    }
    let (mut s, opened) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    assert_eq!(opened.partial[0].decoded, vec![0, 1]);
    for b in 2..l.blocks() as u16 {
        put(&mut s, b);
    }
    assert!(s.commit(key, &manifest(&bytes, "resumed")).unwrap());
    assert_eq!(fs::read(dir.path().join("resumed")).unwrap(), bytes);
    let earlier = l.block_offset(2);
    assert!(s.read_back >= earlier, "{} of {earlier}", s.read_back);
    // And a part that differs from what was hashed as written is caught:
    // the hash is of the bytes in the file.
    let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    let key = ObjectKey { session: 9, object: 0 };
    for b in 0..l.blocks() as u16 {
        for esi in 0..l.block_symbols(b).unwrap() as u16 {
            s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
        }
        assert!(s.source_complete(key, &l, b).unwrap());
    }
    let part = s.objects[&key].dir.join("part");
    OpenOptions::new().write(true).open(&part).unwrap().write_all_at(b"X", 1_000_000).unwrap();
    s.objects.get_mut(&key).unwrap().tree = None;
    assert!(!s.commit(key, &manifest(&bytes, "damaged")).unwrap());
}

#[test]
fn blocks_decoded_on_the_workers_are_in_place_and_hashed_before_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    let (l, bytes) = blocks_object(3_000_000);
    let key = ObjectKey { session: 11, object: 0 };
    let mut codec = strand_link::diode::Codec::default();
    for b in 0..l.blocks() as u16 {
        let k = l.block_symbols(b).unwrap() as u16;
        let at = l.block_offset(b) as usize;
        let repair = codec.encode_repair(&l, b, &bytes[at..at + l.block_bytes(b) as usize]).unwrap();
        // One source symbol in five lost, made up by as many repair symbols.
        let lost: Vec<u16> = (0..k).filter(|e| e % 5 == 2).collect();
        for esi in (0..k).filter(|e| e % 5 != 2) {
            s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
        }
        for j in 0..lost.len() {
            s.put_symbol(key, &l, b, k + j as u16, &repair[j * 1400..][..1400]).unwrap();
        }
        assert!(s.decode_later(key, &l, b).unwrap(), "taken by a worker");
    }
    assert!(s.commit(key, &manifest(&bytes, "decoded")).unwrap());
    assert_eq!(fs::read(dir.path().join("decoded")).unwrap(), bytes);
    assert!(s.read_back <= l.blocks() * 1024, "{} bytes read back", s.read_back);
    assert_eq!(s.memory, 0, "the symbols held in memory went with the decode");

    // A block that cannot decode (too few symbols): nothing is published.
    let key = ObjectKey { session: 12, object: 0 };
    for b in 0..l.blocks() as u16 {
        let k = l.block_symbols(b).unwrap() as u16;
        let from = if b == 2 { 1 } else { 0 };
        for esi in from..k {
            s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
        }
        if b == 2 {
            assert!(s.decode_later(key, &l, b).unwrap());
        } else {
            assert!(s.source_complete(key, &l, b).unwrap());
        }
    }
    assert!(!s.commit(key, &manifest(&bytes, "short")).unwrap());
    assert!(!dir.path().join("short").exists());
}

#[test]
fn a_decode_that_disagrees_with_the_symbols_in_part_is_checked_against_part() {
    // More than k symbols, one source symbol damaged and taken last: the
    // decoder rebuilds that position from the repair symbol instead, so
    // the decoded block is not what `part` holds. The hash must be of
    // `part`: with the manifest of the true bytes, nothing is published.
    // A restart in between, so nothing of the block was hashed as it came.
    let dir = tempfile::tempdir().unwrap();
    let (l, bytes) = blocks_object(1_500_000);
    let key = ObjectKey { session: 14, object: 0 };
    {
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        let mut codec = strand_link::diode::Codec::default();
        for b in 0..l.blocks() as u16 {
            let k = l.block_symbols(b).unwrap() as u16;
            for esi in (0..k).filter(|&e| b != 1 || e != 5) {
                s.put_symbol(key, &l, b, esi, &symbol(&l, &bytes, b, esi)).unwrap();
            }
            if b == 1 {
                let at = l.block_offset(b) as usize;
                let repair = codec.encode_repair(&l, b, &bytes[at..at + l.block_bytes(b) as usize]).unwrap();
                s.put_symbol(key, &l, b, k, &repair[..1400]).unwrap();
                s.put_symbol(key, &l, b, 5, &[0xEE; 1400]).unwrap();
            }
        }
    }
    let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    for b in 0..l.blocks() as u16 {
        if b == 1 {
            assert!(s.decode_later(key, &l, b).unwrap());
        } else {
            assert!(s.source_complete(key, &l, b).unwrap());
        }
    }
    assert!(!s.commit(key, &manifest(&bytes, "true")).unwrap());
    assert!(!dir.path().join("true").exists());
}

#[test]
fn a_decode_under_way_when_the_store_closes_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (l, bytes) = blocks_object(2_000_000);
    let key = ObjectKey { session: 13, object: 0 };
    {
        let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
        let k = l.block_symbols(0).unwrap() as u16;
        let repair = strand_link::diode::Codec::default()
            .encode_repair(&l, 0, &bytes[..l.block_bytes(0) as usize])
            .unwrap();
        for esi in 1..k {
            s.put_symbol(key, &l, 0, esi, &symbol(&l, &bytes, 0, esi)).unwrap();
        }
        s.put_symbol(key, &l, 0, k, &repair[..1400]).unwrap();
        assert!(s.decode_later(key, &l, 0).unwrap());
    }
    let (_, opened) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    assert_eq!(opened.partial[0].decoded, vec![0]);
    let part = fs::read(dir.path().join(WORK_DIR).join("0000000d-0").join("part")).unwrap();
    assert_eq!(part[..l.block_bytes(0) as usize], bytes[..l.block_bytes(0) as usize]);
}

#[test]
fn empty_objects_are_published() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = DiskStore::open(dir.path(), false, KEEP).unwrap();
    assert!(s.commit(ObjectKey { session: 1, object: 0 }, &manifest(&[], "empty")).unwrap());
    assert_eq!(fs::read(dir.path().join("empty")).unwrap(), b"");
}
