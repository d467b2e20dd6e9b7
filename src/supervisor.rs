//! The camera supervisor: which camera runs in which pipeline slot. It starts a camera (its
//! ingest task and its analysis), stops one, and applies a reloaded configuration (SIGHUP or
//! `POST /api/v1/config/reload`) while the other cameras keep streaming:
//!
//! - a new camera takes a free slot and starts; a removed one stops and frees its slot;
//! - a camera whose connection changed (URL, transport, credentials) reconnects;
//! - new zones, masks and thresholds apply to the running analysis (see
//!   [`CameraWatch::reconfigure`](crate::watch::CameraWatch::reconfigure));
//! - new delivery settings apply to the next attempt;
//! - settings fixed at start (listen address, storage, model, decoder, ingest, evidence, API,
//!   `max_cameras`) are reported as needing a restart.
//!
//! Everything is checked before anything changes: an invalid new configuration is refused with
//! all its problems and the running one stays.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::analyze::AnalyzerConfig;
use crate::clip::ClipRecorder;
use crate::config::{CameraConfig, Config, ConfigError, Problem, ZoneConfig, credentials_from_env};
use crate::decode::DecodedFrame;
use crate::decode::FrameRun;
use crate::deliver::SettingsCell;
use crate::detect::ModelInfo;
use crate::geometry::Polygon;
use crate::ingest::camera::CameraTask;
use crate::ingest::record::RecordTask;
use crate::ingest::{ConnectOptions, StatusBoard};
use crate::metrics::{CameraMetrics, Metrics};
use crate::recording::IncidentRecorder;
use crate::slots::{LatestSlots, SlotTable};
use crate::watch::LatestPictures;
use crate::watch::Watch;

/// The per-camera-slot state of the pipeline, shared with its stages and the API.
#[derive(Clone)]
pub struct PipelineSlots {
    /// Camera status.
    pub status: Arc<StatusBoard>,
    /// Ingest → decode.
    pub encoded: Arc<LatestSlots<FrameRun>>,
    /// Decode → detect.
    pub decoded: Arc<LatestSlots<DecodedFrame>>,
    /// The newest analysed picture.
    pub pictures: Arc<LatestPictures>,
    /// Metric handles.
    pub camera_metrics: Arc<SlotTable<Arc<CameraMetrics>>>,
    /// Zones as the detector uses them.
    pub detect_zones: Arc<SlotTable<Arc<Vec<Polygon>>>>,
    /// Zones as the API draws them.
    pub api_zones: Arc<SlotTable<Arc<Vec<ZoneConfig>>>>,
    /// The analysis.
    pub watch: Arc<Watch>,
    /// Incident clips.
    pub clips: Arc<ClipRecorder>,
}

/// A camera of a configuration, checked: its analyzer settings resolved against the model and
/// its URL parsed.
struct Checked {
    analyzer: AnalyzerConfig,
    url: url::Url,
}

struct Running {
    slot: usize,
    config: CameraConfig,
    /// Its analyzer settings as resolved when last applied (a reload compares against them).
    analyzer: AnalyzerConfig,
    cancel: CancellationToken,
    /// The analysis stream's task, then the main stream's recorder (a camera with `analysis_url`).
    tasks: Vec<JoinHandle<()>>,
}

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReloadReport {
    /// Always `reloaded`.
    pub status: &'static str,
    /// Cameras started.
    pub added: Vec<String>,
    /// Cameras stopped.
    pub removed: Vec<String>,
    /// Cameras reconnected (URL, transport or credentials changed).
    pub reconnected: Vec<String>,
    /// Cameras whose zones, masks or thresholds changed without touching their stream.
    pub changed: Vec<String>,
    /// Whether the delivery settings changed.
    pub delivery_changed: bool,
    /// Settings that changed but apply only after a restart.
    pub restart_needed: Vec<String>,
}

/// Reads the configuration again (the files the service was started with).
pub type ConfigSource = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// Asks the supervisor to reload; cheap to clone (the API and the SIGHUP handler hold one).
#[derive(Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<oneshot::Sender<Result<ReloadReport, ConfigError>>>,
}

impl ReloadHandle {
    /// Reads the configuration again and applies it; the report, or every problem of the new
    /// configuration (the running one stays).
    pub async fn reload(&self) -> Result<ReloadReport, ConfigError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || {
            ConfigError::Invalid(vec![Problem {
                path: "service".into(),
                message: "the service is shutting down".into(),
            }])
        };
        self.tx.send(reply).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Owns the cameras' slots and tasks.
pub struct Supervisor {
    slots: PipelineSlots,
    metrics: Metrics,
    model: Arc<ModelInfo>,
    config: Config,
    running: BTreeMap<String, Running>,
    /// Free slots, the lowest last (taken first).
    free: Vec<usize>,
    cancel: CancellationToken,
    delivery: SettingsCell,
    recorder: IncidentRecorder,
    public_url: String,
}

impl Supervisor {
    /// A supervisor with every slot free. `config` is what the service was started with;
    /// `recorder` the incident recorder its delivery categories come from.
    pub fn new(
        slots: PipelineSlots,
        metrics: Metrics,
        model: Arc<ModelInfo>,
        config: Config,
        delivery: SettingsCell,
        recorder: IncidentRecorder,
        public_url: String,
    ) -> Supervisor {
        let n = slots.status_capacity();
        Supervisor {
            slots,
            metrics,
            model,
            config,
            running: BTreeMap::new(),
            free: (0..n).rev().collect(),
            cancel: CancellationToken::new(),
            delivery,
            recorder,
            public_url,
        }
    }

    /// Checks the enabled cameras of `config` against the slots and the model, and parses their
    /// URLs: every problem, with its path.
    fn check(&self, config: &Config) -> Result<BTreeMap<String, Checked>, ConfigError> {
        let mut problems = Vec::new();
        let mut resolved = BTreeMap::new();
        let enabled = config.cameras.iter().filter(|c| c.enabled).count();
        let capacity = self.slots.status_capacity();
        if enabled > capacity {
            problems.push(Problem {
                path: "cameras".into(),
                message: format!(
                    "{enabled} enabled cameras, more than max_cameras = {capacity} (the slots made at start); raise max_cameras and restart, or spread the cameras with --shard"
                ),
            });
        }
        for (i, cam) in config.cameras.iter().enumerate().filter(|(_, c)| c.enabled) {
            let analyzer = AnalyzerConfig::resolve(
                &config.service.analyze,
                cam,
                &self.model.class_names,
                &format!("cameras[{i}]"),
            )
            .map_err(|e| Problem {
                path: e.path.clone(),
                message: format!(
                    "unknown class {:?}; the model's classes are: {}",
                    e.class, e.known
                ),
            });
            let url = url::Url::parse(&cam.url).map_err(|e| Problem {
                path: format!("cameras[{i}].url"),
                message: format!("not a URL: {e}"),
            });
            match (analyzer, url) {
                (Ok(analyzer), Ok(url)) => {
                    resolved.insert(cam.id.clone(), Checked { analyzer, url });
                }
                (a, u) => problems.extend(a.err().into_iter().chain(u.err())),
            }
        }
        if problems.is_empty() {
            Ok(resolved)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Starts every enabled camera of the configuration the supervisor was made with, their
    /// first connects spread over `ingest.startup_spread_s`.
    pub fn start(&mut self) -> Result<(), ConfigError> {
        let mut resolved = self.check(&self.config)?;
        let cameras: Vec<CameraConfig> = self
            .config
            .cameras
            .iter()
            .filter(|c| c.enabled)
            .cloned()
            .collect();
        let n = cameras.len().max(1) as f64;
        let spread = self.config.service.ingest.startup_spread_s;
        for (k, cam) in cameras.into_iter().enumerate() {
            let checked = resolved.remove(&cam.id).expect("checked");
            let delay = Duration::from_secs_f64(spread * k as f64 / n);
            self.start_camera(cam, checked, delay);
        }
        Ok(())
    }

    fn start_camera(&mut self, cam: CameraConfig, checked: Checked, delay: Duration) {
        let Checked { analyzer: cfg, url } = checked;
        let slot = self.free.pop().expect("checked against the capacity");
        let s = &self.slots;
        s.encoded.clear(slot);
        s.decoded.clear(slot);
        s.pictures.set(slot, None);
        s.clips.rings[slot].clear();
        let metrics = self.metrics.camera(&cam.id);
        s.camera_metrics.set(slot, Some(Arc::new(metrics.clone())));
        s.detect_zones.set(
            slot,
            Some(Arc::new(
                cfg.zones.iter().map(|z| z.polygon.clone()).collect(),
            )),
        );
        s.api_zones.set(slot, Some(Arc::new(cam.zones.clone())));
        s.status.occupy(
            slot,
            cam.id.clone(),
            cam.display_name().to_owned(),
            cam.location.clone(),
        );
        s.watch
            .install(slot, cam.clone(), cfg.clone(), metrics.clone());
        let svc = &self.config.service;
        let connect = |url| ConnectOptions {
            url,
            credentials: credentials_from_env(&cam),
            transport: cam.transport.unwrap_or(svc.ingest.transport),
            step_timeout: svc.ingest.connect_timeout(),
        };
        // With a sub-stream, analysis runs on it and the main stream is only recorded.
        let sub_stream = cam
            .analysis_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok());
        let (analysed, recorded) = match sub_stream {
            Some(sub) => (sub, Some(url)),
            None => (url, None),
        };
        let sampler = s.watch.samplers()[slot].clone();
        let cancel = self.cancel.child_token();
        let mut tasks = Vec::new();
        if let Some(main) = recorded {
            let recorder = RecordTask {
                index: slot,
                id: cam.id.clone(),
                connect: connect(main),
                ingest: svc.ingest.clone(),
                ring: s.clips.rings[slot].clone(),
                sampling: Some(sampler.clone()),
                status: s.status.clone(),
                metrics: metrics.clone(),
                start_delay: delay,
            };
            tasks.push(tokio::spawn(
                recorder
                    .run(cancel.clone())
                    .instrument(info_span!("main_stream", id = %cam.id)),
            ));
        }
        let task = CameraTask {
            index: slot,
            id: cam.id.clone(),
            connect: connect(analysed),
            ingest: svc.ingest.clone(),
            policy: crate::ingest::policy::PolicyConfig {
                mode: svc.decode.mode,
                idle_refresh_s: crate::analyze::sampling::SamplingConfig::default().idle_refresh_s,
                min_keyframe_interval_s: svc.decode.min_keyframe_interval_s,
                motion_gate: svc.decode.motion_gate,
            },
            status: s.status.clone(),
            metrics,
            output: s.encoded.clone(),
            start_delay: delay,
            sampling: Some(sampler),
            // The recorder fills the ring from the main stream when there is one.
            clip_ring: tasks.is_empty().then(|| s.clips.rings[slot].clone()),
        };
        tasks.insert(
            0,
            tokio::spawn(
                task.run(cancel.clone())
                    .instrument(info_span!("camera", id = %cam.id)),
            ),
        );
        self.running.insert(
            cam.id.clone(),
            Running {
                slot,
                config: cam,
                analyzer: cfg,
                cancel,
                tasks,
            },
        );
    }

    async fn stop_camera(&mut self, id: &str) {
        let Some(run) = self.running.remove(id) else {
            return;
        };
        run.cancel.cancel();
        for task in run.tasks {
            let _ = task.await;
        }
        let (s, slot) = (&self.slots, run.slot);
        s.watch.remove(slot);
        s.encoded.clear(slot);
        s.decoded.clear(slot);
        s.pictures.set(slot, None);
        s.clips.rings[slot].clear();
        s.camera_metrics.set(slot, None);
        s.detect_zones.set(slot, None);
        s.api_zones.set(slot, None);
        s.status.vacate(slot);
        self.metrics.forget_camera(id);
        self.free.push(slot);
        // Lowest slot first next time: slot numbers stay small and stable.
        self.free.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// Applies `new` (already validated by [`Config::load`]): see the module documentation.
    pub async fn apply(&mut self, new: Config) -> Result<ReloadReport, ConfigError> {
        let mut resolved = self.check(&new)?;
        let mut report = ReloadReport {
            status: "reloaded",
            ..ReloadReport::default()
        };
        // What is in force: the new cameras and what applies live; the rest as started.
        let mut new = new;
        report.restart_needed = keep_fixed_settings(&self.config, &mut new);
        let wanted: BTreeMap<&str, &CameraConfig> = new
            .cameras
            .iter()
            .filter(|c| c.enabled)
            .map(|c| (c.id.as_str(), c))
            .collect();
        // Stop first, so their slots are free for the cameras that come.
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|id| !wanted.contains_key(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            self.stop_camera(&id).await;
            info!(camera = %id, "reload: camera removed");
            report.removed.push(id);
        }
        let reconnect: Vec<String> = self
            .running
            .iter()
            .filter(|(id, r)| connection_changed(&r.config, wanted[id.as_str()]))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &reconnect {
            self.stop_camera(id).await;
        }
        for (id, cam) in &wanted {
            let checked = resolved.remove(*id).expect("checked");
            match self.running.get_mut(*id) {
                Some(run) => {
                    if run.config != **cam || run.analyzer != checked.analyzer {
                        let (slot, cfg) = (run.slot, checked.analyzer);
                        run.config = (*cam).clone();
                        run.analyzer = cfg.clone();
                        self.slots.detect_zones.set(
                            slot,
                            Some(Arc::new(
                                cfg.zones.iter().map(|z| z.polygon.clone()).collect(),
                            )),
                        );
                        self.slots
                            .api_zones
                            .set(slot, Some(Arc::new(cam.zones.clone())));
                        self.slots.status.update(slot, |s| {
                            s.name = cam.display_name().to_owned();
                            s.location = cam.location.clone();
                        });
                        if let Some(outcome) =
                            self.slots.watch.reconfigure(slot, (*cam).clone(), cfg)
                        {
                            info!(camera = %id, ?outcome, "reload: camera settings changed");
                        }
                        report.changed.push((*id).to_owned());
                    }
                }
                None => {
                    self.start_camera((*cam).clone(), checked, Duration::ZERO);
                    if reconnect.iter().any(|r| r == id) {
                        info!(camera = %id, "reload: camera reconnects with its new connection settings");
                        report.reconnected.push((*id).to_owned());
                    } else {
                        info!(camera = %id, "reload: camera added");
                        report.added.push((*id).to_owned());
                    }
                }
            }
        }
        if new.service.delivery != self.config.service.delivery {
            let d = &new.service.delivery;
            self.delivery
                .set(crate::deliver::DeliverySettings::from_config(
                    d,
                    // Evidence stays where it is written until a restart.
                    &self.config.service.storage_dir,
                    &self.public_url,
                ));
            let recorder = self.recorder.with_delivery(d);
            self.slots.watch.set_recorder(recorder.clone());
            self.recorder = recorder;
            report.delivery_changed = true;
            info!(endpoint = %d.endpoint, "reload: delivery settings changed");
        }
        if !report.restart_needed.is_empty() {
            warn!(settings = ?report.restart_needed, "reload: these settings changed but apply only after a restart");
        }
        self.config = new;
        Ok(report)
    }

    /// Serves reload requests from `handle`s until `cancel`, then stops every camera.
    pub fn serve(
        mut self,
        source: Option<ConfigSource>,
        cancel: CancellationToken,
    ) -> (ReloadHandle, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<oneshot::Sender<Result<ReloadReport, ConfigError>>>(4);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    Some(reply) = rx.recv() => {
                        let result = match &source {
                            None => Err(ConfigError::Invalid(vec![Problem {
                                path: "service".into(),
                                message: "this service was started without configuration files to reload".into(),
                            }])),
                            Some(load) => match load() {
                                Ok(config) => self.apply(config).await,
                                Err(e) => Err(e),
                            },
                        };
                        if let Err(e) = &result {
                            warn!(error = %e, "reload refused; the running configuration stays");
                        }
                        let _ = reply.send(result);
                    }
                }
            }
            self.stop_all().await;
        });
        (ReloadHandle { tx }, task)
    }

    /// Stops every camera's ingest task and waits for them.
    pub async fn stop_all(&mut self) {
        self.cancel.cancel();
        for (_, run) in std::mem::take(&mut self.running) {
            for task in run.tasks {
                let _ = task.await;
            }
        }
    }
}

impl PipelineSlots {
    fn status_capacity(&self) -> usize {
        self.camera_metrics.capacity()
    }
}

/// Whether the camera must reconnect to apply `new`.
fn connection_changed(old: &CameraConfig, new: &CameraConfig) -> bool {
    old.url != new.url
        || old.transport != new.transport
        || old.username_env != new.username_env
        || old.password_env != new.password_env
}

/// Puts back in `new` the settings of `running` that apply only after a restart, and names those
/// that differed.
fn keep_fixed_settings(running: &Config, new: &mut Config) -> Vec<String> {
    fn keep<T: Clone + PartialEq>(name: &str, old: &T, new: &mut T, changed: &mut Vec<String>) {
        if old != new {
            changed.push(name.to_owned());
            *new = old.clone();
        }
    }
    let (a, b) = (&running.service, &mut new.service);
    let mut changed = Vec::new();
    keep("listen", &a.listen, &mut b.listen, &mut changed);
    keep(
        "storage_dir",
        &a.storage_dir,
        &mut b.storage_dir,
        &mut changed,
    );
    keep("model", &a.model, &mut b.model, &mut changed);
    keep("ingest", &a.ingest, &mut b.ingest, &mut changed);
    keep("decode", &a.decode, &mut b.decode, &mut changed);
    keep("evidence", &a.evidence, &mut b.evidence, &mut changed);
    keep("api", &a.api, &mut b.api, &mut changed);
    keep(
        "max_cameras",
        &a.max_cameras,
        &mut b.max_cameras,
        &mut changed,
    );
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fixed_at_start_are_kept_and_named_and_the_rest_applies() {
        let running = Config {
            service: Default::default(),
            cameras: vec![],
        };
        let mut new = running.clone();
        new.service.model.sessions = 4;
        new.service.max_cameras = 8;
        new.service.analyze.dwell_s = 45.0;
        new.service.delivery.endpoint = "http://city.example/api".into();
        let changed = keep_fixed_settings(&running, &mut new);
        assert_eq!(changed, ["model", "max_cameras"]);
        assert_eq!(new.service.model, running.service.model);
        assert_eq!(new.service.max_cameras, running.service.max_cameras);
        assert_eq!(new.service.analyze.dwell_s, 45.0);
        assert_eq!(new.service.delivery.endpoint, "http://city.example/api");
        assert!(keep_fixed_settings(&running, &mut running.clone()).is_empty());
    }
}
