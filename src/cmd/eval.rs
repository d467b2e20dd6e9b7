//! `dumpwatch eval --dataset DIR`: the pipeline over a labelled dataset, scored; with `--sweep`,
//! one run per value of a setting and a precision / recall / F1 plot.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use dumpwatch::analyze::view::View;
use dumpwatch::eval::dataset::Dataset;
use dumpwatch::eval::plot::{SweepPoint, sweep_plot};
use dumpwatch::eval::run::{EvalRun, evaluate, parse_sweep, set_key};

/// Arguments of `eval`.
pub struct EvalArgs {
    pub dataset: PathBuf,
    pub config: Option<PathBuf>,
    pub sets: Vec<String>,
    pub sweep: Option<String>,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub detect_rate: Option<f64>,
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let svc = super::service_with_overrides(a.config.as_deref(), &a.sets)?;
    super::check_detect_rate(a.detect_rate)?;
    let dataset = Dataset::load(&a.dataset)?;
    let sweep = a
        .sweep
        .as_deref()
        .map(parse_sweep)
        .transpose()
        .context("--sweep")?;
    if a.plot.is_some() && sweep.is_none() {
        anyhow::bail!(
            "--plot needs --sweep (the plot shows precision, recall and F1 against the swept setting)"
        );
    }
    let jobs = a
        .jobs
        .unwrap_or(svc.model.sessions as usize)
        .clamp(1, dataset.clips.len().max(1));
    let mut detectors = super::load_detectors(&svc, jobs)?;
    let caches = Mutex::new(HashMap::new());
    let runs: Vec<(Option<f64>, dumpwatch::config::AnalyzeConfig)> = match &sweep {
        None => vec![(None, svc.analyze.clone())],
        Some((key, values)) => values
            .iter()
            .map(|v| {
                let arg = format!("{key}={v}");
                let s = set_key(&svc.analyze, key, &v.to_string(), &arg).context("--sweep")?;
                let only = dumpwatch::config::Config {
                    service: dumpwatch::config::ServiceConfig {
                        analyze: s.clone(),
                        ..svc.clone()
                    },
                    cameras: vec![],
                };
                dumpwatch::config::validate(&only, &|n| std::env::var(n).ok())
                    .with_context(|| format!("--sweep {arg}"))?;
                Ok((Some(*v), s))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let mut results: Vec<(Option<f64>, EvalRun)> = Vec::new();
    for (value, settings) in runs {
        let started = std::time::Instant::now();
        let run = evaluate(&dataset, &settings, a.detect_rate, &mut detectors, &caches)?;
        // Frames the decoder rejected were skipped (and the pictures after them until the next
        // keyframe): a damaged clip scores lower, so say which.
        for c in run.clips.iter().filter(|c| c.stats.decode_errors > 0) {
            eprintln!(
                "warning: {}: {} of {} frames could not be decoded; its score may be off",
                c.file.display(),
                c.stats.decode_errors,
                c.stats.frames
            );
        }
        if sweep.is_none() {
            print_clips(&run);
        }
        let s = &run.summary;
        let label = value
            .map(|v| format!("{} = {v}: ", sweep.as_ref().map_or("", |(k, _)| k.as_str())))
            .unwrap_or_default();
        println!(
            "{label}precision {:.3}  recall {:.3}  F1 {:.3}  time to alert mean {}  max {}  false alarms/hour {:.2}  ({} matched, {} false alarms, {} missed; {:.2} h of video in {:.0} s)",
            s.precision,
            s.recall,
            s.f1,
            seconds(s.time_to_alert_mean_s),
            seconds(s.time_to_alert_max_s),
            s.false_alarms_per_hour,
            s.counts.true_positives,
            s.counts.false_alarms,
            s.counts.misses,
            s.video_hours,
            started.elapsed().as_secs_f64()
        );
        if s.views_not_as_labelled > 0 {
            println!(
                "{label}camera views not as labelled: {} clip(s) (a turned or covered camera not said within {} s, or a view lost that was not)",
                s.views_not_as_labelled,
                dumpwatch::eval::score::VIEW_WITHIN_S
            );
        }
        results.push((value, run));
    }
    if let Some(path) = &a.json {
        let body = match &sweep {
            None => serde_json::to_value(&results[0].1)?,
            Some((key, _)) => serde_json::json!({
                "sweep": key,
                "runs": results.iter().map(|(v, r)| serde_json::json!({ "value": v, "result": r })).collect::<Vec<_>>(),
            }),
        };
        std::fs::write(path, serde_json::to_string_pretty(&body)?)
            .with_context(|| format!("cannot write --json {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let (Some(path), Some((key, _))) = (&a.plot, &sweep) {
        let points: Vec<SweepPoint> = results
            .iter()
            .map(|(v, r)| SweepPoint {
                value: v.unwrap_or(0.0),
                precision: r.summary.precision,
                recall: r.summary.recall,
                f1: r.summary.f1,
            })
            .collect();
        sweep_plot(path, key, &points)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn seconds(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{s:.1} s"))
}

fn print_clips(run: &EvalRun) {
    println!(
        "{:<40} {:>3} {:>3} {:>3}  {:<28} {:>8}",
        "clip", "TP", "FA", "MIS", "events (kind@s)", "x realtime"
    );
    for c in &run.clips {
        let events: Vec<String> = c
            .events
            .iter()
            .map(|(k, t)| format!("{k}@{t:.1}"))
            .chain(
                c.stats
                    .views
                    .iter()
                    .filter(|(_, v)| !matches!(v, View::Home | View::Learning))
                    .map(|(t, v)| format!("view:{}@{t:.1}", v.as_str())),
            )
            .chain((!c.view_as_labelled).then(|| "(view not as labelled)".to_owned()))
            .collect();
        println!(
            "{:<40} {:>3} {:>3} {:>3}  {:<28} {:>8.1}",
            c.file.display(),
            c.score.true_positives,
            c.score.false_alarms,
            c.score.misses,
            events.join(" "),
            c.stats.duration_s / c.stats.elapsed_s.max(1e-9)
        );
    }
}
