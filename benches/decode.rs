//! Keyframe decoding (openh264) and I420 → RGB conversion on real footage (OpenCV's vtest.avi,
//! transcoded by scripts/make_media.sh).
//!
//!     cargo bench --bench decode

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use dumpwatch::decode::H264Decoder;

fn bench(c: &mut Criterion) {
    for name in ["vtest720", "vtest360", "test360"] {
        let frame = common::first_keyframe(name);
        let mut decoder = H264Decoder::new().unwrap();
        c.bench_function(&format!("decode_keyframe/{name}"), |b| {
            b.iter(|| decoder.decode(0, &frame).unwrap())
        });
        let picture = decoder.decode(0, &frame).unwrap();
        c.bench_function(&format!("i420_to_rgb/{name}"), |b| {
            b.iter(|| picture.to_rgb())
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
