//! Deliveries by state for the operations center, above all the dead letters (events the city
//! system refused with a 4xx, or whose stored body cannot be read), and sending dead letters
//! again once the city side is fixed.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError};

/// One outbox row as listed by `GET /api/v1/deliveries`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryItem {
    /// Outbox row id (what `POST /api/v1/deliveries/{id}/requeue` names).
    pub id: i64,
    /// The incident.
    pub incident_id: String,
    /// Its camera.
    pub camera_id: String,
    /// `raised`, `updated`, `cleared`.
    pub event: String,
    /// The `Idempotency-Key` it is sent with.
    pub idempotency_key: String,
    /// `pending`, `delivered`, `dead`, `cancelled`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// HTTP status of the last attempt, if it got one.
    pub last_status: Option<u16>,
    /// What went wrong last.
    pub last_error: Option<String>,
    /// When the event happened, unix seconds.
    pub created_at: f64,
}

/// The states a delivery can be listed by.
pub const DELIVERY_STATES: &[&str] = &["pending", "delivered", "dead", "cancelled"];

impl Store {
    /// Outbox rows in `state`, newest first, paged.
    pub fn deliveries(
        &self,
        state: &str,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<DeliveryItem>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT o.id, o.incident_id, i.camera_id, o.event, o.idempotency_key, o.state,
                        o.attempts, o.last_status, o.last_error, o.created_at
                 FROM outbox o JOIN incidents i ON i.id = o.incident_id
                 WHERE o.state = ?1 ORDER BY o.id DESC LIMIT ?2 OFFSET ?3",
            )
            .map_err(self.err())?;
        stmt.query_map(params![state, limit, offset], |r| {
            Ok(DeliveryItem {
                id: r.get(0)?,
                incident_id: r.get(1)?,
                camera_id: r.get(2)?,
                event: r.get(3)?,
                idempotency_key: r.get(4)?,
                state: r.get(5)?,
                attempts: r.get::<_, i64>(6)?.max(0) as u32,
                last_status: r.get::<_, Option<i64>>(7)?.map(|s| s as u16),
                last_error: r.get(8)?,
                created_at: r.get(9)?,
            })
        })
        .map_err(self.err())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(self.err())
    }

    /// Puts dead letters back in the outbox, due at `now`: the one with row id `id`, or every
    /// one. Their attempt counts and last errors stay (the history of what happened). Returns
    /// how many were re-queued.
    pub fn requeue_dead(&mut self, id: Option<i64>, now: f64) -> Result<u64, StoreError> {
        let n = self
            .conn()
            .execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?2
                 WHERE state = 'dead' AND (?1 IS NULL OR id = ?1)",
                params![id, now],
            )
            .map_err(self.err())?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::event;
    use super::*;
    use crate::analyze::EventKind;
    use uuid::Uuid;

    #[test]
    fn dead_letters_are_listed_and_sent_again_one_or_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        for id in &ids {
            s.record(&event(*id, EventKind::Raised, 10.0, &[]), 10.0)
                .unwrap();
        }
        let rows = s.due(100.0, 10, &[]).unwrap();
        for item in &rows {
            s.mark_dead(item.id, Some(422), "HTTP 422: missing field `zone`")
                .unwrap();
        }
        let dead = s.deliveries("dead", 10, 0).unwrap();
        assert_eq!(dead.len(), 3);
        assert_eq!(dead[0].id, rows[2].id, "newest first");
        assert_eq!(
            (
                dead[0].last_status,
                dead[0].camera_id.as_str(),
                dead[0].attempts
            ),
            (Some(422), "cam-01", 1)
        );
        assert_eq!(s.deliveries("dead", 2, 2).unwrap().len(), 1, "paged");
        // One, then the rest.
        assert_eq!(s.requeue_dead(Some(rows[0].id), 200.0).unwrap(), 1);
        assert_eq!(s.requeue_dead(Some(rows[0].id), 200.0).unwrap(), 0);
        assert_eq!(s.outbox_counts().unwrap().dead, 2);
        assert_eq!(s.requeue_dead(None, 200.0).unwrap(), 2);
        let due = s.due(200.0, 10, &[]).unwrap();
        assert_eq!(due.len(), 3);
        assert_eq!(due[0].attempts, 1, "the attempt history stays");
        assert!(s.deliveries("dead", 10, 0).unwrap().is_empty());
    }
}
