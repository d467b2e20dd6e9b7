//! Ingest and decode against a real GStreamer RTSP server on 127.0.0.1.

mod common;

use std::time::Duration;

use common::{RtspServer, Service, camera, fast_service, http_get, media};
use dumpwatch::config::{Config, Credentials, Transport};
use dumpwatch::ingest::{CameraState, ConnectOptions, IngestError};
use dumpwatch::probe::{ProbeError, probe};

fn connect_opts(url: &str, credentials: Option<Credentials>) -> ConnectOptions {
    ConnectOptions {
        url: url::Url::parse(url).unwrap(),
        credentials,
        transport: Transport::Tcp,
        step_timeout: Duration::from_secs(3),
    }
}

/// Test settings that decode every keyframe of an idle camera (these tests check decoding, not
/// the motion gate, which would skip most keyframes of a static test picture).
fn decoding_service() -> dumpwatch::config::ServiceConfig {
    let mut s = fast_service();
    s.decode.motion_gate = false;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_keyframes_of_the_right_size_and_serves_metrics() {
    let file = media("test360");
    let server = RtspServer::start(&["--h264", &format!("a={}", file.display())]);
    let svc = Service::start(Config {
        service: decoding_service(),
        cameras: vec![camera("cam-a", &server.url("a"))],
    })
    .await;

    svc.wait_for("3 decoded keyframes", Duration::from_secs(20), |s| {
        s.frames("cam-a", "decoded") >= 3
    })
    .await;
    let i = svc.index("cam-a");
    svc.wait_for("a detected picture", Duration::from_secs(20), |s| {
        s.handles.pictures.get(i).is_some()
    })
    .await;
    let picture = svc.handles.pictures.get(i).expect("a picture");
    assert_eq!((picture.frame.width(), picture.frame.height()), (640, 360));
    assert!(picture.frame.keyframe());
    // Keyframe mode: the picture is kept as its keyframe, and decodes to the same size.
    assert!(!picture.frame.has_pixels());
    let pixels = picture.frame.pixels().expect("the kept keyframe decodes");
    assert_eq!((pixels.width(), pixels.height()), (640, 360));
    // A 16:9 picture shares its detector run (model.mosaic): half the 640x640 input.
    assert_eq!(picture.detected.letterbox.inner, (569, 320));
    let status = svc.handles.status.get(i).unwrap();
    assert_eq!(status.state, CameraState::Streaming);
    assert_eq!(status.resolution, Some((640, 360)));
    // Keyframe mode: P-frames are skipped without decoding, none are lost.
    assert!(svc.frames("cam-a", "skipped") > 0);
    assert_eq!(svc.dropped("cam-a", "decode_busy"), 0);
    assert_eq!(svc.dropped("cam-a", "decode_error"), 0);

    let (code, body) = http_get(svc.addr, "/metrics").await;
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    for name in [
        "dumpwatch_decode_seconds_bucket",
        "dumpwatch_frames_total{camera=\"cam-a\",stage=\"decoded\"}",
        "dumpwatch_frames_dropped_total{camera=\"cam-a\",reason=\"before_keyframe\"}",
        "dumpwatch_camera_up{camera=\"cam-a\"} 1",
        "dumpwatch_camera_reconnects_total{camera=\"cam-a\"} 0",
        "dumpwatch_inference_seconds_bucket",
        "dumpwatch_preprocess_seconds_bucket",
        "dumpwatch_postprocess_seconds_bucket",
        "dumpwatch_frame_age_seconds_bucket",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
    let (code, jpeg) = http_get(svc.addr, "/api/v1/cameras/cam-a/latest.jpg").await;
    assert_eq!(code, 200);
    let img = image::load_from_memory(&jpeg).expect("a JPEG");
    assert_eq!((img.width(), img.height()), (640, 360));
    let (code, body) = http_get(svc.addr, "/api/v1/cameras").await;
    assert_eq!(code, 200);
    let cams: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(cams[0]["id"], "cam-a");
    assert_eq!(cams[0]["state"], "streaming");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_succeeds_and_a_wrong_password_is_reported_without_leaking_it() {
    let file = media("test360");
    let server = RtspServer::start(&[
        "--h264",
        &format!("a={}", file.display()),
        "--user",
        "admin",
        "--password",
        "s3cret-pw",
    ]);
    // SAFETY: set before any thread of this test binary reads these names; each test uses its own.
    unsafe {
        std::env::set_var("DW_TEST_AUTH_USER", "admin");
        std::env::set_var("DW_TEST_AUTH_GOOD", "s3cret-pw");
        std::env::set_var("DW_TEST_AUTH_BAD", "wrong-hunter2");
    }
    let mut good = camera("good", &server.url("a"));
    good.username_env = Some("DW_TEST_AUTH_USER".into());
    good.password_env = Some("DW_TEST_AUTH_GOOD".into());
    let mut bad = camera("bad", &server.url("a"));
    bad.username_env = Some("DW_TEST_AUTH_USER".into());
    bad.password_env = Some("DW_TEST_AUTH_BAD".into());
    let svc = Service::start(Config {
        service: decoding_service(),
        cameras: vec![good, bad],
    })
    .await;

    svc.wait_for("good camera decodes", Duration::from_secs(20), |s| {
        s.frames("good", "decoded") >= 2
    })
    .await;
    svc.wait_for("bad camera reports 401", Duration::from_secs(20), |s| {
        s.handles
            .status
            .get(s.index("bad"))
            .unwrap()
            .last_error
            .is_some_and(|e| e.contains("401"))
    })
    .await;
    let bad = svc.handles.status.get(svc.index("bad")).unwrap();
    assert_ne!(bad.state, CameraState::Streaming);
    let (_, body) = http_get(svc.addr, "/api/v1/cameras").await;
    let (_, metrics) = http_get(svc.addr, "/metrics").await;
    for text in [
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(&metrics),
    ] {
        assert!(
            !text.contains("wrong-hunter2") && !text.contains("s3cret-pw"),
            "a password leaked: {text}"
        );
    }

    // The same through probe: wrong password → Unauthorized; right one → a picture.
    let wrong = Some(Credentials {
        username: "admin".into(),
        password: "nope".into(),
    });
    let err = probe(
        &connect_opts(&server.url("a"), wrong),
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ProbeError::Ingest(IngestError::Unauthorized)),
        "{err}"
    );
    let right = Some(Credentials {
        username: "admin".into(),
        password: "s3cret-pw".into(),
    });
    let report = probe(
        &connect_opts(&server.url("a"), right),
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.decoded_size, (640, 360));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_names_each_failure_distinctly() {
    let file = media("test360");
    let server = RtspServer::start(&["--h264", &format!("a={}", file.display()), "--mjpeg", "mj"]);
    let watch = Duration::from_secs(5);

    let err = probe(&connect_opts(&server.url("missing"), None), watch, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProbeError::Ingest(IngestError::NotFound)),
        "{err}"
    );

    let err = probe(&connect_opts(&server.url("mj"), None), watch, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProbeError::Ingest(IngestError::UnsupportedCodec { encoding }) if encoding == "jpeg"),
        "{err}"
    );

    // A port nobody listens on: bind one, note it, close it.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = probe(
        &connect_opts(&format!("rtsp://127.0.0.1:{free}/a"), None),
        watch,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::Ingest(IngestError::ConnectionRefused { .. })
        ),
        "{err}"
    );

    // A server that accepts TCP but never answers: the DESCRIBE step times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut opts = connect_opts(&format!("rtsp://{}/a", silent.local_addr().unwrap()), None);
    opts.step_timeout = Duration::from_millis(500);
    let err = probe(&opts, watch, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::Ingest(IngestError::Timeout {
                step: "connect/describe",
                ..
            })
        ),
        "{err}"
    );

    // And success, measuring the stream: 25 fps, GOP of 50 frames (2 s).
    let out = tempfile::tempdir().unwrap();
    let jpeg = out.path().join("first.jpg");
    let report = probe(
        &connect_opts(&server.url("a"), None),
        Duration::from_secs(8),
        Some(&jpeg),
    )
    .await
    .unwrap();
    assert_eq!(report.gop_frames, Some(50));
    let fps = report.measured_fps.unwrap();
    assert!((fps - 25.0).abs() < 1.5, "measured {fps} fps");
    let img = image::open(&jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (640, 360));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_joining_mid_gop_decodes_cleanly_from_the_first_keyframe() {
    let file = media("test360");
    let server = RtspServer::start(&["--h264", &format!("a={}", file.display())]);
    // The first client starts the shared media at a keyframe...
    let first = tokio::spawn({
        let url = server.url("a");
        async move { probe(&connect_opts(&url, None), Duration::from_secs(6), None).await }
    });
    // ...the second joins 0.8 s later, 20 frames into a 50-frame GOP.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let svc = Service::start(Config {
        service: decoding_service(),
        cameras: vec![camera("late", &server.url("a"))],
    })
    .await;
    svc.wait_for("2 decoded keyframes", Duration::from_secs(15), |s| {
        s.frames("late", "decoded") >= 2
    })
    .await;
    assert!(
        svc.dropped("late", "before_keyframe") > 0,
        "the client should have joined mid-GOP"
    );
    assert_eq!(
        svc.dropped("late", "decode_error"),
        0,
        "P-frames before the keyframe reached the decoder"
    );
    svc.wait_for("a detected picture", Duration::from_secs(20), |s| {
        s.handles.pictures.get(s.index("late")).is_some()
    })
    .await;
    let picture = svc.handles.pictures.get(svc.index("late")).unwrap();
    assert_eq!((picture.frame.width(), picture.frame.height()), (640, 360));
    first.await.unwrap().unwrap();
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_reconnected_while_another_camera_keeps_streaming() {
    let file = media("test360");
    let mut one = RtspServer::start(&["--h264", &format!("a={}", file.display())]);
    let two = RtspServer::start(&["--h264", &format!("b={}", file.display())]);
    let svc = Service::start(Config {
        service: decoding_service(),
        cameras: vec![camera("one", &one.url("a")), camera("two", &two.url("b"))],
    })
    .await;
    svc.wait_for("both cameras decode", Duration::from_secs(20), |s| {
        s.frames("one", "decoded") >= 1 && s.frames("two", "decoded") >= 1
    })
    .await;

    one.kill();
    svc.wait_for("camera one notices", Duration::from_secs(10), |s| {
        s.handles.status.get(s.index("one")).unwrap().state != CameraState::Streaming
    })
    .await;
    let two_before = svc.frames("two", "decoded");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        svc.frames("two", "decoded") > two_before,
        "camera two stopped while camera one was down"
    );

    one.restart();
    let one_before = svc.frames("one", "decoded");
    svc.wait_for("camera one streams again", Duration::from_secs(20), |s| {
        s.frames("one", "decoded") > one_before
            && s.handles.status.get(s.index("one")).unwrap().state == CameraState::Streaming
    })
    .await;
    let status = svc.handles.status.get(svc.index("one")).unwrap();
    assert!(status.reconnects >= 1);
    assert!(status.last_error.is_some());
    let text = svc.handles.metrics.render();
    assert!(
        common::metric_value(
            &text,
            "dumpwatch_camera_reconnects_total",
            &[("camera", "one")]
        ) >= 1
    );
    assert_eq!(
        common::metric_value(&text, "dumpwatch_camera_up", &[("camera", "one")]),
        1
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_caught_by_the_frame_timeout() {
    let file = media("test360");
    let server = RtspServer::start(&["--h264", &format!("a={}", file.display())]);
    let mut service = decoding_service();
    service.ingest.frame_timeout_s = 1.5;
    let svc = Service::start(Config {
        service,
        cameras: vec![camera("frozen", &server.url("a"))],
    })
    .await;
    svc.wait_for("decoding", Duration::from_secs(20), |s| {
        s.frames("frozen", "decoded") >= 1
    })
    .await;

    server.signal("STOP");
    svc.wait_for("the stall is reported", Duration::from_secs(10), |s| {
        s.handles
            .status
            .get(s.index("frozen"))
            .unwrap()
            .last_error
            .is_some_and(|e| e.contains("no video frame for 1.5 s"))
    })
    .await;
    assert_ne!(
        svc.handles.status.get(svc.index("frozen")).unwrap().state,
        CameraState::Streaming
    );
    server.signal("CONT");
    let before = svc.frames("frozen", "decoded");
    svc.wait_for(
        "decoding again after SIGCONT",
        Duration::from_secs(20),
        |s| s.frames("frozen", "decoded") > before,
    )
    .await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_codec_is_reported_and_does_not_disturb_other_cameras() {
    let file = media("test360");
    let server = RtspServer::start(&["--h264", &format!("a={}", file.display()), "--mjpeg", "mj"]);
    let svc = Service::start(Config {
        service: decoding_service(),
        cameras: vec![
            camera("mjpeg", &server.url("mj")),
            camera("h264", &server.url("a")),
        ],
    })
    .await;
    svc.wait_for("unsupported codec state", Duration::from_secs(15), |s| {
        s.handles.status.get(s.index("mjpeg")).unwrap().state == CameraState::UnsupportedCodec
    })
    .await;
    let err = svc
        .handles
        .status
        .get(svc.index("mjpeg"))
        .unwrap()
        .last_error
        .unwrap();
    assert!(err.contains("unsupported codec \"jpeg\""), "{err}");
    svc.wait_for("the H.264 camera decodes", Duration::from_secs(15), |s| {
        s.frames("h264", "decoded") >= 2
    })
    .await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_transport_can_be_selected() {
    let file = media("test360");
    let server = RtspServer::start(&["--h264", &format!("a={}", file.display())]);
    let mut cam = camera("udp", &server.url("a"));
    cam.transport = Some(Transport::Udp);
    let svc = Service::start(Config {
        service: decoding_service(),
        cameras: vec![cam],
    })
    .await;
    svc.wait_for("decoding over UDP", Duration::from_secs(20), |s| {
        s.frames("udp", "decoded") >= 2
    })
    .await;
    assert_eq!(
        svc.handles.status.get(0).unwrap().transport.as_deref(),
        Some("udp")
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_keyframe_interval_decodes_every_other_keyframe_of_a_2s_gop() {
    let file = media("test360");
    let server = RtspServer::start(&["--h264", &format!("a={}", file.display())]);
    let mut service = decoding_service();
    service.decode.min_keyframe_interval_s = 4.0;
    let svc = Service::start(Config {
        service,
        cameras: vec![camera("sparse", &server.url("a"))],
    })
    .await;
    svc.wait_for("5 keyframes received", Duration::from_secs(30), |s| {
        s.handles.status.get(0).unwrap().keyframes_received >= 5
    })
    .await;
    // Let the decoder finish the last one handed on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let keyframes = svc.handles.status.get(0).unwrap().keyframes_received;
    let decoded = svc.frames("sparse", "decoded");
    assert!(
        decoded.abs_diff(keyframes.div_ceil(2)) <= 1,
        "{decoded} decoded of {keyframes} keyframes"
    );
    assert_eq!(svc.dropped("sparse", "decode_busy"), 0);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_is_supported_too() {
    let file = media("test360");
    let server = RtspServer::start(&[
        "--h264",
        &format!("a={}", file.display()),
        "--user",
        "viewer",
        "--password",
        "b4sic-pw",
        "--auth",
        "basic",
    ]);
    let right = Some(Credentials {
        username: "viewer".into(),
        password: "b4sic-pw".into(),
    });
    let report = probe(
        &connect_opts(&server.url("a"), right),
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.decoded_size, (640, 360));
    let wrong = Some(Credentials {
        username: "viewer".into(),
        password: "nope".into(),
    });
    let err = probe(
        &connect_opts(&server.url("a"), wrong),
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ProbeError::Ingest(IngestError::Unauthorized)),
        "{err}"
    );
    let err = probe(
        &connect_opts(&server.url("a"), None),
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ProbeError::Ingest(IngestError::Unauthorized)),
        "no credentials: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_camera_whose_stream_does_not_move_decodes_only_its_refresh_keyframes() {
    let file = media("still360");
    let server = RtspServer::start(&["--h264", &format!("a={}", file.display())]);
    let mut service = fast_service();
    service.analyze.idle_refresh_s = 8.0;
    let svc = Service::start(Config {
        service,
        cameras: vec![camera("still", &server.url("a"))],
    })
    .await;
    svc.wait_for("9 keyframes received", Duration::from_secs(40), |s| {
        s.handles.status.get(0).unwrap().keyframes_received >= 9
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let keyframes = svc.handles.status.get(0).unwrap().keyframes_received;
    let decoded = svc.frames("still", "decoded");
    // A 2 s GOP refreshed every 8 s, a GOP early: every third keyframe, never none.
    assert!(
        decoded >= 2 && decoded <= keyframes.div_ceil(3) + 1,
        "{decoded} decoded of {keyframes} keyframes"
    );
    let status = svc.handles.status.get(0).unwrap();
    assert!(
        status.analysis_gap_s.is_some_and(|g| g <= 8.5),
        "analysed every refresh: {:?}",
        status.analysis_gap_s
    );
    svc.stop().await;
}

/// An H.265 camera (the GStreamer server's `h265parse ! rtph265pay`): probe names the codec and
/// its profile, measures the GOP and saves a decoded first picture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reads_an_h265_camera() {
    let file = media("test360_h265");
    let server = RtspServer::start(&["--h265", &format!("a={}", file.display())]);
    let out = tempfile::tempdir().unwrap();
    let jpeg = out.path().join("first.jpg");
    let report = probe(
        &connect_opts(&server.url("a"), None),
        Duration::from_secs(8),
        Some(&jpeg),
    )
    .await
    .unwrap();
    assert_eq!(report.info.codec, dumpwatch::codec::VideoCodec::H265);
    let codec_string = report.info.rfc6381.as_deref().unwrap_or_default();
    assert!(codec_string.starts_with("hvc1."), "{codec_string}");
    assert_eq!(dumpwatch::codec::profile_name(codec_string), Some("Main"));
    assert_eq!(report.decoded_size, (640, 360));
    assert_eq!(report.gop_frames, Some(50));
    let img = image::open(&jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (640, 360));
}

/// `check-config --probe`: every enabled camera is connected to and listed with its codec and
/// profile, or with why it cannot be watched (exit code 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_probe_lists_each_cameras_codec() {
    let h265 = media("test360_h265");
    let h264 = media("test360");
    let server = RtspServer::start(&[
        "--h265",
        &format!("a={}", h265.display()),
        "--h264",
        &format!("b={}", h264.display()),
        "--mjpeg",
        "c",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut cameras = String::new();
    for (id, path) in [("gate", "a"), ("lane", "b"), ("old", "c")] {
        cameras.push_str(&format!(
            "[[cameras]]\nid = \"{id}\"\nurl = \"{}\"\n",
            server.url(path)
        ));
    }
    std::fs::write(dir.path().join("cameras.toml"), cameras).unwrap();
    std::fs::write(dir.path().join("dumpwatch.toml"), "").unwrap();
    let out = tokio::task::spawn_blocking({
        let config = dir.path().join("dumpwatch.toml");
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_dumpwatch"))
                .args(["check-config", "--probe", "--config"])
                .arg(config)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    let line = |id: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap_or_else(|| panic!("no line for {id}: {stdout}"))
            .to_owned()
    };
    assert!(line("gate").contains("ok     H265 Main (hvc1."), "{stdout}");
    assert!(line("gate").contains("640x360"), "{stdout}");
    assert!(line("lane").contains("ok     H264 Main (avc1."), "{stdout}");
    assert!(
        line("old").contains("ERROR  unsupported codec \"jpeg\""),
        "{stdout}"
    );
    assert!(stdout.contains("1 camera(s) cannot be watched"), "{stdout}");
}
