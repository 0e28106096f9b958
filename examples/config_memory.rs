//! Where the bytes and the time go when a large configuration is loaded
//! (issue 20): a counting global allocator around the same steps
//! `tagwatch check` takes, so each step's peak and what it leaves behind
//! can be read without a heap profiler.
//!
//! ```text
//! cargo run --release --example config_memory -- CONFIG.toml
//! ```
//!
//! For the bench's 10,000-app file, write it with bench/fleet's generator
//! (`bench/fleet/run --keep` leaves `check/tagwatch.toml` in its scratch
//! directory). Prints, for each step, its wall time, the heap it had live
//! at its end, its peak and the allocations it made:
//!
//! - `read`: the file's text;
//! - `toml document`: the text parsed into a `toml::Table` (the spanned
//!   document is comparable: toml's deserializer builds one internally);
//! - `config::load`: read, parse and validate, the whole of start-up's
//!   configuration step; "live" is the validated `Config` it returns.
//!
//! Not a test: it measures and asserts nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// `System` with counters: bytes live now, the highest that reached since
/// the last reset, and allocations made.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counters only
// observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grow(new_size);
        }
        p
    }
}

fn grow(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
    ALLOCS.fetch_add(1, Relaxed);
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `step`, printing its time, the heap live after it (less what was
/// live before), its peak above that, and its allocation count.
fn measure<T>(name: &str, step: impl FnOnce() -> T) -> T {
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let allocs = ALLOCS.load(Relaxed);
    let t0 = Instant::now();
    let out = step();
    let secs = t0.elapsed().as_secs_f64();
    let mb = |b: usize| b as f64 / 1e6;
    println!(
        "{name:<16} {secs:>7.3} s   live {:>7.1} MB   peak {:>7.1} MB   {:>9} allocations",
        mb(LIVE.load(Relaxed).saturating_sub(before)),
        mb(PEAK.load(Relaxed).saturating_sub(before)),
        ALLOCS.load(Relaxed) - allocs,
    );
    out
}

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: config_memory CONFIG.toml");
        std::process::exit(2);
    };
    let path = std::path::PathBuf::from(path);
    use std::mem::size_of;
    use tagwatch::config::{App, Target};
    println!(
        "sizes: App {} B, Target {} B, Policy {} B, Gates {} B",
        size_of::<App>(),
        size_of::<Target>(),
        size_of::<tagwatch::policy::Policy>(),
        size_of::<tagwatch::gate::Gates>(),
    );
    let text = measure("read", || std::fs::read_to_string(&path).expect("readable"));
    let table = measure("toml document", || {
        text.parse::<toml::Table>().expect("valid TOML")
    });
    drop(table);
    let doc = measure("toml DeTable", || {
        toml::de::DeTable::parse(&text).expect("valid TOML")
    });
    drop(doc);
    drop(text);
    let config = measure("config::load", || tagwatch::config::load(&path));
    match config {
        Ok(config) => println!(
            "{} apps, {} targets",
            config.apps.len(),
            config.apps.iter().map(|a| a.targets.len()).sum::<usize>()
        ),
        Err(e) => eprintln!("{e}"),
    }
}
