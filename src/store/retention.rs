//! Evidence retention: removes old evidence files by age and by total size, never those of an
//! incident with an event not yet delivered. Every incident is covered, open ones included (a
//! spot nobody cleans stays open for good): under the size limit those of cleared incidents go
//! first, then those of open ones, oldest first.

use std::path::Path;

use rusqlite::params;

use super::{Store, StoreError};

/// Retention limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetentionLimits {
    /// Files older than this many seconds may go.
    pub max_age_s: f64,
    /// Beyond this many bytes of evidence in total, the oldest files that may go, go.
    pub max_bytes: u64,
}

/// What one retention pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Files removed.
    pub removed: u64,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Bytes of evidence kept.
    pub kept_bytes: u64,
    /// Files that could not be removed (left for the next pass).
    pub failed: u64,
}

impl Store {
    /// Applies `limits` to the evidence under `storage_dir` at `now` (unix seconds).
    pub fn apply_retention(
        &mut self,
        storage_dir: &Path,
        limits: RetentionLimits,
        now: f64,
    ) -> Result<RetentionReport, StoreError> {
        let total: i64 = self
            .conn()
            .query_row(
                "SELECT coalesce(sum(bytes), 0) FROM evidence WHERE deleted_at IS NULL",
                [],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        // Cleared incidents' first, then open ones', oldest first; only of incidents whose every
        // event was delivered or given up on (a dead letter is visible in the API and kept with
        // its evidence as long as the rest).
        let removable: Vec<(i64, String, i64, f64)> = {
            let mut stmt = self
                .conn()
                .prepare(
                    "SELECT e.id, e.path, e.bytes, e.created_at FROM evidence e
                     JOIN incidents i ON i.id = e.incident_id
                     WHERE e.deleted_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM outbox o
                                       WHERE o.incident_id = e.incident_id AND o.state = 'pending')
                     ORDER BY i.state = 'open', e.created_at, e.id",
                )
                .map_err(self.err())?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(self.err())?
                .collect::<Result<_, _>>()
                .map_err(self.err())?
        };
        let mut report = RetentionReport::default();
        let mut remaining = total.max(0) as u64;
        for (id, path, bytes, created_at) in removable {
            let too_old = now - created_at > limits.max_age_s;
            if !too_old && remaining <= limits.max_bytes {
                continue;
            }
            let file = storage_dir.join(&path);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %file.display(), error = %e, "retention: cannot remove an evidence file");
                    report.failed += 1;
                    continue;
                }
            }
            self.conn()
                .execute(
                    "UPDATE evidence SET deleted_at = ?2 WHERE id = ?1",
                    params![id, now],
                )
                .map_err(self.err())?;
            report.removed += 1;
            report.freed_bytes += bytes.max(0) as u64;
            remaining = remaining.saturating_sub(bytes.max(0) as u64);
        }
        report.kept_bytes = remaining;
        Ok(report)
    }
}

/// What [`Store::remove_unrecorded_evidence`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Files removed: half-written ones (`*.tmp`) and ones no evidence row names.
    pub removed: u64,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Files that could not be removed.
    pub failed: u64,
}

impl Store {
    /// Removes the files under `storage_dir/evidence/` that no evidence row names: pictures and
    /// clips written for an event whose transaction never committed (a crash between the file
    /// and its row), and half-written `*.tmp` files. A clip's span file (`clip.json`) stays
    /// beside its recorded `clip.mp4`. Run it at start, after the spooled events are recorded
    /// (not while some are still spooled: their pictures are named by no row yet) and before
    /// any camera.
    pub fn remove_unrecorded_evidence(
        &mut self,
        storage_dir: &Path,
    ) -> Result<OrphanReport, StoreError> {
        let recorded: std::collections::HashSet<String> = {
            let mut stmt = self
                .conn()
                .prepare("SELECT path FROM evidence")
                .map_err(self.err())?;
            stmt.query_map([], |r| r.get(0))
                .map_err(self.err())?
                .collect::<Result<_, _>>()
                .map_err(self.err())?
        };
        let mut report = OrphanReport::default();
        let root = storage_dir.join("evidence");
        let Ok(cameras) = std::fs::read_dir(&root) else {
            return Ok(report);
        };
        for camera in cameras.filter_map(Result::ok) {
            let Ok(incidents) = std::fs::read_dir(camera.path()) else {
                continue;
            };
            for incident in incidents.filter_map(Result::ok) {
                let Ok(files) = std::fs::read_dir(incident.path()) else {
                    continue;
                };
                for file in files.filter_map(Result::ok) {
                    let path = file.path();
                    let Ok(rel) = path.strip_prefix(storage_dir) else {
                        continue;
                    };
                    let rel = rel.to_string_lossy();
                    let name = file.file_name().to_string_lossy().into_owned();
                    let keep = if name.ends_with(".json") {
                        // A clip's span file (`clip.json`) goes with its recorded clip.
                        let clip = path.with_extension("mp4");
                        clip.strip_prefix(storage_dir)
                            .is_ok_and(|c| recorded.contains(c.to_string_lossy().as_ref()))
                    } else {
                        !name.ends_with(".tmp") && recorded.contains(rel.as_ref())
                    };
                    if keep {
                        continue;
                    }
                    let bytes = file.metadata().map_or(0, |m| m.len());
                    match std::fs::remove_file(&path) {
                        Ok(()) => {
                            report.removed += 1;
                            report.freed_bytes += bytes;
                        }
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e,
                                           "cannot remove an evidence file no incident names");
                            report.failed += 1;
                        }
                    }
                }
                // Gone if nothing is left in it.
                let _ = std::fs::remove_dir(incident.path());
            }
        }
        Ok(report)
    }
}
