//! The `tagwatch` binary: everything lives in the library, so tests reach it.

fn main() -> std::process::ExitCode {
    tagwatch::cli::main()
}
