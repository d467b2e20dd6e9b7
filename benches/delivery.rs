//! Delivery latency to a healthy receiver: incidents with real 720p evidence pictures (before,
//! actor, event, clean event; inline base64, HMAC-signed) are recorded at a steady rate, as the
//! live sink records them, and delivered to the reference receiver over HTTP on 127.0.0.1. Prints
//! the latency from each event to the receiver's 2xx (p50, p95, max). Target: p95 under 1 s.
//!
//!     cargo bench --bench delivery                 # 120 incidents at 4 per second
//!     DW_BENCH_INCIDENTS=400 DW_BENCH_RATE=10 cargo bench --bench delivery
//!
//! Under `cargo test` it runs a short smoke version.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dumpwatch::analyze::{Event, EventKind, EventObject, FrameRole};
use dumpwatch::config::CameraConfig;
use dumpwatch::deliver::{Backoff, Deliverer, DeliveryMetrics, DeliverySettings, SnapshotMode};
use dumpwatch::geometry::{BBox, Polygon};
use dumpwatch::incident::{FrameSize, ModelRef};
use dumpwatch::receiver::ReceiverSettings;
use dumpwatch::recording::IncidentRecorder;
use dumpwatch::store::writer::StoreHandle;
use tokio_util::sync::CancellationToken;

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (count, rate) = if bench {
        (
            env_or("DW_BENCH_INCIDENTS", 120.0) as usize,
            env_or("DW_BENCH_RATE", 4.0),
        )
    } else {
        (5, 10.0)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let storage = tempfile::tempdir().unwrap();
    let inbox = tempfile::tempdir().unwrap();
    let secret = b"bench-secret".to_vec();
    let frame = Arc::new(common::decoded_keyframe("vtest720"));
    let (w, h) = (frame.width(), frame.height());
    let store = StoreHandle::open(storage.path()).unwrap();
    let stop = CancellationToken::new();
    rt.block_on(async {
        let app = dumpwatch::receiver::router(ReceiverSettings {
            secret: Some(secret.clone()),
            ..ReceiverSettings::accepting(inbox.path())
        })
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let registry = prometheus::Registry::new();
        let deliverer = Deliverer::new(
            store.clone(),
            DeliverySettings {
                endpoint: format!("http://{addr}/api/incidents"),
                secret: Some(secret.clone()),
                snapshots: SnapshotMode::Inline,
                public_url: "http://127.0.0.1:1".into(),
                concurrency: 4,
                timeout: Duration::from_secs(10),
                backoff: Backoff {
                    initial: Duration::from_secs(1),
                    max: Duration::from_secs(30),
                },
                storage_dir: storage.path().to_path_buf(),
            },
            DeliveryMetrics::register(&registry),
        )
        .unwrap();
        tokio::spawn(deliverer.run(stop.clone(), Duration::from_secs(1)));
    });
    let recorder = IncidentRecorder::new(
        store.clone(),
        storage.path().to_path_buf(),
        ModelRef {
            name: "yolov12n".into(),
            sha256: "e548ab3a406227202334bf5a6623c9814ac6286ff04e68aeb4dc2357732d1a4f".into(),
        },
        &Default::default(),
        prometheus::IntCounter::new("errors", "bench").unwrap(),
    );
    let camera = CameraConfig::new("cam-01", "rtsp://127.0.0.1/x");
    let kept = dumpwatch::decode::KeptPicture::pixels_of(&frame);
    let pictures = vec![
        (FrameRole::Before, kept.clone()),
        (FrameRole::Actor, kept.clone()),
        (FrameRole::Event, kept),
    ];
    let bbox = BBox {
        x1: 600.0,
        y1: 400.0,
        x2: 700.0,
        y2: 480.0,
    };
    println!(
        "delivery latency: {count} incidents at {rate}/s, 4 pictures of {w}x{h} each (inline, signed)"
    );
    let started = Instant::now();
    for i in 0..count {
        let due = Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let now = dumpwatch::clock::unix_now();
        let event = Event {
            kind: EventKind::Raised,
            incident: i as u64 + 1,
            zone_index: 0,
            zone: "roadside".into(),
            at: now,
            appeared_at: now - 31.0,
            dwell_s: 30.0,
            confidence: 0.8,
            objects: vec![EventObject {
                class: "object".into(),
                score: 0.8,
                bbox,
            }],
            actor: None,
            frames: vec![],
        };
        recorder
            .record_event(
                &camera,
                &Polygon::full_frame(),
                uuid::Uuid::now_v7(),
                &event,
                dumpwatch::recording::EventPictures::analysed(&pictures),
                FrameSize {
                    width: w,
                    height: h,
                },
            )
            .expect("the store takes the event");
    }
    // Wait for the last deliveries.
    let deadline = Instant::now() + Duration::from_secs(60);
    let db = storage.path().join(dumpwatch::store::DB_FILE);
    let latencies: Vec<f64> = loop {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let pending: i64 = conn
            .query_row(
                "SELECT count(*) FROM outbox WHERE state != 'delivered'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if pending == 0 {
            let mut stmt = conn
                .prepare("SELECT delivered_at - created_at FROM outbox ORDER BY 1")
                .unwrap();
            break stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{pending} not delivered after 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    stop.cancel();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "event → 2xx: p50 {:.0} ms  p95 {:.0} ms  max {:.0} ms  ({} delivered; includes writing the 4 JPEGs)",
        pct(0.5) * 1000.0,
        pct(0.95) * 1000.0,
        pct(1.0) * 1000.0,
        latencies.len()
    );
}
