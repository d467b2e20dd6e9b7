//! The durable store (SQLite in the storage directory): incidents, their evidence files, the
//! delivery outbox and the city's case reports.
//!
//! Every incident event is recorded in one transaction together with its outbox row, so an event
//! the analyzer decided is either fully stored (and will be delivered) or not at all. The store
//! is used from one thread, [`writer::StoreHandle`]'s; WAL mode lets readers look at it meanwhile.

pub mod camera_events;
pub mod changes;
pub mod dead_letters;
mod feed;
pub mod open_spots;
pub mod retention;
mod reviews;
mod schema;
pub mod writer;

pub use feed::IncidentQuery;
pub use reviews::{Review, ReviewFilter, ReviewReason, Verdict};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::analyze::EventKind;
use crate::incident::IncidentBody;

/// Name of the database file in the storage directory.
pub const DB_FILE: &str = "dumpwatch.db";

/// What went wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer dumpwatch.
    #[error(
        "database {path} has schema version {found}, this dumpwatch knows up to {known}: run the newer dumpwatch, or move the file away to start afresh"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// A reader found a schema other than this build's (the writer has not migrated it).
    #[error(
        "database {path} has schema version {found}, this dumpwatch reads version {known}: open it with the service first (it migrates the schema)"
    )]
    OtherSchema {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The version this build reads.
        known: i64,
    },
    /// An event for an incident the store does not know.
    #[error("incident {0} is not in the store")]
    UnknownIncident(Uuid),
    /// A stored JSON value could not be read back.
    #[error("stored JSON of {what}: {source}")]
    Json {
        /// Which value.
        what: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The store's thread could not be started.
    #[error("cannot start the store thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The store's thread is gone (the service is shutting down).
    #[error("the store has shut down")]
    Closed,
}

/// An evidence file to record with an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvidenceFile {
    /// `event`, `event_clean`, `before`, `actor`, `after`, `clip`.
    pub role: String,
    /// Path relative to the storage directory.
    pub path: String,
    /// `image/jpeg`, `video/mp4`.
    pub content_type: String,
    /// sha256 of the file, hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// An incident event to record: the analyzer's decision, the body to send and its evidence.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewEvent {
    /// The event's body (snapshots listed without data).
    pub body: IncidentBody,
    /// Raised, updated or cleared.
    pub kind: EventKind,
    /// When it happened, unix seconds.
    pub at: f64,
    /// Appearance time of the objects, unix seconds.
    pub appeared_at: f64,
    /// Evidence files written for it.
    pub evidence: Vec<EvidenceFile>,
    /// For `raised` and `updated`: the analyzer's spot of the incident (JSON of
    /// [`crate::analyze::OpenSpot`]), to follow it on after a restart. Spooled events of older
    /// versions have none.
    #[serde(default)]
    pub spot: Option<String>,
}

/// An outbox row that is due.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxItem {
    /// Row id.
    pub id: i64,
    /// The incident.
    pub incident_id: Uuid,
    /// `raised`, `updated`, `cleared`.
    pub event: String,
    /// Sent as `Idempotency-Key`.
    pub idempotency_key: String,
    /// The body, snapshots without data.
    pub body: IncidentBody,
    /// When the event happened (unix seconds), for the delivery latency.
    pub created_at: f64,
    /// Attempts so far.
    pub attempts: u32,
    /// The evidence files of this event (not removed by retention).
    pub evidence: Vec<EvidenceRow>,
}

/// A stored incident, for the API.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentRow {
    /// UUIDv7.
    pub id: Uuid,
    /// Camera id.
    pub camera_id: String,
    /// Zone name.
    pub zone: String,
    /// `open` or `cleared`.
    pub state: String,
    /// Category code of the raising event.
    pub category_code: String,
    /// Unix seconds.
    pub appeared_at: f64,
    /// Unix seconds.
    pub raised_at: f64,
    /// Unix seconds of the last growth.
    pub updated_at: Option<f64>,
    /// Unix seconds.
    pub cleared_at: Option<f64>,
    /// Unattended time when raised, seconds.
    pub dwell_s: f64,
    /// 0..1.
    pub confidence: f64,
    /// The objects (JSON as sent).
    pub objects: serde_json::Value,
    /// The actor (JSON as sent).
    pub actor: Option<serde_json::Value>,
    /// Delivery of each event.
    pub deliveries: Vec<DeliveryRow>,
    /// Evidence files.
    pub evidence: Vec<EvidenceRow>,
    /// The city's case reports, oldest first.
    pub case_reports: Vec<CaseReport>,
    /// The operations center's verdict, if any.
    pub review: Option<Review>,
}

/// Delivery state of one event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryRow {
    /// `raised`, `updated`, `cleared`.
    pub event: String,
    /// The key sent.
    pub idempotency_key: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Unix seconds of the next attempt (pending only).
    pub next_attempt_at: Option<f64>,
    /// HTTP status of the last attempt.
    pub last_status: Option<u16>,
    /// Last error.
    pub last_error: Option<String>,
    /// Unix seconds.
    pub delivered_at: Option<f64>,
}

/// A stored evidence file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvidenceRow {
    /// Row id.
    pub id: i64,
    /// Role.
    pub role: String,
    /// Path relative to the storage directory.
    pub path: String,
    /// MIME type.
    pub content_type: String,
    /// sha256, hex.
    pub sha256: String,
    /// Size.
    pub bytes: u64,
    /// Whether retention removed the file.
    pub deleted: bool,
}

/// A case report from the city system (立案 registered, 派遣 dispatched, 处置 handled, 结案 closed).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct CaseReport {
    /// `registered`, `dispatched`, `handled` or `closed`.
    pub status: String,
    /// The city's case number.
    pub case_number: String,
    /// Free text from the city system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When it happened according to the city system, unix seconds.
    pub reported_at: f64,
}

/// The case statuses the city system may report.
pub const CASE_STATUSES: &[&str] = &["registered", "dispatched", "handled", "closed"];

/// Outbox counts by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    /// Waiting for delivery.
    pub pending: u64,
    /// Delivered.
    pub delivered: u64,
    /// Given up (dead letter).
    pub dead: u64,
    /// Not sent: the incident was dismissed.
    pub cancelled: u64,
}

/// SQL condition on an outbox row `o`: no earlier event of its incident is still pending.
const FIRST_OF_ITS_INCIDENT: &str = "NOT EXISTS (SELECT 1 FROM outbox p
     WHERE p.incident_id = o.incident_id AND p.state = 'pending' AND p.id < o.id)";

/// The open database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database in `dir` and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE);
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        // In WAL mode, NORMAL survives a process crash (only a power cut may lose the last
        // transactions); FULL makes every commit durable on power loss too.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        let mut store = Store { conn, path };
        store.migrate()?;
        Ok(store)
    }

    /// Opens the database in `dir` for reading only (the API's reads, beside the writer). The
    /// schema must be this build's: the writer migrates it when it opens.
    pub fn open_read_only(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE);
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version != schema::MIGRATIONS.len() as i64 {
            return Err(StoreError::OtherSchema {
                path,
                found: version,
                known: schema::MIGRATIONS.len() as i64,
            });
        }
        Ok(Store { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.err())?;
        let known = schema::MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    }

    /// Records an event with its evidence and its outbox row, in one transaction. Returns the
    /// outbox row id. `Raised` creates the incident; `Updated` and `Cleared` change it.
    pub fn record(&mut self, ev: &NewEvent, now: f64) -> Result<i64, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let id = ev.body.incident_id;
        let id_text = id.to_string();
        let objects = serde_json::to_string(&ev.body.objects).expect("plain data");
        let actor = ev
            .body
            .actor
            .as_ref()
            .map(|a| serde_json::to_string(a).expect("plain data"));
        let tx = self.conn.transaction().map_err(err)?;
        // Recorded before (an event spooled again after it was taken): nothing to do.
        let once_key = match ev.kind {
            EventKind::Raised => Some(id_text.clone()),
            EventKind::Cleared => Some(format!("{id_text}:cleared")),
            EventKind::Updated => None,
        };
        if let Some(key) = once_key {
            let existing: Option<i64> = tx
                .query_row(
                    "SELECT id FROM outbox WHERE idempotency_key = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?;
            if let Some(outbox_id) = existing {
                return Ok(outbox_id);
            }
        }
        let key = match ev.kind {
            EventKind::Raised => {
                tx.execute(
                    "INSERT INTO incidents (id, camera_id, zone, state, category_code, appeared_at,
                         raised_at, dwell_s, confidence, objects, actor, spot)
                     VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        id_text,
                        ev.body.camera.id,
                        ev.body.zone,
                        ev.body.category_code,
                        ev.appeared_at,
                        ev.at,
                        ev.body.dwell_s,
                        f64::from(ev.body.confidence),
                        objects,
                        actor,
                        ev.spot
                    ],
                )
                .map_err(err)?;
                id_text.clone()
            }
            EventKind::Updated => {
                let n: Option<i64> = tx
                    .query_row(
                        "UPDATE incidents SET updates = updates + 1, updated_at = ?2,
                             objects = ?3, confidence = max(confidence, ?4),
                             spot = coalesce(?5, spot)
                         WHERE id = ?1 RETURNING updates",
                        params![
                            id_text,
                            ev.at,
                            objects,
                            f64::from(ev.body.confidence),
                            ev.spot
                        ],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(err)?;
                let n = n.ok_or(StoreError::UnknownIncident(id))?;
                format!("{id_text}:updated:{n}")
            }
            EventKind::Cleared => {
                let changed = tx
                    .execute(
                        "UPDATE incidents SET state = 'cleared', cleared_at = ?2, spot = NULL
                         WHERE id = ?1",
                        params![id_text, ev.at],
                    )
                    .map_err(err)?;
                if changed == 0 {
                    return Err(StoreError::UnknownIncident(id));
                }
                format!("{id_text}:cleared")
            }
        };
        let body = serde_json::to_string(&ev.body).expect("plain data");
        // A dismissed incident's later events are kept but not sent.
        tx.execute(
            "INSERT INTO outbox (incident_id, event, idempotency_key, body, created_at, state,
                 next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5,
                 CASE WHEN (SELECT review FROM incidents WHERE id = ?1) = 'dismissed'
                      THEN 'cancelled' ELSE 'pending' END, ?6)",
            params![id_text, ev.kind.as_str(), key, body, ev.at, now],
        )
        .map_err(err)?;
        let outbox_id = tx.last_insert_rowid();
        for f in &ev.evidence {
            tx.execute(
                "INSERT INTO evidence (incident_id, outbox_id, role, path, content_type, sha256,
                     bytes, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id_text,
                    outbox_id,
                    f.role,
                    f.path,
                    f.content_type,
                    f.sha256,
                    f.bytes as i64,
                    now
                ],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(outbox_id)
    }

    /// Adds an evidence file to an incident after the fact (the evidence clip, written once its
    /// post-event seconds have been recorded).
    pub fn add_evidence(
        &mut self,
        incident: Uuid,
        file: &EvidenceFile,
        now: f64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO evidence (incident_id, outbox_id, role, path, content_type, sha256,
                     bytes, created_at)
                 SELECT ?1, NULL, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS
                     (SELECT 1 FROM incidents WHERE id = ?1)",
                params![
                    incident.to_string(),
                    file.role,
                    file.path,
                    file.content_type,
                    file.sha256,
                    file.bytes as i64,
                    now
                ],
            )
            .map_err(self.err())
            .and_then(|n| {
                if n == 0 {
                    Err(StoreError::UnknownIncident(incident))
                } else {
                    Ok(())
                }
            })
    }

    /// Up to `limit` pending outbox rows due at `now`, oldest first, skipping `exclude` (rows
    /// already being sent). Only the first pending event of each incident is due: its later
    /// events wait until it is delivered (or given up), so that the city system receives an
    /// incident's `raised`, `updated` and `cleared` in that order even when several wait at once.
    pub fn due(
        &self,
        now: f64,
        limit: usize,
        exclude: &[i64],
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT id, incident_id, event, idempotency_key, body, created_at, attempts
                 FROM outbox o WHERE state = 'pending' AND next_attempt_at <= ?1
                   AND id NOT IN ({}) AND {FIRST_OF_ITS_INCIDENT}
                 ORDER BY next_attempt_at, id LIMIT ?2",
                id_list(exclude)
            ))
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![now, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, f64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        let mut out = Vec::new();
        for (id, incident, event, key, body, created_at, attempts) in rows {
            let body: IncidentBody = match serde_json::from_str(&body) {
                Ok(b) => b,
                Err(e) => {
                    // One unreadable row must not stop the rest of the outbox: it becomes a
                    // dead letter, listed with the reason.
                    let error = format!("the stored body cannot be read: {e}");
                    tracing::error!(outbox_row = id, incident = %incident, error = %error,
                                    "an outbox row is unreadable; it is set aside as a dead letter");
                    self.conn
                        .execute(
                            "UPDATE outbox SET state = 'dead', last_error = ?2 WHERE id = ?1",
                            params![id, error],
                        )
                        .map_err(self.err())?;
                    continue;
                }
            };
            out.push(OutboxItem {
                id,
                incident_id: incident.parse().unwrap_or(body.incident_id),
                event,
                idempotency_key: key,
                body,
                created_at,
                attempts: attempts as u32,
                evidence: self.evidence_of_outbox(id)?,
            });
        }
        Ok(out)
    }

    fn evidence_of_outbox(&self, outbox_id: i64) -> Result<Vec<EvidenceRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, role, path, content_type, sha256, bytes, deleted_at IS NOT NULL
                 FROM evidence WHERE outbox_id = ?1 AND deleted_at IS NULL ORDER BY id",
            )
            .map_err(self.err())?;
        stmt.query_map([outbox_id], evidence_row)
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())
    }

    /// Marks an outbox row delivered.
    pub fn mark_delivered(&mut self, id: i64, status: u16, now: f64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, last_status = ?2,
                     last_error = NULL, delivered_at = ?3
                 WHERE id = ?1",
                params![id, status, now],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Records a failed attempt that will be retried at `next_at`.
    pub fn mark_retry(
        &mut self,
        id: i64,
        status: Option<u16>,
        error: &str,
        next_at: f64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, last_status = ?2, last_error = ?3,
                     next_attempt_at = ?4
                 WHERE id = ?1 AND state = 'pending'",
                params![id, status, error, next_at],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Gives up on an outbox row (dead letter): the city system refused it.
    pub fn mark_dead(
        &mut self,
        id: i64,
        status: Option<u16>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_status = ?2,
                     last_error = ?3
                 WHERE id = ?1",
                params![id, status, error],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Outbox rows by state.
    pub fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let mut counts = OutboxCounts::default();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, count(*) FROM outbox GROUP BY state")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.err())?;
        for row in rows {
            let (state, n) = row.map_err(self.err())?;
            match state.as_str() {
                "pending" => counts.pending = n as u64,
                "delivered" => counts.delivered = n as u64,
                "dead" => counts.dead = n as u64,
                "cancelled" => counts.cancelled = n as u64,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// When the next pending row is due (unix seconds), if any, not counting `exclude` (rows
    /// being sent) nor events waiting behind an earlier one of their incident.
    pub fn next_due(&self, exclude: &[i64]) -> Result<Option<f64>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT min(next_attempt_at) FROM outbox o WHERE state = 'pending'
                     AND id NOT IN ({}) AND {FIRST_OF_ITS_INCIDENT}",
                    id_list(exclude)
                ),
                [],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// Records a case report from the city system. `false` if the incident is unknown.
    pub fn record_case(
        &mut self,
        incident: Uuid,
        report: &CaseReport,
        now: f64,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "INSERT INTO case_reports (incident_id, status, case_number, note, reported_at,
                     received_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM incidents WHERE id = ?1)",
                params![
                    incident.to_string(),
                    report.status,
                    report.case_number,
                    report.note,
                    report.reported_at,
                    now
                ],
            )
            .map_err(self.err())?;
        Ok(n > 0)
    }

    /// The rows of `sql` (its last column the incident id, its `?` list the ids) grouped by
    /// incident: one query for a whole page of incidents.
    fn by_incident<T>(
        &self,
        sql: &str,
        ids: &[String],
        read: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<HashMap<String, Vec<T>>, StoreError> {
        let mut out: HashMap<String, Vec<T>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let placeholders = vec!["?"; ids.len()].join(",");
        let sql = sql.replace("(IDS)", &format!("({placeholders})"));
        let mut stmt = self.conn.prepare(&sql).map_err(self.err())?;
        let id_col = stmt.column_count() - 1;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(ids), |r| {
                Ok((r.get::<_, String>(id_col)?, read(r)?))
            })
            .map_err(self.err())?;
        for row in rows {
            let (id, value) = row.map_err(self.err())?;
            out.entry(id).or_default().push(value);
        }
        Ok(out)
    }

    fn deliveries_of(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<DeliveryRow>>, StoreError> {
        self.by_incident(
            "SELECT event, idempotency_key, state, attempts, next_attempt_at, last_status,
                 last_error, delivered_at, incident_id
             FROM outbox WHERE incident_id IN (IDS) ORDER BY id",
            ids,
            |r| {
                let state: String = r.get(2)?;
                let next: f64 = r.get(4)?;
                Ok(DeliveryRow {
                    event: r.get(0)?,
                    idempotency_key: r.get(1)?,
                    next_attempt_at: (state == "pending").then_some(next),
                    state,
                    attempts: r.get::<_, i64>(3)? as u32,
                    last_status: r.get::<_, Option<i64>>(5)?.map(|s| s as u16),
                    last_error: r.get(6)?,
                    delivered_at: r.get(7)?,
                })
            },
        )
    }

    fn evidence_of(&self, ids: &[String]) -> Result<HashMap<String, Vec<EvidenceRow>>, StoreError> {
        self.by_incident(
            "SELECT id, role, path, content_type, sha256, bytes, deleted_at IS NOT NULL, incident_id
             FROM evidence WHERE incident_id IN (IDS) ORDER BY id",
            ids,
            evidence_row,
        )
    }

    fn case_reports_of(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<CaseReport>>, StoreError> {
        self.by_incident(
            "SELECT status, case_number, note, reported_at, incident_id FROM case_reports
             WHERE incident_id IN (IDS) ORDER BY id",
            ids,
            |r| {
                Ok(CaseReport {
                    status: r.get(0)?,
                    case_number: r.get(1)?,
                    note: r.get(2)?,
                    reported_at: r.get(3)?,
                })
            },
        )
    }

    /// The evidence files of incident `incident`, oldest first, those retention removed included
    /// (`deleted`).
    pub fn evidence_rows(&self, incident: Uuid) -> Result<Vec<EvidenceRow>, StoreError> {
        let incident = incident.to_string();
        Ok(self
            .evidence_of(std::slice::from_ref(&incident))?
            .remove(&incident)
            .unwrap_or_default())
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Row ids as an SQL list (`1,2,3`; integers only, so nothing to escape).
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Reads `id, role, path, content_type, sha256, bytes, deleted` into an [`EvidenceRow`].
fn evidence_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EvidenceRow> {
    Ok(EvidenceRow {
        id: r.get(0)?,
        role: r.get(1)?,
        path: r.get(2)?,
        content_type: r.get(3)?,
        sha256: r.get(4)?,
        bytes: r.get::<_, i64>(5)? as u64,
        deleted: r.get(6)?,
    })
}

/// Incidents for tests of the store and of what reads it.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::incident::{CameraRef, FrameSize, ModelRef};

    pub(crate) fn body(id: Uuid, event: &str) -> IncidentBody {
        IncidentBody {
            incident_id: id,
            event: event.into(),
            category_code: "0102".into(),
            camera: CameraRef {
                id: "cam-01".into(),
                name: "cam-01".into(),
                gb28181_id: None,
                location: None,
            },
            zone: "roadside".into(),
            detected_at: "2026-11-23T18:00:00.000+08:00".into(),
            appeared_at: "2026-11-23T17:59:29.000+08:00".into(),
            dwell_s: 30.0,
            confidence: 0.7,
            objects: vec![],
            actor: None,
            frame: FrameSize {
                width: 1280,
                height: 720,
            },
            snapshots: vec![],
            model: ModelRef {
                name: "m".into(),
                sha256: "0".repeat(64),
            },
        }
    }

    pub(crate) fn event(id: Uuid, kind: EventKind, at: f64, files: &[&str]) -> NewEvent {
        NewEvent {
            body: body(id, kind.as_str()),
            kind,
            at,
            appeared_at: at - 31.0,
            spot: None,
            evidence: files
                .iter()
                .map(|f| EvidenceFile {
                    role: "event".into(),
                    path: (*f).into(),
                    content_type: "image/jpeg".into(),
                    sha256: "0".repeat(64),
                    bytes: 1000,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::retention::RetentionLimits;
    use super::testing::event;
    use super::*;

    fn reviewed(verdict: Verdict, at: f64) -> Review {
        Review {
            verdict,
            at,
            by: None,
            reason: None,
            note: None,
        }
    }

    #[test]
    fn a_dismissal_cancels_pending_deliveries_and_later_events_and_an_ack_puts_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let id = Uuid::now_v7();
        s.record(&event(id, EventKind::Raised, 100.0, &[]), 100.0)
            .unwrap();
        let row = s
            .review(
                id,
                &Review {
                    verdict: Verdict::Dismissed,
                    at: 110.0,
                    by: Some("op".into()),
                    reason: Some(ReviewReason::BelongsThere),
                    note: Some("a parked cart".into()),
                },
            )
            .unwrap()
            .unwrap();
        let review = row.review.unwrap();
        assert_eq!(
            (
                review.verdict,
                review.by.as_deref(),
                review.reason,
                review.note.as_deref()
            ),
            (
                Verdict::Dismissed,
                Some("op"),
                Some(ReviewReason::BelongsThere),
                Some("a parked cart")
            )
        );
        assert_eq!(row.deliveries[0].state, "cancelled");
        s.record(&event(id, EventKind::Cleared, 200.0, &[]), 200.0)
            .unwrap();
        let counts = s.outbox_counts().unwrap();
        assert_eq!((counts.pending, counts.cancelled), (0, 2));
        assert!(s.due(1e9, 10, &[]).unwrap().is_empty());
        let dismissed = IncidentQuery {
            review: Some(ReviewFilter::Is(Verdict::Dismissed)),
            limit: 10,
            ..IncidentQuery::default()
        };
        assert_eq!(s.incidents(&dismissed).unwrap().len(), 1);
        // The feed's other filters: by delivery state (the dismissal cancelled its events), by
        // zone, with the count over all pages.
        let by = |delivery: &str, zone: Option<&str>| IncidentQuery {
            delivery: Some(delivery.into()),
            zone: zone.map(str::to_owned),
            limit: 10,
            ..IncidentQuery::default()
        };
        assert_eq!(s.count_incidents(&dismissed).unwrap(), 1);
        assert_eq!(s.count_incidents(&by("cancelled", None)).unwrap(), 1);
        assert_eq!(s.count_incidents(&by("pending", None)).unwrap(), 0);
        let zone = row.zone.clone();
        assert_eq!(s.incidents(&by("cancelled", Some(&zone))).unwrap().len(), 1);
        assert_eq!(
            s.count_incidents(&by("cancelled", Some("elsewhere")))
                .unwrap(),
            0
        );
        // The operator changes their mind: both events go out after all.
        s.review(id, &reviewed(Verdict::Acknowledged, 300.0))
            .unwrap()
            .unwrap();
        assert_eq!(s.outbox_counts().unwrap().pending, 2);
        assert!(s.incidents(&dismissed).unwrap().is_empty());
        let unreviewed = IncidentQuery {
            review: Some(ReviewFilter::Unreviewed),
            limit: 10,
            ..IncidentQuery::default()
        };
        assert!(s.incidents(&unreviewed).unwrap().is_empty());
        assert!(
            s.review(Uuid::now_v7(), &reviewed(Verdict::Dismissed, 1.0))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_incidents_events_are_due_one_at_a_time_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let raised = s
            .record(&event(a, EventKind::Raised, 10.0, &[]), 10.0)
            .unwrap();
        let updated = s
            .record(&event(a, EventKind::Updated, 11.0, &[]), 11.0)
            .unwrap();
        s.record(&event(a, EventKind::Cleared, 12.0, &[]), 12.0)
            .unwrap();
        let other = s
            .record(&event(b, EventKind::Raised, 13.0, &[]), 13.0)
            .unwrap();
        let ids = |due: Vec<OutboxItem>| due.iter().map(|d| d.id).collect::<Vec<_>>();
        // Every row is due by time; only each incident's first is handed out.
        assert_eq!(ids(s.due(100.0, 10, &[]).unwrap()), [raised, other]);
        // While it is being sent, the incident's next waits, and is not "due next" either.
        assert_eq!(
            ids(s.due(100.0, 10, &[raised, other]).unwrap()),
            Vec::<i64>::new()
        );
        assert_eq!(s.next_due(&[raised, other]).unwrap(), None);
        s.mark_delivered(raised, 200, 101.0).unwrap();
        assert_eq!(ids(s.due(101.0, 10, &[other]).unwrap()), [updated]);
    }

    #[test]
    fn events_get_their_own_keys_and_change_the_incident() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let id = Uuid::now_v7();
        s.record(&event(id, EventKind::Raised, 100.0, &["a.jpg"]), 100.0)
            .unwrap();
        s.record(&event(id, EventKind::Updated, 150.0, &[]), 150.0)
            .unwrap();
        s.record(&event(id, EventKind::Updated, 160.0, &[]), 160.0)
            .unwrap();
        s.record(&event(id, EventKind::Cleared, 300.0, &[]), 300.0)
            .unwrap();
        let row = s.incident(id).unwrap().unwrap();
        assert_eq!(row.state, "cleared");
        assert_eq!((row.updated_at, row.cleared_at), (Some(160.0), Some(300.0)));
        let keys: Vec<String> = row
            .deliveries
            .iter()
            .map(|d| d.idempotency_key.clone())
            .collect();
        assert_eq!(
            keys,
            [
                id.to_string(),
                format!("{id}:updated:1"),
                format!("{id}:updated:2"),
                format!("{id}:cleared")
            ]
        );
        // An event of an unknown incident is refused, and nothing of it is stored.
        let other = Uuid::now_v7();
        assert!(matches!(
            s.record(&event(other, EventKind::Cleared, 1.0, &["x.jpg"]), 1.0),
            Err(StoreError::UnknownIncident(_))
        ));
        assert_eq!(s.outbox_counts().unwrap().pending, 4);
        // The incident's events are due one at a time, oldest first: the others wait while it
        // is being sent, and while it waits for a retry.
        let due = s.due(1000.0, 10, &[]).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].evidence.len(), 1);
        let first = due[0].id;
        assert_eq!(s.due(1000.0, 10, &[first]).unwrap().len(), 0);
        s.mark_retry(first, Some(503), "HTTP 503", 2000.0).unwrap();
        assert_eq!(s.due(1000.0, 10, &[]).unwrap().len(), 0);
        assert_eq!(s.next_due(&[]).unwrap(), Some(2000.0));
        s.mark_delivered(first, 200, 2000.0).unwrap();
        assert_eq!(s.next_due(&[]).unwrap(), Some(150.0));
        let second = s.due(2000.0, 10, &[]).unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(s.next_due(&[second[0].id]).unwrap(), None);
    }

    #[test]
    fn the_schema_is_migrated_once_and_a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::now_v7();
        {
            let mut s = Store::open(dir.path()).unwrap();
            s.record(&event(id, EventKind::Raised, 1.0, &[]), 1.0)
                .unwrap();
        }
        // Reopening keeps the data.
        let s = Store::open(dir.path()).unwrap();
        assert!(s.incident(id).unwrap().is_some());
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let e = Store::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }

    #[test]
    fn retention_takes_cleared_incidents_first_then_open_ones_never_undelivered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let files = ["open.jpg", "pending.jpg", "done.jpg"];
        for f in files {
            std::fs::write(dir.path().join(f), [0u8; 1000]).unwrap();
        }
        let (open, pending, done) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        // The open incident is the oldest: a spot nobody cleans.
        s.record(&event(open, EventKind::Raised, 0.0, &["open.jpg"]), 0.0)
            .unwrap();
        for (id, file) in [(pending, "pending.jpg"), (done, "done.jpg")] {
            s.record(&event(id, EventKind::Raised, 5.0, &[file]), 5.0)
                .unwrap();
            s.record(&event(id, EventKind::Cleared, 10.0, &[]), 10.0)
                .unwrap();
        }
        // Everything delivered but `pending`'s cleared event (an incident's events come due
        // one after the other).
        loop {
            let deliverable: Vec<i64> = s
                .due(100.0, 10, &[])
                .unwrap()
                .into_iter()
                .filter(|item| item.incident_id != pending || item.event == "raised")
                .map(|item| item.id)
                .collect();
            if deliverable.is_empty() {
                break;
            }
            for id in deliverable {
                s.mark_delivered(id, 201, 20.0).unwrap();
            }
        }
        let limit = |max_bytes| RetentionLimits {
            max_age_s: 3600.0,
            max_bytes,
        };
        // Over the size limit: the cleared incident's evidence goes before the older open one's.
        let r = s.apply_retention(dir.path(), limit(2000), 100.0).unwrap();
        assert_eq!((r.removed, r.freed_bytes, r.kept_bytes), (1, 1000, 2000));
        assert!(!dir.path().join("done.jpg").exists());
        assert!(dir.path().join("open.jpg").exists());
        assert!(s.incident(done).unwrap().unwrap().evidence[0].deleted);
        // Further over it: the open incident's goes too, the undelivered one's stays.
        let r = s.apply_retention(dir.path(), limit(0), 100.0).unwrap();
        assert_eq!((r.removed, r.kept_bytes), (1, 1000));
        assert!(!dir.path().join("open.jpg").exists() && dir.path().join("pending.jpg").exists());
        // By age alone nothing else goes, however old: it is still to be sent.
        let r = s
            .apply_retention(
                dir.path(),
                RetentionLimits {
                    max_age_s: 1.0,
                    max_bytes: u64::MAX,
                },
                1e9,
            )
            .unwrap();
        assert_eq!(r.removed, 0);
    }

    #[test]
    fn evidence_files_no_row_names_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let inc = |id: &Uuid| dir.path().join("evidence/cam-01").join(id.to_string());
        let (kept, crashed) = (Uuid::now_v7(), Uuid::now_v7());
        for (id, files) in [
            (
                &kept,
                &[
                    "event.jpg",
                    "clip.mp4",
                    "clip.json",
                    "late.jpg",
                    "event.jpg.tmp",
                ][..],
            ),
            (&crashed, &["event.jpg", "before.jpg"][..]),
        ] {
            std::fs::create_dir_all(inc(id)).unwrap();
            for f in files {
                std::fs::write(inc(id).join(f), [0u8; 100]).unwrap();
            }
        }
        let rel = |f: &str| format!("evidence/cam-01/{kept}/{f}");
        s.record(
            &event(
                kept,
                EventKind::Raised,
                0.0,
                &[&rel("event.jpg"), &rel("clip.mp4")],
            ),
            0.0,
        )
        .unwrap();
        // `crashed` never committed; `late.jpg` was written for an event that did not either.
        let r = s.remove_unrecorded_evidence(dir.path()).unwrap();
        assert_eq!((r.removed, r.freed_bytes, r.failed), (4, 400, 0));
        let mut left: Vec<String> = std::fs::read_dir(inc(&kept))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["clip.json", "clip.mp4", "event.jpg"]);
        assert!(!inc(&crashed).exists(), "the empty directory goes too");
    }

    #[test]
    fn an_unreadable_outbox_row_becomes_a_dead_letter_and_the_rest_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let (bad, good) = (Uuid::now_v7(), Uuid::now_v7());
        s.record(&event(bad, EventKind::Raised, 10.0, &[]), 10.0)
            .unwrap();
        s.record(&event(good, EventKind::Raised, 11.0, &[]), 11.0)
            .unwrap();
        s.conn()
            .execute(
                "UPDATE outbox SET body = '{not json' WHERE incident_id = ?1",
                [bad.to_string()],
            )
            .unwrap();
        let due = s.due(100.0, 10, &[]).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].incident_id, good);
        let dead = s.deliveries("dead", 10, 0).unwrap();
        assert_eq!(dead.len(), 1);
        assert!(
            dead[0]
                .last_error
                .as_deref()
                .unwrap()
                .starts_with("the stored body cannot be read"),
            "{dead:?}"
        );
    }

    #[test]
    fn a_feed_page_carries_each_incidents_own_deliveries_and_evidence_and_uses_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        for (i, id) in ids.iter().enumerate() {
            let t = 10.0 * i as f64;
            let file = format!("{id}.jpg");
            s.record(&event(*id, EventKind::Raised, t, &[&file]), t)
                .unwrap();
            if i != 1 {
                s.record(&event(*id, EventKind::Cleared, t + 5.0, &[]), t + 5.0)
                    .unwrap();
            }
        }
        let page = s
            .incidents(&IncidentQuery {
                limit: 10,
                ..IncidentQuery::default()
            })
            .unwrap();
        let got: Vec<(Uuid, usize, String)> = page
            .iter()
            .map(|r| (r.id, r.deliveries.len(), r.evidence[0].path.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (ids[2], 2, format!("{}.jpg", ids[2])),
                (ids[1], 1, format!("{}.jpg", ids[1])),
                (ids[0], 2, format!("{}.jpg", ids[0])),
            ]
        );
        let plan: Vec<String> = s
            .conn()
            .prepare("EXPLAIN QUERY PLAN SELECT id FROM incidents ORDER BY raised_at DESC, id DESC LIMIT 50")
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("incidents_raised"))
                && !plan.iter().any(|p| p.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }
}
