//! What the detector reports about one picture: plain data shared by the detect stage (which
//! makes it) and the analyzer (which reads it), so neither depends on the other.

use serde::{Deserialize, Serialize};

use crate::geometry::BBox;

/// One detected object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Class id (index into the model's class names).
    pub class_id: usize,
    /// Confidence, 0..1.
    pub score: f32,
    /// Box in source pixels, clamped to the picture.
    pub bbox: BBox,
    /// Indices of the camera's zones that hold the box's bottom-centre point.
    pub zones: Vec<usize>,
}
