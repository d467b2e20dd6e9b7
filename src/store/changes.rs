//! What the store took, told at once to whoever listens: the operations center's live feed
//! (`GET /api/v1/live`) learns of a new incident as soon as it is recorded, instead of at its
//! next poll.

use serde::Serialize;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::analyze::view::View;

/// Changes kept for a listener that falls behind; one further behind is told to read again
/// ([`broadcast::error::RecvError::Lagged`]).
const KEPT: usize = 256;

/// One change the store took.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// An incident event was recorded (raised, updated, cleared).
    Incident {
        /// The incident.
        incident: Uuid,
        /// Its camera.
        camera_id: String,
        /// `raised`, `updated` or `cleared`.
        event: String,
        /// When the analyzer decided it, unix seconds.
        at: f64,
        /// When the store took it, unix seconds.
        recorded_at: f64,
    },
    /// A file was added to an incident's evidence after its event (the clip).
    Evidence {
        /// The incident.
        incident: Uuid,
        /// Its camera.
        camera_id: String,
        /// The file's role (`clip`).
        role: String,
        /// When the store took it, unix seconds.
        recorded_at: f64,
    },
    /// A camera's view was lost or found again.
    Camera {
        /// The camera.
        camera_id: String,
        /// What it sees now.
        view: View,
        /// When the store took it, unix seconds.
        recorded_at: f64,
    },
    /// An operator acknowledged or dismissed an incident.
    Review {
        /// The incident.
        incident: Uuid,
        /// `acknowledged` or `dismissed`.
        verdict: String,
        /// When the store took it, unix seconds.
        recorded_at: f64,
    },
}

impl Change {
    /// The event name on the live feed (`incident`, `evidence`, `camera`, `review`).
    pub fn name(&self) -> &'static str {
        match self {
            Change::Incident { .. } => "incident",
            Change::Evidence { .. } => "evidence",
            Change::Camera { .. } => "camera",
            Change::Review { .. } => "review",
        }
    }
}

/// Where changes are told; clone it freely.
#[derive(Clone, Debug)]
pub struct Changes {
    tx: broadcast::Sender<Change>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            tx: broadcast::channel(KEPT).0,
        }
    }
}

impl Changes {
    /// Tells every listener (none listening is fine).
    pub fn tell(&self, change: Change) {
        let _ = self.tx.send(change);
    }

    /// A new listener: it hears what is told from now on.
    pub fn listen(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listener_hears_a_change_by_its_kind() {
        let changes = Changes::default();
        let (mut a, mut b) = (changes.listen(), changes.listen());
        let change = Change::Camera {
            camera_id: "cam-01".into(),
            view: View::Moved,
            recorded_at: 1.0,
        };
        changes.tell(change.clone());
        assert_eq!(a.try_recv().unwrap(), change);
        assert_eq!(b.try_recv().unwrap().name(), "camera");
        let json = serde_json::to_value(&change).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "camera", "camera_id": "cam-01", "view": "moved", "recorded_at": 1.0})
        );
    }
}
