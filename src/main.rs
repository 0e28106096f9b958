//! The `tagwatch` binary: everything lives in the library, so tests reach it.

use tagwatch::gitops::{CONNECT_TIMEOUT, IO_TIMEOUT};

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
    }
    tagwatch::cli::main()
}
