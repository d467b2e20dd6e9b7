//! Scoring raised events against labels, by the rule in docs/architecture.md: an incident
//! matches the first unmatched labelled event of its kind whose window `[start_s, end_s]` holds the
//! incident's time; unmatched incidents are false alarms; unmatched events are misses.

use super::dataset::{EventKind, LabelledEvent, LabelledView, ViewKind};
use crate::analyze::view::View;

/// How long after a camera is turned or covered the analyzer must say so.
pub const VIEW_WITHIN_S: f64 = 60.0;

/// Whether the views the analyzer reported in a clip (time, view) are as `label` says: the
/// labelled view within [`VIEW_WITHIN_S`] of its start; without a label, never moved or covered.
pub fn view_as_labelled(label: Option<&LabelledView>, views: &[(f64, View)]) -> bool {
    match label {
        Some(l) => {
            let wanted = match l.kind {
                ViewKind::Moved => View::Moved,
                ViewKind::Covered => View::Covered,
            };
            views
                .iter()
                .any(|(t, v)| *v == wanted && *t >= l.start_s && *t <= l.start_s + VIEW_WITHIN_S)
        }
        None => views
            .iter()
            .all(|(_, v)| matches!(v, View::Home | View::Learning)),
    }
}

/// An event the system raised in a clip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Raised {
    /// Dumping (incident raised) or cleared.
    pub kind: EventKind,
    /// Seconds from the start of the clip.
    pub at_s: f64,
}

/// The outcome for one clip.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ClipScore {
    /// Raised events that matched a label.
    pub true_positives: usize,
    /// Raised events that matched nothing.
    pub false_alarms: usize,
    /// Labelled events nothing matched.
    pub misses: usize,
    /// For each match, seconds from the label's start to the alert.
    pub times_to_alert: Vec<f64>,
}

/// Scores one clip.
pub fn score_clip(labels: &[LabelledEvent], raised: &[Raised]) -> ClipScore {
    let mut used = vec![false; labels.len()];
    let mut score = ClipScore::default();
    let mut raised: Vec<Raised> = raised.to_vec();
    raised.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    for r in &raised {
        let hit = labels.iter().enumerate().find(|(i, l)| {
            !used[*i] && l.kind == r.kind && l.start_s <= r.at_s && r.at_s <= l.end_s
        });
        match hit {
            Some((i, l)) => {
                used[i] = true;
                score.true_positives += 1;
                score.times_to_alert.push(r.at_s - l.start_s);
            }
            None => score.false_alarms += 1,
        }
    }
    score.misses = used.iter().filter(|u| !**u).count();
    score
}

/// Totals over a dataset.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Matched / raised (1 when nothing was raised).
    pub precision: f64,
    /// Matched / labelled (1 when nothing was labelled).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Mean time to alert over matches, seconds.
    pub time_to_alert_mean_s: Option<f64>,
    /// Longest time to alert, seconds.
    pub time_to_alert_max_s: Option<f64>,
    /// False alarms per hour of video.
    pub false_alarms_per_hour: f64,
    /// Hours of video scored.
    pub video_hours: f64,
    /// Total matched, false alarms and misses.
    #[serde(flatten)]
    pub counts: ClipScore,
    /// Clips whose camera view the analyzer reported otherwise than labelled (a turned or
    /// covered camera not said within a minute, or a view lost that was not).
    pub views_not_as_labelled: usize,
}

/// Adds up clip scores; `video_s` is the total duration of the clips.
pub fn summarize(scores: &[ClipScore], video_s: f64) -> Summary {
    let mut t = ClipScore::default();
    for s in scores {
        t.true_positives += s.true_positives;
        t.false_alarms += s.false_alarms;
        t.misses += s.misses;
        t.times_to_alert.extend_from_slice(&s.times_to_alert);
    }
    let ratio = |num: usize, den: usize| {
        if den == 0 {
            1.0
        } else {
            num as f64 / den as f64
        }
    };
    let precision = ratio(t.true_positives, t.true_positives + t.false_alarms);
    let recall = ratio(t.true_positives, t.true_positives + t.misses);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    let tta = &t.times_to_alert;
    Summary {
        precision,
        recall,
        f1,
        time_to_alert_mean_s: (!tta.is_empty()).then(|| tta.iter().sum::<f64>() / tta.len() as f64),
        time_to_alert_max_s: tta.iter().copied().reduce(f64::max),
        false_alarms_per_hour: if video_s > 0.0 {
            t.false_alarms as f64 * 3600.0 / video_s
        } else {
            0.0
        },
        video_hours: video_s / 3600.0,
        counts: t,
        views_not_as_labelled: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::{Cleared, Dumping};

    fn label(kind: EventKind, start_s: f64, end_s: f64) -> LabelledEvent {
        LabelledEvent {
            kind,
            start_s,
            end_s,
        }
    }

    fn raised(kind: EventKind, at_s: f64) -> Raised {
        Raised { kind, at_s }
    }

    #[test]
    fn a_view_counts_when_said_within_a_minute_and_none_is_lost_unlabelled() {
        let moved = LabelledView {
            kind: ViewKind::Moved,
            start_s: 40.0,
        };
        let said = [(10.0, View::Home), (60.5, View::Moved)];
        assert!(view_as_labelled(Some(&moved), &said));
        assert!(!view_as_labelled(
            Some(&moved),
            &[(10.0, View::Home), (101.0, View::Moved)]
        ));
        assert!(!view_as_labelled(
            Some(&moved),
            &[(10.0, View::Home), (60.0, View::Covered)]
        ));
        assert!(!view_as_labelled(Some(&moved), &[(10.0, View::Home)]));
        assert!(view_as_labelled(None, &[(10.0, View::Home)]));
        assert!(!view_as_labelled(None, &said));
    }

    #[test]
    fn matching_follows_the_contract() {
        let labels = [
            label(Dumping, 10.0, 45.0),
            label(Dumping, 30.0, 70.0),
            label(Cleared, 80.0, 120.0),
        ];
        // 40 falls in both dumping windows: it takes the first unmatched (10..45); 50 then takes
        // the second; 5 is before any window; the cleared event at 90 matches; 100 is a second
        // cleared with no label left.
        let s = score_clip(
            &labels,
            &[
                raised(Dumping, 50.0),
                raised(Dumping, 40.0),
                raised(Dumping, 5.0),
                raised(Cleared, 90.0),
                raised(Cleared, 100.0),
            ],
        );
        assert_eq!((s.true_positives, s.false_alarms, s.misses), (3, 2, 0));
        assert_eq!(s.times_to_alert, vec![30.0, 20.0, 10.0]);
    }

    #[test]
    fn kinds_do_not_cross_and_late_alerts_are_misses_plus_false_alarms() {
        let labels = [label(Dumping, 10.0, 45.0)];
        let s = score_clip(&labels, &[raised(Cleared, 20.0), raised(Dumping, 46.0)]);
        assert_eq!((s.true_positives, s.false_alarms, s.misses), (0, 2, 1));
    }

    #[test]
    fn summary_figures() {
        let a = score_clip(&[label(Dumping, 10.0, 45.0)], &[raised(Dumping, 38.0)]);
        let b = score_clip(&[label(Dumping, 0.0, 40.0)], &[]);
        let c = score_clip(&[], &[raised(Dumping, 3.0)]);
        let sum = summarize(&[a, b, c], 1800.0);
        assert_eq!((sum.precision, sum.recall), (0.5, 0.5));
        assert!((sum.f1 - 0.5).abs() < 1e-12);
        assert_eq!(sum.time_to_alert_mean_s, Some(28.0));
        assert_eq!(sum.time_to_alert_max_s, Some(28.0));
        assert_eq!(sum.false_alarms_per_hour, 2.0);
        // Nothing labelled and nothing raised: perfect, not NaN.
        let empty = summarize(&[score_clip(&[], &[])], 60.0);
        assert_eq!((empty.precision, empty.recall, empty.f1), (1.0, 1.0, 1.0));
        assert_eq!(empty.time_to_alert_mean_s, None);
    }
}
