//! The one summary every command prints when it is done: a line on stderr for people, or with
//! `--json` one JSON object on stdout for scripts. Both carry the same figures: what moved, the
//! time it took and its rate, and what the link did to get it through (retransmissions, symbols
//! repaired by in-frame FEC).

use crate::transfer::fmt_bytes;
use serde_json::{json, Map, Value};
use std::time::Duration;
use strand_link::Stats;

/// What one command did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The subcommand (`spool`, `send`, ...).
    pub command: &'static str,
    /// What moved, in the command's own words, e.g. "sent 3 packets, received 1".
    pub what: String,
    /// Payload bytes sent (file or stream bytes, not framing).
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Wall-clock time from the link's start to the end.
    pub elapsed: Duration,
    /// The link's counters at the end, if a link was used.
    pub stats: Option<Stats>,
    /// Command-specific figures for the JSON object (counts of packets, files, ...).
    pub extra: Map<String, Value>,
}

impl Summary {
    /// A summary with no command-specific figures yet.
    pub fn new(command: &'static str, what: String, bytes_sent: u64, bytes_received: u64) -> Summary {
        Summary {
            command,
            what,
            bytes_sent,
            bytes_received,
            elapsed: Duration::ZERO,
            stats: None,
            extra: Map::new(),
        }
    }

    /// Adds a command-specific figure to the JSON object.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Summary {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// Payload bytes per second over the whole run, both directions.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.bytes_sent + self.bytes_received) as f64 / secs
        } else {
            0.0
        }
    }

    /// The line for people: `strand spool: sent 2 packets, received 1; 1.5 MiB in 8.2 s
    /// (187.3 KiB/s); 14 retransmissions, 120 symbols repaired by FEC`.
    pub fn line(&self) -> String {
        let total = self.bytes_sent + self.bytes_received;
        let mut line = format!(
            "strand {}: {}; {} in {:.1} s ({}/s)",
            self.command,
            self.what,
            fmt_bytes(total),
            self.elapsed.as_secs_f64(),
            fmt_bytes(self.rate() as u64)
        );
        if let Some(s) = &self.stats {
            line.push_str(&format!(
                "; {} retransmissions, {} symbols repaired by FEC",
                s.retransmits, s.fec_corrected
            ));
        }
        line
    }

    /// The JSON object for scripts (one line).
    pub fn json(&self) -> String {
        let mut v = json!({
            "command": self.command,
            "ok": true,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "seconds": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "bytes_per_second": self.rate().round(),
        });
        if let (Some(s), Some(obj)) = (&self.stats, v.as_object_mut()) {
            obj.insert("link".into(), stats_json(s));
        }
        if let Some(obj) = v.as_object_mut() {
            obj.extend(self.extra.clone());
        }
        v.to_string()
    }

    /// Prints the summary: JSON on stdout if `json`, else the line on stderr.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", self.json());
        } else {
            eprintln!("{}", self.line());
        }
    }
}

/// A failure as the JSON object `--json` prints (exit status and the one-line message).
pub fn failure_json(command: &str, code: u8, message: &str) -> String {
    json!({ "command": command, "ok": false, "exit_status": code, "error": message }).to_string()
}

/// `--stats-interval`: every `every`, one JSON line on stderr, `{"seconds": ..., "link": {...}}`,
/// until the process ends.
pub async fn stats_lines(link: crate::driver::LinkHandle, every: Duration) {
    let start = std::time::Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        let secs = (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        eprintln!("{}", json!({ "seconds": secs, "link": stats_json(&link.stats()) }));
    }
}

/// The link counters as JSON (`--json`, `--stats-interval`).
pub fn stats_json(s: &Stats) -> Value {
    json!({
        "frames_sent": s.frames_tx,
        "frames_received": s.frames_rx,
        "bytes_sent": s.bytes_tx,
        "bytes_received": s.bytes_rx,
        "retransmissions": s.retransmits,
        "needless_retransmissions": s.spurious_retransmits,
        "crc_errors": s.crc_errors,
        "fec_symbols_repaired": s.fec_corrected,
        "fec_frames_beyond_repair": s.fec_failed,
        "rtt_ms": s.srtt_us as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_json_carry_the_same_figures() {
        let mut s = Summary::new("spool", "sent 2 packets, received 1".into(), 1_048_576, 524_288)
            .with("packets_sent", 2)
            .with("packets_received", 1);
        s.elapsed = Duration::from_secs(2);
        let stats = Stats { retransmits: 7, fec_corrected: 42, ..Default::default() };
        s.stats = Some(stats);
        assert_eq!(
            s.line(),
            "strand spool: sent 2 packets, received 1; 1.5 MiB in 2.0 s (768.0 KiB/s); 7 retransmissions, 42 symbols repaired by FEC"
        );
        let v: Value = serde_json::from_str(&s.json()).unwrap();
        assert_eq!(v["command"], "spool");
        assert_eq!(v["ok"], true);
        assert_eq!(v["bytes_sent"], 1_048_576);
        assert_eq!(v["bytes_received"], 524_288);
        assert_eq!(v["seconds"], 2.0);
        assert_eq!(v["packets_sent"], 2);
        assert_eq!(v["link"]["retransmissions"], 7);
        assert_eq!(v["link"]["fec_symbols_repaired"], 42);
        let f: Value = serde_json::from_str(&failure_json("spool", 4, "link lost")).unwrap();
        assert_eq!((f["ok"].clone(), f["exit_status"].clone()), (json!(false), json!(4)));
    }
}
