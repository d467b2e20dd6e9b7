//! HTTP API (axum): Prometheus metrics, health, camera status and latest pictures, the incident
//! feed with its evidence, and the city system's case reports. Reads shared state and the store;
//! nothing in the pipeline depends on it.

pub mod auth;
pub mod camera_events;
pub mod dashboard;
pub mod deliveries;
pub mod evidence;
pub mod incidents;
pub mod listen;
pub mod live;
pub mod serve;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};

use crate::annotate::{class_colour, draw_box_with_label, draw_zone};
use crate::config::ZoneConfig;
use crate::detect::ModelInfo;
use crate::ingest::{CameraState, StatusBoard};
use crate::metrics::Metrics;

/// The newest analysed picture of every camera slot, with its detections.
pub use crate::watch::LatestPictures;

/// What the handlers read.
#[derive(Clone)]
pub struct ApiState {
    /// Metrics registry.
    pub metrics: Metrics,
    /// Camera status.
    pub status: Arc<StatusBoard>,
    /// Latest picture per camera.
    pub pictures: Arc<LatestPictures>,
    /// Zones per camera slot (like the status board), for drawing; a reload changes them.
    pub zones: Arc<crate::slots::SlotTable<Arc<Vec<ZoneConfig>>>>,
    /// The detector's model (class names for labels).
    pub model: Arc<ModelInfo>,
    /// The incident store (`None`: the incident endpoints answer 503).
    pub store: Option<crate::store::writer::StoreHandle>,
    /// The recording stage, whose backlog `/readyz` reports (`None`: not checked).
    pub recording: Option<crate::recording::Recording>,
    /// Who may read and change what: sessions, the service token, the case token.
    pub auth: Arc<auth::Auth>,
    /// The storage directory (evidence paths are relative to it).
    pub storage_dir: std::path::PathBuf,
    /// Reloads the configuration (`None`: reload is not available).
    pub reload: Option<crate::supervisor::ReloadHandle>,
    /// Longest time a request may take to be answered (503 after it).
    pub request_timeout: std::time::Duration,
    /// The site's offset from UTC in minutes (`delivery.utc_offset`): the dashboard shows its
    /// times in it.
    pub utc_offset_min: i32,
}

/// The router with every endpoint. The dashboard's files, `/metrics`, `/healthz`, `/readyz`, the
/// OpenAPI document, login and logout are public; case reports check the city system's token;
/// everything else needs a caller ([`auth::require_caller`]) and the role its handler asks.
pub fn router(state: ApiState) -> Router {
    let timeout = state.request_timeout;
    let public = Router::new()
        .route("/", get(dashboard::index))
        .route("/dashboard/texts.js", get(dashboard::texts))
        .route("/dashboard/dashboard.js", get(dashboard::script))
        .route("/dashboard/dashboard.css", get(dashboard::style))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/login", post(auth::login))
        .route("/api/v1/logout", post(auth::logout))
        .route("/api/v1/incidents/{id}/case", post(incidents::case));
    let callers = Router::new()
        .route("/api/v1/me", get(auth::me))
        .route("/api/v1/cameras", get(cameras))
        .route("/api/v1/cameras/{id}", get(camera))
        .route("/api/v1/cameras/{id}/latest.jpg", get(latest_jpeg))
        .route("/api/v1/camera-events", get(camera_events::list))
        .route("/api/v1/live", get(live::feed))
        .route("/api/v1/incidents", get(incidents::list))
        .route("/api/v1/incidents/{id}", get(incidents::one))
        .route("/api/v1/incidents/{id}/clip", get(evidence::clip))
        .route("/api/v1/incidents/{id}/ack", post(incidents::ack))
        .route("/api/v1/incidents/{id}/dismiss", post(incidents::dismiss))
        .route("/api/v1/deliveries", get(deliveries::list))
        .route("/api/v1/deliveries/requeue", post(deliveries::requeue_all))
        .route(
            "/api/v1/deliveries/{id}/requeue",
            post(deliveries::requeue_one),
        )
        .route("/api/v1/config/reload", post(reload))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_caller,
        ));
    // Evidence files: for the operations center, and for the city system fetching the snapshots
    // of `delivery.snapshots = "url"` with its case token.
    let evidence = Router::new()
        .route(
            "/api/v1/incidents/{id}/evidence/{file}",
            get(evidence::file),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_caller_or_city,
        ));
    public
        .merge(callers)
        .merge(evidence)
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(resp) => resp,
                    Err(_) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Json(serde_json::json!({ "error": format!(
                            "not answered within {:.0} s (api.request_timeout_s); try again", timeout.as_secs_f64()
                        ) })),
                    )
                        .into_response(),
                }
            },
        ))
        .with_state(state)
}

async fn metrics(State(s): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

/// Ready once every camera has left `starting` (connected or failed at least once), and while
/// no incident event has waited for the store longer than
/// [`crate::recording::NOT_READY_AFTER`].
async fn readyz(State(s): State<ApiState>) -> Response {
    let starting = s
        .status
        .snapshot()
        .iter()
        .filter(|c| c.state == CameraState::Starting)
        .count();
    let mut problems = Vec::new();
    if starting > 0 {
        problems.push(format!("{starting} camera(s) still starting"));
    }
    if let Some(backlog) = s.recording.as_ref().map(|r| r.backlog())
        && backlog
            .oldest
            .is_some_and(|d| d > crate::recording::NOT_READY_AFTER)
    {
        problems.push(format!(
            "{} incident event(s) wait for the store (oldest {:.0} s): {}",
            backlog.waiting,
            backlog.oldest.unwrap_or_default().as_secs_f64(),
            backlog
                .last_error
                .as_deref()
                .unwrap_or("still being written")
        ));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", problems.join("\n")),
        )
            .into_response()
    }
}

async fn cameras(State(s): State<ApiState>) -> Response {
    Json(s.status.snapshot()).into_response()
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": format!("no camera with id {id:?}") })),
    )
        .into_response()
}

async fn camera(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    match s.status.index_of(&id).and_then(|i| s.status.get(i)) {
        Some(status) => Json(status).into_response(),
        None => not_found(&id),
    }
}

/// `POST /api/v1/config/reload` (admin): what SIGHUP does. 200 with what changed; 422
/// with every problem of the new configuration (the running one stays).
async fn reload(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<auth::Caller>,
) -> Response {
    if let Err(r) = caller.needs(crate::accounts::Role::Admin) {
        return r;
    }
    let Some(handle) = &s.reload else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "error": "this service cannot reload its configuration" })),
        )
            .into_response();
    };
    match handle.reload().await {
        Ok(report) => Json(report).into_response(),
        Err(crate::config::ConfigError::Invalid(problems)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({
                "error": format!("the new configuration has {} problem(s); the running one stays", problems.len()),
                "problems": problems,
            })),
        )
            .into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({
                "error": format!("{e}; the running configuration stays"),
                "problems": [],
            })),
        )
            .into_response(),
    }
}

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Query of `latest.jpg`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PictureQuery {
    /// Scale the picture down to this width (16..=3840 pixels; never up).
    width: Option<u32>,
    /// Ignored (browsers add it to defeat caches).
    #[allow(dead_code)]
    t: Option<String>,
}

async fn latest_jpeg(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<PictureQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let width = match query {
        Ok(q) => q.0.width,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": e.body_text() })),
            )
                .into_response();
        }
    };
    if let Some(w) = width
        && !(16..=3840).contains(&w)
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": format!("width: {w} is out of range: must be between 16 and 3840") })),
        )
            .into_response();
    }
    let Some(i) = s.status.index_of(&id) else {
        return not_found(&id);
    };
    let Some(picture) = s.pictures.get(i) else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("camera {id:?} has no picture yet") })),
        )
            .into_response();
    };
    let (zones, model) = (s.zones.get(i), s.model.clone());
    // Rendered at most once per analysed picture and width, whoever asks.
    let encoded = tokio::task::spawn_blocking(move || {
        picture.jpeg(width, || {
            // An idle camera's picture is kept as its keyframe: decoded here again.
            let frame = picture
                .frame
                .pixels()
                .map_err(|e| format!("cannot decode the kept picture: {e}"))?;
            let mut rgb = frame.to_rgb();
            for zone in zones.iter().flat_map(|z| z.iter()) {
                draw_zone(
                    &mut rgb,
                    &zone.polygon,
                    &zone.name,
                    image::Rgb([255, 255, 0]),
                );
            }
            for d in &picture.detected.detections {
                let label = format!("{} {:.2}", model.class_name(d.class_id), d.score);
                draw_box_with_label(
                    &mut rgb,
                    (d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2),
                    &label,
                    class_colour(d.class_id),
                );
            }
            match width {
                Some(w) if w < rgb.width() => {
                    let h = (u64::from(rgb.height()) * u64::from(w) / u64::from(rgb.width())).max(1)
                        as u32;
                    encode_jpeg(&image::imageops::thumbnail(&rgb, w, h), 80)
                }
                _ => encode_jpeg(&rgb, 85),
            }
            .map_err(|e| format!("cannot encode JPEG: {e}"))
        })
    })
    .await;
    match encoded {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes.to_vec(),
        )
            .into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("JPEG encoder failed: {e}\n"),
        )
            .into_response(),
    }
}

pub use crate::evidence::encode_jpeg;
