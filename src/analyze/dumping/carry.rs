//! Open incidents carried from one analyzer to the next: across a restart of the service (the
//! spot is kept with the incident in the store) and across a change of the camera's zones (the
//! old analyzer hands its spots to the new one). The new analyzer follows each carried spot as
//! it followed its own incidents, so a spot cleaned later (or while the service was down) is
//! still cleared, with an "after" picture.
//!
//! A carried spot is judged by its two patches only, the ground before and the object: the new
//! analyzer's background learned the object as part of the scene, so static foreground there
//! means the ground uncovered, not the object.

use serde::{Deserialize, Serialize};

use super::{Analyzer, Candidate, Incident, MIN_SIGHTINGS, State};
use crate::analyze::ActorSighting;
use crate::analyze::background::Patch;
use crate::geometry::BBox;

/// What a new analyzer needs to go on following an open incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenSpot {
    /// Name of the zone the incident was raised in.
    pub zone: String,
    /// The incident's box (all its objects), source pixels.
    pub bbox: BBox,
    /// When its first object was put down, seconds on the analyzer's clock (unix seconds live).
    pub appeared_at: f64,
    /// Since when it has been left unattended (its dwell counts from here).
    pub unattended_since: f64,
    /// Confidence that it is dumped waste, 0..1.
    pub confidence: f32,
    /// Who was seen leaving it, if anyone.
    pub actor: Option<ActorSighting>,
    /// Width of the background grid the patches were taken on (another grid cannot compare).
    pub grid_width: u32,
    /// Size of the analysed pictures (source pixels) the boxes are in.
    pub frame: (f32, f32),
    /// The objects of the incident.
    pub objects: Vec<SpotObject>,
}

/// One object of a carried incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpotObject {
    /// Its box, source pixels.
    pub bbox: BBox,
    /// The detector's class name and score, when it was recognised.
    pub class: Option<(String, f32)>,
    /// How much it stood out from the background when found (grey levels).
    pub contrast: f32,
    /// The box its patches cover (before their margin).
    pub patch_box: BBox,
    /// The ground there before it was put down.
    pub before: Patch,
    /// The spot with the object on it.
    pub object: Patch,
}

/// Why a carried spot cannot be followed by this analyzer (its incident stays open in the store
/// until an operator reviews it).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NotCarried {
    /// No zone of the camera has its name or holds its spot any more.
    #[error("zone {0:?} is gone and no other zone of the camera holds the spot")]
    NoZone(String),
    /// The background grid changed: the spot's patches cannot be compared with the picture.
    #[error("the background grid is now {now} cells wide, the spot was learned on {was}")]
    OtherGrid {
        /// The grid of the spot.
        was: u32,
        /// The grid of this analyzer.
        now: u32,
    },
    /// The spot has no object to follow.
    #[error("the spot has no object")]
    Empty,
}

impl Analyzer {
    /// The spot of open incident `incident` as a new analyzer would need it, if it is open.
    pub fn open_spot(&self, incident: u64) -> Option<OpenSpot> {
        let inc = self
            .incidents
            .iter()
            .find(|i| i.id == incident && i.closed_at.is_none())?;
        let objects = self
            .candidates
            .iter()
            .filter(|c| c.state == State::InIncident(incident))
            .map(|c| SpotObject {
                bbox: c.bbox,
                class: c.class.map(|(id, score)| (self.class_name(id), score)),
                contrast: c.contrast,
                patch_box: c.patch_box,
                before: c.before_patch.clone(),
                object: c.object_patch.clone(),
            })
            .collect();
        Some(OpenSpot {
            zone: self
                .cfg
                .zones
                .get(inc.zone)
                .map(|z| z.name.clone())
                .unwrap_or_default(),
            bbox: inc.bbox,
            appeared_at: inc.appeared_at,
            unattended_since: inc.unattended_since,
            confidence: inc.confidence,
            actor: inc.actor.clone(),
            grid_width: self.cfg.background.grid_width,
            frame: self.frame,
            objects,
        })
    }

    /// The spots of all open incidents, by the analyzer's incident number.
    pub fn open_spots(&self) -> Vec<(u64, OpenSpot)> {
        self.incidents
            .iter()
            .filter(|i| i.closed_at.is_none())
            .filter_map(|i| Some((i.id, self.open_spot(i.id)?)))
            .collect()
    }

    /// Goes on following an open incident of another analyzer (before a restart, or before the
    /// zones changed). Returns the incident's number in this analyzer. Its events refer to no
    /// picture of before the carrying: `cleared` has the "after" picture only. Carry before the
    /// first picture or after any: the spot's own picture size places it until a picture comes.
    pub fn carry(&mut self, spot: &OpenSpot) -> Result<u64, NotCarried> {
        if spot.objects.is_empty() {
            return Err(NotCarried::Empty);
        }
        let now = self.cfg.background.grid_width;
        if spot.grid_width != now {
            return Err(NotCarried::OtherGrid {
                was: spot.grid_width,
                now,
            });
        }
        if self.last_at.is_none() {
            self.frame = spot.frame;
        }
        let zone = self
            .cfg
            .zones
            .iter()
            .position(|z| z.name == spot.zone)
            .or_else(|| self.zone_of(&spot.bbox))
            .ok_or_else(|| NotCarried::NoZone(spot.zone.clone()))?;
        let id = self.next_incident;
        self.next_incident += 1;
        self.incidents.push(Incident {
            id,
            zone,
            bbox: spot.bbox,
            appeared_at: spot.appeared_at,
            unattended_since: spot.unattended_since,
            confidence: spot.confidence,
            actor: spot.actor.clone(),
            frames: Vec::new(),
            closed_at: None,
        });
        for o in &spot.objects {
            let class = o.class.as_ref().and_then(|(name, score)| {
                let id = self.cfg.class_names.iter().position(|n| n == name)?;
                Some((id, *score))
            });
            self.candidates.push(Candidate {
                zone,
                bbox: o.bbox,
                class,
                contrast: o.contrast,
                appeared_at: spot.appeared_at,
                sightings: MIN_SIGHTINGS,
                absent_since: None,
                owner: None,
                unattended_since: Some(spot.unattended_since),
                owner_back_since: None,
                owner_returned: false,
                before_patch: o.before.clone(),
                object_patch: o.object.clone(),
                patch_box: o.patch_box,
                found_area: o.bbox.area(),
                core: o.bbox,
                reshaped_at: f64::NEG_INFINITY,
                state: State::InIncident(id),
                frames: Vec::new(),
                carried: true,
            });
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Scene, config, render, run};
    use super::*;
    use crate::analyze::{Event, EventKind, FrameRole};

    const BAG: (u32, u32, u32, u32, u8) = (150, 120, 24, 18, 200);

    /// The square with the bag on it while `bag(t)`, and a person who walked past at 20 s.
    fn scene(t: f64, bag: impl Fn(f64) -> bool) -> Scene {
        let px = 130.0 + (t - 20.0) * 40.0;
        Scene {
            level: 100,
            objects: if bag(t) { vec![BAG] } else { vec![] },
            detected: (px > -20.0 && px < 320.0)
                .then(|| (0, px.max(0.0) as u32, 80, 20, 60))
                .into_iter()
                .collect(),
        }
    }

    /// The spot of the bag left at 20 s and raised after its dwell, as read back from the store.
    fn raised_spot() -> OpenSpot {
        let mut a = Analyzer::new(config());
        let events = run(&mut a, 2.0, 70.0, |t| scene(t, |t| t >= 20.0));
        assert!(
            events.iter().any(|e| e.kind == EventKind::Raised),
            "{events:?}"
        );
        let spots = a.open_spots();
        assert_eq!(spots.len(), 1);
        let json = serde_json::to_string(&spots[0].1).unwrap();
        serde_json::from_str(&json).unwrap()
    }

    /// A new analyzer started at `from`, carrying `spot` before its picture number `carry_at`
    /// (0: before the first, as the service does), run to `until` at 2 pictures a second; its
    /// number for the spot and its events.
    fn restarted(
        spot: &OpenSpot,
        carry_at: u32,
        (from, until): (f64, f64),
        bag: impl Fn(f64) -> bool + Copy,
    ) -> (u64, Vec<Event>) {
        let mut a = Analyzer::new(config());
        let mut id = None;
        let mut events = Vec::new();
        for i in 0..=((until - from) * 2.0) as u32 {
            if i == carry_at {
                id = Some(a.carry(spot).unwrap());
                assert_eq!(a.open_incidents(), 1);
            }
            let t = from + f64::from(i) / 2.0;
            let (dets, grey) = render(&scene(t, bag), i);
            events.extend(a.observe(t, &dets, &grey).events);
        }
        (id.unwrap(), events)
    }

    #[test]
    fn a_carried_incident_is_cleared_once_when_its_object_is_taken_after_the_restart() {
        let spot = raised_spot();
        // The service restarts at 100 s; the bag is taken away at 200 s. Carried before the
        // first picture or once the new background has learned the bag as scene, alike.
        for carry_at in [0, 30] {
            let (_, events) = restarted(&spot, carry_at, (100.0, 199.0), |_| true);
            assert!(events.is_empty(), "nothing while the bag stays: {events:?}");
            let (id, events) = restarted(&spot, carry_at, (100.0, 300.0), |t| t < 200.0);
            let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.incident)).collect();
            assert_eq!(
                kinds,
                vec![(EventKind::Cleared, id)],
                "carried at {carry_at}: {events:#?}"
            );
            let cleared = &events[0];
            assert!(cleared.at > 200.0, "cleared at {}", cleared.at);
            assert!(cleared.frames.iter().any(|f| f.role == FrameRole::After));
            assert_eq!(cleared.appeared_at, spot.appeared_at);
            assert_eq!(cleared.zone, spot.zone);
        }
    }

    #[test]
    fn a_spot_cleaned_while_the_service_was_down_is_cleared_after_the_restart() {
        let spot = raised_spot();
        let (id, events) = restarted(&spot, 0, (100.0, 200.0), |t| t < 80.0);
        let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.incident)).collect();
        assert_eq!(kinds, vec![(EventKind::Cleared, id)], "{events:#?}");
    }

    #[test]
    fn a_spot_is_not_carried_onto_another_grid_or_without_its_zone() {
        let spot = raised_spot();
        let mut cfg = config();
        cfg.background.grid_width /= 2;
        assert!(matches!(
            Analyzer::new(cfg).carry(&spot),
            Err(NotCarried::OtherGrid { .. })
        ));
        let mut cfg = config();
        cfg.zones[0].name = "elsewhere".into();
        cfg.zones[0].polygon = crate::geometry::Polygon(vec![
            [0.0, 0.0].into(),
            [0.1, 0.0].into(),
            [0.1, 0.1].into(),
        ]);
        assert_eq!(
            Analyzer::new(cfg).carry(&spot),
            Err(NotCarried::NoZone(spot.zone.clone()))
        );
    }
}
