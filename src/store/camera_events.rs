//! Camera events for the operations center: a camera that no longer watches its zones (turned,
//! bumped, covered) and its return, or its new view being learned after its zones were drawn
//! anew. Kept like incidents (never pruned: a few rows a day per camera at worst), listed newest
//! first by `GET /api/v1/camera-events`. Not sent to the city system: they are the center's own
//! work, not cases.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::analyze::view::View;

/// A change of a camera's view, to record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewCameraEvent {
    /// The camera's id.
    pub camera_id: String,
    /// What it sees now.
    pub view: View,
    /// What it saw before.
    pub previous: View,
    /// When the view changed, unix seconds.
    pub at: f64,
}

impl NewCameraEvent {
    /// Whether the operations center is told of a change from `previous` to `view`: a view
    /// lost, and what follows a lost view (home again, or a new view learned). A camera that
    /// starts and learns its home view is routine and is not an event.
    pub fn worth_telling(previous: View, view: View) -> bool {
        previous != view && (previous.is_lost() || view.is_lost())
    }
}

/// A recorded camera event, as `GET /api/v1/camera-events` lists it: the event's fields, with
/// its row id and when the store took it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CameraEventRow {
    /// Row id (newest is highest).
    pub id: i64,
    /// The change: camera, view now (`moved`, `covered`, `home` back, or `learning` a new view
    /// after its zones were drawn anew), view before, and when.
    #[serde(flatten)]
    pub event: NewCameraEvent,
    /// When the store took it, unix seconds.
    pub recorded_at: f64,
}

impl Store {
    /// Records a camera event. The same change of the same camera at the same time is recorded
    /// once (a write retried or replayed from the spool). Returns its row id.
    pub fn record_camera_event(
        &mut self,
        ev: &NewCameraEvent,
        now: f64,
    ) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO camera_events (camera_id, view, previous, at, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                ev.camera_id,
                ev.view.as_str(),
                ev.previous.as_str(),
                ev.at,
                now
            ],
        )
        .map_err(self.err())?;
        conn.query_row(
            "SELECT id FROM camera_events WHERE camera_id = ?1 AND at = ?2 AND view = ?3",
            params![ev.camera_id, ev.at, ev.view.as_str()],
            |r| r.get(0),
        )
        .map_err(self.err())
    }

    /// Camera events newest first, of one camera or all, paged.
    pub fn camera_events(
        &self,
        camera: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<CameraEventRow>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT id, camera_id, view, previous, at, recorded_at FROM camera_events
                 WHERE ?1 IS NULL OR camera_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3",
            )
            .map_err(self.err())?;
        stmt.query_map(params![camera, limit, offset], |r| {
            let view = |i: usize| -> rusqlite::Result<View> {
                let name: String = r.get(i)?;
                View::parse(&name).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Text,
                        format!("camera_events: {name:?} is not a camera view").into(),
                    )
                })
            };
            Ok(CameraEventRow {
                id: r.get(0)?,
                event: NewCameraEvent {
                    camera_id: r.get(1)?,
                    view: view(2)?,
                    previous: view(3)?,
                    at: r.get(4)?,
                },
                recorded_at: r.get(5)?,
            })
        })
        .map_err(self.err())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(camera: &str, at: f64) -> NewCameraEvent {
        NewCameraEvent {
            camera_id: camera.into(),
            view: View::Moved,
            previous: View::Home,
            at,
        }
    }

    #[test]
    fn events_are_listed_newest_first_by_camera_and_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let first = store
            .record_camera_event(&moved("a", 100.0), 101.0)
            .unwrap();
        let back = NewCameraEvent {
            view: View::Home,
            previous: View::Moved,
            at: 160.0,
            ..moved("a", 0.0)
        };
        store.record_camera_event(&back, 161.0).unwrap();
        store
            .record_camera_event(&moved("b", 120.0), 121.0)
            .unwrap();
        // A retried write is the same row.
        assert_eq!(
            store
                .record_camera_event(&moved("a", 100.0), 130.0)
                .unwrap(),
            first
        );

        let all = store.camera_events(None, 10, 0).unwrap();
        let seen: Vec<(&str, View)> = all
            .iter()
            .map(|e| (e.event.camera_id.as_str(), e.event.view))
            .collect();
        assert_eq!(
            seen,
            [("b", View::Moved), ("a", View::Home), ("a", View::Moved)]
        );
        assert_eq!(all[2].recorded_at, 101.0);
        let of_a = store.camera_events(Some("a"), 10, 0).unwrap();
        assert_eq!(of_a.len(), 2);
        assert_eq!(of_a[0].event.previous, View::Moved);
        let paged = store.camera_events(None, 1, 1).unwrap();
        assert_eq!(paged[0].event.camera_id, "a");
        assert_eq!(paged[0].event.view, View::Home);
    }

    #[test]
    fn only_a_view_lost_and_what_follows_it_is_worth_telling() {
        use View::*;
        assert!(NewCameraEvent::worth_telling(Home, Moved));
        assert!(NewCameraEvent::worth_telling(Home, Covered));
        assert!(NewCameraEvent::worth_telling(Moved, Home));
        assert!(NewCameraEvent::worth_telling(Covered, Moved));
        assert!(NewCameraEvent::worth_telling(Moved, Learning));
        assert!(!NewCameraEvent::worth_telling(Learning, Home));
        assert!(!NewCameraEvent::worth_telling(Home, Learning));
        assert!(!NewCameraEvent::worth_telling(Moved, Moved));
    }
}
