//! The open incidents of every camera with their spots, read at start so that each camera's
//! analysis follows its open incidents on (see [`crate::analyze::OpenSpot`]).

use uuid::Uuid;

use super::{Store, StoreError};

/// An open incident and the analyzer's spot of it.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenIncident {
    /// The incident.
    pub incident: Uuid,
    /// Its camera.
    pub camera_id: String,
    /// The spot (JSON of [`crate::analyze::OpenSpot`]); `None` for an incident raised by a
    /// dumpwatch that did not keep spots.
    pub spot: Option<String>,
}

impl Store {
    /// Every open incident, oldest first.
    pub fn open_incidents(&self) -> Result<Vec<OpenIncident>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT id, camera_id, spot FROM incidents WHERE state = 'open'
                 ORDER BY raised_at, id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, camera_id, spot)| {
                let incident = Uuid::parse_str(&id)
                    .inspect_err(|e| {
                        tracing::warn!(incident = %id, error = %e, "an open incident with an unreadable id is not followed")
                    })
                    .ok()?;
                Some(OpenIncident {
                    incident,
                    camera_id,
                    spot,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::event;
    use super::*;
    use crate::analyze::EventKind;

    #[test]
    fn open_incidents_carry_their_latest_spot_and_a_cleared_one_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let with_spot = |id, kind, at, spot: Option<&str>| {
            let mut e = event(id, kind, at, &[]);
            e.spot = spot.map(str::to_owned);
            e
        };
        store
            .record(
                &with_spot(a, EventKind::Raised, 10.0, Some("{\"v\":1}")),
                10.0,
            )
            .unwrap();
        store
            .record(
                &with_spot(a, EventKind::Updated, 20.0, Some("{\"v\":2}")),
                20.0,
            )
            .unwrap();
        // An update without a spot keeps the one before.
        store
            .record(&with_spot(a, EventKind::Updated, 25.0, None), 25.0)
            .unwrap();
        store
            .record(&with_spot(b, EventKind::Raised, 30.0, Some("{}")), 30.0)
            .unwrap();
        assert_eq!(store.open_incidents().unwrap().len(), 2);
        store
            .record(&with_spot(b, EventKind::Cleared, 40.0, None), 40.0)
            .unwrap();
        let open = store.open_incidents().unwrap();
        assert_eq!(
            open,
            vec![OpenIncident {
                incident: a,
                camera_id: "cam-01".into(),
                spot: Some("{\"v\":2}".into()),
            }]
        );
    }

    #[test]
    fn an_event_recorded_twice_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let id = Uuid::now_v7();
        let raised = event(id, EventKind::Raised, 10.0, &[]);
        let cleared = event(id, EventKind::Cleared, 20.0, &[]);
        let first = store.record(&raised, 10.0).unwrap();
        assert_eq!(store.record(&raised, 11.0).unwrap(), first);
        let first = store.record(&cleared, 20.0).unwrap();
        assert_eq!(store.record(&cleared, 21.0).unwrap(), first);
        assert_eq!(store.outbox_counts().unwrap().pending, 2);
    }
}
