//! Evidence pictures of an incident event: the event picture with the objects, the owner and the
//! zone drawn, and the plain before / actor / after pictures, as JPEG.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use image::{Rgb, RgbImage};

use crate::analyze::{Analyzer, Event, FrameRole, Output};
use crate::annotate::{draw_box_with_label, draw_zone};
use crate::decode::{DecodedFrame, KeptPicture};
use crate::geometry::Polygon;

/// Colour of dumped objects.
const OBJECT: Rgb<u8> = Rgb([255, 64, 32]);
/// Colour of the owner.
const ACTOR: Rgb<u8> = Rgb([255, 210, 0]);
/// Colour of the zone outline.
const ZONE: Rgb<u8> = Rgb([0, 200, 255]);

/// The picture, with the zone, the objects and the owner drawn when `annotate` (the event
/// picture), untouched otherwise (the clean pictures are what a case officer compares).
/// `boxes_in` is the size of the picture the event's boxes were found in: the analysed picture
/// itself, or the sub-stream's when `frame` comes from the camera's main stream.
pub fn picture(
    frame: &DecodedFrame,
    event: &Event,
    zone: &Polygon,
    annotate: bool,
    boxes_in: (u32, u32),
) -> RgbImage {
    let mut img = frame.to_rgb();
    if annotate {
        let sx = img.width() as f32 / boxes_in.0.max(1) as f32;
        let sy = img.height() as f32 / boxes_in.1.max(1) as f32;
        let scaled = |b: &crate::geometry::BBox| (b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy);
        draw_zone(&mut img, zone, &event.zone, ZONE);
        for o in &event.objects {
            draw_box_with_label(
                &mut img,
                scaled(&o.bbox),
                &format!("{} {:.2}", o.class, o.score),
                OBJECT,
            );
        }
        if let Some(a) = &event.actor {
            draw_box_with_label(&mut img, scaled(&a.bbox), &a.class, ACTOR);
        }
    }
    img
}

/// Longer side of a crop, pixels: big enough for an operator to judge a bag or a face.
const CROP_SIDE: u32 = 320;

/// A zoomed crop of `img` around `bbox` (pixels of a picture of size `boxes_in`), the box grown
/// by half its size on every side (at least 48 px) to show what lies around it, scaled so its
/// longer side is [`CROP_SIDE`]. `None` for a box outside the picture.
pub fn crop(
    img: &RgbImage,
    bbox: &crate::geometry::BBox,
    boxes_in: (u32, u32),
) -> Option<RgbImage> {
    let sx = img.width() as f32 / boxes_in.0.max(1) as f32;
    let sy = img.height() as f32 / boxes_in.1.max(1) as f32;
    let (x1, y1, x2, y2) = (bbox.x1 * sx, bbox.y1 * sy, bbox.x2 * sx, bbox.y2 * sy);
    let grow_x = ((x2 - x1) * 0.5).max(48.0);
    let grow_y = ((y2 - y1) * 0.5).max(48.0);
    let left = (x1 - grow_x).max(0.0).floor() as u32;
    let top = (y1 - grow_y).max(0.0).floor() as u32;
    let right = ((x2 + grow_x).ceil() as u32).min(img.width());
    let bottom = ((y2 + grow_y).ceil() as u32).min(img.height());
    if right <= left + 1 || bottom <= top + 1 {
        return None;
    }
    let (w, h) = (right - left, bottom - top);
    let part = image::imageops::crop_imm(img, left, top, w, h).to_image();
    let scale = CROP_SIDE as f32 / w.max(h) as f32;
    let (cw, ch) = (
        ((w as f32 * scale).round() as u32).max(1),
        ((h as f32 * scale).round() as u32).max(1),
    );
    Some(image::imageops::resize(
        &part,
        cw,
        ch,
        image::imageops::FilterType::Triangle,
    ))
}

/// Encodes a picture as JPEG.
pub fn encode_jpeg(rgb: &RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(rgb)?;
    Ok(out.into_inner())
}

/// Encodes `img` as JPEG (quality 85) into `path` ([`crate::durable::write`]). Returns the bytes
/// written.
pub fn write_jpeg(img: &RgbImage, path: &Path) -> std::io::Result<Vec<u8>> {
    let bytes = encode_jpeg(img, 85).map_err(std::io::Error::other)?;
    crate::durable::write(path, &bytes)?;
    Ok(bytes)
}

/// A picture of an event, with what it shows.
pub type EventPicture = (FrameRole, KeptPicture);

/// Most pictures of the history an [`EvidenceFrames`] holds (a 720p picture is 1.4 MB: a busy
/// camera analysed twice a second would otherwise hold 40 of them). An idle camera's pictures,
/// keyframes decoded alone, are held as those keyframes ([`KeptPicture`]: 0.1–0.2 MB at 720p).
pub const MAX_HISTORY_PICTURES: usize = 10;

/// The pictures an analyzer may still refer to: analysed pictures of the last
/// [`Analyzer::HISTORY_S`] seconds, at most [`MAX_HISTORY_PICTURES`] of them (thinned where they
/// are densest), and those it asked to keep (until it releases them). A keep names a picture by
/// its time; when that one was thinned out, the nearest earlier one stands in for it (an earlier
/// picture never shows an object that was not there yet).
#[derive(Default)]
pub struct EvidenceFrames {
    history: VecDeque<(f64, KeptPicture)>,
    kept: Vec<(f64, KeptPicture)>,
}

impl EvidenceFrames {
    /// Records the analysed picture taken at `now`, applies the analyzer's keeps, and returns
    /// each event with its pictures (by role); then applies the releases.
    pub fn resolve(
        &mut self,
        now: f64,
        frame: &Arc<DecodedFrame>,
        out: &Output,
    ) -> Vec<(Event, Vec<EventPicture>)> {
        self.history.push_back((now, KeptPicture::compact(frame)));
        while self
            .history
            .front()
            .is_some_and(|(t, _)| *t < now - Analyzer::HISTORY_S)
        {
            self.history.pop_front();
        }
        for t in &out.keep {
            let at_or_before = self.history.iter().rev().find(|(h, _)| h <= t);
            if let Some((_, f)) = at_or_before {
                self.kept.push((*t, f.clone()));
            }
        }
        self.thin();
        let events = out
            .events
            .iter()
            .map(|e| {
                let pictures = e
                    .frames
                    .iter()
                    .filter_map(|r| {
                        let f = if r.at == now {
                            // In hand: no need to decode it again.
                            Some(KeptPicture::pixels_of(frame))
                        } else {
                            self.kept
                                .iter()
                                .find(|(t, _)| *t == r.at)
                                .map(|(_, f)| f.clone())
                        };
                        f.map(|f| (r.role, f))
                    })
                    .collect();
                (e.clone(), pictures)
            })
            .collect();
        for t in &out.release {
            if let Some(i) = self.kept.iter().position(|(k, _)| k == t) {
                self.kept.swap_remove(i);
            }
        }
        events
    }

    /// Drops history pictures where they are densest until at most [`MAX_HISTORY_PICTURES`]
    /// remain; the two newest always stay.
    fn thin(&mut self) {
        while self.history.len() > MAX_HISTORY_PICTURES {
            let n = self.history.len();
            // The picture with the least time since the one before it (ties: the older).
            let densest = (1..n - 2)
                .min_by(|&a, &b| {
                    let gap = |i: usize| self.history[i].0 - self.history[i - 1].0;
                    gap(a).total_cmp(&gap(b))
                })
                .unwrap_or(0);
            self.history.remove(densest);
        }
    }

    /// Pictures held (history and kept).
    pub fn held(&self) -> usize {
        self.history.len() + self.kept.len()
    }
}

/// File name of an evidence picture: `incident-N-KIND-ROLE.jpg`.
pub fn file_name(event: &Event, role: FrameRole) -> String {
    format!(
        "incident-{}-{}-{}.jpg",
        event.incident,
        event.kind.as_str(),
        crate::incident::role_name(role)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Instant, SystemTime};

    fn picture(pts_s: f64) -> Arc<DecodedFrame> {
        let (y, c) = (vec![0u8; 16], vec![128u8; 4]);
        Arc::new(
            DecodedFrame::from_planes(
                0,
                SystemTime::now(),
                Instant::now(),
                pts_s,
                false,
                (4, 4),
                (&y, &c, &c),
                (4, 2, 2),
            )
            .expect("consistent planes"),
        )
    }

    #[test]
    fn a_crop_zooms_on_the_box_with_its_surroundings_in_the_shown_pictures_pixels() {
        // The shown picture is the main stream (1280x720); the box was found in the sub-stream
        // (640x360) at [300, 200, 320, 220]: [600, 400, 640, 440] here, painted red.
        let mut img = RgbImage::from_pixel(1280, 720, Rgb([40, 40, 40]));
        for y in 400..440 {
            for x in 600..640 {
                img.put_pixel(x, y, Rgb([250, 0, 0]));
            }
        }
        let bbox = crate::geometry::BBox {
            x1: 300.0,
            y1: 200.0,
            x2: 320.0,
            y2: 220.0,
        };
        let c = crop(&img, &bbox, (640, 360)).expect("a crop");
        assert_eq!(c.width().max(c.height()), CROP_SIDE);
        // 40 px grown by 48 px each side: 136 px shown as 320, the red square in its middle.
        let centre = c.get_pixel(c.width() / 2, c.height() / 2);
        assert!(centre[0] > 200 && centre[1] < 50, "{centre:?}");
        let corner = c.get_pixel(2, 2);
        assert!(corner[0] < 60, "{corner:?}");
        // A box outside the picture has no crop.
        let outside = crate::geometry::BBox {
            x1: 700.0,
            y1: 400.0,
            x2: 720.0,
            y2: 420.0,
        };
        assert!(crop(&img, &outside, (640, 360)).is_none());
    }

    #[test]
    fn the_history_is_bounded_and_a_thinned_picture_is_stood_in_for_by_an_earlier_one() {
        let mut frames = EvidenceFrames::default();
        // Two pictures a second for 15 s.
        for i in 0..30 {
            let t = f64::from(i) * 0.5;
            frames.resolve(t, &picture(t), &Output::default());
            assert!(frames.held() <= MAX_HISTORY_PICTURES);
        }
        // Keep the picture of 3.5 s: thinned out by now, an earlier one stands in for it.
        let keep = Output {
            keep: vec![3.5],
            ..Output::default()
        };
        frames.resolve(15.0, &picture(15.0), &keep);
        assert_eq!(frames.kept.len(), 1);
        assert!(frames.kept[0].1.pts_s() <= 3.5);
        assert_eq!(
            frames.kept[0].0, 3.5,
            "kept under the time the analyzer named"
        );
        // The newest pictures are never thinned.
        let times: Vec<f64> = frames.history.iter().map(|(t, _)| *t).collect();
        assert_eq!(&times[times.len() - 2..], &[14.5, 15.0]);
    }
}
