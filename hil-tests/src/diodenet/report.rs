//! Records of the runs, the CSV they are kept in, the table printed from
//! them (medians over seeds) and the plot.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use super::relay::Loss;
use super::runs::Setup;

/// One run.
#[derive(Debug, Clone)]
pub struct Record {
    /// `strand onepass`, `strand carousel`, `lidi repair 15`.
    pub tool: String,
    /// The loss condition's label (`10`, `10b10`).
    pub condition: String,
    /// Long-run loss share.
    pub p: f64,
    /// Seed of the loss model.
    pub seed: u64,
    /// The file arrived byte for byte.
    pub ok: bool,
    /// File size.
    pub bytes: u64,
    /// Seconds from starting the sender to the receiver holding the file.
    pub secs: f64,
    /// Payload bytes the sender put on the path (one pass: all of it; else until the receiver had the file).
    pub wire: u64,
    /// `wire / (bytes / (1 - p))`.
    pub ratio: f64,
    /// Payload bytes on the path when the receiver exited (for a carousel,
    /// including what went out while it verified and published).
    pub wire_at_exit: u64,
    /// File data rate, Mbit/s.
    pub mbit: f64,
    /// The shaped rate, Mbit/s.
    pub cap_mbit: f64,
    /// CPU seconds per GB of file, sender side (all its processes).
    pub tx_cpu_per_gb: f64,
    /// CPU seconds per GB of file, receiver side.
    pub rx_cpu_per_gb: f64,
    /// Datagrams the receiver's host dropped (strand reports them).
    pub local_drops: u64,
    /// Datagrams the relay's socket dropped (0 in a valid run).
    pub relay_overflow: u64,
    /// Why it failed.
    pub note: String,
}

impl Record {
    /// A record from a run's measurements, with the bytes on the path when the receiver exited.
    #[allow(clippy::too_many_arguments)]
    pub fn new_with_exit(
        wire_at_exit: u64,
        tool: String,
        loss: Loss,
        seed: u64,
        setup: &Setup,
        ok: bool,
        secs: f64,
        wire: u64,
        cpu: (f64, f64),
        local_drops: u64,
        relay_overflow: u64,
        note: String,
    ) -> Record {
        let bytes = setup.bytes.len() as u64;
        let gb = bytes as f64 / 1e9;
        Record {
            tool,
            condition: loss.label(),
            p: loss.p(),
            seed,
            ok,
            bytes,
            secs,
            wire,
            ratio: wire as f64 / (bytes as f64 / (1.0 - loss.p())),
            wire_at_exit,
            mbit: if ok { bytes as f64 * 8.0 / secs / 1e6 } else { 0.0 },
            cap_mbit: setup.cap as f64 / 1e6,
            tx_cpu_per_gb: cpu.0 / gb,
            rx_cpu_per_gb: cpu.1 / gb,
            local_drops,
            relay_overflow,
            note,
        }
    }
}

/// The CSV header.
pub const HEADER: &str = "tool,condition,p,seed,ok,bytes,secs,wire_bytes,ratio,mbit,cap_mbit,tx_cpu_s_per_gb,rx_cpu_s_per_gb,local_drops,relay_overflow,wire_bytes_at_exit,note";

/// One CSV line.
pub fn csv_line(r: &Record) -> String {
    format!(
        "{},{},{},{},{},{},{:.3},{},{:.4},{:.1},{:.0},{:.2},{:.2},{},{},{},\"{}\"",
        r.tool,
        r.condition,
        r.p,
        r.seed,
        r.ok,
        r.bytes,
        r.secs,
        r.wire,
        r.ratio,
        r.mbit,
        r.cap_mbit,
        r.tx_cpu_per_gb,
        r.rx_cpu_per_gb,
        r.local_drops,
        r.relay_overflow,
        r.wire_at_exit,
        r.note.replace('"', "'")
    )
}

/// Reads records back from a CSV written by [`csv_line`].
pub fn read_csv(text: &str) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let (fields, note) = match line.split_once(",\"") {
            Some((f, n)) => (f, n.trim_end_matches('"').to_string()),
            None => (line, String::new()),
        };
        let f: Vec<&str> = fields.split(',').collect();
        let bad = || format!("line {}: {line}", i + 1);
        if f.len() < 16 {
            return Err(bad());
        }
        let num = |k: usize| f[k].parse::<f64>().map_err(|_| bad());
        out.push(Record {
            tool: f[0].into(),
            condition: f[1].into(),
            p: num(2)?,
            seed: num(3)? as u64,
            ok: f[4] == "true",
            bytes: num(5)? as u64,
            secs: num(6)?,
            wire: num(7)? as u64,
            ratio: num(8)?,
            mbit: num(9)?,
            cap_mbit: num(10)?,
            tx_cpu_per_gb: num(11)?,
            rx_cpu_per_gb: num(12)?,
            local_drops: num(13)? as u64,
            relay_overflow: num(14)? as u64,
            wire_at_exit: num(15)? as u64,
            note,
        });
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Records grouped by (condition, tool), conditions in the order first seen.
fn groups(records: &[Record]) -> Vec<((String, String), Vec<&Record>)> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut map: BTreeMap<(String, String), Vec<&Record>> = BTreeMap::new();
    for r in records {
        let k = (r.condition.clone(), r.tool.clone());
        if !map.contains_key(&k) {
            order.push(k.clone());
        }
        map.entry(k).or_default().push(r);
    }
    order.into_iter().map(|k| (k.clone(), map.remove(&k).unwrap_or_default())).collect()
}

/// The markdown table: per condition and tool, successes, the bytes ratio
/// (median and worst), the rate (median, and as a share of the cap) and CPU.
pub fn table(records: &[Record]) -> String {
    let mut s = String::from(
        "| loss | tool | byte-exact | bytes / limit (median, worst) | file data rate (median) | of cap | sender CPU s/GB | receiver CPU s/GB | dropped at receiver host |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for ((cond, tool), rs) in groups(records) {
        // Runs whose relay dropped datagrams measured another condition: left out, and said so.
        let invalid = rs.iter().filter(|r| r.relay_overflow > 0).count();
        let rs: Vec<&Record> = rs.into_iter().filter(|r| r.relay_overflow == 0).collect();
        if rs.is_empty() {
            continue;
        }
        let ok = rs.iter().filter(|r| r.ok).count();
        let ratios: Vec<f64> = rs.iter().map(|r| r.ratio).collect();
        let worst = ratios.iter().copied().fold(0.0, f64::max);
        let rate = median(rs.iter().map(|r| r.mbit).collect());
        let cap = rs[0].cap_mbit;
        let label = match cond.split_once('b') {
            Some((p, m)) => format!("{p}% in bursts of {m}"),
            None => format!("{cond}%"),
        };
        let shown = if invalid > 0 {
            format!("{ok}/{} ({invalid} void: relay overflow)", rs.len())
        } else {
            format!("{ok}/{}", rs.len())
        };
        s += &format!(
            "| {label} | {tool} | {shown} | {:.3}, {:.3} | {rate:.1} Mbit/s | {:.1}% | {:.2} | {:.2} | {} |\n",
            median(ratios),
            worst,
            100.0 * rate / cap,
            median(rs.iter().map(|r| r.tx_cpu_per_gb).collect()),
            median(rs.iter().map(|r| r.rx_cpu_per_gb).collect()),
            rs.iter().map(|r| r.local_drops).max().unwrap_or(0),
        );
    }
    s
}

const COLOURS: [RGBColor; 5] = [
    RGBColor(0, 90, 200),
    RGBColor(0, 150, 70),
    RGBColor(220, 120, 0),
    RGBColor(190, 30, 60),
    RGBColor(120, 60, 160),
];

/// The series a record is drawn in: its tool, with lidi's repair settings
/// named by the rule that chose them (`runs::lidi_repairs`), not by value.
fn series(r: &Record) -> String {
    let Some(repair) = r.tool.strip_prefix("lidi repair ").and_then(|n| n.parse::<u32>().ok()) else {
        return r.tool.clone();
    };
    let rule = match Loss::parse(&r.condition).map(super::runs::lidi_repairs) {
        Ok([low, _]) if low == repair => "lidi, repair 1.25 x overhead + 2",
        Ok([_, high]) if high == repair => "lidi, repair 2 x overhead + 5",
        _ => return r.tool.clone(),
    };
    rule.to_string()
}

/// Two panels: bytes on the wire over the 1/(1-p) limit, and the file data
/// rate, per condition and tool (medians of the byte-exact runs; a failed
/// run drawn as a cross at the bottom; void runs left out).
pub fn plot(path: &Path, records: &[Record]) -> Result<(), String> {
    let records: Vec<Record> = records
        .iter()
        .filter(|r| r.relay_overflow == 0)
        .map(|r| Record { tool: series(r), ..r.clone() })
        .collect();
    let records = &records[..];
    let mut conds: Vec<String> = Vec::new();
    let mut tools: Vec<String> = Vec::new();
    for r in records {
        if !conds.contains(&r.condition) {
            conds.push(r.condition.clone());
        }
        if !tools.contains(&r.tool) {
            tools.push(r.tool.clone());
        }
    }
    if conds.is_empty() {
        return Err("nothing to plot".into());
    }
    let root = SVGBackend::new(path, (1240, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((1, 2));
    let cap = records[0].cap_mbit;
    let label = |i: &usize| {
        conds.get(*i).map(|c| match c.split_once('b') {
            Some((p, m)) => format!("{p}% b{m}"),
            None => format!("{c}%"),
        })
    };
    let draw = |area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
                title: &str,
                y: std::ops::Range<f64>,
                value: &dyn Fn(&Record) -> f64,
                target: f64|
     -> Result<(), Box<dyn std::error::Error>> {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5f64..conds.len() as f64 - 0.5, y.clone())?;
        chart
            .configure_mesh()
            .x_labels(conds.len())
            .x_label_formatter(&|x| label(&(x.round() as usize)).unwrap_or_default())
            .x_desc("frame loss")
            .draw()?;
        chart.draw_series(LineSeries::new(
            [(-0.5, target), (conds.len() as f64 - 0.5, target)],
            BLACK.mix(0.4),
        ))?;
        for (ti, tool) in tools.iter().enumerate() {
            let c = COLOURS[ti % COLOURS.len()];
            let offset = (ti as f64 - (tools.len() as f64 - 1.0) / 2.0) * 0.08;
            let mut pts = Vec::new();
            for (ci, cond) in conds.iter().enumerate() {
                let rs: Vec<&Record> =
                    records.iter().filter(|r| &r.tool == tool && &r.condition == cond).collect();
                if rs.is_empty() {
                    continue;
                }
                for r in rs.iter().filter(|r| !r.ok) {
                    let _ = r;
                    chart.draw_series(std::iter::once(Cross::new(
                        (ci as f64 + offset, y.start + (y.end - y.start) * 0.03),
                        5,
                        c,
                    )))?;
                }
                let ok: Vec<f64> = rs.iter().filter(|r| r.ok).map(|r| value(r)).collect();
                if !ok.is_empty() {
                    pts.push((ci as f64 + offset, median(ok).clamp(y.start, y.end)));
                }
            }
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
                .label(tool.as_str())
                .legend(move |(x, yy)| PathElement::new([(x, yy), (x + 18, yy)], c.stroke_width(2)));
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
        Ok(())
    };
    draw(&panels[0], "bytes on the wire / (file / (1-p)); line: 1.06", 0.95..1.6, &|r| r.ratio, 1.06)
        .map_err(|e| e.to_string())?;
    draw(
        &panels[1],
        &format!("file data rate, Mbit/s (cap {cap:.0}; line: 85%)"),
        0.0..cap * 1.05,
        &|r| r.mbit,
        0.85 * cap,
    )
    .map_err(|e| e.to_string())?;
    root.present().map_err(|e| format!("cannot write {}: {e}", path.display()))
}
