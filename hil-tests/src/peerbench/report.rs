//! Results: one record per run, the CSV file (written after every run, so an interrupted benchmark
//! keeps what it measured, and read back by `--from-csv`), and the Markdown tables.

use std::fmt::Write as _;
use std::path::Path;

use super::peers::Peer;
pub use strand_hil::report::fmt_ber;
use strand_hil::report::{csv_text, write_atomically};

/// The CSV columns, in order: the twelve, then the run's seed and what the line counted.
pub const COLUMNS: [&str; 16] = [
    "tool",
    "version",
    "settings",
    "bit_rate",
    "condition",
    "ber",
    "bytes",
    "seconds",
    "goodput_bytes_per_s",
    "pct_of_line_limit",
    "ok",
    "failure_reason",
    "seed",
    "line_bytes_a_to_b",
    "line_bytes_b_to_a",
    "bit_errors",
];

/// One run's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Short tool name (`strand`, `relpkt`, `zmodem`, `kermit`).
    pub tool: String,
    /// Version as the tool reports it.
    pub version: String,
    /// Settings in words.
    pub settings: String,
    /// Line rate, bit/s (8N1).
    pub bit_rate: u64,
    /// `clean`, `iid` (independent bit errors) or `burst P_ENTER,P_LEAVE,BER_BAD`.
    pub condition: String,
    /// Bit-error rate (the long-run mean for bursts).
    pub ber: f64,
    /// File size.
    pub bytes: u64,
    /// Wall time from starting the receiver until both exited (or until the failure was seen).
    pub seconds: f64,
    /// `bytes / seconds` on success, 0 on failure.
    pub goodput: f64,
    /// Goodput as a percentage of the line limit (`bit_rate / 10` bytes/s).
    pub pct: f64,
    /// Both exited 0 and the hash matched.
    pub ok: bool,
    /// Why not, when not.
    pub reason: String,
    /// Seed of the file and the line damage.
    pub seed: u64,
    /// Bytes the sender's end put on the line (0 if unknown).
    pub line_a_to_b: u64,
    /// Bytes the receiver's end put on the line.
    pub line_b_to_a: u64,
    /// Bits the line flipped, both directions.
    pub bit_errors: u64,
}

impl Record {
    /// The fields as CSV text, in [`COLUMNS`] order.
    fn fields(&self) -> [String; 16] {
        [
            self.tool.clone(),
            self.version.clone(),
            self.settings.clone(),
            self.bit_rate.to_string(),
            self.condition.clone(),
            fmt_ber(self.ber),
            self.bytes.to_string(),
            format!("{:.3}", self.seconds),
            format!("{:.0}", self.goodput),
            format!("{:.2}", self.pct),
            self.ok.to_string(),
            self.reason.clone(),
            self.seed.to_string(),
            self.line_a_to_b.to_string(),
            self.line_b_to_a.to_string(),
            self.bit_errors.to_string(),
        ]
    }

    /// Parses the fields of one CSV row.
    fn from_fields(f: &[String]) -> Result<Record, String> {
        if f.len() != COLUMNS.len() {
            return Err(format!("expected {} fields, got {}", COLUMNS.len(), f.len()));
        }
        let num = |i: usize| -> Result<f64, String> {
            f[i].parse().map_err(|_| format!("{}: {:?} is not a number", COLUMNS[i], f[i]))
        };
        let int = |i: usize| -> Result<u64, String> {
            f[i].parse().map_err(|_| format!("{}: {:?} is not an integer", COLUMNS[i], f[i]))
        };
        Ok(Record {
            tool: f[0].clone(),
            version: f[1].clone(),
            settings: f[2].clone(),
            bit_rate: int(3)?,
            condition: f[4].clone(),
            ber: num(5)?,
            bytes: int(6)?,
            seconds: num(7)?,
            goodput: num(8)?,
            pct: num(9)?,
            ok: f[10] == "true",
            reason: f[11].clone(),
            seed: int(12)?,
            line_a_to_b: int(13)?,
            line_b_to_a: int(14)?,
            bit_errors: int(15)?,
        })
    }

    /// Whether this run was on a bursty line.
    pub fn is_burst(&self) -> bool {
        self.condition.starts_with("burst")
    }
}

/// The whole CSV text of `records`.
pub fn to_csv(records: &[Record]) -> String {
    let rows: Vec<Vec<String>> = records.iter().map(|r| r.fields().to_vec()).collect();
    csv_text(&COLUMNS, &rows)
}

/// Writes `records` to `path` (through a temporary file, so a reader never sees half a file).
pub fn write_csv(path: &Path, records: &[Record]) -> Result<(), String> {
    write_atomically(path, &to_csv(records))
}

/// Splits CSV text into rows of fields (RFC 4180 quoting; what [`to_csv`] writes).
fn parse_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Reads a CSV written by [`write_csv`].
pub fn read_csv(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let rows = parse_rows(&text);
    let Some((header, body)) = rows.split_first() else {
        return Err(format!("{} is empty", path.display()));
    };
    if header.iter().map(String::as_str).ne(COLUMNS) {
        return Err(format!("{} does not have peerbench's columns", path.display()));
    }
    body.iter()
        .enumerate()
        .map(|(i, row)| {
            Record::from_fields(row).map_err(|e| format!("{} row {}: {e}", path.display(), i + 2))
        })
        .collect()
}

/// Bytes in words: `1 MiB`, `128 KiB`, `1000 bytes`.
pub fn fmt_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// A number with thousands separators: `2,000,000`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The tools present in `records`, in the standard order.
pub fn tools_in(records: &[Record]) -> Vec<Peer> {
    Peer::ALL.into_iter().filter(|p| records.iter().any(|r| r.tool == p.name())).collect()
}

/// The line conditions in `records` for one rate, in first-seen order, as (condition, ber).
fn conditions_in(records: &[Record], rate: u64) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for r in records.iter().filter(|r| r.bit_rate == rate) {
        if !out.iter().any(|(c, b)| *c == r.condition && *b == r.ber) {
            out.push((r.condition.clone(), r.ber));
        }
    }
    out
}

/// The rates in `records`, in first-seen order.
pub fn rates_in(records: &[Record]) -> Vec<u64> {
    let mut out = Vec::new();
    for r in records {
        if !out.contains(&r.bit_rate) {
            out.push(r.bit_rate);
        }
    }
    out
}

/// A short failure label for a table cell: `timeout after 35.7 s`, or which side exited how and the
/// last words of its message (`receiver exit 1: Operation timed out`).
fn short_reason(reason: &str) -> String {
    let Some(open) = reason.find('(') else {
        return reason.split(';').next().unwrap_or(reason).trim().to_string();
    };
    let head = reason[..open].trim();
    if head.starts_with("timeout") {
        return head.to_string();
    }
    let inner = &reason[open + 1..reason.rfind(')').unwrap_or(reason.len())];
    match inner.rsplit(": ").next().map(str::trim).filter(|w| !w.is_empty()) {
        Some(words) => format!("{head}: {words}"),
        None => head.to_string(),
    }
}

/// The line condition in words for a table row.
fn condition_words(condition: &str) -> String {
    match condition {
        "clean" => "clean".into(),
        "iid" => "random bit errors".into(),
        c => match c.strip_prefix("burst ") {
            Some(spec) => format!("bursts (Gilbert-Elliott {spec})"),
            None => c.into(),
        },
    }
}

/// The Markdown report: per rate a table of % of line limit (condition x tool), the failures with their
/// reasons, then the tools' versions and settings.
pub fn markdown(records: &[Record]) -> String {
    let tools = tools_in(records);
    let mut md = String::new();
    for rate in rates_in(records) {
        let at_rate: Vec<&Record> = records.iter().filter(|r| r.bit_rate == rate).collect();
        let bytes = at_rate.first().map_or(0, |r| r.bytes);
        let _ = writeln!(
            md,
            "**{} bit/s 8N1** (line limit {} bytes/s), {} file, whole-process goodput as % of the line limit \
             (seconds in brackets):\n",
            thousands(rate),
            thousands(rate / 10),
            fmt_bytes(bytes)
        );
        let _ = writeln!(
            md,
            "| line | BER | {} |",
            tools.iter().map(|t| t.title()).collect::<Vec<_>>().join(" | ")
        );
        let _ = writeln!(md, "|---|---|{}", "---|".repeat(tools.len()));
        for (condition, ber) in conditions_in(records, rate) {
            let cells: Vec<String> = tools
                .iter()
                .map(|t| {
                    let runs: Vec<&&Record> = at_rate
                        .iter()
                        .filter(|r| r.tool == t.name() && r.condition == condition && r.ber == ber)
                        .collect();
                    match runs.as_slice() {
                        [] => "-".into(),
                        [r] if r.ok => format!("{:.1}% ({:.2} s)", r.pct, r.seconds),
                        [r] => format!("fail: {}", short_reason(&r.reason)),
                        many => many
                            .iter()
                            .map(|r| if r.ok { format!("{:.1}%", r.pct) } else { "fail".into() })
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })
                .collect();
            let ber_text =
                if condition.starts_with("burst") { format!("{} mean", fmt_ber(ber)) } else { fmt_ber(ber) };
            let _ =
                writeln!(md, "| {} | {} | {} |", condition_words(&condition), ber_text, cells.join(" | "));
        }
        let failures: Vec<&&Record> = at_rate.iter().filter(|r| !r.ok).collect();
        if !failures.is_empty() {
            let _ = writeln!(md, "\nFailures at {} bit/s:\n", thousands(rate));
            for r in failures {
                let tool = Peer::from_name(&r.tool).map_or(r.tool.clone(), |p| p.title().to_string());
                let _ = writeln!(
                    md,
                    "- {tool}, {}, BER {}: {}",
                    condition_words(&r.condition),
                    fmt_ber(r.ber),
                    r.reason
                );
            }
        }
        md.push('\n');
    }
    let _ = writeln!(md, "| tool | version | settings |\n|---|---|---|");
    for t in tools {
        if let Some(r) = records.iter().find(|r| r.tool == t.name()) {
            // The settings name the rate of the first run; the table is for all rates.
            let settings = r.settings.replace(&r.bit_rate.to_string(), "RATE").replace('|', "\\|");
            let _ = writeln!(md, "| {} | {} | `{settings}` |", t.title(), r.version);
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tool: &str, ok: bool) -> Record {
        Record {
            tool: tool.into(),
            version: "v1, \"quoted\"".into(),
            settings: "a,b".into(),
            bit_rate: 2_000_000,
            condition: "burst 3.3e-6,3.3e-3,1e-2".into(),
            ber: 1e-5,
            bytes: 1 << 20,
            seconds: 5.5,
            goodput: if ok { 190_650.0 } else { 0.0 },
            pct: if ok { 95.33 } else { 0.0 },
            ok,
            reason: if ok { String::new() } else { "timeout after 35.7 s (receiver had 0 of 1 MiB)".into() },
            seed: 1,
            line_a_to_b: 1_060_000,
            line_b_to_a: 9_000,
            bit_errors: 12,
        }
    }

    #[test]
    fn csv_round_trips() {
        let records = vec![record("strand", true), record("relpkt", false)];
        let dir = std::env::temp_dir().join(format!("peerbench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.csv");
        write_csv(&path, &records).unwrap();
        assert_eq!(read_csv(&path).unwrap(), records);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ber(0.0), "0");
        assert_eq!(fmt_ber(1e-6), "1e-6");
        assert_eq!(fmt_ber(9.99e-6), "1e-5");
        assert_eq!(fmt_ber(2.5e-5), "2.5e-5");
        assert_eq!(thousands(2_000_000), "2,000,000");
        assert_eq!(thousands(11_520), "11,520");
        assert_eq!(fmt_bytes(1 << 20), "1 MiB");
        assert_eq!(fmt_bytes(128 << 10), "128 KiB");
        assert_eq!(short_reason("timeout after 35.7 s (receiver had 0)"), "timeout after 35.7 s");
        assert_eq!(
            short_reason(
                "receiver exit 1 (...local: read error: Operation timed out); the receiver had written 0"
            ),
            "receiver exit 1: Operation timed out"
        );
        assert_eq!(
            short_reason("exit 0 but wrong hash: the file is corrupt"),
            "exit 0 but wrong hash: the file is corrupt"
        );
    }

    #[test]
    fn markdown_has_a_row_per_condition_and_lists_failures() {
        let md = markdown(&[record("strand", true), record("relpkt", false)]);
        assert!(md.contains("| line | BER | strand | gensio relpkt |"), "{md}");
        assert!(md.contains("95.3% (5.50 s) | fail: timeout after 35.7 s |"), "{md}");
        assert!(md.contains("- gensio relpkt, bursts"), "{md}");
    }
}
