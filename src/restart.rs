//! Worker threads that outlive their own panics: a bug met on one picture (a decoder or a
//! detector case nobody foresaw) must not leave the service without a decoder or a detector for
//! the rest of its life. The panic is logged with its message, counted, and the worker starts
//! over; the picture it was working on is lost (its slot lease is released while unwinding).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use tracing::error;

/// A worker that panicked this soon after its previous panic waits [`PAUSE_AFTER_REPEAT`]
/// before starting over (no busy loop when every picture makes it panic).
const REPEAT_WITHIN: Duration = Duration::from_secs(10);
const PAUSE_AFTER_REPEAT: Duration = Duration::from_secs(1);

/// Runs `body` until it returns, starting it over after each panic (counted in `panics`).
/// `stage` and the thread's name go into the log. State the body keeps across runs (a
/// detector session, a decoder) must be safe to use again after a panic.
pub fn run_restarting(stage: &str, panics: &prometheus::IntCounter, mut body: impl FnMut()) {
    let mut last_panic: Option<Instant> = None;
    loop {
        match catch_unwind(AssertUnwindSafe(&mut body)) {
            Ok(()) => return,
            Err(payload) => {
                panics.inc();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                let thread = std::thread::current().name().unwrap_or("?").to_owned();
                error!(stage, thread, panic = %message,
                       "a worker panicked; it starts over (the picture it held is lost); please report this with the log");
                if last_panic.is_some_and(|t| t.elapsed() < REPEAT_WITHIN) {
                    std::thread::sleep(PAUSE_AFTER_REPEAT);
                }
                last_panic = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_body_is_counted_and_run_again_until_it_returns() {
        let panics = prometheus::IntCounter::new("p", "p").unwrap();
        let mut runs = 0;
        run_restarting("test", &panics, || {
            runs += 1;
            if runs < 3 {
                panic!("run {runs} fails");
            }
        });
        assert_eq!(runs, 3);
        assert_eq!(panics.get(), 2);
    }
}
