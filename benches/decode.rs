//! Keyframe decoding (openh264) and I420 → RGB conversion on real footage (OpenCV's vtest.avi,
//! transcoded by scripts/make_media.sh).
//!
//!     cargo bench --bench decode

use std::path::PathBuf;
use std::process::Command;
use std::time::{Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use dumpwatch::decode::H264Decoder;
use dumpwatch::ingest::EncodedFrame;

fn media(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/media");
    let path = dir.join(format!("{name}.h264"));
    if !path.exists() {
        let ok = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make_media.sh"))
            .arg(&dir)
            .arg(name)
            .status()
            .expect("scripts/make_media.sh (run scripts/setup.sh first)")
            .success();
        assert!(ok, "make_media.sh {name}");
    }
    path
}

/// The first keyframe access unit (SPS + PPS + IDR) of an Annex B file with AUDs.
fn first_keyframe(name: &str) -> Vec<u8> {
    let data = std::fs::read(media(name)).unwrap();
    let nal = |i: usize| data[i + 4] & 0x1f;
    let starts: Vec<usize> = (0..data.len() - 4).filter(|&i| data[i..i + 4] == [0, 0, 0, 1]).collect();
    let aud: Vec<usize> = starts.iter().copied().filter(|&i| nal(i) == 9).chain([data.len()]).collect();
    let unit = aud
        .windows(2)
        .map(|w| &data[w[0]..w[1]])
        .find(|au| au.windows(4).any(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 5))
        .expect("a keyframe");
    unit.to_vec()
}

fn bench(c: &mut Criterion) {
    for name in ["vtest720", "vtest360", "test360"] {
        let frame = EncodedFrame {
            data: first_keyframe(name),
            keyframe: true,
            pts_s: 0.0,
            captured_at: SystemTime::now(),
            received: Instant::now(),
            seq: 0,
        };
        let mut decoder = H264Decoder::new().unwrap();
        c.bench_function(&format!("decode_keyframe/{name}"), |b| b.iter(|| decoder.decode(0, &frame).unwrap()));
        let picture = decoder.decode(0, &frame).unwrap();
        c.bench_function(&format!("i420_to_rgb/{name}"), |b| b.iter(|| picture.to_rgb()));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
