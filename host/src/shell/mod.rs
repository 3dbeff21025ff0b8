//! `strand shell LINK` and `strand serve LINK --allow-shell`: a remote login terminal over the
//! reliable link, like ssh without a network.
//!
//! `serve` waits for a client's `OPEN` ([`proto`]) and, if allowed, starts the serving user's
//! login shell (`$SHELL -l`, else `/bin/sh -l`) on a new pseudo-terminal of the client's size.
//! The terminal's bytes go both ways as byte streams on channel [`proto::DATA`]; the client's
//! window-size changes follow as `RESIZE` packets and are applied to the pseudo-terminal (the
//! shell gets SIGWINCH). When the shell exits, `serve` ends its stream, waits until the client has
//! confirmed every byte written to its terminal, and sends `EXIT` with the status, which becomes
//! the client's exit status (as ssh returns the remote command's). `serve` then waits for the
//! next client. The client's terminal is in raw mode while it runs, so every key (Ctrl-C too)
//! goes to the far side.

pub mod proto;
pub mod tty;

use crate::driver::{LinkError, LinkHandle};
use proto::{Control, CONTROL, DATA};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};

/// Exit status of `strand shell` when strand itself failed (ssh's 255): every other status is the
/// far shell's.
pub const EXIT_OWN: u8 = 255;

/// Why a shell session did not end with the remote shell's status.
#[derive(Debug)]
pub struct ShellFailure {
    /// The exit status.
    pub code: u8,
    /// One line.
    pub message: String,
}

fn lost(e: LinkError) -> ShellFailure {
    ShellFailure { code: EXIT_OWN, message: format!("the shell's link failed: {e}") }
}

/// The next whole packet on `channel`.
async fn recv_packet(link: &LinkHandle, channel: u8, generation: u64) -> Result<Vec<u8>, LinkError> {
    let mut packet = Vec::new();
    loop {
        let f = link.recv(channel, generation).await?;
        packet.extend_from_slice(&f.data);
        if !f.more {
            return Ok(packet);
        }
    }
}

/// The client: runs until the remote shell exits and returns its status (0..=255).
pub async fn client(link: &LinkHandle) -> Result<u8, ShellFailure> {
    let generation = link.generation();
    let size =
        || tty::window_size(std::io::stdout().as_fd()).or_else(|| tty::window_size(std::io::stdin().as_fd()));
    let (rows, cols) = size().unwrap_or((24, 80));
    let term = std::env::var("TERM").unwrap_or_else(|_| "dumb".into());
    link.send(CONTROL, &Control::Open { rows, cols, term }.encode(), generation).await.map_err(lost)?;
    let mut winch = signal(SignalKind::window_change()).map_err(|e| ShellFailure {
        code: EXIT_OWN,
        message: format!("cannot watch the window size: {e}"),
    })?;
    // Every key goes to the far side from now on; the terminal comes back when this drops.
    let _raw = tty::RawMode::enable(std::io::stdin().as_fd());
    let up = tokio::spawn(keys_up(link.clone(), generation));
    let mut down = tokio::spawn(screen_down(link.clone(), generation));
    let result = loop {
        tokio::select! {
            p = recv_packet(link, CONTROL, generation) => match p.map(|p| Control::decode(&p)) {
                Ok(Some(Control::Exit(code))) => break Ok(code.clamp(0, 255) as u8),
                Ok(Some(Control::Refused(why))) => break Err(ShellFailure { code: EXIT_OWN, message: format!("the far side refused a shell: {why}") }),
                Ok(_) => {}
                Err(e) => break Err(lost(e)),
            },
            _ = winch.recv() => {
                if let Some((rows, cols)) = size() {
                    if let Err(e) = link.send(CONTROL, &Control::Resize { rows, cols }.encode(), generation).await {
                        break Err(lost(e));
                    }
                }
            }
            r = &mut down => {
                match r {
                    Ok(Err(e)) => break Err(e),
                    // The far side's stream ended: its EXIT follows.
                    _ => down = tokio::spawn(std::future::pending()),
                }
            }
        }
    };
    up.abort();
    down.abort();
    result
}

/// Our keys to the far side; the end of stdin (not a terminal) ends our stream.
async fn keys_up(link: LinkHandle, generation: u64) -> Result<(), LinkError> {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = stdin.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return link.finish_stream(DATA, generation).await;
        }
        link.write_stream(DATA, &buf[..n], generation).await?;
    }
}

/// The far side's terminal output to our stdout, each write confirmed back.
async fn screen_down(link: LinkHandle, generation: u64) -> Result<(), ShellFailure> {
    let mut out = tokio::io::stdout();
    loop {
        let f = link.recv(DATA, generation).await.map_err(lost)?;
        if f.reset {
            return Err(ShellFailure { code: EXIT_OWN, message: "the far side aborted the session".into() });
        }
        let wrote = async {
            out.write_all(&f.data).await?;
            out.flush().await
        };
        wrote
            .await
            .map_err(|e| ShellFailure { code: EXIT_OWN, message: format!("cannot write to stdout: {e}") })?;
        link.stream_written(DATA, f.data.len() as u32);
        if f.fin {
            link.stream_written(DATA, 1);
            return Ok(());
        }
    }
}

/// `strand serve`: answers clients for ever (a new client is a new session of the link).
pub async fn serve(link: &LinkHandle, allow_shell: bool) -> Result<(), String> {
    loop {
        let generation = link.generation();
        let packet = match recv_packet(link, CONTROL, generation).await {
            Ok(p) => p,
            Err(LinkError::Closed(why)) => return Err(why),
            Err(e) => {
                tracing::info!("{e}; waiting for the next client");
                if matches!(e, LinkError::Gone(_)) {
                    link.restart_session();
                }
                while let Err(e) = link.wait_connected(Duration::from_secs(3600)).await {
                    if let LinkError::Closed(why) = e {
                        return Err(why);
                    }
                }
                continue;
            }
        };
        match Control::decode(&packet) {
            Some(Control::Open { rows, cols, term }) if allow_shell => {
                match session(link, generation, rows, cols, &term).await {
                    Ok(code) => tracing::info!("the shell exited with status {code}"),
                    Err(e) => tracing::warn!("shell session ended: {e}"),
                }
            }
            Some(Control::Open { .. }) => {
                let why = "strand serve runs without --allow-shell there".to_string();
                let _ = link.send(CONTROL, &Control::Refused(why).encode(), generation).await;
            }
            _ => tracing::debug!("ignoring a control packet of {} bytes", packet.len()),
        }
    }
}

/// One shell on a new pseudo-terminal, until it exits and the client has all of its output.
async fn session(
    link: &LinkHandle,
    generation: u64,
    rows: u16,
    cols: u16,
    term: &str,
) -> Result<i32, String> {
    let shell = std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/sh".into());
    let (rows, cols) = (if rows == 0 { 24 } else { rows }, if cols == 0 { 80 } else { cols });
    let term = if term.is_empty() { "dumb" } else { term };
    let pty = tty::spawn_on_pty(&shell, &["-l"], rows, cols, &[("TERM", term)])
        .map_err(|e| format!("cannot start {shell} on a pseudo-terminal: {e}"))?;
    let tty::PtyChild { master, mut child } = pty;
    let reader = master.try_clone().map_err(|e| e.to_string())?;
    let resizer = master.try_clone().map_err(|e| e.to_string())?;
    // The pseudo-terminal's output: read on a thread of its own (reads block), ends with EIO
    // once the shell and everything it started have closed the terminal.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut reader = reader;
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            if out_tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // Keys from the client, written on a thread (a full terminal input queue blocks).
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut master = master;
        while let Ok(bytes) = in_rx.recv() {
            if master.write_all(&bytes).is_err() {
                break;
            }
        }
    });
    let keys = async {
        loop {
            let f = match link.recv(DATA, generation).await {
                Ok(f) => f,
                Err(e) => return e,
            };
            if f.reset {
                return LinkError::Closed("the client aborted".into());
            }
            let n = f.data.len();
            // The client's input ended (it was not a terminal): an end-of-file for the shell.
            let bytes = if f.fin { [f.data, vec![4]].concat() } else { f.data };
            let _ = in_tx.send(bytes);
            link.stream_written(DATA, n as u32 + u32::from(f.fin));
        }
    };
    let resizes = async {
        loop {
            let p = match recv_packet(link, CONTROL, generation).await {
                Ok(p) => p,
                Err(e) => return e,
            };
            if let Some(Control::Resize { rows, cols }) = Control::decode(&p) {
                if let Err(e) = tty::set_window_size(resizer.as_fd(), rows, cols) {
                    tracing::warn!("cannot resize the terminal: {e}");
                }
            }
        }
    };
    let output = async {
        while let Some(bytes) = out_rx.recv().await {
            link.write_stream(DATA, &bytes, generation).await?;
        }
        link.finish_stream(DATA, generation).await?;
        link.wait_confirmed(DATA, generation).await
    };
    let r: Result<(), LinkError> = tokio::select! {
        r = output => r,
        e = keys => Err(e),
        e = resizes => Err(e),
    };
    if let Err(e) = r {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e.to_string());
    }
    let status = tokio::task::spawn_blocking(move || child.wait()).await.map_err(|e| e.to_string())?;
    let status = status.map_err(|e| e.to_string())?;
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    link.send(CONTROL, &Control::Exit(code).encode(), generation).await.map_err(|e| e.to_string())?;
    Ok(code)
}
