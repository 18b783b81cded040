//! Progress bars on a terminal (stderr), and nothing at all elsewhere.
//!
//! indicatif hides its bars when stderr is not a terminal, so scripts and tests see
//! no control characters; callers may also turn bars off entirely.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over bytes with a running count of items (ranges, lines) and their rate.
pub struct BytesBar {
    bar: ProgressBar,
    unit: &'static str,
}

/// A bar over `total` bytes, or `None` when disabled or stderr is not a terminal.
pub fn bytes_bar(enabled: bool, total: u64, unit: &'static str) -> Option<BytesBar> {
    if !enabled {
        return None;
    }
    let target = ProgressDrawTarget::stderr_with_hz(10);
    if target.is_hidden() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(BytesBar { bar, unit })
}

impl BytesBar {
    pub fn update(&self, bytes: u64, items: u64) {
        self.bar.set_position(bytes);
        let secs = self.bar.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!(
            "{items} {} ({:.0}/s)",
            self.unit,
            items as f64 / secs
        ));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
