//! Evidence pictures of an incident event: the event picture with the objects, the owner and the
//! zone drawn, and the plain before / actor / after pictures, as JPEG.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::analyze::{Event, FrameRole};
use crate::annotate::{draw_box_with_label, draw_zone};
use crate::decode::DecodedFrame;
use crate::geometry::Polygon;

/// Colour of dumped objects.
const OBJECT: Rgb<u8> = Rgb([255, 64, 32]);
/// Colour of the owner.
const ACTOR: Rgb<u8> = Rgb([255, 210, 0]);
/// Colour of the zone outline.
const ZONE: Rgb<u8> = Rgb([0, 200, 255]);

/// The picture for `role`: annotated for the event picture (zone, objects, owner), untouched
/// for the others (the clean picture is what a case officer compares).
pub fn picture(frame: &DecodedFrame, event: &Event, zone: &Polygon, role: FrameRole) -> RgbImage {
    let mut img = frame.to_rgb();
    if role == FrameRole::Event {
        draw_zone(&mut img, zone, &event.zone, ZONE);
        for o in &event.objects {
            draw_box_with_label(&mut img, (o.bbox.x1, o.bbox.y1, o.bbox.x2, o.bbox.y2), &format!("{} {:.2}", o.class, o.score), OBJECT);
        }
        if let Some(a) = &event.actor {
            draw_box_with_label(&mut img, (a.bbox.x1, a.bbox.y1, a.bbox.x2, a.bbox.y2), &a.class, ACTOR);
        }
    }
    img
}

/// Encodes `img` as JPEG (quality 85) into `path`, through a temporary file and a rename so a
/// reader never sees half a picture. Returns the bytes written.
pub fn write_jpeg(img: &RgbImage, path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(img)
        .map_err(std::io::Error::other)?;
    let tmp = path.with_extension("jpg.tmp");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(bytes)
}
