//! The conformance suite for [`StepRunner`] implementations (feature `testkit`).
//!
//! The suite cannot see what a runner does to the world (a migration applied, a flag set), only
//! what it answers, so it checks what the orchestrator relies on: a step the runner carries out
//! is answered with evidence for the report, a step it leaves to an operator with `None` (never
//! an error, which would fail the deployment), calls for two deployments may run at once, and
//! a call dropped before it answers (an operator's abort, the deployment's deadline) leaves
//! the runner answering the next one. The [`StepFixture`] names steps of both sorts; the steps
//! it names as carried out are run several times, so give ones that may be (a migration with
//! nothing left to do, a flag set to the value it has). Each check panics with a message on
//! the first violation.
//!
//! ```
//! # #[cfg(feature = "testkit")] {
//! use serin_compat::Step;
//! use serin_compat::steps::{StepKind, StepPhase};
//! use serin_orchestrator::InMemoryStepRunner;
//! use serin_orchestrator::step_testkit::{StepFixture, check_step_runner};
//!
//! let step = |kind| Step {
//!     phase: StepPhase::Before,
//!     kind,
//!     service: "web".into(),
//!     text: "run the expand migrations of web 1.1.0".into(),
//!     release: None,
//! };
//! let runner = InMemoryStepRunner::new().leaving(StepKind::FeatureFlag);
//! let fixture = StepFixture::new(vec![step(StepKind::ExpandMigration)])
//!     .leaving(vec![step(StepKind::FeatureFlag)]);
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! check_step_runner(&runner, &fixture).await;
//! # });
//! # }
//! ```

use std::task::{Context, Waker};
use std::time::Duration;

use serin_compat::Step;

use super::StepRunner;

/// The steps the suite asks a runner to run.
#[derive(Debug, Clone)]
pub struct StepFixture {
    /// Steps the runner carries out (answers with evidence); at least one. They are run several
    /// times, for several deployments.
    pub done: Vec<Step>,
    /// Steps the runner leaves to an operator (answers `None`).
    pub left: Vec<Step>,
}

impl StepFixture {
    /// A fixture whose runner carries out `done` and leaves nothing.
    pub fn new(done: Vec<Step>) -> Self {
        StepFixture {
            done,
            left: Vec::new(),
        }
    }

    /// The same, with `left` the steps the runner leaves to an operator.
    pub fn leaving(mut self, left: Vec<Step>) -> Self {
        self.left = left;
        self
    }
}

/// Runs every check on `runner`.
pub async fn check_step_runner(runner: &dyn StepRunner, fixture: &StepFixture) {
    assert!(
        !fixture.done.is_empty(),
        "testkit: the fixture names no step the runner carries out"
    );
    check_name(runner);
    check_answers(runner, fixture, "conformance-steps-1").await;
    check_concurrent_deployments(runner, fixture).await;
    check_dropped_call(runner, fixture).await;
}

/// The name is set and fits on a line: messages and evidence quote it.
pub fn check_name(runner: &dyn StepRunner) {
    let name = runner.name();
    assert!(
        !name.trim().is_empty() && !name.contains('\n'),
        "testkit: a step runner's name is one line, not empty: {name:?}"
    );
}

/// Each step carried out is answered with evidence (not blank: it is what the report shows
/// for the step), and each step left is answered `None`, never an error.
pub async fn check_answers(runner: &dyn StepRunner, fixture: &StepFixture, deployment: &str) {
    for step in &fixture.done {
        expect_done(runner.run(deployment, step).await, step);
    }
    for step in &fixture.left {
        match runner.run(deployment, step).await {
            Ok(None) => {}
            other => panic!(
                "testkit: `{}` left to an operator must be answered Ok(None), not {other:?}",
                step.text
            ),
        }
    }
}

/// Two deployments (of two services) may run their steps at the same time: both calls answer.
pub async fn check_concurrent_deployments(runner: &dyn StepRunner, fixture: &StepFixture) {
    let step = &fixture.done[0];
    let (a, b) = tokio::join!(
        runner.run("conformance-steps-2", step),
        runner.run("conformance-steps-3", step)
    );
    expect_done(a, step);
    expect_done(b, step);
}

/// A call dropped before it answers (polled once, as an abort or the deadline leaves it) does
/// not keep the runner from answering the next call: a runner that marks a step as running
/// and clears the mark only when the call returns would refuse every later step.
pub async fn check_dropped_call(runner: &dyn StepRunner, fixture: &StepFixture) {
    let step = &fixture.done[0];
    let mut call = runner.run("conformance-steps-4", step);
    let _ = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    drop(call);
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        runner.run("conformance-steps-5", step),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "testkit: after a dropped call, `{}` got no answer within 60 s",
            step.text
        )
    });
    expect_done(answer, step);
}

fn expect_done(answer: crate::Result<Option<String>>, step: &Step) {
    match answer {
        Ok(Some(evidence)) if !evidence.trim().is_empty() => {}
        other => panic!(
            "testkit: `{}` carried out must be answered with evidence, not {other:?}",
            step.text
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use serin_compat::steps::{StepKind, StepPhase};

    use super::*;
    use crate::error::Error;
    use crate::hooks::InMemoryStepRunner;

    fn step(kind: StepKind) -> Step {
        Step {
            phase: StepPhase::Before,
            kind,
            service: "web".into(),
            text: format!("{kind:?} of web 1.1.0"),
            release: None,
        }
    }

    fn fixture() -> StepFixture {
        StepFixture::new(vec![step(StepKind::ExpandMigration)])
            .leaving(vec![step(StepKind::FeatureFlag)])
    }

    #[tokio::test]
    async fn the_in_memory_runner_passes() {
        let runner = InMemoryStepRunner::new().leaving(StepKind::FeatureFlag);
        check_step_runner(&runner, &fixture()).await;
        assert_eq!(runner.ran().len(), 5, "{:?}", runner.ran());
    }

    /// Refuses the steps it does not carry out instead of leaving them to an operator.
    struct Refusing;

    #[async_trait]
    impl StepRunner for Refusing {
        fn name(&self) -> &str {
            "refusing"
        }
        async fn run(&self, _deployment: &str, step: &Step) -> crate::Result<Option<String>> {
            match step.kind {
                StepKind::ExpandMigration => Ok(Some("migrated".into())),
                _ => Err(Error::backend("step runner", "refusing", "not mine")),
            }
        }
    }

    #[tokio::test]
    #[should_panic(expected = "must be answered Ok(None)")]
    async fn a_runner_that_refuses_what_it_leaves_fails() {
        check_step_runner(&Refusing, &fixture()).await;
    }

    /// Marks a step as running until its call returns; a dropped call never clears the mark.
    #[derive(Default)]
    struct Marking {
        running: Mutex<bool>,
    }

    #[async_trait]
    impl StepRunner for Marking {
        fn name(&self) -> &str {
            "marking"
        }
        async fn run(&self, _deployment: &str, step: &Step) -> crate::Result<Option<String>> {
            if step.kind != StepKind::ExpandMigration {
                return Ok(None);
            }
            {
                let mut running = self.running.lock().expect("mark");
                if *running {
                    return Err(Error::backend(
                        "step runner",
                        "marking",
                        "a step is running",
                    ));
                }
                *running = true;
            }
            tokio::task::yield_now().await;
            *self.running.lock().expect("mark") = false;
            Ok(Some("migrated".into()))
        }
    }

    #[tokio::test]
    #[should_panic(expected = "must be answered with evidence")]
    async fn a_runner_stuck_after_a_dropped_call_fails() {
        let runner = Marking::default();
        check_name(&runner);
        check_answers(&runner, &fixture(), "one").await;
        check_dropped_call(&runner, &fixture()).await;
    }

    #[test]
    fn a_blank_name_fails() {
        struct Blank;
        #[async_trait]
        impl StepRunner for Blank {
            fn name(&self) -> &str {
                " "
            }
            async fn run(&self, _: &str, _: &Step) -> crate::Result<Option<String>> {
                Ok(None)
            }
        }
        let caught = std::panic::catch_unwind(|| check_name(&Blank));
        assert!(caught.is_err());
    }
}
