//! The operations center's reviews of incidents: acknowledged (a real dumping) or dismissed (a
//! false positive, kept for tuning), by whom and why.

use rusqlite::params;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{IncidentRow, Store, StoreError};

/// What an operator said of an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Seen and confirmed: a real dumping.
    Acknowledged,
    /// A false positive: kept for tuning (`dumpwatch export-feedback`), not delivered further.
    Dismissed,
}

impl Verdict {
    /// The stored and query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Acknowledged => "acknowledged",
            Verdict::Dismissed => "dismissed",
        }
    }

    /// Parses a stored or query value.
    pub fn parse(s: &str) -> Option<Verdict> {
        match s {
            "acknowledged" => Some(Verdict::Acknowledged),
            "dismissed" => Some(Verdict::Dismissed),
            _ => None,
        }
    }
}

/// Why an operator reviewed an incident so, from the operations center's list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// A change of light (a lamp, headlights, the sun) looked like an object.
    Lighting,
    /// A shadow looked like an object.
    Shadow,
    /// The object belongs there (a bin, a bench, goods of a shop).
    BelongsThere,
    /// An animal.
    Animal,
    /// Something else (the note says what).
    Other,
}

impl ReviewReason {
    /// Every reason, in the order the dashboard lists them.
    pub const ALL: [ReviewReason; 5] = [
        ReviewReason::Lighting,
        ReviewReason::Shadow,
        ReviewReason::BelongsThere,
        ReviewReason::Animal,
        ReviewReason::Other,
    ];

    /// The stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewReason::Lighting => "lighting",
            ReviewReason::Shadow => "shadow",
            ReviewReason::BelongsThere => "belongs_there",
            ReviewReason::Animal => "animal",
            ReviewReason::Other => "other",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<ReviewReason> {
        ReviewReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An operator's review of an incident.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Review {
    /// Acknowledged or dismissed.
    pub verdict: Verdict,
    /// Unix seconds.
    pub at: f64,
    /// Who: the logged-in operator's shown name (or what an automation with the service token
    /// said).
    pub by: Option<String>,
    /// Why, from the list.
    pub reason: Option<ReviewReason>,
    /// Why, in the operator's words.
    pub note: Option<String>,
}

/// Filter on the review of an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewFilter {
    /// Not reviewed yet.
    Unreviewed,
    /// With this verdict.
    Is(Verdict),
}

impl Store {
    /// Records an operator's review. A dismissal cancels the incident's pending deliveries; an
    /// acknowledgement after a dismissal puts them back in the queue. `None` if the incident is
    /// unknown, else the incident as it now is.
    pub fn review(
        &mut self,
        incident: Uuid,
        review: &Review,
    ) -> Result<Option<IncidentRow>, StoreError> {
        let Review {
            verdict,
            at: now,
            ref by,
            reason,
            ref note,
        } = *review;
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let id = incident.to_string();
        let tx = self.conn.transaction().map_err(err)?;
        let changed = tx
            .execute(
                "UPDATE incidents SET review = ?2, reviewed_at = ?3, reviewed_by = ?4,
                     review_note = ?5, review_reason = ?6 WHERE id = ?1",
                params![
                    id,
                    verdict.as_str(),
                    now,
                    by,
                    note,
                    reason.map(ReviewReason::as_str)
                ],
            )
            .map_err(err)?;
        if changed == 0 {
            return Ok(None);
        }
        match verdict {
            Verdict::Dismissed => tx.execute(
                "UPDATE outbox SET state = 'cancelled', last_error = 'dismissed by the operations center'
                 WHERE incident_id = ?1 AND state = 'pending'",
                [&id],
            ),
            Verdict::Acknowledged => tx.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, last_error = NULL
                 WHERE incident_id = ?1 AND state = 'cancelled'",
                params![id, now],
            ),
        }
        .map_err(err)?;
        tx.commit().map_err(err)?;
        self.incident(incident)
    }
}
