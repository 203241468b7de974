//! ROC and DET plots as SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{MetricsError, Result};
use crate::verification::{DetPoint, RocPoint};

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

fn plot_err(path: &Path, e: impl std::fmt::Display) -> MetricsError {
    MetricsError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Draws one coloured line per named curve, with a legend.
fn draw_lines<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    path: &Path,
    lines: Vec<(&str, Vec<(f64, f64)>)>,
    legend_at: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, points)) in lines.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(legend_at)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))
}

/// Draws ROC curves (TAR against FAR on a log axis from `min_far` to 1) to an SVG file.
///
/// # Errors
/// `min_far` outside (0, 1), or a drawing / I/O failure.
pub fn write_roc_svg(
    path: impl AsRef<Path>,
    title: &str,
    curves: &[(&str, &[RocPoint])],
    min_far: f64,
) -> Result<()> {
    let path = path.as_ref();
    if !(min_far > 0.0 && min_far < 1.0) {
        return Err(MetricsError::InvalidRate {
            what: "ROC plot min_far (must be in (0, 1))",
            value: min_far,
        });
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d((min_far..1.0f64).log_scale(), 0.0..1.0f64)
            .map_err(|e| plot_err(path, e))?;
        chart
            .configure_mesh()
            .x_desc("False accept rate (FAR)")
            .y_desc("True accept rate (TAR)")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .draw()
            .map_err(|e| plot_err(path, e))?;
        let lines = curves
            .iter()
            .map(|(name, pts)| {
                (
                    *name,
                    pts.iter()
                        .filter(|p| p.far >= min_far)
                        .map(|p| (p.far, p.tar))
                        .collect(),
                )
            })
            .collect();
        draw_lines(&mut chart, path, lines, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    Ok(face_io::write_atomic(path, svg.as_bytes())?)
}

/// The rates marked on DET axes.
const DET_TICKS: [f64; 11] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5];

fn rate_label(z: f64) -> String {
    DET_TICKS
        .iter()
        .min_by(|a, b| {
            (crate::probit(**a) - z)
                .abs()
                .total_cmp(&(crate::probit(**b) - z).abs())
        })
        .map(|p| {
            if *p >= 0.01 {
                format!("{:.0}%", p * 100.0)
            } else {
                format!("{p:.0e}")
            }
        })
        .unwrap_or_default()
}

/// Draws DET curves (FRR against FAR, both on probit axes, from 1e-6 to 50 %) to an SVG file.
///
/// # Errors
/// A drawing or I/O failure.
pub fn write_det_svg(path: impl AsRef<Path>, title: &str, curves: &[(&str, &[DetPoint])]) -> Result<()> {
    let path = path.as_ref();
    let (lo, hi) = (crate::probit(DET_TICKS[0]), 0.0);
    let keys: Vec<f64> = DET_TICKS.iter().map(|&p| crate::probit(p)).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(lo..hi, lo..hi)
            .map_err(|e| plot_err(path, e))?;
        // Probit axes: the mesh draws only the axes and descriptions; the grid and
        // tick labels sit at the probits of round rates.
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc("False accept rate (FMR)")
            .y_desc("False reject rate (FNMR)")
            .draw()
            .map_err(|e| plot_err(path, e))?;
        let grid = RGBColor(220, 220, 220);
        for &z in &keys {
            chart
                .draw_series(LineSeries::new([(z, lo), (z, hi)], grid))
                .map_err(|e| plot_err(path, e))?;
            chart
                .draw_series(LineSeries::new([(lo, z), (hi, z)], grid))
                .map_err(|e| plot_err(path, e))?;
            let label = rate_label(z);
            let (px, py) = chart.backend_coord(&(z, lo));
            root.draw(&Text::new(
                label.clone(),
                (px - 12, py + 6),
                ("sans-serif", 12).into_font(),
            ))
            .map_err(|e| plot_err(path, e))?;
            let (px, py) = chart.backend_coord(&(lo, z));
            root.draw(&Text::new(
                label,
                (px - 44, py - 6),
                ("sans-serif", 12).into_font(),
            ))
            .map_err(|e| plot_err(path, e))?;
        }
        let inside = |p: &&DetPoint| p.x >= lo && p.y >= lo && p.x <= hi && p.y <= hi;
        let lines = curves
            .iter()
            .map(|(name, pts)| (*name, pts.iter().filter(inside).map(|p| (p.x, p.y)).collect()))
            .collect();
        draw_lines(&mut chart, path, lines, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    Ok(face_io::write_atomic(path, svg.as_bytes())?)
}

/// Draws named `(x, y)` series (e.g. irAUC or a loss against the epoch) to an SVG file, the
/// y axis logarithmic when `log_y` (non-positive and non-finite points are then left out,
/// since they have no place on it).
///
/// # Errors
/// No drawable point, or a drawing / I/O failure.
pub fn write_curve_svg(
    path: impl AsRef<Path>,
    title: &str,
    axes: (&str, &str),
    curves: &[(&str, &[(f64, f64)])],
    log_y: bool,
) -> Result<()> {
    let path = path.as_ref();
    let keep = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let lines: Vec<(&str, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|(name, pts)| (*name, pts.iter().filter(keep).copied().collect()))
        .collect();
    let all = || lines.iter().flat_map(|(_, p)| p.iter().copied());
    let (x0, x1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| {
        (a.min(x), b.max(x))
    });
    let (y0, y1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| {
        (a.min(y), b.max(y))
    });
    if !x0.is_finite() {
        return Err(plot_err(path, "no finite point to draw"));
    }
    // Widen degenerate ranges so a single point or a flat line still gets axes.
    let (x0, x1) = if x1 > x0 { (x0, x1) } else { (x0 - 1.0, x0 + 1.0) };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64);
        if log_y {
            let (lo, hi) = if y1 > y0 {
                (y0 / 1.5, y1 * 1.5)
            } else {
                (y0 / 10.0, y0 * 10.0)
            };
            let mut chart = builder
                .build_cartesian_2d(x0..x1, (lo..hi).log_scale())
                .map_err(|e| plot_err(path, e))?;
            chart
                .configure_mesh()
                .x_desc(axes.0)
                .y_desc(axes.1)
                .y_label_formatter(&|y| format!("{y:.1e}"))
                .draw()
                .map_err(|e| plot_err(path, e))?;
            draw_lines(&mut chart, path, lines, SeriesLabelPosition::UpperRight)?;
        } else {
            let pad = if y1 > y0 { (y1 - y0) * 0.05 } else { 1.0 };
            let mut chart = builder
                .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
                .map_err(|e| plot_err(path, e))?;
            chart
                .configure_mesh()
                .x_desc(axes.0)
                .y_desc(axes.1)
                .draw()
                .map_err(|e| plot_err(path, e))?;
            draw_lines(&mut chart, path, lines, SeriesLabelPosition::UpperRight)?;
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    Ok(face_io::write_atomic(path, svg.as_bytes())?)
}
