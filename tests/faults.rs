//! Fault injection with real processes on loopback: a recording-and-delivery worker process is
//! SIGKILLed at random moments while it records 200 incidents (raised, updated, cleared: 600
//! events with their pictures), writes their clips and delivers them to the reference receiver,
//! in three rounds. Each round ends with a worker that runs to the end. Then every event the
//! store took is delivered exactly once, in order per incident; every evidence row names a whole
//! file (its sha256 matches) and no file is left that no row names.
//!
//! The worker is this test binary run again with `DW_FAULT_WORKER` set: it wires the service's
//! own stages (the recording stage, the clip recorder fed by a real H.264 stream, the delivery
//! worker, the start-up spool replay and clean-up) around a scripted event source in place of
//! the cameras and analyzers. Like the analyzers, the source goes on from the store after a
//! restart: an event counts as taken once the store has committed it, and what was handed over
//! and not yet committed at the kill is decided again. (In the service, an event still in the
//! recorder's queue at a SIGKILL is lost with the process: a window of milliseconds unless the
//! store refuses writes; see docs/architecture.md.)

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::KillOnDrop;
use common::incidents::{event_of, job, recorder};
use dumpwatch::analyze::EventKind;
use dumpwatch::clip::{ClipRecorder, ClipRequest};
use dumpwatch::deliver::{Backoff, Deliverer, DeliveryMetrics, DeliverySettings, SnapshotMode};
use dumpwatch::ingest::EncodedFrame;
use dumpwatch::recording::{Recording, RecordingMetrics};
use dumpwatch::store::writer::StoreHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SECRET: &str = "fault-secret";
/// Incidents per round (three events each).
const INCIDENTS: u64 = 200;
const ROUNDS: u64 = 3;
/// Kills per round, each at a random moment of a worker's life.
const KILLS: u64 = 3;
/// The events of each incident, in order, with their idempotency key's suffix.
const EVENTS: [(EventKind, &str); 3] = [
    (EventKind::Raised, ""),
    (EventKind::Updated, ":updated:1"),
    (EventKind::Cleared, ":cleared"),
];

/// Incident `n` of round `round`: a UUIDv7 that is the same in every worker of the round.
fn incident_id(round: u64, n: u64) -> Uuid {
    let millis = 1_800_000_000_000 + round * 1_000_000 + n;
    let mut tail = [0u8; 10];
    tail[..8].copy_from_slice(&(round * 1_000 + n).to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(millis, &tail).into_uuid()
}

/// A small deterministic generator for the kill moments.
fn next_random(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state % 10_000) as f64 / 10_000.0
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_no_recorded_event() {
    if let Ok(storage) = std::env::var("DW_FAULT_WORKER") {
        return worker(Path::new(&storage));
    }
    let inbox = tempfile::tempdir().unwrap();
    // The city system answers each request after 15 ms, four at a time.
    let (_receiver, endpoint) =
        common::receiver_process(inbox.path(), 15, "DW_FAULT_SECRET", SECRET);
    let clip_source = common::media("test360");
    let mut random = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..ROUNDS {
        let storage = tempfile::tempdir().unwrap();
        let log = storage.path().join("worker.log");
        let spawn = || {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            KillOnDrop(
                std::process::Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "sigkill_at_random_moments_loses_and_duplicates_no_recorded_event",
                        "--nocapture",
                        "--test-threads",
                        "1",
                    ])
                    .env("DW_FAULT_WORKER", storage.path())
                    .env("DW_FAULT_ROUND", round.to_string())
                    .env("DW_FAULT_ENDPOINT", &endpoint)
                    .env("DW_FAULT_CLIP", &clip_source)
                    .env("DW_FAULT_SECRET", SECRET)
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap(),
            )
        };
        let mut kills = Vec::new();
        for _ in 0..KILLS {
            let mut worker = spawn();
            // The worker needs about a second to start; it records for about 4 s.
            let after = Duration::from_secs_f64(0.8 + 4.0 * next_random(&mut random));
            std::thread::sleep(after);
            worker.0.kill().unwrap();
            worker.0.wait().unwrap();
            kills.push((after, progress(storage.path())));
        }
        let mut last = spawn();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = last.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "round {round}: the last worker did not finish; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            status.success(),
            "round {round}: the last worker failed; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let clips = check_round(round, storage.path(), inbox.path());
        // Kills that fell while events were being recorded and while they were being sent.
        assert!(
            kills
                .iter()
                .any(|(_, (recorded, _))| *recorded > 0 && *recorded < 600)
                && kills
                    .iter()
                    .any(|(_, (recorded, delivered))| delivered < recorded),
            "no kill fell in the middle of the work: {kills:?}"
        );
        println!(
            "round {round}: killed at (s, events recorded, delivered) {:?}; 600 events delivered once each, in order; {clips} clips whole",
            kills
                .iter()
                .map(|(d, (r, dl))| format!("({:.1}, {r}, {dl})", d.as_secs_f64()))
                .collect::<Vec<_>>()
        );
    }
}

/// Events the store in `storage` has recorded, and delivered.
fn progress(storage: &Path) -> (i64, i64) {
    let Ok(db) = rusqlite::Connection::open(storage.join(dumpwatch::store::DB_FILE)) else {
        return (0, 0);
    };
    db.query_row(
        "SELECT count(*), count(*) FILTER (WHERE state = 'delivered') FROM outbox",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap_or((0, 0))
}

/// What the store and the receiver hold after round `round`: every event delivered exactly
/// once and in order per incident, every evidence file whole and named. Returns the clip count.
fn check_round(round: u64, storage: &Path, inbox: &Path) -> usize {
    let db = rusqlite::Connection::open(storage.join(dumpwatch::store::DB_FILE)).unwrap();
    let states: Vec<(String, String)> = db
        .prepare("SELECT idempotency_key, state FROM outbox")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let wanted: Vec<String> = (0..INCIDENTS)
        .flat_map(|n| {
            let id = incident_id(round, n);
            EVENTS.map(|(_, suffix)| format!("{id}{suffix}"))
        })
        .collect();
    let recorded: HashMap<&str, &str> = states
        .iter()
        .map(|(k, s)| (k.as_str(), s.as_str()))
        .collect();
    assert_eq!(states.len(), wanted.len(), "one outbox row per event");
    for key in &wanted {
        assert_eq!(recorded.get(key.as_str()), Some(&"delivered"), "{key}");
    }
    // The receiver accepted each key once; the first acceptance of each incident's events is in
    // the incident's order (a request in flight at a kill may come again as a duplicate).
    let lines = std::fs::read_to_string(inbox.join("received.jsonl")).unwrap();
    let mut accepted: BTreeMap<String, usize> = BTreeMap::new();
    for (i, line) in lines.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = v["key"].as_str().unwrap().to_owned();
        match v["outcome"].as_str().unwrap() {
            "accepted" => {
                assert!(
                    accepted.insert(key.clone(), i).is_none(),
                    "{key} accepted twice"
                );
            }
            "duplicate" => {}
            other => panic!("{key}: {other}"),
        }
    }
    for n in 0..INCIDENTS {
        let id = incident_id(round, n);
        let order: Vec<usize> = EVENTS
            .iter()
            .map(|(_, suffix)| {
                *accepted
                    .get(&format!("{id}{suffix}"))
                    .unwrap_or_else(|| panic!("{id}{suffix} never accepted"))
            })
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "incident {id} delivered out of order: {order:?}"
        );
    }
    // Every evidence row names a whole file; no file is left that no row names.
    let rows: Vec<(String, String)> = db
        .prepare("SELECT path, sha256 FROM evidence WHERE deleted_at IS NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let named: HashSet<PathBuf> = rows.iter().map(|(p, _)| storage.join(p)).collect();
    for (path, sha) in &rows {
        let bytes = std::fs::read(storage.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(&dumpwatch::hashing::sha256_hex(&bytes), sha, "{path}");
    }
    let mut files = vec![storage.join("evidence")];
    while let Some(dir) = files.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.push(path);
            } else if path.file_name().is_some_and(|n| n != "clip.json") {
                assert!(
                    named.contains(&path),
                    "a file no row names: {}",
                    path.display()
                );
            }
        }
    }
    rows.iter().filter(|(p, _)| p.ends_with(".mp4")).count()
}

/// The worker: the service's recording, clip and delivery stages around a scripted source of
/// events, going on from what the store already holds.
fn worker(storage: &Path) {
    let env = |name: &str| std::env::var(name).unwrap();
    let round: u64 = env("DW_FAULT_ROUND").parse().unwrap();
    let endpoint = env("DW_FAULT_ENDPOINT");
    let clip_source = PathBuf::from(env("DW_FAULT_CLIP"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = StoreHandle::open(storage).unwrap();
        // As at the service's start: what was spooled, then the files no row names.
        let dir = storage.to_path_buf();
        let (replay_store, replay_dir) = (store.clone(), dir.clone());
        let replayed = tokio::task::spawn_blocking(move || {
            dumpwatch::recording::spool::record_spooled(&replay_dir, &replay_store)
        })
        .await
        .unwrap();
        if replayed.left == 0 {
            let dir = dir.clone();
            store
                .call(move |s| s.remove_unrecorded_evidence(&dir))
                .await
                .unwrap()
                .unwrap();
        }
        let taken: HashSet<String> = {
            let db = rusqlite::Connection::open(storage.join(dumpwatch::store::DB_FILE)).unwrap();
            let mut stmt = db.prepare("SELECT idempotency_key FROM outbox").unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let registry = prometheus::Registry::new();
        let (recording, stage) =
            Recording::start(store.clone(), &dir, RecordingMetrics::register(&registry)).unwrap();
        let settings = DeliverySettings {
            endpoint,
            secret: Some(SECRET.as_bytes().to_vec()),
            snapshots: SnapshotMode::Inline,
            public_url: "http://127.0.0.1:1".into(),
            concurrency: 4,
            timeout: Duration::from_secs(5),
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_millis(500),
            },
            storage_dir: dir.clone(),
        };
        let deliverer = Deliverer::new(
            store.clone(),
            settings,
            DeliveryMetrics::register(&registry),
        )
        .unwrap();
        let stop_delivery = CancellationToken::new();
        let delivery = tokio::spawn(deliverer.run(stop_delivery.clone(), Duration::from_secs(1)));
        let clips = Arc::new(ClipRecorder {
            rings: ClipRecorder::rings(1, (1.0, 0.0), 4_000_000, None),
            recording: Arc::new(recording.clone()),
            storage_dir: dir.clone(),
            pre_s: 1.0,
            before_put_down_s: 0.0,
            post_s: 0.5,
            errors: prometheus::IntCounter::new("clip_errors", "test").unwrap(),
            runtime: tokio::runtime::Handle::current(),
            flush: CancellationToken::new(),
            pending: tokio_util::task::TaskTracker::new(),
        });
        let feeding = feed_ring(clips.clone(), &clip_source);
        tokio::time::sleep(Duration::from_millis(1200)).await;

        // Incident n is raised at step n, updated at step n + 1 and cleared at step n + 2.
        let rec = Arc::new(recorder(&store, &dir));
        let at = dumpwatch::clock::unix_now();
        for step in 0..INCIDENTS + 2 {
            for (k, (kind, suffix)) in EVENTS.iter().enumerate() {
                let Some(n) = step.checked_sub(k as u64).filter(|n| *n < INCIDENTS) else {
                    continue;
                };
                let id = incident_id(round, n);
                if taken.contains(&format!("{id}{suffix}")) {
                    continue;
                }
                recording.event(job(&rec, id, event_of(n + 1, *kind, at + step as f64)));
                if *kind == EventKind::Raised {
                    clips.request(ClipRequest {
                        camera: 0,
                        camera_id: "cam-01".into(),
                        incident: id,
                        at: dumpwatch::clock::unix_now(),
                        appeared_at: dumpwatch::clock::unix_now(),
                        size: (640, 360),
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        // Everything recorded and delivered, then a clean stop.
        clips.flush().await;
        feeding.abort();
        let started = Instant::now();
        loop {
            let counts = store.call(|s| s.outbox_counts()).await.unwrap().unwrap();
            if recording.backlog().waiting == 0 && counts.pending == 0 {
                assert_eq!(counts.dead, 0, "{counts:?}");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "not settled: {counts:?}, {:?}",
                recording.backlog()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop_delivery.cancel();
        delivery.await.unwrap();
        tokio::task::spawn_blocking(move || stage.shutdown(Duration::from_secs(5)))
            .await
            .unwrap();
    });
}

/// Pushes the access units of `source` into the clip recorder's ring at 25 a second, looping,
/// as a camera's ingest task does.
fn feed_ring(clips: Arc<ClipRecorder>, source: &Path) -> tokio::task::JoinHandle<()> {
    let units = common::access_units(source);
    let codec = common::codec_of(source);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(40));
        for (seq, unit) in units.iter().cycle().enumerate() {
            tick.tick().await;
            let frame = EncodedFrame {
                data: unit.as_slice().into(),
                keyframe: common::is_keyframe(unit),
                pts_s: seq as f64 * 0.04,
                captured_at: SystemTime::now(),
                received: Instant::now(),
                seq: seq as u64,
                all_frames: true,
                codec,
            };
            clips.rings[0].push(&frame, dumpwatch::clock::unix_now());
        }
    })
}
