//! SVG plots of the mesh benchmark, drawn with plotters' SVG backend as
//! peerbench's are (text stays SVG text, so no fonts are needed): a map of the
//! nodes and their usable links, and delivery and airtime against load.

use std::path::Path;

use plotters::prelude::*;

use super::layout::Layout;
use super::radio::{Links, RadioConfig};
use super::report::Summary;

type Error = Box<dyn std::error::Error + 'static>;

/// One colour per series.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 90, 200),
    RGBColor(220, 120, 0),
    RGBColor(0, 150, 70),
    RGBColor(190, 30, 60),
    RGBColor(120, 60, 170),
    RGBColor(90, 90, 90),
];

/// Draws layout `layout` with the links of seed `seed`: a line where both
/// directions are usable (RSSI at or above sensitivity), a pale one where only one is.
pub fn map(
    path: &Path,
    layout: &Layout,
    links: &Links,
    radio: &RadioConfig,
    seed: u64,
) -> Result<(), String> {
    draw_map(path, layout, links, radio, seed).map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

fn draw_map(
    path: &Path,
    layout: &Layout,
    links: &Links,
    radio: &RadioConfig,
    seed: u64,
) -> Result<(), Error> {
    let root = SVGBackend::new(path, (720, 780)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, legend) = root.split_vertically(740);
    let (both, one) = link_counts(links, radio);
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!(
                "{}: {} nodes, {both} two-way and {one} one-way usable links (seed {seed})",
                layout.name,
                layout.len()
            ),
            ("sans-serif", 17),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(-2100f64..2100f64, -2100f64..2100f64)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("east, m")
        .y_desc("north, m")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let p = &layout.positions;
    for a in 0..layout.len() {
        for b in a + 1..layout.len() {
            let (ab, ba) = (links.usable(radio, a, b), links.usable(radio, b, a));
            let style = match (ab, ba) {
                (true, true) => RGBColor(80, 80, 80).stroke_width(1),
                (true, false) | (false, true) => RGBColor(235, 150, 150).stroke_width(1),
                (false, false) => continue,
            };
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(p[a].x, p[a].y), (p[b].x, p[b].y)],
                style,
            )))?;
        }
    }
    chart.draw_series(p.iter().map(|q| Circle::new((q.x, q.y), 5, COLOURS[0].filled())))?;
    chart.draw_series(
        p.iter()
            .enumerate()
            .map(|(i, q)| Text::new(i.to_string(), (q.x + 40.0, q.y + 90.0), ("sans-serif", 12))),
    )?;
    legend.draw(&PathElement::new(vec![(60, 18), (80, 18)], RGBColor(80, 80, 80).stroke_width(1)))?;
    legend.draw(&Text::new("both directions usable", (86, 11), ("sans-serif", 13)))?;
    legend.draw(&PathElement::new(vec![(250, 18), (270, 18)], RGBColor(235, 150, 150).stroke_width(1)))?;
    legend.draw(&Text::new(
        format!(
            "one direction only (usable: RSSI >= {} dBm; {} dB shadowing per direction)",
            radio.sensitivity_dbm, radio.shadowing_sigma_db
        ),
        (276, 11),
        ("sans-serif", 13),
    ))?;
    root.present()?;
    Ok(())
}

/// (pairs usable both ways, pairs usable one way only).
pub fn link_counts(links: &Links, radio: &RadioConfig) -> (usize, usize) {
    let (mut both, mut one) = (0, 0);
    for a in 0..links.len() {
        for b in a + 1..links.len() {
            match (links.usable(radio, a, b), links.usable(radio, b, a)) {
                (true, true) => both += 1,
                (true, false) | (false, true) => one += 1,
                _ => {}
            }
        }
    }
    (both, one)
}

/// One line of the load plot: a traffic type with one protocol and duty-cycle mode.
fn series_name(s: &Summary) -> String {
    let c = &s.condition;
    format!(
        "{}, {}{}{}",
        c.traffic,
        c.protocol,
        if c.duty_cycle_enforced { ", duty cycle kept" } else { "" },
        if c.arrivals == "poisson" { "" } else { ", after-settled arrivals" }
    )
}

/// A figure to compare with, drawn as a black cross: offered load (messages per
/// node per hour), delivery (0..1), airtime per delivered byte (ms).
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    /// Messages per node per hour.
    pub rate: f64,
    /// Delivery ratio.
    pub delivery: f64,
    /// Airtime per delivered byte, ms.
    pub airtime_ms: f64,
}

/// Draws delivery and airtime per delivered byte against offered load
/// (messages per node per hour), one line per series, with the spread over
/// layouts, and `markers` (the reference's figures) as crosses.
pub fn load(
    path: &Path,
    summaries: &[Summary],
    markers: &[Marker],
    marker_label: &str,
) -> Result<(), String> {
    draw_load(path, summaries, markers, marker_label)
        .map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

fn draw_load(
    path: &Path,
    summaries: &[Summary],
    markers: &[Marker],
    marker_label: &str,
) -> Result<(), Error> {
    let mut names: Vec<String> = summaries.iter().map(series_name).collect();
    names.dedup();
    names.sort();
    names.dedup();
    let rate = |s: &Summary| 3600.0 / s.condition.mean_interval_s;
    let max_rate = summaries.iter().map(rate).fold(1.0, f64::max) * 1.08;
    let root = SVGBackend::new(path, (1240, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(460);
    let panels = top.split_evenly((1, 2));
    // Delivery, %.
    let mut chart = ChartBuilder::on(&panels[0])
        .caption("delivery per intended receiver", ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..max_rate, 0f64..100f64)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("load: messages per node per hour (3600 s / mean interval)")
        .y_desc("delivered, % (mean of the layouts; bar: min..max)")
        .draw()?;
    for (k, name) in names.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let mut pts: Vec<(f64, f64, f64, f64)> = summaries
            .iter()
            .filter(|s| &series_name(s) == name)
            .map(|s| {
                let d = s.delivery();
                (rate(s), d.mean * 100.0, d.min * 100.0, d.max * 100.0)
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart.draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), colour.stroke_width(2)))?;
        chart.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, colour.filled())))?;
        chart.draw_series(
            pts.iter().map(|p| PathElement::new(vec![(p.0, p.2), (p.0, p.3)], colour.stroke_width(1))),
        )?;
    }
    chart.draw_series(
        markers.iter().map(|m| Cross::new((m.rate, m.delivery * 100.0), 6, BLACK.stroke_width(2))),
    )?;
    // Airtime per delivered byte, ms, log scale (broadcast ~7 ms, direct ~300 ms).
    let (lo, hi) = summaries
        .iter()
        .map(|s| s.airtime_per_byte())
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), a| (lo.min(a.min), hi.max(a.max)));
    let (lo, hi) = if lo.is_finite() && hi > 0.0 { (lo / 1.5, hi * 1.5) } else { (1.0, 1000.0) };
    let mut chart = ChartBuilder::on(&panels[1])
        .caption("airtime per delivered byte", ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_rate, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("load: messages per node per hour (3600 s / mean interval)")
        .y_desc("ms of airtime per delivered byte (log)")
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()?;
    for (k, name) in names.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let mut pts: Vec<(f64, f64)> = summaries
            .iter()
            .filter(|s| &series_name(s) == name)
            .map(|s| (rate(s), s.airtime_per_byte().mean))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart.draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
    }
    chart
        .draw_series(markers.iter().map(|m| Cross::new((m.rate, m.airtime_ms), 6, BLACK.stroke_width(2))))?;
    let entries = names.len() + usize::from(!markers.is_empty());
    let width = 1240 / entries.max(1) as i32;
    for (k, name) in names.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let x = 40 + k as i32 * width;
        bottom.draw(&PathElement::new(vec![(x, 24), (x + 20, 24)], colour.stroke_width(2)))?;
        bottom.draw(&Text::new(name.clone(), (x + 26, 17), ("sans-serif", 13)))?;
    }
    if !markers.is_empty() {
        let x = 40 + names.len() as i32 * width;
        bottom.draw(&Cross::new((x + 10, 24), 6, BLACK.stroke_width(2)))?;
        bottom.draw(&Text::new(marker_label.to_string(), (x + 26, 17), ("sans-serif", 13)))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_counts_tell_one_way_from_two_way() {
        let radio = RadioConfig::ref30();
        // Rows are transmitters: 0-1 both ways; 2 -> 0 and 1 -> 2 one way only.
        let links = Links::from_matrix(&[
            vec![0.0, -120.0, -140.0],
            vec![-120.0, 0.0, -120.0],
            vec![-120.0, -140.0, 0.0],
        ]);
        assert_eq!(link_counts(&links, &radio), (1, 2));
    }
}
