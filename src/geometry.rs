//! Plane geometry on normalised frame coordinates (0..1 on both axes): zone polygons.

use serde::{Deserialize, Serialize};

/// A point in normalised frame coordinates: `x` from the left edge, `y` from the top, both 0..=1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 2]", into = "[f64; 2]")]
pub struct Point {
    /// Horizontal position, 0 = left edge, 1 = right edge.
    pub x: f64,
    /// Vertical position, 0 = top edge, 1 = bottom edge.
    pub y: f64,
}

impl From<[f64; 2]> for Point {
    fn from([x, y]: [f64; 2]) -> Self {
        Point { x, y }
    }
}

impl From<Point> for [f64; 2] {
    fn from(p: Point) -> Self {
        [p.x, p.y]
    }
}

/// Why a polygon cannot be used as a zone.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PolygonError {
    /// Fewer than three vertices.
    #[error("a polygon needs at least 3 points, got {0}")]
    TooFewPoints(usize),
    /// A vertex lies outside the frame (or is NaN / infinite).
    #[error("point {index} ({x}, {y}) is outside the frame: coordinates are normalised to 0..1")]
    OutOfFrame {
        /// Index of the offending vertex.
        index: usize,
        /// Its x coordinate.
        x: f64,
        /// Its y coordinate.
        y: f64,
    },
    /// Two non-adjacent edges cross or touch.
    #[error("the polygon intersects itself: edge {0} crosses edge {1}")]
    SelfIntersecting(usize, usize),
    /// All vertices on one line (or repeated): the polygon covers nothing.
    #[error("the polygon has zero area")]
    ZeroArea,
}

/// A simple (non-self-intersecting) polygon in normalised coordinates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Polygon(pub Vec<Point>);

impl Polygon {
    /// The whole frame.
    pub fn full_frame() -> Self {
        Polygon(vec![
            Point { x: 0.0, y: 0.0 },
            Point { x: 1.0, y: 0.0 },
            Point { x: 1.0, y: 1.0 },
            Point { x: 0.0, y: 1.0 },
        ])
    }

    /// Checks that the polygon can be used as a zone; returns the first problem found.
    pub fn validate(&self) -> Result<(), PolygonError> {
        let pts = &self.0;
        if pts.len() < 3 {
            return Err(PolygonError::TooFewPoints(pts.len()));
        }
        for (index, p) in pts.iter().enumerate() {
            let inside = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
            if !inside(p.x) || !inside(p.y) {
                return Err(PolygonError::OutOfFrame {
                    index,
                    x: p.x,
                    y: p.y,
                });
            }
        }
        let n = pts.len();
        for i in 0..n {
            for j in (i + 1)..n {
                let adjacent = j == i + 1 || (i == 0 && j == n - 1);
                if adjacent {
                    continue;
                }
                if segments_intersect(pts[i], pts[(i + 1) % n], pts[j], pts[(j + 1) % n]) {
                    return Err(PolygonError::SelfIntersecting(i, j));
                }
            }
        }
        if self.area() <= 1e-9 {
            return Err(PolygonError::ZeroArea);
        }
        Ok(())
    }

    /// Area by the shoelace formula (always positive).
    pub fn area(&self) -> f64 {
        let pts = &self.0;
        let n = pts.len();
        let twice: f64 = (0..n)
            .map(|i| {
                let (a, b) = (pts[i], pts[(i + 1) % n]);
                a.x * b.y - b.x * a.y
            })
            .sum();
        twice.abs() / 2.0
    }

    /// Whether `p` lies inside the polygon (even-odd rule; points on an edge may go either way).
    pub fn contains(&self, p: Point) -> bool {
        let pts = &self.0;
        let n = pts.len();
        let mut inside = false;
        let mut j = n.wrapping_sub(1);
        for i in 0..n {
            let (a, b) = (pts[i], pts[j]);
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

fn orientation(a: Point, b: Point, c: Point) -> f64 {
    (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x)
}

fn on_segment(a: Point, b: Point, p: Point) -> bool {
    p.x >= a.x.min(b.x) && p.x <= a.x.max(b.x) && p.y >= a.y.min(b.y) && p.y <= a.y.max(b.y)
}

/// Whether segments `p1p2` and `q1q2` share at least one point.
fn segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool {
    let d1 = orientation(q1, q2, p1);
    let d2 = orientation(q1, q2, p2);
    let d3 = orientation(p1, p2, q1);
    let d4 = orientation(p1, p2, q2);
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && on_segment(q1, q2, p1))
        || (d2 == 0.0 && on_segment(q1, q2, p2))
        || (d3 == 0.0 && on_segment(p1, p2, q1))
        || (d4 == 0.0 && on_segment(p1, p2, q2))
}

/// An axis-aligned box in source pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

impl BBox {
    /// Width × height (0 for an inverted box).
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    /// Intersection over union.
    pub fn iou(&self, o: &BBox) -> f32 {
        let iw = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let ih = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + o.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// The middle of the bottom edge.
    pub fn bottom_centre(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, self.y2)
    }

    /// The centre point.
    pub fn centre(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)
    }

    /// Width.
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    /// Height.
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    /// Area of the overlap with `o` (0 if they do not overlap).
    pub fn intersection_area(&self, o: &BBox) -> f32 {
        let iw = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let ih = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        iw * ih
    }

    /// The share (0..1) of this box covered by `o`.
    pub fn covered_by(&self, o: &BBox) -> f32 {
        let a = self.area();
        if a <= 0.0 {
            0.0
        } else {
            self.intersection_area(o) / a
        }
    }

    /// The smallest box holding both.
    pub fn union(&self, o: &BBox) -> BBox {
        BBox {
            x1: self.x1.min(o.x1),
            y1: self.y1.min(o.y1),
            x2: self.x2.max(o.x2),
            y2: self.y2.max(o.y2),
        }
    }

    /// The box grown by `share` of its width and height on every side.
    pub fn grown(&self, share: f32) -> BBox {
        let (mx, my) = (self.width() * share, self.height() * share);
        BBox {
            x1: self.x1 - mx,
            y1: self.y1 - my,
            x2: self.x2 + mx,
            y2: self.y2 + my,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poly(points: &[[f64; 2]]) -> Polygon {
        Polygon(points.iter().map(|&p| p.into()).collect())
    }

    #[test]
    fn square_is_valid_and_contains_its_centre() {
        let p = poly(&[[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]);
        assert_eq!(p.validate(), Ok(()));
        assert!((p.area() - 0.64).abs() < 1e-12);
        assert!(p.contains(Point { x: 0.5, y: 0.5 }));
        assert!(!p.contains(Point { x: 0.95, y: 0.5 }));
    }

    #[test]
    fn bow_tie_is_self_intersecting() {
        let p = poly(&[[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]);
        assert_eq!(p.validate(), Err(PolygonError::SelfIntersecting(0, 2)));
    }

    #[test]
    fn problems_are_named() {
        assert_eq!(
            poly(&[[0.1, 0.1], [0.2, 0.2]]).validate(),
            Err(PolygonError::TooFewPoints(2))
        );
        assert!(matches!(
            poly(&[[0.1, 0.1], [1.2, 0.1], [0.5, 0.5]]).validate(),
            Err(PolygonError::OutOfFrame { index: 1, .. })
        ));
        assert_eq!(
            poly(&[[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]).validate(),
            Err(PolygonError::ZeroArea)
        );
        assert!(matches!(
            poly(&[[f64::NAN, 0.1], [0.2, 0.2], [0.3, 0.1]]).validate(),
            Err(PolygonError::OutOfFrame { index: 0, .. })
        ));
    }

    #[test]
    fn concave_polygon_is_valid() {
        let p = poly(&[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.3], [0.0, 1.0]]);
        assert_eq!(p.validate(), Ok(()));
        assert!(!p.contains(Point { x: 0.5, y: 0.6 }));
        assert!(p.contains(Point { x: 0.5, y: 0.1 }));
    }
}
