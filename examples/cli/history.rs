//! The verbs that read the record: `status` (the state file) and `logs` (the journal).

use std::fmt::Write as _;

use serde_json::json;
use serin_orchestrator::Event;
use serin_signals::Timestamp;

use crate::cli::args::LogsArgs;
use crate::cli::context::Ctx;
use crate::cli::exit::{CliError, Exit};
use crate::cli::journal::events as journal_events;
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
    if let Some(id) = &state.last_deployment {
        let _ = writeln!(
            text,
            "last deployment: {id}: {}",
            state
                .last_outcome
                .as_ref()
                .map_or("not finished".to_owned(), ToString::to_string)
        );
    }
    if let Some(p) = &state.in_progress {
        let _ = writeln!(text, "interrupted: the {p} and was stopped before its end");
    }
    let doc = json!({
        "deployed": state.current.is_some(),
        "service": state.service,
        "backend": state.backend,
        "current": state.current,
        "previous": state.previous,
        "lastDeployment": state.last_deployment,
        "lastOutcome": state.last_outcome,
        "interrupted": state.in_progress,
    });
    ctx.ui.result(&text, &doc)?;
    Ok(Exit::Success)
}

/// One event as a line: its own rendering when it parses; otherwise (a record the journal
/// could not read back, see `journal`) the analysis' action, reason and evidence, or the JSON.
fn event_line(v: &serde_json::Value) -> String {
    if let Ok(e) = serde_json::from_value::<Event>(v.clone()) {
        return format!("{} {} #{} {}", e.at, e.deployment, e.seq, e.kind);
    }
    let at = v.get("at").and_then(serde_json::Value::as_u64).map_or_else(
        || "?".to_owned(),
        |ms| Timestamp::from_millis(ms).to_string(),
    );
    let kind = v.get("kind").cloned().unwrap_or_default();
    let what = match kind.get("decision") {
        Some(d) => {
            let text = |key: &str| d.get(key).and_then(|x| x.as_str()).unwrap_or("").to_owned();
            let evidence: Vec<String> = d
                .get("evidence")
                .and_then(|e| e.as_array())
                .map(|list| {
                    list.iter()
                        .filter_map(|e| e.get("summary").and_then(|s| s.as_str()))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "analysis: {} — {} [{}]",
                text("action"),
                text("reason"),
                evidence.join("; ")
            )
        }
        None => kind.to_string().chars().take(300).collect(),
    };
    format!(
        "{at} {} #{} {what}",
        v.get("deployment").and_then(|d| d.as_str()).unwrap_or("?"),
        v.get("seq").map_or_else(String::new, ToString::to_string),
    )
}

/// `logs`: the journal's events, oldest first.
pub async fn logs(ctx: &Ctx, args: &LogsArgs) -> Result<Exit, CliError> {
    let states = StateDir::existing(&ctx.global.state_dir);
    let mut events = journal_events(&states.journal())?;
    if let Some(id) = &args.deployment {
        events.retain(|e| e.get("deployment").and_then(|d| d.as_str()) == Some(id.as_str()));
        if events.is_empty() {
            return Err(CliError::usage(format!(
                "invalid --deployment `{id}`: no such deployment in the journal"
            )));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_that_does_not_parse_still_shows_its_decision() {
        let v = serde_json::json!({
            "deployment": "demo-1.2.0-1",
            "service": "demo",
            "seq": 9,
            "at": 1_700_000_000_000u64,
            "kind": {
                "type": "analysisResult",
                "decision": {
                    "action": "rollback",
                    "reason": "critical regression in `error_rate`",
                    "evidence": [{ "summary": "ratio NaN, e-value 25", "effects": [{ "estimate": null }] }],
                },
            },
        });
        let line = event_line(&v);
        assert_eq!(
            line,
            "2023-11-14T22:13:20.000Z demo-1.2.0-1 #9 analysis: rollback — critical regression in `error_rate` [ratio NaN, e-value 25]"
        );
        let parsed = serde_json::json!({
            "deployment": "demo-1.0.0-1",
            "service": "demo",
            "seq": 0,
            "at": 1_700_000_000_000u64,
            "kind": { "type": "completed", "version": "1.0.0" },
        });
        assert!(
            event_line(&parsed).ends_with("#0 completed: 1.0.0 serves all traffic"),
            "{}",
            event_line(&parsed)
        );
    }
}
