//! Helpers shared by the benchmarks: real test media and a decoded keyframe.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Instant, SystemTime};

use dumpwatch::codec::{NalKind, VideoCodec};
use dumpwatch::decode::{DecodedFrame, VideoDecoder};
use dumpwatch::ingest::EncodedFrame;

/// The codec of a test media name (`…_h265` is H.265).
pub fn codec_of(name: &str) -> VideoCodec {
    if name.ends_with("_h265") {
        VideoCodec::H265
    } else {
        VideoCodec::H264
    }
}

/// An Annex B file made by scripts/make_media.sh (cached in target/media).
pub fn media(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/media");
    let path = dir.join(format!("{name}.{}", codec_of(name).name()));
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

/// Every access unit of a file with access unit delimiters, in order, as one camera's run of
/// every frame.
pub fn access_units(name: &str) -> Vec<EncodedFrame> {
    let codec = codec_of(name);
    let data = std::fs::read(media(name)).unwrap();
    let starts: Vec<usize> = (0..data.len() - 4)
        .filter(|&i| {
            data[i..i + 4] == [0, 0, 0, 1] && codec.nal_kind(&data[i + 4..]) == NalKind::Delimiter
        })
        .collect();
    let bounds: Vec<usize> = starts.into_iter().chain([data.len()]).collect();
    bounds
        .windows(2)
        .enumerate()
        .map(|(seq, w)| {
            let unit = &data[w[0]..w[1]];
            EncodedFrame {
                data: unit.into(),
                keyframe: codec.is_random_access(unit),
                pts_s: seq as f64 / 25.0,
                captured_at: SystemTime::now(),
                received: Instant::now(),
                seq: seq as u64,
                all_frames: true,
                codec,
            }
        })
        .collect()
}

/// The first keyframe access unit (parameter sets + IDR), to be decoded on its own.
pub fn first_keyframe(name: &str) -> EncodedFrame {
    let mut unit = access_units(name)
        .into_iter()
        .find(|u| u.keyframe)
        .expect("a keyframe");
    unit.all_frames = false;
    unit
}

/// The first keyframe of `name`, decoded.
pub fn decoded_keyframe(name: &str) -> DecodedFrame {
    VideoDecoder::new()
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
