//! Decoding real footage with libavcodec — a keyframe on its own (an idle camera) and the first
//! 50 frames of a GOP (a busy camera) — side by side with openh264 on the same H.264 access
//! units, and I420 → RGB conversion. Media from scripts/make_media.sh, each in H.264 and H.265
//! (no B-frames): `street720`, an idle noisy 720p street at 2 Mb/s (≈ 200 KB keyframes, set by
//! the noise), and OpenCV's vtest.avi with pedestrians at 720p and 360p.
//!
//!     cargo bench --bench decode

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use dumpwatch::decode::VideoDecoder;
use dumpwatch::decode::h264::H264Decoder;

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
        if common::codec_of(name) == dumpwatch::codec::VideoCodec::H264 {
            let mut openh264 = H264Decoder::new().unwrap();
            c.bench_function(&format!("keyframe/openh264/{name}"), |b| {
                b.iter(|| openh264.decode(0, &key).unwrap())
            });
            c.bench_function(&format!("gop_50_frames/openh264/{name}"), |b| {
                b.iter(|| {
                    let mut d = H264Decoder::new().unwrap();
                    for unit in &gop {
                        d.decode(0, unit).unwrap();
                    }
                })
            });
        }
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
