//! The loss curve of a run as a self-contained SVG (no fonts, scripts or links to fetch): training
//! loss per optimizer step (a light line, with a darker moving average), held-back losses as dots,
//! and a dashed line with the stage's name where each stage begins.

use std::fmt::Write;

use crate::log::Record;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 40.0;
/// Steps averaged by the smoothed line.
const SMOOTHING: usize = 5;

/// Renders the records of one run.
pub fn loss_curve(records: &[Record], title: &str) -> String {
    let steps: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Step(s) if s.loss_tokens > 0 => Some((s.global_step as f64, s.loss)),
            _ => None,
        })
        .collect();
    let evals: Vec<(f64, f64, bool)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Eval {
                set,
                global_step,
                loss,
                ..
            } => Some((*global_step as f64, *loss, set == "all")),
            _ => None,
        })
        .collect();
    let mut starts: Vec<(f64, String)> = Vec::new();
    for r in records {
        if let Record::Step(s) = r
            && s.step == 1
        {
            starts.push((s.global_step as f64 - 1.0, s.stage.clone()));
        }
    }
    let ys = steps
        .iter()
        .map(|p| p.1)
        .chain(evals.iter().map(|e| e.1))
        .filter(|y| y.is_finite());
    let (mut y_min, mut y_max) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-3);
    let (y_min, y_max) = ((y_min - pad).max(0.0), y_max + pad);
    let x_max = steps
        .iter()
        .map(|p| p.0)
        .chain(evals.iter().map(|e| e.0))
        .fold(1.0, f64::max);
    let px = |x: f64| LEFT + x / x_max * (WIDTH - LEFT - RIGHT);
    let py = |y: f64| TOP + (y_max - y) / (y_max - y_min) * (HEIGHT - TOP - BOTTOM);

    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{LEFT}" y="18" font-size="13">{} — loss per optimizer step</text>
"##,
        escape(title)
    );
    // Axes and grid.
    for i in 0..=4 {
        let y = y_min + (y_max - y_min) * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{y:.2}</text>"##,
            WIDTH - RIGHT,
            py(y),
            py(y),
            LEFT - 6.0,
            py(y) + 4.0
        );
    }
    for i in 0..=5 {
        let x = (x_max * f64::from(i) / 5.0).round();
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{x}</text>"##,
            px(x),
            HEIGHT - BOTTOM + 16.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">optimizer step</text>"##,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 6.0
    );
    for (x, name) in &starts {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1:.1}" stroke="#888" stroke-dasharray="4 3"/><text x="{2:.1}" y="{3:.1}" fill="#555">{4}</text>"##,
            px(*x),
            HEIGHT - BOTTOM,
            px(*x) + 4.0,
            TOP + 12.0,
            escape(name)
        );
    }
    let path = |points: &[(f64, f64)]| {
        points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#9ecae1" stroke-width="1" points="{}"/>"##,
        path(&steps)
    );
    let smooth: Vec<(f64, f64)> = (0..steps.len())
        .map(|i| {
            let window = &steps[i.saturating_sub(SMOOTHING - 1)..=i];
            (
                steps[i].0,
                window.iter().map(|p| p.1).sum::<f64>() / window.len() as f64,
            )
        })
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#08519c" stroke-width="2" points="{}"/>"##,
        path(&smooth)
    );
    for (x, y, all) in &evals {
        let (fill, r) = if *all {
            ("#d62728", 4.5)
        } else {
            ("#ff7f0e", 3.0)
        };
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="{r}" fill="{fill}"/>"##,
            px(*x),
            py(*y)
        );
    }
    let legend_y = HEIGHT - BOTTOM - 10.0;
    let _ = write!(
        s,
        r##"<g transform="translate({:.1},{:.1})"><line x1="0" x2="18" y1="0" y2="0" stroke="#08519c" stroke-width="2"/><text x="22" y="4">train ({SMOOTHING}-step mean)</text><circle cx="150" cy="0" r="3" fill="#ff7f0e"/><text x="157" y="4">held-back, stage</text><circle cx="262" cy="0" r="4.5" fill="#d62728"/><text x="270" y="4">held-back, all stages</text></g>
</svg>
"##,
        WIDTH - RIGHT - 400.0,
        legend_y
    );
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
