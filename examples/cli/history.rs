//! The verbs that read the record: `status` (the state file and the journal), `logs` (the
//! journal) and `backups` (the backup store).

use std::fmt::Write as _;

use std::sync::Arc;

use serde_json::json;
use serin_orchestrator::{Event, InMemoryPlatform, Journal, Orchestrator};

use crate::cli::args::{CompactArgs, LogsArgs};
use crate::cli::context::Ctx;
use crate::cli::exit::{CliError, Exit};
use crate::cli::hooks;
use crate::cli::settings::service_of;
use crate::cli::state::StateDir;

/// `status`: what runs, what ran before, how the last deployment ended.
pub async fn status(ctx: &Ctx) -> Result<Exit, CliError> {
    let states = StateDir::existing(&ctx.global.state_dir);
    let Some(state) = states.load()? else {
        let text = format!(
            "nothing deployed (state directory {})",
            ctx.global.state_dir.display()
        );
        ctx.ui.result(&text, &json!({ "deployed": false }))?;
        return Ok(Exit::Success);
    };
    // A config given names the service asked about: the record of another is not its status.
    if ctx.global.config.is_some() {
        let (config, _) = ctx.config()?;
        let service = service_of(&config);
        if state.service != service {
            return Err(ctx.other_service(&state.service, service));
        }
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "service: {} ({:?} backend)",
        state.service, state.backend
    );
    match &state.current {
        Some(r) => {
            let _ = writeln!(
                text,
                "running: {} on {} ({} instance(s))",
                r.version, r.track, r.instances
            );
        }
        None => {
            let _ = writeln!(text, "running: nothing");
        }
    }
    let previous: Vec<String> = state.previous.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        text,
        "previous versions: {}",
        if previous.is_empty() {
            "none".to_owned()
        } else {
            previous.join(", ")
        }
    );
    // The last deployment as its journal tells it: state.json only names it, and the journal
    // may have been removed since.
    let last = match &state.last_deployment {
        Some(id) => match reader(&states)?.status(id).await {
            Ok(s) => Some(s),
            Err(serin_orchestrator::Error::NotFound { .. }) => {
                let _ = writeln!(
                    text,
                    "last deployment: {id}: its records are no longer in the journal"
                );
                None
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    if let Some(s) = &last {
        let _ = writeln!(
            text,
            "last deployment: {}: {} (phase {}, {:.0}% on the new version)",
            s.deployment,
            s.outcome
                .as_ref()
                .map_or("not finished".to_owned(), ToString::to_string),
            s.phase,
            s.weight
        );
    }
    // A deployment still marked is running if a command holds the directory, else that
    // command was stopped before its end.
    let running = state.in_progress.as_ref().filter(|_| states.is_locked());
    let interrupted = state.in_progress.as_ref().filter(|_| running.is_none());
    if let Some(p) = running {
        let _ = writeln!(text, "in progress: the {p} (another command is running it)");
    }
    if let Some(p) = interrupted {
        let _ = writeln!(text, "interrupted: the {p} and was stopped before its end");
    }
    let doc = json!({
        "deployed": state.current.is_some(),
        "service": state.service,
        "backend": state.backend,
        "current": state.current,
        "previous": state.previous,
        "lastDeployment": state.last_deployment,
        "lastOutcome": last.as_ref().map(|s| s.outcome.clone()),
        "lastPhase": last.as_ref().map(|s| s.phase),
        "lastWeight": last.as_ref().map(|s| s.weight),
        "inProgress": running,
        "interrupted": interrupted,
    });
    ctx.ui.result(&text, &doc)?;
    Ok(Exit::Success)
}

/// One event as a line.
fn event_line(e: &Event) -> String {
    format!("{} {} #{} {}", e.at, e.deployment, e.seq, e.kind)
}

/// An orchestrator over the state directory's journal, to read deployments back (it runs
/// nothing: its platform is an empty in-memory one).
fn reader(states: &StateDir) -> Result<Orchestrator, CliError> {
    let journal = Ctx::journal(states)?;
    Ok(Orchestrator::builder(Arc::new(InMemoryPlatform::new()), journal).build())
}

/// `logs`: the journal's events, oldest first, deployment by deployment.
pub async fn logs(ctx: &Ctx, args: &LogsArgs) -> Result<Exit, CliError> {
    let states = StateDir::existing(&ctx.global.state_dir);
    // Nothing was deployed from here yet: no journal, no events.
    let journal = if ctx.global.state_dir.is_dir() {
        Some(Ctx::journal(&states)?)
    } else {
        None
    };
    let records = match (&args.deployment, journal) {
        (_, None) => Vec::new(),
        (Some(id), Some(journal)) => {
            let records = journal.records(id).await?;
            if records.is_empty() {
                return Err(CliError::usage(format!(
                    "invalid --deployment `{id}`: no such deployment in the journal"
                )));
            }
            records
        }
        (None, Some(journal)) => journal.all_records().await?,
    };
    if let (Some(id), true) = (&args.deployment, records.is_empty()) {
        return Err(CliError::usage(format!(
            "invalid --deployment `{id}`: nothing was deployed from {}",
            ctx.global.state_dir.display()
        )));
    }
    let mut events: Vec<Event> = records.into_iter().flat_map(|r| r.events).collect();
    if let Some(n) = args.tail {
        let skip = events.len().saturating_sub(n);
        events.drain(..skip);
    }
    let mut text = String::new();
    for e in &events {
        let _ = writeln!(text, "{}", event_line(e));
    }
    if events.is_empty() {
        text.push_str("no events\n");
    }
    ctx.ui.result(&text, &json!({ "events": events }))?;
    Ok(Exit::Success)
}

/// `compact`: the journal with the finished deployments before the last `--keep` of them
/// reduced to their last record (their final state, which status and rollbacks read).
pub async fn compact(ctx: &Ctx, args: &CompactArgs) -> Result<Exit, CliError> {
    if !ctx.global.state_dir.is_dir() {
        let text = format!(
            "nothing to compact: nothing was deployed from {}\n",
            ctx.global.state_dir.display()
        );
        ctx.ui.result(&text, &json!({ "trimmed": 0, "kept": 0 }))?;
        return Ok(Exit::Success);
    }
    let states = StateDir::existing(&ctx.global.state_dir);
    let journal = Ctx::journal(&states)?;
    let done = journal.compact(args.keep).await?;
    let text = format!(
        "trimmed {} finished deployment(s) to their last record ({} records dropped), kept {} \
         whole: {} -> {} bytes\n",
        done.trimmed, done.records_dropped, done.kept, done.bytes_before, done.bytes_after
    );
    ctx.ui.result(
        &text,
        &json!({
            "trimmed": done.trimmed,
            "recordsDropped": done.records_dropped,
            "kept": done.kept,
            "bytesBefore": done.bytes_before,
            "bytesAfter": done.bytes_after,
        }),
    )?;
    Ok(Exit::Success)
}

/// `backups`: what the backup provider of `--backup-dir` or `--backup-postgres` holds for the
/// service, oldest first.
pub async fn backups(ctx: &Ctx) -> Result<Exit, CliError> {
    let (config, _) = ctx.config()?;
    let service = service_of(&config).to_owned();
    let states = StateDir::existing(&ctx.global.state_dir);
    // Listing creates nothing: a state directory or store that does not exist lists nothing.
    let Some(provider) = hooks::backup(&ctx.global, &ctx.env, &states, hooks::Use::List)? else {
        return Err(CliError::usage(
            "no backups to list: give the --backup-dir or --backup-postgres the deployments used",
        ));
    };
    let list = provider.list(&service).await?;
    let mut text = String::new();
    for b in &list {
        let _ = writeln!(
            text,
            "{}  {}  {}  {} bytes  {} check(s)  taken in {}",
            b.id,
            b.created_at,
            b.label,
            b.size_bytes,
            b.checks.len(),
            humantime::format_duration(b.duration)
        );
    }
    if list.is_empty() {
        let _ = writeln!(text, "no backups of `{service}` ({})", provider.name());
    }
    ctx.ui.result(
        &text,
        &json!({ "service": service, "provider": provider.name(), "backups": list }),
    )?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_orchestrator::EventKind;

    #[tokio::test]
    async fn an_event_is_one_line_and_an_unknown_deployment_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let states = StateDir::open(dir.path()).expect("state dir");
        // An empty journal knows no deployment.
        let orchestrator = reader(&states).expect("reader");
        assert!(orchestrator.status("demo-1.0.0-1").await.is_err());
        let line = event_line(&Event {
            deployment: "demo-1.0.0-1".into(),
            service: "demo".into(),
            seq: 0,
            at: serin_signals::Timestamp::from_millis(1_700_000_000_000),
            kind: EventKind::Completed {
                version: "1.0.0".into(),
            },
        });
        assert!(
            line.ends_with("demo-1.0.0-1 #0 completed: 1.0.0 serves all traffic"),
            "{line}"
        );
    }
}
