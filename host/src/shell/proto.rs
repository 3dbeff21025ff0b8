//! The control packets of `strand shell` / `strand serve`, on channel [`CONTROL`]. The terminal's
//! bytes travel as the byte stream of channel [`DATA`], one per direction.
//!
//! | byte 0 | packet | rest | sent by |
//! |---|---|---|---|
//! | 1 | `OPEN` | rows (u16 BE), columns (u16 BE), `$TERM` (UTF-8) | shell, once |
//! | 2 | `RESIZE` | rows, columns | shell, on every window-size change |
//! | 3 | `EXIT` | status (i32 BE: the exit code, or 128+N for signal N) | serve, after its stream was confirmed written |
//! | 4 | `REFUSED` | why (UTF-8) | serve, instead of a shell |
//!
//! Channel 1 is above every bulk channel (files 2, spool 3 and 4, forwards 16 on), so keystrokes
//! and their echo never wait behind a transfer sharing the link.

/// Channel of the control packets (the highest priority).
pub const CONTROL: u8 = 0;
/// Channel of the terminal's byte streams.
pub const DATA: u8 = 1;

/// One control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Start a shell on a terminal of this size, with this `$TERM`.
    Open {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
        /// The client's `$TERM`.
        term: String,
    },
    /// The client's window changed size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// The shell ended with this status.
    Exit(i32),
    /// No shell for this client, and why.
    Refused(String),
}

impl Control {
    /// The packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        match self {
            Control::Open { rows, cols, term } => {
                v.push(1);
                v.extend_from_slice(&rows.to_be_bytes());
                v.extend_from_slice(&cols.to_be_bytes());
                v.extend_from_slice(term.as_bytes());
            }
            Control::Resize { rows, cols } => {
                v.push(2);
                v.extend_from_slice(&rows.to_be_bytes());
                v.extend_from_slice(&cols.to_be_bytes());
            }
            Control::Exit(code) => {
                v.push(3);
                v.extend_from_slice(&code.to_be_bytes());
            }
            Control::Refused(why) => {
                v.push(4);
                v.extend_from_slice(why.as_bytes());
            }
        }
        v
    }

    /// Parses a packet; anything malformed is `None` (and ignored by the caller).
    pub fn decode(p: &[u8]) -> Option<Control> {
        let u16_at = |i: usize| p.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let text = |from: usize| {
            let t = String::from_utf8_lossy(p.get(from..).unwrap_or(&[]));
            t.chars().filter(|c| !c.is_control()).take(200).collect::<String>()
        };
        match p.first()? {
            1 => Some(Control::Open { rows: u16_at(1)?, cols: u16_at(3)?, term: text(5) }),
            2 if p.len() == 5 => Some(Control::Resize { rows: u16_at(1)?, cols: u16_at(3)? }),
            3 if p.len() == 5 => Some(Control::Exit(i32::from_be_bytes([p[1], p[2], p[3], p[4]]))),
            4 => Some(Control::Refused(text(1))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_and_garbage_is_ignored() {
        for c in [
            Control::Open { rows: 24, cols: 80, term: "xterm-256color".into() },
            Control::Resize { rows: 50, cols: 132 },
            Control::Exit(-1),
            Control::Exit(130),
            Control::Refused("no".into()),
        ] {
            assert_eq!(Control::decode(&c.encode()), Some(c));
        }
        for bad in [&[][..], &[0], &[1, 0], &[2, 0, 1, 0], &[3, 1, 2, 3, 4, 5], &[9, 9]] {
            assert_eq!(Control::decode(bad), None, "{bad:?}");
        }
        assert_eq!(
            Control::decode(b"\x01\x00\x18\x00\x50xterm\x1b[2J"),
            Some(Control::Open { rows: 24, cols: 80, term: "xterm[2J".into() }),
            "control characters in $TERM are dropped"
        );
    }
}
