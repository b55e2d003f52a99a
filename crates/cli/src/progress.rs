//! Progress of pulls, pushes and loads: one indicatif bar per layer on a
//! terminal, Docker's plain "id: status" lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shows progress messages.
pub struct Display {
    quiet: bool,
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    last: HashMap<String, String>,
}

impl Display {
    /// A display on stderr's terminal if there is one.
    pub fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                HashMap::new(),
            )
        });
        Display {
            quiet,
            bars,
            last: HashMap::new(),
        }
    }

    /// Shows one message.
    pub fn show(&mut self, id: &str, status: &str, current: u64, total: u64) {
        if self.quiet {
            return;
        }
        if id.is_empty() || status.starts_with("Pulling from") {
            match &self.bars {
                Some((mp, _)) => {
                    let _ = mp.println(if id.is_empty() {
                        status.to_string()
                    } else {
                        format!("{id}: {status}")
                    });
                }
                None => println!(
                    "{}",
                    if id.is_empty() {
                        status.to_string()
                    } else {
                        format!("{id}: {status}")
                    }
                ),
            }
            return;
        }
        match &mut self.bars {
            Some((mp, bars)) => {
                let bar = bars.entry(id.to_string()).or_insert_with(|| {
                    let b = mp.add(ProgressBar::new(total.max(1)));
                    b.set_style(
                        ProgressStyle::with_template(
                            "{prefix}: {msg:<20} [{bar:30}] {bytes}/{total_bytes}",
                        )
                        .expect("template")
                        .progress_chars("=> "),
                    );
                    b.set_prefix(id.to_string());
                    b
                });
                bar.set_length(total.max(1));
                bar.set_position(current);
                bar.set_message(status.to_string());
                if matches!(
                    status,
                    "Pull complete" | "Already exists" | "Pushed" | "Layer already exists"
                ) || status.starts_with("Mounted from")
                {
                    bar.set_position(total.max(1));
                    bar.finish();
                }
            }
            None => {
                // Plain output: each new status once, not every byte
                // count; statuses that carry a byte count on a terminal
                // are left out, as Docker's CLI leaves them out.
                let counting = matches!(status, "Downloading" | "Extracting" | "Pushing");
                if !counting && self.last.get(id).map(String::as_str) != Some(status) {
                    println!("{id}: {status}");
                    self.last.insert(id.to_string(), status.to_string());
                }
            }
        }
    }
}
