//! Progress while applying: a spinner per resource on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use ballast_engine::Reporter;
use ballast_model::ResourceKey;
use ballast_plan::Action;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct Progress {
    bars: Option<(MultiProgress, Mutex<HashMap<ResourceKey, ProgressBar>>)>,
}

impl Progress {
    pub fn new() -> Self {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| (MultiProgress::new(), Mutex::new(HashMap::new())));
        Progress { bars }
    }

    fn bar(&self, key: &ResourceKey) -> Option<ProgressBar> {
        let (_, bars) = self.bars.as_ref()?;
        bars.lock().ok()?.get(key).cloned()
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
                    bars.insert(key.clone(), bar);
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
