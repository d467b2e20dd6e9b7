//! The `[analyze]` settings: how dumping is decided and how cameras are sampled. Service-wide
//! defaults in `dumpwatch.toml`; a camera (`[cameras.analyze]`) and a zone
//! (`[cameras.zones.analyze]`) override any of them (a zone only the per-zone ones).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// COCO classes that are dumped objects by default when they stay.
pub const DEFAULT_DUMPABLE: &[&str] = &[
    "suitcase",
    "backpack",
    "handbag",
    "couch",
    "chair",
    "bed",
    "tv",
    "refrigerator",
    "toilet",
    "microwave",
    "oven",
];
/// COCO classes that are actors by default.
pub const DEFAULT_ACTORS: &[&str] = &["person", "bicycle", "motorcycle", "car", "truck", "bus"];

/// Dumping rules and sampling. Every field has a default; times are in seconds, areas are shares
/// of the frame area (0..1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyzeConfig {
    /// An object must stay unattended this long before an incident is raised. Default 30.
    pub dwell_s: f64,
    /// Every object of an incident must be gone this long before it is cleared. Default 30.
    pub clear_after_s: f64,
    /// After an incident is raised or cleared in a zone, a new object at the same spot within
    /// this many seconds is the same pile (an update) or a repeat (nothing), not a new incident.
    /// Default 120.
    pub cooldown_s: f64,
    /// Smallest object, as a share of the frame area. Default 0.001 (≈ 30 × 30 px at 720p).
    pub min_object_area: f64,
    /// Largest object, as a share of the frame area. Default 0.15.
    pub max_object_area: f64,
    /// Detector classes that are dumped objects when they stay (class-agnostic static
    /// foreground is always used as well). Default: suitcase, backpack, handbag, couch, chair,
    /// bed, tv, refrigerator, toilet, microwave, oven.
    pub dumpable_classes: Vec<String>,
    /// Detector classes that are actors (they carry and leave things; vehicles park). Default:
    /// person, bicycle, motorcycle, car, truck, bus.
    pub actor_classes: Vec<String>,
    /// Least detector score per class name for the analyzer (on top of `model.confidence`),
    /// e.g. `{ suitcase = 0.5 }`.
    pub class_confidence: BTreeMap<String, f32>,
    /// Detector runs per second on an active camera. Default 2.
    pub active_fps: f64,
    /// An active camera goes back to idle after this long without activity. Default 10.
    pub active_hold_s: f64,
    /// An idle camera's keyframe is decoded and analysed at least this often, seconds, moving or
    /// not (with the detector only when the scene changed; otherwise with the last detections).
    /// Default 30.
    pub idle_refresh_s: f64,
    /// Scene-change gate of idle cameras: share of the downscaled picture that must change
    /// before the detector runs. Default 0.003.
    pub gate_change_share: f64,
    /// Static things during the first seconds after a camera starts are the scene, never
    /// dumped objects. Default 10.
    pub startup_grace_s: f64,
    /// A pending object gone this long before its dwell ends was taken away again (no
    /// incident). Default 5.
    pub reclaim_after_s: f64,
    /// Grey-level difference (0..255, on the analyzer's 160-px-wide grid) between a spot and
    /// how it looked minutes ago that counts as something new there. Lower finds fainter
    /// objects (a white sack on light concrete) and risks more false alarms from light and
    /// compression. Default 12 (chosen with `eval --sweep change_threshold=10:16:1` on the
    /// development set, docs/evaluation.md).
    pub change_threshold: f64,
    /// Colour difference (|ΔU| + |ΔV| of the picture's chroma, on the same grid) between a spot
    /// and how it looked minutes ago that counts as something new there: finds waste that is
    /// about as bright as the ground but of another colour (grey rubble or a blue bag on grass).
    /// Default 12.
    pub colour_threshold: f64,
    /// Follow a shaking camera (a pole in the wind): each picture's shift against the background
    /// is found; once 3 of the last 5 pictures were shifted, shifts are undone before comparing,
    /// and while it shakes a spot is new only if it differs from its neighbours' background too.
    /// Turns the false alarms of a shaking camera's edges into none (docs/evaluation.md, "Shake
    /// set"); costs about 0.6 ms a picture; a still camera is compared as it is. Per camera.
    /// Default true.
    pub shake_compensation: bool,
}

impl Default for AnalyzeConfig {
    fn default() -> Self {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        AnalyzeConfig {
            dwell_s: 30.0,
            clear_after_s: 30.0,
            cooldown_s: 120.0,
            min_object_area: 0.001,
            max_object_area: 0.15,
            dumpable_classes: names(DEFAULT_DUMPABLE),
            actor_classes: names(DEFAULT_ACTORS),
            class_confidence: BTreeMap::new(),
            active_fps: 2.0,
            active_hold_s: 10.0,
            idle_refresh_s: 30.0,
            gate_change_share: 0.003,
            startup_grace_s: 10.0,
            reclaim_after_s: 5.0,
            change_threshold: 12.0,
            colour_threshold: 12.0,
            shake_compensation: true,
        }
    }
}

/// Overrides of [`AnalyzeConfig`] for one camera or one zone; an absent field keeps the value
/// from the level above (service → camera → zone).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeOverrides {
    /// See [`AnalyzeConfig::dwell_s`].
    pub dwell_s: Option<f64>,
    /// See [`AnalyzeConfig::clear_after_s`].
    pub clear_after_s: Option<f64>,
    /// See [`AnalyzeConfig::cooldown_s`].
    pub cooldown_s: Option<f64>,
    /// See [`AnalyzeConfig::min_object_area`].
    pub min_object_area: Option<f64>,
    /// See [`AnalyzeConfig::max_object_area`].
    pub max_object_area: Option<f64>,
    /// See [`AnalyzeConfig::dumpable_classes`].
    pub dumpable_classes: Option<Vec<String>>,
    /// See [`AnalyzeConfig::actor_classes`]. Per camera only.
    pub actor_classes: Option<Vec<String>>,
    /// See [`AnalyzeConfig::class_confidence`]; merged into the level above name by name.
    pub class_confidence: Option<BTreeMap<String, f32>>,
    /// See [`AnalyzeConfig::active_fps`]. Per camera only.
    pub active_fps: Option<f64>,
    /// See [`AnalyzeConfig::active_hold_s`]. Per camera only.
    pub active_hold_s: Option<f64>,
    /// See [`AnalyzeConfig::idle_refresh_s`]. Per camera only.
    pub idle_refresh_s: Option<f64>,
    /// See [`AnalyzeConfig::gate_change_share`]. Per camera only.
    pub gate_change_share: Option<f64>,
    /// See [`AnalyzeConfig::startup_grace_s`]. Per camera only.
    pub startup_grace_s: Option<f64>,
    /// See [`AnalyzeConfig::reclaim_after_s`]. Per camera only.
    pub reclaim_after_s: Option<f64>,
    /// See [`AnalyzeConfig::change_threshold`]. Per camera only.
    pub change_threshold: Option<f64>,
    /// See [`AnalyzeConfig::colour_threshold`]. Per camera only.
    pub colour_threshold: Option<f64>,
    /// See [`AnalyzeConfig::shake_compensation`]. Per camera only.
    pub shake_compensation: Option<bool>,
}

macro_rules! override_fields {
    ($from:expr, $into:expr; $($field:ident),*) => {
        $( if let Some(v) = &$from.$field { $into.$field = v.clone(); } )*
    };
}

impl AnalyzeOverrides {
    /// Names of the set fields that only make sense per camera (a zone may not set them).
    pub fn camera_only_fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut check = |set: bool, name| {
            if set {
                out.push(name);
            }
        };
        check(self.actor_classes.is_some(), "actor_classes");
        check(self.active_fps.is_some(), "active_fps");
        check(self.active_hold_s.is_some(), "active_hold_s");
        check(self.idle_refresh_s.is_some(), "idle_refresh_s");
        check(self.gate_change_share.is_some(), "gate_change_share");
        check(self.startup_grace_s.is_some(), "startup_grace_s");
        check(self.reclaim_after_s.is_some(), "reclaim_after_s");
        check(self.change_threshold.is_some(), "change_threshold");
        check(self.colour_threshold.is_some(), "colour_threshold");
        check(self.shake_compensation.is_some(), "shake_compensation");
        out
    }

    /// `base` with these overrides applied.
    pub fn apply(&self, base: &AnalyzeConfig) -> AnalyzeConfig {
        let mut out = base.clone();
        override_fields!(self, out; dwell_s, clear_after_s, cooldown_s, min_object_area, max_object_area,
            dumpable_classes, actor_classes, active_fps, active_hold_s, idle_refresh_s, gate_change_share,
            startup_grace_s, reclaim_after_s, change_threshold, colour_threshold, shake_compensation);
        if let Some(extra) = &self.class_confidence {
            out.class_confidence
                .extend(extra.iter().map(|(k, v)| (k.clone(), *v)));
        }
        out
    }
}

impl From<&AnalyzeConfig> for AnalyzeOverrides {
    /// Every field set: used to validate the service-wide section like an override.
    fn from(c: &AnalyzeConfig) -> Self {
        AnalyzeOverrides {
            dwell_s: Some(c.dwell_s),
            clear_after_s: Some(c.clear_after_s),
            cooldown_s: Some(c.cooldown_s),
            min_object_area: Some(c.min_object_area),
            max_object_area: Some(c.max_object_area),
            dumpable_classes: Some(c.dumpable_classes.clone()),
            actor_classes: Some(c.actor_classes.clone()),
            class_confidence: Some(c.class_confidence.clone()),
            active_fps: Some(c.active_fps),
            active_hold_s: Some(c.active_hold_s),
            idle_refresh_s: Some(c.idle_refresh_s),
            gate_change_share: Some(c.gate_change_share),
            startup_grace_s: Some(c.startup_grace_s),
            reclaim_after_s: Some(c.reclaim_after_s),
            change_threshold: Some(c.change_threshold),
            colour_threshold: Some(c.colour_threshold),
            shake_compensation: Some(c.shake_compensation),
        }
    }
}

/// A fixture mask: nothing inside it (a bin, a bench, a kiosk) is ever a dumped object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// What it masks (e.g. `bins`), for people reading the file.
    pub name: String,
    /// Outline in normalised coordinates, like a zone's.
    pub polygon: crate::geometry::Polygon,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_level_by_level() {
        let service = AnalyzeConfig {
            class_confidence: BTreeMap::from([("chair".into(), 0.6)]),
            ..AnalyzeConfig::default()
        };
        let camera: AnalyzeOverrides =
            toml::from_str("dwell_s = 20\nactive_fps = 4\n[class_confidence]\nsuitcase = 0.5")
                .unwrap();
        let zone: AnalyzeOverrides =
            toml::from_str("dwell_s = 60\ndumpable_classes = [\"couch\"]").unwrap();
        let cam = camera.apply(&service);
        let z = zone.apply(&cam);
        assert_eq!((cam.dwell_s, cam.active_fps), (20.0, 4.0));
        assert_eq!(z.dwell_s, 60.0);
        assert_eq!(z.dumpable_classes, vec!["couch".to_owned()]);
        assert_eq!(z.class_confidence.len(), 2, "merged name by name");
        assert!(zone.camera_only_fields().is_empty());
        assert_eq!(camera.camera_only_fields(), vec!["active_fps"]);
    }

    #[test]
    fn empty_section_is_the_defaults_and_unknown_fields_are_named() {
        assert_eq!(
            toml::from_str::<AnalyzeConfig>("").unwrap(),
            AnalyzeConfig::default()
        );
        let e = toml::from_str::<AnalyzeOverrides>("dwel_s = 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dwel_s"), "{e}");
    }
}
