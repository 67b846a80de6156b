//! The modules of the example CLI.

pub mod args;
pub mod backend;
pub mod context;
pub mod deploy;
pub mod exit;
pub mod history;
pub mod hooks;
pub mod interrupt;
pub mod observe;
pub mod settings;
pub mod state;
pub mod ui;
