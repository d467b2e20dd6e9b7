//! Camera state shared with the rest of the service (API, readiness, the operations center).
//! Written by the camera's ingest task, read by anyone; one small mutex per camera.

use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::analyze::view::View;

/// What a camera's ingest task is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// Waiting for its first connect (start-up spreading).
    #[default]
    Starting,
    /// Running DESCRIBE / SETUP / PLAY.
    Connecting,
    /// Connected and waiting for the first keyframe, or receiving frames.
    Streaming,
    /// The last attempt failed; waiting before the next one.
    BackingOff,
    /// The camera sends a codec other than H.264 or H.265. Retried slowly in case it is
    /// reconfigured.
    UnsupportedCodec,
    /// The task has ended (shutdown or camera removed).
    Stopped,
}

/// A snapshot of one camera's status.
#[derive(Clone, Debug, Serialize)]
pub struct CameraStatus {
    /// Camera id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where the camera is (from the cameras file), for the dashboard's map.
    pub location: Option<crate::config::Location>,
    /// Current state.
    pub state: CameraState,
    /// When the state last changed.
    #[serde(with = "rfc3339")]
    pub since: SystemTime,
    /// The last error, credentials redacted (kept while streaming again, for the record).
    pub last_error: Option<String>,
    /// When the last error happened.
    #[serde(with = "rfc3339_opt")]
    pub last_error_at: Option<SystemTime>,
    /// Connection attempts after the first.
    pub reconnects: u64,
    /// Codec of the current stream.
    pub codec: Option<String>,
    /// RFC 6381 codec string (profile and level).
    pub codec_string: Option<String>,
    /// Width and height of the current stream.
    pub resolution: Option<(u32, u32)>,
    /// Transport in use (`tcp` / `udp`).
    pub transport: Option<String>,
    /// Arrival time of the last video frame.
    #[serde(with = "rfc3339_opt")]
    pub last_frame_at: Option<SystemTime>,
    /// Video frames received since start.
    pub frames_received: u64,
    /// Keyframes received since start.
    pub keyframes_received: u64,
    /// Frames per second received, measured over the last few seconds.
    pub fps: Option<f64>,
    /// What is decoded: `idle` (keyframes only), `active` (every frame, someone is near a
    /// zone or an object is pending) or `all` (`decode.mode = "all"`).
    pub decode: &'static str,
    /// Whether the camera is busy (someone near a zone, an object pending, an incident open):
    /// its frames are decoded and detected before idle cameras'.
    pub busy: bool,
    /// Capture time of the last analysed picture (through the detector and the analyzer).
    #[serde(with = "rfc3339_opt")]
    pub analysed_at: Option<SystemTime>,
    /// Seconds between the last two analysed pictures.
    pub analysis_gap_s: Option<f64>,
    /// Seconds since the last analysed picture was taken, when this status was read (grows
    /// while a camera waits for analysis; compare with `idle_refresh_s`).
    pub since_analysed_s: Option<f64>,
    /// What the camera sees against its home view: `learning` (until the start-up grace
    /// ends), `home`, `moved` (turned, bumped, zoomed: its zones no longer fit) or `covered`
    /// (too little detail: the lens covered, sprayed or fogged). Nothing is raised while moved
    /// or covered.
    pub view: View,
    /// When the view last changed (capture time of the picture that settled it).
    #[serde(with = "rfc3339_opt")]
    pub view_since: Option<SystemTime>,
    /// The main stream of a camera analysed on its sub-stream (`analysis_url`): recorded for
    /// clips and event pictures, never decoded continuously. `None` for a camera analysed on its
    /// main stream.
    pub recording: Option<RecordingStatus>,
    #[serde(skip)]
    fps_window: Option<(std::time::Instant, u64)>,
}

/// The main stream of a camera whose analysis runs on its sub-stream.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecordingStatus {
    /// Whether the main stream is being received (`streaming`) or reconnecting (`backing_off`).
    pub state: CameraState,
    /// Codec of the main stream (`h264`, `h265`).
    pub codec: Option<String>,
    /// RFC 6381 codec string of the main stream.
    pub codec_string: Option<String>,
    /// Width × height of the main stream.
    pub resolution: Option<(u32, u32)>,
    /// Frames received on the main stream.
    pub frames_received: u64,
    /// The last error of the main stream, credentials redacted.
    pub last_error: Option<String>,
}

impl CameraStatus {
    /// Counts a received frame and refreshes the frame rate every two seconds.
    pub fn count_frame(&mut self, keyframe: bool, at: SystemTime) {
        self.frames_received += 1;
        self.keyframes_received += u64::from(keyframe);
        self.last_frame_at = Some(at);
        let now = std::time::Instant::now();
        match self.fps_window {
            Some((start, n)) if now.duration_since(start).as_secs_f64() >= 2.0 => {
                let secs = now.duration_since(start).as_secs_f64();
                self.fps = Some(((self.frames_received - n) as f64 / secs * 10.0).round() / 10.0);
                self.fps_window = Some((now, self.frames_received));
            }
            Some(_) => {}
            None => self.fps_window = Some((now, self.frames_received)),
        }
    }

    /// Records an analysed picture taken at `at`; returns the gap since the previous one.
    pub fn count_analysed(&mut self, at: SystemTime, busy: bool) -> Option<f64> {
        let gap = self
            .analysed_at
            .and_then(|prev| at.duration_since(prev).ok())
            .map(|d| d.as_secs_f64());
        self.analysed_at = Some(at);
        self.busy = busy;
        if gap.is_some() {
            self.analysis_gap_s = gap.map(|g| (g * 100.0).round() / 100.0);
        }
        gap
    }

    /// Forgets the frame rate (the stream stopped).
    pub fn reset_rate(&mut self) {
        self.fps = None;
        self.fps_window = None;
    }
}

/// The status of every camera, by pipeline slot. A slot is vacant until the supervisor starts a
/// camera in it, and again after the camera is removed.
pub struct StatusBoard {
    cameras: Vec<Mutex<Option<CameraStatus>>>,
}

fn fresh(id: String, name: String, location: Option<crate::config::Location>) -> CameraStatus {
    CameraStatus {
        id,
        name,
        location,
        state: CameraState::Starting,
        since: SystemTime::now(),
        last_error: None,
        last_error_at: None,
        reconnects: 0,
        codec: None,
        codec_string: None,
        resolution: None,
        transport: None,
        recording: None,
        last_frame_at: None,
        frames_received: 0,
        keyframes_received: 0,
        fps: None,
        decode: "idle",
        busy: false,
        analysed_at: None,
        analysis_gap_s: None,
        since_analysed_s: None,
        view: View::Learning,
        view_since: None,
        fps_window: None,
    }
}

impl StatusBoard {
    /// `slots` vacant slots.
    pub fn with_capacity(slots: usize) -> Self {
        StatusBoard {
            cameras: (0..slots).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn slot(&self, i: usize) -> std::sync::MutexGuard<'_, Option<CameraStatus>> {
        self.cameras[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a new camera, `Starting`, in slot `i`.
    pub fn occupy(
        &self,
        i: usize,
        id: String,
        name: String,
        location: Option<crate::config::Location>,
    ) {
        *self.slot(i) = Some(fresh(id, name, location));
    }

    /// Empties slot `i` (its camera was removed).
    pub fn vacate(&self, i: usize) {
        *self.slot(i) = None;
    }

    /// Changes camera `i`'s status under its lock; `None` if the slot is vacant.
    pub fn update<R>(&self, i: usize, f: impl FnOnce(&mut CameraStatus) -> R) -> Option<R> {
        self.slot(i).as_mut().map(f)
    }

    /// Sets camera `i`'s state (and `since` if it changed).
    pub fn set_state(&self, i: usize, state: CameraState) {
        self.update(i, |s| {
            if s.state != state {
                s.state = state;
                s.since = SystemTime::now();
                if state != CameraState::Streaming {
                    s.reset_rate();
                }
            }
        });
    }

    /// A copy of camera `i`'s status; `None` if the slot is vacant.
    pub fn get(&self, i: usize) -> Option<CameraStatus> {
        let mut status = self.slot(i).clone()?;
        status.since_analysed_s = status.analysed_at.map(|t| {
            let s = SystemTime::now()
                .duration_since(t)
                .map_or(0.0, |d| d.as_secs_f64());
            (s * 10.0).round() / 10.0
        });
        Some(status)
    }

    /// Copies of every camera's status, in slot order.
    pub fn snapshot(&self) -> Vec<CameraStatus> {
        (0..self.cameras.len())
            .filter_map(|i| self.get(i))
            .collect()
    }

    /// Slot of the camera with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        (0..self.cameras.len()).find(|&i| self.update(i, |s| s.id == id) == Some(true))
    }
}

/// Formats a time as RFC 3339 with milliseconds, UTC.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

mod rfc3339 {
    use std::time::SystemTime;
    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*t))
    }
}

mod rfc3339_opt {
    use std::time::SystemTime;
    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_time(*t)),
            None => s.serialize_none(),
        }
    }
}
