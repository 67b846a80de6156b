//! A ring of time buckets holding request and error counts: a sliding window in fixed memory.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_signals::{Counts, Timestamp};

/// Buckets per window: the window slides in steps of `window / BUCKETS`.
pub(crate) const BUCKETS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Slot {
    /// The bucket number (time / bucket length) plus one; 0 marks an empty slot.
    epoch: u64,
    requests: u64,
    errors: u64,
}

/// Counts over the last `window`, in [`BUCKETS`] buckets. Data older than the window is dropped on
/// arrival; memory never grows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CountRing {
    bucket_ms: u64,
    slots: Vec<Slot>,
}

impl CountRing {
    pub fn new(window: Duration) -> Self {
        CountRing {
            bucket_ms: Self::bucket_ms(window),
            slots: vec![Slot::default(); BUCKETS],
        }
    }

    fn bucket_ms(window: Duration) -> u64 {
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        ms.div_ceil(BUCKETS as u64).max(1)
    }

    /// Whether a deserialized ring has the shape `window` gives.
    pub fn fits(&self, window: Duration) -> bool {
        self.slots.len() == BUCKETS && self.bucket_ms == Self::bucket_ms(window)
    }

    fn epoch(&self, at: Timestamp) -> u64 {
        (at.as_millis() / self.bucket_ms).saturating_add(1)
    }

    /// Adds counts observed at `at`. Counts older than the window are dropped.
    pub fn add(&mut self, at: Timestamp, c: Counts) {
        let epoch = self.epoch(at);
        let i = (epoch % BUCKETS as u64) as usize;
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if slot.epoch == epoch {
            slot.requests = slot.requests.saturating_add(c.requests());
            slot.errors = slot.errors.saturating_add(c.errors());
        } else if slot.epoch < epoch {
            *slot = Slot {
                epoch,
                requests: c.requests(),
                errors: c.errors(),
            };
        }
    }

    /// The counts of the window ending at `at`. A bucket is in the window when it is fewer
    /// than [`BUCKETS`] behind `at`'s, counted by subtraction: bucket numbers saturate at
    /// `u64::MAX`, where adding to them would overflow.
    pub fn sum(&self, at: Timestamp) -> Counts {
        let now = self.epoch(at);
        let (mut requests, mut errors) = (0u64, 0u64);
        for s in &self.slots {
            if s.epoch != 0 && s.epoch <= now && now - s.epoch < BUCKETS as u64 {
                requests = requests.saturating_add(s.requests);
                errors = errors.saturating_add(s.errors);
            }
        }
        Counts::new(requests, errors.min(requests)).unwrap_or_default()
    }

    /// Checks a deserialized ring named `name` against the `clock` of its trigger: no bucket is
    /// dated past it, as a bucket dated ahead would drop every count that falls into its slot.
    pub fn check_state(&self, name: &str, clock: Timestamp) -> Result<(), String> {
        let now = self.epoch(clock);
        match self.slots.iter().enumerate().find(|(_, s)| s.epoch > now) {
            Some((i, s)) => Err(format!(
                "{name}.slots[{i}].epoch {} is later than the clock {clock} (bucket {now})",
                s.epoch
            )),
            None => Ok(()),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(r: u64, e: u64) -> Counts {
        Counts::new(r, e).unwrap()
    }

    #[test]
    fn sums_the_window_and_forgets_older_buckets() {
        // 60 s window, 5 s buckets.
        let mut ring = CountRing::new(Duration::from_secs(60));
        for s in 0..120u64 {
            ring.add(Timestamp::from_millis(s * 1_000), c(10, 1));
        }
        let sum = ring.sum(Timestamp::from_millis(119_000));
        assert_eq!(sum, c(600, 60));
        // Long silence: nothing left.
        assert_eq!(
            ring.sum(Timestamp::from_millis(1_000_000)),
            Counts::default()
        );
    }

    #[test]
    fn the_last_bucket_of_time_sums_without_overflow() {
        // 1 ms buckets: the bucket number saturates at `u64::MAX`.
        let mut ring = CountRing::new(Duration::from_millis(BUCKETS as u64));
        let end = Timestamp::from_millis(u64::MAX);
        ring.add(end, c(3, 1));
        assert_eq!(ring.sum(end), c(3, 1));
    }

    #[test]
    fn late_counts_outside_the_window_are_dropped() {
        let mut ring = CountRing::new(Duration::from_secs(60));
        ring.add(Timestamp::from_millis(200_000), c(5, 5));
        ring.add(Timestamp::from_millis(10_000), c(100, 100));
        assert_eq!(ring.sum(Timestamp::from_millis(200_000)), c(5, 5));
        assert!(ring.fits(Duration::from_secs(60)) && !ring.fits(Duration::from_secs(30)));
        // Late counts still inside the window are kept.
        ring.add(Timestamp::from_millis(190_000), c(7, 1));
        assert_eq!(ring.sum(Timestamp::from_millis(200_000)), c(12, 6));
    }
}
