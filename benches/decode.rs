//! Decoding real footage with libavcodec — a keyframe on its own (an idle camera) and the first
//! 50 frames of a GOP (a busy camera) — and I420 → RGB conversion. (openh264, the decoder before
//! libavcodec, was measured side by side here before it was removed: docs/performance.md.) Media from scripts/make_media.sh, each in H.264 and H.265
//! (no B-frames): `street720`, an idle noisy 720p street at 2 Mb/s (≈ 200 KB keyframes, set by
//! the noise), and OpenCV's vtest.avi with pedestrians at 720p and 360p.
//!
//!     cargo bench --bench decode

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use dumpwatch::decode::VideoDecoder;

fn bench(c: &mut Criterion) {
    for name in [
        "street720",
        "street720_h265",
        "vtest720",
        "vtest360",
        "vtest720_h265",
        "vtest360_h265",
    ] {
        let key = common::first_keyframe(name);
        let gop: Vec<_> = common::access_units(name).into_iter().take(50).collect();
        let mut libav = VideoDecoder::new().unwrap();
        c.bench_function(&format!("keyframe/libavcodec/{name}"), |b| {
            b.iter(|| libav.decode(0, &key).unwrap())
        });
        c.bench_function(&format!("gop_50_frames/libavcodec/{name}"), |b| {
            b.iter(|| {
                let mut d = VideoDecoder::new().unwrap();
                for unit in &gop {
                    d.decode(0, unit).unwrap();
                }
            })
        });
        let picture = libav.decode(0, &key).unwrap();
        c.bench_function(&format!("i420_to_rgb/{name}"), |b| {
            b.iter(|| picture.to_rgb())
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
