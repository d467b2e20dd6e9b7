//! A reference city-system endpoint (`dumpwatch receiver`), for the demo and the tests. It does
//! what a case system must do with dumpwatch's deliveries: verify the signature, check the body,
//! keep each `Idempotency-Key` once, and store the snapshots. It can be told to misbehave (a
//! share of 500s or 429s, added latency) to show that delivery copes.
//!
//! On disk, under its directory: `bodies/<key>.json` (the first body of each key, as received),
//! `snapshots/<key>/<role>.<ext>`, and `received.jsonl`, one line per request that reached the
//! incident handler (accepted, duplicate, refused, injected_failure, bad_signature, or failed to
//! store).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use rand::Rng;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::incident::IncidentBody;

/// How the receiver behaves.
#[derive(Clone, Debug)]
pub struct ReceiverSettings {
    /// Where bodies and snapshots go.
    pub dir: PathBuf,
    /// HMAC key: when set, requests without a valid `X-Dumpwatch-Signature` get 401.
    pub secret: Option<Vec<u8>>,
    /// How far a signature's timestamp may be from now (older: a replay, refused with 401).
    pub signature_tolerance: Duration,
    /// Share of requests (0..1) answered with `fail_status` instead of being handled.
    pub fail_share: f64,
    /// The first this many requests are answered with `fail_status`.
    pub fail_first: u64,
    /// Status of an injected failure (500, 503, 429, 400, ...).
    pub fail_status: u16,
    /// `Retry-After` seconds sent with injected failures.
    pub retry_after_s: Option<u64>,
    /// Added before answering every request.
    pub latency: Duration,
}

impl ReceiverSettings {
    /// A well-behaved receiver storing under `dir`, without signature checks.
    pub fn accepting(dir: impl Into<PathBuf>) -> ReceiverSettings {
        ReceiverSettings {
            dir: dir.into(),
            secret: None,
            signature_tolerance: Duration::from_secs(300),
            fail_share: 0.0,
            fail_first: 0,
            fail_status: 500,
            retry_after_s: None,
            latency: Duration::ZERO,
        }
    }
}

struct Inner {
    settings: ReceiverSettings,
    keys: Mutex<HashSet<String>>,
    requests: AtomicU64,
}

/// The receiver's router (`POST /api/incidents`, `GET /api/incidents`, `GET /healthz`).
/// Loads the keys already stored in the directory, so a restarted receiver still deduplicates.
pub async fn router(settings: ReceiverSettings) -> std::io::Result<Router> {
    for sub in ["bodies", "snapshots"] {
        tokio::fs::create_dir_all(settings.dir.join(sub)).await?;
    }
    let mut keys = HashSet::new();
    let mut dir = tokio::fs::read_dir(settings.dir.join("bodies")).await?;
    while let Some(entry) = dir.next_entry().await? {
        if let Some(key) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
        {
            keys.insert(key.to_owned());
        }
    }
    let inner = Arc::new(Inner {
        settings,
        keys: Mutex::new(keys),
        requests: AtomicU64::new(0),
    });
    Ok(Router::new()
        .route("/api/incidents", post(receive).get(list))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(inner))
}

/// Serves the receiver on `listen` until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    settings: ReceiverSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(settings).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "receiver listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Whether an `Idempotency-Key` can be kept: 1–200 characters of `A-Z a-z 0-9 - _ . :`, not
/// starting with `.` (it names the files the receiver keeps: no path, no hidden file). dumpwatch
/// sends `<uuid>`, `<uuid>:updated:<n>` and `<uuid>:cleared`.
pub fn check_key(key: &str) -> Result<(), String> {
    let safe = !key.is_empty()
        && key.len() <= 200
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if safe {
        Ok(())
    } else {
        Err(format!(
            "Idempotency-Key {key:?} is missing or not a safe name: use 1-200 characters of A-Z a-z 0-9 - _ . :, not starting with ."
        ))
    }
}

/// A key as a file name: anything but `A-Z a-z 0-9 - _ .` becomes `_`.
pub fn key_file_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `POST /api/incidents`. The request is handled on a task of its own, so that a client that
/// goes away mid-request (a sender killed, a timeout) cannot stop it between storing a key and
/// logging it: like a real case system's transaction, what was begun is finished, and the next
/// attempt is answered `duplicate`.
async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    match tokio::spawn(handle(inner, headers, body)).await {
        Ok(response) => response,
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the handler failed: {e}"),
        ),
    }
}

async fn handle(inner: Arc<Inner>, headers: HeaderMap, body: Bytes) -> Response {
    let s = &inner.settings;
    let n = inner.requests.fetch_add(1, Ordering::Relaxed);
    if !s.latency.is_zero() {
        tokio::time::sleep(s.latency).await;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let injected =
        n < s.fail_first || (s.fail_share > 0.0 && rand::rng().random_bool(s.fail_share.min(1.0)));
    if injected {
        let status =
            StatusCode::from_u16(s.fail_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        log_line(&s.dir, &key, "injected_failure", status.as_u16()).await;
        let mut resp = refuse(status, "failure injected by the receiver");
        if let Some(secs) = s.retry_after_s {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                secs.to_string().parse().expect("digits"),
            );
        }
        return resp;
    }
    if let Err(problem) = check_key(&key) {
        log_line(&s.dir, &key, "refused", 400).await;
        return refuse(StatusCode::BAD_REQUEST, problem);
    }
    if let Some(secret) = &s.secret {
        let sig = headers
            .get("x-dumpwatch-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let now = crate::clock::unix_now().floor() as i64;
        let tolerance = i64::try_from(s.signature_tolerance.as_secs()).unwrap_or(i64::MAX);
        if let Err(e) = crate::hashing::verify_delivery(secret, sig, &key, &body, now, tolerance) {
            log_line(&s.dir, &key, "bad_signature", 401).await;
            return refuse(StatusCode::UNAUTHORIZED, e.to_string());
        }
    }
    let incident: IncidentBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            log_line(&s.dir, &key, "refused", 400).await;
            return refuse(StatusCode::BAD_REQUEST, format!("body: {e}"));
        }
    };
    let file_key = key_file_name(&key);
    // One request per key at a time: check, store, then remember the key.
    let mut keys = inner.keys.lock().await;
    if keys.contains(&file_key) {
        drop(keys);
        log_line(&s.dir, &key, "duplicate", 200).await;
        return (StatusCode::OK, Json(json!({ "status": "duplicate" }))).into_response();
    }
    let snap_dir = s.dir.join("snapshots").join(&file_key);
    for snap in &incident.snapshots {
        let Some(data) = &snap.data_base64 else {
            continue;
        };
        let bytes = match base64::engine::general_purpose::STANDARD.decode(data) {
            Ok(b) => b,
            Err(e) => {
                log_line(&s.dir, &key, "refused", 400).await;
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("snapshot {}: base64: {e}", snap.role),
                );
            }
        };
        if crate::hashing::sha256_hex(&bytes) != snap.sha256 {
            log_line(&s.dir, &key, "refused", 400).await;
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("snapshot {}: sha256 does not match its data", snap.role),
            );
        }
        let ext = if snap.content_type == "video/mp4" {
            "mp4"
        } else {
            "jpg"
        };
        let name = format!("{}.{ext}", key_file_name(&snap.role));
        if let Err(e) = write_atomic(&snap_dir, &name, &bytes).await {
            log_line(&s.dir, &key, "failed", 500).await;
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("storing a snapshot: {e}"),
            );
        }
    }
    if let Err(e) = write_atomic(&s.dir.join("bodies"), &format!("{file_key}.json"), &body).await {
        log_line(&s.dir, &key, "failed", 500).await;
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("storing the body: {e}"),
        );
    }
    keys.insert(file_key);
    // Logged before the key is released, so the log's order of acceptances is the keys' order.
    log_line(&s.dir, &key, "accepted", 201).await;
    drop(keys);
    (
        StatusCode::CREATED,
        Json(json!({ "status": "accepted", "incident_id": incident.incident_id })),
    )
        .into_response()
}

async fn list(State(inner): State<Arc<Inner>>) -> Response {
    let mut keys: Vec<String> = inner.keys.lock().await.iter().cloned().collect();
    keys.sort();
    Json(json!({ "keys": keys })).into_response()
}

async fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = tokio::fs::File::create(&tmp).await?;
    f.write_all(bytes).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, dir.join(name)).await
}

async fn log_line(dir: &Path, key: &str, outcome: &str, status: u16) {
    let line = json!({
        "key": key,
        "outcome": outcome,
        "status": status,
        "at": crate::clock::unix_now(),
    })
    .to_string()
        + "\n";
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("received.jsonl"))
        .await;
    if let Ok(mut f) = file {
        // A tokio file writes in the background: flushed, the line is in the file when the
        // request is answered.
        let _ = f.write_all(line.as_bytes()).await;
        let _ = f.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outcomes the receiver logged for `key`.
    fn outcomes(dir: &Path, key: &str) -> Vec<String> {
        std::fs::read_to_string(dir.join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["key"] == key)
            .map(|v| v["outcome"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_request_its_sender_abandons_is_finished_and_its_key_kept_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = ReceiverSettings::accepting(dir.path());
        settings.latency = Duration::from_millis(300);
        let app = router(settings).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/incidents", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        crate::deliver::install_tls_provider();
        let body = serde_json::to_vec(&crate::store::testing::body(uuid::Uuid::now_v7(), "raised"))
            .unwrap();
        let post = |timeout_ms: u64| {
            reqwest::Client::new()
                .post(&url)
                .header("idempotency-key", "k-1")
                .header("content-type", "application/json")
                .timeout(Duration::from_millis(timeout_ms))
                .body(body.clone())
                .send()
        };
        // The sender gives up (closing its connection) while the receiver is still working.
        assert!(post(50).await.is_err(), "the first request should time out");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while outcomes(dir.path(), "k-1").is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the abandoned request was never finished"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(outcomes(dir.path(), "k-1"), ["accepted"]);
        assert!(dir.path().join("bodies/k-1.json").exists());
        // Sent again, it is a duplicate: the key was kept once, and its acceptance logged.
        let again = post(5_000).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(outcomes(dir.path(), "k-1"), ["accepted", "duplicate"]);
    }
}
