//! Running the pipeline over a dataset and scoring it: one worker thread per detector session,
//! each taking the next clip; detections are cached per clip and picture, so a sweep over
//! analyzer settings runs the detector about once per picture, however many values it tries.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::dataset::{Dataset, EventKind};
use super::score::{ClipScore, Raised, Summary, score_clip, summarize, view_as_labelled};
use crate::analyze::{self, AnalyzerConfig, UnknownClass};
use crate::config::{AnalyzeConfig, AnalyzeOverrides};
use crate::detect::Detector;
use crate::replay::{DetectionCache, ReplayError, ReplayStats, replay_clip};

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A clip could not be replayed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The analyzer settings name a class the model lacks.
    #[error(transparent)]
    Class(#[from] UnknownClass),
}

/// What happened in one clip.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClipResult {
    /// The clip, as named in labels.toml.
    pub file: PathBuf,
    /// Incidents raised and cleared: (kind, seconds from the start).
    pub events: Vec<(String, f64)>,
    /// Matched, false alarms, misses, times to alert.
    #[serde(flatten)]
    pub score: ClipScore,
    /// Whether the camera's view was reported as labelled ([`super::score::view_as_labelled`]).
    pub view_as_labelled: bool,
    /// Replay figures.
    pub stats: ReplayStats,
}

/// The outcome of one evaluation run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EvalRun {
    /// Per clip, in dataset order.
    pub clips: Vec<ClipResult>,
    /// Totals.
    pub summary: Summary,
}

/// Runs every clip of `dataset` with `settings` (the clip's zone as the only zone), spreading
/// the clips over `detectors`, with at most `detect_rate` detections a second per clip when
/// given (a loaded box: see [`crate::replay::replay_clip`]). `caches` keeps detections between
/// runs (one map per clip).
pub fn evaluate(
    dataset: &Dataset,
    settings: &AnalyzeConfig,
    detect_rate: Option<f64>,
    detectors: &mut [Detector],
    caches: &Mutex<HashMap<usize, DetectionCache>>,
) -> Result<EvalRun, EvalError> {
    let class_names = detectors[0].info().class_names.clone();
    let configs: Vec<AnalyzerConfig> = dataset
        .clips
        .iter()
        .enumerate()
        .map(|(i, clip)| {
            let none = AnalyzeOverrides::default();
            let zones: Vec<(String, crate::geometry::Polygon, &AnalyzeOverrides)> = clip
                .zone
                .iter()
                .map(|z| ("zone".to_owned(), z.clone(), &none))
                .collect();
            AnalyzerConfig::resolve_parts(
                settings,
                &none,
                &zones,
                vec![],
                &class_names,
                &format!("clip[{i}]"),
            )
        })
        .collect::<Result<_, _>>()?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<ClipResult, ReplayError>>>> =
        Mutex::new((0..dataset.clips.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for detector in detectors.iter_mut() {
            let (next, results, configs) = (&next, &results, &configs);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(clip) = dataset.clips.get(i) else {
                        break;
                    };
                    let mut cache = caches
                        .lock()
                        .expect("not poisoned")
                        .remove(&i)
                        .unwrap_or_default();
                    let mut raised = Vec::new();
                    let r = replay_clip(
                        &dataset.clip_path(clip),
                        detector,
                        configs[i].clone(),
                        detect_rate,
                        Some(&mut cache),
                        |e, _| {
                            let kind = match e.kind {
                                analyze::EventKind::Raised => Some(EventKind::Dumping),
                                analyze::EventKind::Cleared => Some(EventKind::Cleared),
                                analyze::EventKind::Updated => None,
                            };
                            if let Some(kind) = kind {
                                raised.push(Raised { kind, at_s: e.at });
                            }
                        },
                    );
                    caches.lock().expect("not poisoned").insert(i, cache);
                    let outcome = r.map(|stats| {
                        let score = score_clip(&clip.events, &raised);
                        let view_ok = view_as_labelled(clip.view.as_ref(), &stats.views);
                        clip_result(clip.file.clone(), &raised, score, view_ok, stats)
                    });
                    results.lock().expect("not poisoned")[i] = Some(outcome);
                }
            });
        }
    });
    let mut clips = Vec::new();
    for r in results.into_inner().expect("not poisoned") {
        clips.push(r.expect("every clip was run")?);
    }
    let scores: Vec<ClipScore> = clips.iter().map(|c| c.score.clone()).collect();
    let video_s: f64 = clips.iter().map(|c| c.stats.duration_s).sum();
    let mut summary = summarize(&scores, video_s);
    summary.views_not_as_labelled = clips.iter().filter(|c| !c.view_as_labelled).count();
    Ok(EvalRun { clips, summary })
}

fn clip_result(
    file: PathBuf,
    raised: &[Raised],
    score: ClipScore,
    view_as_labelled: bool,
    stats: ReplayStats,
) -> ClipResult {
    ClipResult {
        file,
        events: raised
            .iter()
            .map(|r| {
                (
                    match r.kind {
                        EventKind::Dumping => "dumping",
                        EventKind::Cleared => "cleared",
                    }
                    .to_owned(),
                    r.at_s,
                )
            })
            .collect(),
        score,
        view_as_labelled,
        stats,
    }
}

/// Why a `--set` or `--sweep` argument cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    /// Not `key=value` / `key=start:end:step`.
    #[error("{arg:?}: {message}")]
    Syntax {
        /// The argument.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// The key does not exist or the value has the wrong type.
    #[error("{arg:?}: {message}")]
    Invalid {
        /// The argument.
        arg: String,
        /// The parser's message.
        message: String,
    },
}

/// Sets `key` (a field of `[analyze]`, e.g. `dwell_s`) to `value` (TOML syntax; bare words are
/// strings) and returns the new settings.
pub fn set_key(
    settings: &AnalyzeConfig,
    key: &str,
    value: &str,
    arg: &str,
) -> Result<AnalyzeConfig, SettingError> {
    let key = key.trim().strip_prefix("analyze.").unwrap_or(key.trim());
    let mut table = toml::Table::try_from(settings).map_err(|e| SettingError::Invalid {
        arg: arg.into(),
        message: e.to_string(),
    })?;
    if !table.contains_key(key) {
        let known: Vec<&str> = table.keys().map(String::as_str).collect();
        return Err(SettingError::Invalid {
            arg: arg.into(),
            message: format!("unknown key {key:?}; [analyze] has: {}", known.join(", ")),
        });
    }
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    // Integers are fine where floats are expected.
    let parsed = match (&table[key], parsed) {
        (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
        (_, v) => v,
    };
    table.insert(key.to_owned(), parsed);
    table
        .try_into()
        .map_err(|e: toml::de::Error| SettingError::Invalid {
            arg: arg.into(),
            message: e.message().to_owned(),
        })
}

/// Applies `key=value`.
pub fn apply_set(settings: &AnalyzeConfig, arg: &str) -> Result<AnalyzeConfig, SettingError> {
    let (key, value) = arg.split_once('=').ok_or_else(|| SettingError::Syntax {
        arg: arg.into(),
        message: "expected key=value".into(),
    })?;
    set_key(settings, key, value, arg)
}

/// Parses `key=start:end:step` into the key and its values (end included, at most 100 values).
pub fn parse_sweep(arg: &str) -> Result<(String, Vec<f64>), SettingError> {
    let syntax = |m: &str| SettingError::Syntax {
        arg: arg.into(),
        message: m.into(),
    };
    let (key, range) = arg
        .split_once('=')
        .ok_or_else(|| syntax("expected key=start:end:step"))?;
    let parts: Vec<f64> = range
        .split(':')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| syntax("start, end and step must be numbers"))?;
    let [start, end, step] = parts[..] else {
        return Err(syntax("expected key=start:end:step"));
    };
    if step.is_nan() || step <= 0.0 || !start.is_finite() || !end.is_finite() || end < start {
        return Err(syntax("need start <= end and step > 0"));
    }
    let n = ((end - start) / step + 1e-9).floor() as usize + 1;
    if n > 100 {
        return Err(syntax("more than 100 values: use a larger step"));
    }
    Ok((
        key.trim().to_owned(),
        (0..n).map(|i| start + step * i as f64).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_sweep_arguments() {
        let s = AnalyzeConfig::default();
        assert_eq!(apply_set(&s, "dwell_s=12").unwrap().dwell_s, 12.0);
        assert_eq!(
            apply_set(&s, "analyze.cooldown_s=1.5").unwrap().cooldown_s,
            1.5
        );
        assert_eq!(
            apply_set(&s, "dumpable_classes=[\"couch\"]")
                .unwrap()
                .dumpable_classes,
            vec!["couch".to_owned()]
        );
        let e = apply_set(&s, "dwel_s=3").unwrap_err().to_string();
        assert!(
            e.contains("unknown key \"dwel_s\"") && e.contains("dwell_s"),
            "{e}"
        );
        let e = apply_set(&s, "dwell_s=soon").unwrap_err().to_string();
        assert!(e.contains("dwell_s=soon"), "{e}");
        assert!(apply_set(&s, "dwell_s").is_err());

        let (k, v) = parse_sweep("dwell_s=10:30:10").unwrap();
        assert_eq!((k.as_str(), v), ("dwell_s", vec![10.0, 20.0, 30.0]));
        let (_, v) = parse_sweep("gate_change_share=0.001:0.003:0.001").unwrap();
        assert_eq!(v.len(), 3);
        assert!(parse_sweep("dwell_s=30:10:10").is_err());
        assert!(parse_sweep("dwell_s=1:1000:1").is_err());
        assert!(parse_sweep("dwell_s=a:b:c").is_err());
    }
}
