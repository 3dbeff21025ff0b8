//! Link addresses: what the user writes wherever a link is named.
//!
//! `/dev/ttyUSB0` (any path) — a serial device or pty; `tcp:HOST:PORT`;
//! `tcp-listen:PORT` or `tcp-listen:ADDR:PORT`; `unix:PATH` and `unix-listen:PATH` (a Unix
//! socket); `udp:HOST:PORT` and `udp-listen:PORT` or `udp-listen:ADDR:PORT` (one-way transfer
//! only: `diode-tx`, `diode-rx`); `stdio` or `-`; `exec:COMMAND` (a child's stdin/stdout); any
//! other word — a named
//! link from the config file, or failing that a file of that name in the current directory
//! (resolved in `main`, which warns when a word is both). Schemes are case-insensitive
//! (`TCP:host:7000`); what follows them is not.

use std::fmt;
use std::path::PathBuf;

/// A parsed link address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A serial device or pseudo-terminal.
    Serial(PathBuf),
    /// Connect to a TCP server (e.g. a serial port exported by ser2net).
    Tcp(String),
    /// Accept one TCP connection on this address.
    TcpListen(String),
    /// This process's standard input and output.
    Stdio,
    /// A child process's standard input and output (`sh -c COMMAND`).
    Exec(String),
    /// Connect to a Unix stream socket.
    Unix(PathBuf),
    /// Accept one connection on a Unix stream socket made at this path.
    UnixListen(PathBuf),
    /// Send datagrams to `HOST:PORT` (one-way transfer: `diode-tx`).
    Udp(String),
    /// Receive datagrams on `ADDR:PORT` (one-way transfer: `diode-rx`).
    UdpListen(String),
    /// A name to look up in the config file.
    Named(String),
}

/// Why an address string is not an address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// `tcp:` without a usable host and port.
    #[error("bad link address {0:?}: write tcp:HOST:PORT, e.g. tcp:localhost:7000")]
    Tcp(String),
    /// `tcp-listen:` without a usable port.
    #[error("bad link address {0:?}: write tcp-listen:PORT or tcp-listen:ADDR:PORT")]
    TcpListen(String),
    /// `exec:` with no command.
    #[error("bad link address {0:?}: write exec:COMMAND")]
    Exec(String),
    /// `unix:` or `unix-listen:` with no path.
    #[error("bad link address {0:?}: write unix:PATH or unix-listen:PATH")]
    Unix(String),
    /// `udp:` without a usable host and port.
    #[error("bad link address {0:?}: write udp:HOST:PORT, e.g. udp:192.0.2.7:7100")]
    Udp(String),
    /// `udp-listen:` without a usable port.
    #[error("bad link address {0:?}: write udp-listen:PORT or udp-listen:ADDR:PORT")]
    UdpListen(String),
    /// Empty.
    #[error("empty link address: name a device (/dev/ttyUSB0), tcp:HOST:PORT, tcp-listen:PORT, stdio, exec:CMD or a configured link")]
    Empty,
}

impl Address {
    /// Parses an address.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.eq_ignore_ascii_case("stdio") || s == "-" {
            return Ok(Address::Stdio);
        }
        // The scheme, whatever its case; the rest as written.
        let scheme = |name: &str| {
            let (head, rest) = s.split_once(':')?;
            head.eq_ignore_ascii_case(name).then_some(rest)
        };
        for (name, listen) in [("unix", false), ("unix-listen", true)] {
            if let Some(rest) = scheme(name) {
                if rest.is_empty() {
                    return Err(AddressError::Unix(s.into()));
                }
                let path = PathBuf::from(rest);
                return Ok(if listen { Address::UnixListen(path) } else { Address::Unix(path) });
            }
        }
        if let Some(rest) = scheme("tcp") {
            return if host_port(rest) {
                Ok(Address::Tcp(rest.into()))
            } else {
                Err(AddressError::Tcp(s.into()))
            };
        }
        if let Some(rest) = scheme("tcp-listen") {
            return listen_addr(rest)
                .map(Address::TcpListen)
                .ok_or_else(|| AddressError::TcpListen(s.into()));
        }
        if let Some(rest) = scheme("udp") {
            return if host_port(rest) {
                Ok(Address::Udp(rest.into()))
            } else {
                Err(AddressError::Udp(s.into()))
            };
        }
        if let Some(rest) = scheme("udp-listen") {
            return listen_addr(rest)
                .map(Address::UdpListen)
                .ok_or_else(|| AddressError::UdpListen(s.into()));
        }
        if let Some(rest) = scheme("exec") {
            return if rest.trim().is_empty() {
                Err(AddressError::Exec(s.into()))
            } else {
                Ok(Address::Exec(rest.into()))
            };
        }
        if s.contains('/') {
            return Ok(Address::Serial(PathBuf::from(s)));
        }
        Ok(Address::Named(s.to_string()))
    }

    /// Whether the transport can be reopened after it fails (a cable pulled
    /// and plugged back, a USB adapter that re-enumerates).
    pub fn reopenable(&self) -> bool {
        matches!(self, Address::Serial(_) | Address::Tcp(_) | Address::Unix(_))
    }

    /// Whether the far side can end the transport (a socket closed, a pipe at
    /// end of file): worth waiting a moment for at close. A serial line never
    /// ends; the tty drains what it holds when closed.
    pub fn has_end(&self) -> bool {
        !matches!(self, Address::Serial(_))
    }
}

/// `HOST:PORT` with a host and a port number.
fn host_port(s: &str) -> bool {
    s.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
}

/// `PORT` (every interface) or `ADDR:PORT`, as the address to bind.
fn listen_addr(s: &str) -> Option<String> {
    if s.parse::<u16>().is_ok() {
        Some(format!("0.0.0.0:{s}"))
    } else {
        host_port(s).then(|| s.to_string())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Serial(p) => write!(f, "{}", p.display()),
            Address::Tcp(a) => write!(f, "tcp:{a}"),
            Address::TcpListen(a) => write!(f, "tcp-listen:{a}"),
            Address::Stdio => f.write_str("stdio"),
            Address::Exec(c) => write!(f, "exec:{c}"),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::UnixListen(p) => write!(f, "unix-listen:{}", p.display()),
            Address::Udp(a) => write!(f, "udp:{a}"),
            Address::UdpListen(a) => write!(f, "udp-listen:{a}"),
            Address::Named(n) => f.write_str(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(Address::parse("/dev/ttyUSB0"), Ok(Address::Serial("/dev/ttyUSB0".into())));
        assert_eq!(Address::parse("./pty-a"), Ok(Address::Serial("./pty-a".into())));
        assert_eq!(Address::parse("tcp:localhost:7000"), Ok(Address::Tcp("localhost:7000".into())));
        assert_eq!(Address::parse("tcp:[::1]:7000"), Ok(Address::Tcp("[::1]:7000".into())));
        assert_eq!(Address::parse("tcp-listen:7000"), Ok(Address::TcpListen("0.0.0.0:7000".into())));
        assert_eq!(
            Address::parse("tcp-listen:127.0.0.1:7000"),
            Ok(Address::TcpListen("127.0.0.1:7000".into()))
        );
        assert_eq!(Address::parse("stdio"), Ok(Address::Stdio));
        assert_eq!(Address::parse("-"), Ok(Address::Stdio));
        assert_eq!(Address::parse("exec:cat -u"), Ok(Address::Exec("cat -u".into())));
        assert_eq!(Address::parse("backup-serial"), Ok(Address::Named("backup-serial".into())));
        assert_eq!(Address::parse("unix:/run/s.sock"), Ok(Address::Unix("/run/s.sock".into())));
        assert_eq!(Address::parse("unix-listen:rel.sock"), Ok(Address::UnixListen("rel.sock".into())));
        assert_eq!(Address::parse("UDP:10.0.0.2:7000"), Ok(Address::Udp("10.0.0.2:7000".into())));
        assert_eq!(Address::parse("udp-listen:7000"), Ok(Address::UdpListen("0.0.0.0:7000".into())));
        assert!(matches!(Address::parse("udp:nohost"), Err(AddressError::Udp(_))));
        assert!(matches!(Address::parse("udp-listen:x"), Err(AddressError::UdpListen(_))));
    }

    #[test]
    fn schemes_are_case_insensitive_and_the_rest_is_kept() {
        assert_eq!(Address::parse("TCP:Host:7000"), Ok(Address::Tcp("Host:7000".into())));
        assert_eq!(Address::parse("Tcp-Listen:7000"), Ok(Address::TcpListen("0.0.0.0:7000".into())));
        assert_eq!(Address::parse("EXEC:Cat"), Ok(Address::Exec("Cat".into())));
        assert_eq!(Address::parse("Unix:/S"), Ok(Address::Unix("/S".into())));
        assert_eq!(Address::parse("STDIO"), Ok(Address::Stdio));
        assert!(matches!(Address::parse("unix:"), Err(AddressError::Unix(_))));
        for a in ["tcp:h:1", "unix:/x", "unix-listen:/y", "exec:cat"] {
            assert_eq!(Address::parse(a).unwrap().to_string(), a, "displayed as parsed");
        }
    }

    #[test]
    fn rejects_malformed_with_a_hint() {
        assert!(matches!(Address::parse("tcp:nohost"), Err(AddressError::Tcp(_))));
        assert!(matches!(Address::parse("tcp:host:99999"), Err(AddressError::Tcp(_))));
        assert!(matches!(Address::parse("tcp-listen:x"), Err(AddressError::TcpListen(_))));
        assert!(matches!(Address::parse("exec:  "), Err(AddressError::Exec(_))));
        assert_eq!(Address::parse(""), Err(AddressError::Empty));
        assert!(AddressError::Tcp("tcp:x".into()).to_string().contains("tcp:HOST:PORT"));
    }
}
