//! End to end: a dumping scenario clip served as a live camera by the GStreamer RTSP server →
//! dumpwatch with the real model → the reference receiver holds the incident with its snapshots
//! within dwell + 10 s of the bag being put down; the operations center's dashboard, in headless
//! chromium, shows the camera, the incident appears in its feed, and an operator dismisses it.
//! The same clip encoded as H.265 (a city camera's default main stream) raises and delivers its
//! incident too, with an HEVC evidence clip. A live camera turned away and back is told to the
//! operations center (status, camera events, dashboard) and raises nothing.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::webdriver::Browser;
use common::{RtspServer, Service, camera, fast_service};
use dumpwatch::analyze::view::View;
use dumpwatch::config::Config;
use dumpwatch::receiver::ReceiverSettings;

/// Logs in on the dashboard's form and waits for the page.
async fn log_in(browser: &Browser, name: &str, password: &str) {
    let field = browser
        .wait_for("#login-name", Duration::from_secs(10), "the login form")
        .await;
    browser.type_into(&field, name).await;
    let field = browser
        .wait_for(
            "#login-password",
            Duration::from_secs(5),
            "the password field",
        )
        .await;
    browser.type_into(&field, &format!("{password}\n")).await;
    browser
        .wait_for(
            "#who:not([hidden])",
            Duration::from_secs(10),
            "the page after logging in",
        )
        .await;
}

/// When the bag appears in `l01_bag_left` (see scripts/make_scenarios.py, set `live`).
const PUT_DOWN_S: f64 = 33.0;
const DWELL_S: f64 = 10.0;

/// The live scenario clip `l01_bag_left` as an Annex B stream of `codec` (`h264` or `h265`) for
/// the RTSP server (cached under target/).
fn live_clip(codec: &str) -> PathBuf {
    live_scenario("l01_bag_left", codec)
}

/// A clip of scripts/make_scenarios.py's set `live` as an Annex B stream of `codec`, for the
/// RTSP server (cached under target/). Tests of this binary run on parallel threads and several
/// want the same clip: one makes it while the others wait, so no two write the same files.
fn live_scenario(name: &str, codec: &str) -> PathBuf {
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _making = MAKING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("scenarios-live-{codec}"));
    let annex_b = dir.join(format!("{name}.{codec}"));
    if annex_b.exists() {
        return annex_b;
    }
    let status = Command::new("python3")
        .arg(common::root().join("scripts/make_scenarios.py"))
        .arg(&dir)
        .args(["--set", "live", "--codec", codec])
        .status()
        .expect(
            "running scripts/make_scenarios.py (needs python3 and ffmpeg: run scripts/setup.sh)",
        );
    assert!(status.success(), "make_scenarios.py failed");
    let (filter, format) = match codec {
        "h265" => ("hevc_mp4toannexb", "hevc"),
        _ => ("h264_mp4toannexb", "h264"),
    };
    // Written aside and renamed, so an interrupted run leaves no half clip to be taken as made.
    let part = annex_b.with_extension("part");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(dir.join(format!("clips/{name}.mp4")))
        .args(["-c", "copy", "-bsf:v", filter, "-f", format])
        .arg(&part)
        .status()
        .expect("ffmpeg");
    assert!(
        status.success(),
        "ffmpeg could not extract the {codec} stream"
    );
    std::fs::rename(&part, &annex_b).unwrap();
    annex_b
}

/// The reference receiver on a free port, accepting every incident into a temporary inbox.
async fn start_receiver() -> (tempfile::TempDir, std::net::SocketAddr) {
    let inbox = tempfile::tempdir().unwrap();
    let app = dumpwatch::receiver::router(ReceiverSettings::accepting(inbox.path()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (inbox, receiver)
}

/// The service of these scenarios: delivering to `receiver`, the scenario's dwell, one detector
/// session.
fn scenario_service(receiver: std::net::SocketAddr) -> dumpwatch::config::ServiceConfig {
    let mut svc = fast_service();
    svc.delivery.endpoint = format!("http://{receiver}/api/incidents");
    svc.analyze.dwell_s = DWELL_S;
    svc.analyze.clear_after_s = DWELL_S;
    svc.model.sessions = 1;
    svc
}

/// Waits for the camera "square" to receive its first frame: the server starts the clip for its
/// first client, so that is the clip's start.
async fn first_frame(service: &Service) -> Instant {
    service
        .wait_for("the first frame", Duration::from_secs(20), |s| {
            s.frames("square", "received") > 0
        })
        .await;
    Instant::now()
}

/// Waits for the first incident body at the reference receiver's inbox.
async fn first_body(
    inbox: &std::path::Path,
    since: Instant,
    deadline: Duration,
    service: &Service,
) -> serde_json::Value {
    let bodies = inbox.join("bodies");
    loop {
        let found = std::fs::read_dir(&bodies).ok().and_then(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "json"))
        });
        if let Some(path) = found {
            return serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        }
        assert!(
            since.elapsed() < deadline,
            "no incident at the receiver {:.0} s after the clip started (bag put down at {PUT_DOWN_S} s, dwell {DWELL_S} s); metrics:\n{}",
            since.elapsed().as_secs_f64(),
            service
                .handles
                .metrics
                .render()
                .lines()
                .filter(|l| l.contains("incident")
                    || l.contains("frames_total")
                    || l.contains("delivery"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for the incident's evidence clip and checks it with ffprobe: the codec, the clip's
/// size, and how many frames it holds; and that it shows the act: it starts at least 3 s before
/// the object appeared (`GET /api/v1/incidents/{id}/clip`). Returns the frame count.
async fn evidence_clip_frames(
    service: &Service,
    storage: &std::path::Path,
    key: &str,
    codec_name: &str,
) -> u64 {
    let start = Instant::now();
    let clip = loop {
        let (_, json) = common::http_get(service.addr, &format!("/api/v1/incidents/{key}")).await;
        let row: serde_json::Value = serde_json::from_slice(&json).unwrap();
        if let Some(c) = row["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["role"] == "clip")
        {
            break c.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no clip: {row:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(clip["content_type"], "video/mp4");
    let path = storage.join(clip["path"].as_str().unwrap());
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        dumpwatch::hashing::sha256_hex(&bytes),
        clip["sha256"].as_str().unwrap()
    );
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,codec_tag_string,width,height,nb_read_frames",
        ])
        .args(["-of", "json"])
        .arg(&path)
        .output()
        .expect("ffprobe");
    assert!(
        probe.status.success() && probe.stderr.is_empty(),
        "ffprobe: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let (_, json) = common::http_get(service.addr, &format!("/api/v1/incidents/{key}")).await;
    let row: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let (status, json) =
        common::http_get(service.addr, &format!("/api/v1/incidents/{key}/clip")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&json));
    let span: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let before = row["appeared_at"].as_f64().unwrap() - span["start"].as_f64().unwrap();
    assert!(
        before >= 3.0,
        "the clip starts {before:.1} s before the object appeared: {span:#}"
    );
    let (frames, duration) = (
        span["frames"].as_u64().unwrap(),
        span["duration_s"].as_f64().unwrap(),
    );
    assert!(
        (frames as f64 - duration * 10.0).abs() <= 3.0,
        "{frames} frames in {duration} s at 10 fps: {span:#}"
    );
    let info: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let stream = &info["streams"][0];
    assert_eq!(stream["codec_name"], codec_name, "{info:#}");
    let tag = if codec_name == "hevc" { "hvc1" } else { "avc1" };
    assert_eq!(stream["codec_tag_string"], tag, "{info:#}");
    assert_eq!(
        (stream["width"].as_u64(), stream["height"].as_u64()),
        (Some(768), Some(576))
    );
    stream["nb_read_frames"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bag_left_in_front_of_a_live_camera_reaches_the_city_system_with_snapshots() {
    let clip = live_clip("h264");
    let (inbox, receiver) = start_receiver().await;

    let server = RtspServer::start(&["--h264", &format!("square={}:fps=10", clip.display())]);
    let mut svc = scenario_service(receiver);
    // Only 4 s before the alert: the clip's start comes from the put-down
    // (`clip_before_put_down_s`, 5 s by default), kept while the bag was pending.
    svc.evidence.clip_pre_s = 4.0;
    svc.evidence.clip_post_s = 4.0;
    // The operator's account, made as an administrator would, with the CLI.
    let users = svc.storage_dir.with_extension("users.toml");
    common::add_user(&users, "wang.fang", "王芳", "operator", "night-shift-7");
    svc.api.users_file = Some(users);
    let storage = svc.storage_dir.clone();
    let mut square = camera("square", &server.url("square"));
    square.location = Some(dumpwatch::config::Location {
        lat: 30.5928,
        lon: 114.3055,
        address: "江汉路 1 号".into(),
        district: "江汉区".into(),
    });
    let service = Service::start(Config {
        service: svc,
        cameras: vec![square],
    })
    .await;
    // The server starts the clip for its first client: the first frame received is the clip's
    // start.
    let clip_start = first_frame(&service).await;
    // The operations center opens the dashboard: the camera is there, streaming.
    let browser = Browser::start(1400, 900).await;
    let page = format!("http://{}/", service.addr);
    browser.goto(&page).await;
    // Nothing is shown before logging in; a wrong password is refused on the page.
    let name = browser
        .wait_for("#login-name", Duration::from_secs(10), "the login form")
        .await;
    assert_eq!(
        browser
            .eval("return document.querySelector('main').hidden;")
            .await,
        true
    );
    std::fs::write(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-login.png"),
        browser.screenshot().await,
    )
    .unwrap();
    browser.type_into(&name, "wang.fang").await;
    let password = browser
        .wait_for(
            "#login-password",
            Duration::from_secs(5),
            "the password field",
        )
        .await;
    browser.type_into(&password, "wrong-password\n").await;
    let refused = browser
        .wait_for(
            "#login-error:not(:empty)",
            Duration::from_secs(10),
            "the login refused",
        )
        .await;
    assert!(browser.text(&refused).await.contains("密码"));
    browser.type_into(&password, "night-shift-7\n").await;
    let who = browser
        .wait_for(
            "#who:not([hidden]) #who-name",
            Duration::from_secs(10),
            "the operator's name",
        )
        .await;
    assert_eq!(browser.text(&who).await, "王芳");
    let card = browser
        .wait_for(
            r#"article.camera.streaming[data-camera="square"]"#,
            Duration::from_secs(15),
            "the camera card, streaming",
        )
        .await;
    assert!(browser.text(&card).await.contains("square"));
    browser
        .wait_for(
            r#"article.camera[data-camera="square"] .thumb.has-picture"#,
            Duration::from_secs(20),
            "the camera's latest picture",
        )
        .await;
    let deadline = Duration::from_secs_f64(PUT_DOWN_S + DWELL_S + 10.0);
    let body = first_body(inbox.path(), clip_start, deadline, &service).await;
    let took = clip_start.elapsed().as_secs_f64();
    assert!(
        took >= PUT_DOWN_S + DWELL_S - 2.0,
        "raised {took:.1} s into the clip, before the bag had been there for the dwell"
    );
    assert_eq!(body["event"], "raised");
    assert_eq!(body["camera"]["id"], "square");
    let roles: Vec<&str> = body["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["role"].as_str().unwrap())
        .collect();
    for role in ["event", "event_clean"] {
        assert!(roles.contains(&role), "snapshots {roles:?} lack {role}");
    }
    // The crops are the operations center's, not the city's.
    assert!(
        roles.iter().all(|r| !r.ends_with("_crop")),
        "snapshots {roles:?}"
    );
    assert!(
        roles.contains(&"before") || roles.contains(&"actor"),
        "snapshots {roles:?}"
    );
    // The snapshots arrived whole (the receiver checked their sha256) and are JPEG.
    let key = body["incident_id"].as_str().unwrap();
    let event_jpg =
        std::fs::read(inbox.path().join("snapshots").join(key).join("event.jpg")).unwrap();
    assert_eq!(&event_jpg[..2], &[0xff, 0xd8]);
    // The service's API lists it, delivered.
    let (status, json) = common::http_get(service.addr, &format!("/api/v1/incidents/{key}")).await;
    assert_eq!(status, 200);
    let row: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(row["deliveries"][0]["state"], "delivered");
    // The evidence clip: written once the 4 s after the event have arrived, an MP4 that ffprobe
    // reads, from the keyframe before the 5 s ahead of the put-down: it shows the act.
    let frames = evidence_clip_frames(&service, &storage, key, "h264").await;
    let (status, json) =
        common::http_get(service.addr, &format!("/api/v1/incidents/{key}/clip")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&json));
    let clip: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let appeared_at = row["appeared_at"].as_f64().unwrap();
    let (start, put_down, alert) = (
        clip["start"].as_f64().unwrap(),
        clip["put_down_s"].as_f64().unwrap(),
        clip["alert_s"].as_f64().unwrap(),
    );
    assert!(
        start <= appeared_at - 3.0,
        "the clip starts {:.1} s before the put-down: {clip:#}",
        appeared_at - start
    );
    assert!((4.5..=8.0).contains(&put_down), "{clip:#}");
    assert!(alert - put_down >= DWELL_S - 1.0, "{clip:#}");
    // Everything from there to 4 s after the alert, at 10 fps.
    let duration = clip["duration_s"].as_f64().unwrap();
    assert!(duration >= alert + 3.5, "{clip:#}");
    assert_eq!(clip["frames"].as_u64(), Some(frames), "{clip:#}");
    assert!(
        (frames as f64 - duration * 10.0).abs() <= 3.0,
        "{frames} frames in {duration} s"
    );

    // The incident appeared in the page without a reload, with its pictures and a zoomed crop
    // of the object; dismiss it.
    let selector = format!(r#"article.incident[data-incident="{key}"]"#);
    browser
        .wait_for(
            &format!(r#"{selector} .pictures img[alt="object_crop"]"#),
            Duration::from_secs(10),
            "the incident in the feed, with the object's crop",
        )
        .await;
    // The alarm: the page heard of the incident over the live feed within 2 s of the store
    // recording it, played its tones, and highlights the card until it is reviewed.
    let alarms = browser.eval("return window.dumpwatchAlarms;").await;
    let alarm = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["incident"] == key)
        .unwrap_or_else(|| panic!("no alarm for {key}: {alarms:#}"))
        .clone();
    let heard_after = alarm["heard_at"].as_f64().unwrap() - alarm["recorded_at"].as_f64().unwrap();
    eprintln!("the page heard of the incident {heard_after:.3} s after the store recorded it");
    assert!(heard_after <= 2.0, "{alarm:#}");
    assert_eq!(alarm["sound"], true, "{alarm:#}");
    browser
        .wait_for(
            &format!("{selector}.alarm"),
            Duration::from_secs(5),
            "the incident highlighted",
        )
        .await;
    // The clip plays in the card, from just before the put-down, both moments marked.
    let play = browser
        .wait_for(
            &format!("{selector} button.clip:not([hidden])"),
            Duration::from_secs(20),
            "the clip button",
        )
        .await;
    browser.click(&play).await;
    let video_time = format!(
        "const v = document.querySelector('{selector} video'); \
         return v && v.readyState >= 2 ? v.currentTime : -1;"
    );
    let started = Instant::now();
    let first = loop {
        let t = browser.eval(&video_time).await.as_f64().unwrap_or(-1.0);
        if t >= 0.0 {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the clip did not load in the page"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        (put_down - 2.5..put_down).contains(&first),
        "the player starts at {first} s, the put-down is at {put_down} s"
    );
    loop {
        let t = browser.eval(&video_time).await.as_f64().unwrap_or(-1.0);
        if t >= first + 1.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the clip does not play: currentTime {t} (from {first})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let marks = browser
        .eval(&format!(
            "return [...document.querySelectorAll('{selector} .timeline .mark')] \
             .map((m) => m.hidden ? '' : m.style.left);"
        ))
        .await;
    let marks: Vec<f64> = marks
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().trim_end_matches('%').parse().unwrap())
        .collect();
    assert!(
        marks.len() == 2 && marks[0] > 0.0 && marks[0] < marks[1] && marks[1] < 100.0,
        "put-down and alert marks: {marks:?}"
    );
    // The page is Chinese first: no English word on it but the names the city gave (the
    // camera, its zone), the product's, and the switch to English.
    let english = browser
        .eval(
            "const allowed = new Set(['dumpwatch', 'square', 'frame', 'English']); \
             return (document.body.innerText.match(/[A-Za-z][A-Za-z]{2,}/g) || []) \
             .filter((w) => !allowed.has(w));",
        )
        .await;
    assert_eq!(
        english,
        serde_json::json!([]),
        "English words on the zh-CN page"
    );
    assert_eq!(
        browser.eval("return document.documentElement.lang;").await,
        "zh-CN"
    );
    let screenshot = browser.screenshot().await;
    std::fs::write(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"),
        &screenshot,
    )
    .unwrap();
    // The map: the camera's point in its district; a click selects the camera.
    let point = browser
        .wait_for(
            r#"#map .point[data-camera="square"]"#,
            Duration::from_secs(5),
            "the camera on the map",
        )
        .await;
    let map_text = browser
        .eval("return document.querySelector('#map-box').textContent;")
        .await;
    assert!(
        map_text.as_str().unwrap_or_default().contains("江汉区"),
        "the district's name on the map: {map_text}"
    );
    browser.click(&point).await;
    browser
        .wait_for(
            r#"article.camera.selected[data-camera="square"]"#,
            Duration::from_secs(5),
            "the camera selected from the map",
        )
        .await;
    // The feed's filters and pages: the open incident is found as delivered, not as cleared.
    let feed_shows = |filter: &str, value: &str| {
        format!(
            "const s = document.querySelector('{filter}'); s.value = '{value}'; \
             s.dispatchEvent(new Event('change')); return s.value;"
        )
    };
    browser
        .eval(&feed_shows("#filter-delivery", "delivered"))
        .await;
    browser
        .wait_for(&selector, Duration::from_secs(5), "the incident, delivered")
        .await;
    browser.eval(&feed_shows("#filter-state", "cleared")).await;
    browser
        .wait_for(
            ".feed p.empty",
            Duration::from_secs(5),
            "no cleared incident",
        )
        .await;
    browser.eval(&feed_shows("#filter-state", "")).await;
    browser
        .wait_for(&selector, Duration::from_secs(5), "the incident again")
        .await;
    let info = browser
        .eval("return document.querySelector('#page-info').textContent;")
        .await;
    assert!(
        info.as_str().unwrap_or_default().contains("共 1 个事件"),
        "{info}"
    );
    // Dismissed as a shadow: the reason from the list, the operator's name from the session.
    browser
        .eval(&format!(
            "const s = document.querySelector('{selector} select.reason'); \
             s.value = 'shadow'; return s.value;"
        ))
        .await;
    let dismiss = browser
        .wait_for(
            &format!("{selector} button.dismiss"),
            Duration::from_secs(5),
            "the dismiss button",
        )
        .await;
    browser.click(&dismiss).await;
    browser
        .wait_for(
            &format!("{selector}.dismissed"),
            Duration::from_secs(10),
            "the incident shown dismissed",
        )
        .await;
    let still_alarmed = browser
        .eval(&format!(
            "return document.querySelector('{selector}.alarm') !== null;"
        ))
        .await;
    assert_eq!(still_alarmed, false, "the alarm ends with the review");
    // The English switch: the same page in English, kept for this browser.
    let switch = browser
        .wait_for("#language", Duration::from_secs(5), "the language switch")
        .await;
    browser.click(&switch).await;
    browser
        .wait_for(
            r#"html[lang="en"] section.incidents h2"#,
            Duration::from_secs(10),
            "the page in English",
        )
        .await;
    let heading = browser
        .eval("return document.querySelector('section.incidents h2').textContent;")
        .await;
    assert_eq!(heading, "Incidents");
    let (_, json) = common::http_get(service.addr, &format!("/api/v1/incidents/{key}")).await;
    let row: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(row["review"]["verdict"], "dismissed", "{row:#}");
    assert_eq!(row["review"]["by"], "王芳", "{row:#}");
    assert_eq!(row["review"]["reason"], "shadow", "{row:#}");
    // The dismissal is kept for tuning: export-feedback makes it a negative clip of a dataset
    // that eval loads.
    let dataset_dir = tempfile::tempdir().unwrap();
    let store = dumpwatch::store::Store::open(&storage).unwrap();
    let summary = dumpwatch::eval::feedback::export_feedback(
        &store,
        &storage,
        &[camera("square", &server.url("square"))],
        dataset_dir.path(),
        None,
    )
    .unwrap();
    assert_eq!(
        (summary.confirmed, summary.dismissed),
        (0, 1),
        "skipped: {:?}",
        summary.skipped
    );
    let dataset = dumpwatch::eval::dataset::Dataset::load(dataset_dir.path()).unwrap();
    assert_eq!(dataset.clips.len(), 1);
    assert!(dataset.clips[0].events.is_empty());
    browser.quit().await;
    service.stop().await;
}

/// A camera that sends H.265 (the default main stream of most cameras the city bought) is
/// watched like an H.264 one: the status says h265, the incident is raised and delivered within
/// dwell + 10 s of the bag being put down, and its evidence clip is HEVC in an `hvc1` track.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h265_camera_raises_and_delivers_its_incident_with_an_hevc_clip() {
    let clip = live_clip("h265");
    let (inbox, receiver) = start_receiver().await;

    let server = RtspServer::start(&["--h265", &format!("square={}:fps=10", clip.display())]);
    let mut svc = scenario_service(receiver);
    svc.evidence.clip_pre_s = 6.0;
    svc.evidence.clip_post_s = 4.0;
    let storage = svc.storage_dir.clone();
    let service = Service::start(Config {
        service: svc,
        cameras: vec![camera("square", &server.url("square"))],
    })
    .await;
    let clip_start = first_frame(&service).await;
    let (status, json) = common::http_get(service.addr, "/api/v1/cameras/square").await;
    assert_eq!(status, 200);
    let camera_status: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(camera_status["codec"], "h265", "{camera_status:#}");
    assert_eq!(camera_status["state"], "streaming", "{camera_status:#}");

    let deadline = Duration::from_secs_f64(PUT_DOWN_S + DWELL_S + 10.0);
    let body = first_body(inbox.path(), clip_start, deadline, &service).await;
    let took = clip_start.elapsed().as_secs_f64();
    assert!(
        took >= PUT_DOWN_S + DWELL_S - 2.0,
        "raised {took:.1} s into the clip, before the bag had been there for the dwell"
    );
    assert_eq!(body["event"], "raised");
    let key = body["incident_id"].as_str().unwrap();
    let event_jpg =
        std::fs::read(inbox.path().join("snapshots").join(key).join("event.jpg")).unwrap();
    assert_eq!(&event_jpg[..2], &[0xff, 0xd8]);
    // 10 fps, from 5 s before the put-down (the keyframe before) to 4 s after the alert, which
    // comes some 10 s (the dwell) after the put-down: about 20 s.
    let frames = evidence_clip_frames(&service, &storage, key, "hevc").await;
    assert!((150..=300).contains(&frames), "{frames} frames");
    service.stop().await;
}

/// When the camera of `l03_turned_and_back` is turned away, and turned back.
const TURNED_S: f64 = 15.0;
const TURNED_BACK_S: f64 = 45.0;

/// A live camera turned away by about 20° (a bump, a technician) stops watching its zones, and
/// the operations center is told: within 60 s the status says `moved`, a camera event is
/// recorded and the dashboard shows it as still lost; once turned back the view is home again,
/// which is recorded too. Nothing reaches the city system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_turned_away_and_back_is_told_to_the_operations_center_and_raises_nothing() {
    let clip = live_scenario("l03_turned_and_back", "h264");
    let (inbox, receiver) = start_receiver().await;
    let server = RtspServer::start(&["--h264", &format!("square={}:fps=10", clip.display())]);
    let mut svc = scenario_service(receiver);
    let users = svc.storage_dir.with_extension("users.toml");
    common::add_user(&users, "zhao.lei", "赵磊", "viewer", "look-but-not-touch");
    svc.api.users_file = Some(users);
    let service = Service::start(Config {
        service: svc,
        cameras: vec![camera("square", &server.url("square"))],
    })
    .await;
    let clip_start = first_frame(&service).await;
    let browser = Browser::start(1400, 900).await;
    browser.goto(&format!("http://{}/", service.addr)).await;
    log_in(&browser, "zhao.lei", "look-but-not-touch").await;

    let view = |s: &Service| {
        s.handles
            .status
            .snapshot()
            .into_iter()
            .find(|c| c.id == "square")
            .map(|c| c.view)
    };
    let limit = Duration::from_secs_f64(TURNED_S + 60.0).saturating_sub(clip_start.elapsed());
    service
        .wait_for("the camera's view: moved", limit, |s| {
            view(s) == Some(View::Moved)
        })
        .await;
    let moved_after = clip_start.elapsed().as_secs_f64() - TURNED_S;
    assert!(
        moved_after > 0.0,
        "said moved {:.1} s before the camera was turned",
        -moved_after
    );
    let events = camera_events_once_there_are(&service, 1).await;
    assert_eq!(events[0]["view"], "moved", "{events:#?}");
    assert_eq!(events[0]["previous"], "home", "{events:#?}");
    browser
        .wait_for(
            r#"#camera-event-list li.moved.still-lost[data-camera="square"]"#,
            Duration::from_secs(10),
            "the camera event in the dashboard, shown as still lost",
        )
        .await;
    browser
        .wait_for(
            r#"article.camera.view-lost[data-camera="square"]"#,
            Duration::from_secs(5),
            "the camera card, shown as not watching",
        )
        .await;
    std::fs::write(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-camera-moved.png"),
        browser.screenshot().await,
    )
    .unwrap();

    let limit = Duration::from_secs_f64(TURNED_BACK_S + 30.0).saturating_sub(clip_start.elapsed());
    service
        .wait_for("the camera's view: home again", limit, |s| {
            view(s) == Some(View::Home)
        })
        .await;
    let events = camera_events_once_there_are(&service, 2).await;
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["previous"].as_str().unwrap(), e["view"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [("moved", "home"), ("home", "moved")], "{events:#?}");
    browser
        .wait_for(
            r#"#camera-event-list li.home[data-camera="square"]"#,
            Duration::from_secs(10),
            "the camera back home in the dashboard",
        )
        .await;
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('#camera-event-list li.still-lost').length")
            .await,
        serde_json::json!(0)
    );
    assert!(
        bodies(inbox.path()).is_empty(),
        "an incident reached the city system"
    );
    browser.quit().await;
    service.stop().await;
}

/// The service's camera events, newest first, once at least `count` are recorded: the status
/// changes as the camera's view is judged, the event is stored a moment later by the recorder.
/// Panics after 10 s.
async fn camera_events_once_there_are(service: &Service, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, json) = common::http_get(service.addr, "/api/v1/camera-events").await;
        assert_eq!(status, 200);
        let page: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let events = page["camera_events"].as_array().unwrap().clone();
        if events.len() >= count {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{count} camera event(s) not recorded within 10 s: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The live clip at half size, as a camera's analysis sub-stream (same frame rate and GOP).
fn live_sub_stream() -> PathBuf {
    let main = live_clip("h264");
    let sub = main.with_file_name("l01_bag_left_sub.h264");
    if sub.exists() {
        return sub;
    }
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-r", "10", "-i"])
        .arg(&main)
        .args([
            "-vf",
            "scale=384:288",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args([
            "-x264-params",
            "keyint=20:min-keyint=20:bframes=0:scenecut=0:repeat-headers=1",
        ])
        .args(["-f", "h264"])
        .arg(&sub)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg could not make the sub-stream");
    sub
}

/// A camera with `analysis_url`: analysis runs on its 384×288 sub-stream, the 768×576 main
/// stream is only recorded. The incident is delivered in time, its event picture and its clip
/// have the main stream's resolution, and the status shows both streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_analysed_on_its_sub_stream_sends_main_stream_evidence() {
    let main = live_clip("h264");
    let sub = live_sub_stream();
    let (inbox, receiver) = start_receiver().await;

    let server = RtspServer::start(&[
        "--h264",
        &format!("main={}:fps=10", main.display()),
        "--h264",
        &format!("sub={}:fps=10", sub.display()),
    ]);
    let mut svc = scenario_service(receiver);
    svc.evidence.clip_pre_s = 6.0;
    svc.evidence.clip_post_s = 4.0;
    let storage = svc.storage_dir.clone();
    let mut cam = camera("square", &server.url("main"));
    cam.analysis_url = Some(server.url("sub"));
    let service = Service::start(Config {
        service: svc,
        cameras: vec![cam],
    })
    .await;
    let clip_start = first_frame(&service).await;
    let deadline = Duration::from_secs_f64(PUT_DOWN_S + DWELL_S + 10.0);
    let body = first_body(inbox.path(), clip_start, deadline, &service).await;
    assert_eq!(body["event"], "raised");
    let (_, json) = common::http_get(service.addr, "/api/v1/cameras/square").await;
    let status: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        status["resolution"],
        serde_json::json!([384, 288]),
        "{status:#}"
    );
    assert_eq!(status["recording"]["state"], "streaming", "{status:#}");
    assert_eq!(
        status["recording"]["resolution"],
        serde_json::json!([768, 576]),
        "{status:#}"
    );
    assert!(service.frames("square", "recorded") > 0);
    // The event picture is the main stream's, the boxes scaled onto it.
    let key = body["incident_id"].as_str().unwrap();
    let event = image::open(inbox.path().join("snapshots").join(key).join("event.jpg")).unwrap();
    assert_eq!((event.width(), event.height()), (768, 576));
    let before = body["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["role"] == "before" || s["role"] == "actor");
    assert!(before, "{body:#}");
    // The clip is the main stream's, from 5 s before the put-down to 4 s after the alert.
    let frames = evidence_clip_frames(&service, &storage, key, "h264").await;
    assert!((150..=300).contains(&frames), "{frames} frames");
    service.stop().await;
}

/// Another process holds the store's SQLite write lock for 22 s around the moment the incident
/// fires (a backup tool, an operator's `sqlite3` shell). The service keeps analysing, `/readyz`
/// says that incident events wait for the store, and once the lock is gone the incident reaches
/// the city system, once, with its snapshots and its clip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_fired_while_another_process_locks_the_store_is_delivered_once_after() {
    const HOLD_S: f64 = 22.0;
    let clip = live_clip("h264");
    let (inbox, receiver) = start_receiver().await;
    let server = RtspServer::start(&["--h264", &format!("square={}:fps=10", clip.display())]);
    let mut svc = scenario_service(receiver);
    svc.evidence.clip_pre_s = 4.0;
    svc.evidence.clip_post_s = 2.0;
    let storage = svc.storage_dir.clone();
    let service = Service::start(Config {
        service: svc,
        cameras: vec![camera("square", &server.url("square"))],
    })
    .await;
    let clip_start = first_frame(&service).await;
    // From 5 s before the dwell can end until well after it.
    let lock_at = Duration::from_secs_f64(PUT_DOWN_S + DWELL_S - 5.0);
    tokio::time::sleep(lock_at.saturating_sub(clip_start.elapsed())).await;
    let db = storage.join(dumpwatch::store::DB_FILE);
    let (held, is_held) = std::sync::mpsc::channel();
    let lock = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        held.send(()).unwrap();
        std::thread::sleep(Duration::from_secs_f64(HOLD_S));
        conn.execute_batch("COMMIT").unwrap();
    });
    is_held.recv().unwrap();
    let locked_at = Instant::now();
    let mut not_ready = None;
    while locked_at.elapsed() < Duration::from_secs_f64(HOLD_S - 0.5) {
        let (status, text) = common::http_get(service.addr, "/readyz").await;
        if status == 503 {
            not_ready = Some(String::from_utf8_lossy(&text).into_owned());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    lock.join().unwrap();
    let released = Instant::now();
    let not_ready = not_ready.expect("/readyz never said not ready while the store was locked");
    assert!(
        not_ready.contains("wait for the store") && not_ready.contains("locked"),
        "{not_ready}"
    );
    assert!(
        std::fs::read_dir(inbox.path().join("bodies")).map_or(true, |mut d| d.next().is_none()),
        "delivered while the store was locked"
    );
    let deadline = Duration::from_secs_f64(PUT_DOWN_S + DWELL_S + HOLD_S + 30.0);
    let body = first_body(inbox.path(), clip_start, deadline, &service).await;
    assert_eq!(body["event"], "raised");
    let key = body["incident_id"].as_str().unwrap().to_owned();
    for role in ["event", "before"] {
        let jpg = std::fs::read(
            inbox
                .path()
                .join("snapshots")
                .join(&key)
                .join(format!("{role}.jpg")),
        )
        .unwrap();
        assert_eq!(&jpg[..2], &[0xff, 0xd8], "{role}");
    }
    let frames = evidence_clip_frames(&service, &storage, &key, "h264").await;
    assert!(frames >= 40, "{frames} frames");
    // Ready again, and nothing sent twice: the raised event accepted once, no other incident.
    // (The clip loops at 60 s: the bag vanishes then, and the incident's `cleared` may follow.)
    let (status, _) = common::http_get(service.addr, "/readyz").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = std::fs::read_to_string(inbox.path().join("received.jsonl")).unwrap();
    let accepted: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["outcome"] == "accepted")
        .map(|v| v["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        accepted.iter().filter(|k| **k == key).count(),
        1,
        "{accepted:?}"
    );
    assert!(
        accepted
            .iter()
            .all(|k| *k == key || *k == format!("{key}:cleared")),
        "{accepted:?}"
    );
    println!(
        "store locked {HOLD_S} s; incident delivered {:.1} s after the lock was released",
        released.elapsed().as_secs_f64()
    );
    service.stop().await;
}

/// The bodies at the reference receiver's inbox, by their `Idempotency-Key`.
fn bodies(inbox: &std::path::Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    std::fs::read_dir(inbox.join("bodies"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .map(|p| {
                    let key = p.file_stem().unwrap().to_string_lossy().into_owned();
                    (
                        key,
                        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_open_across_a_restart_is_cleared_once_when_the_spot_is_cleaned() {
    // l02 shows the same street with the bag on the spot from the start, taken away at 20 s.
    const TAKEN_S: f64 = 20.0;
    let (left, taken) = (live_clip("h264"), live_scenario("l02_bag_taken", "h264"));
    let (inbox, receiver) = start_receiver().await;
    let server = RtspServer::start(&[
        "--h264",
        &format!("left={}:fps=10", left.display()),
        "--h264",
        &format!("taken={}:fps=10", taken.display()),
    ]);
    let svc = scenario_service(receiver);
    let config = |url: String| Config {
        service: svc.clone(),
        cameras: vec![camera("square", &url)],
    };
    let service = Service::start(config(server.url("left"))).await;
    let clip_start = first_frame(&service).await;
    let deadline = Duration::from_secs_f64(PUT_DOWN_S + DWELL_S + 10.0);
    let raised = first_body(inbox.path(), clip_start, deadline, &service).await;
    assert_eq!(raised["event"], "raised");
    let incident = raised["incident_id"].as_str().unwrap().to_owned();
    service.stop().await;

    // The service starts again; the camera's picture now shows the bag until someone takes it.
    let service = Service::start(config(server.url("taken"))).await;
    let clip_start = first_frame(&service).await;
    let cleared_key = dumpwatch::receiver::key_file_name(&format!("{incident}:cleared"));
    let limit = Duration::from_secs_f64(TAKEN_S + DWELL_S + 20.0);
    let cleared = loop {
        if let Some(body) = bodies(inbox.path()).remove(&cleared_key) {
            break body;
        }
        assert!(
            clip_start.elapsed() < limit,
            "not cleared {:.0} s after the restart (bag taken at {TAKEN_S} s, clear_after {DWELL_S} s); received: {:?}",
            clip_start.elapsed().as_secs_f64(),
            bodies(inbox.path()).keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let took = clip_start.elapsed().as_secs_f64();
    assert!(
        took >= TAKEN_S + DWELL_S - 2.0,
        "cleared at {took:.1} s, before the bag was taken"
    );
    assert_eq!(cleared["incident_id"], incident.as_str());
    assert_eq!(cleared["appeared_at"], raised["appeared_at"]);
    let after = std::fs::read(
        inbox
            .path()
            .join("snapshots")
            .join(&cleared_key)
            .join("after.jpg"),
    )
    .expect("the cleared event has its after picture");
    assert_eq!(&after[..2], &[0xff, 0xd8]);
    // Nothing else: the bag there at the restart is not a new incident, the clearing is sent once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let keys: Vec<String> = bodies(inbox.path()).into_keys().collect();
    assert_eq!(keys, vec![incident.clone(), cleared_key], "{keys:?}");
    let (_, json) = common::http_get(service.addr, &format!("/api/v1/incidents/{incident}")).await;
    let row: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(row["state"], "cleared", "{row:#}");
    println!(
        "open incident carried across a restart: cleared {took:.1} s after the restart (bag taken at {TAKEN_S} s)"
    );
    service.stop().await;
}
