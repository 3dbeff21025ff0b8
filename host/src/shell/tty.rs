//! Terminal helpers: raw mode with restore, window sizes, and a pseudo-terminal with a child on it.

use nix::pty::Winsize;
use nix::sys::termios::{self, SetArg, Termios};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

nix::ioctl_read_bad!(get_winsize, nix::libc::TIOCGWINSZ, Winsize);
nix::ioctl_write_ptr_bad!(set_winsize, nix::libc::TIOCSWINSZ, Winsize);

/// The window size of the terminal on `fd`, if it is one.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the pointer, which is valid for the call.
    unsafe { get_winsize(fd.as_raw_fd(), &mut ws) }.ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Sets the window size of the pseudo-terminal whose master is `fd` (the kernel then sends
/// SIGWINCH to the terminal's foreground process group).
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the call.
    unsafe { set_winsize(fd.as_raw_fd(), &ws) }.map(|_| ()).map_err(io::Error::from)
}

/// A terminal put in raw mode; its settings are restored when this is dropped.
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Raw mode on `fd` (a duplicate is kept for the restore); `None` if it is not a terminal.
    pub fn enable(fd: BorrowedFd<'_>) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        // TCSANOW, not TCSAFLUSH: keys typed ahead go to the far side rather than being lost.
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd: fd.try_clone_to_owned().ok()?, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd.as_fd(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// A child running on a new pseudo-terminal, as its session leader with the terminal as its
/// controlling terminal (job control and SIGWINCH work as in a login).
pub struct PtyChild {
    /// The master side: the child's output is read here and its input written.
    pub master: File,
    /// The child.
    pub child: Child,
}

/// Starts `program args` on a new pseudo-terminal of `rows` x `cols`, with `env` added.
pub fn spawn_on_pty(
    program: &str,
    args: &[&str],
    rows: u16,
    cols: u16,
    env: &[(&str, &str)],
) -> io::Result<PtyChild> {
    let ws = Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    let pty = nix::pty::openpty(Some(&ws), None).map_err(io::Error::from)?;
    let slave = pty.slave;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe calls between fork and exec (setsid, ioctl).
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(io::Error::from)?;
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY as _, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // The parent's copies of the slave are closed here (moved into `cmd`, dropped with it), so
    // reading the master ends (EIO) once the child and its descendants have closed theirs.
    drop(cmd);
    Ok(PtyChild { master: File::from(pty.master), child })
}
