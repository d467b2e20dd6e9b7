//! The sweep plot: precision, recall and F1 against the swept setting, as a PNG.

use std::path::Path;

use plotters::prelude::*;

/// Font used for the plot's text (Debian's `fonts-dejavu-core`, installed by scripts/setup.sh).
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Why the plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The font file is missing.
    #[error("cannot read the plot font {FONT}: {0}; install Debian's fonts-dejavu-core")]
    Font(std::io::Error),
    /// Drawing or writing failed.
    #[error("cannot draw {path}: {message}")]
    Draw {
        /// The output file.
        path: String,
        /// What failed.
        message: String,
    },
}

fn register_font() -> Result<(), PlotError> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT).map_err(|e| e.to_string())?;
            let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, leaked)
                .map_err(|_| "not a usable font".to_owned())
        })
        .clone()
        .map_err(|m| PlotError::Font(std::io::Error::other(m)))
}

/// A plotted line: name, colour, and the figure it shows.
type Series = (&'static str, RGBColor, fn(&SweepPoint) -> f64);

/// One row of a sweep: the value and its precision, recall and F1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepPoint {
    /// The swept setting's value.
    pub value: f64,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

/// Draws precision, recall and F1 against `key` into `path` (PNG, 900 × 540).
pub fn sweep_plot(path: &Path, key: &str, points: &[SweepPoint]) -> Result<(), PlotError> {
    register_font()?;
    let draw = |e: String| PlotError::Draw {
        path: path.display().to_string(),
        message: e,
    };
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.value), hi.max(p.value))
        });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (lo.min(0.0), lo.max(0.0) + 1.0)
    };
    let (w, h) = (900u32, 540u32);
    let mut buffer = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("dumpwatch eval: sweep of {key}"),
                ("sans-serif", 24),
            )
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(56)
            .build_cartesian_2d(lo..hi, 0.0..1.05)
            .map_err(|e| draw(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(key)
            .y_desc("score")
            .label_style(("sans-serif", 16))
            .draw()
            .map_err(|e| draw(e.to_string()))?;
        let series: [Series; 3] = [
            ("precision", RGBColor(31, 119, 180), |p| p.precision),
            ("recall", RGBColor(255, 127, 14), |p| p.recall),
            ("F1", RGBColor(44, 160, 44), |p| p.f1),
        ];
        for (name, colour, get) in series {
            let data: Vec<(f64, f64)> = points.iter().map(|p| (p.value, get(p))).collect();
            chart
                .draw_series(LineSeries::new(data.clone(), colour.stroke_width(3)))
                .map_err(|e| draw(e.to_string()))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
                });
            chart
                .draw_series(
                    data.into_iter()
                        .map(|(x, y)| Circle::new((x, y), 4, colour.filled())),
                )
                .map_err(|e| draw(e.to_string()))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()
            .map_err(|e| draw(e.to_string()))?;
        root.present().map_err(|e| draw(e.to_string()))?;
    }
    let img = image::RgbImage::from_raw(w, h, buffer).ok_or_else(|| draw("buffer size".into()))?;
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| draw(e.to_string()))
}
