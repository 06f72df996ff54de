//! The report's pictures (SVG, plotters): failover latency distributions
//! and CPU over time during the flood.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

const ARM_COLOURS: [RGBColor; 3] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];

/// One strip per series: every run's value as a dot, the median as a bar.
/// `series`: (label, arm index for the colour, values).
/// Plots from a finished run's results.json (`cargo xtask bench --replot`).
pub fn replot(out: &Path) -> Result<()> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json"))?)?;
    let nums = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array().into_iter().flatten().filter_map(serde_json::Value::as_f64).collect()
    };
    let arm_of =
        |r: &serde_json::Value| usize::from(r.get("arm").and_then(|a| a.as_str()) == Some("keepalived"));
    let rows = |k: &str| json.get(k).and_then(|v| v.as_array()).cloned().unwrap_or_default();
    let failover: Vec<(String, usize, Vec<f64>)> = rows("failover")
        .iter()
        .map(|r| {
            let label = failover_label(
                r.get("scenario").and_then(|v| v.as_str()).unwrap_or("?"),
                r.get("advert_int_ms").and_then(serde_json::Value::as_u64).unwrap_or(0),
                arm_of(r) == 1,
            );
            (label, arm_of(r), nums(&r["excess_ms"]))
        })
        .collect();
    if !failover.is_empty() {
        strips(&out.join("failover.svg"), FAILOVER_TITLE, "ms over the limit", &failover)?;
    }
    let health: Vec<(String, usize, Vec<f64>)> = rows("health")
        .iter()
        .map(|r| (r["arm"].as_str().unwrap_or("?").to_owned(), arm_of(r), nums(&r["to_vip_ms"])))
        .collect();
    if !health.is_empty() {
        strips(&out.join("health.svg"), HEALTH_TITLE, "ms", &health)?;
    }
    let flood: Vec<(String, Vec<(f64, f64)>)> = rows("split_flood")
        .iter()
        .map(|r| {
            let pts = r["cpu_over_time"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .collect();
            (r["arm"].as_str().unwrap_or("?").to_owned(), pts)
        })
        .collect();
    if !flood.is_empty() {
        lines(&out.join("flood-cpu.svg"), FLOOD_TITLE, "% of one core", &flood)?;
    }
    Ok(())
}

pub const FAILOVER_TITLE: &str =
    "Failover: excess over the protocol's limit, every run (bar: median; blue vrrp-agent, red keepalived)";
pub const HEALTH_TITLE: &str = "Health failover: check starts failing → VIP on the backup";
pub const FLOOD_TITLE: &str = "Backup CPU during the flood (0.5 s samples)";

/// A short strip label: "crash 10ms A" (A: vrrp-agent, K: keepalived).
pub fn failover_label(kind: &str, interval_ms: u64, keepalived: bool) -> String {
    format!("{kind} {interval_ms}ms {}", if keepalived { "K" } else { "A" })
}

pub fn strips(path: &Path, title: &str, y_label: &str, series: &[(String, usize, Vec<f64>)]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {}: {e}", path.display());
    let ymax = series.iter().flat_map(|s| s.2.iter().copied()).fold(0.0_f64, f64::max).max(1.0) * 1.1;
    let ymin = series.iter().flat_map(|s| s.2.iter().copied()).fold(0.0_f64, f64::min).min(0.0);
    let root = SVGBackend::new(path, (200 + 100 * series.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let n = series.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), ymin..ymax)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                series[i as usize].0.clone()
            } else {
                String::new()
            }
        })
        .x_label_style(("sans-serif", 11).into_font())
        .y_desc(y_label)
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (_, arm, values)) in series.iter().enumerate() {
        let colour = ARM_COLOURS[*arm % ARM_COLOURS.len()];
        let k = values.len().max(1) as f64;
        chart
            .draw_series(values.iter().enumerate().map(|(j, v)| {
                // Spread the dots across the strip so equal values stay visible.
                let x = i as f64 - 0.3 + 0.6 * (j as f64 + 0.5) / k;
                Circle::new((x, *v), 3, colour.filled())
            }))
            .map_err(|e| err(&e))?;
        let median = crate::bench_failover::summary(values)[1];
        if median.is_finite() {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(i as f64 - 0.35, median), (i as f64 + 0.35, median)],
                    BLACK.stroke_width(2),
                )))
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Lines over time: (label, points (seconds, value)).
pub fn lines(path: &Path, title: &str, y_label: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {}: {e}", path.display());
    let xmax = series.iter().flat_map(|s| s.1.iter().map(|p| p.0)).fold(1.0_f64, f64::max);
    let ymax = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(1.0_f64, f64::max) * 1.1;
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("seconds into the flood").y_desc(y_label).draw().map_err(|e| err(&e))?;
    for (i, (label, points)) in series.iter().enumerate() {
        let colour = ARM_COLOURS[i % ARM_COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
