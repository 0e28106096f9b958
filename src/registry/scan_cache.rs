//! Scan results kept for the life of the process, by repository and
//! digest. A finished scan changes only on a rescan, and a rescan sends an
//! "ECR Image Scan" event, which drops the entry ([`forget`], from
//! `events`); so a daemon asks ECR about each considered image once, not
//! once per cycle. Only final results ([`ScanFindings::is_final`]) are kept:
//! a pending scan is asked again next cycle.
//!
//! Process-wide rather than per client, because the event loop that drops
//! entries and the cycle that fills them share nothing else, and a reload
//! that builds a new client need not forget what ECR already said.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::ScanFindings;

/// More entries than this and the cache starts over: a bound on memory for
/// a daemon that runs for months over busy repositories.
const CAPACITY: usize = 50_000;

type Key = (String, String);

fn cache() -> &'static Mutex<HashMap<Key, ScanFindings>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, ScanFindings>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<Key, ScanFindings>> {
    cache().lock().unwrap_or_else(|e| e.into_inner())
}

/// The kept result for `digest` in `repository`.
pub fn get(repository: &str, digest: &str) -> Option<ScanFindings> {
    lock()
        .get(&(repository.to_string(), digest.to_string()))
        .cloned()
}

/// Keeps a final result.
pub fn put(repository: &str, digest: &str, scan: ScanFindings) {
    if !scan.is_final() {
        return;
    }
    let mut cache = lock();
    if cache.len() >= CAPACITY {
        cache.clear();
    }
    cache.insert((repository.to_string(), digest.to_string()), scan);
}

/// Drops the result for `digest` (it was scanned again).
pub fn forget(repository: &str, digest: &str) {
    lock().remove(&(repository.to_string(), digest.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::ScanStatus;

    #[test]
    fn only_final_results_are_kept_and_a_rescan_forgets() {
        put(
            "r",
            "sha256:pending",
            ScanFindings::with_status(ScanStatus::InProgress),
        );
        assert_eq!(get("r", "sha256:pending"), None);
        put(
            "r",
            "sha256:done",
            ScanFindings::with_status(ScanStatus::Complete),
        );
        assert!(get("r", "sha256:done").is_some());
        forget("r", "sha256:done");
        assert_eq!(get("r", "sha256:done"), None);
    }
}
