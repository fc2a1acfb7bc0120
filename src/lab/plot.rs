//! SVG line charts (plotters) for the lab's figures: curves with optional ±1 std bands.

use std::path::Path;

use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;

use super::LabError;

/// One curve: x, y and an optional (lower, upper) band.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Ordinates.
    pub y: Vec<f64>,
    /// Shaded band (lower, upper), e.g. mean ± one standard deviation.
    pub band: Option<(Vec<f64>, Vec<f64>)>,
    /// Dashed line instead of solid (for a second family of curves).
    pub dashed: bool,
}

impl Series {
    /// A solid curve without a band.
    pub fn line(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Self {
            label: label.into(),
            x,
            y,
            band: None,
            dashed: false,
        }
    }
}

/// Axes and title of a chart.
#[derive(Clone, Debug)]
pub struct Chart<'a> {
    /// Caption.
    pub title: &'a str,
    /// x-axis label.
    pub x_label: &'a str,
    /// y-axis label.
    pub y_label: &'a str,
    /// Logarithmic y axis (values ≤ 0 are clipped to the smallest positive value).
    pub log_y: bool,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Compact tick label: 150000 → "150k", 0.25 → "0.25".
fn tick(x: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if x.abs() >= 1000.0 {
        format!("{}k", trim(format!("{:.1}", x / 1000.0)))
    } else {
        trim(format!("{x:.4}"))
    }
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> LabError {
    LabError::Plot {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Draws `series` into an SVG file at `path`.
pub fn line_chart(path: &Path, chart: &Chart<'_>, series: &[Series]) -> Result<(), LabError> {
    let finite = |v: &f64| v.is_finite() && (!chart.log_y || *v > 0.0);
    let xs = series.iter().flat_map(|s| s.x.iter().cloned());
    let ys = series.iter().flat_map(|s| {
        let band = s
            .band
            .iter()
            .flat_map(|(lo, hi)| lo.iter().chain(hi.iter()).cloned());
        s.y.iter().cloned().chain(band)
    });
    let (x0, x1) = xs
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    let (mut y0, mut y1) = ys
        .filter(finite)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
    if !(x0.is_finite() && x1.is_finite() && y0.is_finite() && y1.is_finite()) {
        return Err(plot_err(path, "no finite data to plot"));
    }
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    if chart.log_y {
        (y0, y1) = (y0 * 0.8, y1 * 1.25);
    } else {
        let pad = ((y1 - y0) * 0.05).max(1e-9);
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    crate::plot::register_fonts();
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75);
    let clip = |y: f64| if chart.log_y { y.max(y0) } else { y };
    macro_rules! draw {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_desc(chart.x_label)
                .y_desc(chart.y_label)
                .x_label_formatter(&|x| tick(*x))
                .y_label_formatter(&|y| {
                    if chart.log_y {
                        format!("{y:.0e}")
                    } else {
                        tick(*y)
                    }
                })
                .draw()
                .map_err(|e| plot_err(path, e))?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                if let Some((lo, hi)) = &s.band {
                    let mut poly: Vec<(f64, f64)> =
                        s.x.iter().zip(hi).map(|(&x, &y)| (x, clip(y))).collect();
                    poly.extend(s.x.iter().zip(lo).rev().map(|(&x, &y)| (x, clip(y))));
                    ctx.draw_series(std::iter::once(Polygon::new(
                        poly,
                        color.mix(0.18).filled(),
                    )))
                    .map_err(|e| plot_err(path, e))?;
                }
                let pts: Vec<(f64, f64)> =
                    s.x.iter()
                        .zip(&s.y)
                        .filter(|(_, y)| finite(y))
                        .map(|(&x, &y)| (x, y))
                        .collect();
                let style = color.stroke_width(2);
                let anno = if s.dashed {
                    ctx.draw_series(DashedLineSeries::new(pts, 6, 4, style))
                        .map_err(|e| plot_err(path, e))?
                } else {
                    ctx.draw_series(LineSeries::new(pts, style))
                        .map_err(|e| plot_err(path, e))?
                };
                anno.label(s.label.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(if chart.log_y {
                    SeriesLabelPosition::UpperRight
                } else {
                    SeriesLabelPosition::LowerRight
                })
                .draw()
                .map_err(|e| plot_err(path, e))?;
        }};
    }
    if chart.log_y {
        draw!(
            builder
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(|e| plot_err(path, e))?
        );
    } else {
        draw!(
            builder
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| plot_err(path, e))?
        );
    }
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}
