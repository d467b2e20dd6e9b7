//! What waits for the decoder, per camera: a run of access units in stream order.
//!
//! The edge between ingest and decode is a latest-value slot per camera ([`crate::slots`]), but a
//! busy camera's P-frames cannot replace each other: each references the one before. So the
//! slot holds a [`FrameRun`]: a keyframe and the frames that follow it, appended while the
//! decoder has not taken them yet, up to [`MAX_RUN`]. A newer keyframe replaces whatever still
//! waits (the decoder is behind; the newest GOP is what matters), and a frame that cannot join
//! the run is refused, so the camera's policy skips the rest of its GOP. A keyframe is never
//! replaced by a P-frame: the camera always gets its next picture.

use crate::codec::EncodedFrame;

/// Most frames a run holds before the decoder takes it (about 2 s at 15 fps): beyond that the
/// decoder is behind on this camera and the rest of the GOP is skipped.
pub const MAX_RUN: usize = 32;

/// Access units of one camera waiting for the decoder, in stream order.
#[derive(Debug, Default)]
pub struct FrameRun {
    /// The frames, oldest first. Never empty in a slot.
    pub frames: Vec<EncodedFrame>,
}

/// What became of a frame offered to a camera's slot.
#[derive(Debug)]
pub enum Queued {
    /// Added (to an empty slot, or at the end of the waiting run).
    Added,
    /// A keyframe replaced a run the decoder had not taken: this many frames are lost.
    Replaced(usize),
    /// The frame does not follow the waiting run, or the run is full: not queued.
    Refused(EncodedFrame),
}

impl FrameRun {
    /// Offers `frame` to a camera's slot; see the module documentation.
    pub fn offer(slot: &mut Option<FrameRun>, frame: EncodedFrame) -> Queued {
        if let Some(run) = slot.as_mut().filter(|_| !frame.keyframe) {
            let follows = run
                .frames
                .last()
                .is_some_and(|last| last.seq + 1 == frame.seq);
            return if follows && run.frames.len() < MAX_RUN {
                run.frames.push(frame);
                Queued::Added
            } else {
                Queued::Refused(frame)
            };
        }
        // A keyframe, or the first frame of an empty slot: a run of its own.
        let lost = slot.take().map_or(0, |run| run.frames.len());
        *slot = Some(FrameRun {
            frames: vec![frame],
        });
        if lost == 0 {
            Queued::Added
        } else {
            Queued::Replaced(lost)
        }
    }

    /// Number of frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Instant, SystemTime};

    fn frame(seq: u64, keyframe: bool) -> EncodedFrame {
        EncodedFrame {
            data: vec![0; 4].into(),
            keyframe,
            pts_s: seq as f64 / 15.0,
            captured_at: SystemTime::now(),
            received: Instant::now(),
            seq,
            all_frames: true,
            codec: crate::codec::VideoCodec::H264,
        }
    }

    #[test]
    fn frames_that_follow_are_appended() {
        let mut slot = None;
        assert!(matches!(
            FrameRun::offer(&mut slot, frame(1, true)),
            Queued::Added
        ));
        assert!(matches!(
            FrameRun::offer(&mut slot, frame(2, false)),
            Queued::Added
        ));
        assert!(matches!(
            FrameRun::offer(&mut slot, frame(3, false)),
            Queued::Added
        ));
        let seqs: Vec<u64> = slot.unwrap().frames.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
    }

    #[test]
    fn a_keyframe_replaces_what_waits_and_a_gap_is_refused() {
        let mut slot = None;
        FrameRun::offer(&mut slot, frame(1, true));
        FrameRun::offer(&mut slot, frame(2, false));
        assert!(matches!(
            FrameRun::offer(&mut slot, frame(4, false)),
            Queued::Refused(_)
        ));
        assert!(matches!(
            FrameRun::offer(&mut slot, frame(5, true)),
            Queued::Replaced(2)
        ));
        assert_eq!(slot.as_ref().map(FrameRun::len), Some(1));
    }

    #[test]
    fn a_full_run_refuses_more() {
        let mut slot = None;
        FrameRun::offer(&mut slot, frame(0, true));
        for seq in 1..MAX_RUN as u64 {
            assert!(matches!(
                FrameRun::offer(&mut slot, frame(seq, false)),
                Queued::Added
            ));
        }
        assert!(matches!(
            FrameRun::offer(&mut slot, frame(MAX_RUN as u64, false)),
            Queued::Refused(_)
        ));
    }

    #[test]
    fn a_p_frame_in_an_empty_slot_waits_for_the_decoder_to_judge_it() {
        let mut slot = None;
        assert!(matches!(
            FrameRun::offer(&mut slot, frame(7, false)),
            Queued::Added
        ));
    }
}
