//! `replay` and `eval` on generated scenario clips: real footage (vtest.avi) with composited
//! objects, the real decoder, detector and analyzer. Short dwell and clearing times keep the
//! clips short.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

fn dumpwatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dumpwatch"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env("RUST_LOG", "warn");
    c
}

/// Runs `cmd`, asserts it succeeded (showing its output if not) and returns its stdout.
fn succeeds(cmd: &mut Command) -> String {
    let run = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

/// The small scenario set of `scripts/make_scenarios.py --set small` (cached under target/).
fn small_set() -> PathBuf {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    let _guard = LOCK
        .get_or_init(|| Mutex::new(()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scenarios-small");
    let status = Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/make_scenarios.py"))
        .arg(&dir)
        .args(["--set", "small"])
        .status()
        .expect(
            "running scripts/make_scenarios.py (needs python3 and ffmpeg: run scripts/setup.sh)",
        );
    assert!(status.success(), "make_scenarios.py failed");
    dir
}

const SHORT: [&str; 4] = ["--set", "dwell_s=10", "--set", "clear_after_s=10"];

#[test]
fn replay_prints_the_incident_and_writes_its_pictures() {
    let set = small_set();
    let out = tempfile::tempdir().unwrap();
    let stdout = succeeds(
        dumpwatch()
            .arg("replay")
            .arg(set.join("clips/t01_bag_left.mp4"))
            .args(SHORT)
            .arg("--json")
            .arg("--out")
            .arg(out.path()),
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{stdout}");
    let e = &events[0];
    assert_eq!(e["kind"], "raised");
    // The bag is put down at 9 s next to (338, 238), 44 x 34 px.
    let at = e["at"].as_f64().unwrap();
    assert!(
        (19.0..=24.0).contains(&at),
        "raised at {at}: dwell 10 s after the owner left"
    );
    let b = &e["objects"][0]["bbox"];
    let (x1, y1, x2, y2) = (
        b["x1"].as_f64().unwrap(),
        b["y1"].as_f64().unwrap(),
        b["x2"].as_f64().unwrap(),
        b["y2"].as_f64().unwrap(),
    );
    assert!(
        x1 < 360.0 && x2 > 360.0 && y1 < 255.0 && y2 > 255.0,
        "box {b} misses the bag"
    );
    for role in ["before", "event", "actor"] {
        let p = out
            .path()
            .join(format!("t01_bag_left/incident-1-raised-{role}.jpg"));
        let img = image::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!((img.width(), img.height()), (768, 576));
    }
}

#[test]
fn eval_scores_the_small_set_and_sweeps_with_a_plot() {
    let set = small_set();
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("eval.json");
    let stdout = succeeds(
        dumpwatch()
            .args(["eval", "--dataset"])
            .arg(&set)
            .args(SHORT)
            .arg("--json")
            .arg(&json),
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let s = &result["summary"];
    let (precision, recall) = (
        s["precision"].as_f64().unwrap(),
        s["recall"].as_f64().unwrap(),
    );
    // Floors at the level measured when this test was written (docs/evaluation.md): no false
    // alarm; the low-contrast white sack of t04 is raised, its removal not yet seen.
    assert_eq!(precision, 1.0, "precision\n{stdout}");
    assert!(recall >= 0.6, "recall {recall}\n{stdout}");
    let clips = result["clips"].as_array().unwrap();
    assert_eq!(clips.len(), 6);
    let clip = |name: &str| {
        clips
            .iter()
            .find(|c| c["file"].as_str().unwrap().contains(name))
            .unwrap_or_else(|| panic!("{name} not scored: {result}"))
    };
    let scored = |name: &str| {
        let c = clip(name);
        (c["true_positives"].as_u64(), c["false_alarms"].as_u64())
    };
    // A bag taken away again, and a change of light, are not incidents.
    for name in ["t02_bag_picked_up", "t03_light_change"] {
        let c = clip(name);
        assert_eq!(c["events"].as_array().unwrap().len(), 0, "{name}: {c}");
    }
    assert_eq!(scored("t01_bag_left"), (Some(1), Some(0)));
    // Rubble as bright as the grass it lies on: found by its colour, once.
    assert_eq!(
        scored("t05_rubble_on_grass"),
        (Some(1), Some(0)),
        "{}",
        clip("t05_rubble_on_grass")
    );
    assert!(
        stdout.contains("precision") && stdout.contains("t01_bag_left"),
        "{stdout}"
    );
    // The camera turned at 15 s: the analyzer says so (within 60 s), raises nothing, and no
    // other clip's view is lost.
    let turned = clip("t06_turned");
    assert_eq!(turned["events"].as_array().unwrap().len(), 0, "{turned}");
    assert_eq!(turned["view_as_labelled"], true, "{turned}");
    assert_eq!(s["views_not_as_labelled"], 0, "{stdout}");

    // A sweep re-uses the detections of the first value: two runs, one plot.
    let plot = out.path().join("sweep.png");
    let stdout = succeeds(
        dumpwatch()
            .args(["eval", "--dataset"])
            .arg(&set)
            .args([
                "--set",
                "clear_after_s=10",
                "--sweep",
                "dwell_s=10:14:4",
                "--jobs",
                "2",
                "--plot",
            ])
            .arg(&plot),
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("dwell_s = "))
            .count(),
        2,
        "{stdout}"
    );
    let img = image::open(&plot).unwrap();
    assert_eq!((img.width(), img.height()), (900, 540));
}

#[test]
fn bad_eval_arguments_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let run = dumpwatch()
        .args(["eval", "--dataset"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("labels.toml"), "{stderr}");
    let run = dumpwatch()
        .args(["eval", "--dataset", ".", "--set", "dwel_s=3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("unknown key \"dwel_s\""), "{stderr}");
    let run = dumpwatch().args(["replay", "Cargo.toml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("Cargo.toml") && stderr.contains("MP4"),
        "{stderr}"
    );
}
