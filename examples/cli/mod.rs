//! The modules of the example CLI.

pub mod args;
pub mod backend;
pub mod commands;
pub mod exit;
pub mod journal;
pub mod load;
pub mod settings;
pub mod state;
pub mod ui;
