//! The known-effect CUSUM oracle of the rows whose regression starts late.
//!
//! The likelihood-ratio oracle of those rows knows the onset, so it is no bound for a test that
//! must find the onset itself. Page's CUSUM `C_t = max(0, C_{t−1} + ℓ_t)` on the known-effect
//! log-likelihood ratios `ℓ_t` does not know the onset, and among tests that raise false alarms
//! as rarely it detects a change about as fast as any can (Lorden 1971; Moustakides 1986). No
//! closed form gives the threshold at which it raises false alarms in a stated share of runs
//! before the onset, so each run records its trace and the threshold is read from the runs
//! themselves, after the fact: the `1 − α` quantile of the largest value before the onset. The
//! oracle then knows the effect and the share of its runs that cross early, but not the onset:
//! the best a test that must find the onset could hope for.

/// One run's CUSUM: the largest value before the onset, and after it every new high up to
/// [`CUSUM_CAP`], enough to read the crossing time of any threshold below the cap.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CusumTrace {
    value: f64,
    before_max: f64,
    after_max: f64,
    highs: Vec<High>,
    /// Canary requests served after the onset, over the whole run.
    canary_requests: u64,
}

/// A new high of the statistic after the onset.
#[derive(Debug, Clone, Copy, PartialEq)]
struct High {
    after_s: u32,
    value: f64,
    canary_requests: u64,
}

/// The statistic is followed until it reaches this many nats; thresholds lie well below it.
pub const CUSUM_CAP: f64 = 40.0;

/// Where a run's CUSUM first reached a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// Before the onset: a false alarm.
    Early,
    /// This many seconds after the onset, with the canary requests served since the onset.
    After {
        /// Seconds from the onset.
        seconds: u32,
        /// Canary requests served from the onset to the crossing.
        canary_requests: u64,
    },
    /// Never within the run; the canary requests served after the onset.
    Never {
        /// Canary requests served after the onset.
        canary_requests: u64,
    },
}

impl CusumTrace {
    /// Adds one second's log-likelihood ratio; `after_s` is the seconds since the onset (`0`
    /// before it) and `canary_requests` the canary's requests since the onset.
    pub fn add(&mut self, llr: f64, after_s: u32, canary_requests: u64) {
        self.value = (self.value + llr).max(0.0);
        self.canary_requests = canary_requests;
        if after_s == 0 {
            self.before_max = self.before_max.max(self.value);
        } else if self.value > self.after_max && !self.done() {
            self.after_max = self.value;
            self.highs.push(High {
                after_s,
                value: self.value,
                canary_requests,
            });
        }
    }

    /// Whether the statistic has reached [`CUSUM_CAP`] after the onset.
    pub fn done(&self) -> bool {
        self.after_max >= CUSUM_CAP
    }

    /// When the statistic first reached `threshold` (below [`CUSUM_CAP`]).
    pub fn crossing(&self, threshold: f64) -> Crossing {
        if self.before_max >= threshold {
            return Crossing::Early;
        }
        match self.highs.iter().find(|h| h.value >= threshold) {
            Some(h) => Crossing::After {
                seconds: h.after_s,
                canary_requests: h.canary_requests,
            },
            None => Crossing::Never {
                canary_requests: self.canary_requests,
            },
        }
    }
}

/// The lowest threshold at which at most a share `alpha` of `traces` cross before the onset,
/// capped below [`CUSUM_CAP`].
pub fn threshold(traces: &[&CusumTrace], alpha: f64) -> f64 {
    let mut before: Vec<f64> = traces.iter().map(|t| t.before_max).collect();
    before.sort_by(f64::total_cmp);
    let allowed = (alpha * before.len() as f64).floor() as usize;
    // The `allowed` largest values may cross; the threshold sits just above the next one.
    let h = match before.len().checked_sub(allowed + 1) {
        Some(i) => before[i].next_up(),
        None => 0.0,
    };
    h.min(CUSUM_CAP.next_down())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(before: &[f64], after: &[f64]) -> CusumTrace {
        let mut t = CusumTrace::default();
        for &l in before {
            t.add(l, 0, 0);
        }
        for (i, &l) in after.iter().enumerate() {
            let s = i as u32 + 1;
            t.add(l, s, u64::from(s) * 10);
        }
        t
    }

    #[test]
    fn the_statistic_restarts_at_zero_and_crossings_are_read_from_the_highs() {
        // Before: 2, 0 (floored), 1 → max 2. After: 1.5, 3, 2.5, 5.
        let t = trace(&[2.0, -3.0, 1.0], &[0.5, 1.5, -0.5, 2.5]);
        assert_eq!(t.crossing(2.0), Crossing::Early);
        assert_eq!(
            t.crossing(2.5),
            Crossing::After {
                seconds: 2,
                canary_requests: 20
            }
        );
        assert_eq!(
            t.crossing(4.0),
            Crossing::After {
                seconds: 4,
                canary_requests: 40
            }
        );
        assert_eq!(
            t.crossing(6.0),
            Crossing::Never {
                canary_requests: 40
            }
        );
    }

    #[test]
    fn recording_stops_at_the_cap() {
        let t = trace(&[], &[30.0, 30.0, 30.0]);
        assert!(t.done());
        assert_eq!(t.highs.len(), 2);
    }

    #[test]
    fn the_threshold_lets_at_most_alpha_of_the_runs_cross_early() {
        let traces: Vec<CusumTrace> = (1..=100)
            .map(|i| trace(&[f64::from(i) / 10.0], &[]))
            .collect();
        let refs: Vec<&CusumTrace> = traces.iter().collect();
        let h = threshold(&refs, 0.05);
        let early = traces
            .iter()
            .filter(|t| t.crossing(h) == Crossing::Early)
            .count();
        assert_eq!(early, 5, "threshold {h}");
        // With too few runs to spare any, no run crosses early.
        let h = threshold(&refs[..10], 0.05);
        assert!(refs[..10].iter().all(|t| t.crossing(h) != Crossing::Early));
        assert_eq!(threshold(&[], 0.05), 0.0);
    }
}
