//! Durable delivery against the reference receiver, over real HTTP on 127.0.0.1 with real SQLite
//! files: outages, retries as the server asks, dead letters, a SIGKILLed service in the middle of
//! a burst, and an unwritable evidence directory. Every body the receiver keeps is checked
//! against `config/schema/incident.schema.json`.

mod common;

use common::incidents::{event_of, job, picture, raised, recorder};
use common::{KillOnDrop, dumpwatch_command};

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dumpwatch::analyze::view::View;
use dumpwatch::analyze::{EventKind, FrameRole};
use dumpwatch::config::CameraConfig;
use dumpwatch::deliver::{Backoff, Deliverer, DeliveryMetrics, DeliverySettings, SnapshotMode};
use dumpwatch::geometry::Polygon;
use dumpwatch::incident::FrameSize;
use dumpwatch::receiver::ReceiverSettings;
use dumpwatch::recording::{Recording, RecordingMetrics};
use dumpwatch::store::Store;
use dumpwatch::store::camera_events::NewCameraEvent;
use dumpwatch::store::writer::StoreHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SECRET: &[u8] = b"test-secret";
const TOKEN: &str = "test-api-token";
/// The city system's own token for its case callbacks.
const CASE_TOKEN: &str = "test-case-token";

/// Records `n` raised incidents with before / actor / event pictures; returns their ids.
fn record_incidents(store: &StoreHandle, dir: &Path, n: u64) -> Vec<Uuid> {
    let rec = recorder(store, dir);
    let camera = CameraConfig::new("cam-01", "rtsp://127.0.0.1/x");
    let now = dumpwatch::clock::unix_now();
    let pictures = vec![
        (FrameRole::Before, picture(90)),
        (FrameRole::Actor, picture(120)),
        (FrameRole::Event, picture(150)),
    ];
    (0..n)
        .map(|i| {
            let id = Uuid::now_v7();
            rec.record_event(
                &camera,
                &Polygon::full_frame(),
                id,
                &raised(i + 1, now),
                dumpwatch::recording::EventPictures::analysed(&pictures),
                FrameSize {
                    width: 64,
                    height: 48,
                },
            )
            .expect("the store takes the event");
            id
        })
        .collect()
}

fn settings(endpoint: String, dir: &Path) -> DeliverySettings {
    DeliverySettings {
        endpoint,
        secret: Some(SECRET.to_vec()),
        snapshots: SnapshotMode::Inline,
        public_url: "http://127.0.0.1:1".into(),
        concurrency: 4,
        timeout: Duration::from_secs(5),
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
        },
        storage_dir: dir.to_path_buf(),
    }
}

fn receiver_settings(dir: &Path) -> ReceiverSettings {
    ReceiverSettings {
        secret: Some(SECRET.to_vec()),
        ..ReceiverSettings::accepting(dir)
    }
}

/// A receiver on `addr` (port 0: any), served until the returned token is cancelled.
async fn start_receiver(
    addr: &str,
    settings: ReceiverSettings,
) -> (std::net::SocketAddr, CancellationToken) {
    let app = dumpwatch::receiver::router(settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    serve_until_cancelled(listener, app)
}

/// Serves `app` on `listener` until the returned token is cancelled.
fn serve_until_cancelled(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> (std::net::SocketAddr, CancellationToken) {
    let local = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
            .unwrap();
    });
    (local, stop)
}

fn start_deliverer(store: &StoreHandle, settings: DeliverySettings) -> CancellationToken {
    let registry = prometheus::Registry::new();
    let metrics = DeliveryMetrics::register(&registry);
    let d = Deliverer::new(store.clone(), settings, metrics).unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(d.run(stop.clone(), Duration::from_secs(1)));
    stop
}

/// Waits until the store's outbox has no pending row (or panics after `limit`).
async fn wait_until_settled(
    store: &StoreHandle,
    limit: Duration,
) -> dumpwatch::store::OutboxCounts {
    let start = Instant::now();
    loop {
        let c = store.call(|s| s.outbox_counts()).await.unwrap().unwrap();
        if c.pending == 0 {
            return c;
        }
        assert!(
            start.elapsed() < limit,
            "still {} pending after {limit:?}: {c:?}",
            c.pending
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The receiver's log lines: (key, outcome, at).
fn received(dir: &Path) -> Vec<(String, String, f64)> {
    std::fs::read_to_string(dir.join("received.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["key"].as_str().unwrap().to_owned(),
                v["outcome"].as_str().unwrap().to_owned(),
                v["at"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The bodies the receiver kept, by key, each checked against the JSON Schema.
fn bodies_valid_against_schema(dir: &Path) -> Vec<serde_json::Value> {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("config/schema/incident.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is valid");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("bodies")).unwrap() {
        let path = entry.unwrap().path();
        let body: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        out.push(body);
    }
    out
}

/// A store with `incidents` recorded, a receiver, and a delivery worker between them; all stop
/// when it is dropped.
struct Rig {
    /// Kept for the rig's life: the store's files.
    _storage: tempfile::TempDir,
    inbox: tempfile::TempDir,
    store: StoreHandle,
    ids: Vec<Uuid>,
    stops: Vec<CancellationToken>,
}

impl Rig {
    async fn start(
        incidents: u64,
        receiver: impl FnOnce(ReceiverSettings) -> ReceiverSettings,
        delivery: impl FnOnce(DeliverySettings) -> DeliverySettings,
    ) -> Rig {
        let storage = tempfile::tempdir().unwrap();
        let inbox = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(storage.path()).unwrap();
        let (addr, recv_stop) =
            start_receiver("127.0.0.1:0", receiver(receiver_settings(inbox.path()))).await;
        let ids = {
            let (store, dir) = (store.clone(), storage.path().to_path_buf());
            tokio::task::spawn_blocking(move || record_incidents(&store, &dir, incidents))
                .await
                .unwrap()
        };
        let stop = start_deliverer(
            &store,
            delivery(settings(
                format!("http://{addr}/api/incidents"),
                storage.path(),
            )),
        );
        Rig {
            _storage: storage,
            inbox,
            store,
            ids,
            stops: vec![stop, recv_stop],
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stops.iter().for_each(CancellationToken::cancel);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_up_every_incident_is_delivered_once() {
    let storage = tempfile::tempdir().unwrap();
    let inbox = tempfile::tempdir().unwrap();
    let store = StoreHandle::open(storage.path()).unwrap();
    // A port nobody listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}/api/incidents");
    let ids = {
        let (store, dir) = (store.clone(), storage.path().to_path_buf());
        tokio::task::spawn_blocking(move || record_incidents(&store, &dir, 20))
            .await
            .unwrap()
    };
    let stop = start_deliverer(&store, settings(endpoint, storage.path()));
    // Down for two seconds: attempts fail with connection errors and are retried.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pending = store.call(|s| s.outbox_counts()).await.unwrap().unwrap();
    assert_eq!(
        pending.pending, 20,
        "nothing delivered while the receiver is down"
    );
    let first = ids[0];
    let failed = store
        .call(move |s| s.incident(first))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(failed.deliveries[0].attempts >= 1);
    assert!(
        failed.deliveries[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("onnect"),
        "{:?}",
        failed.deliveries[0].last_error
    );
    let (_, recv_stop) = start_receiver(
        &format!("127.0.0.1:{port}"),
        receiver_settings(inbox.path()),
    )
    .await;
    let counts = wait_until_settled(&store, Duration::from_secs(20)).await;
    assert_eq!((counts.delivered, counts.dead), (20, 0));
    let bodies = bodies_valid_against_schema(inbox.path());
    assert_eq!(bodies.len(), 20);
    for b in &bodies {
        let snaps = b["snapshots"].as_array().unwrap();
        let roles: Vec<&str> = snaps.iter().map(|s| s["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["before", "actor", "event", "event_clean"]);
    }
    // Snapshots arrived intact (the receiver checks each sha256 before keeping it).
    let key = ids[3].to_string();
    for role in ["before", "actor", "event", "event_clean"] {
        assert!(
            inbox
                .path()
                .join("snapshots")
                .join(&key)
                .join(format!("{role}.jpg"))
                .is_file()
        );
    }
    stop.cancel();
    recv_stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_500_and_429_are_retried_after_the_time_the_server_asks_for() {
    for status in [500u16, 429] {
        let rig = Rig::start(
            1,
            |r| ReceiverSettings {
                fail_first: 2,
                fail_status: status,
                retry_after_s: Some(2),
                ..r
            },
            |d| d,
        )
        .await;
        let counts = wait_until_settled(&rig.store, Duration::from_secs(20)).await;
        assert_eq!(counts.delivered, 1, "status {status}");
        let log = received(rig.inbox.path());
        let outcomes: Vec<&str> = log.iter().map(|(_, o, _)| o.as_str()).collect();
        assert_eq!(
            outcomes,
            ["injected_failure", "injected_failure", "accepted"],
            "status {status}"
        );
        // The backoff alone would retry within 0.5 s; the server asked for 2 s each time.
        for w in log.windows(2) {
            let gap = w[1].2 - w[0].2;
            assert!(gap >= 1.9, "status {status}: retried after {gap:.2} s");
        }
        bodies_valid_against_schema(rig.inbox.path());
    }
}

/// An endpoint that moved: every POST is answered `302 Found` towards a page that answers any
/// GET with 200 (what a web server's "moved" page or a login portal does). A client following
/// the redirect would turn the POST into a GET and take that 200 for a delivery.
async fn start_redirecting_endpoint() -> (std::net::SocketAddr, CancellationToken) {
    use axum::routing::{get, post};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let landing = format!("http://{addr}/landing");
    let app = axum::Router::new()
        .route(
            "/api/incidents",
            post(move || async move {
                (
                    axum::http::StatusCode::FOUND,
                    [(axum::http::header::LOCATION, landing)],
                )
            }),
        )
        .route("/landing", get(|| async { "welcome" }));
    serve_until_cancelled(listener, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_a_delivery_and_the_incident_waits_for_the_right_endpoint() {
    let storage = tempfile::tempdir().unwrap();
    let inbox = tempfile::tempdir().unwrap();
    let store = StoreHandle::open(storage.path()).unwrap();
    let ids = {
        let (store, dir) = (store.clone(), storage.path().to_path_buf());
        tokio::task::spawn_blocking(move || record_incidents(&store, &dir, 1))
            .await
            .unwrap()
    };
    let (moved, moved_stop) = start_redirecting_endpoint().await;
    let stop = start_deliverer(
        &store,
        settings(format!("http://{moved}/api/incidents"), storage.path()),
    );
    // Retried (100–500 ms backoff), never marked delivered.
    let id = ids[0];
    let start = Instant::now();
    let row = loop {
        let row = store
            .call(move |s| s.incident(id))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if row.deliveries[0].attempts >= 3 {
            break row;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{row:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let d = &row.deliveries[0];
    assert_eq!((d.state.as_str(), d.last_status), ("pending", Some(302)));
    let error = d.last_error.as_deref().unwrap();
    assert!(
        error.starts_with("HTTP 302") && error.contains(&format!("http://{moved}/landing")),
        "{error}"
    );
    let counts = store.call(|s| s.outbox_counts()).await.unwrap().unwrap();
    assert_eq!((counts.delivered, counts.pending), (0, 1));
    // The operator points delivery at the city system: the incident goes there, once.
    stop.cancel();
    moved_stop.cancel();
    let (addr, recv_stop) = start_receiver("127.0.0.1:0", receiver_settings(inbox.path())).await;
    let stop = start_deliverer(
        &store,
        settings(format!("http://{addr}/api/incidents"), storage.path()),
    );
    let counts = wait_until_settled(&store, Duration::from_secs(10)).await;
    assert_eq!((counts.delivered, counts.dead), (1, 0));
    let log = received(inbox.path());
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].1, "accepted");
    stop.cancel();
    recv_stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_goes_to_the_dead_letter_and_stays_visible() {
    let rig = Rig::start(
        2,
        |r| ReceiverSettings {
            fail_share: 1.0,
            fail_status: 400,
            ..r
        },
        |d| d,
    )
    .await;
    let counts = wait_until_settled(&rig.store, Duration::from_secs(10)).await;
    assert_eq!((counts.delivered, counts.dead), (0, 2));
    // Exactly one attempt each: a 400 is not retried.
    assert_eq!(received(rig.inbox.path()).len(), 2);
    let second = rig.ids[1];
    let row = rig
        .store
        .call(move |s| s.incident(second))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let d = &row.deliveries[0];
    assert_eq!(
        (d.state.as_str(), d.attempts, d.last_status),
        ("dead", 1, Some(400))
    );
    assert!(
        d.last_error.as_deref().unwrap().starts_with("HTTP 400"),
        "{d:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_evidence_directory_still_stores_and_delivers_the_incident() {
    let storage = tempfile::tempdir().unwrap();
    let inbox = tempfile::tempdir().unwrap();
    // `evidence` is a file: no directory can be made under it (whoever runs the test, root too).
    std::fs::write(storage.path().join("evidence"), b"not a directory").unwrap();
    let store = StoreHandle::open(storage.path()).unwrap();
    let (addr, recv_stop) = start_receiver("127.0.0.1:0", receiver_settings(inbox.path())).await;
    let rec = recorder(&store, storage.path());
    let errors = rec.evidence_errors.clone();
    let id = Uuid::now_v7();
    tokio::task::spawn_blocking(move || {
        rec.record_event(
            &CameraConfig::new("cam-01", "rtsp://127.0.0.1/x"),
            &Polygon::full_frame(),
            id,
            &raised(1, dumpwatch::clock::unix_now()),
            dumpwatch::recording::EventPictures::analysed(&[
                (FrameRole::Before, picture(90)),
                (FrameRole::Event, picture(150)),
            ]),
            FrameSize {
                width: 64,
                height: 48,
            },
        )
        .expect("the store takes the event");
    })
    .await
    .unwrap();
    assert_eq!(errors.get(), 2, "both pictures counted as evidence errors");
    let stop = start_deliverer(
        &store,
        settings(format!("http://{addr}/api/incidents"), storage.path()),
    );
    let counts = wait_until_settled(&store, Duration::from_secs(10)).await;
    assert_eq!(counts.delivered, 1);
    let bodies = bodies_valid_against_schema(inbox.path());
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["incident_id"], id.to_string());
    assert!(bodies[0]["snapshots"].as_array().unwrap().is_empty());
    stop.cancel();
    recv_stop.cancel();
}

/// Starts `dumpwatch run` with no cameras on `storage`, delivering to `endpoint`.
fn start_service(config_dir: &Path, storage: &Path, endpoint: &str, log: &Path) -> KillOnDrop {
    start_service_with(config_dir, storage, endpoint, log, "cameras = []\n", "")
}

/// Starts `dumpwatch run` with `cameras` (a cameras file) on `storage`, delivering to
/// `endpoint`, with `delivery_extra` added to its [delivery] section.
fn start_service_with(
    config_dir: &Path,
    storage: &Path,
    endpoint: &str,
    log: &Path,
    cameras: &str,
    delivery_extra: &str,
) -> KillOnDrop {
    let service = config_dir.join("dumpwatch.toml");
    std::fs::write(
        &service,
        format!(
            "listen = \"127.0.0.1:0\"\nstorage_dir = {storage:?}\ncameras_file = \"cameras.toml\"\n\
             [model]\npath = {model:?}\nsessions = 1\n\
             [api]\ntoken_env = \"DW_TEST_TOKEN\"\ncase_token_env = \"DW_TEST_CASE_TOKEN\"\n\
             [delivery]\nendpoint = {endpoint:?}\nsecret_env = \"DW_TEST_SECRET\"\nconcurrency = 4\n\
             backoff_initial_s = 0.2\nbackoff_max_s = 1.0\n{delivery_extra}",
            model = common::root().join("models/yolov12n.onnx"),
        ),
    )
    .unwrap();
    std::fs::write(config_dir.join("cameras.toml"), cameras).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    KillOnDrop(
        dumpwatch_command()
            .args(["run", "--config"])
            .arg(&service)
            .env("DW_TEST_SECRET", std::str::from_utf8(SECRET).unwrap())
            .env("DW_TEST_TOKEN", TOKEN)
            .env("DW_TEST_CASE_TOKEN", CASE_TOKEN)
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn accepted_keys(inbox: &Path) -> usize {
    std::fs::read_dir(inbox.join("bodies"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_killed_in_a_burst_of_200_delivers_each_exactly_once_after_restart() {
    let storage = tempfile::tempdir().unwrap();
    let inbox = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let log = config_dir.path().join("service.log");
    // The burst: 200 raised incidents with their pictures, recorded as the live sink records them.
    let recorded: Vec<String> = {
        let store = StoreHandle::open(storage.path()).unwrap();
        let dir = storage.path().to_path_buf();
        tokio::task::spawn_blocking(move || record_incidents(&store, &dir, 200))
            .await
            .unwrap()
            .iter()
            .map(|id| id.to_string())
            .collect()
    };
    // A slow receiver (40 ms a request, 4 at a time: about 2 s for the burst), in its own process.
    let (_receiver, endpoint) = common::receiver_process(
        inbox.path(),
        40,
        "DW_TEST_SECRET",
        std::str::from_utf8(SECRET).unwrap(),
    );
    let mut service = start_service(config_dir.path(), storage.path(), &endpoint, &log);
    let start = Instant::now();
    while accepted_keys(inbox.path()) < 40 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no deliveries; service log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL in the middle of the burst.
    service.0.kill().unwrap();
    service.0.wait().unwrap();
    let at_kill = accepted_keys(inbox.path());
    assert!(
        at_kill < 200,
        "the burst was over before the kill ({at_kill})"
    );
    let _service = start_service(config_dir.path(), storage.path(), &endpoint, &log);
    let start = Instant::now();
    loop {
        let counts = Store::open(storage.path())
            .unwrap()
            .outbox_counts()
            .unwrap();
        if counts.delivered == 200 {
            assert_eq!((counts.pending, counts.dead), (0, 0));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "after restart: {counts:?}; service log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Exactly 200 distinct keys, each body valid; a request in flight at the kill may have been
    // sent twice, under the same key, and the receiver kept it once.
    let bodies = bodies_valid_against_schema(inbox.path());
    assert_eq!(bodies.len(), 200);
    let mut ids: Vec<String> = bodies
        .iter()
        .map(|b| b["incident_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    let log_lines = received(inbox.path());
    let accepted = log_lines.iter().filter(|(_, o, _)| o == "accepted").count();
    assert_eq!(accepted, 200, "each key accepted once");
    assert!(
        log_lines
            .iter()
            .all(|(_, o, _)| o == "accepted" || o == "duplicate")
    );

    // The city system reports its case steps back (with its own token); the API shows them.
    let text = std::fs::read_to_string(&log).unwrap();
    let api = common::served_address(&text).expect("the service prints its address");
    let id = &recorded[7];
    dumpwatch::deliver::install_tls_provider();
    let http = reqwest::Client::new();
    let case = |token: &str, id: &str, body: serde_json::Value| {
        http.post(format!("http://{api}/api/v1/incidents/{id}/case"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let report = serde_json::json!({"status": "registered", "case_number": "2026-GL-000123"});
    let r = case(CASE_TOKEN, id, report.clone()).await.unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    // Each token opens its own door only: the service token reports no case, the city
    // system's token reads nothing, and nothing is read without a token or session.
    assert_eq!(case(TOKEN, id, report.clone()).await.unwrap().status(), 401);
    let incident_url = format!("http://{api}/api/v1/incidents/{id}");
    let read = |token: Option<&'static str>| {
        let req = http.get(&incident_url);
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
        .send()
    };
    assert_eq!(read(Some(CASE_TOKEN)).await.unwrap().status(), 401);
    assert_eq!(read(None).await.unwrap().status(), 401);
    assert_eq!(read(Some(TOKEN)).await.unwrap().status(), 200);
    let dispatched = serde_json::json!({
        "status": "dispatched", "case_number": "2026-GL-000123", "note": "城管三中队"
    });
    assert_eq!(
        case(CASE_TOKEN, id, dispatched).await.unwrap().status(),
        201
    );
    assert_eq!(
        case("wrong", id, report.clone()).await.unwrap().status(),
        401
    );
    let unknown = Uuid::now_v7().to_string();
    assert_eq!(
        case(CASE_TOKEN, &unknown, report.clone())
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        case(CASE_TOKEN, "not-an-id", report.clone())
            .await
            .unwrap()
            .status(),
        400
    );
    let bad = serde_json::json!({"status": "lost", "case_number": "x"});
    let r = case(CASE_TOKEN, id, bad).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("registered, dispatched, handled, closed")
    );
    let get = |path: String| {
        http.get(format!("http://{api}{path}"))
            .bearer_auth(TOKEN)
            .send()
    };
    let row: serde_json::Value = get(format!("/api/v1/incidents/{id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let steps: Vec<&str> = row["case_reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["registered", "dispatched"]);
    assert_eq!(row["deliveries"][0]["state"], "delivered");
    // The feed pages through all 200; bounds are checked.
    let page: serde_json::Value =
        get("/api/v1/incidents?camera=cam-01&limit=150&offset=100".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(page["incidents"].as_array().unwrap().len(), 100);
    let r = get("/api/v1/incidents?limit=100000".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    // Evidence files are served by number, only those of the incident.
    let file = row["evidence"][0]["id"].as_i64().unwrap();
    let r = get(format!("/api/v1/incidents/{id}/evidence/{file}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let other = &recorded[8];
    let r = get(format!("/api/v1/incidents/{other}/evidence/{file}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_snapshots_point_at_the_api_instead_of_carrying_the_data() {
    let rig = Rig::start(
        1,
        |r| r,
        |d| DeliverySettings {
            snapshots: SnapshotMode::Url,
            public_url: "https://dumpwatch.example.gov.cn/".into(),
            ..d
        },
    )
    .await;
    wait_until_settled(&rig.store, Duration::from_secs(10)).await;
    let bodies = bodies_valid_against_schema(rig.inbox.path());
    let snaps = bodies[0]["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 4);
    let prefix = format!(
        "https://dumpwatch.example.gov.cn/api/v1/incidents/{}/evidence/",
        rig.ids[0]
    );
    for s in snaps {
        assert!(s.get("data_base64").is_none());
        let url = s["url"].as_str().unwrap();
        assert!(url.starts_with(&prefix), "{url}");
        assert!(url[prefix.len()..].parse::<u64>().is_ok(), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_streaming_cameras_and_a_delivery_in_flight_exits_0_within_10_s() {
    let storage = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let log = config_dir.path().join("service.log");
    {
        let store = StoreHandle::open(storage.path()).unwrap();
        let dir = storage.path().to_path_buf();
        tokio::task::spawn_blocking(move || record_incidents(&store, &dir, 3))
            .await
            .unwrap();
    }
    // A city system that takes the connection and never answers: deliveries are in flight when
    // the signal comes, and only the grace period ends them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/api/incidents", silent.local_addr().unwrap());
    let media = common::media("test360");
    let server = common::RtspServer::looping(&media, &["a", "b", "c"]);
    let cameras: String = ["a", "b", "c"]
        .iter()
        .map(|id| format!("[[cameras]]\nid = {id:?}\nurl = {:?}\n", server.url(id)))
        .collect();
    let mut service = start_service_with(
        config_dir.path(),
        storage.path(),
        &endpoint,
        &log,
        &cameras,
        "timeout_s = 60\nshutdown_grace_s = 2\n",
    );
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("camera connected").count() >= 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "cameras did not connect; service log:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = service.0.id().to_string();
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(status) = service.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM; service log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = signalled.elapsed();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "exit {status}; service log:\n{text}");
    assert!(text.contains("stopped"), "service log:\n{text}");
    // The grace period ran (2 s) and nothing was lost: the three incidents wait for the next run.
    assert!(
        took >= Duration::from_secs(2),
        "exited after {took:?}, before the grace period"
    );
    let counts = Store::open(storage.path())
        .unwrap()
        .outbox_counts()
        .unwrap();
    assert_eq!(
        (counts.pending, counts.delivered, counts.dead),
        (3, 0, 0),
        "{counts:?}"
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_still_waiting_at_shutdown_is_written_with_the_video_received() {
    let storage = tempfile::tempdir().unwrap();
    let store = StoreHandle::open(storage.path()).unwrap();
    let id = {
        let (store, dir) = (store.clone(), storage.path().to_path_buf());
        tokio::task::spawn_blocking(move || record_incidents(&store, &dir, 1)[0])
            .await
            .unwrap()
    };
    // Ten seconds of real video (test360, 10 fps) arrived up to now; the event is now, and the
    // clip wants a minute after it, which will never come: the service is stopping.
    let now = dumpwatch::clock::unix_now();
    let units = common::access_units(&common::media("test360"));
    let (recording, recording_stage) = Recording::start(
        store.clone(),
        storage.path(),
        RecordingMetrics::register(&prometheus::Registry::new()),
    )
    .unwrap();
    let clips = std::sync::Arc::new(dumpwatch::clip::ClipRecorder {
        rings: dumpwatch::clip::ClipRecorder::rings(1, (20.0, 5.0), usize::MAX, None),
        recording: Arc::new(recording),
        storage_dir: storage.path().to_path_buf(),
        pre_s: 20.0,
        before_put_down_s: 5.0,
        post_s: 60.0,
        errors: prometheus::IntCounter::new("e", "e").unwrap(),
        runtime: tokio::runtime::Handle::current(),
        flush: CancellationToken::new(),
        pending: tokio_util::task::TaskTracker::new(),
    });
    for (i, au) in units.iter().take(100).enumerate() {
        let frame = dumpwatch::ingest::EncodedFrame {
            keyframe: common::is_keyframe(au),
            data: au.as_slice().into(),
            pts_s: i as f64 / 10.0,
            captured_at: SystemTime::now(),
            received: Instant::now(),
            seq: i as u64,
            all_frames: true,
            codec: dumpwatch::codec::VideoCodec::H264,
        };
        clips.rings[0].push(&frame, now - 10.0 + i as f64 / 10.0);
    }
    clips.request(dumpwatch::clip::ClipRequest {
        camera: 0,
        camera_id: "cam-01".into(),
        incident: id,
        at: now,
        appeared_at: now - 5.0,
        size: (640, 360),
    });
    let started = Instant::now();
    clips.flush().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "flush waited for the post window"
    );
    tokio::task::spawn_blocking(move || recording_stage.shutdown(Duration::from_secs(5)))
        .await
        .unwrap();
    let row = store
        .call(move |s| s.incident(id))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let clip = row
        .evidence
        .iter()
        .find(|e| e.role == "clip")
        .expect("the clip is in the incident's evidence");
    let bytes = std::fs::read(storage.path().join(&clip.path)).unwrap();
    assert_eq!(dumpwatch::hashing::sha256_hex(&bytes), clip.sha256);
    let span: dumpwatch::clip::ClipSpan = serde_json::from_slice(
        &std::fs::read(storage.path().join(&clip.path).with_file_name("clip.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(span.frames, 100, "every frame received is in the clip");
}

/// Holds SQLite's write lock on the store in `dir` from a connection of its own (as another
/// process would: a backup tool, an operator's `sqlite3` shell) for `hold`; returns once it is
/// held.
fn hold_write_lock(dir: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let path = dir.join(dumpwatch::store::DB_FILE);
    let (held, is_held) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        held.send(()).unwrap();
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT").unwrap();
    });
    is_held.recv().unwrap();
    thread
}

/// Waits until the recorder's backlog is empty (or panics after `limit`).
async fn wait_until_recorded(recording: &Recording, limit: Duration) {
    let start = Instant::now();
    while recording.backlog().waiting > 0 {
        assert!(
            start.elapsed() < limit,
            "still waiting after {limit:?}: {:?}",
            recording.backlog()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_locked_for_10_s_loses_no_event_and_keeps_each_incidents_order() {
    let storage = tempfile::tempdir().unwrap();
    let inbox = tempfile::tempdir().unwrap();
    let store = StoreHandle::open(storage.path()).unwrap();
    let registry = prometheus::Registry::new();
    let metrics = RecordingMetrics::register(&registry);
    let (recording, stage) =
        Recording::start(store.clone(), storage.path(), metrics.clone()).unwrap();
    let rec = Arc::new(recorder(&store, storage.path()));
    let lock = hold_write_lock(storage.path(), Duration::from_secs(10));
    // While the lock is held: incident A raised, updated and cleared; incident B raised.
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let now = dumpwatch::clock::unix_now();
    let handed = {
        let (recording, rec) = (recording.clone(), rec.clone());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            recording.event(job(&rec, a, event_of(1, EventKind::Raised, now)));
            recording.event(job(&rec, a, event_of(1, EventKind::Updated, now + 1.0)));
            recording.event(job(&rec, b, event_of(2, EventKind::Raised, now + 2.0)));
            recording.event(job(&rec, a, event_of(1, EventKind::Cleared, now + 3.0)));
            started.elapsed()
        })
        .await
        .unwrap()
    };
    assert!(
        handed < Duration::from_secs(1),
        "handing events over waited for the store: {handed:?}"
    );
    // The store's busy timeout is 5 s: by 7 s it has refused the first write at least once.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let backlog = recording.backlog();
    assert_eq!(backlog.waiting, 4, "{backlog:?}");
    assert!(
        backlog.oldest.unwrap() >= Duration::from_secs(6),
        "{backlog:?}"
    );
    let error = backlog.last_error.expect("the store's refusal is reported");
    assert!(
        error.contains("locked") || error.contains("busy"),
        "{error}"
    );
    assert!(metrics.failures.get() >= 1);
    assert_eq!(metrics.backlog.get(), 4);
    lock.join().unwrap();
    // Taken once the lock is gone; then delivered, once each.
    wait_until_recorded(&recording, Duration::from_secs(30)).await;
    assert_eq!(metrics.backlog.get(), 0);
    let (addr, recv_stop) = start_receiver("127.0.0.1:0", receiver_settings(inbox.path())).await;
    let stop = start_deliverer(
        &store,
        settings(format!("http://{addr}/api/incidents"), storage.path()),
    );
    let counts = wait_until_settled(&store, Duration::from_secs(20)).await;
    assert_eq!((counts.delivered, counts.dead), (4, 0));
    let log = received(inbox.path());
    assert_eq!(log.len(), 4, "each event delivered exactly once: {log:?}");
    assert!(
        log.iter().all(|(_, outcome, _)| outcome == "accepted"),
        "{log:?}"
    );
    let row = store
        .call(move |s| s.incident(a))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let order: Vec<&str> = row.deliveries.iter().map(|d| d.event.as_str()).collect();
    assert_eq!(order, ["raised", "updated", "cleared"]);
    assert_eq!(row.state, "cleared");
    assert!(
        row.evidence.iter().filter(|e| e.role == "event").count() >= 1,
        "{:?}",
        row.evidence
    );
    bodies_valid_against_schema(inbox.path());
    stop.cancel();
    recv_stop.cancel();
    tokio::task::spawn_blocking(move || stage.shutdown(Duration::from_secs(1)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_store_refuses_until_shutdown_are_kept_on_disk_and_recorded_at_the_next_start() {
    let storage = tempfile::tempdir().unwrap();
    let store = StoreHandle::open(storage.path()).unwrap();
    let registry = prometheus::Registry::new();
    let metrics = RecordingMetrics::register(&registry);
    let (recording, stage) =
        Recording::start(store.clone(), storage.path(), metrics.clone()).unwrap();
    let rec = Arc::new(recorder(&store, storage.path()));
    let lock = hold_write_lock(storage.path(), Duration::from_secs(8));
    let id = Uuid::now_v7();
    let now = dumpwatch::clock::unix_now();
    let turned = NewCameraEvent {
        camera_id: "cam-1".into(),
        view: View::Moved,
        previous: View::Home,
        at: now + 1.0,
    };
    let handed = turned.clone();
    tokio::task::spawn_blocking(move || {
        recording.event(job(&rec, id, event_of(1, EventKind::Raised, now)));
        recording.camera_event(handed);
        // The service stops while the store still refuses: one attempt (5 s busy timeout),
        // then the grace is over.
        stage.shutdown(Duration::from_secs(1));
    })
    .await
    .unwrap();
    assert_eq!(metrics.spooled.get(), 2);
    let spool = storage.path().join("unrecorded");
    let files: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert_eq!(files.len(), 2, "{files:?}");
    lock.join().unwrap();
    let missing = store.call(move |s| s.incident(id)).await.unwrap().unwrap();
    assert!(missing.is_none(), "not in the store before the next start");
    // The next start records it before anything else, with its pictures.
    let replayed = {
        let (dir, store) = (storage.path().to_path_buf(), store.clone());
        tokio::task::spawn_blocking(move || {
            dumpwatch::recording::spool::record_spooled(&dir, &store)
        })
        .await
        .unwrap()
    };
    assert_eq!(
        (replayed.recorded, replayed.rejected, replayed.left),
        (2, 0, 0)
    );
    let camera_events = store
        .call(|s| s.camera_events(None, 10, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(camera_events.len(), 1, "{camera_events:?}");
    assert_eq!(
        (
            camera_events[0].event.camera_id.as_str(),
            camera_events[0].event.view,
            camera_events[0].event.at
        ),
        (turned.camera_id.as_str(), View::Moved, turned.at)
    );
    let row = store
        .call(move |s| s.incident(id))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(row.deliveries.len(), 1);
    assert!(
        row.evidence.iter().any(|e| e.role == "event"),
        "{:?}",
        row.evidence
    );
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
}

/// Dead letters as the operations center handles them, on the running service: the city system
/// refuses two incidents (422), the service lists them at `GET /api/v1/deliveries?state=dead`
/// with the reason, and once the city side is fixed an operator sends one, then the rest, again
/// (`POST .../requeue` with the bearer token): each reaches the city system once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_sent_again_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    let inbox = tempfile::tempdir().unwrap();
    // Three incidents recorded before the service starts; the first two attempts are refused.
    {
        let store = StoreHandle::open(&storage).unwrap();
        let s = storage.clone();
        tokio::task::spawn_blocking(move || record_incidents(&store, &s, 3))
            .await
            .unwrap();
    }
    let (addr, recv_stop) = start_receiver(
        "127.0.0.1:0",
        ReceiverSettings {
            fail_first: 2,
            fail_status: 422,
            ..receiver_settings(inbox.path())
        },
    )
    .await;
    let log = dir.path().join("service.log");
    let _service = start_service(
        dir.path(),
        &storage,
        &format!("http://{addr}/api/incidents"),
        &log,
    );
    let api = {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(a) = common::served_address(&text) {
                break a;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "log:\n{text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    dumpwatch::deliver::install_tls_provider();
    let http = reqwest::Client::new();
    let list = |state: &'static str| {
        let (http, api) = (http.clone(), api.clone());
        async move {
            let v: serde_json::Value = http
                .get(format!("http://{api}/api/v1/deliveries?state={state}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["deliveries"].as_array().unwrap().clone()
        }
    };
    let start = Instant::now();
    let dead = loop {
        let dead = list("dead").await;
        if dead.len() == 2 && list("delivered").await.len() == 1 {
            break dead;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dead letters: {dead:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for d in &dead {
        assert_eq!(d["last_status"], 422, "{d}");
        assert!(
            d["last_error"].as_str().unwrap().starts_with("HTTP 422"),
            "{d}"
        );
        assert_eq!(d["camera_id"], "cam-01");
    }
    let post = |path: String, token: &'static str| {
        http.post(format!("http://{api}{path}"))
            .bearer_auth(token)
            .send()
    };
    let one = dead[0]["id"].as_i64().unwrap();
    assert_eq!(
        post(format!("/api/v1/deliveries/{one}/requeue"), "wrong")
            .await
            .unwrap()
            .status(),
        401
    );
    let r = post(format!("/api/v1/deliveries/{one}/requeue"), TOKEN)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["requeued"], 1);
    // Not a dead letter any more.
    let again = post(format!("/api/v1/deliveries/{one}/requeue"), TOKEN)
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let r = post("/api/v1/deliveries/requeue".into(), TOKEN)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let start = Instant::now();
    while list("delivered").await.len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still dead: {:?}",
            list("dead").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(list("dead").await.is_empty());
    let outcomes: Vec<String> = received(inbox.path())
        .into_iter()
        .map(|(_, o, _)| o)
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "accepted").count(),
        3,
        "{outcomes:?}"
    );
    recv_stop.cancel();
}

/// The reference receiver checks what the city's own endpoint should: the signature covers the
/// timestamp, the Idempotency-Key and the body; an old timestamp (a replayed request) and a key
/// that is not a safe file name are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_refuses_replayed_requests_and_unsafe_keys() {
    let inbox = tempfile::tempdir().unwrap();
    let (addr, stop) = start_receiver("127.0.0.1:0", receiver_settings(inbox.path())).await;
    let body =
        serde_json::to_vec(&tokio::task::spawn_blocking(body_for_test).await.unwrap()).unwrap();
    let http = reqwest::Client::new();
    let post = |key: &str, signature: String| {
        http.post(format!("http://{addr}/api/incidents"))
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", key)
            .header("X-Dumpwatch-Signature", signature)
            .body(body.clone())
            .send()
    };
    let now = dumpwatch::clock::unix_now() as i64;
    let key = "0190c2a0-0000-7000-8000-000000000001";
    let sign = |t: i64, key: &str| dumpwatch::hashing::sign_delivery(SECRET, t, key, &body);
    // Ten minutes old: a replay (tolerance 300 s).
    let r = post(key, sign(now - 600, key)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("timestamp"));
    // Signed for another key.
    let r = post(key, sign(now, "0190c2a0-0000-7000-8000-000000000002"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The old scheme (body only) is refused.
    let old = format!(
        "sha256={}",
        dumpwatch::hashing::hmac_sha256_hex(SECRET, &body)
    );
    assert_eq!(post(key, old).await.unwrap().status(), 401);
    // Keys that are not safe file names.
    for bad in ["../../etc/passwd", ".hidden", "a b", ""] {
        let r = post(bad, sign(now, bad)).await.unwrap();
        assert_eq!(r.status(), 400, "{bad:?}");
    }
    // The real thing.
    let r = post(key, sign(now, key)).await.unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    stop.cancel();
}

/// A valid incident body (as a recorder makes it), for requests built by hand (blocking).
fn body_for_test() -> serde_json::Value {
    let storage = tempfile::tempdir().unwrap();
    let store = StoreHandle::open(storage.path()).unwrap();
    record_incidents(&store, storage.path(), 1);
    let db = storage.path().join(dumpwatch::store::DB_FILE);
    let conn = rusqlite::Connection::open(db).unwrap();
    let body: String = conn
        .query_row("SELECT body FROM outbox LIMIT 1", [], |r| r.get(0))
        .unwrap();
    serde_json::from_str(&body).unwrap()
}
