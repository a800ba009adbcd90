//! `tenbits bench ...`: the benchmarks of `tenbits-bench`, printed.

use indicatif::ProgressBar;
use tenbits_bench::{Progress, Sink};

/// Table lines to stdout, notes to stderr, progress as a bar on stderr.
#[derive(Default)]
pub struct TerminalSink {
    bar: Option<(String, ProgressBar)>,
}

impl Sink for TerminalSink {
    fn line(&mut self, line: &str) {
        println!("{line}");
    }

    fn note(&mut self, note: &str) {
        eprintln!("{note}");
    }

    fn progress(&mut self, label: &str, progress: Progress) {
        if self.bar.as_ref().is_none_or(|(l, _)| l != label) {
            self.progress_done();
            self.bar = Some((label.to_string(), crate::token_bar(label)));
        }
        if let Some((_, bar)) = &self.bar {
            bar.set_length(progress.total_tokens);
            bar.set_position(progress.done_tokens);
        }
    }

    fn progress_done(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
