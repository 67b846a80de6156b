//! The crate's behaviour tests, one module per subject, built as a single test binary:
//! one link instead of one per file keeps a clean build small and quick.

#[cfg(feature = "notify")]
mod notify_support;
mod promise_support;
mod sim_fleet;
mod support;

mod abandon;
mod abandon_under_way;
#[cfg(all(feature = "backup", feature = "testkit"))]
mod backup;
mod backup_listing_bounds;
mod backup_retention_clock;
mod blue_green;
mod bounded_waits;
mod canary;
mod canary_holds;
mod canary_parity;
mod canary_pause_windows;
mod canary_raise_deadline;
mod canary_unbegun_pauses;
mod config_brief;
mod config_errors;
mod config_inconclusive;
mod config_properties;
mod config_written_steps;
mod config_yaml_forms;
mod deadline_events;
mod dry_run;
mod dry_run_canary;
mod dry_run_lock;
mod evidence_decisions;
mod flow_ready_promotion;
mod flow_watch_end;
mod journal_failures;
mod lifecycle;
mod live_monitoring;
mod live_promotion;
mod live_weights;
mod lock_release;
mod metrics_read_delay;
mod missing_data;
#[cfg(all(feature = "notify", feature = "testkit"))]
mod notify;
#[cfg(feature = "notify")]
mod notify_context;
#[cfg(feature = "notify")]
mod notify_logs;
#[cfg(feature = "notify")]
mod notify_smtp;
mod operations;
mod pagerduty_channel_events;
#[cfg(feature = "testkit")]
mod platform_conformance;
#[cfg(feature = "testkit")]
mod platform_lock_scope;
#[cfg(feature = "testkit")]
mod platform_track_reuse;
mod prepare_backup_bounds;
mod prepare_deadline;
mod prepare_growth_watch;
mod prepare_prechecks;
mod prepare_stages;
mod promise_command_races;
mod promise_crash_sim;
mod promise_metrics_outage;
mod promise_platform_faults;
mod promise_router_faults;
mod promotion_commands;
#[cfg(feature = "charts")]
mod report_chart;
mod report_schema;
mod resume;
mod resume_backup;
mod resume_damaged;
mod resume_past_deadline;
mod resume_paths;
mod resume_router;
mod resume_stages;
mod rollback_restore_points;
mod router_granularity;
mod services;
mod services_running;
mod sim;
mod sources_wrong_answer;
mod switch_bounds;
mod switch_holds_fit;
mod traffic_grace;
mod unanswered_calls_bounds;
mod wait_ready_bounds;
