//! The store's files on disk: `meta`, the journal lines, the `placing`
//! marker, and reading them back when the store opens.

use super::*;

/// Length and BLAKE3 of a file.
pub(super) fn hash_file(path: &Path) -> io::Result<(u64, [u8; 32])> {
    let mut f = File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((len, *h.finalize().as_bytes()));
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
}

pub(super) fn parse_dir_name(s: &str) -> Option<ObjectKey> {
    let (session, object) = s.split_once('-')?;
    Some(ObjectKey { session: u32::from_str_radix(session, 16).ok()?, object: object.parse().ok()? })
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A manifest as one line: `object objects size mode mtime hash name`, the
/// hash `-` while unknown (safe_name has no control characters, so the name
/// is the rest of the line).
pub(super) fn manifest_line(m: &Manifest) -> String {
    let hash = m.hash.as_ref().map_or_else(|| "-".to_string(), |h| hex(h));
    format!("{} {} {} {} {} {hash} {}", m.object, m.objects, m.size, m.mode, m.mtime, m.name)
}

/// Spool mode: marks an object's directory as placing its `part` as
/// `manifest` (written and synced, with its directory, before the journal
/// record that follows it).
pub(super) fn write_placing(dir: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    let path = dir.join(PLACING);
    let write = || -> io::Result<()> {
        let mut f = File::create(&path)?;
        f.write_all(format!("{}\n", manifest_line(manifest)).as_bytes())?;
        f.sync_all()?;
        File::open(dir)?.sync_all()
    };
    write().map_err(io_err(|| format!("cannot write {}", path.display())))
}

/// Rewrites an object's meta file atomically.
pub(super) fn write_meta(p: &Pending) -> Result<(), StoreError> {
    let mut s = format!("{META_MAGIC}\n");
    if let Some(l) = p.layout {
        s += &format!("layout {} {} {} {} {}\n", l.code as u8, l.size, l.symbol_size, l.block_max, l.repair);
    }
    if let Some(m) = &p.manifest {
        s += &format!("manifest {}\n", manifest_line(m));
    }
    let blocks: Vec<String> = p.decoded.iter().map(u16::to_string).collect();
    s += &format!("decoded {}\n", blocks.join(" "));
    let (tmp, path) = (p.dir.join("meta.tmp"), p.dir.join("meta"));
    fs::write(&tmp, s).map_err(io_err(|| format!("cannot write {}", tmp.display())))?;
    fs::rename(&tmp, &path).map_err(io_err(|| format!("cannot write {}", path.display())))
}

/// Reads an object directory; `None` if it has no usable meta file.
pub(super) fn load(dir: &Path) -> io::Result<Option<Pending>> {
    let Ok(text) = fs::read_to_string(dir.join("meta")) else { return Ok(None) };
    let mut lines = text.lines();
    if lines.next() != Some(META_MAGIC) {
        return Ok(None);
    }
    let mut p = Pending { dir: dir.to_path_buf(), ..Pending::default() };
    for line in lines {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "layout" => p.layout = parse_layout(rest).filter(Layout::valid),
            "manifest" => p.manifest = parse_manifest(rest),
            "decoded" => p.decoded = rest.split_whitespace().filter_map(|b| b.parse().ok()).collect(),
            _ => {}
        }
    }
    let Some(layout) = p.layout else { return Ok(None) };
    p.decoded.retain(|&b| u64::from(b) < layout.blocks());
    // The spool: whole records only; a tail cut by a crash is truncated away.
    let spool = dir.join("spool");
    if let Ok(f) = File::open(&spool) {
        let mut r = BufReader::new(f);
        let mut at = 0u64;
        let mut head = [0u8; RECORD_HEADER];
        loop {
            if r.read_exact(&mut head).is_err() {
                break;
            }
            let block = u16::from_le_bytes([head[0], head[1]]);
            let esi = u16::from_le_bytes([head[2], head[3]]);
            let len = u16::from_le_bytes([head[4], head[5]]);
            let mut skip = vec![0u8; usize::from(len)];
            if r.read_exact(&mut skip).is_err() {
                break;
            }
            let k = layout.block_symbols(block).unwrap_or(0);
            if !p.decoded.contains(&block) && u64::from(block) < layout.blocks() {
                if len == 0 && u32::from(esi) < k {
                    // A source symbol, in `part`.
                    let t = layout.symbol_size;
                    let offset = layout.block_offset(block) + u64::from(esi) * u64::from(t);
                    p.index.entry(block).or_default().push(SpoolEntry {
                        esi,
                        offset,
                        len: t,
                        in_part: true,
                        bytes: None,
                    });
                    p.in_part.entry(block).or_default().insert(esi);
                } else if len > 0 {
                    p.index.entry(block).or_default().push(SpoolEntry {
                        esi,
                        offset: at + RECORD_HEADER as u64,
                        len,
                        in_part: false,
                        bytes: None,
                    });
                }
            }
            at += (RECORD_HEADER + usize::from(len)) as u64;
        }
        let f = OpenOptions::new().append(true).read(true).open(&spool)?;
        if f.metadata()?.len() != at {
            f.set_len(at)?;
        }
        p.spool_len = at;
        p.spool = Some(BufWriter::with_capacity(SPOOL_BUFFER, f));
    }
    Ok(Some(p))
}

pub(super) fn parse_layout(s: &str) -> Option<Layout> {
    let v: Vec<u64> = s.split_whitespace().map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let [code, size, symbol, block_max, repair] = v[..] else { return None };
    Some(Layout {
        code: CodeId::from_u8(u8::try_from(code).ok()?)?,
        size,
        symbol_size: u16::try_from(symbol).ok()?,
        block_max: u16::try_from(block_max).ok()?,
        repair: u16::try_from(repair).ok()?,
    })
}

pub(super) fn parse_manifest(s: &str) -> Option<Manifest> {
    let mut it = s.splitn(7, ' ');
    let mut num = || it.next()?.parse::<u64>().ok();
    let (object, objects, size, mode, mtime) = (num()?, num()?, num()?, num()?, num()?);
    let hash = match it.next()? {
        "-" => None,
        h => Some(unhex(h)?),
    };
    let name = it.next()?.to_string();
    safe_name(&name).then_some(Manifest {
        object: u16::try_from(object).ok()?,
        objects: u16::try_from(objects).ok()?,
        size,
        mode: u32::try_from(mode).ok()?,
        mtime,
        hash,
        name,
    })
}

/// A journal line after its time: `SESSION` then a manifest line.
pub(super) fn parse_journal(s: &str) -> Option<(ObjectKey, Manifest)> {
    let (session, rest) = s.split_once(' ')?;
    let m = parse_manifest(rest).filter(|m| m.hash.is_some())?;
    Some((ObjectKey { session: u32::from_str_radix(session, 16).ok()?, object: m.object }, m))
}
