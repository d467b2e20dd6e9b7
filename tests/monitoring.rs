//! The monitoring files: the alert rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`), and the Grafana dashboard and the alerts name only metrics the
//! service exports, covering what the operations center watches.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

/// Every `dumpwatch_*` metric name the service registers (string literals in `src/`).
fn exported_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![common::root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split("\"dumpwatch_").skip(1) {
                    if let Some(end) = piece.find('"') {
                        names.insert(format!("dumpwatch_{}", &piece[..end]));
                    }
                }
            }
        }
    }
    names
}

/// The metric names in a query text, without histogram suffixes.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for piece in text.split("dumpwatch_").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let name = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| {
            n.strip_suffix(s).map(str::to_owned).unwrap_or(n)
        });
        out.insert(format!("dumpwatch_{name}"));
    }
    out
}

fn promtool(args: &[&str]) {
    let dir = common::root().join("config/prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("running promtool (Debian package prometheus: run scripts/setup.sh --test)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts.test.yml"]);
    promtool(&["check", "config", "prometheus.yml"]);
}

#[test]
fn the_alerts_cover_camera_down_backlog_failing_delivery_and_slow_inference() {
    let text =
        std::fs::read_to_string(common::root().join("config/prometheus/alerts.yml")).unwrap();
    for alert in [
        "DumpwatchCameraDown",
        "DumpwatchOutboxBacklog",
        "DumpwatchDeliveryFailing",
        "DumpwatchInferenceSlow",
    ] {
        assert!(
            text.contains(&format!("alert: {alert}")),
            "alerts.yml lacks {alert}"
        );
    }
    let exported = exported_metrics();
    for name in referenced(&text) {
        assert!(
            exported.contains(&name),
            "alerts.yml names {name}, which the service does not export"
        );
    }
}

#[test]
fn the_grafana_dashboard_shows_the_hot_path_cameras_drops_incidents_and_delivery() {
    let path = common::root().join("config/grafana/dumpwatch.json");
    let dash: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut all = String::new();
    for p in panels {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate panel id at {title:?}"
        );
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for t in targets {
            all.push_str(t["expr"].as_str().unwrap());
            all.push('\n');
        }
    }
    let exported = exported_metrics();
    let used = referenced(&all);
    for name in &used {
        assert!(
            exported.contains(name),
            "the dashboard names {name}, which the service does not export"
        );
    }
    for name in [
        "dumpwatch_inference_seconds",
        "dumpwatch_frame_age_seconds",
        "dumpwatch_camera_up",
        "dumpwatch_frames_dropped_total",
        "dumpwatch_incidents_total",
        "dumpwatch_delivery_attempts_total",
        "dumpwatch_delivery_latency_seconds",
        "dumpwatch_outbox_pending",
    ] {
        assert!(used.contains(name), "the dashboard does not show {name}");
    }
    assert!(
        panels.iter().any(|p| p["type"] == "heatmap"
            && p["targets"][0]["expr"]
                .as_str()
                .unwrap()
                .contains("dumpwatch_inference_seconds_bucket")),
        "no inference latency heatmap"
    );
    assert!(all.contains("histogram_quantile(0.95") && all.contains("histogram_quantile(0.5"));
}

#[test]
fn every_metric_of_the_architecture_is_exported() {
    let exported = exported_metrics();
    for name in [
        "inference_seconds",
        "preprocess_seconds",
        "postprocess_seconds",
        "decode_seconds",
        "frame_age_seconds",
        "delivery_latency_seconds",
        "frames_total",
        "frames_dropped_total",
        "camera_reconnects_total",
        "incidents_total",
        "delivery_attempts_total",
        "camera_up",
        "outbox_pending",
    ] {
        assert!(
            exported.contains(&format!("dumpwatch_{name}")),
            "dumpwatch_{name} is not exported"
        );
    }
}
