//! Configuration: the service file (`dumpwatch.toml`) and the cameras file (`cameras.toml`).
//!
//! Both are TOML with unknown fields rejected. Every field has a default except the camera
//! list itself, so an empty service file (or none) is a working configuration. Loading parses
//! and then validates everything, reporting **all** problems with their paths
//! (see [`validate`]).

mod analyze;
mod cpu;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::geometry::Polygon;
pub use analyze::{AnalyzeConfig, AnalyzeOverrides, DEFAULT_ACTORS, DEFAULT_DUMPABLE, MaskConfig};
pub use cpu::CpuBudget;
pub use validate::{ConfigError, Problem, validate};

/// RTP transport requested from a camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// RTP interleaved on the RTSP TCP connection: works through NAT and firewalls, no loss
    /// from reordering. The default.
    #[default]
    Tcp,
    /// RTP over UDP: lower overhead on a clean LAN, but retina drops reordered packets.
    Udp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            other => Err(format!("unknown transport {other:?}: expected tcp or udp")),
        }
    }
}

/// Which frames of an idle camera are decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeMode {
    /// Decode only keyframes (one per GOP); every other frame is skipped without decoding.
    /// The default: it is what lets 77 cameras share two cores.
    #[default]
    Keyframes,
    /// Decode every frame (for a few cameras, or a machine with cores to spare).
    All,
}

/// The service configuration (`dumpwatch.toml`). Every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Address of the HTTP server (metrics, API, dashboard). Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Directory for the database, snapshots and clips. Relative paths are resolved against the
    /// directory of the service file. Default `var/dumpwatch`.
    pub storage_dir: PathBuf,
    /// The cameras file. Relative to the service file's directory. Default `cameras.toml`.
    pub cameras_file: PathBuf,
    /// The object detector.
    pub model: ModelConfig,
    /// How streams are pulled from cameras (service-wide defaults).
    pub ingest: IngestConfig,
    /// The decoder pool.
    pub decode: DecodeConfig,
    /// Where incidents are sent.
    pub delivery: DeliveryConfig,
    /// Evidence retention and clips.
    pub evidence: EvidenceConfig,
    /// The HTTP API.
    pub api: ApiConfig,
    /// How dumping is decided and cameras are sampled (defaults for every camera and zone).
    pub analyze: AnalyzeConfig,
    /// Most cameras this instance runs at once, including cameras added by a reload: the
    /// pipeline's per-camera slots are made at start. Default 128; 1..=4096. Changing it needs a
    /// restart.
    pub max_cameras: u32,
}

impl ServiceConfig {
    /// Reads a service file (`None`: the embedded defaults) and resolves its relative paths
    /// (storage, cameras file, users file, model, runtime library) against the file's directory.
    /// Values are not validated here; [`Config::load`] does that.
    pub fn load(path: Option<&Path>) -> Result<ServiceConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(ServiceConfig::default());
        };
        let mut svc: ServiceConfig = read_toml(path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        svc.storage_dir = base.join(&svc.storage_dir);
        svc.cameras_file = base.join(&svc.cameras_file);
        svc.api.users_file = svc.api.users_file.map(|p| base.join(p));
        svc.evidence.label_font = svc.evidence.label_font.map(|p| base.join(p));
        svc.model.path = base.join(&svc.model.path);
        svc.model.ort_library = svc.model.ort_library.map(|p| base.join(p));
        Ok(svc)
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            storage_dir: PathBuf::from("var/dumpwatch"),
            cameras_file: PathBuf::from("cameras.toml"),
            model: ModelConfig::default(),
            ingest: IngestConfig::default(),
            decode: DecodeConfig::default(),
            delivery: DeliveryConfig::default(),
            evidence: EvidenceConfig::default(),
            api: ApiConfig::default(),
            analyze: AnalyzeConfig::default(),
            max_cameras: 128,
        }
    }
}

/// The ONNX object detector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The ONNX model file. Default `models/yolov12n.onnx` (fetched by `scripts/setup.sh`).
    pub path: PathBuf,
    /// The ONNX Runtime shared library. Unset: `ORT_DYLIB_PATH`, then the library next to the
    /// binary, then `models/onnxruntime/libonnxruntime.so.1.31.1`.
    pub ort_library: Option<PathBuf>,
    /// Number of detector sessions, each owned by one worker thread. On CPU one per core is
    /// fastest (2 × 1 thread = 40 inferences/s on 2 cores, 1 × 2 threads = 27). Default 2.
    pub sessions: u32,
    /// Intra-op threads per session. Default 1.
    pub threads_per_session: u32,
    /// Largest batch per run for models whose batch dimension is dynamic: a worker takes up to
    /// this many ready cameras at once. Ignored for batch-1 models such as YOLOv12n. Default 8.
    pub max_batch: u32,
    /// Most detector runs a second over all sessions; 0 (the default) = as many as the CPU
    /// gives. The detector otherwise takes every core the decoders leave; a budget leaves the
    /// rest to other work on the machine (e.g. 5 on 2 cores ≈ 0.75 core of YOLOv12n). Busy
    /// cameras are served first within it, so idle refreshes are what slows down.
    pub max_detections_per_s: f64,
    /// The most CPU the service may use (every thread but the API's, which run niced):
    /// `"auto"` (the default: 80 % of the CPUs this process may use, 1.6 on 2), `"off"`, or a
    /// number of cores. Every 2 s the detector's rate is set so that the service stays within
    /// it, aiming 3 % under it so that it holds as a ceiling (never below one run a second);
    /// busy cameras are served first, so idle refreshes are what slows down. On top of
    /// `max_detections_per_s`.
    pub cpu_budget: CpuBudget,
    /// Two wide pictures (16:9 and wider) per detector run, one in each half of the model's
    /// input, for batch-1 models such as YOLOv12n: half the detector's CPU per picture, at 89 %
    /// of the picture's scale (a 1280×720 picture at 569×320 instead of 640×360). A wide
    /// picture always gets a half, partnered or alone, so what it shows does not depend on the
    /// load; `eval` and `replay` run the same. Pictures that would keep less than 85 % of their
    /// scale (4:3, 704×576) run alone at full size. Default true.
    pub mosaic: bool,
    /// Minimum score of a detection, for every class without its own threshold. Default 0.25.
    pub confidence: f32,
    /// Minimum score per class name, overriding `confidence` (e.g. `{ suitcase = 0.4 }`).
    /// Names are those after `rename`; a name the model lacks is an error at start-up.
    pub class_confidence: BTreeMap<String, f32>,
    /// Boxes of the same class that overlap more than this (IoU) are merged into the best one.
    /// Boxes of different classes never suppress each other. Default 0.45.
    pub iou_threshold: f32,
    /// Detections smaller than this many source pixels (width × height) are dropped. Default 0.
    pub min_box_area_px: f32,
    /// At most this many detections per picture, best first. Default 300.
    pub max_detections: usize,
    /// Renames the model's classes (`{ handbag = "bag", backpack = "bag" }`): the configuration
    /// and incidents then use the new names.
    pub rename: BTreeMap<String, String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: PathBuf::from("models/yolov12n.onnx"),
            ort_library: None,
            sessions: 2,
            threads_per_session: 1,
            max_batch: 8,
            max_detections_per_s: 0.0,
            cpu_budget: CpuBudget::Auto,
            mosaic: true,
            confidence: 0.25,
            class_confidence: BTreeMap::new(),
            iou_threshold: 0.45,
            min_box_area_px: 0.0,
            max_detections: 300,
            rename: BTreeMap::new(),
        }
    }
}

/// How streams are pulled. Every timeout is in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// RTP transport unless a camera overrides it. Default `tcp`.
    pub transport: Transport,
    /// Limit for each RTSP step (connect + DESCRIBE, SETUP, PLAY). Default 10 s.
    pub connect_timeout_s: f64,
    /// A camera that sends no video frame for this long is considered stalled and reconnected.
    /// Default 10 s (a GOP is typically 1–4 s).
    pub frame_timeout_s: f64,
    /// First delay before reconnecting after an error. Default 1 s.
    pub backoff_initial_s: f64,
    /// Longest delay between reconnects. Default 60 s.
    pub backoff_max_s: f64,
    /// A connection that streamed this long resets the backoff to its initial delay. Default 30 s.
    pub stable_after_s: f64,
    /// Wait up to this long before a camera's first connect, spread evenly over the cameras,
    /// so that 77 cameras do not hit their servers in the same instant. Default 2 s.
    pub startup_spread_s: f64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            transport: Transport::Tcp,
            connect_timeout_s: 10.0,
            frame_timeout_s: 10.0,
            backoff_initial_s: 1.0,
            backoff_max_s: 60.0,
            stable_after_s: 30.0,
            startup_spread_s: 2.0,
        }
    }
}

impl IngestConfig {
    /// `connect_timeout_s` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout_s)
    }
    /// `frame_timeout_s` as a duration.
    pub fn frame_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.frame_timeout_s)
    }
}

/// The decoder pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// Decoder threads. In keyframe mode one decoder per thread serves every camera, because
    /// each keyframe carries its own SPS/PPS. Default 2.
    pub threads: u32,
    /// Which frames of an idle camera are decoded. Default `keyframes`.
    pub mode: DecodeMode,
    /// Keyframe mode: decode at most one keyframe per camera per this many seconds (of stream
    /// time); keyframes that come sooner are skipped without decoding. 0 = every keyframe (the
    /// default). Decoding is most of the CPU cost of an idle camera (≈ 28 ms per keyframe of
    /// real 720p footage with openh264), so 4 s halves it for cameras with a 2 s GOP.
    pub min_keyframe_interval_s: f64,
    /// Keyframe mode: an idle camera's keyframe is decoded only when its compressed stream
    /// shows motion (P-frame bytes above the camera's own noise baseline), at the camera's
    /// `idle_refresh_s`, or as the first of a connection; the others are skipped without
    /// decoding. `false` decodes every keyframe of an idle camera (as far as
    /// `min_keyframe_interval_s` allows). Default `true`.
    pub motion_gate: bool,
    /// Hardware decoder: `none` (software, the default), `vaapi` (Intel/AMD GPUs, the default
    /// DRM render node) or `cuda` (NVIDIA). When the device cannot be opened, decoding falls
    /// back to software and the reason is logged once.
    pub hwaccel: HwAccel,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            threads: 2,
            mode: DecodeMode::Keyframes,
            min_keyframe_interval_s: 0.0,
            motion_gate: true,
            hwaccel: HwAccel::None,
        }
    }
}

/// A hardware video decoder libavcodec can use (`decode.hwaccel`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HwAccel {
    /// Software decoding.
    #[default]
    None,
    /// VA-API (Intel and AMD GPUs).
    Vaapi,
    /// NVIDIA CUDA (NVDEC).
    Cuda,
}

impl HwAccel {
    /// The name used in the configuration and the log.
    pub fn name(self) -> &'static str {
        match self {
            HwAccel::None => "none",
            HwAccel::Vaapi => "vaapi",
            HwAccel::Cuda => "cuda",
        }
    }
}

/// Where incidents are sent (the city-management case system).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// URL incidents are POSTed to (http or https). Default `http://127.0.0.1:8090/api/incidents`
    /// (the reference receiver started by the demo). It may not carry credentials
    /// (`user:password@`, or a `token=`, `key=`, `secret=`… query parameter): they would be
    /// logged and stored; the body's HMAC signature (`secret_env`) authenticates dumpwatch.
    pub endpoint: String,
    /// Name of the environment variable that holds the HMAC secret for
    /// `X-Dumpwatch-Signature`. Unset: bodies are not signed.
    pub secret_env: Option<String>,
    /// How snapshots travel: `inline` (base64 in the body) or `url` (links to this service's
    /// API, fetched by the city system). Default `inline`.
    pub snapshots: SnapshotMode,
    /// Base URL under which the city system reaches this service's API, for `url` snapshots.
    /// Default: `http://` + `listen`.
    pub public_url: Option<String>,
    /// Most deliveries in flight at once. Default 4.
    pub concurrency: u32,
    /// Limit of one delivery request, seconds. Default 10.
    pub timeout_s: f64,
    /// Ceiling of the first retry delay, seconds (exponential with full jitter after that).
    /// Default 1.
    pub backoff_initial_s: f64,
    /// Longest retry delay, seconds. A server's `Retry-After` is honoured beyond it (up to an
    /// hour). Default 300.
    pub backoff_max_s: f64,
    /// The city's offset from UTC for the times in bodies, `+HH:MM`. Default `+08:00`.
    pub utc_offset: String,
    /// Category codes of the city's case system per kind of event.
    pub categories: CategoryConfig,
    /// Requests still in flight at shutdown get this long to finish, seconds (the rest stay in
    /// the outbox for the next start). Default 3.
    pub shutdown_grace_s: f64,
}

impl DeliveryConfig {
    /// `utc_offset` in minutes (validated at load; +08:00 if it were not).
    pub fn utc_offset_min(&self) -> i32 {
        crate::clock::parse_utc_offset(&self.utc_offset).unwrap_or(480)
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            endpoint: "http://127.0.0.1:8090/api/incidents".into(),
            secret_env: None,
            snapshots: SnapshotMode::Inline,
            public_url: None,
            concurrency: 4,
            timeout_s: 10.0,
            backoff_initial_s: 1.0,
            backoff_max_s: 300.0,
            utc_offset: "+08:00".into(),
            categories: CategoryConfig::default(),
            shutdown_grace_s: 3.0,
        }
    }
}

/// The city's category codes (数字城管 event classes) for each kind of incident event. The
/// defaults follow the national standard's 市容环境 (city appearance) class: `0102` 暴露垃圾
/// (exposed waste) and `0103` 积存垃圾渣土 (accumulated waste and muck); a city with its own
/// table sets its codes here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CategoryConfig {
    /// Code of a new dumping (event `raised`). Default `0102`.
    pub dumping: String,
    /// Code of a pile that grew (event `updated`). Default `0103`.
    pub accumulation: String,
    /// Code of the verification that the spot was cleaned (event `cleared`). Default `0102`
    /// (the same case class, closing the loop).
    pub cleared: String,
}

impl Default for CategoryConfig {
    fn default() -> Self {
        CategoryConfig {
            dumping: "0102".into(),
            accumulation: "0103".into(),
            cleared: "0102".into(),
        }
    }
}

/// How snapshots travel with the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// `data_base64` in the body (self-contained; bodies of a few hundred kB).
    #[default]
    Inline,
    /// `url` pointing at dumpwatch's API (small bodies; the city system fetches the files with
    /// its case token, `api.case_token_env`).
    Url,
}

/// Evidence files and how long they are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Evidence older than this many days is removed, open incidents' included (never that of
    /// an incident with an event not yet delivered). Default 90.
    pub max_age_days: f64,
    /// Beyond this many GB of evidence in total, the oldest removable files go: cleared
    /// incidents' first, then open ones'. Default 20.
    pub max_gb: f64,
    /// Seconds of video before the event in an incident's evidence clip. Default 10.
    pub clip_pre_s: f64,
    /// Seconds of video after the event in an incident's evidence clip. Default 10.
    pub clip_post_s: f64,
    /// Most video kept per camera for clips, MB (10⁶ bytes): the ring of recent access units
    /// holds `clip_pre_s` and a GOP, or less when this is reached (whole GOPs are dropped,
    /// oldest first). At 2 Mb/s, 4 MB is 16 s; 77 cameras hold at most 77 × this. Default 4.
    pub clip_ring_max_mb: f64,
    /// Seconds of video before an object was first seen (its put-down, and who put it down) at
    /// the start of a raised incident's clip, which then runs from there to `clip_post_s` after
    /// the alert: some `dwell_s` + 10 s. Kept while the object is pending, within
    /// `clip_act_max_mb`. Default 5.
    pub clip_before_put_down_s: f64,
    /// Most video one camera keeps on disk while an object is pending, MB, so that its clip can
    /// show the put-down: what outgrows `clip_ring_max_mb` in memory goes to a file under
    /// `storage_dir/pending-act/`, emptied when nothing is pending. At 2 Mb/s, 16 MB is 64 s:
    /// the put-down, `dwell_s` and the seconds it takes to decide. Beyond it the put-down is
    /// given up and the clip starts later. 0: nothing kept on disk. Default 16.
    pub clip_act_max_mb: f64,
    /// Font of the text on evidence pictures and thumbnails (zone names, classes): a TrueType
    /// or OpenType file or collection, relative to the service file. Unset: Debian's CJK fonts
    /// are tried (`fonts-wqy-microhei`, `fonts-noto-cjk`), so Chinese names read; without any,
    /// a built-in bitmap font that has Latin letters and digits only (logged at start).
    pub label_font: Option<PathBuf>,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            max_age_days: 90.0,
            max_gb: 20.0,
            clip_pre_s: 10.0,
            clip_post_s: 10.0,
            clip_ring_max_mb: 4.0,
            clip_before_put_down_s: 5.0,
            clip_act_max_mb: 16.0,
            label_font: None,
        }
    }
}

/// The HTTP API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Name of the environment variable holding the service token: a bearer token with the
    /// rights of an admin, for automation (scripts, monitoring that reads the API). Unset: only
    /// logged-in operators use the API.
    pub token_env: Option<String>,
    /// The operators' accounts (`dumpwatch users add NAME --role ROLE --file FILE`): login
    /// names, roles (`viewer`, `operator`, `admin`) and argon2 password hashes; re-read when it
    /// changes. Relative to the service file's directory. Unset: no one can log in, and the API
    /// answers the service token alone.
    pub users_file: Option<PathBuf>,
    /// Name of the environment variable holding the token the city system's case callbacks
    /// (`POST /api/v1/incidents/{id}/case`) send, theirs alone: it allows nothing else but
    /// fetching evidence files (snapshots sent as URLs), and no other token or session allows
    /// case reports. Unset: case reports are refused.
    pub case_token_env: Option<String>,
    /// A logged-in session unused for this long ends, hours (one shift by default). Default 12.
    pub session_timeout_h: f64,
    /// Mark the session cookie `Secure` (sent over HTTPS only): set it when the dashboard is
    /// served through a TLS proxy. Default false (plain HTTP on the center's network).
    pub secure_cookie: bool,
    /// Most client connections open at once; further clients wait in the listen queue until
    /// one closes. Default 256.
    pub max_connections: u32,
    /// A connection on which nothing was read or written for this long is closed, seconds (a
    /// client that opens connections and sends nothing, or sends its request slower than this
    /// between bytes). Default 10.
    pub idle_timeout_s: f64,
    /// A request's headers must have arrived this long after it began, seconds, however
    /// steadily they trickle in (a client sending a byte every few seconds is cut off). Also
    /// how long a kept-alive connection may wait for its next request. Default 10.
    pub header_read_timeout_s: f64,
    /// Longest time one request may take to be answered, seconds (503 after it). Default 30.
    pub request_timeout_s: f64,
    /// Nice value of the API's threads, 0..=19: on a saturated machine, clients of the API get
    /// the CPU the decoders and detectors leave, so hammering the dashboard cannot blind the
    /// service. 0 serves the API at the pipeline's priority. Default 10.
    pub nice: i32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token_env: None,
            users_file: None,
            case_token_env: None,
            session_timeout_h: 12.0,
            secure_cookie: false,
            max_connections: 256,
            idle_timeout_s: 10.0,
            header_read_timeout_s: 10.0,
            request_timeout_s: 30.0,
            nice: 10,
        }
    }
}

/// The cameras file (`cameras.toml`): a list of `[[cameras]]` tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CamerasFile {
    /// The watched cameras.
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
}

/// One camera.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Stable identifier: 1–64 characters of `A-Z a-z 0-9 _ - .`; used in metrics labels, the API
    /// and incidents. Must be unique.
    pub id: String,
    /// Human-readable name shown in the operations center. Default: the id.
    #[serde(default)]
    pub name: Option<String>,
    /// The RTSP URL of the camera's main stream, without credentials (`rtsp://host[:port]/path`).
    /// Without `analysis_url`, everything runs on it.
    pub url: String,
    /// The camera's sub-stream, for analysis (e.g. Hikvision `/Streaming/Channels/102` at
    /// 640×360 or 704×576; Dahua `…&subtype=1`). When set, decoding, detection and the analyzer
    /// run on it, the main stream `url` is only recorded (its packets kept for the evidence clip,
    /// never decoded continuously), and each event's picture is decoded from the main stream at
    /// the event's time. Zones are normalised, so they fit both streams. Same credentials and
    /// transport as `url`. Recommended for every camera that has a sub-stream.
    #[serde(default)]
    pub analysis_url: Option<String>,
    /// Name of the environment variable holding the RTSP user name.
    #[serde(default)]
    pub username_env: Option<String>,
    /// Name of the environment variable holding the RTSP password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// RTP transport for this camera. Default: `ingest.transport`.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// The camera's national-standard (GB/T 28181) device id, passed on to the city system.
    #[serde(default)]
    pub gb28181_id: Option<String>,
    /// Whether the camera is watched. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where the camera is.
    #[serde(default)]
    pub location: Option<Location>,
    /// Watched zones. None: the whole frame is one zone.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Fixture masks: nothing inside them is ever a dumped object.
    #[serde(default)]
    pub masks: Vec<MaskConfig>,
    /// Overrides of the service's `[analyze]` settings for this camera.
    #[serde(default)]
    pub analyze: AnalyzeOverrides,
}

fn yes() -> bool {
    true
}

impl CameraConfig {
    /// A camera with every optional field at its default (no credentials, no zones: the whole
    /// frame is watched).
    pub fn new(id: impl Into<String>, url: impl Into<String>) -> Self {
        CameraConfig {
            id: id.into(),
            name: None,
            url: url.into(),
            analysis_url: None,
            username_env: None,
            password_env: None,
            transport: None,
            gb28181_id: None,
            enabled: true,
            location: None,
            zones: vec![],
            masks: vec![],
            analyze: AnalyzeOverrides::default(),
        }
    }

    /// The display name (the id if no name is set).
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// A camera's position, sent with incidents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Latitude in degrees (WGS-84), -90..=90.
    pub lat: f64,
    /// Longitude in degrees (WGS-84), -180..=180.
    pub lon: f64,
    /// Street address, as the city system shows it.
    #[serde(default)]
    pub address: String,
    /// District (区) or other grouping the operations center knows the camera by: the
    /// dashboard's map groups cameras by it. Default: none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub district: String,
}

/// A watched zone inside a camera's frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Name, unique within the camera (e.g. `roadside`).
    pub name: String,
    /// Outline in normalised coordinates (`[[x, y], ...]`, 0..1, top-left origin), at least three
    /// points, not self-intersecting.
    pub polygon: Polygon,
    /// Overrides of the camera's analyze settings for this zone (dwell, clearing, cooldown,
    /// object size, dumpable classes, class confidence).
    #[serde(default)]
    pub analyze: AnalyzeOverrides,
}

/// Credentials resolved from the environment for one camera.
#[derive(Clone)]
pub struct Credentials {
    /// RTSP user name.
    pub username: String,
    /// RTSP password. Never logged.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Everything the service runs with, loaded and validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// The service settings, with relative paths resolved.
    pub service: ServiceConfig,
    /// The cameras.
    pub cameras: Vec<CameraConfig>,
}

impl Config {
    /// Loads the service file (if any; `None` = embedded defaults) and the cameras file it names
    /// (or `cameras_override`), then validates both against the process environment.
    pub fn load(
        service_path: Option<&Path>,
        cameras_override: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let mut service = ServiceConfig::load(service_path)?;
        if let Some(p) = cameras_override {
            service.cameras_file = p.to_path_buf();
        }
        let cameras: CamerasFile = read_toml(&service.cameras_file)?;
        let config = Config {
            service,
            cameras: cameras.cameras,
        };
        validate(&config, &|name| std::env::var(name).ok())?;
        Ok(config)
    }
}

/// Resolves a camera's credentials from the environment (validation has already checked that
/// the variables are set).
pub fn credentials_from_env(camera: &CameraConfig) -> Option<Credentials> {
    let get = |name: &Option<String>| name.as_ref().and_then(|n| std::env::var(n).ok());
    match (get(&camera.username_env), get(&camera.password_env)) {
        (None, None) => None,
        (user, pass) => Some(Credentials {
            username: user.unwrap_or_default(),
            password: pass.unwrap_or_default(),
        }),
    }
}

/// Reads and parses a TOML file; errors name the file (and line and column for syntax or field
/// errors). Shared by every file dumpwatch reads: service, cameras, evaluation labels.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_service_file_is_all_defaults() {
        let svc: ServiceConfig = toml::from_str("").unwrap();
        assert_eq!(svc, ServiceConfig::default());
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_place() {
        let err = toml::from_str::<ServiceConfig>("[ingest]\nframe_timeout = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("frame_timeout"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn camera_defaults() {
        let f: CamerasFile =
            toml::from_str("[[cameras]]\nid = \"c1\"\nurl = \"rtsp://127.0.0.1/x\"\n").unwrap();
        let c = &f.cameras[0];
        assert!(c.enabled);
        assert_eq!(c.display_name(), "c1");
        assert!(c.zones.is_empty());
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
