//! The detector's memory, as the process's resident set (Linux: `/proc/self/status`):
//!
//! 1. what loading the first and the second session of the default model adds (weights, and the
//!    weights ONNX Runtime repacks for its CPU kernels, shared between sessions of one model);
//! 2. the peak while both sessions run flat out, over the resident set after loading (their
//!    intermediate tensors: ONNX Runtime's CPU arena is off, so they are returned after each run).
//!
//! ```sh
//! cargo bench --bench detect_memory
//! DW_BENCH_SECONDS=10 cargo bench --bench detect_memory
//! ```
//!
//! Under `cargo test` it runs a short smoke version.

use std::time::{Duration, Instant};

use dumpwatch::config::ModelConfig;
use dumpwatch::detect::Engine;

/// (resident, peak resident) in MB.
fn resident_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts the peak resident set over from the current one.
fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak resident set ({e}): the run peak includes loading");
    }
}

fn main() {
    // As the service runs (see its doc).
    dumpwatch::allocator::bound_malloc();
    let seconds: f64 = if std::env::args().any(|a| a == "--bench") {
        std::env::var("DW_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5.0)
    } else {
        0.3
    };
    let cfg = ModelConfig::default();
    let (before, _) = resident_mb();
    let first = Engine::load(&cfg).expect("model (run scripts/setup.sh)");
    let (one, _) = resident_mb();
    let second = Engine::load(&cfg).expect("model");
    let (two, _) = resident_mb();
    println!(
        "model {}: first session +{:.1} MB, second session +{:.1} MB",
        first.info().name,
        one - before,
        two - one
    );

    let (w, h) = first.info().input_size;
    let input = vec![0.5f32; 3 * w as usize * h as usize];
    reset_peak();
    let (loaded, _) = resident_mb();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let runs: u64 = std::thread::scope(|s| {
        let threads: Vec<_> = [first, second]
            .into_iter()
            .map(|mut engine| {
                let input = &input;
                s.spawn(move || {
                    let mut n = 0;
                    while Instant::now() < end {
                        engine.run(input, 1, |_| ()).expect("a run");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a session thread"))
            .sum()
    });
    let (after, peak) = resident_mb();
    println!(
        "two sessions running ({runs} runs in {seconds:.1} s): peak +{:.1} MB over the {:.1} MB resident after loading; +{:.1} MB after the runs",
        peak - loaded,
        loaded,
        after - loaded
    );
}
