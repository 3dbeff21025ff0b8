//! Small pieces the benchmarks' reports share: CSV writing, BER labels, order statistics.

use std::path::Path;

/// A BER in short form: `0`, `1e-6`, `2.5e-5`.
pub fn fmt_ber(ber: f64) -> String {
    if ber == 0.0 {
        return "0".into();
    }
    let s = format!("{ber:.1e}");
    s.replace(".0e", "e")
}

/// One CSV field, quoted when it holds a comma, quote or line break.
pub fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// CSV text: a header line, then one line per row.
pub fn csv_text<S: AsRef<str>>(header: &[&str], rows: &[Vec<S>]) -> String {
    let mut out = header.join(",") + "\n";
    for row in rows {
        out += &row.iter().map(|f| quote(f.as_ref())).collect::<Vec<_>>().join(",");
        out += "\n";
    }
    out
}

/// Writes `text` to `path` through a temporary file, so a reader never sees half a file.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The `q`-quantile (0..=1) of `values` by nearest rank (the smallest value with at least `q` of
/// them at or below it); None when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied()
}

/// The median (the mean of the two middle values for an even count); None when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistics() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(&v), Some(3.0));
        assert_eq!(median(&v[..4]), Some(2.5));
        assert_eq!(median(&[]), None);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&hundred, 0.5), Some(50.0));
        assert_eq!(quantile(&hundred, 0.99), Some(99.0));
        assert_eq!(quantile(&hundred, 1.0), Some(100.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        let text = csv_text(&["a", "b"], &[vec!["x", "y,z"], vec!["say \"hi\"", ""]]);
        assert_eq!(text, "a,b\nx,\"y,z\"\n\"say \"\"hi\"\"\",\n");
    }
}
