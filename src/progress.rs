//! Progress reporting: indicatif bars on a terminal, plain log lines otherwise (CI).

use std::io::IsTerminal;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// How chatty the output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Steps and summaries.
    Normal,
    /// Also every command and file.
    Verbose,
}

/// The build's reporter, shared by every step.
#[derive(Debug, Clone)]
pub struct Reporter {
    verbosity: Verbosity,
    tty: bool,
    start: Instant,
    log: Arc<Mutex<Option<(PathBuf, std::fs::File)>>>,
}

impl Reporter {
    /// A reporter writing to stderr; bars only when stderr is a terminal.
    pub fn new(verbosity: Verbosity) -> Reporter {
        Reporter {
            verbosity,
            tty: std::io::stderr().is_terminal(),
            start: Instant::now(),
            log: Arc::new(Mutex::new(None)),
        }
    }

    /// From now on, every line (details and warnings included, whatever the verbosity) is
    /// also appended to `path`, for this reporter and all its clones.
    pub fn log_to(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        if let Ok(mut log) = self.log.lock() {
            *log = Some((path.to_path_buf(), file));
        }
        Ok(())
    }

    /// The log file set by [`Reporter::log_to`].
    pub fn log_path(&self) -> Option<PathBuf> {
        self.log
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|(p, _)| p.clone()))
    }

    /// Appends a line to the log file only (an error the caller prints itself).
    pub fn log_only(&self, line: &str) {
        if let Ok(mut log) = self.log.lock() {
            if let Some((_, f)) = log.as_mut() {
                // A full disk must not stop the build over its log.
                let _ = writeln!(f, "{line}");
            }
        }
    }

    /// Logs a step line (not in quiet mode).
    pub fn step(&self, msg: &str) {
        let line = format!("[{:>6.1}s] {msg}", self.start.elapsed().as_secs_f64());
        if self.verbosity >= Verbosity::Normal {
            eprintln!("{line}");
        }
        self.log_only(&line);
    }

    /// Logs a detail line (verbose mode only).
    pub fn detail(&self, msg: &str) {
        let line = format!("[{:>6.1}s]   {msg}", self.start.elapsed().as_secs_f64());
        if self.verbosity >= Verbosity::Verbose {
            eprintln!("{line}");
        }
        self.log_only(&line);
    }

    /// Logs a warning (always).
    pub fn warn(&self, msg: &str) {
        eprintln!("warning: {msg}");
        self.log_only(&format!("warning: {msg}"));
    }

    /// Starts a progress counter of `total` units (`bytes` formats them as sizes).
    pub fn bar(&self, label: &str, total: u64, bytes: bool) -> Bar {
        let bar = if self.tty && self.verbosity >= Verbosity::Normal {
            let pb = ProgressBar::new(total);
            let tmpl = if bytes {
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}"
            } else {
                "{prefix:>12} [{bar:30}] {pos}/{len} {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(tmpl) {
                pb.set_style(style.progress_chars("=> "));
            }
            pb.set_prefix(label.to_string());
            Some(pb)
        } else {
            None
        };
        Bar {
            inner: Arc::new(BarInner {
                bar,
                label: label.to_string(),
                total,
                done: AtomicU64::new(0),
                last_decile: AtomicU64::new(0),
                plain: !self.tty && self.verbosity >= Verbosity::Normal,
                bytes,
                reporter: self.clone(),
            }),
        }
    }
}

#[derive(Debug)]
struct BarInner {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: AtomicU64,
    last_decile: AtomicU64,
    plain: bool,
    bytes: bool,
    reporter: Reporter,
}

/// A progress counter that can be shared between threads.
#[derive(Debug, Clone)]
pub struct Bar {
    inner: Arc<BarInner>,
}

impl Bar {
    /// Adds `n` units of progress.
    pub fn inc(&self, n: u64) {
        let i = &self.inner;
        let done = i.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(pb) = &i.bar {
            pb.inc(n);
        } else if i.plain && i.total > 0 {
            let decile = done.saturating_mul(10) / i.total;
            if decile > i.last_decile.fetch_max(decile, Ordering::Relaxed) && decile < 10 {
                let unit = if i.bytes {
                    format!("{} MB", done / 1_000_000)
                } else {
                    format!("{done}/{}", i.total)
                };
                i.reporter
                    .step(&format!("{}: {}% ({unit})", i.label, decile * 10));
            }
        }
    }

    /// Shows what is being worked on (terminal only).
    pub fn message(&self, msg: &str) {
        if let Some(pb) = &self.inner.bar {
            pb.set_message(msg.to_string());
        }
    }

    /// Finishes the counter, leaving a summary line.
    pub fn finish(&self, summary: &str) {
        if let Some(pb) = &self.inner.bar {
            pb.finish_and_clear();
        }
        self.inner
            .reporter
            .step(&format!("{}: {summary}", self.inner.label));
    }
}
