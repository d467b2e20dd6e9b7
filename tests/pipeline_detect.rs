//! The detector inside the running service: real footage from a real RTSP server through
//! decode and detection, served fairly to every camera.

mod common;

use std::time::Duration;

use common::{RtspServer, Service, camera, fast_service, http_get, media, metric_value};
use dumpwatch::config::{Config, DecodeMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pedestrians_in_real_footage_are_detected_and_drawn() {
    let file = media("vtest360");
    let server = RtspServer::start(&["--h264", &format!("street={}", file.display())]);
    let svc = Service::start(Config {
        service: fast_service(),
        cameras: vec![camera("street", &server.url("street"))],
    })
    .await;
    let person = svc.handles.model.class_id("person").unwrap();
    // Counted by the detector, then analysed: the latest picture is set after the count.
    svc.wait_for("a person detected", Duration::from_secs(30), |s| {
        metric_value(
            &s.handles.metrics.render(),
            "dumpwatch_detections_total",
            &[("class", "person")],
        ) >= 1
            && s.handles
                .pictures
                .get(0)
                .is_some_and(|p| p.detected.detections.iter().any(|d| d.class_id == person))
    })
    .await;
    let latest = svc.handles.pictures.get(0).unwrap();
    assert!(
        latest
            .detected
            .detections
            .iter()
            .any(|d| d.class_id == person && d.zones == vec![0])
    );
    let (code, jpeg) = http_get(svc.addr, "/api/v1/cameras/street/latest.jpg").await;
    assert_eq!(code, 200);
    let img = image::load_from_memory(&jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (640, 360));
    let text = svc.handles.metrics.render();
    assert!(metric_value(&text, "dumpwatch_inference_seconds_count", &[]) >= 1);
    assert!(metric_value(&text, "dumpwatch_frame_age_seconds_count", &[]) >= 1);
    assert!(
        metric_value(
            &text,
            "dumpwatch_frames_total",
            &[("camera", "street"), ("stage", "detected")]
        ) >= 1
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_camera_is_served_when_detection_is_the_bottleneck() {
    // 6 cameras decoding every frame (6 x 25 = 150 pictures/s) into one detector session
    // (about 20/s): most pictures are superseded, but no camera may be starved.
    let file = media("test360");
    let paths: Vec<String> = (0..6).map(|i| format!("c{i}={}", file.display())).collect();
    let args: Vec<&str> = paths.iter().flat_map(|p| ["--h264", p.as_str()]).collect();
    let server = RtspServer::start(&args);
    let mut service = fast_service();
    service.decode.mode = DecodeMode::All;
    service.model.sessions = 1;
    let cams = (0..6)
        .map(|i| camera(&format!("c{i}"), &server.url(&format!("c{i}"))))
        .collect();
    let svc = Service::start(Config {
        service,
        cameras: cams,
    })
    .await;
    svc.wait_for("30 detections in total", Duration::from_secs(40), |s| {
        (0..6)
            .map(|i| s.frames(&format!("c{i}"), "detected"))
            .sum::<u64>()
            >= 30
    })
    .await;
    let base: Vec<u64> = (0..6)
        .map(|i| svc.frames(&format!("c{i}"), "detected"))
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let served: Vec<u64> = (0..6)
        .map(|i| svc.frames(&format!("c{i}"), "detected") - base[i])
        .collect();
    let (min, max) = (*served.iter().min().unwrap(), *served.iter().max().unwrap());
    assert!(
        min >= 1 && min * 2 >= max,
        "unfair detection across cameras: {served:?}"
    );
    assert!(
        (0..6)
            .map(|i| svc.dropped(&format!("c{i}"), "superseded"))
            .sum::<u64>()
            > 0,
        "the detector was not the bottleneck"
    );
    svc.stop().await;
}
