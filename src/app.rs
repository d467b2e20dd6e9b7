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
use crate::clip::ClipRecorder;
use crate::config::{Config, credentials_from_env};
use crate::decode::{DecodeError, DecodePool, DecodedFrame};
use crate::deliver::{Backoff, Deliverer, DeliveryMetrics, DeliverySettings};
use crate::detect::worker::DetectPool;
use crate::detect::{DetectError, Detector, ModelInfo};
use crate::geometry::Polygon;
use crate::incident::ModelRef;
use crate::ingest::camera::CameraTask;
use crate::ingest::{ConnectOptions, EncodedFrame, StatusBoard};
use crate::metrics::{CameraMetrics, Metrics};
use crate::slots::LatestSlots;
use crate::store::retention::RetentionLimits;
use crate::store::writer::StoreHandle;
use crate::watch::{CameraWatch, IncidentRecorder, Watch};

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
    /// The storage directory could not be created.
    #[error("storage_dir {dir}: {source}")]
    StorageDir {
        /// The directory.
        dir: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Delivery could not start.
    #[error(transparent)]
    Delivery(#[from] crate::deliver::DeliveryError),
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
    let svc = &config.service;
    std::fs::create_dir_all(&svc.storage_dir).map_err(|source| AppError::StorageDir {
        dir: svc.storage_dir.display().to_string(),
        source,
    })?;
    let store = StoreHandle::open(&svc.storage_dir)?;
    let delivery_metrics = DeliveryMetrics::register(metrics.registry());
    let secret = svc
        .delivery
        .secret_env
        .as_ref()
        .and_then(|n| std::env::var(n).ok())
        .map(String::into_bytes);
    let deliverer = Deliverer::new(
        store.clone(),
        DeliverySettings {
            endpoint: svc.delivery.endpoint.clone(),
            secret,
            snapshots: svc.delivery.snapshots,
            public_url: svc.delivery.public_url.clone().unwrap_or_else(|| {
                format!(
                    "http://{}",
                    listener
                        .local_addr()
                        .map_or_else(|_| svc.listen.to_string(), |a| a.to_string())
                )
            }),
            concurrency: svc.delivery.concurrency as usize,
            timeout: Duration::from_secs_f64(svc.delivery.timeout_s),
            backoff: Backoff {
                initial: Duration::from_secs_f64(svc.delivery.backoff_initial_s),
                max: Duration::from_secs_f64(svc.delivery.backoff_max_s),
            },
            storage_dir: svc.storage_dir.clone(),
        },
        delivery_metrics,
    )?;
    let delivery_cancel = CancellationToken::new();
    let delivery = tokio::spawn(deliverer.run(
        delivery_cancel.clone(),
        Duration::from_secs_f64(svc.delivery.shutdown_grace_s),
    ));
    let retention = tokio::spawn(retention_loop(
        store.clone(),
        svc.storage_dir.clone(),
        RetentionLimits {
            max_age_s: svc.evidence.max_age_days * 86_400.0,
            max_bytes: (svc.evidence.max_gb * 1e9) as u64,
        },
    ));
    let recorder = IncidentRecorder {
        store: store.clone(),
        storage_dir: svc.storage_dir.clone(),
        categories: svc.delivery.categories.to_categories(),
        model: ModelRef {
            name: model.name.clone(),
            sha256: model.sha256.clone(),
        },
        utc_offset_min: crate::incident::parse_utc_offset(&svc.delivery.utc_offset).unwrap_or(480),
        evidence_errors: metrics.evidence_errors.clone(),
    };
    let clips = Arc::new(ClipRecorder {
        rings: ClipRecorder::rings(n, svc.evidence.clip_pre_s, svc.evidence.clip_post_s),
        store: store.clone(),
        storage_dir: svc.storage_dir.clone(),
        pre_s: svc.evidence.clip_pre_s,
        post_s: svc.evidence.clip_post_s,
        errors: metrics.evidence_errors.clone(),
        runtime: tokio::runtime::Handle::current(),
    });
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
            Ok(CameraWatch::new(
                (*cam).clone(),
                cfg,
                camera_metrics[slot].clone(),
            ))
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    let watch = Arc::new(Watch::new(
        watches,
        pictures.clone(),
        metrics.clone(),
        recorder,
        Some(clips.clone()),
    ));
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
            clip_ring: Some(clips.rings[slot].clone()),
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
        store: Some(store.clone()),
        api_token: svc
            .api
            .token_env
            .as_ref()
            .and_then(|n| std::env::var(n).ok())
            .filter(|t| !t.is_empty()),
        storage_dir: svc.storage_dir.clone(),
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
    // Every analysed picture is through the analyzers and its incidents are in the store; give
    // delivery its grace period for what is in flight.
    info!("shutting down: delivery");
    delivery_cancel.cancel();
    let _ = delivery.await;
    retention.abort();
    drop(store);
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

/// Applies evidence retention at start and every ten minutes.
async fn retention_loop(store: StoreHandle, dir: std::path::PathBuf, limits: RetentionLimits) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let dir = dir.clone();
        let now = crate::deliver::unix_now();
        match store
            .call(move |s| s.apply_retention(&dir, limits, now))
            .await
        {
            Ok(Ok(r)) if r.removed > 0 || r.failed > 0 => {
                info!(
                    removed = r.removed,
                    freed_bytes = r.freed_bytes,
                    kept_bytes = r.kept_bytes,
                    failed = r.failed,
                    "evidence retention"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "evidence retention failed"),
            Err(_) => return,
        }
    }
}
