//! From the detector's raw output to detections in source pixels: per-class confidence
//! thresholds, class-aware non-maximum suppression (a person never suppresses the bag they
//! carry), undoing the letterbox, clamping, a minimum area, and zone membership by the box's
//! bottom-centre point (where an object touches the ground). When two pictures share a run,
//! each takes the boxes whose centre lies in its tile.

use super::model::OutputLayout;
use super::preprocess::Letterbox;
use crate::detection::Detection;
use crate::geometry::{BBox, Point, Polygon};

/// Thresholds for turning raw output into detections.
#[derive(Clone, Debug)]
pub struct PostprocessConfig {
    /// Minimum score per class id.
    pub class_threshold: Vec<f32>,
    /// IoU above which a lower-scored box of the same class is suppressed.
    pub iou_threshold: f32,
    /// Boxes smaller than this (source pixels²) are dropped.
    pub min_area: f32,
    /// At most this many detections per picture, best first.
    pub max_detections: usize,
}

impl PostprocessConfig {
    /// The same threshold for `classes` classes.
    pub fn uniform(classes: usize, threshold: f32) -> Self {
        PostprocessConfig {
            class_threshold: vec![threshold; classes],
            iou_threshold: 0.45,
            min_area: 0.0,
            max_detections: 300,
        }
    }
}

/// Reusable scratch space for decoding outputs.
#[derive(Default)]
pub struct Postprocessor {
    best_score: Vec<f32>,
    best_class: Vec<u16>,
    candidates: Vec<(f32, usize, usize)>,
}

/// Before NMS, keep at most this many candidates (best first), like Ultralytics' `max_nms`.
const MAX_CANDIDATES: usize = 30_000;

impl Postprocessor {
    /// Decodes one image's output (`output.len() == layout.len()`).
    pub fn run(
        &mut self,
        output: &[f32],
        layout: OutputLayout,
        lb: &Letterbox,
        cfg: &PostprocessConfig,
        zones: &[Polygon],
    ) -> Vec<Detection> {
        assert_eq!(
            output.len(),
            layout.len(),
            "output length does not match its layout"
        );
        let anchors = layout.anchors();
        let classes = layout.classes().min(u16::MAX as usize);
        self.best_score.clear();
        self.best_score.resize(anchors, f32::NEG_INFINITY);
        self.best_class.clear();
        self.best_class.resize(anchors, 0);
        let min_threshold = cfg
            .class_threshold
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min);
        // Best class per anchor. Channels-first rows are contiguous per class, so the inner loop
        // runs over anchors (vectorisable, cache-friendly).
        match layout {
            OutputLayout::ChannelsFirst { .. } => {
                for c in 0..classes {
                    let row = &output[(4 + c) * anchors..(5 + c) * anchors];
                    for ((best, class), &s) in self
                        .best_score
                        .iter_mut()
                        .zip(self.best_class.iter_mut())
                        .zip(row)
                    {
                        if s > *best {
                            *best = s;
                            *class = c as u16;
                        }
                    }
                }
            }
            OutputLayout::AnchorsFirst { .. } => {
                for (a, row) in output.chunks_exact(5 + classes).enumerate() {
                    let obj = row[4];
                    for (c, &s) in row[5..].iter().enumerate() {
                        if obj * s > self.best_score[a] {
                            self.best_score[a] = obj * s;
                            self.best_class[a] = c as u16;
                        }
                    }
                }
            }
        }
        self.candidates.clear();
        for (a, (&s, &c)) in self.best_score.iter().zip(&self.best_class).enumerate() {
            if s >= min_threshold
                && s >= cfg
                    .class_threshold
                    .get(c as usize)
                    .copied()
                    .unwrap_or(f32::INFINITY)
            {
                self.candidates.push((s, c as usize, a));
            }
        }
        self.candidates.sort_unstable_by(|x, y| y.0.total_cmp(&x.0));
        self.candidates.truncate(MAX_CANDIDATES);

        let (sw, sh) = (lb.src.0 as f32, lb.src.1 as f32);
        let mut kept: Vec<Detection> = Vec::new();
        for &(score, class_id, a) in &self.candidates {
            let (cx, cy, w, h) = match layout {
                OutputLayout::ChannelsFirst { .. } => (
                    output[a],
                    output[anchors + a],
                    output[2 * anchors + a],
                    output[3 * anchors + a],
                ),
                OutputLayout::AnchorsFirst { .. } => {
                    let r = &output[a * (5 + classes)..];
                    (r[0], r[1], r[2], r[3])
                }
            };
            // Another picture's detection when two share the run.
            if !lb.tile.contains(cx, cy) {
                continue;
            }
            let (x1, y1) = lb.to_source(cx - w / 2.0, cy - h / 2.0);
            let (x2, y2) = lb.to_source(cx + w / 2.0, cy + h / 2.0);
            let bbox = BBox {
                x1: x1.clamp(0.0, sw),
                y1: y1.clamp(0.0, sh),
                x2: x2.clamp(0.0, sw),
                y2: y2.clamp(0.0, sh),
            };
            let area = bbox.area();
            // NaN coordinates (a broken model) give a NaN area: drop those too.
            if area.is_nan() || area <= 0.0 || area < cfg.min_area {
                continue;
            }
            // Class-aware: only boxes of the same class suppress each other.
            if kept
                .iter()
                .any(|k| k.class_id == class_id && k.bbox.iou(&bbox) > cfg.iou_threshold)
            {
                continue;
            }
            let (bx, by) = bbox.bottom_centre();
            let foot = Point {
                x: f64::from(bx / sw),
                y: f64::from(by / sh),
            };
            let zones = zones
                .iter()
                .enumerate()
                .filter(|(_, z)| z.contains(foot))
                .map(|(i, _)| i)
                .collect();
            kept.push(Detection {
                class_id,
                score,
                bbox,
                zones,
            });
            if kept.len() >= cfg.max_detections {
                break;
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A channels-first output with the given boxes (input pixels) and class scores.
    fn output(classes: usize, anchors: usize, boxes: &[([f32; 4], usize, f32)]) -> Vec<f32> {
        let mut out = vec![0.0; (4 + classes) * anchors];
        for (a, (b, c, s)) in boxes.iter().enumerate() {
            for k in 0..4 {
                out[k * anchors + a] = b[k];
            }
            out[(4 + c) * anchors + a] = *s;
        }
        out
    }

    fn run(
        out: &[f32],
        classes: usize,
        anchors: usize,
        cfg: &PostprocessConfig,
        zones: &[Polygon],
    ) -> Vec<Detection> {
        let lb = Letterbox::new((640, 640), (640, 640)).unwrap();
        Postprocessor::default().run(
            out,
            OutputLayout::ChannelsFirst { classes, anchors },
            &lb,
            cfg,
            zones,
        )
    }

    #[test]
    fn nms_is_class_aware() {
        // A person (class 0) and the bag they carry (class 1) overlap heavily; a duplicate person
        // box overlaps the first person.
        let out = output(
            2,
            8,
            &[
                ([100.0, 100.0, 80.0, 200.0], 0, 0.9),
                ([102.0, 102.0, 80.0, 200.0], 0, 0.8),
                ([100.0, 120.0, 70.0, 150.0], 1, 0.7),
            ],
        );
        let d = run(&out, 2, 8, &PostprocessConfig::uniform(2, 0.25), &[]);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!((d[0].class_id, d[0].score), (0, 0.9));
        assert_eq!((d[1].class_id, d[1].score), (1, 0.7));
    }

    #[test]
    fn per_class_thresholds_and_min_area() {
        let out = output(
            2,
            4,
            &[
                ([100.0, 100.0, 50.0, 50.0], 0, 0.4),
                ([300.0, 300.0, 50.0, 50.0], 1, 0.4),
                ([500.0, 500.0, 4.0, 4.0], 1, 0.9),
            ],
        );
        let mut cfg = PostprocessConfig::uniform(2, 0.25);
        cfg.class_threshold[0] = 0.5;
        cfg.min_area = 100.0;
        let d = run(&out, 2, 4, &cfg, &[]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].class_id, 1);
    }

    #[test]
    fn boxes_are_unletterboxed_and_clamped() {
        let lb = Letterbox::new((1280, 720), (640, 640)).unwrap();
        // A box centred at input (320, 320) of 100x50, and one that runs off the left edge.
        let out = output(
            1,
            2,
            &[
                ([320.0, 320.0, 100.0, 50.0], 0, 0.9),
                ([10.0, 320.0, 60.0, 60.0], 0, 0.8),
            ],
        );
        let d = Postprocessor::default().run(
            &out,
            OutputLayout::ChannelsFirst {
                classes: 1,
                anchors: 2,
            },
            &lb,
            &PostprocessConfig::uniform(1, 0.25),
            &[],
        );
        let b = d[0].bbox;
        assert!(
            (b.x1 - 540.0).abs() < 1e-3 && (b.x2 - 740.0).abs() < 1e-3,
            "{b:?}"
        );
        assert!(
            (b.y1 - 310.0).abs() < 1e-3 && (b.y2 - 410.0).abs() < 1e-3,
            "{b:?}"
        );
        assert_eq!(d[1].bbox.x1, 0.0);
    }

    #[test]
    fn two_pictures_in_one_run_each_take_the_boxes_of_their_tile() {
        use crate::detect::preprocess::Tile;
        let [top, bottom] = Tile::halves((640, 640));
        let lbs = [top, bottom].map(|t| Letterbox::in_tile((1280, 720), (640, 640), t).unwrap());
        // 16:9 in a 640x320 half: 569x320 at x 35.
        assert_eq!((lbs[0].inner, lbs[0].pad), ((569, 320), (35, 0)));
        assert_eq!(lbs[1].pad, (35, 320));
        // One box in each half; the second runs over the seam but is centred below it.
        let out = output(
            1,
            2,
            &[
                ([320.0, 160.0, 100.0, 50.0], 0, 0.9),
                ([320.0, 330.0, 60.0, 60.0], 0, 0.8),
            ],
        );
        let layout = OutputLayout::ChannelsFirst {
            classes: 1,
            anchors: 2,
        };
        let cfg = PostprocessConfig::uniform(1, 0.25);
        let mut post = Postprocessor::default();
        let upper = post.run(&out, layout, &lbs[0], &cfg, &[]);
        let lower = post.run(&out, layout, &lbs[1], &cfg, &[]);
        assert_eq!((upper.len(), lower.len()), (1, 1), "{upper:?} {lower:?}");
        assert_eq!(upper[0].score, 0.9);
        assert_eq!(lower[0].score, 0.8);
        // Centred at (320, 160) of the top half = the middle of the 1280x720 picture.
        let b = upper[0].bbox;
        let centre = ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0);
        assert!(
            (centre.0 - 640.0).abs() < 2.0 && (centre.1 - 360.0).abs() < 1.0,
            "{b:?}"
        );
        // The lower box's top, above the seam, is clamped to its picture's top edge.
        assert_eq!(lower[0].bbox.y1, 0.0);
    }

    #[test]
    fn zone_membership_uses_the_bottom_centre() {
        let ground = Polygon(vec![
            [0.0, 0.5].into(),
            [1.0, 0.5].into(),
            [1.0, 1.0].into(),
            [0.0, 1.0].into(),
        ]);
        // Box from y=200 to y=400 in a 640 picture: the top is outside, the foot (y=400) inside.
        let out = output(
            1,
            2,
            &[
                ([320.0, 300.0, 50.0, 200.0], 0, 0.9),
                ([100.0, 100.0, 50.0, 100.0], 0, 0.9),
            ],
        );
        let d = run(&out, 1, 2, &PostprocessConfig::uniform(1, 0.25), &[ground]);
        assert_eq!(d[0].zones, vec![0]);
        assert!(d[1].zones.is_empty());
    }

    #[test]
    fn anchors_first_layout_multiplies_objectness() {
        // 2 anchors, 2 classes: rows [cx, cy, w, h, obj, c0, c1].
        let out = vec![
            100.0, 100.0, 20.0, 20.0, 0.5, 0.9, 0.1, 300.0, 300.0, 20.0, 20.0, 0.9, 0.1, 0.2,
        ];
        let lb = Letterbox::new((640, 640), (640, 640)).unwrap();
        let d = Postprocessor::default().run(
            &out,
            OutputLayout::AnchorsFirst {
                classes: 2,
                anchors: 2,
            },
            &lb,
            &PostprocessConfig::uniform(2, 0.3),
            &[],
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].class_id, 0);
        assert!((d[0].score - 0.45).abs() < 1e-6);
    }
}
