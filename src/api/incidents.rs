//! Incident endpoints: the feed, one incident, its evidence files, and the city system's case
//! reports.

// The helpers fail with the response to send; it is built once per request, never copied.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::ApiState;
use super::auth::Caller;
use crate::accounts::Role;
use crate::store::changes::Change;
use crate::store::writer::StoreHandle;
use crate::store::{
    CASE_STATUSES, CaseReport, IncidentQuery, Review, ReviewFilter, ReviewReason, Verdict,
};

/// Largest page of the incident feed.
pub const MAX_PAGE: u32 = 500;

/// A JSON error response.
pub(super) fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The query of a list endpoint, or the 400 that names what is wrong with it.
pub(super) fn query_of<T>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, Response> {
    query
        .map(|Query(q)| q)
        .map_err(|e| problem(StatusCode::BAD_REQUEST, e.body_text()))
}

/// A list's page size (default 50), or the 400 that says it is out of range.
pub(super) fn page_size(limit: Option<u32>) -> Result<u32, Response> {
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            format!("limit: {limit} is out of range: must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(limit)
}

/// The store, or the answer that there is none.
pub(super) fn store_of(s: &ApiState) -> Result<&StoreHandle, Response> {
    s.store
        .as_ref()
        .ok_or_else(|| problem(StatusCode::SERVICE_UNAVAILABLE, "no incident store"))
}

pub(super) fn parse_id(id: &str) -> Result<Uuid, Response> {
    id.parse::<Uuid>().map_err(|_| {
        problem(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not an incident id (a UUID)"),
        )
    })
}

/// Query of `GET /api/v1/incidents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this camera.
    camera: Option<String>,
    /// Only this zone.
    zone: Option<String>,
    /// `open` or `cleared`.
    state: Option<String>,
    /// Incidents with an event in this delivery state: `pending`, `delivered`, `dead` (the city
    /// system refused it) or `cancelled` (dismissed before it went out).
    delivery: Option<String>,
    /// `unreviewed`, `acknowledged` or `dismissed`.
    review: Option<String>,
    /// Raised at or after, unix seconds.
    since: Option<f64>,
    /// Raised before, unix seconds.
    until: Option<f64>,
    /// Page size, 1..=500 (default 50).
    limit: Option<u32>,
    /// Rows to skip (newest first).
    offset: Option<u32>,
}

/// `GET /api/v1/incidents`: newest first, filtered and paged.
pub async fn list(
    State(s): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query_of(query) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let store = match store_of(&s) {
        Ok(st) => st.clone(),
        Err(r) => return r,
    };
    let limit = match page_size(q.limit) {
        Ok(l) => l,
        Err(r) => return r,
    };
    if let Some(state) = &q.state
        && !matches!(state.as_str(), "open" | "cleared")
    {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("state: {state:?} is not one of open, cleared"),
        );
    }
    if let Some(d) = &q.delivery
        && !matches!(d.as_str(), "pending" | "delivered" | "dead" | "cancelled")
    {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("delivery: {d:?} is not one of pending, delivered, dead, cancelled"),
        );
    }
    let review = match q.review.as_deref() {
        None => None,
        Some("unreviewed") => Some(ReviewFilter::Unreviewed),
        Some(v) => match Verdict::parse(v) {
            Some(v) => Some(ReviewFilter::Is(v)),
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    format!("review: {v:?} is not one of unreviewed, acknowledged, dismissed"),
                );
            }
        },
    };
    for (name, t) in [("since", q.since), ("until", q.until)] {
        if t.is_some_and(|t| !t.is_finite()) {
            return problem(StatusCode::BAD_REQUEST, format!("{name}: not a number"));
        }
    }
    let query = IncidentQuery {
        camera: q.camera,
        zone: q.zone,
        state: q.state,
        delivery: q.delivery,
        review,
        since: q.since,
        until: q.until,
        limit,
        offset: q.offset.unwrap_or(0),
    };
    let (offset, limit) = (query.offset, query.limit);
    match store
        .read(move |st| {
            Ok::<_, crate::store::StoreError>((st.incidents(&query)?, st.count_incidents(&query)?))
        })
        .await
    {
        Ok(Ok((rows, total))) => Json(json!({
            "incidents": rows,
            "offset": offset,
            "limit": limit,
            "total": total,
        }))
        .into_response(),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `GET /api/v1/incidents/{id}`.
pub async fn one(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let store = match store_of(&s) {
        Ok(st) => st.clone(),
        Err(r) => return r,
    };
    match store.read(move |st| st.incident(id)).await {
        Ok(Ok(Some(row))) => Json(row).into_response(),
        Ok(Ok(None)) => problem(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Body of `POST /api/v1/incidents/{id}/case`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseBody {
    /// `registered` (立案), `dispatched` (派遣), `handled` (处置) or `closed` (结案).
    status: String,
    /// The city's case number.
    case_number: String,
    /// Free text.
    #[serde(default)]
    note: Option<String>,
    /// When it happened, unix seconds (default: now).
    #[serde(default)]
    at: Option<f64>,
}

/// `POST /api/v1/incidents/{id}/case` (the city system's case token): the city system reports a case step.
pub async fn case(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<CaseBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !s.auth.case_token_set() {
        return problem(
            StatusCode::FORBIDDEN,
            "case reports are disabled: set api.case_token_env to the name of an environment variable holding the city system's token",
        );
    }
    if !s.auth.is_case_system(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": "case reports need the city system's token (api.case_token_env)" })),
        )
            .into_response();
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if !CASE_STATUSES.contains(&body.status.as_str()) {
        return problem(
            StatusCode::BAD_REQUEST,
            format!(
                "status: {:?} is not one of {}",
                body.status,
                CASE_STATUSES.join(", ")
            ),
        );
    }
    if body.case_number.trim().is_empty() || body.case_number.len() > 64 {
        return problem(
            StatusCode::BAD_REQUEST,
            "case_number: must be 1 to 64 characters",
        );
    }
    if body.note.as_ref().is_some_and(|n| n.len() > 2000) {
        return problem(StatusCode::BAD_REQUEST, "note: longer than 2000 bytes");
    }
    let now = crate::clock::unix_now();
    if body.at.is_some_and(|t| !t.is_finite() || t < 0.0) {
        return problem(StatusCode::BAD_REQUEST, "at: not a time (unix seconds)");
    }
    let report = CaseReport {
        status: body.status,
        case_number: body.case_number,
        note: body.note,
        reported_at: body.at.unwrap_or(now),
    };
    let store = match store_of(&s) {
        Ok(st) => st.clone(),
        Err(r) => return r,
    };
    match store.call(move |st| st.record_case(id, &report, now)).await {
        Ok(Ok(true)) => {
            (StatusCode::CREATED, Json(json!({ "status": "recorded" }))).into_response()
        }
        Ok(Ok(false)) => problem(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Body of `POST /api/v1/incidents/{id}/ack` and `/dismiss` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// Who reviewed, up to 100 bytes: for the service token only (a logged-in operator's
    /// review carries their shown name).
    #[serde(default)]
    by: Option<String>,
    /// Why, from the list: `lighting`, `shadow`, `belongs_there`, `animal`, `other`.
    #[serde(default)]
    reason: Option<ReviewReason>,
    /// Why, in the operator's words, up to 2000 bytes.
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/v1/incidents/{id}/ack` (operator): an operator confirms the incident.
pub async fn ack(
    s: State<ApiState>,
    id: Path<String>,
    caller: Extension<Caller>,
    b: axum::body::Bytes,
) -> Response {
    review(s, id, caller, b, Verdict::Acknowledged).await
}

/// `POST /api/v1/incidents/{id}/dismiss` (operator): an operator marks the incident a false
/// positive. It is kept (for `dumpwatch export-feedback`); its pending deliveries are cancelled.
pub async fn dismiss(
    s: State<ApiState>,
    id: Path<String>,
    caller: Extension<Caller>,
    b: axum::body::Bytes,
) -> Response {
    review(s, id, caller, b, Verdict::Dismissed).await
}

async fn review(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
    verdict: Verdict,
) -> Response {
    if let Err(r) = caller.needs(Role::Operator) {
        return r;
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let body: ReviewBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReviewBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    format!("body: not a review ({{\"reason\": ..., \"note\": ...}}): {e}"),
                );
            }
        }
    };
    if body.by.as_ref().is_some_and(|b| b.len() > 100) {
        return problem(StatusCode::BAD_REQUEST, "by: longer than 100 bytes");
    }
    if body.note.as_ref().is_some_and(|n| n.len() > 2000) {
        return problem(StatusCode::BAD_REQUEST, "note: longer than 2000 bytes");
    }
    let by = match &caller {
        Caller::User { shown, .. } => Some(shown.clone()),
        Caller::ServiceToken => body.by,
    };
    let store = match store_of(&s) {
        Ok(st) => st.clone(),
        Err(r) => return r,
    };
    let now = crate::clock::unix_now();
    let changes = store.changes().clone();
    let review = Review {
        verdict,
        at: now,
        by,
        reason: body.reason,
        note: body.note,
    };
    match store.call(move |st| st.review(id, &review)).await {
        Ok(Ok(Some(row))) => {
            changes.tell(Change::Review {
                incident: id,
                verdict: verdict.as_str().to_owned(),
                recorded_at: now,
            });
            Json(row).into_response()
        }
        Ok(Ok(None)) => problem(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
