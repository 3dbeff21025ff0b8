//! `strand`: reliable packets and byte streams over serial lines, data diodes
//! and radios. This binary drives the `strand-link` core over real transports.

mod address;
mod airtime;
mod config;
mod console;
mod demo;
mod diode;
mod driver;
mod exec_status;
mod exit;
mod files;
mod forward;
mod linkem;
mod list;
mod manpages;
mod pipe;
mod shell;
mod spool;
mod summary;
mod transfer;
mod transport;

use address::Address;
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use transport::{Flow, Parity, SerialSettings};

#[derive(Parser, Debug)]
#[command(
    name = "strand",
    version,
    about = "Reliable packets and byte streams over serial lines, data diodes and radios",
    long_about = "strand moves data reliably over serial lines (RS-232, USB-serial, up to several Mbit/s), \
                  one-way data diodes and low-power radios. LINK is a device path (/dev/ttyUSB0, a pty), \
                  tcp:HOST:PORT, tcp-listen:PORT, stdio, exec:COMMAND, or a name from the config file.",
    after_long_help = format!("{}  diode-rx, shell and console have their own: see their --help or man pages.", exit::text("strand")))]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// More logging: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Config file with named links [default: ~/.config/strand/strand.toml].
    #[arg(long, global = true, env = "STRAND_CONFIG")]
    config: Option<PathBuf>,
}

/// Options of every command that opens a link.
#[derive(clap::Args, Debug, Clone)]
struct LinkOpts {
    /// Serial line rate in bit/s [default: 115200, or the named link's].
    #[arg(long)]
    baud: Option<u32>,
    /// Serial parity [default: none].
    #[arg(long, value_enum)]
    parity: Option<Parity>,
    /// Serial flow control [default: none; strand's window is the flow control].
    #[arg(long, value_enum)]
    flow: Option<Flow>,
    /// Print the link's counters (frames, CRC errors, retransmits, RTT, window) on exit.
    #[arg(long)]
    stats: bool,
    /// Seconds to wait for the strand peer's handshake; a peer silent this long
    /// later is declared gone (pending work fails, the command exits non-zero).
    #[arg(long, default_value_t = 30.0)]
    connect_timeout: f64,
    /// Every SECONDS, one JSON line of the link's counters on stderr (for long-running
    /// forwarders, servers and spools).
    #[arg(long, value_name = "SECONDS")]
    stats_interval: Option<f64>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Relay stdin to the peer and the peer to stdout, reliably (ssh ProxyCommand, NNCP pipe).
    Pipe {
        /// The link.
        link: String,
        #[command(flatten)]
        opts: LinkOpts,
        /// Connect the stream to this command's stdin/stdout instead of ours
        /// (the serving end: --exec 'nncp-daemon -ucspi', --exec 'sshd -i').
        #[arg(long, value_name = "COMMAND")]
        exec: Option<String>,
    },
    /// Forward TCP ports across the link (like ssh -L / -R); run it on both ends.
    Forward {
        /// The link.
        link: String,
        #[command(flatten)]
        opts: LinkOpts,
        /// Listen here, connect on the other side: [BIND:]PORT:HOST:HOSTPORT.
        #[arg(short = 'L', value_name = "[BIND:]PORT:HOST:HOSTPORT")]
        local: Vec<forward::Spec>,
        /// Listen on the other side, connect here: [BIND:]PORT:HOST:HOSTPORT.
        #[arg(short = 'R', value_name = "[BIND:]PORT:HOST:HOSTPORT")]
        remote: Vec<forward::Spec>,
    },
    /// Send files, verified, with resume (run `strand recv` on the other end).
    Send {
        /// The link.
        link: String,
        #[command(flatten)]
        opts: LinkOpts,
        /// Files to send.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Never show a progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Print the summary as one JSON object on stdout instead of a line on stderr.
        #[arg(long)]
        json: bool,
    },
    /// Receive files into DIR; each appears only when complete and verified.
    Recv {
        /// The link.
        link: String,
        #[command(flatten)]
        opts: LinkOpts,
        /// Directory for received files.
        #[arg(long)]
        dir: PathBuf,
        /// Replace existing files of the same name.
        #[arg(long)]
        overwrite: bool,
        /// Never show a progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Print the summary as one JSON object on stdout instead of a line on stderr.
        #[arg(long)]
        json: bool,
    },
    /// List serial ports: USB VID:PID, serial number, manufacturer and the stable /dev/serial/by-id path.
    List {
        /// Print a JSON array on stdout instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// A raw terminal on a plain serial line, like picocom or tio (no strand peer; Ctrl-T ? for help).
    Console(console::ConsoleArgs),
    /// A login shell on the far side, over the link (run `strand serve LINK --allow-shell` there).
    Shell {
        /// The link.
        link: String,
        #[command(flatten)]
        opts: LinkOpts,
    },
    /// Serve the far side's `strand shell` (with --allow-shell); runs until stopped.
    Serve {
        /// The link.
        link: String,
        #[command(flatten)]
        opts: LinkOpts,
        /// Give clients a login shell of the user running serve, on a pseudo-terminal.
        #[arg(long)]
        allow_shell: bool,
    },
    /// Two-way sync of spool directories (nncp-xfer layout): --out to the peer's --in and back.
    Spool(spool::SpoolArgs),
    /// Send files, or an nncp-xfer spool's packets (--spool), one way (data diode, TX-only cable, UDP, a file): nothing comes back.
    DiodeTx(diode::TxArgs),
    /// Receive files sent by `strand diode-tx` into DIR, or packets into a spool (--spool) (exit status: 0 complete, 1 error, 2 partial, 3 nothing/never seen).
    DiodeRx(diode::RxArgs),
    /// Emulate a serial line between two pseudo-terminals (rate, noise, bursts, one-way).
    Linkem(linkem::LinkemArgs),
    /// Send a file over a built-in emulated 2 Mbit/s noisy line and report goodput (no hardware needed).
    Demo(demo::DemoArgs),
    /// Time on air of a LoRa frame and what a duty cycle leaves of an hour (like Semtech's calculator).
    Airtime(airtime::AirtimeArgs),
    /// Print a man page (roff): strand(1), or a subcommand's; --dir writes them all.
    Man {
        /// The subcommand whose page to print (strand-SUBCOMMAND(1)).
        subcommand: Option<String>,
        /// Write strand.1 and every strand-SUBCOMMAND.1 into DIR instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print shell completions to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// A failure with the exit code it maps to and a one-line message.
struct Failure {
    code: u8,
    message: String,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure { code: 1, message: e.to_string() }
    }
}

fn stderr_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Longest a `send` or `recv` stays after the transfer for its last frames to be acknowledged (it
/// leaves as soon as they are): four retransmission timeouts, within 100 ms..2 s. On a noisy line
/// the final `BYE` may need a retransmission or two, and the sender waits for it; but if it was
/// the peer's acknowledgement that got lost, the peer is gone and the whole wait is spent.
fn transfer_linger(handle: &driver::LinkHandle) -> Duration {
    let rto = Duration::from_micros(handle.stats().rto_us);
    (4 * rto).clamp(Duration::from_millis(100), Duration::from_secs(2))
}

fn wait(opts: &LinkOpts) -> Duration {
    Duration::from_secs_f64(opts.connect_timeout)
}

fn transfer_failure(e: transfer::TransferError) -> Failure {
    Failure { code: e.exit_code() as u8, message: e.to_string() }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// The address and serial settings for a LINK argument, the config file consulted for names.
fn resolve(cli: &Cli, opts: &LinkOpts, link: &str) -> Result<(Address, SerialSettings), Failure> {
    let mut addr = Address::parse(link)?;
    let mut serial = SerialSettings::default();
    if let Address::Named(name) = &addr {
        let (cfg, path) = config::load(cli.config.as_deref())?;
        // A word is a configured link first, else a file here (a pty, a device's symlink).
        let here = std::path::Path::new(name).exists();
        match cfg.resolve(name, path.as_deref()) {
            Ok((a, entry)) => {
                if here {
                    tracing::warn!("{name:?} is both a configured link and a file here; using the link (write ./{name} for the file)");
                }
                addr = a;
                serial.baud = entry.baud.unwrap_or(serial.baud);
                serial.parity = entry.parity.unwrap_or(serial.parity);
                serial.flow = entry.flow.unwrap_or(serial.flow);
            }
            Err(_) if here => addr = Address::Serial(PathBuf::from(name)),
            Err(e) => return Err(e.into()),
        }
    }
    serial.baud = opts.baud.unwrap_or(serial.baud);
    serial.parity = opts.parity.unwrap_or(serial.parity);
    serial.flow = opts.flow.unwrap_or(serial.flow);
    Ok((addr, serial))
}

async fn connect(cli: &Cli, opts: &LinkOpts, link: &str) -> Result<driver::LinkHandle, Failure> {
    let handle = start_link(cli, opts, link).await?;
    handle.wait_connected(wait(opts)).await?;
    Ok(handle)
}

/// Opens the link and starts driving it, without waiting for a peer.
async fn start_link(cli: &Cli, opts: &LinkOpts, link: &str) -> Result<driver::LinkHandle, Failure> {
    let (addr, serial) = resolve(cli, opts, link)?;
    // A serial line has a known rate: size frames and the data in flight to it.
    let cfg = match addr {
        Address::Serial(_) => driver::config_for_serial(&serial),
        _ => strand_link::Config::default(),
    };
    let handle = driver::start(&addr, &serial, cfg, wait(opts)).await?;
    if let Some(every) = opts.stats_interval.filter(|s| *s > 0.0) {
        tokio::spawn(summary::stats_lines(handle.clone(), Duration::from_secs_f64(every)));
    }
    Ok(handle)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.cmd {
        Cmd::Pipe { link, opts, exec } => {
            let handle = connect(&cli, opts, link).await?;
            let generation = handle.generation();
            let r = match exec {
                None => pipe::relay(&handle, tokio::io::stdin(), tokio::io::stdout()).await.map(|()| 0),
                Some(cmd) => exec_status::relay_exec(&handle, cmd).await,
            };
            // Both directions are done; the peer may still need our last
            // acknowledgement (its end, written here): stay while it speaks.
            let quiet = (2 * handle.rto()).clamp(Duration::from_millis(100), Duration::from_secs(1));
            handle.linger(Duration::from_secs(1), if r.is_ok() { quiet } else { Duration::ZERO }).await;
            if opts.stats {
                eprintln!("{}", handle.stats_report());
            }
            let mut status = r.map_err(|f| Failure { code: f.code, message: f.message })?;
            if exec.is_none() {
                status = exec_status::peer_status(&handle, generation).await.unwrap_or(0);
            }
            if status != 0 {
                // The command's status, as ssh returns it; the command has said what happened.
                return Err(Failure { code: exec_status::exit_code(status), message: String::new() });
            }
        }
        Cmd::Forward { link, opts, local, remote } => {
            // Listen first: a port that cannot be bound fails the command at
            // once (ssh's ExitOnForwardFailure), before anything waits for a peer.
            let listeners = forward::bind_all(local).await?;
            let handle = connect(&cli, opts, link).await?;
            forward::run(handle, listeners, remote.clone(), wait(opts)).await?;
        }
        Cmd::Send { link, opts, files, no_progress, json } => {
            let started = std::time::Instant::now();
            let r = async {
                let handle = connect(&cli, opts, link).await?;
                let send_opts = transfer::SendOptions {
                    files: files.clone(),
                    progress: !no_progress && stderr_tty(),
                    ..Default::default()
                };
                let r = files::send(&handle, &send_opts, wait(opts)).await;
                handle.linger(transfer_linger(&handle), Duration::ZERO).await;
                if opts.stats {
                    eprintln!("{}", handle.stats_report());
                }
                let report = r.map_err(transfer_failure)?;
                Ok(files::send_summary(&report, started.elapsed(), handle.stats()))
            }
            .await;
            summarise("send", *json, r)?;
        }
        Cmd::Recv { link, opts, dir, overwrite, no_progress, json } => {
            let started = std::time::Instant::now();
            let r = async {
                let handle = connect(&cli, opts, link).await?;
                let recv_opts = transfer::RecvOptions {
                    dir: dir.clone(),
                    overwrite: *overwrite,
                    progress: !no_progress && stderr_tty(),
                    spool: false,
                    ordered: false,
                };
                let r = files::recv(&handle, &recv_opts, wait(opts)).await;
                handle.linger(transfer_linger(&handle), Duration::ZERO).await;
                if opts.stats {
                    eprintln!("{}", handle.stats_report());
                }
                let report = r.map_err(transfer_failure)?;
                Ok(files::recv_summary(&report, started.elapsed(), handle.stats()))
            }
            .await;
            summarise("recv", *json, r)?;
        }
        Cmd::Spool(args) => spool_command(&cli, args).await?,
        Cmd::List { json } => {
            let ports = list::ports()?;
            if *json {
                println!("{}", serde_json::to_string(&ports)?);
            } else {
                print!("{}", list::render(&ports));
            }
        }
        Cmd::Console(args) => console::run(args).await?,
        Cmd::Shell { link, opts } => {
            let handle = connect(&cli, opts, link).await?;
            let r = shell::client(&handle).await;
            handle.linger(transfer_linger(&handle), Duration::ZERO).await;
            if opts.stats {
                eprintln!("{}", handle.stats_report());
            }
            match r {
                Ok(0) => {}
                // The remote shell's status, as ssh returns it; it has said what happened.
                Ok(code) => return Err(Failure { code, message: String::new() }),
                Err(f) => return Err(Failure { code: f.code, message: f.message }),
            }
        }
        Cmd::Serve { link, opts, allow_shell } => {
            let handle = start_link(&cli, opts, link).await?;
            let what = if *allow_shell { "shells" } else { "nothing yet (pass --allow-shell)" };
            eprintln!("strand serve: serving {what} on {link}");
            shell::serve(&handle, *allow_shell).await.map_err(|message| Failure { code: 4, message })?;
        }
        Cmd::DiodeTx(args) => {
            if let Some(why) = args.usage_error() {
                // A usage error like the parser's own (exit 2, with the usage line).
                let mut cmd = Cli::command();
                cmd.build();
                let sub = cmd.find_subcommand_mut("diode-tx").expect("diode-tx is a subcommand");
                sub.error(clap::error::ErrorKind::ArgumentConflict, why).exit();
            }
            diode::tx::run(args, cli.config.as_deref())
                .await
                .map_err(|message| Failure { code: 1, message })?
        }
        Cmd::DiodeRx(args) => {
            let code = diode::rx::run(args, cli.config.as_deref())
                .await
                .map_err(|message| Failure { code: diode::exit::ERROR, message })?;
            if code != diode::exit::COMPLETE {
                return Err(Failure { code, message: String::new() });
            }
        }
        Cmd::Linkem(args) => linkem::run(args.clone()).await?,
        Cmd::Demo(args) => demo::run(args.clone(), stderr_tty()).await?,
        Cmd::Airtime(args) => print!("{}", airtime::report(args)?),
        Cmd::Man { subcommand, dir } => match dir {
            Some(dir) => {
                for path in manpages::write_all(&Cli::command(), dir)? {
                    println!("{}", path.display());
                }
            }
            None => match manpages::page(&Cli::command(), subcommand.as_deref()) {
                Some(text) => print!("{text}"),
                None => {
                    return Err(Failure {
                        code: 2,
                        message: format!("no such subcommand: {}", subcommand.as_deref().unwrap_or_default()),
                    })
                }
            },
        },
        Cmd::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "strand", &mut std::io::stdout());
        }
    }
    Ok(())
}

/// Prints a command's summary: a line on stderr, or with `--json` one JSON object on stdout —
/// also for a failure, whose one-line message goes to stderr as always.
fn summarise(command: &str, json: bool, r: Result<summary::Summary, Failure>) -> Result<(), Failure> {
    match r {
        Ok(s) => {
            s.print(json);
            Ok(())
        }
        Err(f) => {
            if json {
                println!("{}", summary::failure_json(command, f.code, &f.message));
            }
            Err(f)
        }
    }
}

/// `strand spool`: the sync, then the summary.
async fn spool_command(cli: &Cli, args: &spool::SpoolArgs) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let result = async {
        let handle = connect(cli, &args.opts, &args.link).await?;
        let progress = !args.no_progress && stderr_tty();
        let r = spool::run(&handle, args, progress, wait(&args.opts)).await;
        handle.linger(transfer_linger(&handle), Duration::ZERO).await;
        if args.opts.stats {
            eprintln!("{}", handle.stats_report());
        }
        let report = r.map_err(|(e, _)| transfer_failure(e))?;
        Ok(spool::summary(&report, started.elapsed(), handle.stats()))
    }
    .await;
    summarise("spool", args.json, result)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = rt.block_on(run(cli));
    // A write to a stdout nobody reads blocks a thread for ever: do not wait
    // for it (dropping the runtime would), the process is done.
    rt.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // An empty message: the command has said what happened (diode-rx's report).
            if !f.message.is_empty() {
                eprintln!("strand: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
