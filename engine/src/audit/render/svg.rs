//! Hand-written inline SVG charts for the HTML report: horizontal grouped bars (target vs
//! realized share), horizontal single bars (per-source breakdown) and columns (efficiency per
//! shard, histograms).
//!
//! Why by hand: the report must be one file with no network resources and no script, so a JS
//! charting library is out, and the three chart shapes need ~200 lines. Every chart has a title,
//! labelled axes with gridlines, and its value printed on or beside every bar, so it reads without
//! hovering. Output is deterministic (fixed sizes, values formatted to fixed decimals). The SVG
//! carries no `xmlns`: inside HTML5 it is not needed, and it keeps the report free of any URL.

use std::fmt::Write as _;

/// Width of every chart, in CSS pixels.
const WIDTH: f64 = 760.0;
/// Grey used for targets and axes.
const TARGET_FILL: &str = "#b8bcc4";
const GRID: &str = "#e3e5e8";

/// Escapes text for HTML and SVG content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One row of a horizontal bar chart.
#[derive(Debug)]
pub struct HBar {
    pub label: String,
    pub colour: String,
    /// Fraction (0..=1) drawn in `colour`.
    pub value: f64,
    /// Optional fraction drawn in grey above it (the target).
    pub target: Option<f64>,
    /// Text printed after the bar.
    pub note: String,
}

/// Horizontal bars, one row per entry; with targets, each row is a grey target bar over a
/// coloured realized bar. Values are fractions shown as percentages.
pub fn hbars(title: &str, axis: &str, rows: &[HBar]) -> String {
    let (left, right, top) = (170.0, 190.0, 52.0);
    let with_targets = rows.iter().any(|r| r.target.is_some());
    let row_h = if with_targets { 34.0 } else { 22.0 };
    let height = top + row_h * rows.len() as f64 + 40.0;
    let plot = WIDTH - left - right;
    let most = rows
        .iter()
        .map(|r| r.value.max(r.target.unwrap_or(0.0)))
        .fold(0.0, f64::max);
    let scale_max = nice_percent_ceiling(most);
    let x = |v: f64| left + plot * (v / scale_max).min(1.0);
    let mut s = open(title, height);
    if with_targets {
        let _ = write!(
            s,
            r##"<rect x="{left}" y="28" width="12" height="10" fill="{TARGET_FILL}"/><text x="{}" y="37" class="small">target (recipe)</text><rect x="{}" y="28" width="12" height="10" fill="#4a78c2"/><text x="{}" y="37" class="small">realized (shards)</text>"##,
            left + 16.0,
            left + 130.0,
            left + 146.0
        );
    }
    grid_x(
        &mut s,
        left,
        plot,
        top - 6.0,
        height - 34.0,
        scale_max,
        axis,
    );
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let _ = write!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end" class="label">{}</text>"#,
            left - 8.0,
            y + row_h / 2.0 + 2.0,
            escape(&r.label)
        );
        let (bar_y, bar_h) = match r.target {
            Some(t) => {
                let _ = write!(
                    s,
                    r#"<rect x="{left}" y="{:.1}" width="{:.1}" height="12" fill="{TARGET_FILL}"><title>target {:.2}%</title></rect>"#,
                    y + 3.0,
                    x(t) - left,
                    100.0 * t
                );
                (y + 16.0, 13.0)
            }
            None => (y + 4.0, 14.0),
        };
        let _ = write!(
            s,
            r#"<rect x="{left}" y="{bar_y:.1}" width="{:.1}" height="{bar_h}" fill="{}"/>"#,
            x(r.value) - left,
            escape(&r.colour)
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="value">{}</text>"#,
            x(r.value.max(r.target.unwrap_or(0.0))) + 6.0,
            y + row_h / 2.0 + 2.0,
            escape(&r.note)
        );
    }
    s.push_str("</svg>");
    s
}

/// One column of a column chart.
#[derive(Debug)]
pub struct Column {
    pub label: String,
    pub value: f64,
    /// Printed above the column when there is room.
    pub note: String,
}

/// Vertical columns over labelled x positions; `y_max` fixes the scale (e.g. 1.0 for
/// efficiencies), else the largest value sets it. `percent` formats the y axis as percentages.
pub fn columns(
    title: &str,
    x_axis: &str,
    y_axis: &str,
    cols: &[Column],
    y_max: Option<f64>,
    percent: bool,
) -> String {
    let (left, right, top, bottom) = (70.0, 20.0, 34.0, 86.0);
    let height = 300.0;
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let most = cols.iter().map(|c| c.value).fold(0.0, f64::max);
    let scale = y_max.unwrap_or_else(|| nice_ceiling(most));
    let mut s = open(title, height);
    // Y gridlines and labels: five steps.
    for k in 0..=5 {
        let v = scale * f64::from(k) / 5.0;
        let y = top + plot_h * (1.0 - v / scale);
        let label = if percent {
            format!("{:.0}%", 100.0 * v)
        } else {
            compact(v)
        };
        let _ = write!(
            s,
            r#"<line x1="{left}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{GRID}"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="small">{label}</text>"#,
            left + plot_w,
            left - 6.0,
            y + 4.0
        );
    }
    let n = cols.len().max(1) as f64;
    let slot = plot_w / n;
    // At most 60 px wide, so one shard does not look like a wall.
    let bar_w = (slot * 0.8).clamp(1.0, 60.0);
    // Label every k-th column so labels never overlap.
    let every = ((n * 16.0 / plot_w).ceil() as usize).max(1);
    for (i, c) in cols.iter().enumerate() {
        let h = plot_h * (c.value / scale).clamp(0.0, 1.0);
        let x0 = left + slot * i as f64 + (slot - bar_w) / 2.0;
        let _ = write!(
            s,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{bar_w:.1}" height="{h:.1}" fill="#4a78c2"><title>{}: {}</title></rect>"##,
            top + plot_h - h,
            escape(&c.label),
            escape(&c.note)
        );
        if cols.len() <= 24 && !c.note.is_empty() {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="small">{}</text>"#,
                x0 + bar_w / 2.0,
                top + plot_h - h - 4.0,
                escape(&c.note)
            );
        }
        if i % every == 0 {
            let cx = x0 + bar_w / 2.0;
            let cy = top + plot_h + 12.0;
            let _ = write!(
                s,
                r#"<text x="{cx:.1}" y="{cy:.1}" text-anchor="end" transform="rotate(-40 {cx:.1} {cy:.1})" class="small">{}</text>"#,
                escape(&c.label)
            );
        }
    }
    let _ = write!(
        s,
        r##"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#666"/><text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis">{}</text><text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})" class="axis">{}</text></svg>"##,
        left + plot_w,
        top + plot_h,
        top + plot_h,
        left + plot_w / 2.0,
        height - 8.0,
        escape(x_axis),
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(y_axis)
    );
    s
}

fn open(title: &str, height: f64) -> String {
    format!(
        r#"<svg class="chart" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" role="img" aria-label="{t}"><text x="8" y="18" class="title">{t}</text>"#,
        t = escape(title)
    )
}

fn grid_x(s: &mut String, left: f64, plot: f64, y0: f64, y1: f64, scale_max: f64, axis: &str) {
    // One gridline per 10 percentage points (the scale is a multiple of 10%).
    let steps = ((scale_max * 10.0).round() as u32).max(1);
    for k in 0..=steps {
        let v = scale_max * f64::from(k) / f64::from(steps);
        let x = left + plot * f64::from(k) / f64::from(steps);
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{y0:.1}" y2="{y1:.1}" stroke="{GRID}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="small">{:.0}%</text>"#,
            y1 + 14.0,
            100.0 * v
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis">{}</text>"#,
        left + plot / 2.0,
        y1 + 30.0,
        escape(axis)
    );
}

/// The smallest of 10%, 20%, ..., 100% at or above `v` (as a fraction).
fn nice_percent_ceiling(v: f64) -> f64 {
    ((v * 10.0).ceil() / 10.0).clamp(0.1, 1.0)
}

/// 1, 2 or 5 times a power of ten, at or above `v` (1 for nothing).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * power)
}

/// `1234` -> `1.2k`, `2500000` -> `2.5M`: axis labels stay short.
fn compact(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(4500.0), 5000.0);
        assert_eq!(nice_percent_ceiling(0.61), 0.7);
        assert_eq!(nice_percent_ceiling(0.0), 0.1);
        assert_eq!(compact(2_500_000.0), "2.5M");
    }

    #[test]
    fn labels_are_escaped() {
        let svg = columns(
            "a<b",
            "x",
            "y",
            &[Column {
                label: "\"q\"&".into(),
                value: 1.0,
                note: "1".into(),
            }],
            None,
            false,
        );
        assert!(
            svg.contains("a&lt;b") && svg.contains("&quot;q&quot;&amp;"),
            "{svg}"
        );
        assert!(!svg.contains("a<b"));
    }
}
