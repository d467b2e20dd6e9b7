//! Wiring: builds the pipeline from a validated [`Config`], runs it until the shutdown future
//! completes, then stops it in order (ingest → decode → consumers → HTTP).
//!
//! The entry point takes the listener and the shutdown future as arguments (mini-redis style), so
//! tests run the whole service on port 0 and stop it when they like.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::ApiState;
use crate::clip::ClipRecorder;
use crate::config::Config;
use crate::cpu_budget::{CpuBudgetMetrics, CpuGovernor};
use crate::decode::FrameRun;
use crate::decode::{DecodeError, DecodePool, DecodedFrame};
use crate::deliver::{Deliverer, DeliveryMetrics, DeliverySettings};
use crate::detect::worker::DetectPool;
use crate::detect::{DetectError, Detector, ModelInfo};
use crate::incident::ModelRef;
use crate::ingest::StatusBoard;
use crate::metrics::Metrics;
use crate::recording::{IncidentRecorder, Recording, RecordingMetrics};
use crate::slots::{LatestSlots, SlotTable};
use crate::store::retention::RetentionLimits;
use crate::store::writer::StoreHandle;
use crate::supervisor::{ConfigSource, PipelineSlots, ReloadHandle, Supervisor};
use crate::watch::LatestPictures;
use crate::watch::Watch;

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The decoder could not be created.
    #[error(transparent)]
    Decoder(#[from] DecodeError),
    /// The detector could not be loaded.
    #[error(transparent)]
    Detector(#[from] DetectError),
    /// The cameras cannot run with this model or this many slots (every problem, with its
    /// path).
    #[error(transparent)]
    Cameras(crate::config::ConfigError),
    /// The storage directory could not be created.
    #[error("storage_dir {dir}: {source}")]
    StorageDir {
        /// The directory.
        dir: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The users file (`api.users_file`) cannot be used.
    #[error(transparent)]
    Accounts(#[from] crate::accounts::AccountsError),
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
    /// Camera status, by pipeline slot (the enabled cameras in file order at start).
    pub status: Arc<StatusBoard>,
    /// Latest picture per camera slot.
    pub pictures: Arc<LatestPictures>,
    /// The detector's model.
    pub model: Arc<ModelInfo>,
    /// Reloads the configuration (what SIGHUP does).
    pub reload: ReloadHandle,
}

/// Runs the service on `listener` until `shutdown` completes. `on_start` receives the shared
/// handles once everything is started. The configuration cannot be reloaded.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(Handles),
) -> Result<(), AppError> {
    run_with_reload(config, None, listener, shutdown, on_start).await
}

/// [`run`], with `source` reading the configuration again on a reload (SIGHUP, or
/// `POST /api/v1/config/reload`).
pub async fn run_with_reload(
    config: Config,
    source: Option<ConfigSource>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(Handles),
) -> Result<(), AppError> {
    let metrics = Metrics::new();
    let svc = config.service.clone();
    let enabled = config.cameras.iter().filter(|c| c.enabled).count();
    // Slots for the cameras of a reload too; never fewer than the cameras of the start.
    let capacity = (svc.max_cameras as usize).max(enabled).max(1);
    match crate::annotate::load_label_font(svc.evidence.label_font.as_deref()) {
        Ok(path) => info!(font = %path.display(), "text on pictures drawn with this font"),
        Err(why) if svc.evidence.label_font.is_some() => {
            warn!(why = %why, "evidence.label_font cannot be used: text on pictures falls back to the built-in Latin font")
        }
        Err(why) => {
            warn!(why = %why, "no CJK font found (install fonts-wqy-microhei): text on pictures uses the built-in Latin font")
        }
    }
    // Read before the model loads: an unusable users file stops the start-up at once.
    let accounts = svc
        .api
        .users_file
        .as_deref()
        .map(crate::accounts::Accounts::open)
        .transpose()?;

    // One detector session per worker thread, loaded (and warmed up) before any camera starts,
    // so a missing model or runtime stops the service at once with a clear error.
    let detectors = {
        let model = svc.model.clone();
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
    std::fs::create_dir_all(&svc.storage_dir).map_err(|source| AppError::StorageDir {
        dir: svc.storage_dir.display().to_string(),
        source,
    })?;
    let store = StoreHandle::open(&svc.storage_dir)?;
    let public_url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_or_else(|_| svc.listen.to_string(), |a| a.to_string())
    );
    let deliverer = Deliverer::new(
        store.clone(),
        DeliverySettings::from_config(&svc.delivery, &svc.storage_dir, &public_url),
        DeliveryMetrics::register(metrics.registry()),
    )?;
    let delivery_settings = deliverer.settings();
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
    // What the store still refused at the last shutdown, before anything new; then the files of
    // events that never reached the store (a crash between a picture and its row) go.
    {
        let (dir, spool_store) = (svc.storage_dir.clone(), store.clone());
        let replayed = tokio::task::spawn_blocking(move || {
            crate::recording::spool::record_spooled(&dir, &spool_store)
        })
        .await
        .expect("spool replay does not panic");
        let dir = svc.storage_dir.clone();
        let cleanup = if replayed.left > 0 {
            // Their pictures are on disk and named by no row yet: keep everything this time.
            Ok(Ok(crate::store::retention::OrphanReport::default()))
        } else {
            store
                .call(move |s| s.remove_unrecorded_evidence(&dir))
                .await
        };
        match cleanup {
            Ok(Ok(r)) if r.removed > 0 || r.failed > 0 => info!(
                removed = r.removed,
                freed_bytes = r.freed_bytes,
                failed = r.failed,
                "evidence files of events that never reached the store removed"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => {
                tracing::warn!(error = %e, "cannot look for evidence files no incident names")
            }
        }
    }
    let open_incidents = open_incidents_to_follow(&store).await;
    let (recording, recording_stage) = Recording::start(
        store.clone(),
        &svc.storage_dir,
        RecordingMetrics::register(metrics.registry()),
    )?;
    let recorder = IncidentRecorder::new(
        store.clone(),
        svc.storage_dir.clone(),
        ModelRef {
            name: model.name.clone(),
            sha256: model.sha256.clone(),
        },
        &svc.delivery,
        metrics.evidence_errors.clone(),
    );
    let clips = Arc::new(ClipRecorder {
        rings: ClipRecorder::rings(
            capacity,
            (svc.evidence.clip_pre_s, svc.evidence.clip_before_put_down_s),
            (svc.evidence.clip_ring_max_mb * 1e6) as usize,
            Some((
                &svc.storage_dir.join(crate::clip::ACT_DIR),
                (svc.evidence.clip_act_max_mb * 1e6) as u64,
            )),
        ),
        recording: Arc::new(recording.clone()),
        storage_dir: svc.storage_dir.clone(),
        pre_s: svc.evidence.clip_pre_s,
        before_put_down_s: svc.evidence.clip_before_put_down_s,
        post_s: svc.evidence.clip_post_s,
        errors: metrics.evidence_errors.clone(),
        runtime: tokio::runtime::Handle::current(),
        flush: CancellationToken::new(),
        pending: tokio_util::task::TaskTracker::new(),
    });
    let pictures = Arc::new(LatestPictures::new(capacity));
    let status = Arc::new(StatusBoard::with_capacity(capacity));
    let slots = PipelineSlots {
        status: status.clone(),
        encoded: Arc::new(LatestSlots::<FrameRun>::new(capacity)),
        decoded: Arc::new(LatestSlots::<DecodedFrame>::new(capacity)),
        pictures: pictures.clone(),
        camera_metrics: Arc::new(SlotTable::new(capacity)),
        detect_zones: Arc::new(SlotTable::new(capacity)),
        api_zones: Arc::new(SlotTable::new(capacity)),
        watch: Arc::new(Watch::new(
            capacity,
            pictures.clone(),
            status,
            metrics.clone(),
            recorder.clone(),
            recording.clone(),
            Some(clips.clone()),
        )),
        clips: clips.clone(),
    };
    slots.watch.follow_open_incidents(open_incidents);
    let decode = DecodePool::start(
        svc.decode.threads as usize,
        svc.decode.mode,
        svc.decode.hwaccel,
        slots.encoded.clone(),
        slots.decoded.clone(),
        slots.camera_metrics.clone(),
        metrics.decode_seconds.clone(),
        metrics.worker_panics.with_label_values(&["decode"]),
        Some(crate::decode::Sampling {
            samplers: slots.watch.samplers(),
            analysis: Some(slots.watch.clone()),
        }),
    )?;
    let sessions = detectors.len();
    let pacer = Arc::new(crate::detect::worker::Pacer::new(
        svc.model.max_detections_per_s,
    ));
    let detect = DetectPool::start(
        detectors,
        slots.decoded.clone(),
        slots.detect_zones.clone(),
        slots.watch.clone(),
        metrics.detect().clone(),
        slots.camera_metrics.clone(),
        svc.model.max_batch as usize,
        pacer.clone(),
    );
    let governor = svc.model.cpu_budget.cores_here().map(|cores| {
        CpuGovernor::start(
            cores,
            sessions,
            pacer,
            CpuBudgetMetrics::register(metrics.registry()),
        )
    });

    let mut supervisor = Supervisor::new(
        slots.clone(),
        metrics.clone(),
        model.clone(),
        config,
        delivery_settings,
        recorder,
        public_url,
    );
    supervisor.start().map_err(AppError::Cameras)?;
    let supervisor_cancel = CancellationToken::new();
    let (reload, supervisor_task) = supervisor.serve(source, supervisor_cancel.clone());
    info!(cameras = enabled, slots = capacity, listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "dumpwatch started");

    on_start(Handles {
        metrics: metrics.clone(),
        status: slots.status.clone(),
        pictures: pictures.clone(),
        model: model.clone(),
        reload: reload.clone(),
    });

    let app = crate::api::router(ApiState {
        metrics,
        status: slots.status.clone(),
        pictures,
        zones: slots.api_zones.clone(),
        model,
        store: Some(store.clone()),
        recording: Some(recording),
        auth: Arc::new(crate::api::auth::Auth::new(
            accounts,
            from_env(&svc.api.token_env),
            from_env(&svc.api.case_token_env),
            Duration::from_secs_f64(svc.api.session_timeout_h * 3600.0),
            svc.api.secure_cookie,
        )),
        storage_dir: svc.storage_dir.clone(),
        reload: Some(reload),
        request_timeout: Duration::from_secs_f64(svc.api.request_timeout_s),
        utc_offset_min: svc.delivery.utc_offset_min(),
    });
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let server = crate::api::serve::ApiServer::start(
        listener,
        app,
        crate::api::serve::ServeSettings {
            max_connections: svc.api.max_connections as usize,
            idle: Duration::from_secs_f64(svc.api.idle_timeout_s),
            header_read: Duration::from_secs_f64(svc.api.header_read_timeout_s),
            nice: svc.api.nice,
        },
    )
    .map_err(|source| AppError::Http {
        addr: addr.clone(),
        source,
    })?;

    shutdown.await;
    info!("shutting down: stopping cameras");
    supervisor_cancel.cancel();
    let _ = supervisor_task.await;
    drop(governor);
    tokio::task::spawn_blocking(move || {
        decode.shutdown();
        detect.shutdown();
    })
    .await
    .expect("decode shutdown does not panic");
    // Every analysed picture is through the analyzers and its incidents are in the store; clips
    // still waiting for their post-event seconds are written with what arrived. Then delivery
    // gets its grace period for what is in flight.
    clips.flush().await;
    // Every event and clip is handed over: the recorder writes them (or keeps them on disk).
    let grace = Duration::from_secs_f64(svc.delivery.shutdown_grace_s);
    tokio::task::spawn_blocking(move || recording_stage.shutdown(grace))
        .await
        .expect("recorder shutdown does not panic");
    info!("shutting down: delivery");
    delivery_cancel.cancel();
    let _ = delivery.await;
    retention.abort();
    drop(store);
    if let Err(e) = server.stop().await {
        return Err(AppError::Http {
            addr,
            source: std::io::Error::other(e),
        });
    }
    info!("stopped");
    Ok(())
}

/// Applies evidence retention at start and every ten minutes.
/// The value of the environment variable named `name`, if set and not empty.
fn from_env(name: &Option<String>) -> Option<String> {
    name.as_ref()
        .and_then(|n| std::env::var(n).ok())
        .filter(|t| !t.is_empty())
}

async fn retention_loop(store: StoreHandle, dir: std::path::PathBuf, limits: RetentionLimits) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let dir = dir.clone();
        let now = crate::clock::unix_now();
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

/// The open incidents in the store with their spots, by camera: each camera's analysis follows
/// its own on, so a spot cleaned later (or while the service was down) is still cleared. One
/// that cannot be followed (raised by a dumpwatch that kept no spot, or an unreadable spot) is
/// logged; it stays open until an operator reviews it.
async fn open_incidents_to_follow(
    store: &StoreHandle,
) -> HashMap<String, Vec<(uuid::Uuid, crate::analyze::OpenSpot)>> {
    let rows = match store.call(|s| s.open_incidents()).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) | Err(e) => {
            tracing::warn!(error = %e, "cannot read the open incidents: they are not followed until the next start");
            return HashMap::new();
        }
    };
    let mut open: HashMap<String, Vec<_>> = HashMap::new();
    for row in rows {
        let spot = match row.spot.as_deref().map(serde_json::from_str) {
            Some(Ok(spot)) => spot,
            Some(Err(e)) => {
                tracing::warn!(camera = %row.camera_id, incident = %row.incident, error = %e,
                               "an open incident's spot cannot be read: it is not followed; it stays open until an operator reviews it");
                continue;
            }
            None => {
                tracing::warn!(camera = %row.camera_id, incident = %row.incident,
                               "an open incident has no spot (raised before spots were kept): it is not followed; it stays open until an operator reviews it");
                continue;
            }
        };
        open.entry(row.camera_id)
            .or_default()
            .push((row.incident, spot));
    }
    open
}
