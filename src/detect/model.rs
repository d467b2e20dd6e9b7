//! What a detector model looks like from outside: class names, input size, output layout.
//! Read from the model's metadata and tensor shapes when it is loaded, never assumed.

use super::DetectError;

/// How the detector's output tensor is laid out. One variant per family; adding a family means
/// adding a variant here and its decoding in `postprocess`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputLayout {
    /// YOLO v8 / v11 / v12: `[batch, 4 + classes, anchors]`, rows `cx, cy, w, h` then one
    /// (sigmoided) score per class; no objectness.
    ChannelsFirst {
        /// Number of classes.
        classes: usize,
        /// Number of anchors (8400 for 640×640).
        anchors: usize,
    },
    /// YOLOX / YOLOv5 style: `[batch, anchors, 5 + classes]`, each row `cx, cy, w, h,
    /// objectness, class scores...`; the score of a class is objectness × class score.
    AnchorsFirst {
        /// Number of classes.
        classes: usize,
        /// Number of anchors.
        anchors: usize,
    },
}

impl OutputLayout {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        match *self {
            OutputLayout::ChannelsFirst { classes, .. }
            | OutputLayout::AnchorsFirst { classes, .. } => classes,
        }
    }

    /// Number of anchors.
    pub fn anchors(&self) -> usize {
        match *self {
            OutputLayout::ChannelsFirst { anchors, .. }
            | OutputLayout::AnchorsFirst { anchors, .. } => anchors,
        }
    }

    /// Number of f32 values per image.
    pub fn len(&self) -> usize {
        match *self {
            OutputLayout::ChannelsFirst { classes, anchors } => (4 + classes) * anchors,
            OutputLayout::AnchorsFirst { classes, anchors } => (5 + classes) * anchors,
        }
    }

    /// Whether the output holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Infers the layout from an output shape `[batch, a, b]` and the number of class names the
    /// metadata gives (if any).
    pub fn infer(shape: &[i64], names: Option<usize>) -> Result<OutputLayout, String> {
        const EXPECTED: &str =
            "[1, 4 + classes, anchors] (YOLO v8/v11/v12) or [1, anchors, 5 + classes] (YOLOX)";
        let [_, a, b] = shape else {
            return Err(format!(
                "output shape {shape:?} is not a detector's: expected {EXPECTED}"
            ));
        };
        let (a, b) = (*a, *b);
        if a <= 0 || b <= 0 {
            return Err(format!("output dimensions must be fixed, got {shape:?}"));
        }
        let (a, b) = (a as usize, b as usize);
        // Channels-first when the smaller dimension is 4 + classes.
        let fits =
            |rows: usize, extra: usize| rows > extra && names.is_none_or(|n| rows - extra == n);
        if a < b && fits(a, 4) {
            Ok(OutputLayout::ChannelsFirst {
                classes: a - 4,
                anchors: b,
            })
        } else if b < a && fits(b, 5) {
            Ok(OutputLayout::AnchorsFirst {
                classes: b - 5,
                anchors: a,
            })
        } else {
            Err(format!(
                "output shape {shape:?} does not fit {EXPECTED}{}",
                names
                    .map(|n| format!(" with the metadata's {n} classes"))
                    .unwrap_or_default()
            ))
        }
    }
}

/// A loaded model's description.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// Human-readable name (file stem).
    pub name: String,
    /// sha256 of the model file, hex.
    pub sha256: String,
    /// Class names, indexed by class id (after `model.rename`).
    pub class_names: Vec<String>,
    /// Input width and height in pixels.
    pub input_size: (u32, u32),
    /// Largest stride of the model (32 for YOLO), from metadata; informational.
    pub stride: u32,
    /// Whether the batch dimension is dynamic (several images per run).
    pub dynamic_batch: bool,
    /// Output layout.
    pub layout: OutputLayout,
}

impl ModelInfo {
    /// The id of a class by name.
    pub fn class_id(&self, name: &str) -> Option<usize> {
        self.class_names.iter().position(|n| n == name)
    }

    /// The name of a class id (`class<N>` for ids the metadata did not name).
    pub fn class_name(&self, id: usize) -> &str {
        self.class_names
            .get(id)
            .map(String::as_str)
            .unwrap_or("unknown")
    }
}

/// Parses the Ultralytics `names` metadata: a Python dict literal such as
/// `{0: 'person', 1: 'bicycle', 2: "it's"}`.
pub fn parse_class_names(text: &str) -> Result<Vec<String>, DetectError> {
    let bad = |why: &str| {
        DetectError::Metadata(format!(
            "cannot parse class names ({why}): {}",
            truncate(text)
        ))
    };
    let body = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| bad("not a {...} dict"))?;
    let mut names: Vec<(usize, String)> = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let colon = rest.find(':').ok_or_else(|| bad("missing ':'"))?;
        let id: usize = rest[..colon]
            .trim()
            .parse()
            .map_err(|_| bad("a key is not an integer"))?;
        let after = rest[colon + 1..].trim_start();
        let quote = after
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')
            .ok_or_else(|| bad("a name is not quoted"))?;
        let mut name = String::new();
        let mut chars = after[1..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        name.push(e);
                    }
                }
                c if c == quote => {
                    end = Some(i + 1 + c.len_utf8());
                    break;
                }
                c => name.push(c),
            }
        }
        let end = end.ok_or_else(|| bad("unterminated name"))?;
        names.push((id, name));
        rest = after[end..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    names.sort_by_key(|(id, _)| *id);
    for (expected, (id, _)) in names.iter().enumerate() {
        if *id != expected {
            return Err(bad(&format!("ids are not 0..{}", names.len())));
        }
    }
    Ok(names.into_iter().map(|(_, n)| n).collect())
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_owned()
    } else {
        format!("{}...", s.chars().take(80).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ultralytics_names() {
        let names =
            parse_class_names("{0: 'person', 1: 'bicycle', 2: \"it's\", 3: 'a\\'b'}").unwrap();
        assert_eq!(names, vec!["person", "bicycle", "it's", "a'b"]);
    }

    #[test]
    fn rejects_broken_names() {
        assert!(parse_class_names("['person']").is_err());
        assert!(parse_class_names("{0: 'person', 2: 'car'}").is_err());
        assert!(parse_class_names("{0: person}").is_err());
        assert!(parse_class_names("{0: 'person}").is_err());
    }

    #[test]
    fn infers_layouts() {
        assert_eq!(
            OutputLayout::infer(&[1, 84, 8400], Some(80)),
            Ok(OutputLayout::ChannelsFirst {
                classes: 80,
                anchors: 8400
            })
        );
        assert_eq!(
            OutputLayout::infer(&[1, 8400, 85], Some(80)),
            Ok(OutputLayout::AnchorsFirst {
                classes: 80,
                anchors: 8400
            })
        );
        assert!(OutputLayout::infer(&[1, 84, 8400], Some(3)).is_err());
        assert!(OutputLayout::infer(&[1, 84], None).is_err());
        assert!(OutputLayout::infer(&[1, -1, 8400], None).is_err());
    }
}
