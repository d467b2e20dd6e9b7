//! The evaluation dataset format (`DATASET/labels.toml` next to H.264 or H.265 clips):
//!
//! ```toml
//! [[clip]]
//! file = "clips/s001.mp4"
//! zone = [[0.05, 0.45], [0.95, 0.45], [0.95, 0.98], [0.05, 0.98]]   # absent = whole frame
//! [[clip.event]]
//! kind = "dumping"      # or "cleared"
//! start_s = 12.0        # when the object is put down (or removed)
//! end_s = 45.0          # last moment an alert still counts as on time
//! [clip.view]           # optional: the camera is turned or covered
//! kind = "moved"        # or "covered"
//! start_s = 30.0        # when; the analyzer must say so within 60 s, and raise nothing
//! ```
//!
//! Loading checks everything and reports every problem with its place
//! (`labels.toml: clip[3].event[0].end_s: ...`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{ConfigError, Problem, read_toml};
use crate::geometry::Polygon;

/// What a labelled event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Something was dumped.
    Dumping,
    /// The spot was cleaned.
    Cleared,
}

/// One labelled event of a clip.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledEvent {
    /// Dumping or cleared.
    pub kind: EventKind,
    /// When it happens, seconds from the start of the clip.
    pub start_s: f64,
    /// Last moment an alert still counts as on time.
    pub end_s: f64,
}

/// What happens to the camera's view in a clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewKind {
    /// The camera is turned, bumped or zoomed.
    Moved,
    /// The lens is covered.
    Covered,
}

/// The camera's view changing in a clip.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledView {
    /// Moved or covered.
    pub kind: ViewKind,
    /// When, seconds from the start of the clip.
    pub start_s: f64,
}

/// One clip.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clip {
    /// The video file, relative to the dataset directory.
    pub file: PathBuf,
    /// The watched zone; absent = the whole frame.
    #[serde(default)]
    pub zone: Option<Polygon>,
    /// The labelled events (none for a negative clip).
    #[serde(default, rename = "event")]
    pub events: Vec<LabelledEvent>,
    /// The camera turned or covered during the clip, if it is.
    #[serde(default)]
    pub view: Option<LabelledView>,
}

/// A loaded dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// The dataset directory.
    pub dir: PathBuf,
    /// The clips, in file order.
    pub clips: Vec<Clip>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelsFile {
    #[serde(default)]
    clip: Vec<Clip>,
}

/// Why a dataset cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// labels.toml is missing, unreadable, or not valid TOML for this format (with line and
    /// column).
    #[error(transparent)]
    File(#[from] ConfigError),
    /// Values are wrong.
    #[error("{}: {} problem(s):\n{}", path.display(), .problems.len(), .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The labels file.
        path: PathBuf,
        /// Every problem.
        problems: Vec<Problem>,
    },
}

impl Dataset {
    /// Loads and checks `dir/labels.toml` (clip files must exist).
    pub fn load(dir: &Path) -> Result<Dataset, DatasetError> {
        let path = dir.join("labels.toml");
        let file: LabelsFile = read_toml(&path)?;
        let problems = check(dir, &file.clip);
        if !problems.is_empty() {
            return Err(DatasetError::Invalid { path, problems });
        }
        Ok(Dataset {
            dir: dir.to_path_buf(),
            clips: file.clip,
        })
    }

    /// The absolute path of a clip's file.
    pub fn clip_path(&self, clip: &Clip) -> PathBuf {
        self.dir.join(&clip.file)
    }
}

fn check(dir: &Path, clips: &[Clip]) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut add = |path: String, message: String| out.push(Problem { path, message });
    if clips.is_empty() {
        add("clip".into(), "the dataset has no clips".into());
    }
    for (i, clip) in clips.iter().enumerate() {
        if !dir.join(&clip.file).is_file() {
            add(
                format!("clip[{i}].file"),
                format!(
                    "{} does not exist in {}",
                    clip.file.display(),
                    dir.display()
                ),
            );
        }
        if let Some(zone) = &clip.zone {
            if let Err(e) = zone.validate() {
                add(format!("clip[{i}].zone"), e.to_string());
            }
        }
        if let Some(v) = &clip.view
            && (!v.start_s.is_finite() || v.start_s < 0.0)
        {
            add(
                format!("clip[{i}].view.start_s"),
                format!("{} must be a time ≥ 0", v.start_s),
            );
        }
        for (j, ev) in clip.events.iter().enumerate() {
            if !ev.start_s.is_finite() || ev.start_s < 0.0 {
                add(
                    format!("clip[{i}].event[{j}].start_s"),
                    format!("{} must be a time ≥ 0", ev.start_s),
                );
            }
            if !ev.end_s.is_finite() || ev.end_s <= ev.start_s {
                add(
                    format!("clip[{i}].event[{j}].end_s"),
                    format!("{} must be after start_s ({})", ev.end_s, ev.start_s),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, labels: &str, files: &[&str]) {
        std::fs::write(dir.join("labels.toml"), labels).unwrap();
        for f in files {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
    }

    #[test]
    fn loads_the_documented_format() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            r#"
[[clip]]
file = "clips/s001.mp4"
zone = [[0.05, 0.45], [0.95, 0.45], [0.95, 0.98], [0.05, 0.98]]
[[clip.event]]
kind = "dumping"
start_s = 12.0
end_s = 45.0
[[clip.event]]
kind = "cleared"
start_s = 60.0
end_s = 100.0

[[clip]]
file = "clips/negative.mp4"
"#,
            &["clips/s001.mp4", "clips/negative.mp4"],
        );
        let d = Dataset::load(dir.path()).unwrap();
        assert_eq!(d.clips.len(), 2);
        assert_eq!(d.clips[0].events[1].kind, EventKind::Cleared);
        assert!(d.clips[1].events.is_empty() && d.clips[1].zone.is_none());
    }

    #[test]
    fn every_problem_is_named_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            r#"
[[clip]]
file = "missing.mp4"
zone = [[0.1, 0.1], [0.2, 0.2]]
[[clip.event]]
kind = "dumping"
start_s = 20.0
end_s = 10.0
"#,
            &[],
        );
        let err = Dataset::load(dir.path()).unwrap_err().to_string();
        for needle in [
            "clip[0].file: missing.mp4 does not exist",
            "clip[0].zone: a polygon needs at least 3 points",
            "clip[0].event[0].end_s: 10 must be after start_s (20)",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
    }

    #[test]
    fn unknown_kinds_and_fields_are_parse_errors_with_a_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "[[clip]]\nfile = \"a.mp4\"\n[[clip.event]]\nkind = \"littering\"\nstart_s = 1.0\nend_s = 2.0\n",
            &["a.mp4"],
        );
        let err = Dataset::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("labels.toml") && err.contains("line 4") && err.contains("littering"),
            "{err}"
        );
    }
}
