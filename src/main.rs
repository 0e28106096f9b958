//! The `tagwatch` binary: everything lives in the library, so tests reach it.

use tagwatch::gitops::{CONNECT_TIMEOUT, IO_TIMEOUT};

/// The largest tree libgit2 keeps in its object cache: a directory of
/// about 25,000 entries.
const TREE_CACHE_LIMIT: usize = 1 << 20;

fn main() -> std::process::ExitCode {
    // libgit2 waits forever on a stalled server by default, which would hold
    // a cycle (and shutdown) hostage. These settings are process-global and
    // not thread-safe to change, hence unsafe: they are set here, once,
    // before any other thread exists or any git2 call is made. The library
    // forbids unsafe code; this is the only place it is needed.
    // SAFETY: single-threaded at this point; no concurrent libgit2 use.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(
            CONNECT_TIMEOUT.as_millis() as i32
        );
        let _ = git2::opts::set_server_timeout_in_milliseconds(IO_TIMEOUT.as_millis() as i32);
        // libgit2 caches only trees under 4 KiB by default, so in a GitOps
        // repository whose `envs/prod/` holds a thousand app directories
        // every file read re-inflates and re-hashes that 40 KiB tree: two
        // thousand reads a cycle spent 0.2 s there in the fleet benchmark.
        // The cache stays bounded by its total size (256 MiB by default).
        let _ = git2::opts::set_cache_object_limit(git2::ObjectType::Tree, TREE_CACHE_LIMIT);
    }
    tagwatch::cli::main()
}
