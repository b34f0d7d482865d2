//! Progress while applying: a spinner per resource on a terminal, plain lines otherwise.
//!
//! indicatif draws the spinners without a newline after the last one (it pads the line and
//! relies on the terminal wrapping), so whatever is printed next would join the last spinner's
//! line. [`Progress::finish`] therefore clears the spinners and prints each resource's outcome
//! as a plain line, as the non-terminal mode does.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use ballast_engine::Reporter;
use ballast_model::ResourceKey;
use ballast_plan::Action;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// One spinner per resource, in the order the resources started.
type Spinners = Mutex<Vec<(ResourceKey, ProgressBar)>>;

pub struct Progress {
    bars: Option<(MultiProgress, Spinners)>,
}

impl Progress {
    pub fn new() -> Self {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| (MultiProgress::new(), Mutex::new(Vec::new())));
        Progress { bars }
    }

    fn bar(&self, key: &ResourceKey) -> Option<ProgressBar> {
        let (_, bars) = self.bars.as_ref()?;
        let bars = bars.lock().ok()?;
        bars.iter()
            .find(|(k, _)| k == key)
            .map(|(_, bar)| bar.clone())
    }

    /// Ends the spinners: clears them and prints each resource's last message on a line of its
    /// own, so the next output starts on a fresh line. Call it once the apply is over.
    pub fn finish(&self) {
        let Some((multi, bars)) = &self.bars else {
            return;
        };
        let Ok(bars) = bars.lock() else {
            return;
        };
        for (_, bar) in bars.iter() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
        let _ = multi.clear();
        let lines: Vec<String> = bars
            .iter()
            .map(|(key, bar)| format!("{key}: {}", bar.message()))
            .collect();
        for line in lines {
            eprintln!("{line}");
        }
    }
}

impl Reporter for Progress {
    fn started(&self, key: &ResourceKey, action: Action) {
        match &self.bars {
            Some((multi, bars)) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(format!("{key}"));
                bar.set_message(format!("{}…", action.verb()));
                bar.enable_steady_tick(Duration::from_millis(120));
                if let Ok(mut bars) = bars.lock() {
                    bars.push((key.clone(), bar));
                }
            }
            None => eprintln!("{key}: {}", action.verb()),
        }
    }

    fn step(&self, key: &ResourceKey, message: &str) {
        match self.bar(key) {
            Some(bar) => bar.set_message(message.to_string()),
            None => eprintln!("{key}: {message}"),
        }
    }

    fn finished(&self, key: &ResourceKey, outcome: &Result<(), String>) {
        let line = match outcome {
            Ok(()) => "done".to_string(),
            Err(e) => format!("FAILED: {e}"),
        };
        match self.bar(key) {
            Some(bar) => bar.finish_with_message(line),
            None => eprintln!("{key}: {line}"),
        }
    }
}
