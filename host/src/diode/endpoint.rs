//! LINK forms of `strand diode-tx` / `diode-rx`, and opening them for one
//! direction only: a sender never reads its line, a receiver never writes it.

use crate::address::Address;
use crate::config::{self, LinkEntry};
use crate::transport::{self, SerialSettings};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncWrite};

/// Where diode frames go or come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A serial device or pty: a byte stream, paced to the line rate.
    Serial(PathBuf),
    /// Datagrams to `HOST:PORT` (sender only).
    Udp(String),
    /// Datagrams received on `ADDR:PORT` (receiver only).
    UdpListen(String),
    /// Standard output (sender) or input (receiver): a byte stream.
    Stdio,
    /// A regular file: the sender writes the byte stream into it, the receiver reads it to its end.
    File(PathBuf),
}

/// Which side opens the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `diode-tx`.
    Tx,
    /// `diode-rx`.
    Rx,
}

impl Endpoint {
    /// Parses a LINK argument for `side` (the grammar of every LINK, `crate::address`), with a
    /// one-line hint when it is wrong or not a one-way link.
    pub fn parse(s: &str, side: Side) -> Result<Endpoint, String> {
        if s.trim().is_empty() {
            return Err(
                "empty link: name a serial device, udp:HOST:PORT (tx), udp-listen:PORT (rx), - or a file"
                    .into(),
            );
        }
        let path = match Address::parse(s).map_err(|e| e.to_string())? {
            Address::Stdio => return Ok(Endpoint::Stdio),
            Address::Udp(_) if side == Side::Rx => {
                return Err(format!("{s}: a receiver listens: write udp-listen:PORT or udp-listen:ADDR:PORT"))
            }
            Address::Udp(a) => return Ok(Endpoint::Udp(a)),
            Address::UdpListen(_) if side == Side::Tx => {
                return Err(format!("{s}: a sender sends: write udp:HOST:PORT"))
            }
            Address::UdpListen(a) => return Ok(Endpoint::UdpListen(a)),
            other @ (Address::Tcp(_)
            | Address::TcpListen(_)
            | Address::Exec(_)
            | Address::Unix(_)
            | Address::UnixListen(_)) => {
                let scheme = other.to_string().split(':').next().unwrap_or_default().to_string();
                return Err(format!(
                    "{s}: one-way transfer runs over a serial device, udp:, udp-listen:, - or a file, not {scheme}:"
                ));
            }
            Address::Serial(p) => p,
            // Resolved as a name by `resolve` already: here a file of that name.
            Address::Named(n) => PathBuf::from(n),
        };
        if is_device(&path) {
            return Ok(Endpoint::Serial(path));
        }
        if side == Side::Rx && !path.exists() {
            return Err(format!("no such file or device: {}", path.display()));
        }
        Ok(Endpoint::File(path))
    }

    /// Whether frames travel as a byte stream (COBS framing, optional in-frame FEC).
    pub fn is_stream(&self) -> bool {
        !matches!(self, Endpoint::Udp(_) | Endpoint::UdpListen(_))
    }
}

/// Resolves a LINK argument: an address, or a name from the config file
/// (`[links.NAME]`, whose `address` may be any diode LINK form, with `baud`
/// and `rate` used unless the command line gives them). A bare word is a name
/// first; one not in the config is an error for the sender (it would
/// otherwise create a file of that name: write `./NAME` for a file) and an
/// existing file for the receiver.
pub fn resolve(
    link: &str,
    side: Side,
    config_path: Option<&Path>,
) -> Result<(Endpoint, Option<LinkEntry>), String> {
    let s = link.trim();
    let bare = !s.is_empty() && !s.contains('/') && !s.contains(':') && s != "-" && s != "stdio";
    if !bare {
        return Endpoint::parse(s, side).map(|e| (e, None));
    }
    let (cfg, path) = config::load(config_path).map_err(|e| e.to_string())?;
    if let Some(entry) = cfg.links.get(s) {
        let ep =
            Endpoint::parse(&entry.address, side).map_err(|e| format!("link {s:?} in the config: {e}"))?;
        return Ok((ep, Some(entry.clone())));
    }
    if side == Side::Rx && Path::new(s).is_file() {
        return Ok((Endpoint::File(PathBuf::from(s)), None));
    }
    let file = path.map_or("the config file".to_string(), |p| p.display().to_string());
    Err(format!(
        "unknown link {s:?}: no [links.{s}] in {file}, and not a device, udp:HOST:PORT, udp-listen:PORT or -;          for a stream file in this directory write ./{s}"
    ))
}

/// A device path: under /dev, or a character device anywhere (a pty symlink).
fn is_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    path.starts_with("/dev") || std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

/// Where a sender writes.
pub enum Sink {
    /// A byte stream.
    Stream(Box<dyn AsyncWrite + Unpin + Send>),
    /// A UDP socket (blocking: a thread sends in batches) and the receiver's address.
    Udp(UdpSocket, std::net::SocketAddr),
}

/// Where a receiver reads.
pub enum Source {
    /// A byte stream; its end ends the run.
    Stream(Box<dyn AsyncRead + Unpin + Send>),
    /// A bound UDP socket (blocking: a thread receives in batches).
    Udp(UdpSocket),
}

/// Opens the sender's side.
pub async fn open_sink(ep: &Endpoint, serial: &SerialSettings) -> Result<Sink, String> {
    match ep {
        Endpoint::Serial(p) => {
            let d = transport::open(&Address::Serial(p.clone()), serial).await.map_err(|e| e.to_string())?;
            Ok(Sink::Stream(Box::new(d.duplex)))
        }
        Endpoint::Stdio => {
            Ok(Sink::Stream(Box::new(tokio::io::BufWriter::with_capacity(1 << 16, tokio::io::stdout()))))
        }
        Endpoint::File(p) => {
            let f = tokio::fs::File::create(p)
                .await
                .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
            Ok(Sink::Stream(Box::new(tokio::io::BufWriter::with_capacity(1 << 16, f))))
        }
        Endpoint::Udp(target) => {
            let addr = tokio::net::lookup_host(target)
                .await
                .map_err(|e| format!("udp:{target}: {e}"))?
                .next()
                .ok_or_else(|| format!("udp:{target}: no address"))?;
            let bind = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let s = UdpSocket::bind(bind).map_err(|e| format!("udp:{target}: {e}"))?;
            Ok(Sink::Udp(s, addr))
        }
        Endpoint::UdpListen(a) => Err(format!("udp-listen:{a} is for diode-rx")),
    }
}

/// Opens the receiver's side.
pub async fn open_source(ep: &Endpoint, serial: &SerialSettings) -> Result<Source, String> {
    match ep {
        Endpoint::Serial(p) => {
            let d = transport::open(&Address::Serial(p.clone()), serial).await.map_err(|e| e.to_string())?;
            Ok(Source::Stream(Box::new(d.duplex)))
        }
        Endpoint::Stdio => Ok(Source::Stream(Box::new(tokio::io::stdin()))),
        Endpoint::File(p) => {
            let f =
                tokio::fs::File::open(p).await.map_err(|e| format!("cannot open {}: {e}", p.display()))?;
            Ok(Source::Stream(Box::new(f)))
        }
        Endpoint::UdpListen(a) => {
            let s = UdpSocket::bind(a).map_err(|e| format!("udp-listen:{a}: {e}"))?;
            Ok(Source::Udp(s))
        }
        Endpoint::Udp(a) => Err(format!("udp:{a} is for diode-tx")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_for_its_side() {
        assert_eq!(
            Endpoint::parse("udp:127.0.0.1:7100", Side::Tx),
            Ok(Endpoint::Udp("127.0.0.1:7100".into()))
        );
        assert_eq!(
            Endpoint::parse("udp-listen:7100", Side::Rx),
            Ok(Endpoint::UdpListen("0.0.0.0:7100".into()))
        );
        assert_eq!(
            Endpoint::parse("udp-listen:127.0.0.1:7100", Side::Rx),
            Ok(Endpoint::UdpListen("127.0.0.1:7100".into()))
        );
        assert_eq!(Endpoint::parse("-", Side::Rx), Ok(Endpoint::Stdio));
        assert_eq!(Endpoint::parse("/dev/ttyUSB7", Side::Tx), Ok(Endpoint::Serial("/dev/ttyUSB7".into())));
        assert_eq!(Endpoint::parse("out.strand", Side::Tx), Ok(Endpoint::File("out.strand".into())));
        assert!(Endpoint::parse("udp:1.2.3.4:7", Side::Rx).unwrap_err().contains("udp-listen"));
        assert!(Endpoint::parse("udp-listen:7", Side::Tx).is_err());
        assert!(Endpoint::parse("udp:nohost", Side::Tx).is_err());
        assert!(Endpoint::parse("tcp:a:1", Side::Tx).is_err());
        assert!(Endpoint::parse("/no/such/file", Side::Rx).unwrap_err().contains("no such"));
    }

    #[test]
    fn named_links_come_from_the_config_and_unknown_names_are_not_files() {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("strand.toml");
        std::fs::write(
            &cfg,
            "[links.high-side]\naddress = \"udp:127.0.0.1:7100\"\nrate = 300000000\n[links.low]\naddress = \"udp-listen:7100\"\n",
        )
        .unwrap();
        let (ep, entry) = resolve("high-side", Side::Tx, Some(&cfg)).unwrap();
        assert_eq!(ep, Endpoint::Udp("127.0.0.1:7100".into()));
        assert_eq!(entry.unwrap().rate, Some(300_000_000));
        assert_eq!(
            resolve("low", Side::Rx, Some(&cfg)).unwrap().0,
            Endpoint::UdpListen("0.0.0.0:7100".into())
        );
        // A sender's unknown name is an error, not a new file of that name.
        let e = resolve("hgh-side", Side::Tx, Some(&cfg)).unwrap_err();
        assert!(e.contains("unknown link \"hgh-side\"") && e.contains("./hgh-side"), "{e}");
        // Paths and addresses are not looked up.
        assert_eq!(
            resolve("./out.strand", Side::Tx, Some(&cfg)).unwrap().0,
            Endpoint::File("./out.strand".into())
        );
        assert!(resolve("udp:127.0.0.1:9", Side::Tx, Some(&cfg)).unwrap().1.is_none());
    }
}
