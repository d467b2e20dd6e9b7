//! The detector's steps on real pictures: preprocessing a 720p frame (I420 from the decoder, and
//! RGB), postprocessing the 8400 candidates of a real output, and a whole detection.
//!
//!     cargo bench --bench detect

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use dumpwatch::config::ModelConfig;
use dumpwatch::detect::{
    Detector, Engine, Letterbox, PostprocessConfig, Postprocessor, Preprocessor, postprocess_config,
};

fn bench(c: &mut Criterion) {
    let frame = common::decoded_keyframe("vtest720");
    let rgb = frame.to_rgb();
    let mut pre = Preprocessor::new((640, 640));
    c.bench_function("preprocess/i420_720p_to_640", |b| {
        b.iter(|| pre.fill_i420(&frame).unwrap())
    });
    c.bench_function("preprocess/rgb_720p_to_640", |b| {
        b.iter(|| pre.fill_rgb(rgb.as_raw(), 1280, 720).unwrap())
    });

    let cfg = ModelConfig::default();
    let mut engine = Engine::load(&cfg).expect("the model (run scripts/setup.sh)");
    let info = engine.info().clone();
    let lb = pre.fill_i420(&frame).unwrap();
    let output: Vec<f32> = engine.run(pre.tensor(), 1, |o| o.to_vec()).unwrap();
    let post_cfg: PostprocessConfig = postprocess_config(&cfg, &info).unwrap();
    let mut post = Postprocessor::default();
    c.bench_function("postprocess/8400_candidates", |b| {
        b.iter(|| post.run(&output, info.layout, &lb, &post_cfg, &[]))
    });
    // Worst case: a threshold so low that every anchor is a candidate for NMS.
    let mut loose = post_cfg.clone();
    loose.class_threshold.iter_mut().for_each(|t| *t = 0.01);
    c.bench_function("postprocess/8400_candidates_conf_0.01", |b| {
        b.iter(|| post.run(&output, info.layout, &lb, &loose, &[]))
    });
    let _: Letterbox = lb;

    c.bench_function("inference/session_run_1_thread", |b| {
        b.iter(|| engine.run(pre.tensor(), 1, |o| o.len()).unwrap())
    });
    let mut detector = Detector::load(&cfg).unwrap();
    c.bench_function("detect/frame_720p_end_to_end", |b| {
        b.iter(|| detector.detect_frame(&frame, &[]).unwrap())
    });
    let dog = common::photo("dog.jpg");
    c.bench_function("detect/dog_jpg_rgb", |b| {
        b.iter(|| detector.detect_rgb(&dog, &[]).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
