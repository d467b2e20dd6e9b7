//! `GET /api/v1/camera-events`: cameras that stopped watching their zones (turned, bumped,
//! covered) and came back, newest first, for the operations center.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::incidents::{page_size, problem, query_of, store_of};

/// Query of `GET /api/v1/camera-events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this camera.
    camera: Option<String>,
    /// Page size, 1..=500 (default 50).
    limit: Option<u32>,
    /// Rows to skip (newest first).
    offset: Option<u32>,
}

/// `GET /api/v1/camera-events`: newest first, of one camera or all, paged.
pub async fn list(
    State(s): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query_of(query) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let limit = match page_size(q.limit) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let offset = q.offset.unwrap_or(0);
    let store = match store_of(&s) {
        Ok(st) => st.clone(),
        Err(r) => return r,
    };
    let camera = q.camera.clone();
    match store
        .read(move |st| st.camera_events(camera.as_deref(), limit, offset))
        .await
    {
        Ok(Ok(rows)) => Json(json!({
            "camera_events": rows,
            "camera": q.camera,
            "offset": offset,
            "limit": limit,
        }))
        .into_response(),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
