//! Opening the byte pipe under a link: serial devices and ptys, TCP, stdio and
//! child processes, all as one `Duplex` the driver reads and writes.

use crate::address::Address;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_serial::SerialPortBuilderExt;

/// A byte pipe the driver owns: anything readable and writable.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// No parity bit (8N1).
    #[default]
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// Flow control of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// None: strand's own window is the flow control.
    #[default]
    None,
    /// Hardware RTS/CTS.
    RtsCts,
}

/// Serial settings for device addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialSettings {
    /// Bits per second.
    pub baud: u32,
    /// Parity.
    pub parity: Parity,
    /// Flow control.
    pub flow: Flow,
}

impl Default for SerialSettings {
    fn default() -> Self {
        SerialSettings { baud: 115_200, parity: Parity::None, flow: Flow::None }
    }
}

/// The highest rate accepted: FTDI's FT232H tops out at 12 Mbit/s.
pub const MAX_BAUD: u32 = 12_000_000;

/// Why a transport could not be opened. Each message is one line saying what
/// is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The device path does not exist.
    #[error(
        "no such device: {0} (is the adapter plugged in? `ls /dev/serial/by-id/` lists the ones present)"
    )]
    NoDevice(String),
    /// Not allowed to open the device.
    #[error("permission denied opening {0}: add yourself to the 'dialout' group (sudo usermod -aG dialout $USER) and log in again")]
    Permission(String),
    /// Someone else has the device open exclusively.
    #[error("{0} is busy: another program (another strand, a terminal emulator, ModemManager?) has it open")]
    Busy(String),
    /// The baud rate is not one the device or strand supports.
    #[error("baud rate {baud} is not supported on {dev}: use a rate between 50 and {MAX_BAUD}, e.g. 115200 or 2000000")]
    Baud {
        /// The device.
        dev: String,
        /// The rate asked for.
        baud: u32,
    },
    /// The path exists but is not a terminal device.
    #[error("{0} is not a serial device or pty")]
    NotATty(String),
    /// TCP connect or listen failed.
    #[error("{addr}: {err}")]
    Tcp {
        /// The address.
        addr: String,
        /// What went wrong.
        err: io::Error,
    },
    /// The child command could not be started.
    #[error("cannot start {cmd:?}: {err}")]
    Exec {
        /// The command.
        cmd: String,
        /// What went wrong.
        err: io::Error,
    },
    /// Anything else, with the OS's words.
    #[error("cannot open {dev}: {msg}")]
    Other {
        /// The device or address.
        dev: String,
        /// What the OS said.
        msg: String,
    },
}

/// An open transport.
pub struct Opened {
    /// The byte pipe.
    pub duplex: Box<dyn Duplex>,
    /// For a serial device: its output queue, which the writer keeps short.
    pub out_queue: Option<OutQueue>,
}

impl Opened {
    fn plain(duplex: Box<dyn Duplex>) -> Opened {
        Opened { duplex, out_queue: None }
    }
}

/// A serial device's output queue (bytes written but not yet on the wire),
/// read with TIOCOUTQ. The core counts every byte it handed out as leaving at
/// the line rate; the writer waits while the device holds more than a few ms
/// of them, so that a frame of another channel never waits behind a deep
/// device buffer the core cannot see (a pseudo-terminal always reports 0).
#[derive(Clone)]
pub struct OutQueue {
    fd: std::os::fd::RawFd,
    /// Bytes the device may hold before the writer waits.
    limit: usize,
    /// How long one byte takes on the line.
    byte_time: std::time::Duration,
}

nix::ioctl_read_bad!(tiocoutq, nix::libc::TIOCOUTQ, nix::libc::c_int);

impl OutQueue {
    /// Bytes in the device's output queue, if the device tells.
    fn len(&self) -> Option<usize> {
        let mut n: nix::libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one int through the pointer; the fd belongs to
        // the open serial stream, which outlives the writer that calls this.
        #[allow(unsafe_code)]
        let r = unsafe { tiocoutq(self.fd, &mut n) };
        r.ok().map(|_| n.max(0) as usize)
    }

    /// Waits until the queue holds at most `limit` bytes.
    pub async fn wait_below(&self) {
        for _ in 0..1000 {
            match self.len() {
                Some(n) if n > self.limit => {
                    tokio::time::sleep(
                        (self.byte_time * (n - self.limit) as u32).max(std::time::Duration::from_micros(500)),
                    )
                    .await
                }
                _ => return,
            }
        }
    }
}

/// Opens the transport for `addr` like [`open`]; a `tcp:` connect that is
/// refused or times out is retried until `patience` has passed (the server,
/// ser2net or a QEMU UART, may still be starting).
pub async fn open_patiently(
    addr: &Address,
    serial: &SerialSettings,
    patience: std::time::Duration,
) -> Result<Opened, OpenError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match open(addr, serial).await {
            Err(OpenError::Tcp { .. })
                if matches!(addr, Address::Tcp(_) | Address::Unix(_))
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// Opens the transport for `addr` (named links must be resolved first).
pub async fn open(addr: &Address, serial: &SerialSettings) -> Result<Opened, OpenError> {
    match addr {
        Address::Serial(path) => {
            use std::os::fd::AsRawFd;
            let port = open_serial(path, serial)?;
            let rate = (u64::from(serial.baud) / 10).max(1);
            let byte_time = std::time::Duration::from_nanos(1_000_000_000 / rate);
            // About 4 ms of line time, and never less than a short frame.
            let limit = (rate as usize * 4 / 1000).max(256);
            let out_queue = OutQueue { fd: port.as_raw_fd(), limit, byte_time };
            Ok(Opened { duplex: Box::new(port), out_queue: Some(out_queue) })
        }
        Address::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a)
                .await
                .map_err(|err| OpenError::Tcp { addr: format!("tcp:{a}"), err })?;
            s.set_nodelay(true).ok();
            Ok(Opened::plain(Box::new(s)))
        }
        Address::TcpListen(a) => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .map_err(|err| OpenError::Tcp { addr: format!("tcp-listen:{a}"), err })?;
            tracing::info!("waiting for a connection on {a}");
            let (s, peer) =
                l.accept().await.map_err(|err| OpenError::Tcp { addr: format!("tcp-listen:{a}"), err })?;
            tracing::info!("connection from {peer}");
            s.set_nodelay(true).ok();
            Ok(Opened::plain(Box::new(s)))
        }
        Address::Stdio => {
            Ok(Opened::plain(Box::new(tokio::io::join(tokio::io::stdin(), tokio::io::stdout()))))
        }
        Address::Exec(cmd) => Ok(Opened::plain(Box::new(ChildPipe::spawn(cmd)?))),
        Address::Udp(_) | Address::UdpListen(_) => Err(OpenError::Other {
            dev: addr.to_string(),
            msg: "udp: carries one-way transfer only (strand diode-tx / diode-rx); a two-way link runs \
                  over a serial device, tcp:, unix:, stdio or exec:"
                .into(),
        }),
        Address::Named(n) => Err(OpenError::Other { dev: n.clone(), msg: "unresolved link name".into() }),
        Address::Unix(_) | Address::UnixListen(_) => open_unix(addr).await,
    }
}

fn open_serial(path: &Path, s: &SerialSettings) -> Result<tokio_serial::SerialStream, OpenError> {
    let dev = path.display().to_string();
    if !(50..=MAX_BAUD).contains(&s.baud) {
        return Err(OpenError::Baud { dev, baud: s.baud });
    }
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => OpenError::NoDevice(dev.clone()),
        io::ErrorKind::PermissionDenied => OpenError::Permission(dev.clone()),
        _ => OpenError::Other { dev: dev.clone(), msg: e.to_string() },
    })?;
    {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_char_device() {
            return Err(OpenError::NotATty(dev));
        }
    }
    let builder = tokio_serial::new(dev.clone(), s.baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .stop_bits(tokio_serial::StopBits::One)
        .parity(match s.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .flow_control(match s.flow {
            Flow::None => tokio_serial::FlowControl::None,
            Flow::RtsCts => tokio_serial::FlowControl::Hardware,
        });
    let port = builder.open_native_async().map_err(|e| {
        use tokio_serial::ErrorKind as K;
        match e.kind {
            // serialport reports EBUSY from TIOCEXCL/flock as NoDevice; the path exists.
            K::NoDevice => OpenError::Busy(dev),
            K::Io(io::ErrorKind::NotFound) => OpenError::NoDevice(dev),
            K::Io(io::ErrorKind::PermissionDenied) => OpenError::Permission(dev),
            K::InvalidInput if e.description.to_lowercase().contains("baud") => {
                OpenError::Baud { dev, baud: s.baud }
            }
            _ => OpenError::Other { dev, msg: e.description },
        }
    })?;
    // Bytes left in the device from an earlier session (a dead process's
    // frames, a HELLO storm in the buffers) would greet the new one: drop them.
    {
        use tokio_serial::SerialPort;
        let _ = port.clear(tokio_serial::ClearBuffer::All);
    }
    Ok(port)
}

/// A child process's stdin and stdout as one duplex; the child is killed when dropped.
pub struct ChildPipe {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
}

/// Starts `sh -c COMMAND` with piped stdin and stdout; the child is killed
/// when the returned handle is dropped.
pub fn spawn_child(
    cmd: &str,
) -> Result<(tokio::process::Child, tokio::process::ChildStdin, tokio::process::ChildStdout), OpenError> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| OpenError::Exec { cmd: cmd.into(), err })?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    Ok((child, stdin, stdout))
}

impl ChildPipe {
    fn spawn(cmd: &str) -> Result<ChildPipe, OpenError> {
        let (child, stdin, stdout) = spawn_child(cmd)?;
        Ok(ChildPipe { _child: child, stdin, stdout })
    }
}

impl AsyncRead for ChildPipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for ChildPipe {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

// ---- Unix sockets (issue 16), kept apart from the transports above ----

/// Opens `unix:PATH` (connect) or `unix-listen:PATH` (make the socket, accept one connection,
/// remove the socket file again). Connect failures are `OpenError::Tcp`, so `open_patiently`
/// retries them like a TCP server that is still starting.
async fn open_unix(addr: &Address) -> Result<Opened, OpenError> {
    let err = |err: io::Error| OpenError::Tcp { addr: addr.to_string(), err };
    match addr {
        Address::Unix(path) => {
            Ok(Opened::plain(Box::new(tokio::net::UnixStream::connect(path).await.map_err(err)?)))
        }
        Address::UnixListen(path) => {
            let l = tokio::net::UnixListener::bind(path).map_err(err)?;
            tracing::info!("waiting for a connection on {}", path.display());
            let accepted = l.accept().await;
            let _ = std::fs::remove_file(path);
            Ok(Opened::plain(Box::new(accepted.map_err(err)?.0)))
        }
        _ => Err(OpenError::Other { dev: addr.to_string(), msg: "not a unix socket address".into() }),
    }
}
