//! Garbage, truncated and corrupted access units are counted and skipped, never a panic, and
//! the decoder keeps working on the next good keyframe; a decoder that joins mid-GOP, or whose
//! stream changes resolution or codec, keeps working. H.264 and H.265 alike.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{access_units, codec_of, media};
use dumpwatch::codec::EncodedFrame;
use dumpwatch::codec::VideoCodec;
use dumpwatch::config::DecodeMode;
use dumpwatch::decode::FrameRun;
use dumpwatch::decode::{DecodeError, DecodePool, DecodedFrame, KeptPicture, VideoDecoder};
use dumpwatch::metrics::Metrics;
use dumpwatch::slots::LatestSlots;
use rand::{Rng, SeedableRng};

/// A decode pool's surroundings for one camera: its metrics, input and output slots, and a
/// way to start one decode thread on them.
struct OneCamera {
    metrics: Metrics,
    cams: [dumpwatch::metrics::CameraMetrics; 1],
    input: Arc<LatestSlots<FrameRun>>,
    output: Arc<LatestSlots<DecodedFrame>>,
    start: Box<dyn Fn(DecodeMode) -> DecodePool>,
}

fn one_camera() -> OneCamera {
    let metrics = Metrics::new();
    let cams = [metrics.camera("c0")];
    let table = Arc::new(dumpwatch::slots::SlotTable::new(1));
    table.set(0, Some(Arc::new(cams[0].clone())));
    let input = Arc::new(LatestSlots::<FrameRun>::new(1));
    let output = Arc::new(LatestSlots::<DecodedFrame>::new(1));
    let start = {
        let (input, output, seconds, panics) = (
            input.clone(),
            output.clone(),
            metrics.decode_seconds.clone(),
            metrics.worker_panics.with_label_values(&["decode"]),
        );
        Box::new(move |mode| {
            DecodePool::start(
                1,
                mode,
                dumpwatch::config::HwAccel::None,
                input.clone(),
                output.clone(),
                table.clone(),
                seconds.clone(),
                panics.clone(),
                None,
            )
            .expect("the decoder starts")
        })
    };
    OneCamera {
        metrics,
        cams,
        input,
        output,
        start,
    }
}

/// A run of one frame, as ingest queues it.
fn run(frame: EncodedFrame) -> FrameRun {
    FrameRun {
        frames: vec![frame],
    }
}

/// An H.264 access unit as ingest hands it on.
fn encoded(data: Vec<u8>, keyframe: bool, seq: u64) -> EncodedFrame {
    encoded_as(VideoCodec::H264, data, keyframe, seq)
}

/// An access unit of `codec` as ingest hands it on: a keyframe alone, or a frame of a run.
fn encoded_as(codec: VideoCodec, data: Vec<u8>, keyframe: bool, seq: u64) -> EncodedFrame {
    EncodedFrame {
        data: data.into(),
        keyframe,
        pts_s: 0.0,
        captured_at: SystemTime::now(),
        received: Instant::now(),
        seq,
        all_frames: !keyframe,
        codec,
    }
}

/// The access units of test media `name` with whether each is a keyframe.
fn units_of(name: &str) -> (VideoCodec, Vec<(Vec<u8>, bool)>) {
    let path = media(name);
    let codec = codec_of(&path);
    let units = access_units(&path)
        .into_iter()
        .map(|au| {
            let key = codec.is_random_access(&au);
            (au, key)
        })
        .collect();
    (codec, units)
}

fn keyframes(name: &str) -> (VideoCodec, Vec<Vec<u8>>) {
    keyframes_at_least(name, 3)
}

fn keyframes_at_least(name: &str, n: usize) -> (VideoCodec, Vec<Vec<u8>>) {
    let (codec, units) = units_of(name);
    let keys: Vec<_> = units
        .into_iter()
        .filter(|(_, k)| *k)
        .map(|(au, _)| au)
        .collect();
    assert!(keys.len() >= n, "{name} should have at least {n} keyframes");
    (codec, keys)
}

#[test]
fn bad_h264_access_units_are_errors_and_the_next_keyframe_decodes() {
    bad_access_units_are_errors_and_the_next_keyframe_decodes("test360");
}

#[test]
fn bad_h265_access_units_are_errors_and_the_next_keyframe_decodes() {
    bad_access_units_are_errors_and_the_next_keyframe_decodes("test360_h265");
}

fn bad_access_units_are_errors_and_the_next_keyframe_decodes(name: &str) {
    let (codec, keys) = keyframes(name);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut d = VideoDecoder::new().unwrap();
    let good = |d: &mut VideoDecoder, k: &[u8]| {
        let p = d
            .decode(0, &encoded_as(codec, k.to_vec(), true, 0))
            .expect("a good keyframe decodes");
        assert_eq!((p.width(), p.height()), (640, 360));
    };
    good(&mut d, &keys[0]);

    let mut bad_inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0, 0, 0, 1],
        vec![0xff; 1000],
        keys[1][..keys[1].len() / 2].to_vec(),
        keys[1][..64].to_vec(),
    ];
    for len in [1, 17, 4096, 200_000] {
        bad_inputs.push((0..len).map(|_| rng.random()).collect());
    }
    // Random garbage after a valid start code and NAL header of an IDR slice.
    let mut fake_idr = match codec {
        VideoCodec::H264 => vec![0, 0, 0, 1, 0x65],
        VideoCodec::H265 => vec![0, 0, 0, 1, 0x26, 0x01],
    };
    fake_idr.extend((0..5000).map(|_| rng.random::<u8>()));
    bad_inputs.push(fake_idr);
    // A real keyframe with its slice data scribbled over.
    let mut scribbled = keys[2].clone();
    let n = scribbled.len();
    for b in &mut scribbled[n / 3..n / 3 + 200] {
        *b = rng.random();
    }
    bad_inputs.push(scribbled);

    for (i, input) in bad_inputs.into_iter().enumerate() {
        let len = input.len();
        match d.decode(0, &encoded_as(codec, input, true, 0)) {
            // Concealment may still produce a picture of the right size from a damaged frame.
            Ok(p) => assert_eq!((p.width(), p.height()), (640, 360), "input {i}"),
            Err(DecodeError::Corrupt { .. } | DecodeError::NoPicture { .. }) => {}
            Err(e) => panic!("input {i} ({len} bytes): unexpected {e}"),
        }
        good(&mut d, &keys[(i + 1) % keys.len()]);
    }
}

/// A decoder that joins a stream mid-GOP gets errors (not garbage pictures, not a panic) until
/// the first keyframe, and then every frame of the GOP.
fn joining_mid_gop_decodes_from_the_first_keyframe(name: &str) {
    let (codec, units) = units_of(name);
    let first_key = units.iter().position(|(_, k)| *k).unwrap();
    let second_key = first_key + 1 + units[first_key + 1..].iter().position(|(_, k)| *k).unwrap();
    let mut d = VideoDecoder::new().unwrap();
    let mut pictures_before_key = 0;
    for (seq, (au, key)) in units[first_key + 20..second_key].iter().enumerate() {
        let mut f = encoded_as(codec, au.clone(), *key, seq as u64);
        f.all_frames = true;
        if d.decode(0, &f).is_ok() {
            pictures_before_key += 1;
        }
    }
    assert_eq!(pictures_before_key, 0, "P-frames without their references");
    let mut decoded = 0;
    for (seq, (au, key)) in units[second_key..second_key + 30].iter().enumerate() {
        let mut f = encoded_as(codec, au.clone(), *key, seq as u64);
        f.all_frames = true;
        let p = d.decode(0, &f).expect("every frame from the keyframe on");
        assert_eq!((p.width(), p.height()), (640, 360));
        decoded += 1;
    }
    assert_eq!(decoded, 30);
}

#[test]
fn h264_joining_mid_gop_decodes_from_the_first_keyframe() {
    joining_mid_gop_decodes_from_the_first_keyframe("test360");
}

#[test]
fn h265_joining_mid_gop_decodes_from_the_first_keyframe() {
    joining_mid_gop_decodes_from_the_first_keyframe("test360_h265");
}

/// One decoder, one camera whose stream changes resolution and then codec (a camera
/// reconfigured from its web page): every keyframe decodes at its own size, alone and in a run.
#[test]
fn a_stream_that_changes_resolution_or_codec_keeps_decoding() {
    let sequence = [
        "test360",
        "vtest720",
        "test360_h265",
        "vtest720_h265",
        "test360",
    ];
    for all_frames in [false, true] {
        let mut d = VideoDecoder::new().unwrap();
        for (seq, name) in sequence.iter().enumerate() {
            let (codec, keys) = keyframes(name);
            let mut f = encoded_as(codec, keys[1].clone(), true, seq as u64);
            f.all_frames = all_frames;
            f.pts_s = 10.0 + seq as f64;
            // A decoder shared by cameras: each picture keeps its own camera and times.
            let camera = 3 + seq;
            let p = d
                .decode(camera, &f)
                .unwrap_or_else(|e| panic!("{name} (all_frames {all_frames}): {e}"));
            let want = if name.starts_with("vtest720") {
                (1280, 720)
            } else {
                (640, 360)
            };
            assert_eq!((p.width(), p.height()), want, "{name}");
            assert_eq!(
                (p.camera, p.keyframe, p.pts_s),
                (camera, true, f.pts_s),
                "{name}"
            );
            assert_eq!(p.received, f.received);
        }
    }
}

#[test]
fn the_pool_counts_decode_errors_and_keeps_going() {
    let (_, keys) = keyframes("test360");
    let OneCamera {
        metrics,
        cams,
        input,
        output,
        start,
    } = one_camera();
    let pool = start(DecodeMode::Keyframes);
    let feed = |data: Vec<u8>, seq| {
        input.put(0, run(encoded(data, true, seq)));
        // Let the decoder take it before the next one replaces it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while input.pending() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    feed(vec![0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1, 0x65, 1, 2, 3], 0);
    feed(keys[0][..keys[0].len() / 3].to_vec(), 1);
    feed(keys[1].clone(), 2);
    let (_, picture) = output
        .take(Some(Duration::from_secs(5)))
        .expect("the good keyframe was decoded");
    assert_eq!((picture.width(), picture.height()), (640, 360));
    pool.shutdown();
    let text = metrics.render();
    assert!(
        common::metric_value(
            &text,
            "dumpwatch_frames_dropped_total",
            &[("camera", "c0"), ("reason", "decode_error")]
        ) >= 1
    );
    assert_eq!(
        common::metric_value(
            &text,
            "dumpwatch_frames_total",
            &[("camera", "c0"), ("stage", "decoded")]
        ),
        cams[0].decoded.get()
    );
}

#[test]
fn h264_all_frames_mode_skips_p_frames_after_a_gap_until_the_next_keyframe() {
    all_frames_mode_skips_p_frames_after_a_gap_until_the_next_keyframe("test360");
}

#[test]
fn h265_all_frames_mode_skips_p_frames_after_a_gap_until_the_next_keyframe() {
    all_frames_mode_skips_p_frames_after_a_gap_until_the_next_keyframe("test360_h265");
}

fn all_frames_mode_skips_p_frames_after_a_gap_until_the_next_keyframe(name: &str) {
    let (codec, units) = units_of(name);
    let OneCamera {
        metrics: _,
        cams,
        input,
        output,
        start,
    } = one_camera();
    let pool = start(DecodeMode::All);
    let first_key = units.iter().position(|(_, k)| *k).unwrap();
    let mut seq = 0;
    let mut decoded = 0;
    for (i, (au, key)) in units.iter().enumerate().skip(first_key).take(60) {
        // Frames 10..15 of the GOP never reach the decoder (dropped upstream).
        if (10..15).contains(&(i - first_key)) {
            seq += 1;
            continue;
        }
        input.put(0, run(encoded_as(codec, au.clone(), *key, seq)));
        seq += 1;
        while input.pending() > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        while output.take(Some(Duration::from_millis(30))).is_some() {
            decoded += 1;
        }
    }
    pool.shutdown();
    while output.take(Some(Duration::from_millis(10))).is_some() {
        decoded += 1;
    }
    // 10 frames before the gap + the keyframe 50 frames in and what follows it; the 35
    // P-frames after the gap are skipped, not decoded into garbage.
    assert_eq!(cams[0].decode_error.get(), 0);
    assert_eq!(cams[0].decode_busy.get(), 35, "{name}");
    assert_eq!(cams[0].decoded.get(), 60 - 5 - 35, "{name}");
    assert!(decoded >= 1);
}

#[test]
fn h264_a_busy_cameras_run_is_decoded_whole_and_in_order_and_kept_as_its_units() {
    a_busy_cameras_run_is_decoded_whole_and_in_order_and_kept_as_its_units("test360");
}

#[test]
fn h265_a_busy_cameras_run_is_decoded_whole_and_in_order_and_kept_as_its_units() {
    a_busy_cameras_run_is_decoded_whole_and_in_order_and_kept_as_its_units("test360_h265");
}

fn a_busy_cameras_run_is_decoded_whole_and_in_order_and_kept_as_its_units(name: &str) {
    let path = media(name);
    let codec = codec_of(&path);
    let aus = access_units(&path);
    let OneCamera {
        metrics: _,
        cams,
        input,
        output,
        start,
    } = one_camera();
    let first_key = aus.iter().position(|a| codec.is_random_access(a)).unwrap();
    let gop: Vec<EncodedFrame> = aus
        .iter()
        .skip(first_key)
        .take(20)
        .enumerate()
        .map(|(i, au)| {
            let mut f = encoded_as(codec, au.clone(), codec.is_random_access(au), i as u64);
            f.all_frames = true;
            f.pts_s = i as f64 / 25.0;
            f
        })
        .collect();
    // Ingest queued a keyframe and 19 P-frames before the decoder came: one run.
    let mut slot = None;
    for f in gop {
        assert!(matches!(
            FrameRun::offer(&mut slot, f),
            dumpwatch::decode::queue::Queued::Added
        ));
    }
    input.put(0, slot.take().unwrap());
    let pool = start(DecodeMode::Keyframes);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cams[0].decoded.get() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    pool.shutdown();
    assert_eq!(
        cams[0].decoded.get(),
        20,
        "every frame of the run, in order"
    );
    assert_eq!(cams[0].decode_error.get() + cams[0].decode_busy.get(), 0);
    // Newest picture wins at the detector's slot: the last of the run.
    let (_, picture) = output.take(Some(Duration::from_secs(1))).unwrap();
    assert!(!picture.keyframe);
    // Kept compactly (the evidence history), it is the run's 20 access units, far smaller than
    // its pixels, and they decode again to the very same picture.
    let picture = Arc::new(picture);
    let source = picture
        .source()
        .expect("a picture of a run knows its units");
    assert_eq!(source.units(), 20, "{name}");
    assert!(source.bytes() < picture.byte_size(), "{name}");
    let kept = KeptPicture::compact(&picture);
    assert!(!kept.has_pixels());
    assert_eq!(kept.held_bytes(), source.bytes());
    let again = kept.pixels().expect("the units decode again");
    assert_eq!(
        (again.width(), again.height()),
        (picture.width(), picture.height())
    );
    assert!(again.luma() == picture.luma(), "{name}: the same luma");
    assert!(
        again.chroma() == picture.chroma(),
        "{name}: the same chroma"
    );
    assert_eq!(again.pts_s, picture.pts_s);
    // Shown on request (a camera's latest picture), it keeps its pixels.
    assert!(KeptPicture::quick(&picture).has_pixels());
}

/// `decode.hwaccel`: where the device cannot be opened (CI has no GPU) the decoder says why and
/// decodes in software; where it can, pictures come off the hardware. Either way every keyframe
/// decodes, both codecs.
#[test]
fn a_missing_hardware_decoder_falls_back_to_software() {
    use dumpwatch::config::HwAccel;
    for hwaccel in [HwAccel::Vaapi, HwAccel::Cuda] {
        let available = dumpwatch::decode::hwaccel_available(hwaccel);
        if let Err(reason) = &available {
            assert!(reason.contains(hwaccel.name()), "{reason}");
        }
        let mut d = VideoDecoder::with_hwaccel(hwaccel).unwrap();
        for name in ["test360", "test360_h265"] {
            let (codec, keys) = keyframes(name);
            let p = d
                .decode(0, &encoded_as(codec, keys[0].clone(), true, 0))
                .unwrap_or_else(|e| panic!("{name} with {hwaccel:?}: {e}"));
            assert_eq!((p.width(), p.height()), (640, 360));
            assert_eq!(
                d.on_hardware(),
                available.is_ok(),
                "{name} with {hwaccel:?}"
            );
        }
    }
}

/// A 10-bit H.265 camera (Main 10): its pictures come out as 8-bit I420 like any other.
#[test]
fn a_main_10_h265_stream_decodes_to_8_bit_pictures() {
    let (codec, keys) = keyframes_at_least("test360_10bit_h265", 2);
    let mut d = VideoDecoder::new().unwrap();
    let p = d
        .decode(0, &encoded_as(codec, keys[0].clone(), true, 0))
        .expect("a Main 10 keyframe decodes");
    assert_eq!((p.width(), p.height()), (640, 360));
    // testsrc2's picture is not flat: the luma plane has detail, not a constant.
    let (lo, hi) = p
        .luma()
        .iter()
        .fold((255u8, 0u8), |(lo, hi), &y| (lo.min(y), hi.max(y)));
    assert!(hi - lo > 100, "luma range {lo}..{hi}");
}

/// One decoder serving many cameras' keyframes alone: two cameras showing the same H.265 CRA
/// keyframe (same picture order count) one after the other both decode. A CRA does not reset the
/// decoder as an IDR does; without a clean start the second was refused as a duplicate picture.
#[test]
fn the_same_h265_cra_keyframe_from_two_cameras_decodes_twice() {
    let (codec, keys) = keyframes("test360_h265");
    // keys[0] is the stream's IDR; x265 makes the later keyframes CRA pictures.
    let cra = keys[1].clone();
    assert!(
        dumpwatch::codec::nal_units(&cra)
            .iter()
            .any(|n| (n[0] >> 1) & 0x3f == 21),
        "test360_h265's second keyframe should be a CRA picture"
    );
    let mut d = VideoDecoder::new().unwrap();
    for camera in 0..4 {
        let p = d
            .decode(camera, &encoded_as(codec, cra.clone(), true, 0))
            .unwrap_or_else(|e| panic!("camera {camera}: {e}"));
        assert_eq!((p.camera, p.width(), p.height()), (camera, 640, 360));
    }
}
