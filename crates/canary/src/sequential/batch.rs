//! The robust count test for overdispersed traffic: per-batch log-ratios and a sequential t-test.
//!
//! The per-request [`CountTest`](super::CountTest) assumes that, given the errors of a sample,
//! each came from the canary independently with a fixed probability. Real error rates wander:
//! a dependency hiccups, a noisy client retries, and each arm's rate is multiplied by its own
//! slowly varying factor. The errors then arrive in clumps, the per-request model counts a clump
//! as strong evidence, and its false rollback rate exceeds `α`.
//!
//! This test instead closes a **batch** once it spans [`BatchCountConfig::min_samples`] samples
//! and the smaller arm expects [`BatchCountConfig::min_expected_errors`] errors under the null,
//! takes one statistic per batch,
//! the log-odds of the batch's canary errors against the null,
//!
//! ```text
//! x_k = ln((c_k + ½)/(b_k + ½)) − ln(θ₀/(1 − θ₀)),   θ₀ = ρ_k r₀ / (ρ_k r₀ + 1 − ρ_k)
//! ```
//!
//! (≈ the batch's log rate ratio over `r₀`; `ρ_k` is the batch's share of requests, and for a
//! batch that spans changes of the split `θ₀` is the mean over its errors of each split's, see
//! [`BatchCountTest::start_segment`]), and runs the scale-invariant sequential t-test on
//! them: the batch-to-batch variance, overdispersion included, is **estimated** from the batches.
//! The test rejects when the Bayes factor reaches `1/α` with the mean on the "canary worse" side.
//! Its guarantee is Ville's inequality for the t-test martingale, exact when the batch statistics
//! are independent and Gaussian with a common variance; with batches of at least a few expected
//! errors per arm and rate wanderings shorter than a batch this holds closely, and the harness
//! measures it. It is slower than the per-request test on clean traffic (it needs a few batches),
//! so it is the robust mode, not the default.

use serde::{Deserialize, Serialize};

use super::counts::share_of;
use super::settings::{
    MARGIN, PRIOR_VARIANCE, Sides, check_above, check_at_least, check_min_samples, check_open_unit,
    check_rejection,
};
use super::ttest::SequentialT;
use crate::judge::Interval;
use crate::{Error, Result};

/// Settings of a [`BatchCountTest`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BatchCountConfig {
    /// The false-rollback probability bound, in `(0, 1)`. Default `0.05`.
    pub alpha: f64,
    /// Fail only if the canary's error rate is more than `(1 + margin)` times the baseline's.
    /// Default `0`.
    pub margin: f64,
    /// One- or two-sided. Default [`Sides::CanaryWorse`].
    pub sides: Sides,
    /// A batch closes once the arm with the smaller share expects this many errors under the
    /// null. Default `8`.
    pub min_expected_errors: f64,
    /// A batch also spans at least this many samples, so that it outlasts the time over which
    /// error rates wander (batch statistics must be close to independent). Default `30` (half a
    /// minute of per-second samples: several times the few seconds a per-second wander with
    /// autocorrelation 0.6 takes to forget itself; raise it for rates that wander over minutes).
    ///
    /// Shorter batches decide sooner but tolerate only faster wander. In the evaluation harness
    /// (per-arm log-rate wander, stationary sd 0.5), 30 keeps false rollbacks at about 2% for
    /// per-second autocorrelations of 0.3, 0.6 and 0.85; 10 halves the time to catch a doubled
    /// error rate at a 50% share, but lets false rollbacks reach about 6% at 0.85.
    pub min_samples: u64,
    /// The prior variance `g` of the standardized effect (the batch mean shift over the batch
    /// sd) in the t-test mixture. Default `4`: a batch holds at least
    /// [`min_expected_errors`](Self::min_expected_errors) errors in the smaller arm, so its
    /// log-ratio has an sd of at most about 0.5 (an even split), 0.35 where the other arm holds
    /// many more (a small canary share), and the ×1.5–×5 regressions a canary is there to catch
    /// are standardized effects of about 1 to 4. A larger `g` also lowers the number of
    /// batches the t-test needs before it can reject at all: its Bayes factor after `n` batches
    /// is at most `(1 + n·g)^((n − 1)/2)`, which first reaches 20 (`α = 0.05`) at four batches
    /// with `g = 4` and at five with `g = 1`.
    pub prior_variance: f64,
}

impl Default for BatchCountConfig {
    fn default() -> Self {
        BatchCountConfig {
            alpha: 0.05,
            margin: 0.0,
            sides: Sides::CanaryWorse,
            min_expected_errors: 8.0,
            min_samples: 30,
            prior_variance: 4.0,
        }
    }
}

impl BatchCountConfig {
    /// The defaults with the given `alpha`.
    pub fn new(alpha: f64) -> Self {
        BatchCountConfig {
            alpha,
            ..Self::default()
        }
    }

    /// With the practical-significance margin (a fraction).
    pub fn with_margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }

    /// Checks every field; `path` prefixes the field names in errors.
    pub fn validate(&self, path: &str) -> Result<()> {
        check_open_unit(&format!("{path}.alpha"), self.alpha)?;
        check_at_least(path, "margin", self.margin, 0.0, MARGIN)?;
        check_min_samples(path, self.min_samples)?;
        check_at_least(
            path,
            "minExpectedErrors",
            self.min_expected_errors,
            1.0,
            "must be a finite number of errors >= 1",
        )?;
        check_above(
            path,
            "priorVariance",
            self.prior_variance,
            0.0,
            PRIOR_VARIANCE,
        )
    }
}

/// The open batch.
///
/// Under the null each error comes from the canary with the chance `θ₀` of the split it
/// arrived at. Within one split, pooling the requests gives that chance whatever the error
/// rate does over time. Across splits it does not: with a rate common to both arms that is
/// higher at a 50% share than at 5%, the batch's pooled share would expect the canary to hold
/// far fewer of its errors than it does. So the errors of the splits the batch spanned before
/// ([`BatchCountTest::start_segment`]) are expected in the canary at their own split's `θ₀`,
/// and the batch's `θ₀` is the mean over all its errors.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OpenBatch {
    samples: u64,
    /// Requests since the split last changed.
    baseline_requests: u64,
    canary_requests: u64,
    baseline_errors: u64,
    canary_errors: u64,
    /// Errors of the batch before the split last changed.
    #[serde(default)]
    earlier_errors: u64,
    /// How many of those the canary holds in expectation under the null.
    #[serde(default)]
    earlier_canary_expected: f64,
}

impl OpenBatch {
    fn errors(&self) -> u64 {
        self.baseline_errors.saturating_add(self.canary_errors)
    }

    /// `θ₀` at the current split: the canary's chance of holding an error under the null.
    fn theta0(&self, r0: f64) -> f64 {
        let share = share_of(self.canary_requests, self.baseline_requests);
        share * r0 / (share * r0 + 1.0 - share)
    }

    /// The canary's errors expected under the null over the whole batch.
    fn canary_expected(&self, r0: f64) -> f64 {
        let now = self.errors().saturating_sub(self.earlier_errors);
        if now == 0 {
            return self.earlier_canary_expected;
        }
        self.earlier_canary_expected + now as f64 * self.theta0(r0)
    }

    /// `θ₀` of the batch: [`theta0`](Self::theta0) if it spans one split, else the mean over
    /// its errors of each one's split's.
    fn batch_theta0(&self, r0: f64) -> f64 {
        if self.earlier_errors == 0 {
            return self.theta0(r0);
        }
        self.canary_expected(r0) / self.errors() as f64
    }

    /// Checks a batch read back: the earlier splits' errors are some of the batch's, and the
    /// canary's expected share of them a number between none and all of them.
    fn check(&self, path: &str) -> Result<()> {
        if self.earlier_errors > self.errors() {
            return Err(Error::invalid_input(
                format!("{path}.earlierErrors"),
                self.earlier_errors,
                "must be at most the batch's errors (baselineErrors + canaryErrors)",
            ));
        }
        let e = self.earlier_canary_expected;
        if !(0.0..=self.earlier_errors as f64).contains(&e) {
            return Err(Error::invalid_input(
                format!("{path}.earlierCanaryExpected"),
                e,
                "must be a number of errors between 0 and earlierErrors",
            ));
        }
        Ok(())
    }
}

/// The robust, batch-based sequential count test (see the module docs of
/// [`sequential`](super)).
///
/// ```
/// use serin_canary::sequential::{BatchCountConfig, BatchCountTest};
///
/// let mut test = BatchCountTest::new(BatchCountConfig::new(0.05))?;
/// let mut rejected = false;
/// for i in 0..3_600u64 {
///     // 50/50 split, baseline 0.5% errors, canary 1.5%, with some jitter between seconds.
///     rejected = test.update(200, 1 + i % 2, 200, 3 + i % 3);
///     if rejected { break; }
/// }
/// assert!(rejected);
/// # Ok::<(), serin_canary::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct BatchCountTest {
    #[serde(deserialize_with = "crate::checked::config")]
    config: BatchCountConfig,
    open: OpenBatch,
    t: SequentialT,
    updates: u64,
    rejected_at: Option<u64>,
    rejected_worse: bool,
}

impl Serialize for BatchCountTest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        BatchCountTest::serialize(self, s)
    }
}

/// A state read back must test with the prior its settings name, hold a t-test's state
/// (`SequentialT::check`) and an open batch's (`OpenBatch::check`), and a one-sided test's
/// rejection must be for a worse canary.
impl<'de> Deserialize<'de> for BatchCountTest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let t = BatchCountTest::deserialize(d)?;
        t.t.check("batchCountTest.t", t.config.prior_variance)
            .and_then(|()| t.open.check("batchCountTest.open"))
            .and_then(|()| {
                check_rejection(
                    "batchCountTest",
                    t.config.sides,
                    t.rejected_at.is_some(),
                    t.rejected_worse,
                )
            })
            .map_err(serde::de::Error::custom)?;
        Ok(t)
    }
}

impl BatchCountTest {
    /// A test with the given settings; invalid settings are an error naming the field.
    pub fn new(config: BatchCountConfig) -> Result<Self> {
        config.validate("batchCountTest")?;
        Ok(BatchCountTest {
            config,
            open: OpenBatch::default(),
            t: SequentialT::new(config.prior_variance),
            updates: 0,
            rejected_at: None,
            rejected_worse: false,
        })
    }

    /// The settings.
    pub fn config(&self) -> &BatchCountConfig {
        &self.config
    }

    fn null_ratio(&self) -> f64 {
        1.0 + self.config.margin
    }

    /// Feeds one sample (each arm's requests and errors); closes the batch when it holds enough
    /// errors. Returns whether the test has rejected (now or before).
    pub fn update(
        &mut self,
        baseline_requests: u64,
        baseline_errors: u64,
        canary_requests: u64,
        canary_errors: u64,
    ) -> bool {
        self.updates = self.updates.saturating_add(1);
        let r0 = self.null_ratio();
        let o = &mut self.open;
        o.samples = o.samples.saturating_add(1);
        o.baseline_requests = o.baseline_requests.saturating_add(baseline_requests);
        o.canary_requests = o.canary_requests.saturating_add(canary_requests);
        o.baseline_errors = o
            .baseline_errors
            .saturating_add(baseline_errors.min(baseline_requests));
        o.canary_errors = o
            .canary_errors
            .saturating_add(canary_errors.min(canary_requests));
        if o.baseline_requests == 0 || o.canary_requests == 0 {
            return self.rejected_at.is_some();
        }
        let theta0 = o.batch_theta0(r0);
        let errors = o.baseline_errors as f64 + o.canary_errors as f64;
        if o.samples >= self.config.min_samples
            && errors * theta0.min(1.0 - theta0) >= self.config.min_expected_errors
        {
            let x = ((o.canary_errors as f64 + 0.5) / (o.baseline_errors as f64 + 0.5)).ln()
                - (theta0 / (1.0 - theta0)).ln();
            self.t.push(x);
            self.open = OpenBatch::default();
            if self.rejected_at.is_none() {
                let target = (1.0 / self.config.alpha).ln();
                let (mean, lower) = (self.t.mean(), self.lower_edge());
                let worse = mean > 0.0 && self.t.log_bf(0.0) >= target;
                let better = self.config.sides == Sides::TwoSided
                    && mean < lower
                    && self.t.log_bf(lower) >= target;
                if worse || better {
                    self.rejected_at = Some(self.updates);
                    self.rejected_worse = worse;
                }
            }
        }
        self.rejected_at.is_some()
    }

    /// The e-value (the t-test Bayes factor against "no difference beyond the margin"), counting
    /// only the "canary worse" side in one-sided mode.
    pub fn e_value(&self) -> f64 {
        let (mean, lower) = (self.t.mean(), self.lower_edge());
        if mean > 0.0 {
            self.t.log_bf(0.0).exp()
        } else if self.config.sides == Sides::TwoSided && mean < lower {
            self.t.log_bf(lower).exp()
        } else {
            self.t.log_bf(mean.min(0.0)).exp().min(1.0)
        }
    }

    /// The other side's null, two-sided: a canary's rate `1/(1 + margin)` times the
    /// baseline's, on the batches' scale (centred on the ratio `1 + margin`).
    fn lower_edge(&self) -> f64 {
        -2.0 * self.null_ratio().ln()
    }

    /// Whether the test has rejected.
    pub fn rejected(&self) -> bool {
        self.rejected_at.is_some()
    }

    /// Whether the rejection was for "canary worse"; `None` before any rejection.
    pub fn rejected_worse(&self) -> Option<bool> {
        self.rejected_at.map(|_| self.rejected_worse)
    }

    /// The number of updates after which the test rejected.
    pub fn rejected_at(&self) -> Option<u64> {
        self.rejected_at
    }

    /// The number of closed batches.
    pub fn batches(&self) -> u64 {
        self.t.n()
    }

    /// The threshold the e-value is compared with: `1/α`.
    pub fn threshold(&self) -> f64 {
        1.0 / self.config.alpha
    }

    /// The estimated ratio of the canary's error rate to the baseline's (geometric mean over
    /// batches), NaN before the first batch.
    pub fn ratio_estimate(&self) -> f64 {
        if self.t.n() == 0 {
            return f64::NAN;
        }
        self.null_ratio() * self.t.mean().exp()
    }

    /// The anytime-valid confidence sequence of that ratio, from the t-test; `None` below two
    /// batches.
    pub fn ratio_interval(&self) -> Option<Interval> {
        let r0 = self.null_ratio();
        self.t.interval(self.config.alpha).map(|i| Interval {
            lower: r0 * i.lower.exp(),
            upper: r0 * i.upper.exp(),
            level: i.level,
        })
    }

    /// Call when the traffic split changes. The open batch keeps its errors, and those of the
    /// split that ends are expected in the canary at that split's `θ₀`: pooling requests
    /// across splits would not give the canary's chance of holding an error, since an error
    /// rate common to both arms that is higher at one split than at the other weighs that
    /// split's share more. On a stream whose split never changes nothing differs.
    pub fn start_segment(&mut self) {
        let r0 = self.null_ratio();
        let o = &mut self.open;
        o.earlier_canary_expected = o.canary_expected(r0);
        o.earlier_errors = o.errors();
        o.baseline_requests = 0;
        o.canary_requests = 0;
    }

    /// Forgets every sample; the settings are kept.
    pub fn reset(&mut self) {
        *self = BatchCountTest {
            config: self.config,
            open: OpenBatch::default(),
            t: SequentialT::new(self.config.prior_variance),
            updates: 0,
            rejected_at: None,
            rejected_worse: false,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_arms_never_reject() {
        let mut t = BatchCountTest::new(BatchCountConfig::default()).unwrap();
        for i in 0..20_000u64 {
            let e = i % 4;
            assert!(!t.update(300, e, 300, e));
        }
        assert!(t.batches() > 100, "{}", t.batches());
        assert!(t.e_value() <= 1.0);
        let ci = t.ratio_interval().unwrap();
        assert!(ci.contains(1.0), "{ci:?}");
    }

    /// Identical batches (steady synthetic traffic) have no spread, and the t-test's Bayes
    /// factor is then at its bound for the number of batches: with the default `g = 4` it
    /// reaches 20 at the fourth batch, not at the second.
    #[test]
    fn identical_batches_reject_only_at_the_bound() {
        let mut t = BatchCountTest::new(BatchCountConfig::default()).unwrap();
        let at = (1..=1_000u64).find(|_| t.update(300, 1, 300, 3));
        assert_eq!(at, Some(4 * 30));
        assert_eq!(t.batches(), 4);
    }

    #[test]
    fn two_sided_with_a_margin_fails_only_beyond_it_on_either_side() {
        let config = BatchCountConfig {
            sides: Sides::TwoSided,
            ..BatchCountConfig::default().with_margin(0.1)
        };
        let run = |c: fn(u64) -> u64| {
            let mut t = BatchCountTest::new(config).unwrap();
            let mut rng = 7u64;
            for i in 0..20_000u64 {
                // A little noise, so that the batches scatter as real ones do.
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let e = i % 4 + u64::from(rng >> 62 == 0);
                t.update(300, e, 300, c(e));
            }
            t
        };
        // Identical arms are within the margin: no rejection, and no evidence either way.
        let same = run(|e| e);
        assert!(!same.rejected(), "{:?}", same.rejected_at());
        assert!(same.e_value() <= 1.0, "{}", same.e_value());
        // A canary with half the errors is better by more than the margin.
        let better = run(|e| e / 2);
        assert_eq!(better.rejected_worse(), Some(false));
        assert!(better.e_value() >= 20.0, "{}", better.e_value());
        // One with twice the errors is worse by more than it.
        let worse = run(|e| 2 * e);
        assert_eq!(worse.rejected_worse(), Some(true));
    }

    /// A batch open across a split change reads back as it was; one saved before batches
    /// kept their earlier splits reads back as spanning one split; an edited one whose
    /// earlier splits hold more errors than the batch, or expect more of them in the canary,
    /// is refused naming the field.
    #[test]
    fn an_open_batch_across_splits_reads_back_and_is_checked() {
        let mut t = BatchCountTest::new(BatchCountConfig::default()).unwrap();
        t.update(500, 3, 500, 2);
        t.start_segment();
        t.update(950, 4, 50, 1);
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["open"]["earlierErrors"], 5);
        let back: BatchCountTest = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, t);
        let mut old = json.clone();
        let open = old["open"].as_object_mut().unwrap();
        open.remove("earlierErrors");
        open.remove("earlierCanaryExpected");
        let old: BatchCountTest = serde_json::from_value(old).unwrap();
        assert_eq!(old.open.earlier_errors, 0);
        for (field, v) in [
            ("earlierErrors", serde_json::json!(11)),
            ("earlierCanaryExpected", serde_json::json!(5.5)),
            ("earlierCanaryExpected", serde_json::json!(-0.1)),
        ] {
            let mut bad = json.clone();
            bad["open"][field] = v;
            let e = serde_json::from_value::<BatchCountTest>(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("open.{field}")), "{e}");
        }
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad = BatchCountConfig {
            min_expected_errors: 0.0,
            ..Default::default()
        };
        let msg = BatchCountTest::new(bad).unwrap_err().to_string();
        assert!(msg.contains("batchCountTest.minExpectedErrors"), "{msg}");
        let bad = BatchCountConfig {
            min_samples: 0,
            ..Default::default()
        };
        let msg = BatchCountTest::new(bad).unwrap_err().to_string();
        assert!(msg.contains("batchCountTest.minSamples `0`"), "{msg}");
    }
}
