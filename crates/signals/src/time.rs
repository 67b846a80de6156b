//! Time as data: [`Timestamp`] and [`Window`].
//!
//! Pure cores never read a clock; they receive `now` as a [`Timestamp`]. Keeping time as plain
//! milliseconds makes every observation and decision serializable and replayable exactly.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Milliseconds since the Unix epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Converts a wall-clock reading; times before the epoch clamp to it. Only shells call this:
    /// pure cores are handed their `now`.
    pub fn from_system_time(t: SystemTime) -> Self {
        let millis = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    /// This timestamp plus `d`, saturating at the end of representable time.
    pub fn saturating_add(self, d: Duration) -> Self {
        let millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }

    /// This timestamp minus `d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        let millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(millis))
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// The last millisecond RFC 3339 can write, 9999-12-31T23:59:59.999Z.
const LAST_RFC3339_MILLIS: u64 = 253_402_300_799_999;

/// RFC 3339 with milliseconds (`2023-11-14T22:13:20.000Z`). A timestamp past the year 9999,
/// which RFC 3339 cannot write (a clock or a record gone wrong), is written as milliseconds
/// since the epoch (`253402300800000 ms since the Unix epoch`).
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > LAST_RFC3339_MILLIS {
            return write!(f, "{} ms since the Unix epoch", self.0);
        }
        let t = UNIX_EPOCH + Duration::from_millis(self.0);
        write!(f, "{}", humantime::format_rfc3339_millis(t))
    }
}

/// A half-open interval of time `[start, end)` over which an observation was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "WindowRepr", into = "WindowRepr")]
pub struct Window {
    start: Timestamp,
    end: Timestamp,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowRepr {
    start: Timestamp,
    end: Timestamp,
}

impl TryFrom<WindowRepr> for Window {
    type Error = Error;
    fn try_from(r: WindowRepr) -> Result<Self> {
        Window::new(r.start, r.end)
    }
}

impl From<Window> for WindowRepr {
    fn from(w: Window) -> Self {
        WindowRepr {
            start: w.start,
            end: w.end,
        }
    }
}

impl Window {
    /// The window `[start, end)`; `end` before `start` is an error.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self> {
        if end < start {
            return Err(Error::invalid(
                "window.end",
                end.as_millis(),
                format!("ends before window.start {}", start.as_millis()),
            ));
        }
        Ok(Window { start, end })
    }

    /// The window of length `length` that ends at `end` (clamped at the epoch).
    pub fn ending_at(end: Timestamp, length: Duration) -> Self {
        Window {
            start: end.saturating_sub(length),
            end,
        }
    }

    /// Inclusive start.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// Exclusive end.
    pub fn end(&self) -> Timestamp {
        self.end
    }

    /// `end - start`.
    pub fn length(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }

    /// Whether `t` lies in `[start, end)`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// Whether the two windows share any instant (an empty window holds none).
    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < self.end
            && other.start < other.end
            && self.start < other.end
            && other.start < self.end
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rejects_end_before_start() {
        let err = Window::new(Timestamp::from_millis(10), Timestamp::from_millis(5)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("window.end") && msg.contains('5'), "{msg}");
    }

    #[test]
    fn window_serde_validates() {
        let bad = r#"{"start":10,"end":5}"#;
        assert!(serde_json::from_str::<Window>(bad).is_err());
        let w: Window = serde_json::from_str(r#"{"start":5,"end":10}"#).unwrap();
        assert_eq!(w.length(), Duration::from_millis(5));
        assert!(w.contains(Timestamp::from_millis(5)) && !w.contains(Timestamp::from_millis(10)));
    }

    #[test]
    fn timestamp_arithmetic_saturates() {
        let t = Timestamp::from_millis(1_000);
        assert_eq!(t.saturating_sub(Duration::from_secs(5)), Timestamp::EPOCH);
        assert_eq!(
            Timestamp::from_millis(u64::MAX)
                .saturating_add(Duration::from_secs(1))
                .as_millis(),
            u64::MAX
        );
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_millis(2_000)),
            Duration::ZERO
        );
        assert_eq!(Timestamp::EPOCH.to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp::from_millis(LAST_RFC3339_MILLIS).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_millis(u64::MAX).to_string(),
            "18446744073709551615 ms since the Unix epoch"
        );
    }

    /// An empty window holds no instant, so it shares none with another window.
    #[test]
    fn an_empty_window_overlaps_nothing() {
        let at = Timestamp::from_millis;
        let empty = Window::new(at(5), at(5)).unwrap();
        let around = Window::new(at(0), at(10)).unwrap();
        assert!(!empty.overlaps(&around), "{empty} overlaps {around}");
        assert!(!around.overlaps(&empty), "{around} overlaps {empty}");
        assert!(around.overlaps(&Window::new(at(9), at(12)).unwrap()));
    }
}
