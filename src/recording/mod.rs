//! Recording: the stage between analysis and the store. The analyzers hand each incident event
//! (with its pictures) and each finished clip to one recorder thread behind a bounded queue; the
//! thread writes the evidence pictures, then records the event in the store, and retries with
//! backoff until the store takes it (another process holding the SQLite write lock, a full disk).
//! Events are recorded in the order they were handed over, so an incident's `updated` and
//! `cleared` never overtake its `raised`, and a clip's row never comes before its incident's.
//!
//! Nothing accepted is lost: what the store still refuses when the service stops is written to
//! `storage_dir/unrecorded/` ([`spool`]) and recorded at the next start, before any camera.
//!
//! The backlog (events handed over and not yet in the store) is a metric, and `/readyz` says not
//! ready while an event has waited longer than [`NOT_READY_AFTER`].

pub mod recorder;
pub mod spool;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};
use uuid::Uuid;

pub use recorder::{EventPictures, IncidentRecorder};

use crate::analyze::{Event, OpenSpot};
use crate::config::CameraConfig;
use crate::decode::DecodedFrame;
use crate::evidence::EventPicture;
use crate::geometry::Polygon;
use crate::incident::FrameSize;
use crate::store::camera_events::NewCameraEvent;
use crate::store::changes::Change;
use crate::store::writer::StoreHandle;
use crate::store::{EvidenceFile, NewEvent, StoreError};

/// Events that may wait in the queue before the analyzer handing one over waits too (each holds
/// a few pictures: about 6 MB at 720p).
pub const QUEUE: usize = 16;

/// How long an event may wait for the store before `/readyz` says not ready.
pub const NOT_READY_AFTER: Duration = Duration::from_secs(10);

/// First and longest pause between two attempts at a refusing store.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Decodes the main stream's picture for the event picture of a camera analysed on its
/// sub-stream (on the recorder thread: it decodes from the camera's clip ring).
pub type MainPicture = Box<dyn FnOnce() -> Option<DecodedFrame> + Send>;

/// An incident event to record, with everything its evidence needs.
pub struct EventJob {
    /// The recorder in force when the event happened (category codes, UTC offset).
    pub recorder: Arc<IncidentRecorder>,
    /// The camera, as configured then.
    pub camera: CameraConfig,
    /// The zone the event is in (drawn on the annotated picture).
    pub zone: Polygon,
    /// The incident's id in the store.
    pub id: Uuid,
    /// The analyzer's event.
    pub event: Event,
    /// The analysed pictures with their roles.
    pub pictures: Vec<EventPicture>,
    /// For a camera analysed on its sub-stream: its main stream's event picture.
    pub main: Option<MainPicture>,
    /// Size of the analysed pictures.
    pub frame: FrameSize,
    /// For `raised` and `updated`: what a new analysis needs to follow the incident on after a
    /// restart, kept with it in the store.
    pub spot: Option<OpenSpot>,
}

/// What the recorder thread is given.
enum Job {
    Event(Box<EventJob>),
    /// A file written later (the clip) for an incident handed over before.
    Evidence {
        camera_id: String,
        incident: Uuid,
        file: EvidenceFile,
    },
    /// A camera's view lost or found again.
    CameraEvent(NewCameraEvent),
    Stop,
}

/// A store write to make, kept as it is until the store takes it (and spooled if it never does).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "write", rename_all = "snake_case")]
pub enum StoreWrite {
    /// An incident event with its evidence.
    Event(Box<NewEvent>),
    /// An evidence file of an incident already recorded.
    Evidence {
        /// The incident.
        incident: Uuid,
        /// The file.
        file: EvidenceFile,
    },
    /// A camera's view lost or found again, for the operations center.
    CameraEvent(NewCameraEvent),
}

impl StoreWrite {
    /// Makes the write (blocking, on the store thread).
    fn apply(&self, store: &StoreHandle) -> Result<(), StoreError> {
        let now = crate::clock::unix_now();
        match self {
            StoreWrite::Event(new) => store.record_blocking((**new).clone(), now).map(|_| ()),
            StoreWrite::Evidence { incident, file } => {
                let (incident, file) = (*incident, file.clone());
                store.call_blocking(move |s| s.add_evidence(incident, &file, now))?
            }
            StoreWrite::CameraEvent(event) => {
                let event = event.clone();
                store
                    .call_blocking(move |s| s.record_camera_event(&event, now))?
                    .map(|_| ())
            }
        }
    }

    /// What the store took, for the live feed ([`crate::store::changes`]).
    fn change(&self, camera_id: &str) -> Change {
        let recorded_at = crate::clock::unix_now();
        match self {
            StoreWrite::Event(new) => Change::Incident {
                incident: new.body.incident_id,
                camera_id: camera_id.to_owned(),
                event: new.kind.as_str().to_owned(),
                at: new.at,
                recorded_at,
            },
            StoreWrite::Evidence { incident, file } => Change::Evidence {
                incident: *incident,
                camera_id: camera_id.to_owned(),
                role: file.role.clone(),
                recorded_at,
            },
            StoreWrite::CameraEvent(event) => Change::Camera {
                camera_id: event.camera_id.clone(),
                view: event.view,
                recorded_at,
            },
        }
    }

    /// The incident it belongs to (none for a camera event).
    pub fn incident(&self) -> Option<Uuid> {
        match self {
            StoreWrite::Event(new) => Some(new.body.incident_id),
            StoreWrite::Evidence { incident, .. } => Some(*incident),
            StoreWrite::CameraEvent(_) => None,
        }
    }

    /// What it is about, for logs: the incident's id, or the camera of a camera event.
    pub fn subject(&self) -> String {
        match self {
            StoreWrite::CameraEvent(event) => format!("camera {}", event.camera_id),
            _ => self.incident().map(|id| id.to_string()).unwrap_or_default(),
        }
    }

    /// What it is, for logs: `raised`, `updated`, `cleared`, the evidence file's role, or the
    /// camera's new view.
    pub fn what(&self) -> &str {
        match self {
            StoreWrite::Event(new) => new.kind.as_str(),
            StoreWrite::Evidence { file, .. } => &file.role,
            StoreWrite::CameraEvent(event) => event.view.as_str(),
        }
    }
}

/// The backlog as `/readyz` and the metrics see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Backlog {
    /// Events and files handed over and not yet in the store.
    pub waiting: usize,
    /// How long the oldest of them has waited.
    pub oldest: Option<Duration>,
    /// The store's last refusal, while something waits.
    pub last_error: Option<String>,
}

/// The recording stage's metrics.
#[derive(Clone)]
pub struct RecordingMetrics {
    /// `dumpwatch_recording_backlog`.
    pub backlog: prometheus::IntGauge,
    /// `dumpwatch_recording_failures_total`.
    pub failures: prometheus::IntCounter,
    /// `dumpwatch_recording_spooled_total`.
    pub spooled: prometheus::IntCounter,
}

impl RecordingMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &prometheus::Registry) -> RecordingMetrics {
        let backlog = prometheus::IntGauge::new(
            "dumpwatch_recording_backlog",
            "Incident events and evidence files handed to the recorder and not yet in the store.",
        )
        .expect("valid metric");
        let failures = prometheus::IntCounter::new(
            "dumpwatch_recording_failures_total",
            "Attempts to write an incident event or evidence row that the store refused (retried).",
        )
        .expect("valid metric");
        let spooled = prometheus::IntCounter::new(
            "dumpwatch_recording_spooled_total",
            "Store writes still refused at shutdown, kept in storage_dir/unrecorded/ for the next start.",
        )
        .expect("valid metric");
        for m in [
            Box::new(backlog.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
            Box::new(spooled.clone()),
        ] {
            // Registered once per registry; a second service in the same process shares them.
            let _ = registry.register(m);
        }
        RecordingMetrics {
            backlog,
            failures,
            spooled,
        }
    }
}

/// What the handles and the thread share.
struct Shared {
    metrics: RecordingMetrics,
    state: Mutex<State>,
    spool_dir: PathBuf,
}

#[derive(Default)]
struct State {
    /// When each waiting item was handed over, oldest first.
    handed_at: std::collections::VecDeque<Instant>,
    last_error: Option<String>,
    /// Set at shutdown: past it, what the store refuses is spooled instead of retried.
    give_up_at: Option<Instant>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handed_over(&self) {
        let mut st = self.lock();
        st.handed_at.push_back(Instant::now());
        self.metrics.backlog.set(st.handed_at.len() as i64);
    }

    fn done(&self) {
        let mut st = self.lock();
        st.handed_at.pop_front();
        if st.handed_at.is_empty() {
            st.last_error = None;
        }
        self.metrics.backlog.set(st.handed_at.len() as i64);
    }
}

/// Hands events and files to the recorder thread; clone it freely.
#[derive(Clone)]
pub struct Recording {
    tx: SyncSender<Job>,
    shared: Arc<Shared>,
}

/// The running recorder thread.
pub struct RecordingStage {
    thread: JoinHandle<()>,
    recording: Recording,
}

impl Recording {
    /// Starts the recorder thread writing into `store`; what it cannot record by shutdown goes
    /// to `storage_dir/unrecorded/`.
    pub fn start(
        store: StoreHandle,
        storage_dir: &std::path::Path,
        metrics: RecordingMetrics,
    ) -> Result<(Recording, RecordingStage), StoreError> {
        let (tx, rx) = sync_channel(QUEUE);
        let shared = Arc::new(Shared {
            metrics,
            state: Mutex::new(State::default()),
            spool_dir: spool::dir(storage_dir),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("recorder".into())
                .spawn(move || record_loop(&rx, &store, &shared))
                .map_err(StoreError::Thread)?
        };
        let recording = Recording { tx, shared };
        Ok((recording.clone(), RecordingStage { thread, recording }))
    }

    /// Hands an incident event over. Waits while the queue is full (the store has been refusing
    /// for a while): an incident is never dropped to keep up.
    pub fn event(&self, job: EventJob) {
        self.send(Job::Event(Box::new(job)));
    }

    /// Hands over a camera event (a view lost or found again). Waits while the queue is full,
    /// like an incident event.
    pub fn camera_event(&self, event: NewCameraEvent) {
        self.send(Job::CameraEvent(event));
    }

    /// Hands over a file written for an incident after its event (the clip).
    pub fn evidence(&self, camera_id: &str, incident: Uuid, file: EvidenceFile) {
        self.send(Job::Evidence {
            camera_id: camera_id.to_owned(),
            incident,
            file,
        });
    }

    fn send(&self, job: Job) {
        self.shared.handed_over();
        if let Err(std::sync::mpsc::SendError(job)) = self.tx.send(job) {
            // The recorder thread is gone (after shutdown): keep it for the next start.
            self.shared.done();
            if let Some(write) = job_write_now(job) {
                spool_one(&self.shared, &write);
            }
        }
    }

    /// The backlog now.
    pub fn backlog(&self) -> Backlog {
        let st = self.shared.lock();
        Backlog {
            waiting: st.handed_at.len(),
            oldest: st.handed_at.front().map(Instant::elapsed),
            last_error: st.last_error.clone(),
        }
    }
}

impl crate::clip::ClipSink for Recording {
    fn clip_written(&self, camera_id: &str, incident: Uuid, file: EvidenceFile) {
        self.evidence(camera_id, incident, file);
    }
}

impl RecordingStage {
    /// Records what was handed over (retrying for up to `grace` while the store refuses), spools
    /// the rest, and stops the thread. Call it once nothing hands events over any more.
    pub fn shutdown(self, grace: Duration) {
        self.recording.shared.lock().give_up_at = Some(Instant::now() + grace);
        let _ = self.recording.tx.send(Job::Stop);
        if self.thread.join().is_err() {
            error!("the recorder thread panicked");
        }
    }
}

/// What a job becomes when the thread is gone: an event cannot be prepared any more without its
/// thread (its pictures are not written), so only evidence rows are kept.
fn job_write_now(job: Job) -> Option<StoreWrite> {
    match job {
        Job::Evidence { incident, file, .. } => Some(StoreWrite::Evidence { incident, file }),
        Job::CameraEvent(event) => Some(StoreWrite::CameraEvent(event)),
        Job::Event(job) => {
            let main = job.main.and_then(|f| f());
            let shown = EventPictures {
                analysed: &job.pictures,
                main: main.as_ref(),
            };
            let mut new =
                job.recorder
                    .prepare(&job.camera, &job.zone, job.id, &job.event, shown, job.frame);
            new.spot = job
                .spot
                .as_ref()
                .map(|s| serde_json::to_string(s).expect("plain data"));
            Some(StoreWrite::Event(Box::new(new)))
        }
        Job::Stop => None,
    }
}

fn record_loop(rx: &Receiver<Job>, store: &StoreHandle, shared: &Shared) {
    while let Ok(job) = rx.recv() {
        let camera_id = match &job {
            Job::Event(e) => e.camera.id.clone(),
            Job::Evidence { camera_id, .. } => camera_id.clone(),
            Job::CameraEvent(event) => event.camera_id.clone(),
            Job::Stop => break,
        };
        if let Some(write) = job_write_now(job) {
            write_until_taken(store, shared, &camera_id, &write);
        }
        shared.done();
    }
}

/// Writes `write`, retrying with backoff while the store refuses; past the shutdown deadline it
/// is spooled instead.
fn write_until_taken(store: &StoreHandle, shared: &Shared, camera_id: &str, write: &StoreWrite) {
    let mut pause = RETRY_FIRST;
    let mut failures = 0u32;
    loop {
        let err = match write.apply(store) {
            Ok(()) => {
                store.changes().tell(write.change(camera_id));
                if failures > 0 {
                    info!(camera = camera_id, about = %write.subject(), what = write.what(),
                          failures, "the store took the write after refusing it");
                }
                return;
            }
            Err(StoreError::UnknownIncident(id)) => {
                // Retrying cannot help: its raised event was never handed over (it is not in
                // the store, so there is nothing to attach this to).
                error!(camera = camera_id, incident = %id, what = write.what(),
                       "not recorded: the incident is not in the store");
                return;
            }
            Err(e) => e,
        };
        failures += 1;
        shared.metrics.failures.inc();
        let text = err.to_string();
        if failures == 1 {
            error!(camera = camera_id, about = %write.subject(), what = write.what(), error = %text,
                   "the store refuses a write (incident event, evidence or camera event); retrying until it takes it (is another process holding the database, or the disk full?)");
        } else {
            debug!(camera = camera_id, about = %write.subject(), failures, error = %text, "store still refuses");
        }
        let give_up_at = {
            let mut st = shared.lock();
            st.last_error = Some(text);
            st.give_up_at
        };
        let closed = matches!(err, StoreError::Closed);
        if closed || give_up_at.is_some_and(|t| Instant::now() + pause > t) {
            spool_one(shared, write);
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(RETRY_MAX);
    }
}

fn spool_one(shared: &Shared, write: &StoreWrite) {
    match spool::put(&shared.spool_dir, write) {
        Ok(path) => {
            shared.metrics.spooled.inc();
            warn!(about = %write.subject(), what = write.what(), path = %path.display(),
                  "the store did not take the write before shutdown: kept for the next start");
        }
        Err(e) => {
            error!(about = %write.subject(), what = write.what(), error = %e,
                   "WRITE LOST (incident event, evidence or camera event): the store refused it and it cannot be kept on disk either");
        }
    }
}
