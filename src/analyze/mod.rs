//! Analyze: the domain core that decides when waste was dumped and when it was cleared. Plain
//! synchronous Rust — no tokio, no I/O, no ort or retina: detections, a downscaled grey picture
//! and a time go in, events come out, so every rule is tested with scripted sequences and
//! simulated time.
//!
//! - [`track`]: object tracking with time-based ageing (actors: people and vehicles).
//! - [`background`]: class-agnostic static foreground (COCO has no "garbage bag").
//! - [`dumping`]: the per-camera [`Analyzer`]: candidates, owners, dwell, incidents, clearing.
//! - [`sampling`]: which pictures go to the detector (idle / active, scene-change gate).

pub mod background;
pub mod dumping;
pub mod grey;
pub mod sampling;
pub mod track;

pub use dumping::Analyzer;
pub use grey::GreyFrame;

use crate::geometry::{BBox, Polygon};
use background::BackgroundConfig;
use sampling::SamplingConfig;
use track::TrackerConfig;

/// The rules of one watched zone, resolved from the service defaults and the camera's and
/// zone's overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneRules {
    /// Zone name (unique within the camera).
    pub name: String,
    /// Outline in normalised coordinates.
    pub polygon: Polygon,
    /// Seconds an object must stay unattended before an incident is raised.
    pub dwell_s: f64,
    /// Seconds an incident's objects must be gone before it is cleared.
    pub clear_after_s: f64,
    /// Seconds after an incident is raised or cleared during which a new object at the same spot
    /// is the same pile (an update, or nothing), not a new incident.
    pub cooldown_s: f64,
    /// Smallest object, as a share of the frame area.
    pub min_object_area: f32,
    /// Largest object, as a share of the frame area.
    pub max_object_area: f32,
    /// Per class id: whether a detection of that class is a dumped object when it stays.
    pub dumpable: Vec<bool>,
    /// Per class id: least score of a dumpable detection in this zone.
    pub min_score: Vec<f32>,
}

/// Everything one camera's analyzer needs, resolved (class names turned into ids).
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyzerConfig {
    /// The watched zones (at least one; a camera without zones watches its whole frame).
    pub zones: Vec<ZoneRules>,
    /// Fixture masks (bins, benches): nothing inside them is ever a dumped object.
    pub masks: Vec<Polygon>,
    /// The model's class names, by id.
    pub class_names: Vec<String>,
    /// Per class id: whether that class is an actor (a person or a vehicle).
    pub actor: Vec<bool>,
    /// Per class id: whether that class is a vehicle (parks; never a dumped object).
    pub vehicle: Vec<bool>,
    /// Per class id: least score for the analyzer to use a detection at all.
    pub min_score: Vec<f32>,
    /// Seconds after start during which static things are learned as the scene (objects
    /// present when the camera starts never alert).
    pub startup_grace_s: f64,
    /// A pending object gone for this many seconds before its dwell ends was taken away
    /// (reclaimed): no incident.
    pub reclaim_after_s: f64,
    /// An object's owner is the nearest actor within this many actor heights of it.
    pub owner_radius: f32,
    /// Background model settings.
    pub background: BackgroundConfig,
    /// Tracker settings.
    pub tracker: TrackerConfig,
    /// Sampling settings.
    pub sampling: SamplingConfig,
}

impl AnalyzerConfig {
    /// A configuration for `class_names` with the documented defaults and one zone: the whole
    /// frame. Used by tests and as the base that the configuration resolver fills in.
    pub fn whole_frame(class_names: Vec<String>) -> AnalyzerConfig {
        let by_name = |names: &[&str]| class_names.iter().map(|c| names.contains(&c.as_str())).collect::<Vec<bool>>();
        let n = class_names.len();
        AnalyzerConfig {
            zones: vec![ZoneRules {
                name: "frame".into(),
                polygon: Polygon::full_frame(),
                dwell_s: 30.0,
                clear_after_s: 30.0,
                cooldown_s: 120.0,
                min_object_area: 0.0005,
                max_object_area: 0.15,
                dumpable: by_name(DEFAULT_DUMPABLE),
                min_score: vec![0.25; n],
            }],
            masks: vec![],
            actor: by_name(DEFAULT_ACTORS),
            vehicle: by_name(VEHICLES),
            min_score: vec![0.25; n],
            startup_grace_s: 10.0,
            reclaim_after_s: 5.0,
            owner_radius: 1.5,
            background: BackgroundConfig::default(),
            tracker: TrackerConfig::default(),
            sampling: SamplingConfig::default(),
            class_names,
        }
    }
}

/// COCO classes that are dumped objects by default when they stay.
pub const DEFAULT_DUMPABLE: &[&str] =
    &["suitcase", "backpack", "handbag", "couch", "chair", "bed", "tv", "refrigerator", "toilet", "microwave", "oven"];
/// COCO classes that are actors by default.
pub const DEFAULT_ACTORS: &[&str] = &["person", "bicycle", "motorcycle", "car", "truck", "bus"];
/// COCO classes that are vehicles (they park; a parked vehicle is never a dumped object).
pub const VEHICLES: &[&str] = &["bicycle", "motorcycle", "car", "truck", "bus", "train", "boat"];

/// Kind of incident event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Waste was dumped and left: a new incident.
    Raised,
    /// The pile of an open incident grew.
    Updated,
    /// The incident's objects are gone: the spot was cleaned.
    Cleared,
}

impl EventKind {
    /// `raised`, `updated` or `cleared`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Raised => "raised",
            EventKind::Updated => "updated",
            EventKind::Cleared => "cleared",
        }
    }
}

/// What a snapshot shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameRole {
    /// The spot before the object appeared.
    Before,
    /// The moment of the event.
    Event,
    /// The owner next to the object when it appeared.
    Actor,
    /// The spot after it was cleaned.
    After,
}

/// A picture an event refers to, by the time it was taken (one the analyzer was given).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameRef {
    /// What it shows.
    pub role: FrameRole,
    /// Its capture time, seconds on the analyzer's clock.
    pub at: f64,
}

/// One object of an incident.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventObject {
    /// Detector class name, or `object` for class-agnostic static foreground.
    pub class: String,
    /// Confidence, 0..1.
    pub score: f32,
    /// Box in source pixels.
    pub bbox: BBox,
}

/// The actor seen with the object.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActorSighting {
    /// Class name (`person`, `truck`, ...).
    pub class: String,
    /// Box in source pixels when last seen near the object.
    pub bbox: BBox,
    /// When, seconds on the analyzer's clock.
    pub last_seen: f64,
}

/// An incident event with the evidence the store needs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Raised, updated or cleared.
    pub kind: EventKind,
    /// The incident, numbered from 1 within this analyzer's life.
    pub incident: u64,
    /// Index of the zone in the camera's zone list.
    pub zone_index: usize,
    /// Name of the zone.
    pub zone: String,
    /// When the event happened (the picture's time), seconds on the analyzer's clock.
    pub at: f64,
    /// When the (first) object was put down, estimated.
    pub appeared_at: f64,
    /// Seconds the object has been left unattended.
    pub dwell_s: f64,
    /// Confidence that this is a dumped object, 0..1.
    pub confidence: f32,
    /// The incident's objects (all of the pile, for `updated`).
    pub objects: Vec<EventObject>,
    /// The owner, if one was seen.
    pub actor: Option<ActorSighting>,
    /// The pictures to keep as evidence.
    pub frames: Vec<FrameRef>,
}

/// What the analyzer says about one picture.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// Incident events, in order.
    pub events: Vec<Event>,
    /// Capture times of pictures the caller must keep from now on (it has them among the
    /// pictures of the last [`Analyzer::HISTORY_S`] seconds), because an event may refer to them.
    pub keep: Vec<f64>,
    /// Capture times of kept pictures no longer needed (one release per keep).
    pub release: Vec<f64>,
    /// Whether the camera should be sampled actively (an actor near a zone, or an object pending).
    pub active: bool,
    /// Whether a global scene change (light, IR switch) was re-learned at this picture.
    pub scene_change: bool,
}
