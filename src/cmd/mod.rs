//! Subcommands of the `dumpwatch` binary that work on recorded footage, and the cameras check of
//! `check-config --probe`.

pub mod check;
pub mod eval;
pub mod replay;
pub mod users;

use std::path::Path;

use anyhow::Context;
use dumpwatch::config::{CameraConfig, CamerasFile, Config, ServiceConfig, read_toml, validate};
use dumpwatch::detect::Detector;

/// Loads the service file (or the defaults), applies `--set key=value` to `[analyze]`, and
/// validates the result. Errors name the field.
pub fn service_with_overrides(
    config: Option<&Path>,
    sets: &[String],
) -> anyhow::Result<ServiceConfig> {
    let mut svc = ServiceConfig::load(config)?;
    for s in sets {
        svc.analyze = dumpwatch::eval::run::apply_set(&svc.analyze, s).context("--set")?;
    }
    validate(
        &Config {
            service: svc.clone(),
            cameras: vec![],
        },
        &|n| std::env::var(n).ok(),
    )?;
    Ok(svc)
}

/// The camera `id` of the service's cameras file, validated.
pub fn camera_from_file(svc: &ServiceConfig, id: &str) -> anyhow::Result<(usize, CameraConfig)> {
    let file: CamerasFile = read_toml(&svc.cameras_file)?;
    let cameras = file.cameras;
    validate(
        &Config {
            service: svc.clone(),
            cameras: cameras.clone(),
        },
        &|n| std::env::var(n).ok(),
    )?;
    let index = cameras.iter().position(|c| c.id == id).with_context(|| {
        format!(
            "--camera {id:?}: no such camera in {}",
            svc.cameras_file.display()
        )
    })?;
    Ok((index, cameras[index].clone()))
}

/// Loads `n` detector sessions.
pub fn load_detectors(svc: &ServiceConfig, n: usize) -> anyhow::Result<Vec<Detector>> {
    (0..n.max(1))
        .map(|_| Detector::load(&svc.model).map_err(anyhow::Error::from))
        .collect()
}

/// Checks `--detect-rate`: detections per second, above 0.
pub fn check_detect_rate(rate: Option<f64>) -> anyhow::Result<()> {
    if let Some(rate) = rate {
        anyhow::ensure!(
            rate.is_finite() && rate > 0.0,
            "--detect-rate {rate}: expected detections per second, above 0 (e.g. 0.5)"
        );
    }
    Ok(())
}
