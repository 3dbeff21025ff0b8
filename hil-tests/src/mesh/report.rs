//! Figures over several runs (one per layout), as the REF-30 reference reports
//! them: the mean over layouts of each layout's figure, with the spread; and
//! the JSON object and CSV rows `meshsim` writes.

use std::fmt::Write as _;

use super::sim::RunResult;

/// The `q`-quantile (0..=1) of `xs`, interpolating linearly between order
/// statistics (numpy's default); `None` for no samples.
pub fn quantile(xs: &[f64], q: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// `x` with `decimals` decimals as a JSON number, or `null` when it has no value (no
/// delivery: no latency, and an infinite airtime per delivered byte).
fn json_num(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "null".to_string()
    }
}

/// What was run, for the report.
#[derive(Debug, Clone)]
pub struct Condition {
    /// Scenario name ("ref30").
    pub scenario: String,
    /// Load name ("light", "heavy", or the interval).
    pub load: String,
    /// Mean interval between a node's messages, s.
    pub mean_interval_s: f64,
    /// "broadcast" or "direct".
    pub traffic: String,
    /// Protocol name.
    pub protocol: String,
    /// Whether the protocol kept the duty cycle.
    pub duty_cycle_enforced: bool,
    /// "poisson" or "after-settled".
    pub arrivals: String,
}

/// Mean, min and max of one figure over the runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    fn of(xs: impl Iterator<Item = f64>) -> Spread {
        let v: Vec<f64> = xs.collect();
        let n = v.len().max(1) as f64;
        Spread {
            mean: v.iter().sum::<f64>() / n,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// Runs of one condition, one per seed (seed N on layout N).
#[derive(Debug, Clone)]
pub struct Summary {
    /// What was run.
    pub condition: Condition,
    /// One result per seed.
    pub runs: Vec<RunResult>,
}

impl Summary {
    /// Delivery ratio per layout.
    pub fn delivery(&self) -> Spread {
        Spread::of(self.runs.iter().map(RunResult::delivery_ratio))
    }

    /// Airtime per delivered byte per layout, ms.
    pub fn airtime_per_byte(&self) -> Spread {
        Spread::of(self.runs.iter().map(RunResult::airtime_ms_per_delivered_byte))
    }

    /// Each layout's median latency, s.
    pub fn latency_p50(&self) -> Spread {
        Spread::of(self.runs.iter().map(|r| quantile(&r.latencies, 0.5).unwrap_or(f64::NAN)))
    }

    /// Each layout's 95th-percentile latency, s.
    pub fn latency_p95(&self) -> Spread {
        Spread::of(self.runs.iter().map(|r| quantile(&r.latencies, 0.95).unwrap_or(f64::NAN)))
    }

    /// Collisions, summed over the runs.
    pub fn collisions(&self) -> u64 {
        self.runs.iter().map(|r| r.collisions).sum()
    }

    /// Duty-cycle violations, summed over the runs.
    pub fn duty_cycle_violations(&self) -> u64 {
        self.runs.iter().map(|r| r.duty_cycle_violations).sum()
    }

    /// The busiest node's transmit share in any run, percent.
    pub fn max_node_channel_use_percent(&self) -> f64 {
        self.runs.iter().flat_map(|r| r.node_channel_use_percent()).fold(0.0, f64::max)
    }

    /// Slowest run's wall-clock time, s.
    pub fn max_wall_s(&self) -> f64 {
        self.runs.iter().map(|r| r.wall.as_secs_f64()).fold(0.0, f64::max)
    }

    /// The JSON object `meshsim --json` prints.
    pub fn to_json(&self) -> String {
        let c = &self.condition;
        let (d, a, p50, p95) =
            (self.delivery(), self.airtime_per_byte(), self.latency_p50(), self.latency_p95());
        let mut s = String::from("{");
        let _ = write!(
            s,
            "\"scenario\":\"{}\",\"load\":\"{}\",\"mean_interval_s\":{},\"traffic\":\"{}\",\"protocol\":\"{}\",\
             \"duty_cycle_enforced\":{},\"arrivals\":\"{}\",\"seeds\":[{}],",
            c.scenario,
            c.load,
            c.mean_interval_s,
            c.traffic,
            c.protocol,
            c.duty_cycle_enforced,
            c.arrivals,
            self.runs.iter().map(|r| r.seed.to_string()).collect::<Vec<_>>().join(",")
        );
        let _ = write!(
            s,
            "\"delivery_ratio\":{},\"delivery_ratio_min\":{},\"delivery_ratio_max\":{},\
             \"airtime_ms_per_delivered_byte\":{},\"airtime_ms_per_delivered_byte_min\":{},\
             \"airtime_ms_per_delivered_byte_max\":{},\"latency_p50_s\":{},\"latency_p95_s\":{},\
             \"collisions\":{},\"duty_cycle_violations\":{},\"max_node_channel_use_percent\":{},",
            json_num(d.mean, 4),
            json_num(d.min, 4),
            json_num(d.max, 4),
            json_num(a.mean, 3),
            json_num(a.min, 3),
            json_num(a.max, 3),
            json_num(p50.mean, 2),
            json_num(p95.mean, 2),
            self.collisions(),
            self.duty_cycle_violations(),
            json_num(self.max_node_channel_use_percent(), 2)
        );
        let _ = write!(
            s,
            "\"messages\":{},\"refused\":{},\"corrupt\":{},\"max_wall_s_per_run\":{:.3}}}",
            self.runs.iter().map(|r| r.messages).sum::<u64>(),
            self.runs.iter().map(|r| r.refused).sum::<u64>(),
            self.runs.iter().map(|r| r.corrupt).sum::<u64>(),
            self.max_wall_s()
        );
        s
    }

    /// The CSV header of [`Summary::csv_rows`].
    pub const CSV_HEADER: &'static str = "scenario,load,mean_interval_s,traffic,protocol,duty_cycle_enforced,arrivals,seed,layout,\
        messages,refused,intended,delivered,delivery_ratio,airtime_s,transmissions,airtime_ms_per_delivered_byte,\
        latency_p50_s,latency_p95_s,collisions,deaf,duty_cycle_violations,max_node_channel_use_percent,corrupt,events,wall_s";

    /// The CSV header of [`Summary::node_csv_rows`].
    pub const NODE_CSV_HEADER: &'static str =
        "scenario,load,traffic,protocol,duty_cycle_enforced,arrivals,seed,layout,node,tx_airtime_s,channel_use_percent";

    /// One CSV row per node of every run: its transmit airtime and share of the run.
    pub fn node_csv_rows(&self) -> Vec<String> {
        let c = &self.condition;
        let mut rows = Vec::new();
        for r in &self.runs {
            for (node, (air, pct)) in r.node_airtime.iter().zip(r.node_channel_use_percent()).enumerate() {
                rows.push(format!(
                    "{},{},{},{},{},{},{},{},{node},{:.3},{pct:.3}",
                    c.scenario,
                    c.load,
                    c.traffic,
                    c.protocol,
                    c.duty_cycle_enforced,
                    c.arrivals,
                    r.seed,
                    r.layout,
                    air.as_secs_f64()
                ));
            }
        }
        rows
    }

    /// One CSV row per run.
    pub fn csv_rows(&self) -> Vec<String> {
        let c = &self.condition;
        self.runs
            .iter()
            .map(|r| {
                format!(
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{:.4},{:.3},{},{:.3},{:.2},{:.2},{},{},{},{:.2},{},{},{:.3}",
                    c.scenario,
                    c.load,
                    c.mean_interval_s,
                    c.traffic,
                    c.protocol,
                    c.duty_cycle_enforced,
                    c.arrivals,
                    r.seed,
                    r.layout,
                    r.messages,
                    r.refused,
                    r.intended,
                    r.delivered,
                    r.delivery_ratio(),
                    r.airtime.as_secs_f64(),
                    r.transmissions,
                    r.airtime_ms_per_delivered_byte(),
                    quantile(&r.latencies, 0.5).unwrap_or(f64::NAN),
                    quantile(&r.latencies, 0.95).unwrap_or(f64::NAN),
                    r.collisions,
                    r.deaf,
                    r.duty_cycle_violations,
                    r.node_channel_use_percent().into_iter().fold(0.0, f64::max),
                    r.corrupt,
                    r.events,
                    r.wall.as_secs_f64()
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let xs = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&xs, 0.5), Some(2.5));
        assert_eq!(quantile(&xs, 0.0), Some(1.0));
        assert_eq!(quantile(&xs, 1.0), Some(4.0));
        assert!((quantile(&xs, 0.95).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn numbers_without_a_value_are_json_null() {
        assert_eq!(json_num(0.91234, 3), "0.912");
        assert_eq!(json_num(f64::INFINITY, 3), "null");
        assert_eq!(json_num(f64::NAN, 2), "null");
    }
}
