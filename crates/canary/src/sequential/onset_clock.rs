//! When the candidate starts a test follows began, so that a judge names a late regression's
//! onset by time, not only by the number of samples before it.
//!
//! The tests know samples, not time: a candidate start is "after sample `t`". The judges see each
//! sample's window, so they note the end of the sample at which a followed candidate was taken.
//! A test follows at most a few candidates (the heaviest of each bet), so the clock keeps at most
//! that many marks.

use serde::{Deserialize, Serialize};
use serin_signals::Timestamp;

/// One followed candidate start: the samples before it and the end of the last of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Mark {
    after: u64,
    at: Timestamp,
}

/// The times of the candidate starts a test follows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(super) struct OnsetClock(Vec<Mark>);

impl OnsetClock {
    /// Notes the sample that brought the test to `updates` samples and ended at `end`, given the
    /// starts the test follows now (`followed`, each as the samples before it): one taken at this
    /// sample is marked with `end`, and the marks of starts no longer followed are dropped. The
    /// test's own first start (after 0 samples) is the analysis's start and needs no mark.
    pub(super) fn note(&mut self, followed: &[u64], updates: u64, end: Timestamp) {
        self.0.retain(|m| followed.contains(&m.after));
        if updates > 0 && followed.contains(&updates) && !self.0.iter().any(|m| m.after == updates)
        {
            self.0.push(Mark {
                after: updates,
                at: end,
            });
        }
    }

    /// When the start after `after` samples began, if it was followed while this clock ran (a
    /// state saved before the clock was kept has no marks).
    pub(super) fn time_of(&self, after: u64) -> Option<Timestamp> {
        self.0.iter().find(|m| m.after == after).map(|m| m.at)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Timestamp {
        Timestamp::from_millis(s * 1_000)
    }

    #[test]
    fn marks_a_start_taken_at_this_sample_and_forgets_one_no_longer_followed() {
        let mut clock = OnsetClock::default();
        clock.note(&[0, 0, 0], 1, t(1));
        assert!(clock.is_empty(), "the analysis's own start needs no mark");
        clock.note(&[0, 2, 0], 2, t(2));
        clock.note(&[3, 2, 0], 3, t(3));
        assert_eq!(
            (clock.time_of(2), clock.time_of(3)),
            (Some(t(2)), Some(t(3)))
        );
        // A start followed before is not marked again with a later time.
        clock.note(&[3, 2, 0], 4, t(4));
        assert_eq!(clock.time_of(3), Some(t(3)));
        clock.note(&[3, 5, 5], 5, t(5));
        assert_eq!((clock.time_of(2), clock.time_of(5)), (None, Some(t(5))));
        assert_eq!(clock.0.len(), 2);
    }

    #[test]
    fn a_start_not_seen_taken_has_no_time() {
        let mut clock = OnsetClock::default();
        // A state saved before the clock was kept follows a start taken before.
        clock.note(&[7, 0, 0], 9, t(9));
        assert_eq!(clock.time_of(7), None);
        clock.clear();
        assert!(clock.is_empty());
    }
}
