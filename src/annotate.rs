//! Drawing on pictures: boxes with labels, zone outlines. Labels are drawn with the label font
//! loaded at start-up ([`load_label_font`]: a CJK font, so a Chinese zone or camera name reads
//! on an evidence picture), or, without one, a small built-in 5×7 bitmap font (upper-case
//! letters, digits and a little punctuation).

use std::path::Path;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

use crate::geometry::Polygon;

/// Glyph rows (5 bits each, most significant bit on the left), 7 rows per glyph.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        ' ' => [0; 7],
        _ => [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F],
    }
}

/// A distinct, stable colour for a class id.
pub fn class_colour(class_id: usize) -> Rgb<u8> {
    const PALETTE: [[u8; 3]; 10] = [
        [255, 56, 56],
        [255, 157, 151],
        [255, 112, 31],
        [255, 178, 29],
        [207, 210, 49],
        [72, 249, 10],
        [26, 147, 52],
        [0, 212, 187],
        [44, 153, 168],
        [0, 194, 255],
    ];
    Rgb(PALETTE[class_id % PALETTE.len()])
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// Fills a rectangle (clipped to the picture).
pub fn fill_rect(img: &mut RgbImage, x1: i64, y1: i64, x2: i64, y2: i64, c: Rgb<u8>) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for y in y1.max(0)..y2.min(h) {
        for x in x1.max(0)..x2.min(w) {
            img.put_pixel(x as u32, y as u32, c);
        }
    }
}

/// Draws a rectangle outline `thickness` pixels wide.
pub fn draw_rect(
    img: &mut RgbImage,
    x1: f32,
    y1: f32,
    x2: f32,
    y2: f32,
    thickness: u32,
    c: Rgb<u8>,
) {
    let (x1, y1, x2, y2) = (
        x1.round() as i64,
        y1.round() as i64,
        x2.round() as i64,
        y2.round() as i64,
    );
    let t = thickness as i64;
    fill_rect(img, x1, y1, x2 + 1, y1 + t, c);
    fill_rect(img, x1, y2 - t + 1, x2 + 1, y2 + 1, c);
    fill_rect(img, x1, y1, x1 + t, y2 + 1, c);
    fill_rect(img, x2 - t + 1, y1, x2 + 1, y2 + 1, c);
}

/// Draws a line (Bresenham) `thickness` pixels wide.
pub fn draw_line(
    img: &mut RgbImage,
    (x0, y0): (f32, f32),
    (x1, y1): (f32, f32),
    thickness: u32,
    c: Rgb<u8>,
) {
    let (mut x, mut y) = (x0.round() as i64, y0.round() as i64);
    let (xe, ye) = (x1.round() as i64, y1.round() as i64);
    let (dx, dy) = ((xe - x).abs(), -(ye - y).abs());
    let (sx, sy) = (if x < xe { 1 } else { -1 }, if y < ye { 1 } else { -1 });
    let mut err = dx + dy;
    let r = thickness as i64 / 2;
    loop {
        for oy in -r..=r {
            for ox in -r..=r {
                put(img, x + ox, y + oy, c);
            }
        }
        if x == xe && y == ye {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// Where Debian's CJK fonts are (`fonts-wqy-microhei`, `fonts-noto-cjk`), tried in order when
/// no font is configured.
pub const CJK_FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
];

static LABEL_FONT: OnceLock<FontRef<'static>> = OnceLock::new();

/// Loads the font labels are drawn with (TrueType or OpenType, the first face of a
/// collection), mapped from the file rather than read into memory: only the pages of the glyphs
/// drawn become resident. `None` tries [`CJK_FONTS`]. Once per process; later calls keep the
/// first font. Returns the file used, or why none could be.
pub fn load_label_font(path: Option<&Path>) -> Result<&'static Path, String> {
    let candidates: Vec<&Path> = match path {
        Some(p) => vec![p],
        None => CJK_FONTS.iter().map(Path::new).collect(),
    };
    let mut why = Vec::new();
    for p in candidates {
        match map_font(p) {
            Ok(font) => {
                let _ = LABEL_FONT.set(font);
                return Ok(Box::leak(p.to_path_buf().into_boxed_path()));
            }
            Err(e) => why.push(format!("{}: {e}", p.display())),
        }
    }
    Err(why.join("; "))
}

fn map_font(path: &Path) -> Result<FontRef<'static>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len() as usize;
    if len == 0 {
        return Err("empty file".into());
    }
    // SAFETY: a read-only private mapping of a whole file that is never unmapped (the font lives
    // as long as the process); font files are not rewritten while the service runs.
    let data: &'static [u8] = unsafe {
        use std::os::fd::AsRawFd;
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        );
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().to_string());
        }
        std::slice::from_raw_parts(ptr as *const u8, len)
    };
    FontRef::try_from_slice_and_index(data, 0).map_err(|e| format!("not a font: {e}"))
}

/// Width of `text` as [`draw_label`] draws it at `scale`.
pub fn label_width(text: &str, scale: u32) -> i64 {
    label_width_in(LABEL_FONT.get(), text, scale)
}

fn label_width_in(font: Option<&FontRef<'static>>, text: &str, scale: u32) -> i64 {
    let s = scale.max(1) as i64;
    match font {
        Some(font) => {
            let f = font.as_scaled(PxScale::from(9.0 * s as f32));
            let advance: f32 = text.chars().map(|c| f.h_advance(f.glyph_id(c))).sum();
            advance.ceil() as i64 + 2 * s
        }
        None => text.chars().count() as i64 * 6 * s + s,
    }
}

/// Draws `text` with its top-left corner at (x, y), on a filled background 9 × `scale` pixels
/// high, with the label font (or the bitmap font, each of its pixels `scale` pixels wide).
/// Returns the width drawn.
pub fn draw_label(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    text: &str,
    scale: u32,
    fg: Rgb<u8>,
    bg: Rgb<u8>,
) -> i64 {
    draw_label_in(LABEL_FONT.get(), img, (x, y), text, scale, (fg, bg))
}

fn draw_label_in(
    font: Option<&FontRef<'static>>,
    img: &mut RgbImage,
    (x, y): (i64, i64),
    text: &str,
    scale: u32,
    (fg, bg): (Rgb<u8>, Rgb<u8>),
) -> i64 {
    let s = scale.max(1) as i64;
    let width = label_width_in(font, text, scale);
    fill_rect(img, x, y, x + width, y + 9 * s, bg);
    if let Some(font) = font {
        draw_text(img, font, x + s, y, text, 9.0 * s as f32, fg);
        return width;
    }
    for (i, ch) in text.chars().enumerate() {
        let gx = x + s + i as i64 * 6 * s;
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    fill_rect(
                        img,
                        gx + col * s,
                        y + s + row as i64 * s,
                        gx + (col + 1) * s,
                        y + s + (row as i64 + 1) * s,
                        fg,
                    );
                }
            }
        }
    }
    width
}

/// Draws `text` with `font` at `px` pixels high, its line's top at (x, y), blending `fg` over
/// what is there by the glyphs' coverage.
fn draw_text(
    img: &mut RgbImage,
    font: &FontRef<'static>,
    x: i64,
    y: i64,
    text: &str,
    px: f32,
    fg: Rgb<u8>,
) {
    let f = font.as_scaled(PxScale::from(px));
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let mut pen = x as f32;
    let baseline = y as f32 + f.ascent();
    for c in text.chars() {
        let id = f.glyph_id(c);
        let glyph = id.with_scale_and_position(px, ab_glyph::point(pen, baseline));
        pen += f.h_advance(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let (px_, py_) = (
                bounds.min.x as i64 + i64::from(gx),
                bounds.min.y as i64 + i64::from(gy),
            );
            if (0..w).contains(&px_) && (0..h).contains(&py_) {
                let p = img.get_pixel_mut(px_ as u32, py_ as u32);
                let a = coverage.clamp(0.0, 1.0);
                for k in 0..3 {
                    p.0[k] = (f32::from(p.0[k]) * (1.0 - a) + f32::from(fg.0[k]) * a).round() as u8;
                }
            }
        });
    }
}

/// A label scale that reads well on a picture of this size.
pub fn label_scale(img: &RgbImage) -> u32 {
    (img.width().max(img.height()) / 640).clamp(1, 4)
}

/// Draws a box with a `label` above it (inside the picture).
pub fn draw_box_with_label(img: &mut RgbImage, b: (f32, f32, f32, f32), label: &str, c: Rgb<u8>) {
    let scale = label_scale(img);
    draw_rect(img, b.0, b.1, b.2, b.3, scale.max(2), c);
    let h = 9 * scale as i64;
    let y = if b.1 as i64 >= h {
        b.1 as i64 - h
    } else {
        b.1 as i64
    };
    // Shift the label left when it would run off the right edge.
    let width = label_width(label, scale);
    let x = (b.0 as i64).min(img.width() as i64 - width).max(0);
    draw_label(img, x, y, label, scale, Rgb([0, 0, 0]), c);
}

/// Outlines a zone (normalised polygon) with its name.
pub fn draw_zone(img: &mut RgbImage, zone: &Polygon, name: &str, c: Rgb<u8>) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let pts: Vec<(f32, f32)> = zone
        .0
        .iter()
        .map(|p| (p.x as f32 * (w - 1.0), p.y as f32 * (h - 1.0)))
        .collect();
    let scale = label_scale(img);
    for i in 0..pts.len() {
        draw_line(img, pts[i], pts[(i + 1) % pts.len()], scale, c);
    }
    if let Some(&(x, y)) = pts.first() {
        draw_label(
            img,
            x as i64 + 2,
            y as i64 + 2,
            name,
            scale,
            Rgb([0, 0, 0]),
            c,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_stays_inside_the_picture() {
        let mut img = RgbImage::new(50, 40);
        draw_box_with_label(
            &mut img,
            (-10.0, -10.0, 60.0, 50.0),
            "person 0.91",
            Rgb([255, 0, 0]),
        );
        draw_zone(&mut img, &Polygon::full_frame(), "zone", Rgb([0, 255, 0]));
        draw_line(&mut img, (-100.0, 5.0), (100.0, 5.0), 3, Rgb([0, 0, 255]));
        assert_eq!(img.get_pixel(49, 39).0, [0, 255, 0]);
    }

    #[test]
    fn chinese_labels_are_drawn_with_the_cjk_font() {
        let path = Path::new(CJK_FONTS[0]);
        assert!(
            path.exists(),
            "{} is missing: run scripts/setup.sh (fonts-wqy-microhei)",
            path.display()
        );
        let font = map_font(path).unwrap();
        let white = (Rgb([255, 255, 255]), Rgb([0, 0, 0]));
        let mut img = RgbImage::new(200, 40);
        let w = draw_label_in(Some(&font), &mut img, (0, 0), "路边 zone", 3, white);
        // Two CJK glyphs are about as wide as they are high (27 px at scale 3).
        assert!((60..=130).contains(&w), "width {w}");
        let lit = |img: &RgbImage, x0: u32, x1: u32| {
            (x0..x1)
                .flat_map(|x| (0..27).map(move |y| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0[0] > 128)
                .count()
        };
        // Ink in the first glyph's cell, none beyond the label.
        assert!(lit(&img, 3, 27) > 40, "the first glyph is drawn");
        assert_eq!(lit(&img, w as u32 + 1, 200), 0);
        // Without the font, the bitmap font draws what it knows (the Latin letters).
        let mut plain = RgbImage::new(200, 40);
        let w_plain = draw_label_in(None, &mut plain, (0, 0), "路边 zone", 3, white);
        assert_eq!(w_plain, 7 * 6 * 3 + 3);
    }

    #[test]
    fn labels_draw_glyph_pixels() {
        let mut img = RgbImage::new(40, 12);
        let w = draw_label_in(
            None,
            &mut img,
            (0, 0),
            "I1",
            1,
            (Rgb([255, 255, 255]), Rgb([0, 0, 0])),
        );
        assert_eq!(w, 13);
        // The middle column of 'I' (x = 1 + 2) is lit on every row.
        for row in 1..8 {
            assert_eq!(img.get_pixel(3, row).0, [255, 255, 255], "row {row}");
        }
    }
}
