//! Each camera's recent encoded video: every access unit of the last seconds, from a keyframe
//! on, so an incident's clip can start before the event without decoding anything. While an
//! object is pending, the video from just before its put-down is kept too: what outgrows the
//! ring's memory goes to a file on disk ([`ActSpill`]), so the clip can show the act without
//! the ring holding 45 s of every camera in memory.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::warn;

use crate::codec::EncodedFrame;

/// One access unit as kept for clips.
#[derive(Clone, Debug)]
pub struct ClipFrame {
    /// Annex B NAL units (keyframes carry the parameter sets).
    pub data: Arc<[u8]>,
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// Stream time, seconds (restarts with each connection).
    pub pts_s: f64,
    /// Arrival time, unix seconds (the analyzer's clock).
    pub at: f64,
    /// The stream's codec.
    pub codec: crate::codec::VideoCodec,
}

/// Where a ring keeps a pending object's put-down once it outgrows the ring's memory: a file of
/// whole GOPs, oldest first, at most `max_bytes`; emptied when nothing is pending any more.
#[derive(Clone, Debug)]
pub struct ActSpill {
    /// The file (created on first use).
    pub path: PathBuf,
    /// Most bytes of video in it; beyond, the put-down is given up (the clip starts later,
    /// from what the ring holds).
    pub max_bytes: u64,
}

/// The ring of one camera. Cheap to share; pushed by the camera's ingest task.
#[derive(Debug)]
pub struct ClipRing {
    keep_s: f64,
    max_bytes: usize,
    spill: Option<ActSpill>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    frames: VecDeque<ClipFrame>,
    /// Bytes of video held.
    bytes: usize,
    /// Connections seen (a clear starts a new one: timestamps restart).
    generation: u64,
    /// Until when (unix seconds) the ring keeps its full seconds whether or not the camera is
    /// busy: a clip is being cut from it ([`ClipRing::hold_until`]).
    held_until: f64,
    /// Keep every frame from the keyframe at or before this (unix seconds): an object is pending
    /// whose clip must show it being put down ([`ClipRing::keep_from`]).
    keep_from: Option<f64>,
    /// The put-down's GOPs that outgrew the ring's memory, in the spill file, oldest first:
    /// each frame without its data, and where the data lies in the file.
    spilled: Vec<(ClipFrame, u64, usize)>,
    /// Bytes of video in the spill file.
    spilled_bytes: u64,
    /// The spill file, open while something is in it.
    spill_file: Option<File>,
}

impl ClipRing {
    /// A ring that keeps at least `keep_s` seconds (from the keyframe before that on), as far
    /// as `max_bytes` of video allow: whole GOPs are dropped, oldest first, while more is held
    /// (the newest GOP is always kept).
    pub fn new(keep_s: f64, max_bytes: usize) -> ClipRing {
        ClipRing::with_spill(keep_s, max_bytes, None)
    }

    /// [`ClipRing::new`] that, while it keeps a put-down ([`ClipRing::keep_from`]), writes what
    /// outgrows `max_bytes` to `spill` instead of dropping it.
    pub fn with_spill(keep_s: f64, max_bytes: usize, spill: Option<ActSpill>) -> ClipRing {
        ClipRing {
            keep_s,
            max_bytes,
            spill,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a frame that arrived at `at` (unix seconds), keeping the ring's seconds. Frames
    /// before the first keyframe are not kept (a clip cannot start with them).
    pub fn push(&self, frame: &EncodedFrame, at: f64) {
        self.push_keeping(frame, at, true);
    }

    /// [`ClipRing::push`] for a busy camera (`full`); an idle camera's ring keeps nothing, unless
    /// a clip being cut holds it ([`ClipRing::hold_until`]). An idle camera cannot raise an
    /// incident before it has been busy for longer than the ring's seconds (an object must stay
    /// for `dwell_s`, and the camera is busy while it does), so its ring need not hold them: its
    /// ring starts again at the first keyframe after it turns busy, at most a GOP later, and 77
    /// idle 2 Mb/s cameras hold nothing instead of 77 GOPs (≈ 27 MB) or 77 × 15 s (≈ 290 MB).
    pub fn push_keeping(&self, frame: &EncodedFrame, at: f64, full: bool) {
        let mut inner = self.lock();
        if !full && at > inner.held_until && inner.keep_from.is_none() {
            if !inner.frames.is_empty() {
                inner.frames.clear();
                inner.bytes = 0;
            }
            return;
        }
        if inner.frames.is_empty() && !frame.keyframe {
            return;
        }
        inner.bytes += frame.data.len();
        inner.frames.push_back(ClipFrame {
            data: frame.data.clone(),
            keyframe: frame.keyframe,
            pts_s: frame.pts_s,
            at,
            codec: frame.codec,
        });
        // Drop whole GOPs while the next keyframe still starts early enough, or while more
        // bytes than allowed are held.
        let horizon = match inner.keep_from {
            Some(from) => (at - self.keep_s).min(from),
            None => at - self.keep_s,
        };
        while let Some(next_key) = inner.frames.iter().skip(1).position(|f| f.keyframe) {
            let old_enough = inner.frames[next_key + 1].at <= horizon;
            if !old_enough && inner.bytes <= self.max_bytes {
                break;
            }
            if !old_enough && inner.keep_from.is_some() && self.spill.is_some() {
                // Part of a pending object's put-down that memory cannot hold: to disk.
                let gop: Vec<ClipFrame> = inner.frames.drain(..=next_key).collect();
                inner.bytes -= gop.iter().map(|f| f.data.len()).sum::<usize>();
                self.spill_gop(&mut inner, gop);
            } else {
                let dropped: usize = inner.frames.drain(..=next_key).map(|f| f.data.len()).sum();
                inner.bytes -= dropped;
            }
        }
        if inner.keep_from.is_none() && !inner.spilled.is_empty() {
            self.drop_spill(&mut inner);
        }
    }

    /// Appends a GOP to the spill file; if there is none, it is full or cannot be written, the
    /// spill is given up whole (a clip must not have a hole: it starts later instead).
    fn spill_gop(&self, inner: &mut Inner, gop: Vec<ClipFrame>) {
        let Some(spill) = &self.spill else {
            return;
        };
        let bytes: u64 = gop.iter().map(|f| f.data.len() as u64).sum();
        if inner.spilled_bytes + bytes > spill.max_bytes {
            self.drop_spill(inner);
            return;
        }
        if inner.spill_file.is_none() {
            let opened = spill
                .path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .read(true)
                        .write(true)
                        .truncate(true)
                        .open(&spill.path)
                });
            match opened {
                Ok(f) => inner.spill_file = Some(f),
                Err(e) => {
                    warn!(path = %spill.path.display(), error = %e,
                          "cannot keep a pending object's put-down on disk: its clip will start later");
                    return;
                }
            }
        }
        let file = inner.spill_file.as_ref().expect("opened above");
        let mut at = inner.spilled_bytes;
        let mut written = Vec::with_capacity(gop.len());
        for f in gop {
            if let Err(e) = file.write_all_at(&f.data, at) {
                warn!(path = %spill.path.display(), error = %e,
                      "cannot keep a pending object's put-down on disk: its clip will start later");
                self.drop_spill(inner);
                return;
            }
            let len = f.data.len();
            written.push((
                ClipFrame {
                    data: Arc::from(&[][..]),
                    ..f
                },
                at,
                len,
            ));
            at += len as u64;
        }
        inner.spilled.extend(written);
        inner.spilled_bytes = at;
    }

    /// Forgets the spilled put-down and empties its file.
    fn drop_spill(&self, inner: &mut Inner) {
        inner.spilled.clear();
        inner.spilled_bytes = 0;
        if let Some(file) = inner.spill_file.take() {
            let _ = file.set_len(0);
        }
    }

    /// Bytes of video kept on disk for a pending object's put-down.
    pub fn spilled_bytes(&self) -> u64 {
        self.lock().spilled_bytes
    }

    /// Keeps every frame from the keyframe at or before `from` (unix seconds) on, busy or idle,
    /// what outgrows the ring's memory on disk, as far as the spill allows: an object is pending, and its clip, cut when it is
    /// raised, must show it being put down and who did it. `None` when nothing is pending: the
    /// ring goes back to its own seconds and bytes at the next frame.
    pub fn keep_from(&self, from: Option<f64>) {
        self.lock().keep_from = from;
    }

    /// Keeps the ring's full seconds until `until` (unix seconds) even if the camera turns idle:
    /// a clip is being cut whose last frames arrive then.
    pub fn hold_until(&self, until: f64) {
        let mut inner = self.lock();
        inner.held_until = inner.held_until.max(until);
    }

    /// Forgets everything (a new connection: timestamps restart).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.frames.clear();
        inner.bytes = 0;
        inner.generation += 1;
        self.drop_spill(&mut inner);
    }

    /// The frames from the last keyframe at or before `from` up to `to` (unix seconds).
    pub fn window(&self, from: f64, to: f64) -> Vec<ClipFrame> {
        self.window_of(from, to).1
    }

    /// [`ClipRing::window`] with the connection it comes from (see [`ClipRing::after`]).
    pub fn window_of(&self, from: f64, to: f64) -> (u64, Vec<ClipFrame>) {
        let inner = self.lock();
        let frames = &inner.frames;
        let start = frames
            .iter()
            .rposition(|f| f.keyframe && f.at <= from)
            .or_else(|| frames.iter().position(|f| f.keyframe));
        let Some(start) = start else {
            return (inner.generation, vec![]);
        };
        // Earlier than memory holds: from the spilled put-down, read back from disk.
        let mut window = if start == 0 && frames[0].at > from {
            self.read_spilled(&inner, from, to)
        } else {
            Vec::new()
        };
        window.extend(
            frames
                .iter()
                .skip(start)
                .take_while(|f| f.at <= to)
                .cloned(),
        );
        (inner.generation, window)
    }

    /// The spilled frames from the keyframe at or before `from` up to `to`, with their data read
    /// back; none if it cannot be read (the clip then starts where memory does).
    fn read_spilled(&self, inner: &Inner, from: f64, to: f64) -> Vec<ClipFrame> {
        let spilled = &inner.spilled;
        let (Some(file), Some(start)) = (
            inner.spill_file.as_ref(),
            spilled
                .iter()
                .rposition(|(f, _, _)| f.keyframe && f.at <= from)
                .or_else(|| spilled.iter().position(|(f, _, _)| f.keyframe)),
        ) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (f, offset, len) in spilled[start..].iter().take_while(|(f, _, _)| f.at <= to) {
            let mut data = vec![0u8; *len];
            if let Err(e) = file.read_exact_at(&mut data, *offset) {
                warn!(error = %e, "cannot read a pending object's put-down back from disk: the clip starts later");
                return Vec::new();
            }
            out.push(ClipFrame {
                data: data.into(),
                ..f.clone()
            });
        }
        out
    }

    /// The frames that arrived after `after` up to `to`, if the ring still holds the connection
    /// `generation` (empty after a reconnect: a clip never spans two connections).
    pub fn after(&self, generation: u64, after: f64, to: f64) -> Vec<ClipFrame> {
        let inner = self.lock();
        if inner.generation != generation {
            return vec![];
        }
        inner
            .frames
            .iter()
            .filter(|f| f.at > after && f.at <= to)
            .cloned()
            .collect()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Instant, SystemTime};

    fn frame(keyframe: bool, pts_s: f64) -> EncodedFrame {
        EncodedFrame {
            data: vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 1, 2, 3].into(),
            keyframe,
            pts_s,
            captured_at: SystemTime::now(),
            received: Instant::now(),
            seq: 0,
            all_frames: false,
            codec: crate::codec::VideoCodec::H264,
        }
    }

    #[test]
    fn keeps_whole_gops_covering_the_window() {
        let ring = ClipRing::new(5.0, usize::MAX);
        // 30 s at 10 fps, a keyframe every 2 s; a P-frame first is not kept.
        ring.push(&frame(false, 0.0), 1000.0);
        for i in 0..300 {
            let t = f64::from(i) / 10.0;
            ring.push(&frame(i % 20 == 0, t), 1000.0 + t);
        }
        let all = ring.window(0.0, f64::MAX);
        assert!(all[0].keyframe);
        // At least 5 s kept, and not more than a GOP beyond that.
        let span = all.last().unwrap().at - all[0].at;
        assert!((5.0..=7.1).contains(&span), "{span}");
        // A window starts at the keyframe before it and ends at its end.
        let w = ring.window(1026.5, 1028.0);
        assert!(
            w[0].keyframe && (w[0].at - 1026.0).abs() < 1e-9,
            "{:?}",
            w[0].at
        );
        assert!((w.last().unwrap().at - 1028.0).abs() < 1e-9);
        ring.clear();
        assert!(ring.window(0.0, f64::MAX).is_empty());
    }

    #[test]
    fn a_byte_limit_drops_whole_gops_but_keeps_the_newest() {
        // 8-byte frames, 20 a GOP: 160 bytes a GOP; room for two and a half.
        let ring = ClipRing::new(60.0, 400);
        for i in 0..200 {
            let t = f64::from(i) / 10.0;
            ring.push(&frame(i % 20 == 0, t), 1000.0 + t);
            assert!(ring.bytes() <= 400 || ring.window(0.0, f64::MAX).len() <= 20);
        }
        let all = ring.window(0.0, f64::MAX);
        assert!(all[0].keyframe);
        assert_eq!(ring.bytes(), all.len() * 8);
        assert!(all.len() > 20 && all.len() <= 50, "{}", all.len());
    }

    #[test]
    fn frames_after_a_point_come_from_the_same_connection_only() {
        let ring = ClipRing::new(60.0, usize::MAX);
        for i in 0..40 {
            let t = f64::from(i) / 10.0;
            ring.push(&frame(i % 20 == 0, t), 1000.0 + t);
        }
        let (generation, head) = ring.window_of(1001.0, f64::MAX);
        let last = head.last().unwrap().at;
        for i in 40..60 {
            let t = f64::from(i) / 10.0;
            ring.push(&frame(i % 20 == 0, t), 1000.0 + t);
        }
        let tail = ring.after(generation, last, 1005.0);
        assert_eq!(tail.len(), 11, "4.0 .. 5.0 s");
        ring.clear();
        assert!(ring.after(generation, last, f64::MAX).is_empty());
    }

    #[test]
    fn a_pending_put_down_that_outgrows_memory_is_kept_on_disk_without_a_hole() {
        // 8-byte frames, 10 fps, a keyframe every 2 s (160 bytes a GOP). The ring keeps 5 s and
        // 400 bytes in memory; a put-down may take 1,000 bytes on disk.
        let dir = tempfile::tempdir().unwrap();
        let spill = ActSpill {
            path: dir.path().join("act/0.video"),
            max_bytes: 1_000,
        };
        let ring = ClipRing::with_spill(5.0, 400, Some(spill));
        let push = |ring: &ClipRing, from: u32, to: u32, full: bool| {
            for i in from..to {
                let t = f64::from(i) / 10.0;
                let mut f = frame(i % 20 == 0, t);
                f.data = (i as u64).to_le_bytes().to_vec().into();
                ring.push_keeping(&f, 1000.0 + t, full);
            }
        };
        push(&ring, 0, 100, true);
        // Something put down at 1009.5 s: kept from 3 s before it while it is pending, busy or
        // idle; memory stays within the ring's 400 bytes.
        ring.keep_from(Some(1006.5));
        push(&ring, 100, 140, true);
        push(&ring, 140, 150, false);
        assert!(ring.bytes() <= 400, "{}", ring.bytes());
        assert!(ring.spilled_bytes() > 0);
        let (_, kept) = ring.window_of(1006.5, f64::MAX);
        assert!((kept[0].at - 1006.0).abs() < 1e-9, "{}", kept[0].at);
        assert!(kept[0].keyframe);
        // Every frame from there on, once, in order, with its own data back from disk.
        for (k, f) in kept.iter().enumerate() {
            let i = 60 + k as u64;
            assert_eq!(&f.data[..], &i.to_le_bytes()[..], "frame {k}");
            assert!((f.at - (1000.0 + i as f64 / 10.0)).abs() < 1e-9);
        }
        assert_eq!(kept.len(), 90);
        // Pending for longer than the spill holds: given up whole (no hole), memory goes on.
        push(&ring, 150, 300, true);
        let (_, kept) = ring.window_of(1006.5, f64::MAX);
        assert!(kept[0].keyframe && kept[0].at > 1006.5);
        let ats: Vec<f64> = kept.iter().map(|f| f.at).collect();
        assert!(
            ats.windows(2).all(|w| (w[1] - w[0] - 0.1).abs() < 1e-6),
            "a hole"
        );
        // Raised or taken back: the file is emptied at the next frame.
        ring.keep_from(Some(1020.0));
        push(&ring, 300, 340, true);
        assert!(ring.spilled_bytes() > 0);
        ring.keep_from(None);
        push(&ring, 340, 341, true);
        assert_eq!(ring.spilled_bytes(), 0);
        assert!(ring.bytes() <= 400);
        assert_eq!(
            std::fs::metadata(dir.path().join("act/0.video"))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn an_idle_camera_keeps_nothing_unless_a_clip_holds_its_ring() {
        let ring = ClipRing::new(60.0, usize::MAX);
        // Busy for 5 s, then idle: the ring empties.
        for i in 0..100 {
            let t = f64::from(i) / 10.0;
            ring.push_keeping(&frame(i % 20 == 0, t), 1000.0 + t, i < 50);
            if i == 49 {
                assert_eq!(ring.window(0.0, f64::MAX).len(), 50);
            }
        }
        assert!(ring.window(0.0, f64::MAX).is_empty());
        assert_eq!(ring.bytes(), 0);
        // Busy again mid-GOP: kept from the next keyframe on.
        for i in 105..130 {
            let t = f64::from(i) / 10.0;
            ring.push_keeping(&frame(i % 20 == 0, t), 1000.0 + t, true);
        }
        let all = ring.window(0.0, f64::MAX);
        assert!(all[0].keyframe && (all[0].at - 1012.0).abs() < 1e-9);
        // A clip cut at 1013 s with 5 s after it holds the ring while the camera is idle.
        ring.hold_until(1018.0);
        for i in 130..200 {
            let t = f64::from(i) / 10.0;
            ring.push_keeping(&frame(i % 20 == 0, t), 1000.0 + t, false);
            if i == 180 {
                let held = ring.window(1013.0, f64::MAX);
                assert!(
                    (held[0].at - 1012.0).abs() < 1e-9,
                    "the clip's head is still there"
                );
                assert!((held.last().unwrap().at - 1018.0).abs() < 1e-9);
            }
        }
        assert!(
            ring.window(0.0, f64::MAX).is_empty(),
            "released after the hold"
        );
    }
}
