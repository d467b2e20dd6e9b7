//! Helpers shared by the benchmarks: real test media and a decoded keyframe.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Instant, SystemTime};

use dumpwatch::decode::{DecodedFrame, H264Decoder};
use dumpwatch::ingest::EncodedFrame;

/// An H.264 file made by scripts/make_media.sh (cached in target/media).
pub fn media(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/media");
    let path = dir.join(format!("{name}.h264"));
    if !path.exists() {
        let ok = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/make_media.sh"
        ))
        .arg(&dir)
        .arg(name)
        .status()
        .expect("scripts/make_media.sh (run scripts/setup.sh first)")
        .success();
        assert!(ok, "make_media.sh {name}");
    }
    path
}

/// The first keyframe access unit (SPS + PPS + IDR) of a file with access unit delimiters.
pub fn first_keyframe(name: &str) -> EncodedFrame {
    let data = std::fs::read(media(name)).unwrap();
    let starts: Vec<usize> = (0..data.len() - 4)
        .filter(|&i| data[i..i + 4] == [0, 0, 0, 1] && data[i + 4] & 0x1f == 9)
        .collect();
    let bounds: Vec<usize> = starts.into_iter().chain([data.len()]).collect();
    let unit = bounds
        .windows(2)
        .map(|w| &data[w[0]..w[1]])
        .find(|au| {
            au.windows(4)
                .any(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 5)
        })
        .expect("a keyframe");
    EncodedFrame {
        data: unit.to_vec(),
        keyframe: true,
        pts_s: 0.0,
        captured_at: SystemTime::now(),
        received: Instant::now(),
        seq: 0,
        all_frames: false,
    }
}

/// The first keyframe of `name`, decoded.
pub fn decoded_keyframe(name: &str) -> DecodedFrame {
    H264Decoder::new()
        .unwrap()
        .decode(0, &first_keyframe(name))
        .unwrap()
}

/// A photo from Debian's darknet package.
pub fn photo(name: &str) -> image::RgbImage {
    image::open(format!("/usr/share/darknet/data/{name}"))
        .expect("darknet photos (run scripts/setup.sh)")
        .to_rgb8()
}
