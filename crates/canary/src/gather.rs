//! An interval gathered one metric at a time, for the judges that analyse several metrics
//! together ([`FlaggerAnalysis`](crate::threshold::FlaggerAnalysis),
//! [`KayentaAnalysis`](crate::kayenta::KayentaAnalysis)): the controller feeds them one
//! metric's sample at a time, and they judge a window once each of their entries has had its
//! value, or once a later window begins.

use serde::{Deserialize, Serialize};
use serin_signals::{Metric, Window};

use crate::judge::Sample;
use crate::{Error, Result};

/// Each of `metrics` once, in their order: what a judge gathering entries of them reads
/// ([`Judge::analysed_metrics`](crate::judge::Judge::analysed_metrics)).
pub(crate) fn distinct<'a>(metrics: impl IntoIterator<Item = &'a Metric>) -> Vec<Metric> {
    let mut out: Vec<Metric> = Vec::new();
    for m in metrics {
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    out
}

/// The window being gathered and, per entry of the judge, the value fed (`None`: not yet).
///
/// Journalled, a fed value is written `{"value": …}` and one not fed `null`, so that a value
/// that is itself empty (a metric fed without data) reads back as fed: written bare, both
/// would be `null`, and a gathering with a window but nothing fed would be refused on load.
/// Bare values, as written before, still read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>")
)]
pub(crate) struct Gathering<T> {
    window: Option<Window>,
    #[serde(with = "entries")]
    values: Vec<Option<T>>,
}

/// The journalled form of [`Gathering`]'s values.
mod entries {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Fed<'a, T> {
        value: &'a T,
    }

    #[derive(Deserialize)]
    #[serde(untagged, deny_unknown_fields)]
    enum Entry<T> {
        Fed { value: T },
        Bare(T),
    }

    pub(super) fn serialize<S: Serializer, T: Serialize>(
        values: &[Option<T>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(values.iter().map(|v| v.as_ref().map(|value| Fed { value })))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<Option<T>>, D::Error> {
        let entries: Vec<Option<Entry<T>>> = Vec::deserialize(d)?;
        Ok(entries
            .into_iter()
            .map(|e| {
                e.map(|e| match e {
                    Entry::Fed { value } | Entry::Bare(value) => value,
                })
            })
            .collect())
    }
}

impl<T: Clone> Gathering<T> {
    /// Nothing gathered, for `entries` entries.
    pub(crate) fn new(entries: usize) -> Self {
        Gathering {
            window: None,
            values: vec![None; entries],
        }
    }

    /// Checks one read back from a journal, naming it `path`: one value per entry, not all fed
    /// (a whole interval is taken at once), and a window exactly when something was fed.
    pub(crate) fn check_saved(&self, entries: usize, path: &str) -> Result<()> {
        let fed = self.values.iter().any(Option::is_some);
        let whole = self.values.iter().all(Option::is_some);
        if self.values.len() != entries || fed != self.window.is_some() || whole {
            return Err(Error::invalid_input(
                path,
                format!("{} values", self.values.len()),
                format!(
                    "must hold one value per entry ({entries}), not all fed (a whole interval \
                     is taken at once), and a window exactly when one was fed"
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a sample of a window older than the one being gathered, and a second sample of
    /// a metric for the same window; `metric_of(i)` is the metric entry `i` reads.
    pub(crate) fn accepts<'m>(
        &self,
        sample: &Sample<'_>,
        metric_of: impl Fn(usize) -> &'m Metric,
    ) -> Result<()> {
        let window = sample.window();
        let Some(w) = self.window else {
            return Ok(());
        };
        if window.end() < w.end() {
            return Err(Error::invalid_input(
                "sample.window",
                window,
                format!("is older than the interval being gathered ({w})"),
            ));
        }
        let again = window == w
            && self
                .values
                .iter()
                .enumerate()
                .any(|(i, v)| v.is_some() && metric_of(i) == sample.metric());
        if again {
            return Err(Error::invalid_input(
                "sample.metric",
                sample.metric(),
                format!("a second sample of this metric for the window {w}"),
            ));
        }
        Ok(())
    }

    /// Whether a sample of `window` ends the interval being gathered (it belongs to another).
    pub(crate) fn ends_with(&self, window: Window) -> bool {
        self.window.is_some_and(|w| w != window)
    }

    /// Records entry `i`'s value for `window`.
    pub(crate) fn put(&mut self, window: Window, i: usize, value: T) {
        self.window = Some(window);
        self.values[i] = Some(value);
    }

    /// Whether every entry has its value.
    pub(crate) fn is_whole(&self) -> bool {
        self.values.iter().all(Option::is_some)
    }

    /// The values gathered, `missing` for entries never fed, and starts afresh.
    pub(crate) fn take(&mut self, missing: T) -> Vec<T> {
        let values = self
            .values
            .iter_mut()
            .map(|v| v.take().unwrap_or_else(|| missing.clone()))
            .collect();
        self.window = None;
        values
    }

    /// Forgets what was gathered.
    pub(crate) fn clear(&mut self) {
        self.window = None;
        self.values.fill(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_signals::Timestamp;

    fn second(s: u64) -> Window {
        Window::new(
            Timestamp::from_millis(s * 1000),
            Timestamp::from_millis((s + 1) * 1000),
        )
        .unwrap()
    }

    #[test]
    fn gathers_a_window_and_takes_it_with_the_missing_filled_in() {
        let mut g: Gathering<u32> = Gathering::new(3);
        assert!(!g.ends_with(second(0)), "nothing gathered yet");
        g.put(second(0), 0, 7);
        g.put(second(0), 2, 9);
        assert!(!g.is_whole());
        assert!(g.ends_with(second(1)) && !g.ends_with(second(0)));
        assert!(g.check_saved(3, "pending").is_ok());
        assert_eq!(g.take(0), [7, 0, 9]);
        assert_eq!(g, Gathering::new(3));
    }

    #[test]
    fn an_empty_value_fed_reads_back_as_fed_and_bare_values_still_read() {
        let mut g: Gathering<Option<f64>> = Gathering::new(3);
        g.put(second(0), 0, None);
        g.put(second(0), 1, Some(0.5));
        let text = serde_json::to_string(&g).unwrap();
        assert!(
            text.contains(r#"[{"value":null},{"value":0.5},null]"#),
            "{text}"
        );
        let back: Gathering<Option<f64>> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, g);
        let bare = r#"{"window":null,"values":[null,0.5,null]}"#;
        let old: Gathering<Option<f64>> = serde_json::from_str(bare).unwrap();
        assert_eq!(old.values, [None, Some(Some(0.5)), None]);
    }

    #[test]
    fn a_saved_gathering_that_could_not_have_been_left_is_refused() {
        let mut whole: Gathering<u32> = Gathering::new(2);
        whole.put(second(0), 0, 1);
        whole.put(second(0), 1, 2);
        let msg = whole.check_saved(2, "x.pending").unwrap_err().to_string();
        assert!(msg.contains("x.pending"), "{msg}");
        let mut empty_with_window: Gathering<u32> = Gathering::new(2);
        empty_with_window.window = Some(second(0));
        assert!(empty_with_window.check_saved(2, "p").is_err());
        assert!(Gathering::<u32>::new(3).check_saved(2, "p").is_err());
    }
}
