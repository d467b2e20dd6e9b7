//! The service as operators run it, as a process: configuration reload by SIGHUP and by the API
//! (cameras added, removed and changed while the others keep streaming; an invalid file refused
//! with all its problems), and `--shard` splitting the cameras between instances.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, RtspServer, dumpwatch_command};
use serde_json::Value;

const TOKEN: &str = "lifecycle-token";

/// `dumpwatch run` with the service file `dir/dumpwatch.toml`, logging to `dir/service.log`;
/// returns the process and its HTTP address.
async fn start(dir: &Path, extra_args: &[&str]) -> (KillOnDrop, String) {
    // reqwest is built without a TLS provider of its own.
    dumpwatch::deliver::install_tls_provider();
    let log_path = dir.join("service.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = dumpwatch_command()
        .args(["run", "--config"])
        .arg(dir.join("dumpwatch.toml"))
        .args(extra_args)
        .env("DW_LIFECYCLE_TOKEN", TOKEN)
        .stderr(log)
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(addr) = common::served_address(&text) {
            return (child, addr);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the service did not start; log:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write_service(dir: &Path, endpoint: &str) {
    std::fs::write(
        dir.join("dumpwatch.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\nstorage_dir = \"storage\"\ncameras_file = \"cameras.toml\"\n\
             [model]\npath = {model:?}\nsessions = 1\n\
             [ingest]\nstartup_spread_s = 0\nbackoff_initial_s = 0.2\nbackoff_max_s = 1.0\n\
             [api]\ntoken_env = \"DW_LIFECYCLE_TOKEN\"\n\
             [delivery]\nendpoint = {endpoint:?}\n",
            model = common::root().join("models/yolov12n.onnx"),
        ),
    )
    .unwrap();
}

fn camera_entry(id: &str, url: &str, extra: &str) -> String {
    format!("[[cameras]]\nid = {id:?}\nurl = {url:?}\n{extra}\n")
}

async fn get_json(addr: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn cameras(addr: &str) -> Vec<Value> {
    get_json(addr, "/api/v1/cameras")
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn find<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["id"] == id)
}

async fn wait_for_cameras(
    addr: &str,
    log: &Path,
    what: &str,
    cond: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let list = cameras(addr).await;
        if cond(&list) {
            return list;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: cameras are {list:#?}\nlog:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn streaming(list: &[Value], id: &str) -> bool {
    find(list, id)
        .is_some_and(|c| c["state"] == "streaming" && c["frames_received"].as_u64() > Some(0))
}

/// Checks `value` against the OpenAPI document's schema `name` (one without references), with no
/// property the document does not list.
async fn assert_documented(addr: &str, name: &str, value: &Value) {
    let doc = get_json(addr, "/api/v1/openapi.json").await;
    let mut schema = doc["components"]["schemas"][name].clone();
    assert!(
        schema.is_object(),
        "no schema {name} in the OpenAPI document"
    );
    schema["additionalProperties"] = Value::Bool(false);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{name} as documented: {errors:?}\n{value:#}"
    );
}

async fn post_reload(addr: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("http://{addr}/api/v1/config/reload"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_removes_and_changes_cameras_while_the_others_keep_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("service.log");
    let media = common::media("test360");
    let server = RtspServer::looping(&media, &["a", "b", "c"]);
    write_service(dir.path(), "http://127.0.0.1:9/api/incidents");
    let cams = dir.path().join("cameras.toml");
    std::fs::write(
        &cams,
        camera_entry("a", &server.url("a"), "") + &camera_entry("b", &server.url("b"), ""),
    )
    .unwrap();
    let (service, addr) = start(dir.path(), &[]).await;
    let before = wait_for_cameras(&addr, &log, "a and b streaming", |l| {
        streaming(l, "a") && streaming(l, "b")
    })
    .await;
    let a_since = find(&before, "a").unwrap()["since"].clone();

    // SIGHUP: b removed, c added, a gets a zone and a shorter dwell.
    std::fs::write(
        &cams,
        camera_entry(
            "a",
            &server.url("a"),
            "name = \"Hotspot A\"\n[cameras.analyze]\ndwell_s = 20\n[[cameras.zones]]\nname = \"kerb\"\npolygon = [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]]\n",
        ) + &camera_entry("c", &server.url("c"), ""),
    )
    .unwrap();
    let pid = service.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let after = wait_for_cameras(&addr, &log, "c streaming, b gone", |l| {
        streaming(l, "c")
            && find(l, "b").is_none()
            && find(l, "a").is_some_and(|a| a["name"] == "Hotspot A")
    })
    .await;
    for camera in &after {
        assert_documented(&addr, "Camera", camera).await;
    }
    let a = find(&after, "a").unwrap();
    // a never stopped: same state since, no reconnect, still streaming.
    assert_eq!(a["since"], a_since, "a's stream was restarted: {a:#}");
    assert_eq!(a["reconnects"], 0);
    assert_eq!(a["state"], "streaming");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("configuration reloaded"), "log:\n{text}");
    // b's series are gone from /metrics; c's are there.
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("camera=\"b\""), "b still in /metrics");
    assert!(metrics.contains("dumpwatch_camera_up{camera=\"c\"} 1"));

    // An invalid file through the API: refused with every problem; nothing changes.
    std::fs::write(
        &cams,
        camera_entry(
            "a",
            &server.url("a"),
            "[[cameras.zones]]\nname = \"kerb\"\npolygon = [[0.1, 0.5], [0.9, 0.5]]\n",
        ) + &camera_entry("d", "http://not-rtsp/x", "")
            + &camera_entry("d", &server.url("c"), ""),
    )
    .unwrap();
    let (status, body) = post_reload(&addr, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = post_reload(&addr, Some(TOKEN)).await;
    assert_eq!(status, 422, "{body:#}");
    let paths: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    for want in [
        "cameras[0].zones[0].polygon",
        "cameras[1].url",
        "cameras[2].id",
    ] {
        assert!(paths.contains(&want), "{want} not among {paths:?}");
    }
    let still = cameras(&addr).await;
    assert!(
        streaming(&still, "a") && streaming(&still, "c") && still.len() == 2,
        "{still:#?}"
    );

    // A valid file again, with a new delivery endpoint and a decoder change: delivery applies
    // now, the decoder after a restart.
    std::fs::write(
        &cams,
        camera_entry("a", &server.url("a"), "") + &camera_entry("c", &server.url("c"), ""),
    )
    .unwrap();
    write_service(dir.path(), "http://127.0.0.1:10/api/incidents");
    let service_file = dir.path().join("dumpwatch.toml");
    let mut text = std::fs::read_to_string(&service_file).unwrap();
    text.push_str("[decode]\nthreads = 3\n");
    std::fs::write(&service_file, text).unwrap();
    let (status, body) = post_reload(&addr, Some(TOKEN)).await;
    assert_eq!(status, 200, "{body:#}");
    assert_documented(&addr, "ReloadResult", &body).await;
    assert_eq!(body["delivery_changed"], true, "{body:#}");
    assert_eq!(
        body["restart_needed"],
        serde_json::json!(["decode"]),
        "{body:#}"
    );
    assert_eq!(body["changed"], serde_json::json!(["a"]), "{body:#}");
    let last = cameras(&addr).await;
    assert_eq!(find(&last, "a").unwrap()["since"], a_since, "a restarted");
    drop(service);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_the_cameras_by_a_stable_hash_of_their_id() {
    let ids: Vec<String> = (1..=12).map(|i| format!("hotspot-{i:03}")).collect();
    let mut seen = Vec::new();
    for shard in 0..3u32 {
        let dir = tempfile::tempdir().unwrap();
        write_service(dir.path(), "http://127.0.0.1:9/api/incidents");
        // Nobody listens on port 1: the cameras back off, which is enough to be listed.
        let list: String = ids
            .iter()
            .map(|id| camera_entry(id, "rtsp://127.0.0.1:1/x", ""))
            .collect();
        std::fs::write(dir.path().join("cameras.toml"), list).unwrap();
        let (service, addr) = start(dir.path(), &["--shard", &format!("{shard}/3")]).await;
        let mine: Vec<String> = cameras(&addr)
            .await
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = ids
            .iter()
            .filter(|id| dumpwatch::shard::Shard::of(id, 3) == shard)
            .cloned()
            .collect();
        assert_eq!(mine, expected, "shard {shard}/3");
        seen.extend(mine);
        drop(service);
    }
    seen.sort();
    assert_eq!(seen, ids, "every camera watched exactly once");
    // A bad value is refused before anything starts.
    let out = dumpwatch_command()
        .args(["run", "--shard", "3/3"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INDEX must be less than COUNT"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_of_the_openapi_document_is_served() {
    let dir = tempfile::tempdir().unwrap();
    write_service(dir.path(), "http://127.0.0.1:9/api/incidents");
    std::fs::write(
        dir.path().join("cameras.toml"),
        camera_entry("a", "rtsp://127.0.0.1:1/x", ""),
    )
    .unwrap();
    let (_service, addr) = start(dir.path(), &[]).await;
    let doc = get_json(&addr, "/api/v1/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let client = reqwest::Client::new();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 14, "{} paths", paths.len());
    for (path, methods) in paths {
        let concrete = path
            .replace(
                "{id}",
                if path.contains("cameras") {
                    "a"
                } else {
                    "0190c2a0-0000-7000-8000-000000000000"
                },
            )
            .replace("{file}", "1");
        for method in methods.as_object().unwrap().keys() {
            let url = format!("http://{addr}{concrete}");
            let resp = match method.as_str() {
                "get" => client.get(&url).bearer_auth(TOKEN),
                "post" => client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&serde_json::json!({})),
                other => panic!("{path}: method {other} not tested"),
            }
            .send()
            .await
            .unwrap();
            let status = resp.status().as_u16();
            // The live feed never ends: its headers say it is there.
            let streaming = resp
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            let body = if streaming {
                String::new()
            } else {
                resp.text().await.unwrap_or_default()
            };
            assert_ne!(status, 405, "{method} {path}: not routed for this method");
            // The router's own 404 has no body; handlers explain theirs.
            assert!(
                status != 404 || body.contains("\"error\""),
                "{method} {path}: no such route ({status} {body:?})"
            );
        }
    }
    // Inputs are checked, with the field named.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("state=lost", "state"),
        ("review=maybe", "review"),
        ("bogus=1", "bogus"),
    ] {
        let resp = client
            .get(format!("http://{addr}/api/v1/incidents?{query}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{query}");
        assert!(resp.text().await.unwrap().contains(field), "{query}");
    }
    for (query, field) in [("limit=0", "limit"), ("cam=a", "cam")] {
        let resp = client
            .get(format!("http://{addr}/api/v1/camera-events?{query}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "camera-events?{query}");
        assert!(resp.text().await.unwrap().contains(field), "{query}");
    }
    let none = get_json(&addr, "/api/v1/camera-events?camera=a").await;
    assert_eq!(none["camera_events"], serde_json::json!([]), "{none}");
    let resp = client
        .get(format!(
            "http://{addr}/api/v1/incidents/..%2F..%2Fetc%2Fpasswd/evidence/1"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = client
        .get(format!("http://{addr}/api/v1/cameras/a/latest.jpg?width=5"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

/// An operator's SIGHUP that arrives while the service is still starting (loading the model)
/// does not kill it: the service comes up, and the reload is applied once it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_during_start_up_does_not_stop_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("service.log");
    let media = common::media("test360");
    let server = RtspServer::looping(&media, &["a"]);
    write_service(dir.path(), "http://127.0.0.1:9/api/incidents");
    std::fs::write(
        dir.path().join("cameras.toml"),
        camera_entry("a", &server.url("a"), ""),
    )
    .unwrap();
    // "serving" is printed before the model is loaded and the cameras start.
    let (mut service, addr) = start(dir.path(), &[]).await;
    let pid = service.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for_cameras(&addr, &log, "a streaming", |l| streaming(l, "a")).await;
    assert!(
        service.0.try_wait().unwrap().is_none(),
        "the service exited after the SIGHUP"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("SIGHUP: reloading"), "log:\n{text}");
}

/// The operations center's accounts, on the running service: nothing but the public pages is
/// served without a session or token; a viewer reads but cannot review; five wrong passwords
/// lock a name out for a while; logging out ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_a_session_and_each_role_does_what_it_may() {
    let dir = tempfile::tempdir().unwrap();
    write_service(dir.path(), "http://127.0.0.1:9/api/incidents");
    let users = dir.path().join("users.toml");
    common::add_user(&users, "li.na", "李娜", "viewer", "viewer-pass-1");
    common::add_user(&users, "wu.gang", "吴刚", "operator", "operator-pass-1");
    let mut text = std::fs::read_to_string(dir.path().join("dumpwatch.toml")).unwrap();
    text = text.replace("[api]\n", "[api]\nusers_file = \"users.toml\"\n");
    std::fs::write(dir.path().join("dumpwatch.toml"), text).unwrap();
    std::fs::write(
        dir.path().join("cameras.toml"),
        camera_entry("a", "rtsp://127.0.0.1:1/x", ""),
    )
    .unwrap();
    let (_service, addr) = start(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let status =
        |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().status().as_u16() };

    for path in [
        "/api/v1/cameras",
        "/api/v1/cameras/a/latest.jpg",
        "/api/v1/incidents",
        "/api/v1/live",
        "/api/v1/me",
    ] {
        assert_eq!(
            status(client.get(format!("http://{addr}{path}"))).await,
            401,
            "{path}"
        );
    }
    for path in ["/", "/metrics", "/healthz", "/api/v1/openapi.json"] {
        assert_eq!(
            status(client.get(format!("http://{addr}{path}"))).await,
            200,
            "{path}"
        );
    }
    let login = |name: &'static str, password: &'static str| {
        client
            .post(format!("http://{addr}/api/v1/login"))
            .json(&serde_json::json!({ "name": name, "password": password }))
            .send()
    };
    assert_eq!(login("li.na", "wrong-pass").await.unwrap().status(), 401);
    assert_eq!(
        login("nobody", "viewer-pass-1").await.unwrap().status(),
        401
    );
    let ok = login("li.na", "viewer-pass-1").await.unwrap();
    assert_eq!(ok.status(), 200);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let me: Value = ok.json().await.unwrap();
    assert_eq!(me["role"], "viewer");
    let me: Value = client
        .get(format!("http://{addr}/api/v1/me"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "li.na");
    let cameras_with = |cookie: &str| {
        status(
            client
                .get(format!("http://{addr}/api/v1/cameras"))
                .header("cookie", cookie),
        )
    };
    assert_eq!(cameras_with(&session).await, 200);
    // A viewer cannot review: 403, naming the role needed.
    let incident = "0190c2a0-0000-7000-8000-000000000000";
    let r = client
        .post(format!("http://{addr}/api/v1/incidents/{incident}/dismiss"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("operator"));
    // An operator can; the reason must be one of the list.
    let op = login("wu.gang", "operator-pass-1").await.unwrap();
    let op_session = op.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let review = |reason: &'static str| {
        client
            .post(format!("http://{addr}/api/v1/incidents/{incident}/dismiss"))
            .header("cookie", &op_session)
            .json(&serde_json::json!({ "reason": reason }))
            .send()
    };
    let r = review("boredom").await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("belongs_there"));
    assert_eq!(review("shadow").await.unwrap().status().as_u16(), 404);
    // Logged out: the session is gone.
    let r = client
        .post(format!("http://{addr}/api/v1/logout"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(cameras_with(&session).await, 401);
    // Five wrong passwords lock the name out, the right one included, for a while.
    for _ in 0..5 {
        assert_eq!(login("wu.gang", "guess").await.unwrap().status(), 401);
    }
    let r = login("wu.gang", "operator-pass-1").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}
