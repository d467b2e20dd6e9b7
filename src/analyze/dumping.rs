//! The per-camera analyzer: turns tracks and static foreground into dumping incidents.
//!
//! Candidate life cycle, per watched zone:
//! 1. **appeared** — static foreground (or a dumpable detection that stopped moving) shows up in
//!    a zone, not under an actor, not in a mask, not where a parked vehicle stood. Its owner is the
//!    nearest actor at that moment; its appearance time is estimated back from how long the
//!    background model takes to settle.
//! 2. **unattended** — the owner is gone or far (more than `owner_radius` actor heights away).
//!    An owner who walks off within [`SETTLING_S`] of putting the thing down left it when it
//!    appeared (putting down, straightening up and turning away is one act); one who stays
//!    longer is with it, and it is unattended from when they leave. An owner who left is back
//!    with it only when they stay within reach of it again.
//! 3. **abandoned** — unattended for `dwell_s`: an incident is **raised**; or, if an open incident
//!    of the zone covers the spot, it is **updated** (the pile grew); or, if one was cleared there
//!    less than `cooldown_s` ago, nothing (a repeat).
//! 4. **cleared** — every object of the incident gone for `clear_after_s`: the incident is
//!    **cleared**, with an "after" picture.
//!
//! A candidate gone for `reclaim_after_s` before its dwell ends was taken away (reclaimed): no
//! incident. Things that are static during the first `startup_grace_s` are the scene.
//!
//! Presence of an object is decided per picture: under an actor's box it is *occluded* (no
//! verdict); static foreground inside its box means *present*; otherwise its patch of the grey
//! picture is compared with the patch taken when it appeared and with the background behind it
//! (both after removing the mean, so a global brightness change does not decide anything).
//! While an object is followed, the long-term background under it is held, so it is never learned
//! into the scene however long it stays.

mod carry;

use std::collections::VecDeque;

use tracing::debug;

use super::background::{
    BackgroundModel, BackgroundUpdate, Held, Layer, Patch, StaticBlob, time_to_static,
};
use super::grey::GreyFrame;
use super::track::{Track, Tracker};
use super::view::{View, ViewWatch};
use super::{
    ActorSighting, AnalyzerConfig, Event, EventKind, EventObject, FrameRef, FrameRole, Output,
};
use crate::detection::Detection;
use crate::geometry::{BBox, Point};

pub use carry::{NotCarried, OpenSpot, SpotObject};

/// Margin around an object's box for its patches, as a share of its size: the patch shows the
/// object against its surroundings, so a flat-coloured object is still recognisable after the
/// mean is removed.
const PATCH_MARGIN: f32 = 0.5;
/// How much better one patch must match than the other for a verdict.
const PATCH_RATIO: f32 = 0.75;
/// Least difference (grey levels) between the two patch distances for an "absent" verdict.
const PATCH_MIN_GAP: f32 = 4.0;
/// An actor box covering this share of an object's box hides it.
const OCCLUDED_SHARE: f32 = 0.3;
/// Actors seen within this many seconds count as present (a detection missed now and then).
const ACTOR_RECENT_S: f64 = 2.0;
/// At start-up, static foreground within this share of an actor's box size of the box (a
/// person's legs or shadow beyond the detector's box) is not learned as the scene while the
/// actor is there.
const STARTUP_ACTOR_MARGIN: f32 = 0.25;
/// At start-up, static foreground is learned as the scene only once no actor has been by it
/// for this many seconds (a standing person the detector misses now and then is still there).
const STARTUP_FREE_S: f64 = 4.0;
/// A pending object needs this many sightings before it can be abandoned.
const MIN_SIGHTINGS: u32 = 3;
/// A vehicle track this old and still leaves a footprint: when it drives away, the background it
/// uncovers is not a dumped object.
const FOOTPRINT_MIN_S: f64 = 30.0;
/// How long a footprint is remembered after its vehicle was last seen.
const FOOTPRINT_MEMORY_S: f64 = 120.0;
/// An owner moving slower than this many of their own heights per second stays with the object;
/// faster, they are walking away from it (a walking person covers about 0.8 heights a second).
const LINGER_SPEED: f32 = 0.4;
/// An owner who leaves within this many seconds of the object appearing left it when it
/// appeared: the unattended time counts from the appearance.
pub const SETTLING_S: f64 = 15.0;
/// A lingering actor whose box overlaps the owner's last box near the object by this much (IoU)
/// is the owner found again under a new track (the detector missed them for longer than a track
/// lives).
const SAME_PLACE_IOU: f32 = 0.3;
/// An owner who left must stay by their object this long to be back with it.
const OWNER_BACK_S: f64 = 3.0;
/// An owner who left is back with their object only within this many of their own heights of
/// it: standing by it, within reach. Someone who stops a few steps off (within `owner_radius`)
/// is waiting nearby, not taking care of it, and does not restart the dwell.
const OWNER_REACH: f32 = 0.5;
/// A pending object seen more fully (someone had hidden part of it) grows to at most this many
/// times the area it had when found: more is the scene around it changing, not the object.
const MAX_GROWTH: f32 = 4.0;
/// Static blobs say an object is still there only if together they cover this share of the
/// object's box: a person pausing on a corner of a large box is not the object.
const PRESENT_SHARE: f32 = 0.3;
/// Seconds an object must be seen in a grown box before that box is its core (see
/// `Candidate::core`).
const CORE_CONFIRM_S: f64 = 5.0;
/// At most this many candidates per camera (the oldest pending one makes room).
const MAX_CANDIDATES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for its dwell.
    Pending,
    /// Part of an incident (raised, or added to one as growth).
    InIncident(u64),
    /// Abandoned at the spot of a recently cleared incident: followed, never reported.
    Suppressed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    Present,
    /// Its last growth is gone (people who paused beside it, the scene around it changing), the
    /// box it had before is still there.
    PresentAsCore,
    Absent,
    Occluded,
    Unknown,
}

#[derive(Clone, Debug)]
struct Owner {
    track: u64,
    class_id: usize,
    bbox: BBox,
    last_near: f64,
}

#[derive(Clone, Debug)]
struct Candidate {
    zone: usize,
    bbox: BBox,
    class: Option<(usize, f32)>,
    contrast: f32,
    appeared_at: f64,
    sightings: u32,
    absent_since: Option<f64>,
    owner: Option<Owner>,
    unattended_since: Option<f64>,
    /// Since when the owner has been near again, after leaving.
    owner_back_since: Option<f64>,
    /// Whether the owner came back after leaving (their next leaving counts from then).
    owner_returned: bool,
    before_patch: Patch,
    object_patch: Patch,
    patch_box: BBox,
    /// Area of its box when it was found (source pixels²): limits how far it grows while pending.
    found_area: f32,
    /// The last box it was seen in for [`CORE_CONFIRM_S`]: where it shrinks back to when a
    /// growth since then does not stay.
    core: BBox,
    /// When its box last changed.
    reshaped_at: f64,
    state: State,
    /// Pictures kept for this candidate (before, actor).
    frames: Vec<FrameRef>,
    /// Carried from another analyzer (see [`carry`]): judged by its patches only, since this
    /// analyzer's background learned it as part of the scene.
    carried: bool,
}

#[derive(Clone, Debug)]
struct Incident {
    id: u64,
    zone: usize,
    bbox: BBox,
    appeared_at: f64,
    unattended_since: f64,
    confidence: f32,
    actor: Option<ActorSighting>,
    /// Before, actor and event pictures (kept until the incident closes).
    frames: Vec<FrameRef>,
    closed_at: Option<f64>,
}

/// An analysed picture remembered for [`Analyzer::HISTORY_S`]: who stood where, and the grey grid.
#[derive(Clone, Debug)]
struct Moment {
    at: f64,
    actors: Vec<(u64, usize, BBox)>,
    cells: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Footprint {
    bbox: BBox,
    last_seen: f64,
}

/// An object being followed (see [`Analyzer::followed`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Followed {
    /// Its box, source pixels.
    pub bbox: BBox,
    /// When it was put down (estimated).
    pub appeared_at: f64,
    /// `pending`, `incident` or `repeat`.
    pub state: &'static str,
    /// Pictures in which it was seen.
    pub sightings: u32,
    /// Whether its owner is still near.
    pub owner_near: bool,
    /// Since when it has been missing, if it is.
    pub absent_since: Option<f64>,
    /// Mean grey level inside its box now, and of the long-term background there in the
    /// current picture's light (what the picture is compared with).
    pub grey_now_vs_background: (f32, f32),
    /// Mean chroma (U, V) inside its box now and of the long-term background there; `None` for
    /// a grey picture.
    pub chroma_now_vs_background: Option<([f32; 2], [f32; 2])>,
}

/// What new settings did to an analyzer.
#[derive(Clone, Debug, PartialEq)]
pub enum Reconfigured {
    /// Same zones and masks: thresholds changed, everything followed is kept.
    Kept,
    /// Zones or masks changed: the analyzer started over, carrying its open incidents.
    Restarted {
        /// Open incidents followed on: (number before, number now).
        carried: Vec<(u64, u64)>,
        /// Open incidents that could not be followed on, and why (they stay open in the store
        /// until reviewed).
        dropped: Vec<(u64, NotCarried)>,
    },
}

/// One camera's dumping analyzer.
#[derive(Debug)]
pub struct Analyzer {
    cfg: AnalyzerConfig,
    tracker: Tracker,
    background: BackgroundModel,
    started_at: Option<f64>,
    /// Time of the last picture, observed or seen by the background channel alone.
    last_at: Option<f64>,
    /// Time of the last picture observed with its detections.
    last_observed: Option<f64>,
    history: VecDeque<Moment>,
    frame: (f32, f32),
    candidates: Vec<Candidate>,
    incidents: Vec<Incident>,
    footprints: Vec<Footprint>,
    fixtures: Vec<BBox>,
    next_incident: u64,
    /// A picture seen by the background channel alone re-learned the scene: reported with the
    /// next observed picture ([`Output::scene_change`]).
    scene_changed: bool,
    /// During the start-up grace, the actors' boxes (grown by [`STARTUP_ACTOR_MARGIN`]) of the
    /// last [`STARTUP_FREE_S`], with when each was seen: nothing by them is learned as the scene.
    startup_actors: Vec<(f64, BBox)>,
    /// Whether the camera still sees its home view.
    view: ViewWatch,
}

impl Analyzer {
    /// How far back (seconds) [`Output::keep`] may refer: the caller keeps the pictures it gave
    /// the analyzer over this long.
    pub const HISTORY_S: f64 = 20.0;

    /// A fresh analyzer.
    pub fn new(cfg: AnalyzerConfig) -> Self {
        Analyzer {
            tracker: Tracker::new(cfg.tracker.clone()),
            background: BackgroundModel::new(cfg.background.clone()),
            cfg,
            started_at: None,
            last_at: None,
            last_observed: None,
            history: VecDeque::new(),
            frame: (1.0, 1.0),
            candidates: Vec::new(),
            incidents: Vec::new(),
            footprints: Vec::new(),
            fixtures: Vec::new(),
            next_incident: 1,
            scene_changed: false,
            startup_actors: Vec::new(),
            view: ViewWatch::new(),
        }
    }

    /// What the camera sees against its home view, and since when (seconds).
    pub fn view(&self) -> (View, f64) {
        self.view.view()
    }

    /// The share of the home view's edges in place in the latest picture (see [`super::view`]).
    pub fn view_similarity(&self) -> f32 {
        self.view.similarity()
    }

    /// Takes new settings. When the zones, masks, classes and background grid are the same,
    /// thresholds change in place and everything followed is kept; otherwise the analyzer starts
    /// over as if new, and goes on following its open incidents (see [`Analyzer::carry`]).
    pub fn reconfigure(&mut self, cfg: AnalyzerConfig) -> Reconfigured {
        let same_layout = cfg.zones.len() == self.cfg.zones.len()
            && cfg
                .zones
                .iter()
                .zip(&self.cfg.zones)
                .all(|(a, b)| a.name == b.name && a.polygon == b.polygon)
            && cfg.masks == self.cfg.masks
            && cfg.class_names == self.cfg.class_names
            && cfg.background.grid_width == self.cfg.background.grid_width;
        if same_layout {
            self.tracker.reconfigure(cfg.tracker.clone());
            self.background.reconfigure(cfg.background.clone());
            self.cfg = cfg;
            Reconfigured::Kept
        } else {
            let spots = self.open_spots();
            *self = Analyzer::new(cfg);
            let (mut carried, mut dropped) = (Vec::new(), Vec::new());
            for (before, spot) in spots {
                match self.carry(&spot) {
                    Ok(now) => carried.push((before, now)),
                    Err(why) => dropped.push((before, why)),
                }
            }
            Reconfigured::Restarted { carried, dropped }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AnalyzerConfig {
        &self.cfg
    }

    /// Number of objects being followed (pending or in an incident).
    pub fn candidates(&self) -> usize {
        self.candidates.len()
    }

    /// The objects being followed, for diagnostics (`replay --trace`).
    pub fn followed(&self) -> Vec<Followed> {
        self.candidates
            .iter()
            .map(|c| Followed {
                bbox: c.bbox,
                appeared_at: c.appeared_at,
                state: match c.state {
                    State::Pending => "pending",
                    State::InIncident(_) => "incident",
                    State::Suppressed => "repeat",
                },
                sightings: c.sightings,
                owner_near: c.unattended_since.is_none(),
                absent_since: c.absent_since,
                grey_now_vs_background: (
                    self.background
                        .patch(Layer::Current, &c.bbox, 0.0)
                        .mean_luma(),
                    self.background
                        .patch(Layer::LongTerm, &c.bbox, 0.0)
                        .mean_luma()
                        * self.background.light().0
                        + self.background.light().1,
                ),
                chroma_now_vs_background: self
                    .background
                    .patch(Layer::Current, &c.bbox, 0.0)
                    .mean_chroma()
                    .zip(
                        self.background
                            .patch(Layer::LongTerm, &c.bbox, 0.0)
                            .mean_chroma(),
                    ),
            })
            .collect()
    }

    /// When the earliest object still pending (not yet raised) was first seen, unix seconds:
    /// the camera's video from then on is kept for its clip.
    pub fn earliest_pending(&self) -> Option<f64> {
        self.candidates
            .iter()
            .filter(|c| matches!(c.state, State::Pending))
            .map(|c| c.appeared_at)
            .min_by(f64::total_cmp)
    }

    /// Number of open incidents.
    pub fn open_incidents(&self) -> usize {
        self.incidents
            .iter()
            .filter(|i| i.closed_at.is_none())
            .count()
    }

    /// Analyses the picture taken at `now` (seconds, on any clock that does not jump back; an
    /// earlier time is taken as the last one): its detections (source pixels) and its downscaled
    /// grey version. Handle the returned events before the releases.
    pub fn observe(&mut self, now: f64, detections: &[Detection], grey: &GreyFrame) -> Output {
        let now = self.last_at.map_or(now, |last| now.max(last));
        self.last_at = Some(now);
        self.last_observed = Some(now);
        let started = *self.started_at.get_or_insert(now);
        self.frame = (
            grey.source_width.max(1) as f32,
            grey.source_height.max(1) as f32,
        );
        let mut out = Output::default();

        let usable: Vec<Detection> = detections
            .iter()
            .filter(|d| {
                self.cfg
                    .min_score
                    .get(d.class_id)
                    .is_some_and(|m| d.score >= *m)
            })
            .cloned()
            .collect();
        let tracks: Vec<Track> = self.tracker.update(now, &usable).to_vec();
        let max_predict = self.cfg.tracker.max_predict_s;
        let actors: Vec<(Track, BBox)> = tracks
            .iter()
            .filter(|t| self.is_actor(t.class_id) && now - t.last_seen <= ACTOR_RECENT_S)
            .map(|t| (t.clone(), t.predicted(now, max_predict)))
            .collect();
        self.update_footprints(now, &tracks);

        let mut hold = self.held_boxes(actors.iter().map(|(_, b)| *b));
        // Every actor detection, tracked or not (a low score still marks a person).
        hold.actors.extend(
            usable
                .iter()
                .filter(|d| self.is_actor(d.class_id))
                .map(|d| d.bbox.grown(0.1)),
        );
        out.scene_change = std::mem::take(&mut self.scene_changed);
        let mut blobs = match self.background.update(now, grey, &hold) {
            BackgroundUpdate::Learned => vec![],
            BackgroundUpdate::GlobalChange { .. } => {
                out.scene_change = true;
                vec![]
            }
            BackgroundUpdate::Blobs(b) => b,
        };
        out.view = self.view.observe(
            now,
            self.background.cells(Layer::Current),
            self.background.cells(Layer::LongTerm),
            self.background.grid(),
            now - started >= self.cfg.startup_grace_s,
        );
        if out.view.is_some_and(View::is_lost) {
            // What was pending cannot be watched to its dwell: given up. Open incidents stay.
            let (pending, kept): (Vec<Candidate>, Vec<Candidate>) =
                std::mem::take(&mut self.candidates)
                    .into_iter()
                    .partition(|c| c.state == State::Pending);
            self.candidates = kept;
            out.release
                .extend(pending.iter().flat_map(|c| c.frames.iter().map(|f| f.at)));
        }

        self.history.push_back(Moment {
            at: now,
            actors: tracks
                .iter()
                .filter(|t| self.is_actor(t.class_id) && t.last_seen >= now)
                .map(|t| (t.id, t.class_id, t.bbox))
                .collect(),
            cells: self.background.current_cells(),
        });
        while self
            .history
            .front()
            .is_some_and(|m| m.at < now - Self::HISTORY_S)
        {
            self.history.pop_front();
        }

        if now - started < self.cfg.startup_grace_s {
            // Whatever is static now was there before the camera started: it is the scene. Not
            // what stands by an actor, or did a moment ago (a person waiting there: their legs,
            // their shadow, beyond the detector's box, or while the detector missed them): not
            // the ground; learned once the actors have been away from it for a while.
            let by_actors: Vec<(f64, BBox)> = actors
                .iter()
                .map(|(_, a)| *a)
                .chain(
                    usable
                        .iter()
                        .filter(|d| self.is_actor(d.class_id))
                        .map(|d| d.bbox),
                )
                .map(|a| (now, a.grown(STARTUP_ACTOR_MARGIN)))
                .collect();
            self.startup_actors.extend(by_actors);
            self.startup_actors
                .retain(|(seen, _)| now - seen < STARTUP_FREE_S);
            for b in blobs.drain(..) {
                if !self
                    .startup_actors
                    .iter()
                    .any(|(_, a)| b.bbox.intersection_area(a) > 0.0)
                {
                    self.background.relearn(&b.bbox);
                }
            }
            let seen: Vec<BBox> = tracks
                .iter()
                .filter(|t| self.is_dumpable_anywhere(t.class_id))
                .map(|t| t.bbox)
                .collect();
            for b in seen {
                if !self.fixtures.iter().any(|f| f.iou(&b) > 0.5) {
                    self.fixtures.push(b);
                }
            }
        } else if !self.startup_actors.is_empty() {
            self.startup_actors = Vec::new();
        }

        if !self.view.in_doubt() {
            self.update_presence(now, &blobs, &actors);
            self.grow_and_discover(now, &mut blobs, &actors, &mut out);
            self.discover_dumpable_detections(now, &tracks, &actors, &mut out);
            self.update_attendance(now, &tracks);
            self.advance(now, &mut out);
            self.clear_incidents(now, &mut out);
        }
        // Moved or covered, or looking so: the zones may not fit what the camera sees. Nothing
        // is found, raised or cleared; what is followed waits for the home view.

        out.incident_open = self
            .candidates
            .iter()
            .any(|c| matches!(c.state, State::InIncident(_)));
        out.active = self.candidates.iter().any(|c| c.state == State::Pending)
            || actors
                .iter()
                .any(|(t, b)| now - t.last_seen <= 1.0 && self.near_a_zone(b));
        out
    }

    /// Feeds a picture taken at `now` that the detector had no share for to the background
    /// model only (the grey channel: cheap, so it runs on every picture the camera's sampler
    /// analyses, whatever the detector can grant). Its light, its shake and its short-term
    /// background are followed between detections; objects are found, and their owners
    /// judged, only on pictures with detections ([`Analyzer::observe`]), so the followed
    /// objects and the actors last seen (where the tracker expects them now) keep their
    /// long-term background. Ignored before the first observed picture and when earlier than
    /// the last one.
    pub fn observe_background(&mut self, now: f64, grey: &GreyFrame) {
        if self.last_at.is_none_or(|last| now < last) {
            return;
        }
        self.last_at = Some(now);
        let max_predict = self.cfg.tracker.max_predict_s;
        // The actors of the last detected picture, wherever the tracker expects them now.
        let observed = self.last_observed.unwrap_or(now);
        let hold = self.held_boxes(
            self.tracker
                .tracks()
                .iter()
                .filter(|t| self.is_actor(t.class_id) && observed - t.last_seen <= ACTOR_RECENT_S)
                .map(|t| t.predicted(now, max_predict)),
        );
        if let BackgroundUpdate::GlobalChange { .. } = self.background.update(now, grey, &hold) {
            self.scene_changed = true;
        }
    }

    /// The boxes whose long-term background is kept (see [`BackgroundModel::update`]): every
    /// followed object with its patch, and each of `actors` grown by a tenth.
    fn held_boxes(&self, actors: impl Iterator<Item = BBox>) -> Held {
        Held {
            objects: self
                .candidates
                .iter()
                .map(|c| c.patch_box.union(&c.bbox))
                .collect(),
            actors: actors.map(|b| b.grown(0.1)).collect(),
        }
    }

    fn is_actor(&self, class_id: usize) -> bool {
        self.cfg.actor.get(class_id).copied().unwrap_or(false)
    }

    fn is_vehicle(&self, class_id: usize) -> bool {
        self.cfg.vehicle.get(class_id).copied().unwrap_or(false)
    }

    fn is_dumpable_anywhere(&self, class_id: usize) -> bool {
        self.cfg
            .zones
            .iter()
            .any(|z| z.dumpable.get(class_id).copied().unwrap_or(false))
    }

    fn normalised(&self, (x, y): (f32, f32)) -> Point {
        Point {
            x: f64::from(x / self.frame.0),
            y: f64::from(y / self.frame.1),
        }
    }

    /// The first zone holding the box's bottom-centre.
    fn zone_of(&self, b: &BBox) -> Option<usize> {
        let p = self.normalised(b.bottom_centre());
        self.cfg.zones.iter().position(|z| z.polygon.contains(p))
    }

    fn masked(&self, b: &BBox) -> bool {
        let p = self.normalised(b.centre());
        self.cfg.masks.iter().any(|m| m.contains(p))
    }

    /// Whether an actor's box is in a zone or within a tenth of the frame of one's outline box.
    fn near_a_zone(&self, b: &BBox) -> bool {
        let p = self.normalised(b.bottom_centre());
        self.cfg.zones.iter().any(|z| {
            if z.polygon.contains(p) {
                return true;
            }
            let xs = z.polygon.0.iter().map(|q| q.x);
            let ys = z.polygon.0.iter().map(|q| q.y);
            let (x0, x1) = (
                xs.clone().fold(f64::INFINITY, f64::min),
                xs.fold(f64::NEG_INFINITY, f64::max),
            );
            let (y0, y1) = (
                ys.clone().fold(f64::INFINITY, f64::min),
                ys.fold(f64::NEG_INFINITY, f64::max),
            );
            p.x >= x0 - 0.1 && p.x <= x1 + 0.1 && p.y >= y0 - 0.1 && p.y <= y1 + 0.1
        })
    }

    fn update_footprints(&mut self, now: f64, tracks: &[Track]) {
        let startup = self.started_at.unwrap_or(now) + self.cfg.startup_grace_s;
        let vehicles: Vec<&Track> = tracks
            .iter()
            .filter(|t| self.is_vehicle(t.class_id))
            .collect();
        for t in vehicles {
            let still =
                t.velocity.0.hypot(t.velocity.1) < 0.05 * t.bbox.width().max(t.bbox.height());
            if still && (t.age(now) >= FOOTPRINT_MIN_S || t.first_seen <= startup) {
                match self
                    .footprints
                    .iter_mut()
                    .find(|f| f.bbox.iou(&t.bbox) > 0.5)
                {
                    Some(f) => {
                        f.bbox = t.bbox;
                        f.last_seen = t.last_seen;
                    }
                    None => self.footprints.push(Footprint {
                        bbox: t.bbox,
                        last_seen: t.last_seen,
                    }),
                }
            }
        }
        self.footprints
            .retain(|f| now - f.last_seen <= FOOTPRINT_MEMORY_S);
    }

    fn presence(&self, c: &Candidate, blobs: &[StaticBlob], actors: &[(Track, BBox)]) -> Presence {
        if actors
            .iter()
            .any(|(_, a)| c.bbox.covered_by(a) >= OCCLUDED_SHARE)
        {
            return Presence::Occluded;
        }
        if c.carried {
            return self.presence_by_patches(c);
        }
        // A faint object (or one just after a change of light) may show as several pieces.
        let covered_by_blobs = |bbox: &BBox| {
            let area = bbox.grown(0.25);
            let covered: f32 = blobs
                .iter()
                .filter(|b| b.bbox.covered_by(&area) >= 0.5)
                .map(|b| b.bbox.intersection_area(bbox))
                .sum();
            covered >= PRESENT_SHARE * bbox.area()
        };
        if covered_by_blobs(&c.bbox) {
            return Presence::Present;
        }
        if c.core != c.bbox && covered_by_blobs(&c.core) {
            return Presence::PresentAsCore;
        }
        self.presence_by_patches(c)
    }

    /// Whether the spot looks like the object or like the ground before it.
    fn presence_by_patches(&self, c: &Candidate) -> Presence {
        let current = self
            .background
            .patch(Layer::Current, &c.patch_box, PATCH_MARGIN);
        if !current.matches(&c.object_patch) || !current.matches(&c.before_patch) {
            return Presence::Unknown;
        }
        let d_object = current.distance(&c.object_patch);
        let d_before = current.distance(&c.before_patch);
        if d_object < d_before * PATCH_RATIO {
            Presence::Present
        } else if d_before < d_object * PATCH_RATIO && d_object - d_before >= PATCH_MIN_GAP {
            // Clearly the bare ground again; with a faint object both distances are noise.
            Presence::Absent
        } else {
            Presence::Unknown
        }
    }

    fn update_presence(&mut self, now: f64, blobs: &[StaticBlob], actors: &[(Track, BBox)]) {
        for i in 0..self.candidates.len() {
            let verdict = self.presence(&self.candidates[i], blobs, actors);
            let current = (verdict == Presence::Present).then(|| {
                self.background
                    .patch(Layer::Current, &self.candidates[i].patch_box, PATCH_MARGIN)
            });
            if verdict == Presence::PresentAsCore {
                let core = self.candidates[i].core;
                self.reshape(i, core, now);
            }
            let c = &mut self.candidates[i];
            match verdict {
                Presence::Present | Presence::PresentAsCore => {
                    c.sightings += 1;
                    if let Some(since) = c.absent_since.take() {
                        debug!(zone = c.zone, bbox = ?c.bbox, now, absent_s = now - since, "pending object: seen again");
                    }
                    // Follow slow light changes on the object itself.
                    if let Some(cur) = current {
                        c.object_patch.follow(&cur, 0.1);
                    }
                    if now - c.reshaped_at >= CORE_CONFIRM_S {
                        c.core = c.bbox;
                    }
                }
                Presence::Absent => {
                    if c.absent_since.is_none() {
                        debug!(zone = c.zone, bbox = ?c.bbox, now, "pending object: not seen");
                    }
                    c.absent_since.get_or_insert(now);
                }
                Presence::Occluded | Presence::Unknown => {}
            }
        }
    }

    /// Static blobs either belong to a followed object, grow one, or are new candidates.
    fn grow_and_discover(
        &mut self,
        now: f64,
        blobs: &mut [StaticBlob],
        actors: &[(Track, BBox)],
        out: &mut Output,
    ) {
        let frame_area = self.frame.0 * self.frame.1;
        for blob in blobs.iter() {
            if let Some(k) = self
                .candidates
                .iter()
                .position(|c| blob.bbox.covered_by(&c.bbox.grown(0.25)) >= 0.5)
            {
                // A followed object. Pending, and seen more fully now (someone had hidden part of
                // it when it was found): it takes the blob's extent.
                // One that is missing now is not seen more fully: the blob is something else
                // there (and would replace the object's picture with the bare ground).
                let c = &self.candidates[k];
                let grown = c.bbox.union(&blob.bbox);
                if c.state == State::Pending
                    && c.absent_since.is_none()
                    && blob.bbox.covered_by(&c.bbox) < 0.9
                    && grown.area() <= self.cfg.zones[c.zone].max_object_area * frame_area
                    && grown.area() <= MAX_GROWTH * c.found_area
                    && !actors
                        .iter()
                        .any(|(_, a)| grown.covered_by(&a.grown(0.1)) >= OCCLUDED_SHARE)
                {
                    self.reshape(k, grown, now);
                }
                continue;
            }
            if actors
                .iter()
                .any(|(_, a)| blob.bbox.covered_by(&a.grown(0.1)) >= OCCLUDED_SHARE)
            {
                // A person standing still, or a parked car: not an object (for now).
                continue;
            }
            if self
                .footprints
                .iter()
                .any(|f| blob.bbox.covered_by(&f.bbox.grown(0.1)) >= 0.6)
                || self
                    .fixtures
                    .iter()
                    .any(|f| blob.bbox.covered_by(&f.grown(0.1)) >= 0.5)
            {
                // Ground uncovered by a vehicle that parked for long, or a fixture detected at
                // start: the scene, not a dumped object.
                self.background.relearn(&blob.bbox);
                continue;
            }
            if self.masked(&blob.bbox) {
                continue;
            }
            let bg = &self.background;
            if bg.edge_strength(Layer::LongTerm, &blob.bbox, 0.25)
                > bg.edge_strength(Layer::Current, &blob.bbox, 0.25)
                && bg.surround_contrast(Layer::LongTerm, &blob.bbox, 0.5)
                    > bg.surround_contrast(Layer::Current, &blob.bbox, 0.5)
            {
                // A ghost: the outline is in the old background, not in the picture, and the spot
                // stood out from its surroundings then, not now. Something the background had
                // taken in (a person who stood there undetected) has left. (The outline alone
                // misleads when only the inside of a smooth, faint object has been found yet.)
                self.background.relearn(&blob.bbox);
                continue;
            }
            // Growth: touching a followed object.
            if let Some(k) = self
                .candidates
                .iter()
                .position(|c| blob.bbox.intersection_area(&c.bbox.grown(0.5)) > 0.0)
            {
                if self.candidates[k].state == State::Pending {
                    if self.candidates[k].absent_since.is_some() {
                        continue;
                    }
                    let grown = self.candidates[k].bbox.union(&blob.bbox);
                    let zone = self.candidates[k].zone;
                    let max_area = self.cfg.zones[zone].max_object_area * frame_area;
                    if grown.area() <= max_area
                        && grown.area() <= MAX_GROWTH * self.candidates[k].found_area
                    {
                        self.reshape(k, grown, now);
                    } else if self.candidates[k].bbox.covered_by(&blob.bbox.grown(0.25)) >= 0.5
                        && blob.bbox.area() <= max_area
                    {
                        // The object was found by a sliver (someone stood over the rest of it):
                        // the blob is the object.
                        self.reshape(k, blob.bbox, now);
                        self.candidates[k].found_area = blob.bbox.area();
                    }
                    continue;
                }
                // Next to an incident's pile: a new candidate that joins it when abandoned.
            }
            let Some(zone) = self.zone_of(&blob.bbox) else {
                continue;
            };
            let rules = &self.cfg.zones[zone];
            let share = blob.bbox.area() / frame_area;
            if share < rules.min_object_area || share > rules.max_object_area {
                continue;
            }
            let settle = time_to_static(blob.contrast, &self.cfg.background);
            self.add_candidate(now, now - settle, zone, blob.bbox, None, blob.contrast, out);
        }
    }

    /// Dumpable detections (a suitcase, a couch) that stopped moving are candidates too.
    fn discover_dumpable_detections(
        &mut self,
        now: f64,
        tracks: &[Track],
        actors: &[(Track, BBox)],
        out: &mut Output,
    ) {
        if now - self.started_at.unwrap_or(now) < self.cfg.startup_grace_s {
            return;
        }
        for t in tracks {
            if t.last_seen < now || t.hits < 3 || t.age(now) < 2.0 {
                continue;
            }
            let Some(zone) = self.zone_of(&t.bbox) else {
                continue;
            };
            let rules = &self.cfg.zones[zone];
            if !rules.dumpable.get(t.class_id).copied().unwrap_or(false)
                || rules.min_score.get(t.class_id).is_none_or(|m| t.score < *m)
            {
                continue;
            }
            let diag = t.bbox.width().hypot(t.bbox.height()).max(1.0);
            if t.velocity.0.hypot(t.velocity.1) > 0.1 * diag {
                continue;
            }
            if actors
                .iter()
                .any(|(_, a)| t.bbox.covered_by(a) >= OCCLUDED_SHARE)
                || self.fixtures.iter().any(|f| f.iou(&t.bbox) > 0.3)
                || self.masked(&t.bbox)
            {
                continue;
            }
            if let Some(c) = self
                .candidates
                .iter_mut()
                .find(|c| t.bbox.covered_by(&c.bbox.grown(0.25)) >= 0.3)
            {
                if c.class.is_none_or(|(_, s)| s < t.score) {
                    c.class = Some((t.class_id, t.score));
                }
                continue;
            }
            let contrast = self.cfg.background.threshold * 2.0;
            self.add_candidate(
                now,
                t.first_seen.max(now - 10.0),
                zone,
                t.bbox,
                Some((t.class_id, t.score)),
                contrast,
                out,
            );
        }
    }

    /// Changes a candidate's box (grown while pending, or shrunk back to its core) and retakes
    /// its patches.
    fn reshape(&mut self, k: usize, bbox: BBox, now: f64) {
        let before = self.background.patch(Layer::LongTerm, &bbox, PATCH_MARGIN);
        let object = self.background.patch(Layer::Current, &bbox, PATCH_MARGIN);
        let c = &mut self.candidates[k];
        c.bbox = bbox;
        c.patch_box = bbox;
        c.before_patch = before;
        c.object_patch = object;
        c.reshaped_at = now;
    }

    #[allow(clippy::too_many_arguments)]
    fn add_candidate(
        &mut self,
        now: f64,
        appeared_at: f64,
        zone: usize,
        bbox: BBox,
        class: Option<(usize, f32)>,
        contrast: f32,
        out: &mut Output,
    ) {
        let before_patch = self.background.patch(Layer::LongTerm, &bbox, PATCH_MARGIN);
        let object_patch = self.background.patch(Layer::Current, &bbox, PATCH_MARGIN);
        // When it was put down: walk back through the remembered pictures while the spot
        // already looked like the object (or was hidden by someone).
        let mut appeared_at = appeared_at.min(now);
        // Earliest picture that may already hold it (seen, or hidden by someone).
        let mut maybe_there = now;
        // Whether the walk reached a picture of the bare ground.
        let mut saw_bare_ground = false;
        for m in self.history.iter().rev().skip(1) {
            let p = self.background.patch_of(&m.cells, &bbox, PATCH_MARGIN);
            if !p.matches(&object_patch) || !p.matches(&before_patch) {
                break;
            }
            let hidden = m
                .actors
                .iter()
                .any(|(_, _, a)| bbox.covered_by(a) >= OCCLUDED_SHARE);
            let (d_object, d_before) = (p.distance(&object_patch), p.distance(&before_patch));
            if d_object < d_before * PATCH_RATIO {
                appeared_at = m.at;
            } else if !hidden && d_before < d_object * PATCH_RATIO {
                // The bare ground: it was not there yet.
                saw_bare_ground = true;
                break;
            }
            maybe_there = m.at;
        }
        let maybe_there = maybe_there.min(appeared_at);
        // Between the bare ground and the first clear sight, someone stood over the spot: that is
        // when it was put down (the one who stood there is the owner).
        if saw_bare_ground {
            appeared_at = maybe_there;
        }
        // There as long as the analyzer remembers, and touching an incident's object: the rest
        // of that object, seen whole now that nobody hides part of it, not a second one.
        let remembered_from = self.history.front().map_or(now, |m| m.at);
        if now - remembered_from >= Self::HISTORY_S * 0.5
            && appeared_at <= remembered_from + 1e-6
            && let Some(c) = self.candidates.iter_mut().find(|c| {
                matches!(c.state, State::InIncident(_))
                    && c.zone == zone
                    && c.bbox.grown(0.5).intersection_area(&bbox) > 0.0
            })
        {
            let State::InIncident(id) = c.state else {
                unreachable!("matched above")
            };
            c.bbox = c.bbox.union(&bbox);
            if let Some(inc) = self.incidents.iter_mut().find(|i| i.id == id) {
                inc.bbox = inc.bbox.union(&bbox);
            }
            return;
        }
        // The owner: the nearest actor at that moment; then when they were last near it.
        let radius = self.cfg.owner_radius;
        let moment = self
            .history
            .iter()
            .find(|m| m.at >= appeared_at - 0.01)
            .or(self.history.back());
        let owner = moment.and_then(|m| {
            m.actors
                .iter()
                .map(|(id, class, b)| (box_gap_in_heights(&bbox, b), *id, *class, *b))
                .filter(|(d, ..)| *d <= radius)
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, track, class_id, b)| Owner {
                    track,
                    class_id,
                    bbox: b,
                    last_near: m.at,
                })
        });
        let owner = owner.map(|mut o| {
            // Near and (almost) still: staying with the object. Walking on is leaving it.
            let from = o.last_near;
            let mut prev: Option<(f64, BBox)> = None;
            for m in self.history.iter().filter(|m| m.at >= from) {
                let Some((_, _, b)) = m.actors.iter().find(|(id, ..)| *id == o.track) else {
                    continue;
                };
                let speed = prev.map_or(0.0, |(t, p)| {
                    let (c0, c1) = (p.centre(), b.centre());
                    (c1.0 - c0.0).hypot(c1.1 - c0.1) / ((m.at - t).max(1e-3) as f32)
                });
                if box_gap_in_heights(&bbox, b) <= radius && speed <= LINGER_SPEED * b.height() {
                    o.last_near = m.at;
                    o.bbox = *b;
                }
                prev = Some((m.at, *b));
            }
            o
        });
        let owner_near_now = owner.as_ref().is_some_and(|o| o.last_near >= now);
        let mut frames = Vec::new();
        if let Some(before) = self
            .history
            .iter()
            .rev()
            .find(|m| m.at < maybe_there)
            .or(self.history.front())
            && before.at < maybe_there
        {
            frames.push(FrameRef {
                role: FrameRole::Before,
                at: before.at,
            });
        }
        if let Some(m) = moment {
            // The picture of the moment it appeared shows who left it.
            frames.push(FrameRef {
                role: FrameRole::Actor,
                at: m.at,
            });
        }
        if self.candidates.len() >= MAX_CANDIDATES {
            let Some(oldest) = self
                .candidates
                .iter()
                .position(|c| c.state == State::Pending)
            else {
                return;
            };
            let c = self.candidates.remove(oldest);
            debug!(zone = c.zone, bbox = ?c.bbox, now, "pending object: forgotten, too many pending");
            out.release.extend(c.frames.iter().map(|f| f.at));
        }
        out.keep.extend(frames.iter().map(|f| f.at));
        let unattended_since = if owner_near_now {
            None
        } else {
            Some(
                owner
                    .as_ref()
                    .map_or(appeared_at, |o| left_at(appeared_at, o.last_near, false)),
            )
        };
        debug!(zone, bbox = ?bbox, now, appeared_at, owner = owner.is_some(), unattended_since, "pending object: found");
        self.candidates.push(Candidate {
            zone,
            bbox,
            class,
            contrast,
            appeared_at,
            sightings: 1,
            absent_since: None,
            owner,
            unattended_since,
            owner_back_since: None,
            owner_returned: false,
            before_patch,
            object_patch,
            patch_box: bbox,
            found_area: bbox.area(),
            core: bbox,
            reshaped_at: now,
            state: State::Pending,
            frames,
            carried: false,
        });
    }

    /// Follows whether each pending object's owner is still with it (`tracks`: this picture's).
    fn update_attendance(&mut self, now: f64, tracks: &[Track]) {
        let radius = self.cfg.owner_radius;
        for c in self
            .candidates
            .iter_mut()
            .filter(|c| c.state == State::Pending)
        {
            let Some(owner) = c.owner.as_mut() else {
                continue;
            };
            let lingering = |t: &Track| {
                now - t.last_seen <= ACTOR_RECENT_S
                    && t.velocity.0.hypot(t.velocity.1) <= LINGER_SPEED * t.bbox.height()
            };
            let near_it =
                |t: &&Track| box_gap_in_heights(&c.bbox, &t.bbox) <= radius && lingering(t);
            let near = tracks
                .iter()
                .find(|t| t.id == owner.track && now - t.last_seen <= ACTOR_RECENT_S)
                .filter(near_it)
                .or_else(|| {
                    // The owner's track was lost (the detector missed them for a while, or a
                    // passer-by crossing them took it over) and the same person is found again
                    // under another: someone of the owner's class lingering where the owner was
                    // last near, whose track began there after the owner's was last seen. A
                    // passer-by who pauses on that spot walked into it: their track began
                    // elsewhere, and they are not the owner.
                    tracks.iter().filter(near_it).find(|t| {
                        t.id != owner.track
                            && t.class_id == owner.class_id
                            && t.bbox.iou(&owner.bbox) >= SAME_PLACE_IOU
                            && t.first_seen >= owner.last_near
                            && box_gap_in_heights(&t.first_bbox, &owner.bbox) <= OWNER_REACH
                    })
                });
            match near {
                Some(t) => {
                    owner.track = t.id;
                    owner.bbox = t.bbox;
                    owner.last_near = t.last_seen;
                    if box_gap_in_heights(&c.bbox, &t.bbox) > OWNER_REACH {
                        c.owner_back_since = None;
                        continue;
                    }
                    let since = *c.owner_back_since.get_or_insert(now);
                    // Once left, the owner is back only when they stay by it: someone passing
                    // by (or a track that switched to another person) does not restart the dwell.
                    if now - since >= OWNER_BACK_S && c.unattended_since.is_some() {
                        debug!(zone = c.zone, bbox = ?c.bbox, now, owner_track = owner.track, owner_bbox = ?t.bbox,
                               track_began = t.first_seen, "pending object: its owner is back, the dwell restarts");
                        c.unattended_since = None;
                        c.owner_returned = true;
                    }
                }
                None => {
                    c.owner_back_since = None;
                    let since = left_at(c.appeared_at, owner.last_near, c.owner_returned);
                    if c.unattended_since.is_none() {
                        debug!(zone = c.zone, bbox = ?c.bbox, now, since, "pending object: left by its owner");
                    }
                    c.unattended_since.get_or_insert(since);
                }
            }
        }
    }

    /// Reclaims, abandons and ends candidates.
    fn advance(&mut self, now: f64, out: &mut Output) {
        let mut k = 0;
        while k < self.candidates.len() {
            let c = &self.candidates[k];
            let rules = &self.cfg.zones[c.zone];
            let gone_for = c.absent_since.map_or(0.0, |t| now - t);
            match c.state {
                State::Pending if gone_for >= self.cfg.reclaim_after_s => {
                    // Taken away before its dwell ended: reclaimed.
                    let c = self.candidates.remove(k);
                    debug!(zone = c.zone, bbox = ?c.bbox, now, gone_for, "pending object: taken away");
                    self.background.relearn_when_free(&c.bbox);
                    out.release.extend(c.frames.iter().map(|f| f.at));
                    continue;
                }
                State::Suppressed if gone_for >= self.cfg.reclaim_after_s => {
                    let c = self.candidates.remove(k);
                    self.background.relearn_when_free(&c.bbox);
                    out.release.extend(c.frames.iter().map(|f| f.at));
                    continue;
                }
                State::Pending
                    if c.absent_since.is_none()
                        && c.sightings >= MIN_SIGHTINGS
                        && c.unattended_since.is_some_and(|t| now - t >= rules.dwell_s) =>
                {
                    self.abandon(k, now, out);
                }
                _ => {}
            }
            k += 1;
        }
    }

    /// A candidate was left for its dwell: raise, update or suppress.
    fn abandon(&mut self, k: usize, now: f64, out: &mut Output) {
        let c = &self.candidates[k];
        let zone = c.zone;
        let rules = &self.cfg.zones[zone];
        let spot = c.bbox.grown(0.5);
        let dwell = now - c.unattended_since.unwrap_or(now);
        let confidence = self.confidence(c);
        if let Some(inc) = self.incidents.iter().find(|i| {
            i.zone == zone
                && i.closed_at.is_none()
                && i.bbox.grown(0.5).intersection_area(&spot) > 0.0
        }) {
            // The pile grew: same incident.
            let id = inc.id;
            self.candidates[k].state = State::InIncident(id);
            let bbox = self.candidates[k].bbox;
            let inc = self
                .incidents
                .iter_mut()
                .find(|i| i.id == id)
                .expect("found above");
            inc.bbox = inc.bbox.union(&bbox);
            inc.confidence = inc.confidence.max(confidence);
            let event = self.event(
                EventKind::Updated,
                id,
                now,
                dwell,
                vec![FrameRef {
                    role: FrameRole::Event,
                    at: now,
                }],
            );
            out.events.push(event);
            return;
        }
        if self.incidents.iter().any(|i| {
            i.zone == zone
                && i.closed_at.is_some_and(|t| now - t < rules.cooldown_s)
                && i.bbox.grown(0.5).intersection_area(&spot) > 0.0
        }) {
            // Cleared here moments ago: a repeat (left-overs, a misjudged clearing), not a new case.
            self.candidates[k].state = State::Suppressed;
            return;
        }
        let c = &self.candidates[k];
        let id = self.next_incident;
        self.next_incident += 1;
        let actor = c.owner.as_ref().map(|o| ActorSighting {
            class: self.class_name(o.class_id),
            bbox: o.bbox,
            last_seen: o.last_near,
        });
        let mut frames = c.frames.clone();
        frames.push(FrameRef {
            role: FrameRole::Event,
            at: now,
        });
        out.keep.push(now);
        self.incidents.push(Incident {
            id,
            zone,
            bbox: c.bbox,
            appeared_at: c.appeared_at,
            unattended_since: c.unattended_since.unwrap_or(now),
            confidence,
            actor,
            frames: frames.clone(),
            closed_at: None,
        });
        // The incident now owns the candidate's pictures.
        self.candidates[k].frames.clear();
        self.candidates[k].state = State::InIncident(id);
        let event = self.event(EventKind::Raised, id, now, dwell, frames);
        out.events.push(event);
    }

    /// Clears incidents whose objects are all gone for `clear_after_s`.
    fn clear_incidents(&mut self, now: f64, out: &mut Output) {
        for n in 0..self.incidents.len() {
            let inc = &self.incidents[n];
            if inc.closed_at.is_some() {
                continue;
            }
            let clear_after = self.cfg.zones[inc.zone].clear_after_s;
            let members: Vec<&Candidate> = self
                .candidates
                .iter()
                .filter(|c| c.state == State::InIncident(inc.id))
                .collect();
            let all_gone = members
                .iter()
                .all(|c| c.absent_since.is_some_and(|t| now - t >= clear_after));
            if !all_gone {
                continue;
            }
            let id = inc.id;
            let mut frames: Vec<FrameRef> = inc
                .frames
                .iter()
                .filter(|f| f.role != FrameRole::Actor)
                .copied()
                .collect();
            frames.push(FrameRef {
                role: FrameRole::After,
                at: now,
            });
            let dwell = now - inc.unattended_since;
            let event = self.event(EventKind::Cleared, id, now, dwell, frames);
            out.events.push(event);
            out.release
                .extend(self.incidents[n].frames.iter().map(|f| f.at));
            self.incidents[n].closed_at = Some(now);
            let gone: Vec<Candidate> = self
                .candidates
                .iter()
                .filter(|c| c.state == State::InIncident(id))
                .cloned()
                .collect();
            for c in gone {
                self.background.relearn_when_free(&c.bbox);
                out.release.extend(c.frames.iter().map(|f| f.at));
            }
            self.candidates.retain(|c| c.state != State::InIncident(id));
        }
        let zones = &self.cfg.zones;
        self.incidents.retain(|i| {
            i.closed_at
                .is_none_or(|t| now - t < zones[i.zone].cooldown_s)
        });
    }

    fn confidence(&self, c: &Candidate) -> f32 {
        let t = self.cfg.background.threshold;
        let from_contrast = (0.5 + 0.5 * ((c.contrast - t) / (2.0 * t))).clamp(0.3, 0.95);
        match c.class {
            Some((_, score)) => score.max(from_contrast),
            None => from_contrast,
        }
    }

    fn class_name(&self, class_id: usize) -> String {
        self.cfg
            .class_names
            .get(class_id)
            .cloned()
            .unwrap_or_else(|| format!("class{class_id}"))
    }

    fn event(
        &self,
        kind: EventKind,
        incident: u64,
        now: f64,
        dwell_s: f64,
        frames: Vec<FrameRef>,
    ) -> Event {
        let inc = self.incidents.iter().find(|i| i.id == incident);
        let objects = self
            .candidates
            .iter()
            .filter(|c| c.state == State::InIncident(incident))
            .map(|c| EventObject {
                class: c
                    .class
                    .map_or_else(|| "object".to_owned(), |(id, _)| self.class_name(id)),
                score: self.confidence(c),
                bbox: c.bbox,
            })
            .collect();
        let zone = inc.map_or(0, |i| i.zone);
        Event {
            kind,
            incident,
            zone_index: zone,
            zone: self
                .cfg
                .zones
                .get(zone)
                .map(|z| z.name.clone())
                .unwrap_or_default(),
            at: now,
            appeared_at: inc.map_or(now, |i| i.appeared_at),
            dwell_s,
            confidence: inc.map_or(0.0, |i| i.confidence),
            objects,
            actor: inc.and_then(|i| i.actor.clone()),
            frames,
        }
    }
}

/// When an object became unattended, given when its owner was last near it: at its appearance
/// if the owner walked off within [`SETTLING_S`] (and had not come back to it before).
fn left_at(appeared_at: f64, last_near: f64, returned: bool) -> f64 {
    if !returned && last_near - appeared_at <= SETTLING_S {
        appeared_at.min(last_near)
    } else {
        last_near
    }
}

/// Gap between two boxes (0 when they overlap) in heights of `actor`.
fn box_gap_in_heights(object: &BBox, actor: &BBox) -> f32 {
    let dx = (actor.x1 - object.x2).max(object.x1 - actor.x2).max(0.0);
    let dy = (actor.y1 - object.y2).max(object.y1 - actor.y2).max(0.0);
    dx.hypot(dy) / actor.height().max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::ZoneRules;
    use crate::geometry::Polygon;

    pub(super) const W: u32 = 320;
    pub(super) const H: u32 = 180;
    const PERSON: usize = 0;
    const CAR: usize = 1;
    const SUITCASE: usize = 2;

    pub(super) fn config() -> AnalyzerConfig {
        AnalyzerConfig::whole_frame(vec!["person".into(), "car".into(), "suitcase".into()])
    }

    /// What is in the picture at one moment.
    #[derive(Clone, Debug, Default)]
    pub(super) struct Scene {
        /// Grey level of the whole scene (100 = normal).
        pub level: i32,
        /// Painted objects that are not detected: (x, y, w, h, grey level).
        pub objects: Vec<(u32, u32, u32, u32, u8)>,
        /// Detected things: (class, x, y, w, h), painted dark.
        pub detected: Vec<(usize, u32, u32, u32, u32)>,
    }

    pub(super) fn render(scene: &Scene, seed: u32) -> (Vec<Detection>, GreyFrame) {
        render_turned(scene, seed, (0, 0))
    }

    /// [`render`] by a camera `turned` away: the scene's texture moved by (x, y) pixels.
    fn render_turned(scene: &Scene, seed: u32, turned: (u32, u32)) -> (Vec<Detection>, GreyFrame) {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(7);
        let mut img: Vec<u8> = (0..W * H)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let (x, y) = (i % W + turned.0, i / W + turned.1);
                let texture = (x / 40 + y / 30) as i32 % 3 * 6;
                (scene.level + texture + (s % 9) as i32 - 4).clamp(0, 255) as u8
            })
            .collect();
        let mut paint = |x: u32, y: u32, w: u32, h: u32, v: u8| {
            for yy in y..(y + h).min(H) {
                for xx in x..(x + w).min(W) {
                    img[(yy * W + xx) as usize] = v;
                }
            }
        };
        for &(x, y, w, h, v) in &scene.objects {
            paint(x, y, w, h, v);
        }
        let mut dets = Vec::new();
        for &(class_id, x, y, w, h) in &scene.detected {
            paint(x, y, w, h, 35);
            let bbox = BBox {
                x1: x as f32,
                y1: y as f32,
                x2: (x + w) as f32,
                y2: (y + h) as f32,
            };
            dets.push(Detection {
                class_id,
                score: 0.85,
                bbox,
                zones: vec![0],
            });
        }
        let grey = GreyFrame::from_luma(&img, W, H, W as usize, 160).unwrap();
        (dets, grey)
    }

    /// Runs a scripted scene at `fps` from 0 to `until` seconds; returns every event.
    pub(super) fn run(
        analyzer: &mut Analyzer,
        fps: f64,
        until: f64,
        script: impl Fn(f64) -> Scene,
    ) -> Vec<Event> {
        run_shared(analyzer, fps, 1, until, script).0
    }

    /// [`run`] with the detector on every `detect_every`-th picture only (a loaded box), the
    /// others seen by the background channel alone. Returns every event and the times of the
    /// pictures that reported a scene change.
    pub(super) fn run_shared(
        analyzer: &mut Analyzer,
        fps: f64,
        detect_every: u32,
        until: f64,
        script: impl Fn(f64) -> Scene,
    ) -> (Vec<Event>, Vec<f64>) {
        let mut events = Vec::new();
        let mut scene_changes = Vec::new();
        let mut kept: Vec<f64> = Vec::new();
        let steps = (until * fps) as u32;
        for i in 0..=steps {
            let t = f64::from(i) / fps;
            let (dets, grey) = render(&script(t), i);
            if i % detect_every != 0 {
                analyzer.observe_background(t, &grey);
                continue;
            }
            let out = analyzer.observe(t, &dets, &grey);
            if out.scene_change {
                scene_changes.push(t);
            }
            for e in &out.events {
                for f in &e.frames {
                    assert!(f.at <= t && f.at >= t - 1e9, "frame refs are past pictures");
                    assert!(
                        f.at == t || kept.contains(&f.at),
                        "{:?} at {} refers to a picture that was not kept: {:?}",
                        e.kind,
                        t,
                        f
                    );
                }
            }
            kept.extend(&out.keep);
            for r in &out.release {
                let pos = kept
                    .iter()
                    .position(|k| k == r)
                    .expect("a release matches a keep");
                kept.remove(pos);
            }
            events.extend(out.events);
        }
        (events, scene_changes)
    }

    fn kinds(events: &[Event]) -> Vec<(EventKind, u64)> {
        events.iter().map(|e| (e.kind, e.incident)).collect()
    }

    /// A person walking from the left edge to `x` (arriving at `arrive`) and on to the right
    /// edge, at 40 px/s.
    fn walker(t: f64, arrive: f64, x: f64) -> Option<(usize, u32, u32, u32, u32)> {
        let px = x + (t - arrive) * 40.0;
        (px > -20.0 && px < f64::from(W)).then(|| (PERSON, px.max(0.0) as u32, 80, 20, 60))
    }

    const BAG: (u32, u32, u32, u32, u8) = (150, 120, 24, 18, 200);

    #[test]
    fn a_bag_left_behind_raises_one_incident_after_the_dwell() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 420.0, |t| Scene {
            level: 100,
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: walker(t, 20.0, 130.0).into_iter().collect(),
        });
        assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)], "{events:#?}");
        let e = &events[0];
        assert!(e.at >= 50.0 && e.at <= 55.0, "raised at {}", e.at);
        assert!(
            (e.appeared_at - 20.0).abs() <= 3.0,
            "appeared_at {}",
            e.appeared_at
        );
        assert_eq!(e.objects.len(), 1);
        assert_eq!(e.objects[0].class, "object");
        let b = e.objects[0].bbox;
        // Where the bag is: at least half of it, nothing far outside it. (The walker hides part
        // of it when it is first found, so the box may hold only the part seen then.)
        let bag = BBox {
            x1: 150.0,
            y1: 120.0,
            x2: 174.0,
            y2: 138.0,
        };
        assert!(
            bag.covered_by(&b) >= 0.5 && b.covered_by(&bag.grown(0.2)) >= 0.9,
            "{b:?}"
        );
        let roles: Vec<FrameRole> = e.frames.iter().map(|f| f.role).collect();
        assert!(
            roles.contains(&FrameRole::Before) && roles.contains(&FrameRole::Event),
            "{roles:?}"
        );
        let before = e
            .frames
            .iter()
            .find(|f| f.role == FrameRole::Before)
            .unwrap();
        assert!(
            before.at < 20.0,
            "the before picture predates the bag: {}",
            before.at
        );
        // Still there after 7 minutes: held in the background, never cleared.
        assert_eq!(a.open_incidents(), 1);
    }

    #[test]
    fn a_threshold_reload_keeps_the_open_incident_and_a_zone_reload_carries_it() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 120.0, |t| Scene {
            level: 100,
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: walker(t, 20.0, 130.0).into_iter().collect(),
        });
        assert_eq!(kinds(&events).len(), 1, "{events:#?}");
        let mut longer = config();
        longer.zones[0].dwell_s = 90.0;
        longer.background.threshold += 2.0;
        assert_eq!(a.reconfigure(longer.clone()), Reconfigured::Kept);
        assert_eq!(a.open_incidents(), 1);
        assert_eq!(a.config().zones[0].dwell_s, 90.0);
        let mut moved = longer;
        moved.zones[0].polygon = Polygon(
            [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]
                .map(|(x, y)| crate::geometry::Point { x, y })
                .to_vec(),
        );
        // The bag's zone still holds it: its incident is followed on under a new number, and
        // cleared when the bag is taken away.
        assert_eq!(
            a.reconfigure(moved),
            Reconfigured::Restarted {
                carried: vec![(1, 1)],
                dropped: vec![]
            }
        );
        assert_eq!((a.open_incidents(), a.candidates()), (1, 1));
        let mut events = Vec::new();
        for i in 1..=240u32 {
            let t = 120.0 + f64::from(i) / 2.0;
            let objects = if t < 160.0 { vec![BAG] } else { vec![] };
            let (dets, grey) = render(
                &Scene {
                    level: 100,
                    objects,
                    detected: vec![],
                },
                i,
            );
            events.extend(a.observe(t, &dets, &grey).events);
        }
        assert_eq!(kinds(&events), vec![(EventKind::Cleared, 1)], "{events:#?}");
        assert!(events[0].at > 160.0);
    }

    #[test]
    fn a_bag_taken_away_before_the_dwell_is_reclaimed() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 120.0, |t| Scene {
            level: 100,
            objects: if (20.0..40.0).contains(&t) {
                vec![BAG]
            } else {
                vec![]
            },
            detected: walker(t, 20.0, 130.0)
                .into_iter()
                .chain(walker(t, 40.0, 130.0))
                .collect(),
        });
        assert!(events.is_empty(), "{events:#?}");
        assert_eq!(a.candidates(), 0);
    }

    #[test]
    fn the_dwell_counts_from_when_the_owner_leaves() {
        let mut a = Analyzer::new(config());
        // The owner stands beside the bag from 20 s to 60 s, then walks off.
        let events = run(&mut a, 2.0, 150.0, |t| Scene {
            level: 100,
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: if (15.0..60.0).contains(&t) {
                vec![(PERSON, 125, 80, 20, 60)]
            } else {
                walker(t, 60.0, 125.0).into_iter().collect()
            },
        });
        assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)], "{events:#?}");
        assert!(
            events[0].at >= 89.0 && events[0].at <= 95.0,
            "raised at {}",
            events[0].at
        );
        let actor = events[0].actor.as_ref().expect("the owner is reported");
        assert_eq!(actor.class, "person");
        assert!(events[0].frames.iter().any(|f| f.role == FrameRole::Actor));
    }

    #[test]
    fn an_owner_the_detector_misses_for_a_while_is_still_with_the_object() {
        let mut a = Analyzer::new(config());
        // The owner stands beside the bag from 15 s to 140 s, then walks off; the detector does
        // not find them from 60 s to 70 s (longer than a track lives), and then finds them again.
        let events = run(&mut a, 2.0, 200.0, |t| Scene {
            level: 100,
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: if (15.0..60.0).contains(&t) || (70.0..140.0).contains(&t) {
                vec![(PERSON, 125, 80, 20, 60)]
            } else {
                walker(t, 140.0, 125.0).into_iter().collect()
            },
        });
        assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)], "{events:#?}");
        assert!(
            events[0].at >= 169.0,
            "raised at {} while the owner stood by it",
            events[0].at
        );
    }

    /// The owner stands by the bag when it appears (20 s), steps away at 25 s to wait at x = 20
    /// (out of `owner_radius`), comes back at 35 s to stand at `back_x` until 60 s and walks off.
    fn owner_away_and_back(t: f64, back_x: f64) -> Option<(usize, u32, u32, u32, u32)> {
        let x = if t < 15.0 {
            return None;
        } else if t < 25.0 {
            125.0
        } else if t < 35.0 {
            (125.0 - (t - 25.0) * 40.0).max(20.0)
        } else if t < 60.0 {
            (20.0 + (t - 35.0) * 40.0).min(back_x)
        } else {
            back_x + (t - 60.0) * 40.0
        };
        (x < f64::from(W)).then_some((PERSON, x as u32, 80, 20, 60))
    }

    #[test]
    fn an_owner_back_by_the_object_restarts_the_dwell_one_waiting_a_few_steps_off_does_not() {
        for (back_x, from) in [(125.0, 60.0), (70.0, 20.0)] {
            let mut a = Analyzer::new(config());
            let events = run(&mut a, 2.0, 150.0, |t| Scene {
                level: 100,
                objects: if t >= 20.0 { vec![BAG] } else { vec![] },
                detected: owner_away_and_back(t, back_x).into_iter().collect(),
            });
            assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)], "{events:#?}");
            let due = from + 30.0;
            assert!(
                events[0].at >= due - 1.0 && events[0].at <= due + 5.0,
                "back at x = {back_x}: raised at {}, due at {due}",
                events[0].at
            );
        }
    }

    #[test]
    fn a_passer_by_who_pauses_where_the_owner_stood_does_not_restart_the_dwell() {
        let mut a = Analyzer::new(config());
        // The owner walks in from the left, leaves the bag at 20 s and walks on out of view; at
        // 30 s someone walks in from the right edge, stands where the owner passed the bag from
        // 34 s to 46 s, and walks back out.
        let passer_by = |t: f64| -> Option<(usize, u32, u32, u32, u32)> {
            let x = if t < 30.0 {
                return None;
            } else if t < 34.0 {
                f64::from(W) - (t - 30.0) * (f64::from(W) - 130.0) / 4.0
            } else if t < 46.0 {
                130.0
            } else {
                130.0 + (t - 46.0) * 40.0
            };
            (x < f64::from(W)).then_some((PERSON, x as u32, 80, 20, 60))
        };
        let events = run(&mut a, 2.0, 120.0, |t| Scene {
            level: 100,
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: walker(t, 20.0, 130.0)
                .into_iter()
                .filter(|_| t < 30.0)
                .chain(passer_by(t))
                .collect(),
        });
        assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)], "{events:#?}");
        assert!(
            events[0].at >= 49.0 && events[0].at <= 55.0,
            "raised at {}: the passer-by was taken for the owner",
            events[0].at
        );
    }

    #[test]
    fn an_owner_who_lingers_briefly_left_the_object_when_it_appeared() {
        let mut a = Analyzer::new(config());
        // The owner puts the bag down at 20 s, stands beside it for 7 s, then walks off.
        let events = run(&mut a, 2.0, 120.0, |t| Scene {
            level: 100,
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: if (15.0..27.0).contains(&t) {
                vec![(PERSON, 125, 80, 20, 60)]
            } else {
                walker(t, 27.0, 125.0).into_iter().collect()
            },
        });
        assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)], "{events:#?}");
        // Dwell (30 s) from the appearance (20 s), not from the leaving (27 s).
        assert!(
            events[0].at >= 49.0 && events[0].at <= 53.0,
            "raised at {}",
            events[0].at
        );
    }

    #[test]
    fn a_removed_pile_is_cleared_once_with_an_after_picture() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 200.0, |t| Scene {
            level: 100,
            objects: if (20.0..90.0).contains(&t) {
                vec![BAG]
            } else {
                vec![]
            },
            detected: walker(t, 20.0, 130.0)
                .into_iter()
                .chain(walker(t, 90.0, 130.0))
                .collect(),
        });
        assert_eq!(
            kinds(&events),
            vec![(EventKind::Raised, 1), (EventKind::Cleared, 1)],
            "{events:#?}"
        );
        let cleared = &events[1];
        assert!(
            cleared.at >= 120.0 && cleared.at <= 126.0,
            "cleared at {}",
            cleared.at
        );
        let roles: Vec<FrameRole> = cleared.frames.iter().map(|f| f.role).collect();
        assert!(
            roles.contains(&FrameRole::After) && roles.contains(&FrameRole::Before),
            "{roles:?}"
        );
        assert_eq!(a.open_incidents(), 0);
        assert_eq!(a.candidates(), 0);
    }

    #[test]
    fn things_present_at_start_and_masked_fixtures_never_alert() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 120.0, |_| Scene {
            level: 100,
            objects: vec![BAG],
            detected: vec![],
        });
        assert!(events.is_empty(), "present from the start: {events:#?}");

        let mut cfg = config();
        // A bin at the bag's spot, masked as a fixture.
        cfg.masks = vec![Polygon(vec![
            [0.4, 0.6].into(),
            [0.6, 0.6].into(),
            [0.6, 0.85].into(),
            [0.4, 0.85].into(),
        ])];
        let mut a = Analyzer::new(cfg);
        let events = run(&mut a, 2.0, 120.0, |t| Scene {
            level: 100,
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: vec![],
        });
        assert!(events.is_empty(), "masked: {events:#?}");
    }

    #[test]
    fn a_camera_turned_while_a_bag_waits_says_so_and_raises_nothing() {
        let mut analyzer = Analyzer::new(config());
        let bag = (150, 120, 20, 14, 200);
        let script = |t: f64| {
            let mut s = Scene {
                level: 100,
                ..Scene::default()
            };
            if (12.0..14.0).contains(&t) {
                s.detected.push((PERSON, 140, 80, 30, 60));
            }
            if (13.0..20.0).contains(&t) {
                s.objects.push(bag);
            }
            s
        };
        // From 20 s, turned by a fifth of the picture and tilted: the bag is out of sight.
        let turned = |t: f64| if t >= 20.0 { (64, 16) } else { (0, 0) };
        let mut views = Vec::new();
        let mut events = Vec::new();
        for i in 0..=(120 * 2) {
            let t = f64::from(i) / 2.0;
            let (dets, grey) = render_turned(&script(t), i, turned(t));
            let out = analyzer.observe(t, &dets, &grey);
            events.extend(out.events);
            if let Some(v) = out.view {
                views.push((t, v));
            }
        }
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(views.first().map(|v| v.1), Some(View::Home), "{views:?}");
        let moved = views.iter().find(|v| v.1 == View::Moved);
        assert!(
            moved.is_some_and(|(t, _)| *t - 20.0 <= 60.0),
            "the camera-moved state within 60 s: {views:?} (similarity {})",
            analyzer.view_similarity()
        );
        assert_eq!(analyzer.view().0, View::Moved);
    }

    #[test]
    fn at_start_what_stands_by_a_person_waits_until_they_have_left() {
        // A person stands from 1 s to 14 s, their legs beyond the detector's box (undetected,
        // dark): not learned as the scene while they stand there.
        let person = (PERSON, 150, 60, 20, 50);
        let legs = (150, 114, 20, 16, 30);
        let mut a = Analyzer::new(config());
        run(&mut a, 2.0, 13.5, |t| Scene {
            level: 100,
            objects: if t >= 1.0 { vec![legs] } else { vec![] },
            detected: if t >= 1.0 { vec![person] } else { vec![] },
        });
        let under = BBox {
            x1: 152.0,
            y1: 118.0,
            x2: 168.0,
            y2: 128.0,
        };
        let ground = a.background.patch(Layer::LongTerm, &under, 0.0).mean_luma();
        assert!(
            ground > 95.0,
            "long-term background under the legs: {ground}"
        );
        // They walk off at 14 s: nothing is raised where they stood.
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 120.0, |t| Scene {
            level: 100,
            objects: if (1.0..14.0).contains(&t) {
                vec![legs]
            } else {
                vec![]
            },
            detected: if (1.0..14.0).contains(&t) {
                vec![person]
            } else {
                walker(t, 14.0, 150.0).into_iter().collect()
            },
        });
        assert!(events.is_empty(), "{events:#?}");
        assert_eq!(a.candidates(), 0);
    }

    #[test]
    fn ground_uncovered_when_something_present_at_start_leaves_is_not_an_object() {
        // A crate stands there when the camera starts and is taken away at 60 s: the ground that
        // appears differs from the learned background, but it is a ghost, not a new object.
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 150.0, |t| Scene {
            level: 100,
            objects: if t < 60.0 {
                vec![(150, 110, 30, 30, 20)]
            } else {
                vec![]
            },
            detected: vec![],
        });
        assert!(events.is_empty(), "{events:#?}");
        assert_eq!(a.candidates(), 0);
    }

    #[test]
    fn a_parked_car_is_an_actor_never_a_dumped_object() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 150.0, |t| Scene {
            level: 100,
            objects: vec![],
            detected: if t >= 20.0 {
                vec![(CAR, 100, 90, 90, 50)]
            } else {
                vec![]
            },
        });
        assert!(events.is_empty(), "{events:#?}");
        assert_eq!(a.candidates(), 0);
    }

    #[test]
    fn a_person_standing_still_is_not_an_object() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 150.0, |t| Scene {
            level: 100,
            objects: vec![],
            detected: if (20.0..100.0).contains(&t) {
                vec![(PERSON, 150, 80, 20, 60)]
            } else {
                vec![]
            },
        });
        assert!(events.is_empty(), "{events:#?}");
    }

    #[test]
    fn a_global_light_change_neither_alerts_nor_clears() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 200.0, |t| Scene {
            level: if t >= 100.0 { 60 } else { 100 },
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: walker(t, 20.0, 130.0).into_iter().collect(),
        });
        assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)], "{events:#?}");
        assert_eq!(
            a.open_incidents(),
            1,
            "the bag is still there after the light changed"
        );

        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 200.0, |t| Scene {
            level: if t >= 60.0 { 150 } else { 100 },
            objects: vec![],
            detected: walker(t, 60.0, 100.0).into_iter().collect(),
        });
        assert!(events.is_empty(), "{events:#?}");
    }

    #[test]
    fn a_slow_light_change_is_not_an_object() {
        // Dusk over 8 s: too slow for a global re-learn, too fast for the long-term background.
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 150.0, |t| Scene {
            level: 100 - (((t - 40.0) / 8.0).clamp(0.0, 1.0) * 45.0) as i32,
            objects: vec![],
            detected: walker(t, 40.0, 100.0).into_iter().collect(),
        });
        assert!(events.is_empty(), "{events:#?}");
        assert_eq!(a.candidates(), 0);
    }

    #[test]
    fn between_detections_the_background_channel_keeps_actors_and_objects_out_of_the_ground() {
        // The detector on one picture in eight (every 4 s); a person stands for 7 minutes: the
        // long-term background under them is still the ground (level 100 to 112; the person is
        // painted 35), not learned from the seven pictures in eight the detector did not see.
        let mut a = Analyzer::new(config());
        let (events, _) = run_shared(&mut a, 2.0, 8, 450.0, |t| Scene {
            level: 100,
            objects: vec![],
            detected: if t >= 20.0 {
                vec![(PERSON, 150, 80, 20, 60)]
            } else {
                vec![]
            },
        });
        assert!(events.is_empty(), "{events:#?}");
        let under = BBox {
            x1: 152.0,
            y1: 82.0,
            x2: 168.0,
            y2: 138.0,
        };
        let ground = a.background.patch(Layer::LongTerm, &under, 0.0).mean_luma();
        assert!(
            ground > 95.0,
            "long-term background under the person: {ground}"
        );
        // A bag left with the detector on one picture in four is raised within the dwell and
        // stays open (held in the background between detections).
        let mut a = Analyzer::new(config());
        let (events, _) = run_shared(&mut a, 2.0, 4, 420.0, |t| Scene {
            level: 100,
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: walker(t, 20.0, 130.0).into_iter().collect(),
        });
        assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)], "{events:#?}");
        assert!(events[0].at <= 57.0, "raised at {}", events[0].at);
        assert_eq!(a.open_incidents(), 1);
    }

    #[test]
    fn a_change_of_light_seen_between_detections_is_relearned_and_reported() {
        let mut a = Analyzer::new(config());
        let (events, changes) = run_shared(&mut a, 2.0, 4, 200.0, |t| Scene {
            level: if t >= 100.5 { 60 } else { 100 },
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: walker(t, 20.0, 130.0).into_iter().collect(),
        });
        assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)], "{events:#?}");
        assert_eq!(a.open_incidents(), 1, "the bag is still there");
        // First seen by a background picture (100.5 s), reported with the next detected (102 s).
        assert_eq!(changes, vec![102.0]);
    }

    #[test]
    fn a_growing_pile_updates_its_incident() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 200.0, |t| {
            let mut objects = vec![];
            if t >= 20.0 {
                objects.push(BAG);
            }
            if t >= 80.0 {
                objects.push((176, 118, 22, 20, 170));
            }
            Scene {
                level: 100,
                objects,
                detected: walker(t, 20.0, 130.0)
                    .into_iter()
                    .chain(walker(t, 80.0, 150.0))
                    .collect(),
            }
        });
        assert_eq!(
            kinds(&events),
            vec![(EventKind::Raised, 1), (EventKind::Updated, 1)],
            "{events:#?}"
        );
        assert!(!events[1].objects.is_empty());
        let pile = events[1]
            .objects
            .iter()
            .fold(events[1].objects[0].bbox, |u, o| u.union(&o.bbox));
        assert!(pile.x2 >= 195.0, "the update covers the new part: {pile:?}");
    }

    #[test]
    fn a_pending_object_does_not_swallow_what_pauses_around_it() {
        let mut a = Analyzer::new(config());
        // Things nobody detects stop next to the bag for a few seconds each, on every side.
        let visitors = [
            (12.0, (174, 120, 24, 18, 150)),
            (19.0, (126, 120, 24, 18, 150)),
            (26.0, (150, 102, 24, 18, 150)),
            (33.0, (150, 138, 24, 18, 150)),
        ];
        let events = run(&mut a, 2.0, 90.0, |t| {
            let mut objects = vec![];
            if t >= 5.0 {
                objects.push(BAG);
            }
            objects.extend(
                visitors
                    .iter()
                    .filter(|(at, _)| t >= *at && t < at + 6.0)
                    .map(|(_, o)| *o),
            );
            Scene {
                level: 100,
                objects,
                detected: walker(t, 5.0, 130.0).into_iter().collect(),
            }
        });
        let raised: Vec<&Event> = events
            .iter()
            .filter(|e| e.kind == EventKind::Raised)
            .collect();
        assert_eq!(raised.len(), 1, "{events:#?}");
        let b = raised[0].objects[0].bbox;
        let bag_area = 24.0 * 18.0;
        assert!(b.area() <= MAX_GROWTH * bag_area, "{b:?}");
    }

    #[test]
    fn an_object_shown_in_pieces_is_still_there() {
        let mut a = Analyzer::new(config());
        // A sack, found whole; then the light on it changes and only its two sides (a quarter
        // of it each) still stand out from the ground.
        let events = run(&mut a, 2.0, 80.0, |t| {
            let mut objects = vec![];
            if t >= 5.0 {
                objects.push(BAG);
            }
            if t >= 15.0 {
                objects.push((156, 120, 12, 18, 106));
            }
            Scene {
                level: 100,
                objects,
                detected: walker(t, 5.0, 130.0).into_iter().collect(),
            }
        });
        assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)], "{events:#?}");
        assert!(events[0].at <= 40.0, "raised at {}", events[0].at);
    }

    #[test]
    fn something_pausing_on_the_corner_of_a_taken_object_does_not_keep_it() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 80.0, |t| {
            let mut objects = vec![];
            if (5.0..20.0).contains(&t) {
                // A large box, put down and taken away again before the dwell.
                objects.push((130, 100, 60, 40, 200));
            }
            if (22.0..48.0).contains(&t) {
                // Something small nobody detects waits at its corner, then goes.
                objects.push((130, 100, 10, 10, 160));
            }
            Scene {
                level: 100,
                objects,
                detected: walker(t, 5.0, 110.0)
                    .into_iter()
                    .chain(walker(t, 20.0, 110.0))
                    .collect(),
            }
        });
        assert!(events.is_empty(), "{events:#?}");
    }

    #[test]
    fn two_piles_apart_are_two_incidents() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 150.0, |t| {
            let mut objects = vec![];
            if t >= 20.0 {
                objects.push((40, 130, 24, 18, 200));
            }
            if t >= 50.0 {
                objects.push((260, 130, 24, 18, 30));
            }
            Scene {
                level: 100,
                objects,
                detected: walker(t, 20.0, 20.0)
                    .into_iter()
                    .chain(walker(t, 50.0, 240.0))
                    .collect(),
            }
        });
        assert_eq!(
            kinds(&events),
            vec![(EventKind::Raised, 1), (EventKind::Raised, 2)],
            "{events:#?}"
        );
    }

    #[test]
    fn the_same_spot_within_the_cooldown_is_a_repeat() {
        let mut a = Analyzer::new(config());
        // Dumped at 20, removed at 70 (cleared ≈ 100), dumped again at 110 (abandoned ≈ 140,
        // within 120 s of the clearing), removed at 170, dumped again at 260 (after the cooldown).
        let events = run(&mut a, 2.0, 330.0, |t| Scene {
            level: 100,
            objects: if (20.0..70.0).contains(&t) || (110.0..170.0).contains(&t) || t >= 260.0 {
                vec![BAG]
            } else {
                vec![]
            },
            detected: vec![],
        });
        assert_eq!(
            kinds(&events),
            vec![
                (EventKind::Raised, 1),
                (EventKind::Cleared, 1),
                (EventKind::Raised, 2)
            ],
            "{events:#?}"
        );
        assert!(events[2].at >= 290.0, "{events:#?}");
    }

    #[test]
    fn outside_every_zone_nothing_happens() {
        let mut cfg = config();
        cfg.zones[0].polygon = Polygon(vec![
            [0.0, 0.0].into(),
            [0.4, 0.0].into(),
            [0.4, 1.0].into(),
            [0.0, 1.0].into(),
        ]);
        let mut a = Analyzer::new(cfg);
        let events = run(&mut a, 2.0, 120.0, |t| Scene {
            level: 100,
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: vec![],
        });
        assert!(events.is_empty(), "{events:#?}");
    }

    #[test]
    fn a_suitcase_detected_and_left_is_raised_with_its_class() {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 120.0, |t| Scene {
            level: 100,
            objects: vec![],
            detected: if t >= 20.0 {
                vec![(SUITCASE, 60, 120, 22, 26)]
            } else {
                vec![]
            },
        });
        assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)], "{events:#?}");
        assert_eq!(events[0].objects[0].class, "suitcase");
    }

    #[test]
    fn per_zone_dwell_applies() {
        let mut cfg = config();
        cfg.zones[0].dwell_s = 10.0;
        let mut a = Analyzer::new(cfg);
        let events = run(&mut a, 2.0, 60.0, |t| Scene {
            level: 100,
            objects: if t >= 20.0 { vec![BAG] } else { vec![] },
            detected: vec![],
        });
        assert_eq!(kinds(&events), vec![(EventKind::Raised, 1)]);
        assert!(events[0].at <= 35.0, "raised at {}", events[0].at);
        let z: &ZoneRules = &a.config().zones[0];
        assert_eq!(z.dwell_s, 10.0);
    }

    #[test]
    fn activity_follows_actors_near_zones_and_pending_objects() {
        let mut cfg = config();
        cfg.zones[0].polygon = Polygon(vec![
            [0.0, 0.0].into(),
            [0.3, 0.0].into(),
            [0.3, 1.0].into(),
            [0.0, 1.0].into(),
        ]);
        let mut a = Analyzer::new(cfg);
        let (d, g) = render(
            &Scene {
                level: 100,
                ..Scene::default()
            },
            0,
        );
        assert!(!a.observe(0.0, &d, &g).active);
        let (d, g) = render(
            &Scene {
                level: 100,
                detected: vec![(PERSON, 40, 80, 20, 60)],
                ..Scene::default()
            },
            1,
        );
        assert!(a.observe(1.0, &d, &g).active, "a person in the zone");
        let (d, g) = render(
            &Scene {
                level: 100,
                detected: vec![(PERSON, 290, 80, 20, 60)],
                ..Scene::default()
            },
            2,
        );
        assert!(!a.observe(5.0, &d, &g).active, "a person far from the zone");
    }
}

#[cfg(test)]
mod properties {
    use super::tests::{Scene, config, render};
    use super::*;
    use proptest::prelude::*;

    fn scene_strategy() -> impl Strategy<Value = Scene> {
        (
            prop_oneof![Just(100i32), 0i32..255],
            proptest::collection::vec(
                (0u32..300, 0u32..170, 1u32..80, 1u32..60, any::<u8>()),
                0..3,
            ),
            proptest::collection::vec((0usize..4, 0u32..300, 0u32..170, 1u32..80, 1u32..90), 0..3),
        )
            .prop_map(|(level, objects, detected)| Scene {
                level,
                objects,
                detected,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any sequence of scenes (each held for a random time, with random gaps): no panic, and
        /// every incident is raised once, then at most cleared once, and nothing happens to it
        /// after that.
        #[test]
        fn no_sequence_panics_or_clears_twice(
            steps in proptest::collection::vec((scene_strategy(), 1u32..40, 0.2f64..8.0), 1..12),
            dwell in 1.0f64..40.0,
        ) {
            let mut cfg = config();
            cfg.zones[0].dwell_s = dwell;
            cfg.zones[0].clear_after_s = dwell;
            let mut a = Analyzer::new(cfg);
            let mut t = 0.0;
            let mut seed = 0;
            let mut raised = std::collections::HashMap::new();
            for (scene, repeats, dt) in steps {
                for _ in 0..repeats {
                    let (dets, grey) = render(&scene, seed);
                    seed += 1;
                    for e in a.observe(t, &dets, &grey).events {
                        let state = raised.entry(e.incident).or_insert(0);
                        match e.kind {
                            EventKind::Raised => { prop_assert_eq!(*state, 0); *state = 1; }
                            EventKind::Updated => prop_assert_eq!(*state, 1),
                            EventKind::Cleared => { prop_assert_eq!(*state, 1); *state = 2; }
                        }
                    }
                    t += dt;
                }
            }
        }
    }
}
