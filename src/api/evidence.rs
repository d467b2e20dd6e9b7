//! An incident's evidence: its files (pictures, the clip; byte ranges, so a browser's player can
//! seek in the clip), and where in the clip the act and the alert are.

// The helpers fail with the response to send; it is built once per request, never copied.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use uuid::Uuid;

use super::ApiState;
use super::incidents::{parse_id, problem, store_of};
use crate::clip::{CLIP_SPAN_FILE, ClipSpan};
use crate::store::EvidenceRow;

/// `GET /api/v1/incidents/{id}/evidence/{file}`: an evidence file by its number. Only files the
/// store lists for that incident are served, so no request reaches outside the storage directory.
/// A `Range: bytes=a-b` request gets that part (206), as a video player asks when it seeks.
pub async fn file(
    State(s): State<ApiState>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Ok(file) = file.parse::<i64>() else {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("{file:?} is not an evidence file number"),
        );
    };
    let row = match row_of(&s, id, move |rows| rows.into_iter().find(|e| e.id == file)).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                format!("incident {id} has no evidence file {file}"),
            );
        }
        Err(r) => return r,
    };
    let path = match path_of(&s, &row) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) => {
            return problem(
                StatusCode::NOT_FOUND,
                format!("evidence file {file} of incident {id} cannot be read: {e}"),
            );
        }
    };
    let len = bytes.len() as u64;
    let mut response = match headers.get(header::RANGE).map(|r| byte_range(r, len)) {
        None => bytes.into_response(),
        Some(Ok((from, to))) => {
            let mut r = bytes[from as usize..=to as usize].to_vec().into_response();
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {from}-{to}/{len}")).expect("ascii"),
            );
            r
        }
        Some(Err(why)) => {
            let mut r = problem(StatusCode::RANGE_NOT_SATISFIABLE, why);
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"),
            );
            return r;
        }
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&row.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response
}

/// `GET /api/v1/incidents/{id}/clip`: the incident's evidence clip, and where in it the object
/// was put down and the alert came (seconds from the clip's start), for the player's markers.
pub async fn clip(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let row = match row_of(&s, id, |rows| rows.into_iter().find(|e| e.role == "clip")).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                format!("incident {id} has no evidence clip (yet, or removed by retention)"),
            );
        }
        Err(r) => return r,
    };
    let path = match path_of(&s, &row) {
        Ok(p) => p.with_file_name(CLIP_SPAN_FILE),
        Err(r) => return r,
    };
    let span: ClipSpan = match tokio::fs::read(&path)
        .await
        .map(|b| serde_json::from_slice(&b))
    {
        Ok(Ok(span)) => span,
        Ok(Err(e)) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{} is not a clip span: {e}", path.display()),
            );
        }
        Err(e) => {
            return problem(
                StatusCode::NOT_FOUND,
                format!("{} cannot be read: {e}", path.display()),
            );
        }
    };
    let offset = |at: Option<f64>| at.map(|a| ((a - span.start) * 1000.0).round() / 1000.0);
    Json(json!({
        "evidence": row.id,
        "url": format!("/api/v1/incidents/{id}/evidence/{}", row.id),
        "start": span.start,
        "end": span.end,
        "duration_s": ((span.end - span.start) * 1000.0).round() / 1000.0,
        "frames": span.frames,
        "put_down_s": offset(span.appeared_at),
        "alert_s": offset(span.raised_at),
    }))
    .into_response()
}

/// The evidence row of incident `id` that `pick` chooses among its files still on disk.
async fn row_of(
    s: &ApiState,
    id: Uuid,
    pick: impl FnOnce(Vec<EvidenceRow>) -> Option<EvidenceRow> + Send + 'static,
) -> Result<Option<EvidenceRow>, Response> {
    let store = store_of(s)?.clone();
    match store.read(move |st| st.evidence_rows(id)).await {
        Ok(Ok(rows)) => Ok(pick(rows.into_iter().filter(|e| !e.deleted).collect())),
        Ok(Err(e)) => Err(problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err(problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// The file of `row` under the storage directory; refused if its path would leave it.
fn path_of(s: &ApiState, row: &EvidenceRow) -> Result<std::path::PathBuf, Response> {
    let rel = std::path::Path::new(&row.path);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(problem(StatusCode::NOT_FOUND, "evidence path refused"));
    }
    Ok(s.storage_dir.join(rel))
}

/// The one byte range `bytes=a-b`, `bytes=a-` or `bytes=-n` of a `len`-byte file, as inclusive
/// `(from, to)`; an error saying why for anything else (several ranges are not served).
fn byte_range(value: &HeaderValue, len: u64) -> Result<(u64, u64), String> {
    let text = value.to_str().map_err(|_| "Range: not text".to_owned())?;
    let spec = text
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(|| format!("Range {text:?}: only bytes=a-b is served"))?;
    let (a, b) = spec
        .split_once('-')
        .filter(|_| !spec.contains(','))
        .ok_or_else(|| format!("Range {text:?}: one range a-b, a- or -n"))?;
    let number = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("Range {text:?}: {v:?} is not a byte position"))
    };
    let (from, to) = match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => (len.saturating_sub(number(b)?), len.saturating_sub(1)),
        (false, true) => (number(a)?, len.saturating_sub(1)),
        (false, false) => (number(a)?, number(b)?.min(len.saturating_sub(1))),
        (true, true) => return Err(format!("Range {text:?}: no positions")),
    };
    if len == 0 || from > to || from >= len {
        return Err(format!("Range {text:?}: outside the file's {len} bytes"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, len: u64) -> Result<(u64, u64), String> {
        byte_range(&HeaderValue::from_str(v).unwrap(), len)
    }

    #[test]
    fn byte_ranges_a_player_asks_for_are_served_and_others_say_why() {
        assert_eq!(range("bytes=0-", 1000), Ok((0, 999)));
        assert_eq!(range("bytes=100-199", 1000), Ok((100, 199)));
        assert_eq!(range("bytes=900-5000", 1000), Ok((900, 999)));
        assert_eq!(range("bytes=-100", 1000), Ok((900, 999)));
        for bad in [
            "bytes=1000-",
            "bytes=5-1",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=x-",
            "bytes=-",
        ] {
            let e = range(bad, 1000).unwrap_err();
            assert!(e.contains("Range"), "{bad}: {e}");
        }
    }
}
