//! Wiring: builds the pipeline from a validated [`Config`], runs it until the shutdown future
//! completes, then stops it in order (ingest → decode → consumers → HTTP).
//!
//! The entry point takes the listener and the shutdown future as arguments (mini-redis style), so
//! tests run the whole service on port 0 and stop it when they like.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span};

use crate::analyze::AnalyzerConfig;
use crate::api::{ApiState, LatestPictures};
use crate::config::{Config, credentials_from_env};
use crate::decode::{DecodeError, DecodePool, DecodedFrame};
use crate::detect::worker::DetectPool;
use crate::detect::{DetectError, Detector, ModelInfo};
use crate::geometry::Polygon;
use crate::ingest::camera::CameraTask;
use crate::ingest::{ConnectOptions, EncodedFrame, StatusBoard};
use crate::metrics::{CameraMetrics, Metrics};
use crate::slots::LatestSlots;
use crate::watch::{CameraWatch, Watch};

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The decoder could not be created.
    #[error(transparent)]
    Decoder(#[from] DecodeError),
    /// The detector could not be loaded.
    #[error(transparent)]
    Detector(#[from] DetectError),
    /// A camera URL that validation accepted failed to parse (a bug).
    #[error("cameras[{index}].url: {message}")]
    CameraUrl {
        /// Index in the cameras file.
        index: usize,
        /// Parser message.
        message: String,
    },
    /// A camera's analyzer settings name a class the model lacks.
    #[error(transparent)]
    Analyzer(#[from] crate::analyze::UnknownClass),
    /// The HTTP server failed.
    #[error("HTTP server on {addr}: {source}")]
    Http {
        /// Listening address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A running service's shared handles (for tests and the CLI).
#[derive(Clone)]
pub struct Handles {
    /// Metrics registry.
    pub metrics: Metrics,
    /// Camera status, indexed like the enabled cameras.
    pub status: Arc<StatusBoard>,
    /// Latest picture per camera.
    pub pictures: Arc<LatestPictures>,
    /// The detector's model.
    pub model: Arc<ModelInfo>,
}

/// Runs the service on `listener` until `shutdown` completes. `on_start` receives the shared
/// handles once everything is started.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(Handles),
) -> Result<(), AppError> {
    let metrics = Metrics::new();
    let cameras: Vec<_> = config
        .cameras
        .iter()
        .enumerate()
        .filter(|(_, c)| c.enabled)
        .collect();
    let n = cameras.len();
    let status = Arc::new(StatusBoard::new(
        cameras
            .iter()
            .map(|(_, c)| (c.id.clone(), c.display_name().to_owned())),
    ));
    let camera_metrics: Arc<[CameraMetrics]> =
        cameras.iter().map(|(_, c)| metrics.camera(&c.id)).collect();
    let encoded = Arc::new(LatestSlots::<EncodedFrame>::new(n));
    let decoded = Arc::new(LatestSlots::<DecodedFrame>::new(n));
    let pictures = Arc::new(LatestPictures::new(n));

    // One detector session per worker thread, loaded (and warmed up) before any camera starts,
    // so a missing model or runtime stops the service at once with a clear error.
    let detectors = {
        let model = config.service.model.clone();
        tokio::task::spawn_blocking(move || {
            (0..model.sessions)
                .map(|_| Detector::load(&model))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .expect("detector loading does not panic")?
    };
    let model = detectors[0].info().clone();
    info!(model = %model.name, sha256 = %model.sha256, sessions = detectors.len(),
          classes = model.class_names.len(), input = ?model.input_size, "detector loaded");
    // A camera without zones watches its whole frame as one zone.
    let zones: Arc<Vec<Vec<Polygon>>> = Arc::new(
        cameras
            .iter()
            .map(|(_, c)| {
                if c.zones.is_empty() {
                    vec![Polygon::full_frame()]
                } else {
                    c.zones.iter().map(|z| z.polygon.clone()).collect()
                }
            })
            .collect(),
    );
    let started = crate::decode::unix_seconds(std::time::SystemTime::now()) as u64;
    let watches = cameras
        .iter()
        .enumerate()
        .map(|(slot, (index, cam))| {
            let cfg = AnalyzerConfig::resolve(
                &config.service.analyze,
                cam,
                &model.class_names,
                &format!("cameras[{index}]"),
            )?;
            let dir = config
                .service
                .storage_dir
                .join("evidence")
                .join(&cam.id)
                .join(started.to_string());
            Ok(CameraWatch::new(
                cam.id.clone(),
                cfg,
                camera_metrics[slot].clone(),
                dir,
            ))
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    let watch = Arc::new(Watch::new(watches, pictures.clone(), metrics.clone()));
    let samplers = watch.samplers();
    let decode = DecodePool::start(
        config.service.decode.threads as usize,
        config.service.decode.mode,
        encoded.clone(),
        decoded.clone(),
        camera_metrics.clone(),
        metrics.decode_seconds.clone(),
        Some(samplers.clone()),
    )?;
    let detect = DetectPool::start(
        detectors,
        decoded.clone(),
        zones,
        watch.clone(),
        metrics.detect().clone(),
        camera_metrics.clone(),
        config.service.model.max_batch as usize,
    );

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let ing = &config.service.ingest;
    for (slot, (index, cam)) in cameras.iter().enumerate() {
        let url = url::Url::parse(&cam.url).map_err(|e| AppError::CameraUrl {
            index: *index,
            message: e.to_string(),
        })?;
        let spread = Duration::from_secs_f64(ing.startup_spread_s * slot as f64 / n.max(1) as f64);
        let task = CameraTask {
            index: slot,
            id: cam.id.clone(),
            connect: ConnectOptions {
                url,
                credentials: credentials_from_env(cam),
                transport: cam.transport.unwrap_or(ing.transport),
                step_timeout: ing.connect_timeout(),
            },
            ingest: ing.clone(),
            mode: config.service.decode.mode,
            min_keyframe_interval_s: config.service.decode.min_keyframe_interval_s,
            status: status.clone(),
            metrics: camera_metrics[slot].clone(),
            output: encoded.clone(),
            start_delay: spread,
            sampling: Some(samplers[slot].clone()),
        };
        tracker.spawn(
            task.run(cancel.clone())
                .instrument(info_span!("camera", id = %cam.id)),
        );
    }
    tracker.close();
    info!(cameras = n, listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "dumpwatch started");

    let handles = Handles {
        metrics: metrics.clone(),
        status: status.clone(),
        pictures: pictures.clone(),
        model: model.clone(),
    };
    on_start(handles);

    let zone_configs = Arc::new(cameras.iter().map(|(_, c)| c.zones.clone()).collect());
    let app = crate::api::router(ApiState {
        metrics,
        status,
        pictures,
        zones: zone_configs,
        model,
    });
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let http_cancel = CancellationToken::new();
    let server = {
        let http_cancel = http_cancel.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { http_cancel.cancelled().await })
                .await
        })
    };

    shutdown.await;
    info!("shutting down: stopping cameras");
    cancel.cancel();
    tracker.wait().await;
    tokio::task::spawn_blocking(move || {
        decode.shutdown();
        detect.shutdown();
    })
    .await
    .expect("decode shutdown does not panic");
    http_cancel.cancel();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(source)) => return Err(AppError::Http { addr, source }),
        Err(e) => {
            return Err(AppError::Http {
                addr,
                source: std::io::Error::other(e),
            });
        }
    }
    info!("stopped");
    Ok(())
}
