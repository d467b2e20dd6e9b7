//! Multi-object tracking by box overlap, ByteTrack style, with ageing by **time**, not by frame
//! count: a camera's frame rate changes with sampling (one keyframe every 2 s when idle, 2 fps
//! when active), so "lost for 30 frames" would mean a minute at one moment and 15 s at the next.
//!
//! Each update:
//! 1. predicts every track's box at `now` from its velocity (capped, so a long gap does not fling
//!    it across the frame);
//! 2. matches confident detections to tracks of the same class, greedily by IoU, or — where boxes
//!    do not overlap because pictures are seconds apart — by centre distance in box diagonals;
//! 3. matches the remaining low-score detections to the remaining tracks (a partly hidden person
//!    keeps their track) — low-score detections never start a track;
//! 4. starts tracks for unmatched confident detections, and drops tracks unseen for `max_age_s`.
//!
//! Plain synchronous Rust: detections and a time in, tracks out.

use crate::detection::Detection;
use crate::geometry::BBox;

/// Tracker settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackerConfig {
    /// Detections at or above this score may start tracks and are matched first.
    pub high_score: f32,
    /// Detections below this score are ignored.
    pub low_score: f32,
    /// Least IoU between a predicted track box and a detection for them to match.
    pub match_iou: f32,
    /// Without enough overlap, a detection still matches a track whose predicted centre is within
    /// this many box diagonals of it. Sparse sampling needs this: at one keyframe every 2 s a
    /// walking person moves more than their own width between pictures.
    pub max_centre_shift: f32,
    /// A track unseen for this many seconds is dropped.
    pub max_age_s: f64,
    /// Velocity is extrapolated over at most this many seconds.
    pub max_predict_s: f64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            high_score: 0.5,
            low_score: 0.1,
            match_iou: 0.3,
            max_centre_shift: 2.0,
            max_age_s: 5.0,
            max_predict_s: 1.0,
        }
    }
}

/// One tracked object.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    /// Stable id, unique within the tracker.
    pub id: u64,
    /// Detector class.
    pub class_id: usize,
    /// Last matched box (source pixels).
    pub bbox: BBox,
    /// Score of the last match.
    pub score: f32,
    /// When the track started (seconds).
    pub first_seen: f64,
    /// Where the track started: a person found again after the detector lost them starts where
    /// they were, a passer-by where they walked into view.
    pub first_bbox: BBox,
    /// When it was last matched (seconds).
    pub last_seen: f64,
    /// Number of matches.
    pub hits: u32,
    /// Velocity of the box centre in pixels per second (smoothed).
    pub velocity: (f32, f32),
    /// Zones of the last match.
    pub zones: Vec<usize>,
}

impl Track {
    /// The box expected at `now`, moved by the velocity over at most `max_predict_s`.
    pub fn predicted(&self, now: f64, max_predict_s: f64) -> BBox {
        let dt = (now - self.last_seen).clamp(0.0, max_predict_s) as f32;
        let (dx, dy) = (self.velocity.0 * dt, self.velocity.1 * dt);
        BBox {
            x1: self.bbox.x1 + dx,
            y1: self.bbox.y1 + dy,
            x2: self.bbox.x2 + dx,
            y2: self.bbox.y2 + dy,
        }
    }

    /// Seconds since the track started.
    pub fn age(&self, now: f64) -> f64 {
        now - self.first_seen
    }
}

fn centre(b: &BBox) -> (f32, f32) {
    ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0)
}

/// The tracker of one camera.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    last_update: Option<f64>,
}

impl Tracker {
    /// New settings from a reload; what is followed is kept.
    pub fn reconfigure(&mut self, cfg: TrackerConfig) {
        self.cfg = cfg;
    }

    /// An empty tracker.
    pub fn new(cfg: TrackerConfig) -> Self {
        Tracker {
            cfg,
            tracks: Vec::new(),
            next_id: 1,
            last_update: None,
        }
    }

    /// The live tracks.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Feeds the detections of the picture taken at `now` (seconds, non-decreasing; an earlier
    /// time is treated as `now` = the last update) and returns the live tracks.
    pub fn update(&mut self, now: f64, detections: &[Detection]) -> &[Track] {
        let now = self.last_update.map_or(now, |last| now.max(last));
        self.last_update = Some(now);
        let predicted: Vec<BBox> = self
            .tracks
            .iter()
            .map(|t| t.predicted(now, self.cfg.max_predict_s))
            .collect();
        let mut track_used = vec![false; self.tracks.len()];
        let mut det_used = vec![false; detections.len()];

        for (min, max) in [
            (self.cfg.high_score, f32::INFINITY),
            (self.cfg.low_score, self.cfg.high_score),
        ] {
            let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
            for (d, det) in detections.iter().enumerate() {
                if det_used[d] || det.score < min || det.score >= max {
                    continue;
                }
                for (t, track) in self.tracks.iter().enumerate() {
                    if track_used[t] || track.class_id != det.class_id {
                        continue;
                    }
                    if let Some(similarity) = self.similarity(&predicted[t], &det.bbox) {
                        pairs.push((similarity, t, d));
                    }
                }
            }
            pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (_, t, d) in pairs {
                if track_used[t] || det_used[d] {
                    continue;
                }
                track_used[t] = true;
                det_used[d] = true;
                self.matched(t, now, &detections[d]);
            }
        }

        for (d, det) in detections.iter().enumerate() {
            if !det_used[d] && det.score >= self.cfg.high_score {
                self.tracks.push(Track {
                    id: self.next_id,
                    class_id: det.class_id,
                    bbox: det.bbox,
                    score: det.score,
                    first_seen: now,
                    first_bbox: det.bbox,
                    last_seen: now,
                    hits: 1,
                    velocity: (0.0, 0.0),
                    zones: det.zones.clone(),
                });
                self.next_id += 1;
            }
        }
        let max_age = self.cfg.max_age_s;
        self.tracks.retain(|t| now - t.last_seen <= max_age);
        &self.tracks
    }

    /// How well a detection fits a predicted box: overlap (1 + IoU) ranks above nearness
    /// (0..1 by centre distance in diagonals); `None` if neither gate passes.
    fn similarity(&self, predicted: &BBox, det: &BBox) -> Option<f32> {
        let iou = predicted.iou(det);
        if iou >= self.cfg.match_iou {
            return Some(1.0 + iou);
        }
        let (a, b) = (centre(predicted), centre(det));
        let diag = ((predicted.x2 - predicted.x1).powi(2) + (predicted.y2 - predicted.y1).powi(2))
            .sqrt()
            .max(1.0);
        let shift = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt() / diag;
        (shift <= self.cfg.max_centre_shift)
            .then(|| 1.0 - shift / self.cfg.max_centre_shift.max(f32::EPSILON))
    }

    fn matched(&mut self, t: usize, now: f64, det: &Detection) {
        let track = &mut self.tracks[t];
        let dt = (now - track.last_seen) as f32;
        if dt > 0.0 {
            let (c0, c1) = (centre(&track.bbox), centre(&det.bbox));
            let v = ((c1.0 - c0.0) / dt, (c1.1 - c0.1) / dt);
            // Smooth: detections jitter by a few pixels between pictures.
            let a = if track.hits == 1 { 1.0 } else { 0.5 };
            track.velocity = (
                a * v.0 + (1.0 - a) * track.velocity.0,
                a * v.1 + (1.0 - a) * track.velocity.1,
            );
        }
        track.bbox = det.bbox;
        track.score = det.score;
        track.last_seen = now;
        track.hits += 1;
        track.zones = det.zones.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_id: usize, score: f32, x: f32, y: f32, w: f32, h: f32) -> Detection {
        Detection {
            class_id,
            score,
            bbox: BBox {
                x1: x,
                y1: y,
                x2: x + w,
                y2: y + h,
            },
            zones: vec![],
        }
    }

    const PERSON: usize = 0;
    const BAG: usize = 26;

    #[test]
    fn a_walking_person_keeps_one_id_at_irregular_intervals() {
        let mut tr = Tracker::new(TrackerConfig::default());
        // 40 px/s to the right, seen at irregular times (2 s idle keyframes, then 2 fps).
        let times = [0.0, 2.0, 4.0, 4.5, 5.0, 5.5, 6.0, 8.0];
        let mut ids = vec![];
        for t in times {
            let tracks = tr.update(
                t,
                &[det(
                    PERSON,
                    0.9,
                    100.0 + 40.0 * t as f32,
                    200.0,
                    60.0,
                    160.0,
                )],
            );
            assert_eq!(tracks.len(), 1, "at {t}");
            ids.push(tracks[0].id);
        }
        assert!(ids.iter().all(|&i| i == ids[0]), "{ids:?}");
        let v = tr.tracks()[0].velocity;
        assert!((v.0 - 40.0).abs() < 5.0 && v.1.abs() < 1.0, "{v:?}");
    }

    #[test]
    fn ageing_is_by_time_not_by_frame_count() {
        let cfg = TrackerConfig {
            max_age_s: 3.0,
            ..TrackerConfig::default()
        };
        let mut tr = Tracker::new(cfg);
        tr.update(0.0, &[det(BAG, 0.9, 10.0, 10.0, 20.0, 20.0)]);
        // 100 empty pictures within 2 s: still alive.
        for i in 1..=100 {
            tr.update(i as f64 * 0.02, &[]);
        }
        assert_eq!(tr.tracks().len(), 1);
        // One empty picture 3.5 s after the last sighting: gone.
        tr.update(3.5, &[]);
        assert!(tr.tracks().is_empty());
    }

    #[test]
    fn low_scores_extend_tracks_but_never_start_them() {
        let mut tr = Tracker::new(TrackerConfig::default());
        tr.update(0.0, &[det(PERSON, 0.3, 0.0, 0.0, 50.0, 100.0)]);
        assert!(tr.tracks().is_empty());
        tr.update(1.0, &[det(PERSON, 0.8, 0.0, 0.0, 50.0, 100.0)]);
        let id = tr.tracks()[0].id;
        // Partly hidden: low score, same place.
        tr.update(2.0, &[det(PERSON, 0.2, 2.0, 0.0, 50.0, 100.0)]);
        assert_eq!(tr.tracks().len(), 1);
        assert_eq!((tr.tracks()[0].id, tr.tracks()[0].hits), (id, 2));
    }

    #[test]
    fn a_person_and_the_bag_they_carry_are_separate_tracks() {
        let mut tr = Tracker::new(TrackerConfig::default());
        for t in 0..5 {
            let x = 100.0 + 20.0 * t as f32;
            tr.update(
                t as f64,
                &[
                    det(PERSON, 0.9, x, 100.0, 60.0, 160.0),
                    det(BAG, 0.7, x + 10.0, 180.0, 40.0, 40.0),
                ],
            );
        }
        let tracks = tr.tracks();
        assert_eq!(tracks.len(), 2);
        assert!(tracks.iter().all(|t| t.hits == 5));
        assert_ne!(tracks[0].class_id, tracks[1].class_id);
    }

    #[test]
    fn two_people_passing_keep_their_ids() {
        let mut tr = Tracker::new(TrackerConfig::default());
        let mut first: Option<(u64, u64)> = None;
        for i in 0..10 {
            let t = i as f64 * 0.5;
            // A walks right, B walks left, 400 px apart at the start, on different rows.
            let a = det(PERSON, 0.9, 100.0 + 60.0 * t as f32, 100.0, 50.0, 120.0);
            let b = det(PERSON, 0.9, 500.0 - 60.0 * t as f32, 260.0, 50.0, 120.0);
            tr.update(t, &[a.clone(), b.clone()]);
            let id_of = |d: &Detection| {
                tr.tracks()
                    .iter()
                    .find(|tk| tk.bbox == d.bbox)
                    .map(|tk| tk.id)
                    .unwrap()
            };
            let ids = (id_of(&a), id_of(&b));
            assert_eq!(*first.get_or_insert(ids), ids, "ids changed at {t}");
        }
    }

    #[test]
    fn someone_far_away_is_a_new_track() {
        let mut tr = Tracker::new(TrackerConfig::default());
        tr.update(0.0, &[det(PERSON, 0.9, 0.0, 0.0, 50.0, 100.0)]);
        let first = tr.tracks()[0].id;
        // 2 s later, a person 600 px away (more than 2 diagonals of 112 px): not the same one.
        tr.update(2.0, &[det(PERSON, 0.9, 600.0, 0.0, 50.0, 100.0)]);
        assert_eq!(tr.tracks().len(), 2);
        assert!(tr.tracks().iter().any(|t| t.id != first && t.hits == 1));
    }

    #[test]
    fn time_going_backwards_is_clamped() {
        let mut tr = Tracker::new(TrackerConfig::default());
        tr.update(10.0, &[det(BAG, 0.9, 0.0, 0.0, 10.0, 10.0)]);
        tr.update(5.0, &[det(BAG, 0.9, 0.0, 0.0, 10.0, 10.0)]);
        assert_eq!(tr.tracks()[0].last_seen, 10.0);
        assert_eq!(tr.tracks()[0].velocity, (0.0, 0.0));
    }
}
