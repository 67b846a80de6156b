//! The crate's behaviour tests, one module per subject, built as a single test binary:
//! one link instead of one per file keeps a clean build small and quick.

mod common;

mod controller;
mod controller_analysis_in_force;
mod controller_concluded;
mod controller_dry_run;
mod controller_evidence;
mod controller_exposure;
mod controller_full_weight;
mod controller_gates_across_splits;
mod controller_holds_and_commands;
mod controller_journal;
mod controller_no_data_raise;
mod controller_paced_promotion;
mod controller_weight_in_force;
mod flagger_analysis;
mod kayenta_analysis;
mod kayenta_config;
mod kayenta_muted;
mod kayenta_parity;
mod kayenta_peer_edges;
mod kayenta_props;
mod kayenta_run;
mod kayenta_run_state;
mod kayenta_scoring;
mod kayenta_state;
mod one_key_maps;
mod properties;
mod restored_scatter;
mod restored_state;
mod sequential;
mod sequential_coverage;
mod sequential_edges;
mod sequential_evidence;
mod sequential_robustness;
mod sequential_saved_state;
mod sequential_split_changes;
mod threshold_argo_conditions;
mod threshold_argo_dry_run;
mod threshold_argo_run_length;
mod threshold_forged_last;
mod threshold_parity;
mod threshold_props;
mod threshold_saved_state;
mod yaml_saved_state;
