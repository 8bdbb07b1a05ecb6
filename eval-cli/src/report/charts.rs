//! The report's charts, drawn with plotters into both SVG (embedded in `report.html`) and PNG.
//!
//! Each chart is plain data implementing [`Chart`]; [`save`] renders it to both backends, so a
//! chart is written once for any `DrawingBackend`. Text uses DejaVu Sans embedded in the binary
//! (plotters' `ab_glyph`), so no system font library is needed.
//!
//! One file over 500 lines: every chart is drawn through the same plotters helpers into both SVG
//! and PNG.

use std::path::Path;
use std::sync::Once;

use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use crate::metrics::ErrorClass;

/// Chart size in pixels.
const SIZE: (u32, u32) = (860, 520);

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/DejaVuSans.ttf");
        // The embedded file is a valid TrueType font; a failure leaves plotters to report
        // a missing font when it first draws text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

/// Something drawable into any plotters backend.
pub trait Chart {
    /// File stem of the chart (`speedup` gives `speedup.svg` and `speedup.png`).
    fn name(&self) -> &'static str;
    /// Draws the chart onto `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// Every chart's name: a report folder taken again loses these files and no other
/// `.svg` or `.png` (the report folder module).
pub const NAMES: [&str; 10] = [
    "est_vs_true",
    "accuracy_by_class",
    "key_relations",
    "key_wheel_distance",
    "accuracy_by_band",
    "latency",
    "speedup",
    "accuracy_vs_cpu",
    "accuracy_by_seconds",
    "reliability",
];

/// Renders `chart` as `DIR/NAME.svg` and `DIR/NAME.png`; returns the SVG text.
pub fn save(dir: &Path, chart: &impl Chart) -> anyhow::Result<String> {
    debug_assert!(
        NAMES.contains(&chart.name()),
        "chart {} is missing from charts::NAMES",
        chart.name()
    );
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        chart
            .draw(&root)
            .and_then(|()| root.present().map_err(err))
            .map_err(|e| anyhow::anyhow!("chart {}: {e}", chart.name()))?;
    }
    super::write_file(&dir.join(format!("{}.svg", chart.name())), svg.as_bytes())?;
    let png =
        crate::output::Destination::check_protected(&dir.join(format!("{}.png", chart.name())))?;
    crate::output::replace_at_path(png.target(), |tmp| {
        let root = BitMapBackend::new(tmp, SIZE).into_drawing_area();
        chart
            .draw(&root)
            .and_then(|()| root.present().map_err(err))
            .map_err(|e| std::io::Error::other(format!("chart {}: {e}", chart.name())))
    })?;
    Ok(svg)
}

/// A chart area in the house layout: its title, margin and label areas (`y_label_area`
/// pixels for the y axis's numbers).
fn frame<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    caption: &str,
    y_label_area: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(y_label_area);
    builder
}

/// The axes of `chart` in the house style, named `x_desc` and `y_desc`; the caller adds
/// what is particular to its chart and draws.
fn mesh<'a, 'b, DB, XT, YT, X, Y>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
) -> MeshStyle<'a, 'b, X, Y, DB>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = XT> + ValueFormatter<XT>,
    Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
{
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15));
    mesh
}

/// Draws the series labels of `chart` in the house style, at `position`.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)
}

fn class_color(class: ErrorClass) -> RGBColor {
    match class {
        ErrorClass::Ok => RGBColor(0x2e, 0x8b, 0x57),
        c if c.acc2() => RGBColor(0xe6, 0x9f, 0x00),
        ErrorClass::TwoThirds | ErrorClass::ThreeHalves => RGBColor(0x8e, 0x44, 0xad),
        _ => RGBColor(0xc0, 0x39, 0x2b),
    }
}

const BLUE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const ORANGE: RGBColor = RGBColor(0xff, 0x7f, 0x0e);

/// The most dots [`EstimateScatter`] draws as they are; a run with more is thinned by
/// [`thin_dots`].
pub const SCATTER_DOTS: usize = 5000;

/// The cells per axis of the grid [`thin_dots`] keeps one dot per colour of: about four
/// pixels each, half a dot's width, so the picture barely changes.
const SCATTER_CELLS: f64 = 200.0;

/// The dots of `points` a scatter over `lo..hi` on both log axes draws: all of them up to
/// `max`; above it, the first dot (in input order) of each colour in each cell of a
/// [`SCATTER_CELLS`]-square grid, since a later one there would land on it. The same
/// points give the same dots, and at most `SCATTER_CELLS`² per colour.
pub fn thin_dots(
    points: &[(f64, f64, ErrorClass)],
    (lo, hi): (f64, f64),
    max: usize,
) -> Vec<(f64, f64, ErrorClass)> {
    if points.len() <= max {
        return points.to_vec();
    }
    let cell = |v: f64| {
        let at = (v.clamp(lo, hi) / lo).ln() / (hi / lo).ln();
        (at * SCATTER_CELLS).min(SCATTER_CELLS - 1.0) as u32
    };
    let mut seen = std::collections::HashSet::new();
    points
        .iter()
        .copied()
        .filter(|&(t, e, c)| {
            let RGBColor(r, g, b) = class_color(c);
            seen.insert((cell(t), cell(e), r, g, b))
        })
        .collect()
}

/// Estimated against true tempo on log axes, with the ×1, ×2, ×½, ×3, ×⅓ lines.
pub struct EstimateScatter {
    /// `(truth, estimate, class)` of every file that gave an estimate.
    pub points: Vec<(f64, f64, ErrorClass)>,
}

impl Chart for EstimateScatter {
    fn name(&self) -> &'static str {
        "est_vs_true"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let (lo, hi) = (30.0f64, 400.0f64);
        let mut chart = frame(root, "Estimated vs true tempo (log axes)", 56)
            .build_cartesian_2d((lo..hi).log_scale(), (lo..hi).log_scale())
            .map_err(err)?;
        mesh(&mut chart, "true BPM", "estimated BPM")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        let lines: [(f64, &str, RGBColor); 5] = [
            (1.0, "×1", RGBColor(0x2e, 0x8b, 0x57)),
            (2.0, "×2", RGBColor(0xe6, 0x9f, 0x00)),
            (0.5, "×1/2", RGBColor(0xe6, 0x9f, 0x00)),
            (3.0, "×3", RGBColor(0x99, 0x99, 0x99)),
            (1.0 / 3.0, "×1/3", RGBColor(0x99, 0x99, 0x99)),
        ];
        for (factor, label, color) in lines {
            let pts: Vec<(f64, f64)> = (0..=60)
                .map(|i| lo * (hi / lo).powf(f64::from(i) / 60.0))
                .map(|x| (x, x * factor))
                .filter(|&(_, y)| (lo..=hi).contains(&y))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(1)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .draw_series(
                thin_dots(&self.points, (lo, hi), SCATTER_DOTS)
                    .into_iter()
                    .map(|(t, e, c)| {
                        Circle::new(
                            (t.clamp(lo, hi), e.clamp(lo, hi)),
                            4,
                            class_color(c).filled(),
                        )
                    }),
            )
            .map_err(err)?;
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

/// Files per error class.
pub struct ClassCounts {
    /// `(class, files)` in [`ErrorClass::ALL`] order.
    pub counts: Vec<(ErrorClass, usize)>,
}

impl Chart for ClassCounts {
    fn name(&self) -> &'static str {
        "accuracy_by_class"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let bars: Vec<(&str, usize, RGBColor)> = self
            .counts
            .iter()
            .map(|&(class, count)| (class.as_str(), count, class_color(class)))
            .collect();
        count_bars(root, "Files by error class", "error class", &bars)
    }
}

/// Files per relation of the estimated key to the true one (same, a fifth above or below,
/// relative, parallel, other) and the files with no key: where key errors fall.
pub struct KeyRelationCounts {
    /// `(relation name, files)`, in report order, `missing` last.
    pub counts: Vec<(&'static str, usize)>,
}

impl Chart for KeyRelationCounts {
    fn name(&self) -> &'static str {
        "key_relations"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let bars: Vec<(&str, usize, RGBColor)> = self
            .counts
            .iter()
            .map(|&(name, count)| {
                let color = match name {
                    "same" => RGBColor(0x2e, 0x8b, 0x57),
                    "fifth_above" | "fifth_below" => RGBColor(0xe6, 0x9f, 0x00),
                    "relative" | "parallel" => RGBColor(0x8e, 0x44, 0xad),
                    "missing" => RGBColor(0x99, 0x99, 0x99),
                    _ => RGBColor(0xc0, 0x39, 0x2b),
                };
                (name, count, color)
            })
            .collect();
        count_bars(
            root,
            "Files by relation of estimated to true key",
            "estimated key against the true key",
            &bars,
        )
    }
}

/// Files by hours between the estimated and the true key on the Camelot wheel (0: the same
/// key or the relative one; 1: a fifth; 3: the parallel key; 6: a tritone) and the files
/// with no key: how far key errors reach around the circle of fifths.
pub struct KeyWheelDistances {
    /// Files at 0..=6 hours apart, then the files with no estimate.
    pub counts: [usize; 8],
}

impl Chart for KeyWheelDistances {
    fn name(&self) -> &'static str {
        "key_wheel_distance"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        const LABELS: [&str; 8] = ["0", "1", "2", "3", "4", "5", "6", "missing"];
        let bars: Vec<(&str, usize, RGBColor)> = LABELS
            .iter()
            .zip(self.counts)
            .enumerate()
            .map(|(hours, (&label, files))| {
                let color = match hours {
                    0 => RGBColor(0x2e, 0x8b, 0x57),
                    1 => RGBColor(0xe6, 0x9f, 0x00),
                    7 => RGBColor(0x99, 0x99, 0x99),
                    _ => RGBColor(0xc0, 0x39, 0x2b),
                };
                (label, files, color)
            })
            .collect();
        count_bars(
            root,
            "Files by Camelot-wheel distance of estimated to true key",
            "hours apart on the wheel (circle of fifths)",
            &bars,
        )
    }
}

/// A bar per `(label, files, colour)`, labelled underneath: the house chart of counts.
fn count_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    caption: &str,
    x_desc: &str,
    bars: &[(&str, usize, RGBColor)],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let n = bars.len().max(1) as u32;
    let top = bars.iter().map(|c| c.1).max().unwrap_or(0).max(1) as u32;
    let mut chart = frame(root, caption, 50)
        .build_cartesian_2d((0u32..n - 1).into_segmented(), 0u32..top + top / 10 + 1)
        .map_err(err)?;
    let names: Vec<&str> = bars.iter().map(|c| c.0).collect();
    mesh(&mut chart, x_desc, "files")
        .disable_x_mesh()
        .x_labels(names.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).unwrap_or(&"").to_string(),
            _ => String::new(),
        })
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, &(_, count, color))| {
            let i = i as u32;
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0),
                    (SegmentValue::Exact(i + 1), count as u32),
                ],
                color.filled(),
            );
            bar.set_margin(0, 0, 8, 8);
            bar
        }))
        .map_err(err)?;
    Ok(())
}

/// Accuracy1 and Accuracy2 per tempo band.
pub struct BandAccuracy {
    /// `(band, files, acc1, acc2)`, slowest band first.
    pub bands: Vec<(String, usize, f64, f64)>,
}

impl Chart for BandAccuracy {
    fn name(&self) -> &'static str {
        "accuracy_by_band"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let n = self.bands.len().max(1) as u32;
        let mut chart = frame(root, "Accuracy by tempo band", 50)
            .build_cartesian_2d((0u32..n - 1).into_segmented(), 0.0f64..1.25)
            .map_err(err)?;
        let names: Vec<String> = self
            .bands
            .iter()
            .map(|(b, n, _, _)| format!("{b} BPM (n={n})"))
            .collect();
        mesh(&mut chart, "true tempo band", "fraction right")
            .disable_x_mesh()
            .x_labels(names.len())
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        for (which, color, label) in [(0, BLUE, "Accuracy1"), (1, ORANGE, "Accuracy2")] {
            chart
                .draw_series(self.bands.iter().enumerate().map(|(i, b)| {
                    let i = i as u32;
                    let value = if which == 0 { b.2 } else { b.3 };
                    let (x0, x1) = if which == 0 {
                        (SegmentValue::Exact(i), SegmentValue::CenterOf(i))
                    } else {
                        (SegmentValue::CenterOf(i), SegmentValue::Exact(i + 1))
                    };
                    let mut bar = Rectangle::new([(x0, 0.0), (x1, value)], color.filled());
                    bar.set_margin(0, 0, 6, 6);
                    bar
                }))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// The most steps a curve of [`LatencyCdf`] draws: a run of more files is drawn through
/// this many of its percentiles, so that the chart of a million files is no larger than
/// that of a thousand.
pub const LATENCY_STEPS: usize = 1000;

/// The points of the cumulative curve of `values`: from `(0, 0)`, a step up at each value
/// in ascending order. With more than `steps` values, the steps are those of `steps`
/// ranks spread evenly from the smallest value to the largest (percentiles, the same for
/// the same values), each at its own height, so the curve keeps its shape and its ends.
pub fn cdf_points(values: &[f64], steps: usize) -> Vec<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let shown = if n > steps && steps >= 2 { steps } else { n };
    let total = n.max(1) as f64;
    let mut pts = vec![(0.0, 0.0)];
    for j in 0..shown {
        let i = if shown == n {
            j
        } else {
            j * (n - 1) / (shown - 1)
        };
        pts.push((sorted[i], i as f64 / total));
        pts.push((sorted[i], (i + 1) as f64 / total));
    }
    pts
}

/// Distribution of per-file latency: one cumulative curve per run.
pub struct LatencyCdf {
    /// `(label, per-file latencies in ms)`.
    pub series: Vec<(String, Vec<f64>)>,
}

impl Chart for LatencyCdf {
    fn name(&self) -> &'static str {
        "latency"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let max = self
            .series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .fold(1.0f64, f64::max);
        let mut chart = frame(root, "Per-file latency (cumulative)", 56)
            .build_cartesian_2d(0.0f64..max * 1.05, 0.0f64..1.0)
            .map_err(err)?;
        mesh(&mut chart, "latency per file, ms", "fraction of files")
            .draw()
            .map_err(err)?;
        for (k, (label, values)) in self.series.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let pts = cdf_points(values, LATENCY_STEPS);
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(err)?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

/// Speedup against worker count, with the ideal line, the 5-8x target band, the cores of
/// this machine and the Amdahl projection from the Karp-Flatt serial fraction.
pub struct Speedup {
    /// `(workers, median speedup)`.
    pub points: Vec<(usize, f64)>,
    /// Available cores of the machine measured.
    pub cores: usize,
    /// Karp-Flatt serial fraction, when defined.
    pub serial_fraction: Option<f64>,
}

impl Chart for Speedup {
    fn name(&self) -> &'static str {
        "speedup"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let xmax = self.points.iter().map(|p| p.0).max().unwrap_or(1).max(8) as f64;
        let ymax = xmax.max(9.0);
        let mut chart = frame(root, "Speedup vs workers", 50)
            .build_cartesian_2d(0.0f64..xmax + 0.5, 0.0f64..ymax)
            .map_err(err)?;
        mesh(&mut chart, "workers", "speedup over 1 worker")
            .draw()
            .map_err(err)?;
        let band = RGBColor(0x2e, 0x8b, 0x57);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 5.0), (xmax + 0.5, 8.0)],
                band.mix(0.15).filled(),
            )))
            .map_err(err)?
            .label("target 5-8x")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], band.mix(0.3).filled())
            });
        chart
            .draw_series(LineSeries::new(
                vec![(1.0, 1.0), (xmax, xmax)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(err)?
            .label("ideal (linear)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.5)));
        let cores = self.cores as f64;
        if cores <= xmax {
            let grey = RGBColor(0x88, 0x88, 0x88);
            chart
                .draw_series(LineSeries::new(
                    vec![(cores, 0.0), (cores, ymax)],
                    grey.stroke_width(1),
                ))
                .map_err(err)?
                .label(format!("cores on this machine ({})", self.cores))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        }
        if let Some(e) = self.serial_fraction {
            let purple = RGBColor(0x8e, 0x44, 0xad);
            let pts: Vec<(f64, f64)> = (1..=(xmax as usize))
                .map(|p| (p as f64, crate::metrics::amdahl_speedup(e, p)))
                .collect();
            chart
                .draw_series(DashedLineSeries::new(pts, 6, 4, purple.stroke_width(2)))
                .map_err(err)?
                .label(format!("Amdahl projection (serial fraction {e:.3})"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], purple));
        }
        let measured: Vec<(f64, f64)> = self.points.iter().map(|&(w, s)| (w as f64, s)).collect();
        chart
            .draw_series(LineSeries::new(measured.clone(), BLUE.stroke_width(2)))
            .map_err(err)?
            .label("measured (median)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
        chart
            .draw_series(measured.iter().map(|&p| Circle::new(p, 5, BLUE.filled())))
            .map_err(err)?;
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

/// Accuracy against CPU cost, one pair of points per estimator: Accuracy1 filled,
/// Accuracy2 hollow, joined by a line and labelled with the estimator's name.
pub struct AccuracyVsCost {
    /// `(name, CPU seconds per audio minute, acc1, acc2)`; estimators with no measured CPU
    /// are left out by the caller.
    pub points: Vec<(String, f64, f64, f64)>,
}

impl Chart for AccuracyVsCost {
    fn name(&self) -> &'static str {
        "accuracy_vs_cpu"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        // A log axis needs positive bounds: pad the measured range by a factor of 3 each way.
        let positive = self.points.iter().map(|p| p.1.max(1e-4));
        let lo = positive.clone().fold(f64::INFINITY, f64::min);
        let hi = positive.fold(0.0f64, f64::max);
        let (lo, hi) = if lo.is_finite() && hi > 0.0 {
            (lo / 3.0, hi * 3.0)
        } else {
            (0.01, 10.0)
        };
        let mut chart = frame(root, "Accuracy vs CPU cost", 56)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0f64..1.05)
            .map_err(err)?;
        mesh(
            &mut chart,
            "CPU seconds per minute of audio (log)",
            "fraction of files right",
        )
        .x_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .draw()
        .map_err(err)?;
        for (k, (name, x, acc1, acc2)) in self.points.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let x = x.max(1e-4);
            chart
                .draw_series(LineSeries::new(
                    vec![(x, *acc1), (x, *acc2)],
                    color.stroke_width(1),
                ))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
            chart
                .draw_series([
                    Circle::new((x, *acc1), 6, color.filled()),
                    Circle::new((x, *acc2), 6, color.stroke_width(2)),
                ])
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

/// One line of an [`AccuracyCurve`]: a label and `(x, acc1, acc2)` points in x order.
pub type AccuracySeries = (String, Vec<(f64, f64, f64)>);

/// Accuracy1 (solid line, filled dots) and Accuracy2 (dashed line, hollow dots) against a
/// number, one colour per series: accuracy by seconds of audio per estimator, or by
/// confidence (the reliability curve). One chart type for both, so they read alike.
pub struct AccuracyCurve {
    /// File stem.
    pub name: &'static str,
    /// Title above the chart.
    pub caption: &'static str,
    /// What the x axis measures.
    pub x_desc: &'static str,
    /// The x axis, `(from, to)`.
    pub x_range: (f64, f64),
    /// Whether to draw the diagonal y = x, against which a confidence reads as a
    /// probability of being right.
    pub diagonal: bool,
    /// The lines.
    pub series: Vec<AccuracySeries>,
}

impl AccuracyCurve {
    /// Accuracy against seconds of audio, one pair of lines per estimator.
    pub fn by_seconds(series: Vec<AccuracySeries>) -> Self {
        let longest = series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.0))
            .fold(1.0f64, f64::max);
        AccuracyCurve {
            name: "accuracy_by_seconds",
            caption: "Accuracy1/2 against seconds of audio",
            x_desc: "seconds of audio per file",
            x_range: (0.0, longest * 1.08),
            diagonal: false,
            series,
        }
    }

    /// The reliability curve: accuracy against confidence, at each bin's centre.
    pub fn reliability(series: AccuracySeries) -> Self {
        AccuracyCurve {
            name: "reliability",
            caption: "Accuracy against confidence (reliability)",
            x_desc: "confidence (centre of each bin)",
            x_range: (0.0, 1.0),
            diagonal: true,
            series: vec![series],
        }
    }
}

impl Chart for AccuracyCurve {
    fn name(&self) -> &'static str {
        self.name
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let mut chart = frame(root, self.caption, 56)
            .build_cartesian_2d(self.x_range.0..self.x_range.1, 0.0f64..1.05)
            .map_err(err)?;
        mesh(&mut chart, self.x_desc, "fraction of files right")
            .draw()
            .map_err(err)?;
        if self.diagonal {
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, 0.0), (1.0, 1.0)],
                    BLACK.mix(0.4).stroke_width(1),
                ))
                .map_err(err)?
                .label("accuracy = confidence")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.4)));
        }
        for (k, (label, points)) in self.series.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let acc1: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
            let acc2: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.2)).collect();
            chart
                .draw_series(LineSeries::new(acc1.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(format!("{label} Accuracy1"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(acc1.iter().map(|&p| Circle::new(p, 5, color.filled())))
                .map_err(err)?;
            chart
                .draw_series(DashedLineSeries::new(
                    acc2.clone(),
                    6,
                    4,
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(format!("{label} Accuracy2"))
                .legend(move |(x, y)| Circle::new((x + 9, y), 4, color.stroke_width(2)));
            chart
                .draw_series(
                    acc2.iter()
                        .map(|&p| Circle::new(p, 5, color.stroke_width(2))),
                )
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_draws_every_step_and_a_large_one_its_percentiles() {
        assert_eq!(
            cdf_points(&[3.0, 1.0], 10),
            [(0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (3.0, 0.5), (3.0, 1.0)]
        );
        assert_eq!(cdf_points(&[], 10), [(0.0, 0.0)]);
        let many: Vec<f64> = (0..100_000).rev().map(f64::from).collect();
        let pts = cdf_points(&many, 1000);
        assert_eq!(pts.len(), 1 + 2 * 1000);
        // Both ends kept, the median where it was, the same points every time.
        assert_eq!(pts[1], (0.0, 0.0));
        assert_eq!(pts[pts.len() - 1], (99_999.0, 1.0));
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let middle = pts[1001];
        assert!((middle.1 - 0.5).abs() < 0.001 && (middle.0 - 50_000.0).abs() < 100.0);
        assert_eq!(pts, cdf_points(&many, 1000));
    }

    #[test]
    fn a_crowded_scatter_keeps_one_dot_per_colour_and_cell() {
        let few = [
            (120.0, 121.0, ErrorClass::Ok),
            (120.0, 121.0, ErrorClass::Ok),
        ];
        assert_eq!(thin_dots(&few, (30.0, 400.0), 2), few);
        // A million files at three tempi, right, doubled and an odd one: four dots.
        let crowd: Vec<(f64, f64, ErrorClass)> = (0..1_000_000)
            .map(|i| match i % 3 {
                0 => (120.0, 120.0 + f64::from(i % 7) * 0.01, ErrorClass::Ok),
                1 => (100.0, 200.0, ErrorClass::Double),
                _ => (90.0, 47.0 + f64::from(i % 2) * 200.0, ErrorClass::Other),
            })
            .collect();
        let dots = thin_dots(&crowd, (30.0, 400.0), 5000);
        assert_eq!(dots.len(), 4, "{dots:?}");
        assert_eq!(dots[0], crowd[0]);
    }
}
