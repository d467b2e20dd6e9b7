//! Delivery endpoints: the outbox by state (above all the dead letters: events the city system
//! refused), and sending dead letters again once the city side is fixed (admin).

// The helpers fail with the response to send; it is built once per request, never copied.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::auth::Caller;
use super::incidents::{page_size, problem, query_of, store_of};
use crate::accounts::Role;
use crate::store::dead_letters::DELIVERY_STATES;

/// Query of `GET /api/v1/deliveries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `pending`, `delivered`, `dead` (default) or `cancelled`.
    state: Option<String>,
    /// Page size, 1..=500 (default 50).
    limit: Option<u32>,
    /// Rows to skip (newest first).
    offset: Option<u32>,
}

/// `GET /api/v1/deliveries?state=dead`: outbox rows in a state, newest first, paged.
pub async fn list(
    State(s): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query_of(query) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let state = q.state.unwrap_or_else(|| "dead".into());
    if !DELIVERY_STATES.contains(&state.as_str()) {
        return problem(
            StatusCode::BAD_REQUEST,
            format!(
                "state: {state:?} is not one of {}",
                DELIVERY_STATES.join(", ")
            ),
        );
    }
    let limit = match page_size(q.limit) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let offset = q.offset.unwrap_or(0);
    let store = match store_of(&s) {
        Ok(st) => st.clone(),
        Err(r) => return r,
    };
    let listed = state.clone();
    match store
        .read(move |st| st.deliveries(&listed, limit, offset))
        .await
    {
        Ok(Ok(rows)) => Json(json!({
            "deliveries": rows,
            "state": state,
            "offset": offset,
            "limit": limit,
        }))
        .into_response(),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `POST /api/v1/deliveries/{id}/requeue` (admin): sends one dead letter again.
pub async fn requeue_one(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    if let Err(r) = caller.needs(Role::Admin) {
        return r;
    }
    let Ok(row) = id.parse::<i64>() else {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a delivery id (the `id` of GET /api/v1/deliveries)"),
        );
    };
    match requeue(&s, Some(row)).await {
        Ok(0) => problem(
            StatusCode::NOT_FOUND,
            format!("no dead letter {row}: see GET /api/v1/deliveries?state=dead"),
        ),
        Ok(n) => Json(json!({ "requeued": n })).into_response(),
        Err(r) => r,
    }
}

/// `POST /api/v1/deliveries/requeue` (admin): sends every dead letter again.
pub async fn requeue_all(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    if let Err(r) = caller.needs(Role::Admin) {
        return r;
    }
    match requeue(&s, None).await {
        Ok(n) => Json(json!({ "requeued": n })).into_response(),
        Err(r) => r,
    }
}

/// Puts dead letters back in the outbox and wakes the delivery worker; how many.
async fn requeue(s: &ApiState, row: Option<i64>) -> Result<u64, Response> {
    let store = store_of(s)?.clone();
    let now = crate::clock::unix_now();
    match store.call(move |st| st.requeue_dead(row, now)).await {
        Ok(Ok(n)) => {
            if n > 0 {
                tracing::info!(requeued = n, row = ?row, "dead letters sent again");
                store.wake_delivery();
            }
            Ok(n)
        }
        Ok(Err(e)) => Err(problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err(problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}
