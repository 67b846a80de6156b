//! Reading both arms' metrics for a window, summarising them for the report, and feeding the
//! trigger engine.

use std::time::Duration;

use serin_signals::{Arm, Measurement, Metric, MetricQuery, Observation, Timestamp, Track, Window};
use serin_triggers::{Action as TriggerAction, TriggerConfig};

use crate::error::Result;
use crate::event::EventKind;
use crate::sample::{ArmSample, Sample};

use super::Runner;

impl Runner {
    /// The metrics the judges and triggers read.
    fn metrics(&self) -> Vec<Metric> {
        // Error rate and latency are always read: the report charts them for both arms.
        let mut out = vec![Metric::ErrorRate, Metric::Latency];
        let mut add = |m: Metric| {
            if !out.contains(&m) {
                out.push(m);
            }
        };
        if let Some(run) = &self.state.canary {
            for j in &run.judges {
                add(serin_canary::judge::Judge::metric(j).clone());
            }
            if let Some(p) = &run.policy.pacing {
                p.metrics().cloned().for_each(&mut add);
            }
            if let Some(g) = &run.policy.promotion {
                add(g.metric.clone());
            }
        }
        for t in &self.state.triggers.config().triggers {
            match t {
                TriggerConfig::MetricThreshold(c) => add(c.metric.clone()),
                TriggerConfig::ResourceUsage(c) => add(c.resource.metric()),
                TriggerConfig::ErrorSpike(_) => add(Metric::ErrorRate),
                TriggerConfig::DependencyFailure(c) => {
                    if let Some(m) = &c.call_metric {
                        add(m.clone());
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Each metric of both arms over `[observed_until, now)`. A source error is no data for
    /// that arm: never a pass.
    pub(super) async fn observe(
        &mut self,
        now: Timestamp,
    ) -> Result<Vec<(Metric, Observation, Observation)>> {
        let start = self.state.observed_until.min(now);
        let window = match Window::new(start, now) {
            Ok(w) => w,
            Err(_) => Window::ending_at(now, Duration::from_millis(1)),
        };
        self.state.observed_until = now;
        let new = self.new_track();
        let old = self.old_track().unwrap_or(Track::Stable);
        let mut out = Vec::new();
        for metric in self.metrics() {
            let b = self.query(&metric, &old, window).await;
            let c = self.query(&metric, &new, window).await;
            out.push((metric, b, c));
        }
        self.sample = Some(self.summarise(window, &out));
        Ok(out)
    }

    /// One metric of one track over `window`; a source error is no data (and a warning).
    async fn query(&self, metric: &Metric, track: &Track, window: Window) -> Observation {
        let query = MetricQuery::new(metric.clone(), track.clone(), window);
        match self.backends.metrics.query(&query).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(deployment = %self.state.id, "metrics of {track} unavailable: {e}");
                no_data(metric, track, window)
            }
        }
    }

    /// The compact summary of one observation, journalled with the next record for the report.
    fn summarise(
        &self,
        window: Window,
        observations: &[(Metric, Observation, Observation)],
    ) -> Sample {
        let mut canary = ArmSample::new(
            Arm::Canary,
            self.state.to.version.to_string(),
            self.state.to.track.to_string(),
        );
        let mut baseline = self
            .state
            .from
            .as_ref()
            .map(|p| ArmSample::new(Arm::Baseline, p.version.to_string(), p.track.to_string()));
        for (_, b, c) in observations {
            if let Some(base) = baseline.as_mut() {
                base.absorb(b);
            }
            canary.absorb(c);
        }
        Sample {
            window,
            weight_percent: self.state.weight,
            arms: baseline.into_iter().chain([canary]).collect(),
        }
    }

    /// Feeds the trigger engine (the old track as `stable`, the new one as `canary`) and
    /// answers the events to record, the rollback reason if one fired, and whether one holds.
    ///
    /// An observation the engine cannot read (a source answering counts for a gauge's metric)
    /// leaves every trigger on that metric and track without it. That is announced as a warning
    /// anomaly the first time, because those triggers are blind until the source is fixed.
    pub(super) async fn feed_triggers(
        &mut self,
        observations: &[(Metric, Observation, Observation)],
        now: Timestamp,
    ) -> (Vec<EventKind>, Option<String>, bool) {
        let engine = &mut self.state.triggers;
        let mut kinds = Vec::new();
        for (_, b, c) in observations {
            for obs in [
                relabel(b.clone(), Track::Stable),
                relabel(c.clone(), Track::Canary),
            ] {
                if let Err(e) = engine.observe(&obs) {
                    let summary = format!(
                        "{e}; the triggers on `{}` of `{}` go without it",
                        obs.metric, obs.track
                    );
                    tracing::warn!(deployment = %self.state.id, "{summary}");
                    if self.unreadable.insert(summary.clone()) {
                        kinds.push(EventKind::Anomaly {
                            source: "rollback triggers".into(),
                            severity: "warning".into(),
                            summary,
                        });
                    }
                }
            }
        }
        let new = self.state.to.track.clone();
        if let Ok(signals) = self.backends.health.signals(&new).await {
            for mut s in signals {
                s.track = Track::Canary;
                engine.observe_health(&s);
            }
        }
        if let Some(old) = self.state.from.as_ref().map(|p| p.track.clone())
            && let Ok(signals) = self.backends.health.signals(&old).await
        {
            for mut s in signals {
                s.track = Track::Stable;
                engine.observe_health(&s);
            }
        }
        engine.tick(now);
        let mut rollback = None;
        for e in engine.drain_events() {
            match e.action {
                Some(TriggerAction::Rollback) => {
                    if rollback.is_none() {
                        rollback = Some(format!(
                            "trigger `{}` fired: {}",
                            e.trigger, e.evidence.reason
                        ));
                    }
                    kinds.push(EventKind::TriggerFired { event: e });
                }
                Some(a) => kinds.push(EventKind::Anomaly {
                    source: format!("trigger `{}`", e.trigger),
                    severity: a.to_string(),
                    summary: e.evidence.to_string(),
                }),
                None => {}
            }
        }
        let hold = engine.current_action() == Some(TriggerAction::Hold);
        (kinds, rollback, hold)
    }
}

fn no_data(metric: &Metric, track: &Track, window: Window) -> Observation {
    Observation::new(metric.clone(), track.clone(), window, Measurement::NoData)
}

fn relabel(mut obs: Observation, track: Track) -> Observation {
    obs.track = track;
    obs
}
