//! `GET /api/v1/live`: the operations center's live feed, as server-sent events. Each change the
//! store takes (an incident event, a clip, a camera's view, a review) is sent the moment it is
//! recorded, named by its kind (`incident`, `evidence`, `camera`, `review`) with the change as
//! JSON; a listener that fell behind gets `resync` (read the lists again). A comment every 15 s
//! keeps idle connections open through proxies.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::ApiState;
use super::incidents::problem;

/// Seconds between keep-alive comments.
const KEEP_ALIVE_S: u64 = 15;

/// The live feed; 503 without a store (nothing is recorded, so nothing would ever be sent).
pub async fn feed(State(s): State<ApiState>) -> Response {
    let Some(store) = &s.store else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "no store: the service records nothing, so there is no live feed",
        );
    };
    Sse::new(events(store.changes().listen()))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(KEEP_ALIVE_S)))
        .into_response()
}

/// The changes heard by `rx` as server-sent events, until the store's side closes.
fn events(
    rx: tokio::sync::broadcast::Receiver<crate::store::changes::Change>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(change) => Event::default()
                .event(change.name())
                .json_data(&change)
                .unwrap_or_else(|_| Event::default().event("resync")),
            Err(RecvError::Lagged(missed)) => Event::default()
                .event("resync")
                .data(format!("{missed} changes missed")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    })
}
