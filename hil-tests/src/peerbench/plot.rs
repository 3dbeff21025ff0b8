//! The SVG plot: goodput as % of the line limit against BER (log axis), one curve per tool, one panel
//! per line rate. Text is written as SVG text, so no fonts are needed to draw it.

use std::path::Path;

use plotters::prelude::*;

use super::report::{fmt_ber, fmt_bytes, rates_in, thousands, tools_in, Record};

/// Where BER 0 is drawn on the log axis (as log10).
const CLEAN_X: f64 = -7.0;
/// One colour per tool, in `Peer::ALL` order.
const COLOURS: [RGBColor; 4] =
    [RGBColor(0, 90, 200), RGBColor(220, 120, 0), RGBColor(0, 150, 70), RGBColor(190, 30, 60)];

/// The x position of a BER: log10, with 0 at [`CLEAN_X`].
fn x_of(ber: f64) -> f64 {
    if ber > 0.0 {
        ber.log10()
    } else {
        CLEAN_X
    }
}

/// Axis label of an x position: powers of ten only, and "0" where BER 0 is drawn.
fn x_label(x: f64) -> String {
    if (x - x.round()).abs() > 1e-6 {
        String::new()
    } else if x.round() == CLEAN_X {
        "0".into()
    } else {
        format!("1e{}", x.round() as i64)
    }
}

/// Draws `records` into the SVG file `path`, one panel per rate, side by side.
pub fn plot(path: &Path, records: &[Record]) -> Result<(), String> {
    let rates = rates_in(records);
    if rates.is_empty() {
        return Err("nothing to plot".into());
    }
    let width = 620 * rates.len() as u32;
    let root = SVGBackend::new(path, (width, 460 + LEGEND_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    for (panel, rate) in root.split_evenly((1, rates.len())).iter().zip(rates) {
        panel_for(panel, rate, records).map_err(|e| format!("plotting {rate} bit/s: {e}"))?;
    }
    root.present().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What a legend entry shows next to its text.
enum Mark {
    /// A tool's curve.
    Line(RGBColor),
    /// The bursty runs' open triangle.
    Triangle,
    /// A failed run's cross.
    Cross,
}

/// One rate's panel: the chart, and under it a legend strip (inside the chart it would hide points).
fn panel_for<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    rate: u64,
    records: &[Record],
) -> Result<(), Box<dyn std::error::Error + 'static>>
where
    DB::ErrorType: 'static,
{
    let at_rate: Vec<&Record> = records.iter().filter(|r| r.bit_rate == rate).collect();
    let bytes = at_rate.first().map_or(0, |r| r.bytes);
    let bers: Vec<f64> = at_rate.iter().map(|r| x_of(r.ber)).collect();
    let lo = bers.iter().copied().fold(CLEAN_X, f64::min) - 0.4;
    let hi = bers.iter().copied().fold(-3.0, f64::max) + 0.4;
    let (top, bottom) = area.split_vertically(area.dim_in_pixel().1.saturating_sub(LEGEND_HEIGHT));
    let mut chart = ChartBuilder::on(&top)
        .caption(format!("{} bit/s 8N1, {} file", thousands(rate), fmt_bytes(bytes)), ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(lo..hi, 0f64..105f64)?;
    chart
        .configure_mesh()
        .x_labels(((hi - lo) * 2.0).ceil() as usize + 1)
        .x_label_formatter(&|x| x_label(*x))
        .y_labels(11)
        .light_line_style(WHITE)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("bit-error rate (log scale; BER 0 drawn at 1e-7)")
        .y_desc("whole-process goodput, % of line limit")
        .draw()?;
    let mut legend = Vec::new();
    for (i, tool) in tools_in(records).into_iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        legend.push((tool.title().to_string(), Mark::Line(colour)));
        // Each tool's markers sit a little apart so equal results (two tools at 96.6%, or all failing at
        // 0) stay visible; the shift is a hundredth of the axis, far less than a tick.
        let shift = (i as f64 - 1.5) * (hi - lo) / 100.0;
        let mine = |burst: bool| -> Vec<(f64, f64, bool)> {
            let mut pts: Vec<(f64, f64, bool)> = at_rate
                .iter()
                .filter(|r| r.tool == tool.name() && r.is_burst() == burst)
                .map(|r| (x_of(r.ber) + shift, r.pct, r.ok))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            pts
        };
        let (iid, burst) = (mine(false), mine(true));
        chart.draw_series(LineSeries::new(iid.iter().map(|&(x, y, _)| (x, y)), colour.stroke_width(2)))?;
        chart.draw_series(
            iid.iter().filter(|p| p.2).map(|&(x, y, _)| Circle::new((x, y), 4, colour.filled())),
        )?;
        // Bursty runs sit at their mean BER as open triangles, unconnected: they are another kind of line.
        chart.draw_series(burst.iter().filter(|p| p.2).map(|&(x, y, _)| {
            EmptyElement::at((x, y)) + PathElement::new(TRIANGLE, colour.stroke_width(2))
        }))?;
        // A failure (timeout, non-zero exit, wrong file) is a cross at 0%.
        let failed = iid.iter().chain(&burst).filter(|p| !p.2);
        chart.draw_series(failed.map(|&(x, y, _)| Cross::new((x, y), 5, colour.stroke_width(2))))?;
    }
    if let Some(r) = at_rate.iter().find(|r| r.is_burst()) {
        legend.push((format!("bursts, mean BER {}", fmt_ber(r.ber)), Mark::Triangle));
    }
    if at_rate.iter().any(|r| !r.ok) {
        legend.push(("failed (timeout, error, bad file)".into(), Mark::Cross));
    }
    draw_legend(&bottom, &legend)
}

/// Height of the legend strip under each chart, in pixels.
const LEGEND_HEIGHT: u32 = 64;

/// Draws the legend under the chart: the tools' curves on the first row, the marker meanings on the
/// second.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(String, Mark)],
) -> Result<(), Box<dyn std::error::Error + 'static>>
where
    DB::ErrorType: 'static,
{
    let width = area.dim_in_pixel().0 as i32 - 80;
    let (curves, marks): (Vec<_>, Vec<_>) = entries.iter().partition(|(_, m)| matches!(m, Mark::Line(_)));
    for (row, items) in [curves, marks].iter().enumerate() {
        for (i, (text, mark)) in items.iter().enumerate() {
            let x = 70 + i as i32 * width / items.len().max(1) as i32;
            let y = 12 + row as i32 * 24;
            match mark {
                Mark::Line(c) => {
                    area.draw(&PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)))?
                }
                Mark::Triangle => area.draw(
                    &(EmptyElement::at((x + 10, y)) + PathElement::new(TRIANGLE, BLACK.stroke_width(2))),
                )?,
                Mark::Cross => area.draw(&Cross::new((x + 10, y), 5, BLACK.stroke_width(2)))?,
            }
            area.draw(&Text::new(text.clone(), (x + 28, y - 7), ("sans-serif", 13)))?;
        }
    }
    Ok(())
}

/// An open triangle's outline in pixels around its point (plotters' TriangleMarker is always filled).
const TRIANGLE: [(i32, i32); 4] = [(0, -7), (6, 4), (-6, 4), (0, -7)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels() {
        assert_eq!(x_of(0.0), CLEAN_X);
        assert!((x_of(1e-5) + 5.0).abs() < 1e-9);
        assert_eq!(x_label(-7.0), "0");
        assert_eq!(x_label(-4.0), "1e-4");
        assert_eq!(x_label(-4.5), "");
    }
}
