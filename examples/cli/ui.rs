//! What the user sees: results on stdout (text, or one JSON document), progress bars and
//! event lines on stderr. Bars show only when both streams are terminals and the output is
//! text, so pipes, files and `--output json` get no escape codes.

use std::io::{IsTerminal, Write as _};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::args::OutputKind;
use crate::cli::exit::CliError;

/// The output settings of one command.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    output: OutputKind,
    bars: bool,
}

impl Ui {
    /// Settings for `output`, with bars when stdout and stderr are terminals.
    pub fn new(output: OutputKind) -> Self {
        let bars = output == OutputKind::Text
            && std::io::stdout().is_terminal()
            && std::io::stderr().is_terminal();
        Ui { output, bars }
    }

    /// Whether the result is one JSON document.
    pub fn json(&self) -> bool {
        self.output == OutputKind::Json
    }

    /// A bar of `len` steps (hidden unless bars are on).
    pub fn bar(&self, len: u64, template: &str) -> ProgressBar {
        if !self.bars {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A line about what is happening (stderr; above the bar when it shows; nothing in JSON mode).
    pub fn note(&self, bar: &ProgressBar, line: &str) {
        if self.json() {
            return;
        }
        if self.bars {
            bar.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// Prints the command's result: `text` for people, or `value` as one JSON document. A
    /// reader that stopped reading (`| head -1`) wanted no more: the command still ends with
    /// its own status.
    pub fn result<T: Serialize>(&self, text: &str, value: &T) -> Result<(), CliError> {
        let out = self.rendered(text, value)?;
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(CliError::backend(format!("cannot print the result: {e}")))
            }
            _ => Ok(()),
        }
    }

    /// The command's result as [`result`](Self::result) prints it, ending with a newline.
    pub fn rendered<T: Serialize>(&self, text: &str, value: &T) -> Result<String, CliError> {
        let mut out = if self.json() {
            serde_json::to_string_pretty(value)
                .map_err(|e| CliError::backend(format!("cannot encode the result: {e}")))?
        } else {
            text.to_owned()
        };
        if !out.ends_with('\n') {
            out.push('\n');
        }
        Ok(out)
    }
}
