//! The operations center's page: one HTML file, its texts (one catalogue per language, zh-CN
//! first), a script and a style sheet, compiled into the binary so the page works without any
//! network beyond the service itself.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiState;

const INDEX: &str = include_str!("dashboard/index.html");
const TEXTS: &str = include_str!("dashboard/texts.js");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard, told the site's UTC offset (its times are shown in it).
pub async fn index(State(s): State<ApiState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX.replace("{{utc_offset_min}}", &s.utc_offset_min.to_string()),
    )
        .into_response()
}

/// `GET /dashboard/texts.js`: every string of the page, per language.
pub async fn texts() -> Response {
    asset("text/javascript; charset=utf-8", TEXTS)
}

/// `GET /dashboard/dashboard.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard/dashboard.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
