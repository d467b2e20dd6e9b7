//! Analyze: the domain core that decides when waste was dumped and when it was cleared. Plain
//! synchronous Rust — no tokio, no I/O, no ort or retina: detections, a downscaled grey picture
//! and a time go in, events come out, so every rule is tested with scripted sequences and
//! simulated time.
//!
//! - [`track`]: object tracking with time-based ageing (actors: people and vehicles).
//! - [`background`]: class-agnostic static foreground (COCO has no "garbage bag").
//! - [`dumping`]: the per-camera [`Analyzer`]: candidates, owners, dwell, incidents, clearing.
//! - [`sampling`]: which pictures go to the detector (idle / active, scene-change gate).

/// The zone name of a camera without zones (its whole frame is watched).
pub const WHOLE_FRAME_ZONE: &str = "frame";

pub mod align;
pub mod background;
pub mod dumping;
pub mod grey;
pub mod sampling;
pub mod track;
pub mod view;

pub use dumping::{Analyzer, NotCarried, OpenSpot, Reconfigured, SpotObject};
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
        let by_name = |names: &[&str]| {
            class_names
                .iter()
                .map(|c| names.contains(&c.as_str()))
                .collect::<Vec<bool>>()
        };
        let n = class_names.len();
        AnalyzerConfig {
            zones: vec![ZoneRules {
                name: WHOLE_FRAME_ZONE.into(),
                polygon: Polygon::full_frame(),
                dwell_s: 30.0,
                clear_after_s: 30.0,
                cooldown_s: 120.0,
                min_object_area: 0.001,
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

pub use crate::config::{DEFAULT_ACTORS, DEFAULT_DUMPABLE};
/// COCO classes that are vehicles (they park; a parked vehicle is never a dumped object).
pub const VEHICLES: &[&str] = &[
    "bicycle",
    "motorcycle",
    "car",
    "truck",
    "bus",
    "train",
    "boat",
];

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
    /// Whether an incident of this camera is open (its spot is followed until it is cleared).
    pub incident_open: bool,
    /// Whether a global scene change (light, IR switch) was re-learned at this picture.
    pub scene_change: bool,
    /// The camera's view, when it changed at this picture (see [`view`]): moved or covered,
    /// nothing is raised until it is home again.
    pub view: Option<view::View>,
}

/// Why a camera's analyzer settings cannot be used with the loaded model.
#[derive(Debug, thiserror::Error)]
#[error("{path}: unknown class {class:?}; the model's classes are: {known}")]
pub struct UnknownClass {
    /// Where the name was given (`cameras[3].zones[0].analyze.dumpable_classes`).
    pub path: String,
    /// The name.
    pub class: String,
    /// The model's class names, comma-separated.
    pub known: String,
}

impl AnalyzerConfig {
    /// Resolves a camera's analyzer settings: service defaults, then the camera's overrides,
    /// then each zone's; class names become ids of `class_names`. A camera without zones watches
    /// its whole frame as one zone named `frame`. `at` names the camera in errors
    /// (`cameras[3]`).
    pub fn resolve(
        service: &crate::config::AnalyzeConfig,
        camera: &crate::config::CameraConfig,
        class_names: &[String],
        at: &str,
    ) -> Result<AnalyzerConfig, UnknownClass> {
        let zones: Vec<(String, Polygon, &crate::config::AnalyzeOverrides)> = camera
            .zones
            .iter()
            .map(|z| (z.name.clone(), z.polygon.clone(), &z.analyze))
            .collect();
        let masks = camera.masks.iter().map(|m| m.polygon.clone()).collect();
        Self::resolve_parts(service, &camera.analyze, &zones, masks, class_names, at)
    }

    /// [`AnalyzerConfig::resolve`] from parts (used by `eval`, whose clips carry their own zone).
    pub fn resolve_parts(
        service: &crate::config::AnalyzeConfig,
        camera: &crate::config::AnalyzeOverrides,
        zones: &[(String, Polygon, &crate::config::AnalyzeOverrides)],
        masks: Vec<Polygon>,
        class_names: &[String],
        at: &str,
    ) -> Result<AnalyzerConfig, UnknownClass> {
        let cam = camera.apply(service);
        let known = || class_names.join(", ");
        let flags = |names: &[String], path: &str| -> Result<Vec<bool>, UnknownClass> {
            let mut out = vec![false; class_names.len()];
            for n in names {
                let id = class_names
                    .iter()
                    .position(|c| c == n)
                    .ok_or_else(|| UnknownClass {
                        path: path.to_owned(),
                        class: n.clone(),
                        known: known(),
                    })?;
                out[id] = true;
            }
            Ok(out)
        };
        let scores = |conf: &std::collections::BTreeMap<String, f32>,
                      path: &str|
         -> Result<Vec<f32>, UnknownClass> {
            let mut out = vec![0.0; class_names.len()];
            for (n, t) in conf {
                let id = class_names
                    .iter()
                    .position(|c| c == n)
                    .ok_or_else(|| UnknownClass {
                        path: path.to_owned(),
                        class: n.clone(),
                        known: known(),
                    })?;
                out[id] = *t;
            }
            Ok(out)
        };
        let whole = [(
            WHOLE_FRAME_ZONE.to_owned(),
            Polygon::full_frame(),
            &crate::config::AnalyzeOverrides::default(),
        )];
        let zone_list: Vec<(String, Polygon, &crate::config::AnalyzeOverrides)> =
            if zones.is_empty() {
                whole.to_vec()
            } else {
                zones.to_vec()
            };
        let mut rules = Vec::new();
        for (z, (name, polygon, over)) in zone_list.iter().enumerate() {
            let zat = if zones.is_empty() {
                format!("{at}.analyze")
            } else {
                format!("{at}.zones[{z}].analyze")
            };
            let eff = over.apply(&cam);
            rules.push(ZoneRules {
                name: name.clone(),
                polygon: polygon.clone(),
                dwell_s: eff.dwell_s,
                clear_after_s: eff.clear_after_s,
                cooldown_s: eff.cooldown_s,
                min_object_area: eff.min_object_area as f32,
                max_object_area: eff.max_object_area as f32,
                dumpable: flags(&eff.dumpable_classes, &format!("{zat}.dumpable_classes"))?,
                min_score: scores(&eff.class_confidence, &format!("{zat}.class_confidence"))?,
            });
        }
        let actor = flags(&cam.actor_classes, &format!("{at}.analyze.actor_classes"))?;
        let vehicle = class_names
            .iter()
            .zip(&actor)
            .map(|(n, a)| *a && VEHICLES.contains(&n.as_str()))
            .collect();
        Ok(AnalyzerConfig {
            zones: rules,
            masks,
            actor,
            vehicle,
            min_score: scores(
                &cam.class_confidence,
                &format!("{at}.analyze.class_confidence"),
            )?,
            startup_grace_s: cam.startup_grace_s,
            reclaim_after_s: cam.reclaim_after_s,
            owner_radius: 1.5,
            background: BackgroundConfig {
                threshold: cam.change_threshold as f32,
                colour_threshold: cam.colour_threshold as f32,
                shake_compensation: cam.shake_compensation,
                ..BackgroundConfig::default()
            },
            tracker: TrackerConfig::default(),
            sampling: SamplingConfig {
                active_fps: cam.active_fps,
                active_hold_s: cam.active_hold_s,
                idle_refresh_s: cam.idle_refresh_s,
                gate_change_share: cam.gate_change_share as f32,
                ..SamplingConfig::default()
            },
            class_names: class_names.to_vec(),
        })
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::*;
    use crate::config::CamerasFile;

    fn names() -> Vec<String> {
        ["person", "car", "suitcase", "couch"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    #[test]
    fn zones_get_their_own_rules_and_classes_become_ids() {
        let f: CamerasFile = toml::from_str(
            r#"
[[cameras]]
id = "c"
url = "rtsp://h/x"
[cameras.analyze]
dwell_s = 20
active_fps = 3
dumpable_classes = ["suitcase"]
actor_classes = ["person", "car"]
[[cameras.zones]]
name = "road"
polygon = [[0, 0], [1, 0], [1, 1]]
[cameras.zones.analyze]
dumpable_classes = ["couch"]
class_confidence = { couch = 0.6 }
[[cameras.zones]]
name = "lane"
polygon = [[0, 0], [1, 1], [0, 1]]
"#,
        )
        .unwrap();
        let service = crate::config::AnalyzeConfig {
            class_confidence: [("suitcase".to_owned(), 0.4)].into(),
            ..Default::default()
        };
        let cfg = AnalyzerConfig::resolve(&service, &f.cameras[0], &names(), "cameras[0]").unwrap();
        assert_eq!(cfg.zones.len(), 2);
        assert_eq!(cfg.zones[0].dumpable, vec![false, false, false, true]);
        assert_eq!(cfg.zones[0].min_score[3], 0.6);
        assert_eq!(cfg.zones[0].min_score[2], 0.4, "service-wide score kept");
        assert_eq!(cfg.zones[1].dumpable, vec![false, false, true, false]);
        assert_eq!(cfg.zones[1].dwell_s, 20.0);
        assert_eq!(cfg.actor, vec![true, true, false, false]);
        assert_eq!(cfg.vehicle, vec![false, true, false, false]);
        assert_eq!(cfg.sampling.active_fps, 3.0);
    }

    #[test]
    fn an_unknown_class_names_its_place() {
        let f: CamerasFile = toml::from_str(
            "[[cameras]]\nid = \"c\"\nurl = \"rtsp://h/x\"\n[[cameras.zones]]\nname = \"z\"\npolygon = [[0, 0], [1, 0], [1, 1]]\n[cameras.zones.analyze]\ndumpable_classes = [\"garbage\"]\n",
        )
        .unwrap();
        let e = AnalyzerConfig::resolve(&Default::default(), &f.cameras[0], &names(), "cameras[0]")
            .unwrap_err();
        assert_eq!(e.path, "cameras[0].zones[0].analyze.dumpable_classes");
        assert!(e.to_string().contains("unknown class \"garbage\""), "{e}");
    }
}
