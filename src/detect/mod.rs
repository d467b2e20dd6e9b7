//! Detect: an ONNX object detector over decoded pictures.
//!
//! [`engine`] owns the ONNX Runtime session (the only file that names `ort`), [`preprocess`]
//! letterboxes a picture into the input tensor, [`postprocess`] turns raw output into
//! [`Detection`]s, and [`worker`] runs a pool of single-session threads that serve every camera
//! fairly. [`Detector`] ties one engine to its buffers, for the workers and the `detect` command.

pub mod engine;
pub mod model;
pub mod postprocess;
pub mod preprocess;
pub mod worker;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use crate::detection::Detection;
pub use crate::geometry::BBox;
pub use engine::Engine;
pub use model::{ModelInfo, OutputLayout};
pub use postprocess::{PostprocessConfig, Postprocessor};
pub use preprocess::{Letterbox, Preprocessor, Tile};

use crate::config::ModelConfig;
use crate::decode::DecodedFrame;
use crate::geometry::Polygon;

/// What can go wrong loading or running the detector.
#[derive(Clone, Debug, thiserror::Error)]
pub enum DetectError {
    /// The ONNX Runtime library is missing or unusable.
    #[error("{0}")]
    Runtime(String),
    /// The model file is missing, unreadable, or not a usable detector.
    #[error("model {}: {message}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The model's metadata cannot be understood.
    #[error("model metadata: {0}")]
    Metadata(String),
    /// A detector setting refers to something the model does not have.
    #[error("{field}: {message}")]
    Config {
        /// The config path (`model.class_confidence.bag`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The picture cannot be used (empty, too small a buffer).
    #[error("bad picture: {0}")]
    BadImage(String),
    /// ONNX Runtime failed on a run.
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Time spent in each step of one detection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Letterbox and tensor fill.
    pub preprocess: Duration,
    /// `session.run`.
    pub inference: Duration,
    /// Decoding the output.
    pub postprocess: Duration,
}

/// Detections of one picture.
#[derive(Clone, Debug)]
pub struct Detected {
    /// The detections, best first.
    pub detections: Vec<Detection>,
    /// Where the picture sat in the model input.
    pub letterbox: Letterbox,
    /// Step timings.
    pub timings: Timings,
}

/// Builds the postprocessing thresholds from the config, checking class names against the model.
pub fn postprocess_config(
    cfg: &ModelConfig,
    info: &ModelInfo,
) -> Result<PostprocessConfig, DetectError> {
    let mut thresholds = vec![cfg.confidence; info.class_names.len()];
    for (name, &t) in &cfg.class_confidence {
        let id = info.class_id(name).ok_or_else(|| DetectError::Config {
            field: format!("model.class_confidence.{name}"),
            message: format!(
                "the model has no class {name:?} (its classes: {})",
                info.class_names
                    .iter()
                    .take(12)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
                    + if info.class_names.len() > 12 {
                        ", ..."
                    } else {
                        ""
                    }
            ),
        })?;
        thresholds[id] = t;
    }
    Ok(PostprocessConfig {
        class_threshold: thresholds,
        iou_threshold: cfg.iou_threshold,
        min_area: cfg.min_box_area_px,
        max_detections: cfg.max_detections,
    })
}

/// One engine with its reusable buffers.
pub struct Detector {
    engine: Engine,
    pre: Preprocessor,
    post: Postprocessor,
    cfg: PostprocessConfig,
    /// Extra buffers for batched runs (one per picture after the first).
    batch_pre: Vec<Preprocessor>,
    batch_input: Vec<f32>,
    /// Two wide pictures per run, one in each half of the input (`model.mosaic`).
    mosaic: bool,
}

/// A picture shares a run only if it keeps at least this share of the scale it would have alone
/// (16:9 in a square input keeps 89 %; 4:3 would keep 61 % and runs alone).
pub const MIN_SHARED_SCALE: f32 = 0.85;

impl Detector {
    /// Loads the model of `cfg` and prepares its buffers.
    pub fn load(cfg: &ModelConfig) -> Result<Detector, DetectError> {
        let engine = Engine::load(cfg)?;
        let post_cfg = postprocess_config(cfg, engine.info())?;
        Ok(Detector::new(engine, post_cfg).with_mosaic(cfg.mosaic))
    }

    /// Wraps a loaded engine.
    pub fn new(engine: Engine, cfg: PostprocessConfig) -> Detector {
        let pre = Preprocessor::new(engine.info().input_size);
        Detector {
            engine,
            pre,
            post: Postprocessor::default(),
            cfg,
            batch_pre: Vec::new(),
            batch_input: Vec::new(),
            mosaic: false,
        }
    }

    /// Puts two wide pictures in each run of a batch-1 model (see [`Detector::shares_runs`]).
    /// A dynamic-batch model batches instead.
    pub fn with_mosaic(mut self, on: bool) -> Detector {
        self.mosaic = on && !self.engine.info().dynamic_batch;
        self
    }

    /// How many pictures one run can take when `first` is one of them: up to `max_batch` for a
    /// dynamic-batch model, 2 with the mosaic when `first` shares runs, else 1.
    pub fn pictures_per_run(&self, first: (u32, u32), max_batch: usize) -> usize {
        if self.engine.info().dynamic_batch {
            max_batch.max(1)
        } else if self.shares_runs(first) {
            2
        } else {
            1
        }
    }

    /// Whether a picture of `size` goes into half the input (the mosaic is on and the picture is
    /// wide enough to keep [`MIN_SHARED_SCALE`] of its scale there). Such a picture always gets a
    /// half, with a partner or alone, so its detections do not depend on the load.
    pub fn shares_runs(&self, size: (u32, u32)) -> bool {
        if !self.mosaic {
            return false;
        }
        let input = self.engine.info().input_size;
        match (
            Letterbox::new(size, input),
            Letterbox::in_tile(size, input, Tile::halves(input)[0]),
        ) {
            (Ok(whole), Ok(half)) => half.scale >= MIN_SHARED_SCALE * whole.scale,
            _ => false,
        }
    }

    /// The model's description.
    pub fn info(&self) -> &std::sync::Arc<ModelInfo> {
        self.engine.info()
    }

    /// Replaces the thresholds (e.g. `--conf` on the command line).
    pub fn set_postprocess(&mut self, cfg: PostprocessConfig) {
        self.cfg = cfg;
    }

    /// Detects objects in a packed RGB picture.
    pub fn detect_rgb(
        &mut self,
        rgb: &image::RgbImage,
        zones: &[Polygon],
    ) -> Result<Detected, DetectError> {
        let t0 = Instant::now();
        let lb = self.pre.fill_rgb(rgb.as_raw(), rgb.width(), rgb.height())?;
        self.finish(lb, t0, zones)
    }

    /// Detects objects in a decoded I420 picture.
    pub fn detect_frame(
        &mut self,
        frame: &DecodedFrame,
        zones: &[Polygon],
    ) -> Result<Detected, DetectError> {
        let t0 = Instant::now();
        let lb = if self.shares_runs((frame.width(), frame.height())) {
            let [top, bottom] = Tile::halves(self.engine.info().input_size);
            self.pre.blank(bottom);
            self.pre.fill_i420_in(frame, top)?
        } else {
            self.pre.fill_i420(frame)?
        };
        self.finish(lb, t0, zones)
    }

    /// Detects objects in two wide pictures with one run, one in each half of the input.
    fn detect_shared(
        &mut self,
        frames: [&DecodedFrame; 2],
        zones: [&[Polygon]; 2],
    ) -> Result<[Detected; 2], DetectError> {
        let t0 = Instant::now();
        let [top, bottom] = Tile::halves(self.engine.info().input_size);
        let lbs = [
            self.pre.fill_i420_in(frames[0], top)?,
            self.pre.fill_i420_in(frames[1], bottom)?,
        ];
        let t1 = Instant::now();
        let layout = self.engine.info().layout;
        let (post, cfg) = (&mut self.post, &self.cfg);
        let mut t2 = t1;
        let [a, b] = self.engine.run(self.pre.tensor(), 1, |out| {
            t2 = Instant::now();
            [0, 1].map(|i| post.run(out, layout, &lbs[i], cfg, zones[i]))
        })?;
        let timings = Timings {
            preprocess: t1 - t0,
            inference: t2 - t1,
            postprocess: t2.elapsed(),
        };
        let [la, lb] = lbs;
        Ok([
            Detected {
                detections: a,
                letterbox: la,
                timings,
            },
            Detected {
                detections: b,
                letterbox: lb,
                timings,
            },
        ])
    }

    /// Detects objects in several pictures (`frames[i]` with `zones[i]`) with as few runs as the
    /// model allows: one batch for a dynamic-batch model; with the mosaic, wide pictures two to
    /// a run and the others alone; otherwise one run each. Results in the order given.
    pub fn detect_many(
        &mut self,
        frames: &[&DecodedFrame],
        zones: &[&[Polygon]],
    ) -> Result<Vec<Detected>, DetectError> {
        assert_eq!(frames.len(), zones.len(), "one zone list per picture");
        if self.engine.info().dynamic_batch || !self.mosaic {
            return self.detect_batch(frames, zones);
        }
        let mut out: Vec<Option<Detected>> = vec![None; frames.len()];
        let mut waiting: Option<usize> = None;
        for (i, frame) in frames.iter().enumerate() {
            if !self.shares_runs((frame.width(), frame.height())) {
                out[i] = Some(self.detect_frame(frame, zones[i])?);
            } else if let Some(j) = waiting.take() {
                let [a, b] = self.detect_shared([frames[j], frame], [zones[j], zones[i]])?;
                (out[j], out[i]) = (Some(a), Some(b));
            } else {
                waiting = Some(i);
            }
        }
        if let Some(j) = waiting {
            out[j] = Some(self.detect_frame(frames[j], zones[j])?);
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Detects objects in several pictures with one run of a dynamic-batch model (`frames[i]` with
    /// `zones[i]`). For a batch-1 model, or a single picture, runs them one by one.
    pub fn detect_batch(
        &mut self,
        frames: &[&DecodedFrame],
        zones: &[&[Polygon]],
    ) -> Result<Vec<Detected>, DetectError> {
        assert_eq!(frames.len(), zones.len(), "one zone list per picture");
        if frames.len() <= 1 || !self.engine.info().dynamic_batch {
            return frames
                .iter()
                .zip(zones)
                .map(|(f, z)| self.detect_frame(f, z))
                .collect();
        }
        let t0 = Instant::now();
        let size = self.engine.info().input_size;
        while self.batch_pre.len() < frames.len() {
            self.batch_pre.push(Preprocessor::new(size));
        }
        self.batch_input.clear();
        let mut letterboxes = Vec::with_capacity(frames.len());
        for (frame, pre) in frames.iter().zip(&mut self.batch_pre) {
            letterboxes.push(pre.fill_i420(frame)?);
            self.batch_input.extend_from_slice(pre.tensor());
        }
        let t1 = Instant::now();
        let layout = self.engine.info().layout;
        let (post, cfg) = (&mut self.post, &self.cfg);
        let mut t2 = t1;
        let all = self.engine.run(&self.batch_input, frames.len(), |out| {
            t2 = Instant::now();
            out.chunks_exact(layout.len())
                .zip(&letterboxes)
                .zip(zones)
                .map(|((o, lb), z)| post.run(o, layout, lb, cfg, z))
                .collect::<Vec<_>>()
        })?;
        let timings = Timings {
            preprocess: t1 - t0,
            inference: t2 - t1,
            postprocess: t2.elapsed(),
        };
        Ok(all
            .into_iter()
            .zip(letterboxes)
            .map(|(detections, letterbox)| Detected {
                detections,
                letterbox,
                timings,
            })
            .collect())
    }

    fn finish(
        &mut self,
        lb: Letterbox,
        t0: Instant,
        zones: &[Polygon],
    ) -> Result<Detected, DetectError> {
        let t1 = Instant::now();
        let layout = self.engine.info().layout;
        let (post, cfg) = (&mut self.post, &self.cfg);
        let mut t2 = t1;
        let detections = self.engine.run(self.pre.tensor(), 1, |out| {
            t2 = Instant::now();
            post.run(out, layout, &lb, cfg, zones)
        })?;
        let t3 = Instant::now();
        Ok(Detected {
            detections,
            letterbox: lb,
            timings: Timings {
                preprocess: t1 - t0,
                inference: t2 - t1,
                postprocess: t3 - t2,
            },
        })
    }
}
