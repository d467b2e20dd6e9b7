//! The detector against an independent reference (Python onnxruntime + numpy, see
//! scripts/reference_detections.py) on real photos, and its handling of bad input.

use std::path::{Path, PathBuf};

use dumpwatch::config::ModelConfig;
use dumpwatch::detect::{BBox, DetectError, Detector};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_config() -> ModelConfig {
    ModelConfig {
        path: root().join("models/yolov12n.onnx"),
        ..ModelConfig::default()
    }
}

fn photo(name: &str) -> image::RgbImage {
    let path = Path::new("/usr/share/darknet/data").join(name);
    image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", path.display()))
        .to_rgb8()
}

fn iou(a: &BBox, b: [f64; 4]) -> f64 {
    let b = BBox {
        x1: b[0] as f32,
        y1: b[1] as f32,
        x2: b[2] as f32,
        y2: b[3] as f32,
    };
    f64::from(a.iou(&b))
}

/// Scores may differ by this much (JPEG decoders and resize kernels differ in the last bit).
const SCORE_TOLERANCE: f64 = 0.02;
const IOU_MIN: f64 = 0.95;

#[test]
fn detections_match_the_python_reference() {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/reference_detections.json")).unwrap(),
    )
    .unwrap();
    let conf = reference["confidence"].as_f64().unwrap();
    let mut detector = Detector::load(&model_config()).unwrap();
    assert_eq!(
        detector.info().sha256,
        reference["model_sha256"].as_str().unwrap(),
        "the reference was made with another model"
    );
    let mut compared = 0;
    for (name, expected) in reference["images"].as_object().unwrap() {
        let img = photo(name);
        let got = detector.detect_rgb(&img, &[]).unwrap().detections;
        let want = expected["detections"].as_array().unwrap();
        let mut used = vec![false; got.len()];
        for w in want {
            let class = w["class_id"].as_u64().unwrap() as usize;
            let score = w["score"].as_f64().unwrap();
            let bbox: Vec<f64> = w["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let bbox = [bbox[0], bbox[1], bbox[2], bbox[3]];
            let found = got
                .iter()
                .enumerate()
                .find(|(i, g)| !used[*i] && g.class_id == class && iou(&g.bbox, bbox) >= IOU_MIN);
            match found {
                Some((i, g)) => {
                    used[i] = true;
                    assert!(
                        (f64::from(g.score) - score).abs() <= SCORE_TOLERANCE,
                        "{name}: {} scored {} in Rust, {score} in the reference",
                        w["class"],
                        g.score
                    );
                    compared += 1;
                }
                // A detection within the tolerance of the threshold may fall on either side of it.
                None if score < conf + SCORE_TOLERANCE => {}
                None => panic!(
                    "{name}: missing {} {score:.3} {bbox:?}; got {got:?}",
                    w["class"]
                ),
            }
        }
        for (g, used) in got.iter().zip(&used) {
            assert!(
                *used || f64::from(g.score) < conf + SCORE_TOLERANCE,
                "{name}: extra detection {:?} not in the reference",
                g
            );
        }
    }
    assert!(compared >= 20, "only {compared} detections compared");
}

/// A picture as the decoder would deliver it: I420, BT.601 limited range.
fn i420(img: &image::RgbImage) -> dumpwatch::decode::DecodedFrame {
    use std::time::{Instant, SystemTime};
    let (w, h) = img.dimensions();
    let mut y = vec![0u8; (w * h) as usize];
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut u = vec![0u8; (cw * ch) as usize];
    let mut v = vec![0u8; (cw * ch) as usize];
    for (x, yy, p) in img.enumerate_pixels() {
        let [r, g, b] = p.0.map(f32::from);
        y[(yy * w + x) as usize] = (16.0 + 0.257 * r + 0.504 * g + 0.098 * b).round() as u8;
        if x % 2 == 0 && yy % 2 == 0 {
            let i = ((yy / 2) * cw + x / 2) as usize;
            u[i] = (128.0 - 0.148 * r - 0.291 * g + 0.439 * b).round() as u8;
            v[i] = (128.0 + 0.439 * r - 0.368 * g - 0.071 * b).round() as u8;
        }
    }
    dumpwatch::decode::DecodedFrame::from_planes(
        0,
        SystemTime::now(),
        Instant::now(),
        0.0,
        true,
        (w, h),
        (&y, &u, &v),
        (w as usize, cw as usize, cw as usize),
    )
    .unwrap()
}

#[test]
fn the_pipeline_path_from_i420_finds_the_same_objects() {
    let img = photo("dog.jpg");
    let frame = i420(&img);
    let mut detector = Detector::load(&model_config()).unwrap();
    let from_rgb = detector.detect_rgb(&img, &[]).unwrap().detections;
    let from_i420 = detector.detect_frame(&frame, &[]).unwrap().detections;
    let classes = |d: &[dumpwatch::detect::Detection]| {
        let mut c: Vec<_> = d
            .iter()
            .filter(|d| d.score > 0.5)
            .map(|d| d.class_id)
            .collect();
        c.sort();
        c
    };
    assert_eq!(classes(&from_rgb), classes(&from_i420));
    for a in from_rgb.iter().filter(|d| d.score > 0.5) {
        assert!(
            from_i420
                .iter()
                .any(|b| b.class_id == a.class_id && b.bbox.iou(&a.bbox) > 0.9),
            "{a:?} not found from I420"
        );
    }
}

#[test]
fn a_missing_model_names_the_file_and_the_setup_command() {
    let cfg = ModelConfig {
        path: "/nonexistent/model.onnx".into(),
        ..model_config()
    };
    let err = Detector::load(&cfg).err().unwrap().to_string();
    assert!(
        err.contains("/nonexistent/model.onnx") && err.contains("scripts/setup.sh"),
        "{err}"
    );
}

#[test]
fn a_corrupted_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.onnx");
    let mut bytes = std::fs::read(root().join("models/yolov12n.onnx")).unwrap();
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&path, &bytes).unwrap();
    let err = Detector::load(&ModelConfig {
        path: path.clone(),
        ..model_config()
    })
    .err()
    .unwrap();
    assert!(matches!(err, DetectError::Model { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("broken.onnx") && text.contains("cannot load"),
        "{text}"
    );

    std::fs::write(&path, b"this is not a model").unwrap();
    let err = Detector::load(&ModelConfig {
        path: path.clone(),
        ..model_config()
    })
    .err()
    .unwrap();
    assert!(matches!(err, DetectError::Model { .. }), "{err}");
}

#[test]
fn a_model_with_an_unexpected_output_shape_is_refused() {
    let cfg = ModelConfig {
        path: root().join("tests/fixtures/wrong_output_shape.onnx"),
        ..model_config()
    };
    let err = Detector::load(&cfg).err().unwrap().to_string();
    assert!(err.contains("wrong_output_shape.onnx"), "{err}");
    assert!(
        err.contains("[1, 3]") && err.contains("[1, 4 + classes, anchors]"),
        "{err}"
    );
}

#[test]
fn an_unknown_class_in_the_thresholds_is_named_with_its_config_path() {
    let mut cfg = model_config();
    cfg.class_confidence.insert("garbage bag".into(), 0.3);
    let err = Detector::load(&cfg).err().unwrap().to_string();
    assert!(
        err.starts_with("model.class_confidence.garbage bag: the model has no class"),
        "{err}"
    );
    // After a rename, the new name is the one to use.
    let mut cfg = model_config();
    cfg.rename.insert("handbag".into(), "bag".into());
    cfg.class_confidence.insert("bag".into(), 0.3);
    let detector = Detector::load(&cfg).unwrap();
    assert_eq!(detector.info().class_id("bag"), Some(26));
}

#[test]
fn empty_grey_rgba_and_huge_pictures_are_handled() {
    let mut detector = Detector::load(&model_config()).unwrap();
    let err = detector
        .detect_rgb(&image::RgbImage::new(0, 0), &[])
        .unwrap_err();
    assert!(matches!(err, DetectError::BadImage(_)), "{err}");

    let dog = image::DynamicImage::ImageRgb8(photo("dog.jpg"));
    let expect_dog =
        |d: &[dumpwatch::detect::Detection]| d.iter().any(|d| d.class_id == 16 && d.score > 0.5);
    // Grey and RGBA pictures are converted to RGB first (as `dumpwatch detect` does).
    let grey = image::DynamicImage::ImageLuma8(dog.to_luma8()).to_rgb8();
    assert!(expect_dog(
        &detector.detect_rgb(&grey, &[]).unwrap().detections
    ));
    let rgba = image::DynamicImage::ImageRgba8(dog.to_rgba8()).to_rgb8();
    assert!(expect_dog(
        &detector.detect_rgb(&rgba, &[]).unwrap().detections
    ));

    // 8000x8000: the dog pasted in the middle of a grey canvas.
    let mut huge = image::RgbImage::from_pixel(8000, 8000, image::Rgb([90, 90, 90]));
    let big_dog = image::imageops::resize(
        &dog.to_rgb8(),
        3840,
        2880,
        image::imageops::FilterType::Triangle,
    );
    image::imageops::overlay(&mut huge, &big_dog, 2080, 2560);
    let d = detector.detect_rgb(&huge, &[]).unwrap();
    // Smaller in the 640x640 input, the dog is less sure; the bicycle stays clear.
    assert!(
        d.detections
            .iter()
            .any(|d| d.class_id == 1 && d.score > 0.5),
        "{:?}",
        d.detections
    );
    assert!(
        d.detections.iter().any(|d| d.class_id == 16),
        "{:?}",
        d.detections
    );
    for det in &d.detections {
        assert!(det.bbox.x1 >= 0.0 && det.bbox.x2 <= 8000.0 && det.bbox.y2 <= 8000.0);
    }
    // A 1-pixel-wide picture still letterboxes.
    let thin = image::RgbImage::from_pixel(1, 900, image::Rgb([10, 200, 10]));
    detector.detect_rgb(&thin, &[]).unwrap();
}

fn solid_frame(
    camera: usize,
    (w, h): (u32, u32),
    yuv: (u8, u8, u8),
    gradient: bool,
) -> dumpwatch::decode::DecodedFrame {
    use std::time::{Instant, SystemTime};
    let y: Vec<u8> = (0..w * h)
        .map(|i| {
            if gradient {
                yuv.0.saturating_add(((i % w) * 100 / w) as u8)
            } else {
                yuv.0
            }
        })
        .collect();
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let u = vec![yuv.1; (cw * ch) as usize];
    let v = vec![yuv.2; (cw * ch) as usize];
    dumpwatch::decode::DecodedFrame::from_planes(
        camera,
        SystemTime::now(),
        Instant::now(),
        0.0,
        true,
        (w, h),
        (&y, &u, &v),
        (w as usize, cw as usize, cw as usize),
    )
    .unwrap()
}

fn tiny_model() -> ModelConfig {
    ModelConfig {
        path: root().join("tests/fixtures/tiny_dynamic_batch_detector.onnx"),
        confidence: 0.05,
        ..ModelConfig::default()
    }
}

#[test]
fn a_dynamic_batch_model_gives_the_same_detections_batched_as_one_by_one() {
    let mut detector = Detector::load(&tiny_model()).unwrap();
    let info = detector.info().clone();
    assert!(info.dynamic_batch);
    assert_eq!(info.class_names, vec!["green", "blue"]);
    assert_eq!(info.input_size, (32, 32));
    let frames = [
        // Square pictures (the fixture's boxes sit near the origin, which padding would cover), in
        // colours whose R, G and B are all well above 0 (R is the fixture's box height).
        solid_frame(0, (64, 64), (120, 90, 200), true),
        solid_frame(1, (32, 32), (140, 130, 120), false),
        solid_frame(2, (96, 96), (100, 150, 140), true),
    ];
    let zones: Vec<&[dumpwatch::geometry::Polygon]> = vec![&[]; 3];
    let refs: Vec<_> = frames.iter().collect();
    let batched = detector.detect_batch(&refs, &zones).unwrap();
    assert_eq!(batched.len(), 3);
    for (frame, b) in frames.iter().zip(&batched) {
        let single = detector.detect_frame(frame, &[]).unwrap();
        assert!(
            !single.detections.is_empty(),
            "the fixture should detect something"
        );
        assert_eq!(single.letterbox, b.letterbox);
        assert_eq!(single.detections.len(), b.detections.len());
        for (s, b) in single.detections.iter().zip(&b.detections) {
            assert_eq!(s.class_id, b.class_id);
            assert!(
                (s.score - b.score).abs() < 1e-5 && s.bbox.iou(&b.bbox) > 0.999,
                "{s:?} vs {b:?}"
            );
        }
    }
    // Different pictures give different detections: the batch really carries three images.
    assert_ne!(batched[0].detections, batched[1].detections);
}

/// Runs a detect pool over `cameras` cameras with one picture each, returns (runs, pictures).
fn pool_runs(model: ModelConfig, cameras: usize, max_batch: usize, size: (u32, u32)) -> (u64, u64) {
    use dumpwatch::detect::worker::{DetectPool, FrameDetections};
    use dumpwatch::slots::LatestSlots;
    use std::sync::{Arc, Mutex};
    let metrics = dumpwatch::metrics::Metrics::new();
    let cams: Arc<dumpwatch::slots::SlotTable<_>> = Arc::new(
        (0..cameras)
            .map(|i| Arc::new(metrics.camera(&format!("c{i}"))))
            .collect(),
    );
    let slots = Arc::new(LatestSlots::new(cameras));
    for c in 0..cameras {
        slots.put(
            c,
            solid_frame(c, size, (100 + c as u8 * 10, 120, 140), true),
        );
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let seen = seen.clone();
        Arc::new(move |r: FrameDetections| seen.lock().unwrap().push(r.camera))
    };
    let detector = Detector::load(&model).unwrap();
    let zones = Arc::new((0..cameras).map(|_| Arc::new(vec![])).collect());
    let pool = DetectPool::start(
        vec![detector],
        slots.clone(),
        zones,
        sink,
        metrics.detect().clone(),
        cams,
        max_batch,
        std::sync::Arc::new(dumpwatch::detect::worker::Pacer::new(0.0)),
    );
    pool.shutdown();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        (0..cameras).collect::<Vec<_>>(),
        "every camera served once"
    );
    (
        metrics.detect().inference.get_sample_count(),
        cameras as u64,
    )
}

#[test]
fn the_pool_batches_dynamic_models_and_pairs_only_wide_pictures_of_fixed_batch_ones() {
    let (runs, pictures) = pool_runs(tiny_model(), 6, 4, (64, 48));
    assert!(
        runs < pictures,
        "{runs} runs for {pictures} pictures: no batching happened"
    );
    assert!(runs >= 2, "at most 4 pictures per run");
    // YOLOv12n has a fixed batch of 1: one run per 4:3 picture whatever max_batch says...
    let (runs, pictures) = pool_runs(model_config(), 3, 8, (64, 48));
    assert_eq!(runs, pictures);
    // ... and without the mosaic, one per wide picture too.
    let alone = ModelConfig {
        mosaic: false,
        ..model_config()
    };
    let (runs, pictures) = pool_runs(alone, 4, 8, (128, 72));
    assert_eq!(runs, pictures);
    // With it (the default), wide pictures two to a run.
    let (runs, pictures) = pool_runs(model_config(), 4, 8, (128, 72));
    assert!(
        runs < pictures && runs >= 2,
        "{runs} runs for {pictures} wide pictures"
    );
}

/// A panic in a detect worker (here in the code it hands detections to) is counted and the
/// worker starts over: the next cameras' pictures are still detected and delivered.
#[test]
fn a_detect_worker_that_panics_starts_over() {
    use dumpwatch::detect::worker::{DetectPool, FrameDetections};
    use dumpwatch::slots::LatestSlots;
    use std::sync::{Arc, Mutex};
    let metrics = dumpwatch::metrics::Metrics::new();
    let cams: Arc<dumpwatch::slots::SlotTable<_>> = Arc::new(
        (0..3)
            .map(|i| Arc::new(metrics.camera(&format!("c{i}"))))
            .collect(),
    );
    let slots = Arc::new(LatestSlots::new(3));
    for c in 0..3 {
        slots.put(c, solid_frame(c, (64, 48), (100, 120, 140), true));
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let seen = seen.clone();
        Arc::new(move |r: FrameDetections| {
            let mut seen = seen.lock().unwrap();
            seen.push(r.camera);
            if seen.len() == 1 {
                drop(seen);
                panic!("a bug met on camera {}", r.camera);
            }
        })
    };
    let zones = Arc::new((0..3).map(|_| Arc::new(vec![])).collect());
    let pool = DetectPool::start(
        vec![Detector::load(&model_config()).unwrap()],
        slots,
        zones,
        sink,
        metrics.detect().clone(),
        cams,
        1,
        std::sync::Arc::new(dumpwatch::detect::worker::Pacer::new(0.0)),
    );
    pool.shutdown();
    assert_eq!(seen.lock().unwrap().len(), 3, "every camera still served");
    assert_eq!(metrics.detect().panics.get(), 1);
    assert!(
        metrics
            .render()
            .contains("dumpwatch_worker_panics_total{stage=\"detect\"} 1")
    );
}

/// The objects scored over 0.5, as (class, box).
fn confident(d: &[dumpwatch::detect::Detection]) -> Vec<(usize, BBox)> {
    d.iter()
        .filter(|d| d.score > 0.5)
        .map(|d| (d.class_id, d.bbox))
        .collect()
}

/// Whether every object of `a` is in `b` (same class, boxes overlapping more than `iou`).
fn all_found(a: &[(usize, BBox)], b: &[dumpwatch::detect::Detection], iou: f32) -> bool {
    a.iter().all(|(c, bb)| {
        b.iter()
            .any(|d| d.class_id == *c && d.score > 0.3 && d.bbox.iou(bb) > iou)
    })
}

#[test]
fn two_wide_pictures_in_one_run_find_what_each_finds_alone() {
    use dumpwatch::detect::Tile;
    // 16:9 crops of two photos (dog.jpg 768x576, horses.jpg 773x512), and a 4:3 one.
    let crop = |name: &str| {
        let img = photo(name);
        let (w, h) = img.dimensions();
        let h169 = (w * 9 / 16) & !1;
        image::imageops::crop_imm(&img, 0, (h - h169) / 2, w & !1, h169).to_image()
    };
    let (dog, horses) = (i420(&crop("dog.jpg")), i420(&crop("horses.jpg")));
    let square = i420(&photo("dog.jpg"));
    let mut alone = Detector::load(&model_config()).unwrap();
    let mut mosaic = Detector::load(&ModelConfig {
        mosaic: true,
        ..model_config()
    })
    .unwrap();
    assert_eq!(mosaic.pictures_per_run((1280, 720), 8), 2);
    assert_eq!(mosaic.pictures_per_run((704, 576), 8), 1);
    assert!(mosaic.shares_runs((1280, 720)) && !mosaic.shares_runs((704, 576)));
    let [top, bottom] = Tile::halves(mosaic.info().input_size);

    let pair = mosaic.detect_many(&[&dog, &horses], &[&[], &[]]).unwrap();
    assert_eq!(
        (pair[0].letterbox.tile, pair[1].letterbox.tile),
        (top, bottom)
    );
    for (frame, shared) in [(&dog, &pair[0]), (&horses, &pair[1])] {
        let full = confident(&alone.detect_frame(frame, &[]).unwrap().detections);
        assert!(full.len() >= 2, "{full:?}");
        // At 89 % of the scale the same objects are found, in the same places.
        assert!(
            all_found(&full, &shared.detections, 0.8),
            "{full:?} vs {:?}",
            shared.detections
        );
        // A wide picture alone still gets a half: what it shows does not depend on a partner.
        let single = mosaic.detect_frame(frame, &[]).unwrap();
        assert_eq!(single.letterbox.tile, top);
        assert!(all_found(
            &confident(&shared.detections),
            &single.detections,
            0.9
        ));
    }
    // A 4:3 picture keeps the whole input.
    let d = mosaic.detect_many(&[&square, &dog], &[&[], &[]]).unwrap();
    assert_eq!(d[0].letterbox.tile, Tile::whole(mosaic.info().input_size));
    assert_eq!(d[1].letterbox.tile, top);
}
