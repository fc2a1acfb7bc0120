//! Learning curves of training runs (`stackrl plot`): runs grouped by (environment,
//! algorithm) from their `config.json`, mean ± one standard deviation across seeds against
//! environment steps, one panel per environment, as PNG or SVG.
//!
//! # Metrics
//!
//! A run's `metrics.jsonl` rows set only their own keys. `eval_return` is the `eval_mean`
//! of the `eval` rows (the deterministic evaluation return); any other name is a metrics
//! column (`episode_return`, `critic_loss`, `alpha`, ...), read from every row that has a
//! finite value for it.
//!
//! # Averaging across seeds
//!
//! Seeds of one configuration evaluate at the same steps, so their points line up and the
//! mean and (population) standard deviation are taken per step. Where steps differ (e.g.
//! `episode_return`, logged at episode ends), every run is linearly interpolated at the
//! union of the steps, and each point averages the runs whose range covers it.
//!
//! # Fonts
//!
//! Text is drawn with an embedded font (Atkinson Hyperlegible Next, its default regular
//! weight; SIL Open Font License 1.1, `assets/fonts/`), registered with plotters' `ab_glyph` backend by
//! [`register_fonts`], so no system font is needed; PNGs are drawn into a buffer and
//! encoded with the `png` crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// The embedded font (SIL Open Font License 1.1; see `assets/fonts/OFL.txt`).
pub const FONT: &[u8] = include_bytes!("../assets/fonts/AtkinsonHyperlegibleNext-Variable.ttf");

/// Registers [`FONT`] as plotters' `sans-serif`, `serif` and `monospace` families. Every
/// plotters chart of this crate calls it first (with the `ab_glyph` font backend, text in a
/// family nobody registered fails to draw). Idempotent.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for family in ["sans-serif", "serif", "monospace"] {
            for style in [FontStyle::Normal, FontStyle::Bold] {
                // The bytes are a valid TrueType font (checked by the tests), so this
                // cannot fail; a failure would only leave text undrawn.
                let _ = plotters::style::register_font(family, style, FONT);
            }
        }
    });
}

/// Errors of `stackrl plot`.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Bad input (no runs, unknown metric, unreadable run).
    #[error("{0}")]
    Invalid(String),
    /// The output cannot be written.
    #[error("cannot write {}: {message}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// One run's curve.
#[derive(Clone, Debug, PartialEq)]
pub struct RunCurve {
    /// The run directory.
    pub dir: PathBuf,
    /// Environment id (from `config.json`).
    pub env: String,
    /// Algorithm (from `config.json`).
    pub algo: String,
    /// `(step, value)` in step order.
    pub points: Vec<(f64, f64)>,
}

/// Mean ± std of one (environment, algorithm) group.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupCurve {
    /// Environment id.
    pub env: String,
    /// Algorithm.
    pub algo: String,
    /// Runs in the group.
    pub runs: usize,
    /// Steps.
    pub steps: Vec<f64>,
    /// Mean per step.
    pub mean: Vec<f64>,
    /// Population standard deviation per step.
    pub std: Vec<f64>,
}

/// The `metrics.jsonl` key and row event of a metric name.
fn metric_key(metric: &str) -> (&str, Option<&str>) {
    match metric {
        "eval_return" => ("eval_mean", Some("eval")),
        other => (other, None),
    }
}

/// Reads `metric` of the run in `dir`.
pub fn read_run(dir: &Path, metric: &str) -> Result<RunCurve, PlotError> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| {
        PlotError::Invalid(format!(
            "{} is not a run directory (cannot read {}: {e})",
            dir.display(),
            config_path.display()
        ))
    })?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| PlotError::Invalid(format!("{} is corrupt: {e}", config_path.display())))?;
    let field = |k: &str| {
        config
            .get(k)
            .and_then(|v| v.as_str())
            .map(String::from)
            .ok_or_else(|| PlotError::Invalid(format!("{} has no \"{k}\"", config_path.display())))
    };
    let (env, algo) = (field("env")?, field("algo")?);
    let metrics_path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&metrics_path)
        .map_err(|e| PlotError::Invalid(format!("cannot read {}: {e}", metrics_path.display())))?;
    let (key, event) = metric_key(metric);
    let mut points = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            PlotError::Invalid(format!("{} line {}: {e}", metrics_path.display(), i + 1))
        })?;
        if let Some(ev) = event
            && row.get("event").and_then(|v| v.as_str()) != Some(ev)
        {
            continue;
        }
        let (Some(step), Some(value)) = (
            row.get("step").and_then(|v| v.as_f64()),
            row.get(key).and_then(|v| v.as_f64()),
        ) else {
            continue;
        };
        if value.is_finite() {
            points.push((step, value));
        }
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(RunCurve {
        dir: dir.to_path_buf(),
        env,
        algo,
        points,
    })
}

/// Linear interpolation of `points` (sorted by x) at `x`, if `x` is within their range.
fn interpolate(points: &[(f64, f64)], x: f64) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    if x < first.0 || x > last.0 {
        return None;
    }
    let i = points.partition_point(|p| p.0 < x);
    let b = points[i.min(points.len() - 1)];
    if b.0 == x || i == 0 {
        return Some(b.1);
    }
    let a = points[i - 1];
    Some(a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0))
}

/// Groups runs by (environment, algorithm) and averages them (see the module docs).
pub fn group_curves(runs: &[RunCurve]) -> Vec<GroupCurve> {
    let mut groups: BTreeMap<(String, String), Vec<&RunCurve>> = BTreeMap::new();
    for r in runs.iter().filter(|r| !r.points.is_empty()) {
        groups
            .entry((r.env.clone(), r.algo.clone()))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for ((env, algo), members) in groups {
        let mut steps: Vec<f64> = members
            .iter()
            .flat_map(|r| r.points.iter().map(|p| p.0))
            .collect();
        steps.sort_by(f64::total_cmp);
        steps.dedup();
        let mut curve = GroupCurve {
            env,
            algo,
            runs: members.len(),
            steps: Vec::new(),
            mean: Vec::new(),
            std: Vec::new(),
        };
        for x in steps {
            let values: Vec<f64> = members
                .iter()
                .filter_map(|r| interpolate(&r.points, x))
                .collect();
            if values.is_empty() {
                continue;
            }
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            curve.steps.push(x);
            curve.mean.push(mean);
            curve.std.push(var.sqrt());
        }
        out.push(curve);
    }
    out
}

/// Image format of a plot, from the output's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotFormat {
    /// PNG.
    Png,
    /// SVG.
    Svg,
}

impl PlotFormat {
    /// `.png` or `.svg`.
    pub fn from_path(path: &Path) -> Result<Self, PlotError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(e) if e == "png" => Ok(Self::Png),
            Some(e) if e == "svg" => Ok(Self::Svg),
            _ => Err(PlotError::Invalid(format!(
                "{}: the output must end in .png or .svg",
                path.display()
            ))),
        }
    }
}

/// Size of one panel in pixels.
const PANEL: (u32, u32) = (520, 380);

/// Colours of the algorithms, in sorted order of their names.
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One curve with a band around it, drawn in the panel of its environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// Panel title (the environment).
    pub panel: String,
    /// Legend label (the algorithm).
    pub label: String,
    /// Runs behind the curve (shown in the legend).
    pub runs: usize,
    /// x values.
    pub x: Vec<f64>,
    /// The curve.
    pub center: Vec<f64>,
    /// Lower edge of the band.
    pub low: Vec<f64>,
    /// Upper edge of the band.
    pub high: Vec<f64>,
}

/// Reads the runs in `dirs`, averages `metric` per (environment, algorithm) and writes the
/// figure to `out` (`.png` or `.svg`). Returns the groups drawn.
pub fn plot_runs(dirs: &[PathBuf], metric: &str, out: &Path) -> Result<Vec<GroupCurve>, PlotError> {
    PlotFormat::from_path(out)?;
    if dirs.is_empty() {
        return Err(PlotError::Invalid("no run directories given".into()));
    }
    let runs = dirs
        .iter()
        .map(|d| read_run(d, metric))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = group_curves(&runs);
    if groups.is_empty() {
        return Err(PlotError::Invalid(format!(
            "no run has values of {metric:?} (eval_return, episode_return, or a column of \
             metrics.csv such as critic_loss)"
        )));
    }
    let bands: Vec<Band> = groups
        .iter()
        .map(|g| Band {
            panel: g.env.clone(),
            label: g.algo.clone(),
            runs: g.runs,
            x: g.steps.clone(),
            center: g.mean.clone(),
            low: g.mean.iter().zip(&g.std).map(|(m, s)| m - s).collect(),
            high: g.mean.iter().zip(&g.std).map(|(m, s)| m + s).collect(),
        })
        .collect();
    draw_bands(&bands, out, "environment steps", metric, true)?;
    Ok(groups)
}

/// Draws `bands` to `out` (`.png` or `.svg`), one panel per distinct `panel` (at most three
/// per row), one colour per label. Points with a non-finite value are left out, and axis
/// ranges are kept finite, so values near `f64::MAX` draw (clipped) instead of stalling the
/// renderer. The figure is written to a temporary file beside `out` and renamed, so a
/// failure leaves an existing `out` untouched. `steps_axis` formats x as `20k`, `1.5M`.
pub fn draw_bands(
    bands: &[Band],
    out: &Path,
    x_desc: &str,
    y_desc: &str,
    steps_axis: bool,
) -> Result<(), PlotError> {
    let format = PlotFormat::from_path(out)?;
    let bands: Vec<Band> = bands
        .iter()
        .map(finite_band)
        .filter(|b| !b.x.is_empty())
        .collect();
    if bands.is_empty() {
        return Err(PlotError::Invalid(format!(
            "nothing to draw in {}: no finite values",
            out.display()
        )));
    }
    register_fonts();
    let mut panels: Vec<String> = Vec::new();
    for b in &bands {
        if !panels.contains(&b.panel) {
            panels.push(b.panel.clone());
        }
    }
    let mut labels: Vec<String> = bands.iter().map(|b| b.label.clone()).collect();
    labels.sort();
    labels.dedup();
    let cols = panels.len().min(3) as u32;
    let rows = (panels.len() as u32).div_ceil(cols);
    let size = (PANEL.0 * cols, PANEL.1 * rows);
    // A special file (a device such as /dev/stdout or /dev/full, a pipe) is written in
    // place; a regular file through a temporary file beside it and a rename.
    let special = out.exists() && !out.is_file();
    let tmp = if special {
        out.to_path_buf()
    } else {
        out.with_file_name(format!(
            ".{}.tmp{}.{}",
            out.file_name().and_then(|n| n.to_str()).unwrap_or("plot"),
            std::process::id(),
            if format == PlotFormat::Png {
                "png"
            } else {
                "svg"
            }
        ))
    };
    let out_err = |e: String| PlotError::Output {
        path: out.to_path_buf(),
        message: e,
    };
    let axes = Axes {
        x_desc,
        y_desc,
        steps_axis,
    };
    let result = (|| -> Result<(), String> {
        match format {
            PlotFormat::Svg => {
                let mut svg = String::new();
                {
                    let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                    draw(&root, &bands, &panels, &labels, &axes, (rows, cols))?;
                    root.present().map_err(|e| e.to_string())?;
                }
                write_synced(&tmp, svg.as_bytes())
            }
            PlotFormat::Png => {
                let mut buf = vec![0u8; 3 * size.0 as usize * size.1 as usize];
                {
                    let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
                    draw(&root, &bands, &panels, &labels, &axes, (rows, cols))?;
                    root.present().map_err(|e| e.to_string())?;
                }
                write_png(&tmp, size, &buf)
            }
        }
    })();
    let result = result.and_then(|_| {
        if special {
            Ok(())
        } else {
            std::fs::rename(&tmp, out).map_err(|e| e.to_string())
        }
    });
    if let Err(e) = result {
        if !special {
            let _ = std::fs::remove_file(&tmp);
        }
        return Err(out_err(e));
    }
    Ok(())
}

/// Largest magnitude drawn: plotters' coordinate arithmetic overflows near `f64::MAX`.
const DRAW_LIMIT: f64 = 1e15;

/// `b` without the points whose x, curve or band is not finite, and with band edges
/// clipped to ±[`DRAW_LIMIT`].
fn finite_band(b: &Band) -> Band {
    let mut out = Band {
        x: Vec::new(),
        center: Vec::new(),
        low: Vec::new(),
        high: Vec::new(),
        ..b.clone()
    };
    let clip = |v: f64| v.clamp(-DRAW_LIMIT, DRAW_LIMIT);
    for i in 0..b
        .x
        .len()
        .min(b.center.len())
        .min(b.low.len())
        .min(b.high.len())
    {
        let (x, c) = (b.x[i], b.center[i]);
        if !(x.is_finite() && c.is_finite() && x.abs() <= DRAW_LIMIT && c.abs() <= DRAW_LIMIT) {
            continue;
        }
        let lo = if b.low[i].is_nan() { c } else { clip(b.low[i]) };
        let hi = if b.high[i].is_nan() {
            c
        } else {
            clip(b.high[i])
        };
        out.x.push(x);
        out.center.push(c);
        out.low.push(lo.min(c));
        out.high.push(hi.max(c));
    }
    out
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| e.to_string())?;
    f.write_all(bytes).map_err(|e| e.to_string())?;
    f.flush().map_err(|e| e.to_string())?;
    // fsync fails with EINVAL on pipes and character devices, which have nothing to sync.
    match f.sync_all() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other.map_err(|e| e.to_string()),
    }
}

/// Encodes in memory, then writes with every write and the flush checked (a `BufWriter`
/// dropped at the end would swallow the error of its last flush, e.g. a full disk).
fn write_png(path: &Path, (w, h): (u32, u32), rgb: &[u8]) -> Result<(), String> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::High);
        let mut writer = enc.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(rgb).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    write_synced(path, &bytes)
}

/// Axis descriptions.
struct Axes<'a> {
    x_desc: &'a str,
    y_desc: &'a str,
    steps_axis: bool,
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    bands: &[Band],
    panels: &[String],
    labels: &[String],
    axes: &Axes,
    (rows, cols): (u32, u32),
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let areas = root.split_evenly((rows as usize, cols as usize));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let members: Vec<&Band> = bands.iter().filter(|b| &b.panel == panel).collect();
        let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for b in &members {
            for i in 0..b.x.len() {
                x0 = x0.min(b.x[i]);
                x1 = x1.max(b.x[i]);
                y0 = y0.min(b.low[i]);
                y1 = y1.max(b.high[i]);
            }
        }
        if axes.steps_axis {
            x0 = x0.min(0.0);
        }
        if x1 - x0 < 1e-12 {
            x1 = x0 + 1.0;
        }
        if y1 - y0 < 1e-9 {
            (y0, y1) = (y0 - 1.0, y1 + 1.0);
        }
        let pad = 0.05 * (y1 - y0);
        let mut chart = ChartBuilder::on(area)
            .caption(panel, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(e)?;
        let steps_fmt = |x: &f64| format_steps(*x);
        let plain_fmt = |x: &f64| format_value(*x);
        let x_fmt: &dyn Fn(&f64) -> String = if axes.steps_axis {
            &steps_fmt
        } else {
            &plain_fmt
        };
        chart
            .configure_mesh()
            .x_desc(axes.x_desc)
            .y_desc(axes.y_desc)
            .x_labels(6)
            .y_labels(8)
            .x_label_formatter(x_fmt)
            .y_label_formatter(&|y| format_value(*y))
            .label_style(("sans-serif", 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(e)?;
        for b in members {
            let idx = labels.iter().position(|a| *a == b.label).unwrap_or(0);
            let color = COLORS[idx % COLORS.len()];
            let upper = b.x.iter().zip(&b.high).map(|(x, v)| (*x, *v));
            let lower = b.x.iter().zip(&b.low).map(|(x, v)| (*x, *v));
            let band: Vec<(f64, f64)> = upper.chain(lower.rev()).collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, color.mix(0.18))))
                .map_err(e)?;
            let label = format!(
                "{} ({} seed{})",
                b.label,
                b.runs,
                if b.runs == 1 { "" } else { "s" }
            );
            chart
                .draw_series(LineSeries::new(
                    b.x.iter().copied().zip(b.center.iter().copied()),
                    color.stroke_width(2),
                ))
                .map_err(e)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

/// `20000` → `20k`, `1500000` → `1.5M`.
pub fn format_steps(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{}M", trim(x / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(x / 1e3))
    } else {
        trim(x)
    }
}

/// Axis values with at most 3 significant decimals, trailing zeros dropped.
fn format_value(y: f64) -> String {
    let a = y.abs();
    let s = if a >= 100.0 || a == 0.0 {
        format!("{y:.0}")
    } else if a >= 1.0 {
        format!("{y:.2}")
    } else {
        format!("{y:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(String::from).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(algo: &str, points: &[(f64, f64)]) -> RunCurve {
        RunCurve {
            dir: PathBuf::new(),
            env: "Pendulum-v1".into(),
            algo: algo.into(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn groups_average_seeds_per_step() {
        let runs = [
            run("sac", &[(0.0, 1.0), (10.0, 3.0)]),
            run("sac", &[(0.0, 3.0), (10.0, 7.0)]),
            run("stack-sac", &[(0.0, 5.0), (20.0, 9.0)]),
        ];
        let g = group_curves(&runs);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].algo, "sac");
        assert_eq!(g[0].runs, 2);
        assert_eq!(g[0].steps, vec![0.0, 10.0]);
        assert_eq!(g[0].mean, vec![2.0, 5.0]);
        assert_eq!(g[0].std, vec![1.0, 2.0]);
        // Different steps: interpolation at the union.
        let g = group_curves(&[
            run("a", &[(0.0, 0.0), (10.0, 10.0)]),
            run("a", &[(5.0, 1.0)]),
        ]);
        assert_eq!(g[0].steps, vec![0.0, 5.0, 10.0]);
        assert_eq!(g[0].mean, vec![0.0, 3.0, 10.0]);
        assert_eq!(format_steps(20000.0), "20k");
        assert_eq!(format_steps(1_500_000.0), "1.5M");
        assert_eq!(format_value(-500.0), "-500");
        assert_eq!(format_value(2.5), "2.5");
        assert_eq!(format_value(0.125), "0.125");
    }
}
