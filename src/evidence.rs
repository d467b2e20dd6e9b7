//! Evidence pictures of an incident event: the event picture with the objects, the owner and the
//! zone drawn, and the plain before / actor / after pictures, as JPEG.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use image::{Rgb, RgbImage};

use crate::analyze::{Analyzer, Event, FrameRole, Output};
use crate::annotate::{draw_box_with_label, draw_zone};
use crate::decode::DecodedFrame;
use crate::geometry::Polygon;

/// Colour of dumped objects.
const OBJECT: Rgb<u8> = Rgb([255, 64, 32]);
/// Colour of the owner.
const ACTOR: Rgb<u8> = Rgb([255, 210, 0]);
/// Colour of the zone outline.
const ZONE: Rgb<u8> = Rgb([0, 200, 255]);

/// The picture, with the zone, the objects and the owner drawn when `annotate` (the event
/// picture), untouched otherwise (the clean pictures are what a case officer compares).
pub fn picture(frame: &DecodedFrame, event: &Event, zone: &Polygon, annotate: bool) -> RgbImage {
    let mut img = frame.to_rgb();
    if annotate {
        draw_zone(&mut img, zone, &event.zone, ZONE);
        for o in &event.objects {
            draw_box_with_label(
                &mut img,
                (o.bbox.x1, o.bbox.y1, o.bbox.x2, o.bbox.y2),
                &format!("{} {:.2}", o.class, o.score),
                OBJECT,
            );
        }
        if let Some(a) = &event.actor {
            draw_box_with_label(
                &mut img,
                (a.bbox.x1, a.bbox.y1, a.bbox.x2, a.bbox.y2),
                &a.class,
                ACTOR,
            );
        }
    }
    img
}

/// Encodes a picture as JPEG.
pub fn encode_jpeg(rgb: &RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(rgb)?;
    Ok(out.into_inner())
}

/// Encodes `img` as JPEG (quality 85) into `path`, through a temporary file and a rename so a
/// reader never sees half a picture. Returns the bytes written.
pub fn write_jpeg(img: &RgbImage, path: &Path) -> std::io::Result<Vec<u8>> {
    let bytes = encode_jpeg(img, 85).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("jpg.tmp");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(bytes)
}

/// A picture of an event, with what it shows.
pub type EventPicture = (FrameRole, Arc<DecodedFrame>);

/// The pictures an analyzer may still refer to: the last [`Analyzer::HISTORY_S`] seconds of
/// analysed pictures, and those it asked to keep (until it releases them).
#[derive(Default)]
pub struct EvidenceFrames {
    history: VecDeque<(f64, Arc<DecodedFrame>)>,
    kept: Vec<(f64, Arc<DecodedFrame>)>,
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
        self.history.push_back((now, frame.clone()));
        while self
            .history
            .front()
            .is_some_and(|(t, _)| *t < now - Analyzer::HISTORY_S)
        {
            self.history.pop_front();
        }
        for t in &out.keep {
            if let Some((_, f)) = self.history.iter().find(|(h, _)| h == t) {
                self.kept.push((*t, f.clone()));
            }
        }
        let events = out
            .events
            .iter()
            .map(|e| {
                let pictures = e
                    .frames
                    .iter()
                    .filter_map(|r| {
                        let f = if r.at == now {
                            Some(frame.clone())
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
