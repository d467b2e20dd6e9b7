//! Garbage, truncated and corrupted access units are counted and skipped, never a panic, and
//! the decoder keeps working on the next good keyframe.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{access_units, is_keyframe, media};
use dumpwatch::config::DecodeMode;
use dumpwatch::decode::{DecodeError, DecodePool, DecodedFrame, H264Decoder};
use dumpwatch::ingest::{EncodedFrame, FrameRun};
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
        let (input, output, seconds) = (
            input.clone(),
            output.clone(),
            metrics.decode_seconds.clone(),
        );
        Box::new(move |mode| {
            DecodePool::start(
                1,
                mode,
                input.clone(),
                output.clone(),
                table.clone(),
                seconds.clone(),
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

fn encoded(data: Vec<u8>, keyframe: bool, seq: u64) -> EncodedFrame {
    EncodedFrame {
        data,
        keyframe,
        pts_s: 0.0,
        captured_at: SystemTime::now(),
        received: Instant::now(),
        seq,
        all_frames: !keyframe,
    }
}

fn keyframes() -> Vec<Vec<u8>> {
    let aus = access_units(&media("test360"));
    let keys: Vec<_> = aus.into_iter().filter(|au| is_keyframe(au)).collect();
    assert!(keys.len() >= 3, "test media should have several keyframes");
    keys
}

#[test]
fn bad_access_units_are_errors_and_the_next_keyframe_decodes() {
    let keys = keyframes();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut d = H264Decoder::new().unwrap();
    let good = |d: &mut H264Decoder, k: &[u8]| {
        let p = d
            .decode(0, &encoded(k.to_vec(), true, 0))
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
    let mut fake_idr = vec![0, 0, 0, 1, 0x65];
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
        match d.decode(0, &encoded(input, true, 0)) {
            // Concealment may still produce a picture of the right size from a damaged frame.
            Ok(p) => assert_eq!((p.width(), p.height()), (640, 360), "input {i}"),
            Err(DecodeError::Corrupt { .. } | DecodeError::NoPicture { .. }) => {}
            Err(e) => panic!("input {i} ({len} bytes): unexpected {e}"),
        }
        good(&mut d, &keys[(i + 1) % keys.len()]);
    }
}

#[test]
fn the_pool_counts_decode_errors_and_keeps_going() {
    let keys = keyframes();
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
fn all_frames_mode_skips_p_frames_after_a_gap_until_the_next_keyframe() {
    let aus = access_units(&media("test360"));
    let OneCamera {
        metrics: _,
        cams,
        input,
        output,
        start,
    } = one_camera();
    let pool = start(DecodeMode::All);
    let first_key = aus.iter().position(|a| is_keyframe(a)).unwrap();
    let mut seq = 0;
    let mut decoded = 0;
    for (i, au) in aus.iter().enumerate().skip(first_key).take(60) {
        // Frames 10..15 of the GOP never reach the decoder (dropped upstream).
        if (10..15).contains(&(i - first_key)) {
            seq += 1;
            continue;
        }
        input.put(0, run(encoded(au.clone(), is_keyframe(au), seq)));
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
    assert_eq!(cams[0].decode_busy.get(), 35);
    assert_eq!(cams[0].decoded.get(), 60 - 5 - 35);
    assert!(decoded >= 1);
}

#[test]
fn a_busy_cameras_run_is_decoded_whole_and_in_order() {
    let aus = access_units(&media("test360"));
    let OneCamera {
        metrics: _,
        cams,
        input,
        output,
        start,
    } = one_camera();
    let first_key = aus.iter().position(|a| is_keyframe(a)).unwrap();
    let gop: Vec<EncodedFrame> = aus
        .iter()
        .skip(first_key)
        .take(20)
        .enumerate()
        .map(|(i, au)| {
            let mut f = encoded(au.clone(), is_keyframe(au), i as u64);
            f.all_frames = true;
            f
        })
        .collect();
    // Ingest queued a keyframe and 19 P-frames before the decoder came: one run.
    let mut slot = None;
    for f in gop {
        assert!(matches!(
            FrameRun::offer(&mut slot, f),
            dumpwatch::ingest::queue::Queued::Added
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
}
