//! Parallel, verified downloads into the cache: a bounded pool of worker threads, each
//! file checked against its signed sha256 before use.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::cache::{Cache, CacheError};
use super::http::{Http, HttpError};
use crate::progress::Reporter;

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct Item {
    /// A name for messages (`libc6_2.36-9_armhf.deb`).
    pub name: String,
    /// Where it is.
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256 (lowercase hex).
    pub sha256: String,
}

/// Errors downloading.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// One or more files failed; every failure is listed.
    #[error("{} of {total} downloads failed:\n  {}", failures.len(), failures.join("\n  "))]
    Failed {
        /// One line per failure.
        failures: Vec<String>,
        /// How many files were asked for.
        total: usize,
    },
    /// The user pressed Ctrl-C.
    #[error(transparent)]
    Interrupted(#[from] crate::interrupt::Interrupted),
}

/// What a download run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Paths in the cache, in the order of the items.
    pub paths: Vec<PathBuf>,
    /// How many were already cached.
    pub hits: usize,
    /// Bytes downloaded.
    pub downloaded: u64,
}

/// Kind directory in the cache for .deb files.
pub const DEBS: &str = "debs";

/// Fetches every item into the cache with at most `jobs` downloads at a time.
pub fn fetch_all(
    http: &Http,
    cache: &Cache,
    items: &[Item],
    jobs: usize,
    reporter: &Reporter,
) -> Result<Summary, DownloadError> {
    let total: u64 = items.iter().map(|i| i.size).sum();
    let bar = reporter.bar("download", total, true);
    let next = AtomicUsize::new(0);
    let hits = AtomicUsize::new(0);
    let downloaded = std::sync::atomic::AtomicU64::new(0);
    let results: Mutex<Vec<Option<Result<PathBuf, String>>>> = Mutex::new(vec![None; items.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                if crate::interrupt::requested() {
                    break;
                }
                bar.message(&item.name);
                let r = match cache.lookup(DEBS, &item.sha256, item.size) {
                    Some(p) => {
                        hits.fetch_add(1, Ordering::Relaxed);
                        bar.inc(item.size);
                        Ok(p)
                    }
                    None => {
                        let r = fetch_one(http, cache, item, &|n| bar.inc(n));
                        if r.is_ok() {
                            downloaded.fetch_add(item.size, Ordering::Relaxed);
                        }
                        r
                    }
                };
                if let Ok(mut g) = results.lock() {
                    g[i] = Some(r);
                }
            });
        }
    });
    crate::interrupt::check()?;
    let results = results.into_inner().unwrap_or_default();
    let mut paths = Vec::with_capacity(items.len());
    let mut failures = Vec::new();
    for (item, r) in items.iter().zip(results) {
        match r {
            Some(Ok(p)) => paths.push(p),
            Some(Err(e)) => failures.push(e),
            None => failures.push(format!("{}: not attempted", item.name)),
        }
    }
    if !failures.is_empty() {
        return Err(DownloadError::Failed {
            failures,
            total: items.len(),
        });
    }
    let summary = Summary {
        paths,
        hits: hits.into_inner(),
        downloaded: downloaded.into_inner(),
    };
    bar.finish(&format!(
        "{} files, {} cached, {:.1} MB fetched",
        items.len(),
        summary.hits,
        summary.downloaded as f64 / 1e6
    ));
    Ok(summary)
}

/// Downloads one item, retrying once when the data does not match (a flaky transfer).
fn fetch_one(
    http: &Http,
    cache: &Cache,
    item: &Item,
    on_bytes: &dyn Fn(u64),
) -> Result<PathBuf, String> {
    let mut last = String::new();
    for _ in 0..2 {
        let (mut body, _) = http
            .open(&item.url)
            .map_err(|e: HttpError| format!("{}: {e}", item.name))?;
        match cache.store(
            DEBS,
            &item.sha256,
            item.size,
            &item.url,
            &mut body,
            on_bytes,
        ) {
            Ok(p) => return Ok(p),
            Err(e @ CacheError::Io { .. }) => return Err(e.to_string()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
