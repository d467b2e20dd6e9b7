//! The ONNX Runtime session: the only file that names `ort`. Finds the runtime library, creates
//! one environment per process, loads a model, checks its shapes, reads its metadata, and runs it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use super::DetectError;
use super::model::{ModelInfo, OutputLayout, parse_class_names};
use crate::config::ModelConfig;

/// Where the setup script puts the runtime library (relative to the working directory).
pub const BUNDLED_LIBRARY: &str = "models/onnxruntime/libonnxruntime.so.1.31.1";

/// Candidate library paths, in order: config, `ORT_DYLIB_PATH`, next to the binary, the bundled
/// location.
fn library_candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(p) = configured {
        return vec![p.to_path_buf()];
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        c.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        c.push(dir.join("libonnxruntime.so.1.31.1"));
        c.push(dir.join("libonnxruntime.so"));
    }
    c.push(PathBuf::from(BUNDLED_LIBRARY));
    c
}

/// The process-wide ONNX Runtime environment (the library can be loaded only once).
fn environment(configured: Option<&Path>) -> Result<&'static Environment, DetectError> {
    static ENV: OnceLock<Result<Environment, DetectError>> = OnceLock::new();
    ENV.get_or_init(|| {
        let candidates = library_candidates(configured);
        let Some(lib) = candidates.iter().find(|p| p.is_file()) else {
            return Err(DetectError::Runtime(format!(
                "the ONNX Runtime library was not found (looked at: {}); run scripts/setup.sh, or set \
                 model.ort_library or ORT_DYLIB_PATH",
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )));
        };
        let builder = ort::init_from(lib).map_err(|e| {
            DetectError::Runtime(format!(
                "cannot load the ONNX Runtime library {}: {e}; dumpwatch needs ONNX Runtime 1.31 \
                 (run scripts/setup.sh to fetch it)",
                lib.display()
            ))
        })?;
        builder.with_name("dumpwatch").with_telemetry(false).build().map_err(|e| {
            DetectError::Runtime(format!("cannot start ONNX Runtime from {}: {e}", lib.display()))
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A loaded model with its own session. `run` needs `&mut self`: one engine per worker thread.
pub struct Engine {
    session: Session,
    info: Arc<ModelInfo>,
    input_name: String,
}

impl Engine {
    /// Loads `cfg.path` with `cfg.threads_per_session` intra-op threads, checks it, and runs it
    /// once on a blank input (warm-up, so the first real frame does not pay for allocation).
    pub fn load(cfg: &ModelConfig) -> Result<Engine, DetectError> {
        let path = &cfg.path;
        let model_error = |what: String| DetectError::Model {
            path: path.clone(),
            message: what,
        };
        if !path.is_file() {
            return Err(model_error(
                "the file does not exist; run scripts/setup.sh to fetch the default model, or set model.path".into(),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| model_error(format!("cannot read it: {e}")))?;
        let sha256 = crate::hashing::sha256_hex(&bytes);
        let env = environment(cfg.ort_library.as_deref())?;
        let session = Session::builder(env)
            .and_then(|b| {
                b.with_optimization_level(GraphOptimizationLevel::All)
                    .map_err(Into::into)
            })
            .and_then(|b| {
                b.with_intra_threads(cfg.threads_per_session as usize)
                    .map_err(Into::into)
            })
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            // Without ONNX Runtime's CPU arena each session returns its activations' memory
            // after a run instead of keeping the high-water mark (measured: see
            // docs/performance.md, "77 cameras").
            .and_then(|b| {
                b.with_execution_providers([ort::ep::CPU::default()
                    .with_arena_allocator(false)
                    .build()])
                    .map_err(Into::into)
            })
            .and_then(|mut b| b.commit_from_memory(&bytes))
            .map_err(|e| model_error(format!("ONNX Runtime cannot load it: {e}")))?;

        let [input] = session.inputs() else {
            return Err(model_error(format!(
                "expected 1 input, found {}",
                session.inputs().len()
            )));
        };
        let [output] = session.outputs() else {
            return Err(model_error(format!(
                "expected 1 output, found {}",
                session.outputs().len()
            )));
        };
        let in_shape: Vec<i64> = input
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let out_shape: Vec<i64> = output
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let (dynamic_batch, h, w) = match in_shape.as_slice() {
            [b, 3, h, w] if *h > 0 && *w > 0 && (*b == 1 || *b == -1) => {
                (*b == -1, *h as u32, *w as u32)
            }
            _ => {
                return Err(model_error(format!(
                    "input {:?} has shape {in_shape:?}; expected [1, 3, height, width] (RGB, fixed size)",
                    input.name()
                )));
            }
        };
        let metadata = session
            .metadata()
            .map_err(|e| model_error(format!("cannot read metadata: {e}")))?;
        let names = metadata
            .custom("names")
            .map(|t| parse_class_names(&t))
            .transpose()?;
        let stride = metadata
            .custom("stride")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(32);
        drop(metadata);
        let layout = OutputLayout::infer(&out_shape, names.as_ref().map(Vec::len))
            .map_err(|e| model_error(format!("output {:?}: {e}", output.name())))?;
        let mut class_names =
            names.unwrap_or_else(|| (0..layout.classes()).map(|i| format!("class{i}")).collect());
        for name in &mut class_names {
            if let Some(new) = cfg.rename.get(name.as_str()) {
                *name = new.clone();
            }
        }
        let info = ModelInfo {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256,
            class_names,
            input_size: (w, h),
            stride,
            dynamic_batch,
            layout,
        };
        let input_name = input.name().to_owned();
        let mut engine = Engine {
            session,
            info: Arc::new(info),
            input_name,
        };
        let blank = vec![0.0f32; 3 * w as usize * h as usize];
        engine
            .run(&blank, 1, |_| ())
            .map_err(|e| model_error(format!("warm-up run failed: {e}")))?;
        Ok(engine)
    }

    /// The model's description.
    pub fn info(&self) -> &Arc<ModelInfo> {
        &self.info
    }

    /// Runs `batch` images (`input` is `[batch, 3, h, w]`) and hands the raw output
    /// (`batch × layout.len()` values) to `f`.
    pub fn run<R>(
        &mut self,
        input: &[f32],
        batch: usize,
        f: impl FnOnce(&[f32]) -> R,
    ) -> Result<R, DetectError> {
        let (w, h) = self.info.input_size;
        let shape = [batch, 3, h as usize, w as usize];
        if input.len() != shape.iter().product::<usize>() {
            return Err(DetectError::Inference(format!(
                "input has {} values, expected {shape:?}",
                input.len()
            )));
        }
        let tensor = TensorRef::from_array_view((shape, input))
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let (_, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let expected = batch * self.info.layout.len();
        if data.len() != expected {
            return Err(DetectError::Inference(format!(
                "output has {} values, expected {expected}",
                data.len()
            )));
        }
        Ok(f(data))
    }
}
