//! `dumpwatch export-feedback`: the operations center's verdicts as an evaluation dataset.
//!
//! Every reviewed incident with an evidence clip that shows the spot before the object appeared
//! becomes a clip of the dataset: a confirmed (acknowledged) incident with a `dumping` event from
//! the object's appearance to the end of the clip, a dismissed one (a false positive) with no
//! event, so `dumpwatch eval` counts any alert on it as a false alarm. The camera's zone comes
//! from the cameras file. Incidents whose clip starts after the appearance cannot be replayed
//! faithfully (the analyzer would take the object for background) and are listed as skipped
//! with the reason.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::clip::{CLIP_SPAN_FILE, ClipSpan};
use crate::config::CameraConfig;
use crate::store::{IncidentQuery, IncidentRow, ReviewFilter, Store, StoreError, Verdict};

/// Seconds of the spot without the object the analyzer needs before the appearance.
pub const LEAD_IN_S: f64 = 5.0;

/// What was exported.
#[derive(Debug, Default)]
pub struct FeedbackSummary {
    /// Confirmed incidents written with a dumping event.
    pub confirmed: usize,
    /// Dismissed incidents written as negative clips.
    pub dismissed: usize,
    /// Incidents left out, with why.
    pub skipped: Vec<(Uuid, String)>,
}

/// Why the export failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output directory already holds a dataset.
    #[error("{0}: a labels.toml is already there; export into a new or empty directory")]
    Exists(PathBuf),
    /// A file could not be written or copied.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FeedbackError + '_ {
    move |source| FeedbackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every incident with `verdict`, raised at or after `since`.
fn reviewed(
    store: &Store,
    verdict: Verdict,
    since: Option<f64>,
) -> Result<Vec<IncidentRow>, StoreError> {
    let mut out = Vec::new();
    loop {
        let page = store.incidents(&IncidentQuery {
            review: Some(ReviewFilter::Is(verdict)),
            since,
            limit: 500,
            offset: out.len() as u32,
            ..IncidentQuery::default()
        })?;
        let done = page.len() < 500;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// One line of TOML comment (no line breaks from free text).
fn comment(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Writes `out/labels.toml` and `out/clips/<incident>.mp4` from the reviewed incidents in
/// `store` (evidence under `storage_dir`); zones from `cameras`.
pub fn export_feedback(
    store: &Store,
    storage_dir: &Path,
    cameras: &[CameraConfig],
    out: &Path,
    since: Option<f64>,
) -> Result<FeedbackSummary, FeedbackError> {
    let labels_path = out.join("labels.toml");
    if labels_path.exists() {
        return Err(FeedbackError::Exists(labels_path));
    }
    let clips_dir = out.join("clips");
    std::fs::create_dir_all(&clips_dir).map_err(io(&clips_dir))?;
    let mut summary = FeedbackSummary::default();
    let mut labels = String::from(
        "# Written by `dumpwatch export-feedback`: incidents reviewed in the operations center.\n\
         # Confirmed incidents carry a dumping event; dismissed ones (false positives) carry none.\n",
    );
    for verdict in [Verdict::Acknowledged, Verdict::Dismissed] {
        for inc in reviewed(store, verdict, since)? {
            let Some(clip) = inc.evidence.iter().find(|e| e.role == "clip" && !e.deleted) else {
                summary.skipped.push((
                    inc.id,
                    "no evidence clip (never written, or removed by retention)".into(),
                ));
                continue;
            };
            let clip_path = storage_dir.join(&clip.path);
            let span_path = clip_path.with_file_name(CLIP_SPAN_FILE);
            let span: ClipSpan = match std::fs::read(&span_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                Some(s) => s,
                None => {
                    summary.skipped.push((
                        inc.id,
                        format!(
                            "{} is missing or unreadable (clip from an older dumpwatch?)",
                            span_path.display()
                        ),
                    ));
                    continue;
                }
            };
            let appears = inc.appeared_at - span.start;
            if appears < LEAD_IN_S {
                summary.skipped.push((
                    inc.id,
                    format!(
                        "the clip starts {:.0} s after the object appeared; it must start {LEAD_IN_S} s before: \
                         raise evidence.clip_before_put_down_s to {LEAD_IN_S} s or more (or clip_act_max_mb, \
                         if the camera's video outgrew it while the object was pending)",
                        -appears + LEAD_IN_S
                    ),
                ));
                continue;
            }
            let file = format!("clips/{}.mp4", inc.id);
            let dest = out.join(&file);
            std::fs::copy(&clip_path, &dest).map_err(io(&clip_path))?;
            let camera = cameras.iter().find(|c| c.id == inc.camera_id);
            let zone = camera.and_then(|c| c.zones.iter().find(|z| z.name == inc.zone));
            let review = inc.review.as_ref();
            let _ = writeln!(
                labels,
                "\n# incident {} on camera {:?}, zone {:?}: {}{}{}{}",
                inc.id,
                inc.camera_id,
                inc.zone,
                verdict.as_str(),
                review
                    .and_then(|r| r.by.as_deref())
                    .map(|b| format!(" by {}", comment(b)))
                    .unwrap_or_default(),
                review
                    .and_then(|r| r.reason)
                    .map(|r| format!(" ({})", r.as_str()))
                    .unwrap_or_default(),
                review
                    .and_then(|r| r.note.as_deref())
                    .map(|n| format!(": {}", comment(n)))
                    .unwrap_or_default(),
            );
            if camera.is_some() && zone.is_none() && inc.zone != crate::analyze::WHOLE_FRAME_ZONE {
                let _ = writeln!(
                    labels,
                    "# zone {:?} is not in the cameras file: the whole frame is watched",
                    inc.zone
                );
            }
            let _ = writeln!(labels, "[[clip]]\nfile = {file:?}");
            if let Some(z) = zone {
                // JSON arrays of numbers are TOML arrays too.
                let _ = writeln!(
                    labels,
                    "zone = {}",
                    serde_json::to_string(&z.polygon).expect("plain data")
                );
            }
            match verdict {
                Verdict::Acknowledged => {
                    let _ = writeln!(
                        labels,
                        "[[clip.event]]\nkind = \"dumping\"\nstart_s = {:.1}\nend_s = {:.1}",
                        appears,
                        (span.end - span.start).max(appears)
                    );
                    summary.confirmed += 1;
                }
                Verdict::Dismissed => summary.dismissed += 1,
            }
        }
    }
    std::fs::write(&labels_path, labels).map_err(io(&labels_path))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::EventKind;
    use crate::store::EvidenceFile;
    use crate::store::testing::event;

    /// An incident raised at `raised` (appeared 31 s before) with a clip file whose span starts
    /// at `clip_start`, reviewed with `verdict`.
    fn incident(
        store: &mut Store,
        dir: &Path,
        raised: f64,
        clip_start: f64,
        verdict: Verdict,
    ) -> Uuid {
        let id = Uuid::now_v7();
        store
            .record(&event(id, EventKind::Raised, raised, &[]), raised)
            .unwrap();
        let rel = format!("evidence/cam-01/{id}/clip.mp4");
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"mp4 bytes").unwrap();
        let span = ClipSpan {
            start: clip_start,
            end: raised + 10.0,
            frames: 100,
            appeared_at: None,
            raised_at: Some(raised),
        };
        std::fs::write(
            path.with_file_name(CLIP_SPAN_FILE),
            serde_json::to_vec(&span).unwrap(),
        )
        .unwrap();
        let file = EvidenceFile {
            role: "clip".into(),
            path: rel,
            content_type: "video/mp4".into(),
            sha256: "0".repeat(64),
            bytes: 9,
        };
        store.add_evidence(id, &file, raised + 11.0).unwrap();
        store
            .review(
                id,
                &crate::store::Review {
                    verdict,
                    at: raised + 20.0,
                    by: Some("op\nnight shift".into()),
                    reason: Some(crate::store::ReviewReason::Shadow),
                    note: None,
                },
            )
            .unwrap();
        id
    }

    #[test]
    fn reviewed_incidents_become_a_dataset_that_eval_loads() {
        let storage = tempfile::tempdir().unwrap();
        let mut store = Store::open(storage.path()).unwrap();
        // Clip from 40 s before the raise: 9 s of the spot before the object (appeared 31 s
        // before the raise).
        let confirmed = incident(
            &mut store,
            storage.path(),
            1000.0,
            960.0,
            Verdict::Acknowledged,
        );
        let dismissed = incident(
            &mut store,
            storage.path(),
            2000.0,
            1960.0,
            Verdict::Dismissed,
        );
        // Clip from 10 s before the raise: the object is already there.
        let late = incident(
            &mut store,
            storage.path(),
            3000.0,
            2990.0,
            Verdict::Dismissed,
        );
        // Not reviewed: not exported.
        store
            .record(
                &event(Uuid::now_v7(), EventKind::Raised, 4000.0, &[]),
                4000.0,
            )
            .unwrap();
        let mut camera = CameraConfig::new("cam-01", "rtsp://127.0.0.1/x");
        camera.zones = vec![crate::config::ZoneConfig {
            name: "roadside".into(),
            polygon: crate::geometry::Polygon::full_frame(),
            analyze: Default::default(),
        }];
        let out = storage.path().join("feedback");
        let summary = export_feedback(&store, storage.path(), &[camera], &out, None).unwrap();
        assert_eq!((summary.confirmed, summary.dismissed), (1, 1));
        assert_eq!(summary.skipped.len(), 1);
        assert_eq!(summary.skipped[0].0, late);
        assert!(
            summary.skipped[0].1.contains("clip_before_put_down_s"),
            "{}",
            summary.skipped[0].1
        );

        let dataset = crate::eval::dataset::Dataset::load(&out).unwrap();
        assert_eq!(dataset.clips.len(), 2);
        // Each review's reason from the list is written with it.
        let labels = std::fs::read_to_string(out.join("labels.toml")).unwrap();
        assert_eq!(labels.matches("(shadow)").count(), 2, "{labels}");
        let by_file = |id: Uuid| {
            dataset
                .clips
                .iter()
                .find(|c| c.file == Path::new(&format!("clips/{id}.mp4")))
                .unwrap()
        };
        let c = by_file(confirmed);
        assert_eq!(c.events.len(), 1);
        assert_eq!((c.events[0].start_s, c.events[0].end_s), (9.0, 50.0));
        assert!(c.zone.is_some());
        assert!(by_file(dismissed).events.is_empty());
        assert_eq!(std::fs::read(out.join(&c.file)).unwrap(), b"mp4 bytes");
        // A second export into the same place is refused rather than mixed.
        assert!(matches!(
            export_feedback(&store, storage.path(), &[], &out, None),
            Err(FeedbackError::Exists(_))
        ));
    }
}
