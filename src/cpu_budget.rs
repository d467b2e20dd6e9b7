//! The CPU budget (`model.cpu_budget`): keeps the service's CPU within a number of cores by
//! setting how often the detector may run.
//!
//! The detector is the one stage that can wait: decoding follows the cameras, analysis follows
//! the detector. Every [`TICK`] the governor measures what the service used (the process's CPU
//! time less the API's threads, which run niced and yield to everything else anyway) and what
//! one detector run cost (the `detect-N` threads' CPU time per run: inference, pre- and
//! post-processing and the analysis that follows it), and sets the detector's rate so that the
//! service meets the budget: `rate + GAIN × (budget − used) / cost per run`. Decoding costs more
//! when the detector runs more (a busy camera's GOP is decoded as far as the detector uses it);
//! the next tick measures that and corrects. The rate never goes under [`FLOOR_PER_S`]; when the
//! budget asks for more than the sessions can run, the limit is lifted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::detect::worker::Pacer;

/// How often the governor measures and sets the rate.
pub const TICK: Duration = Duration::from_secs(2);
/// The fewest detector runs a second the budget allows, whatever the decoders use.
pub const FLOOR_PER_S: f64 = 1.0;
/// How much of the gap to the budget one tick closes (less than 1: the cost per run is a lower
/// bound of what one more run costs, decoding included).
const GAIN: f64 = 0.5;
/// One tick lowers the rate to no less than this share of the measured one.
const MOST_CUT: f64 = 0.5;
/// A limited service aims this share under its budget, so that the budget holds as a ceiling
/// over a run and not only as its mean (the 2 s readings of a loaded box vary by about ±0.05
/// core: with 1.0 core as the aim, the 77-camera check measured 1.01–1.02 cores over its run).
const HEADROOM: f64 = 0.03;

/// What the service used over one tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Used {
    /// Length of the tick in seconds.
    pub seconds: f64,
    /// CPU seconds of every thread of the process but the API's.
    pub service_cpu_s: f64,
    /// CPU seconds of the detector threads.
    pub detector_cpu_s: f64,
    /// Detector runs.
    pub runs: u64,
}

/// Turns what each tick used into the detector rate the budget allows. Pure: no clock, no
/// threads.
#[derive(Clone, Debug)]
pub struct RateController {
    budget_cores: f64,
    sessions: f64,
    per_run_s: Option<f64>,
    limit: Option<f64>,
}

impl RateController {
    /// A controller keeping the service within `budget_cores` with `sessions` detector sessions.
    pub fn new(budget_cores: f64, sessions: usize) -> RateController {
        RateController {
            budget_cores,
            sessions: sessions.max(1) as f64,
            per_run_s: None,
            limit: None,
        }
    }

    /// The CPU seconds one detector run costs, as measured so far.
    pub fn per_run_s(&self) -> Option<f64> {
        self.per_run_s
    }

    /// Takes one tick's use; returns the detector rate to allow from now on (`None`: no limit).
    pub fn update(&mut self, used: Used) -> Option<f64> {
        if used.seconds <= 0.0 {
            return self.limit;
        }
        if used.runs >= 2 && used.detector_cpu_s > 0.0 {
            let now = used.detector_cpu_s / used.runs as f64;
            self.per_run_s = Some(
                self.per_run_s
                    .map_or(now, |before| 0.5 * before + 0.5 * now),
            );
        }
        // Until a run has been measured nothing is known of what the detector costs.
        let Some(per_run) = self.per_run_s else {
            return self.limit;
        };
        let cores = used.service_cpu_s / used.seconds;
        let rate = used.runs as f64 / used.seconds;
        // Under the budget with a limit the detector did not reach (or none): nothing to hold
        // back. A limit is only kept where it holds the detector.
        let holding = self.limit.is_some_and(|l| rate >= 0.9 * l);
        if cores < self.budget_cores && !holding {
            self.limit = None;
            return None;
        }
        let aim = self.budget_cores * (1.0 - HEADROOM);
        let wanted = (rate + GAIN * (aim - cores) / per_run)
            .max(MOST_CUT * rate)
            .max(FLOOR_PER_S);
        // What the sessions could run flat out: a limit above it limits nothing.
        let flat_out = self.sessions / per_run;
        self.limit = (wanted < flat_out).then_some(wanted);
        self.limit
    }
}

/// Which of the service's threads a CPU second belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ThreadKind {
    Detector,
    Api,
    Other,
}

impl ThreadKind {
    /// By the thread's name (`/proc/self/task/TID/comm`, as the service names its threads).
    fn of(comm: &str) -> ThreadKind {
        if comm.starts_with("detect-") {
            ThreadKind::Detector
        } else if comm.starts_with("dw-api") {
            ThreadKind::Api
        } else {
            ThreadKind::Other
        }
    }
}

/// CPU time of the detector's and the API's threads since the last reading, from
/// `/proc/self/task/*/schedstat` (nanoseconds on the CPU). A thread that ended since the last
/// reading loses what it used after it (at most one tick of a thread that is gone).
#[derive(Default)]
struct ThreadClock {
    seen_ns: HashMap<u32, u64>,
}

/// CPU seconds by kind since the last reading.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ThreadUse {
    detector_s: f64,
    api_s: f64,
}

impl ThreadClock {
    fn read(&mut self) -> std::io::Result<ThreadUse> {
        let mut used = ThreadUse::default();
        let mut alive = HashMap::with_capacity(self.seen_ns.len());
        for entry in std::fs::read_dir("/proc/self/task")? {
            // A thread that ends while the directory is read is skipped, like one whose files
            // are gone by the time they are read.
            let Ok(entry) = entry else {
                continue;
            };
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<u32>().ok())
            else {
                continue;
            };
            // A thread may end between the listing and these reads: it is skipped.
            let (Ok(comm), Ok(stat)) = (
                std::fs::read_to_string(entry.path().join("comm")),
                std::fs::read_to_string(entry.path().join("schedstat")),
            ) else {
                continue;
            };
            let Some(ns) = stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let before = self.seen_ns.get(&tid).copied().unwrap_or(0);
            let delta_s = ns.saturating_sub(before) as f64 / 1e9;
            match ThreadKind::of(comm.trim_end()) {
                ThreadKind::Detector => used.detector_s += delta_s,
                ThreadKind::Api => used.api_s += delta_s,
                ThreadKind::Other => {}
            }
            alive.insert(tid, ns);
        }
        self.seen_ns = alive;
        Ok(used)
    }
}

/// The process's CPU time (user + system, every thread, those that ended included), seconds.
fn process_cpu_s() -> f64 {
    // SAFETY: getrusage writes one rusage struct, which we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The governor's metrics.
#[derive(Clone)]
pub struct CpuBudgetMetrics {
    /// `dumpwatch_cpu_cores{part}`: cores used over the last tick by `service` (what the budget
    /// counts), `detector` (part of it) and `api`.
    pub cores: prometheus::GaugeVec,
    /// `dumpwatch_cpu_budget_cores`.
    pub budget: prometheus::Gauge,
    /// `dumpwatch_detector_rate_limit`: detector runs a second the budget allows; 0 = none.
    pub rate_limit: prometheus::Gauge,
}

impl CpuBudgetMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &prometheus::Registry) -> CpuBudgetMetrics {
        let cores = prometheus::GaugeVec::new(
            prometheus::Opts::new(
                "dumpwatch_cpu_cores",
                "Cores used over the last 2 s: service (every thread but the API's: what model.cpu_budget counts), detector (part of service), api.",
            ),
            &["part"],
        )
        .expect("valid metric");
        let budget = prometheus::Gauge::new(
            "dumpwatch_cpu_budget_cores",
            "The CPU budget in cores (model.cpu_budget).",
        )
        .expect("valid metric");
        let rate_limit = prometheus::Gauge::new(
            "dumpwatch_detector_rate_limit",
            "Detector runs a second the CPU budget allows now; 0 = no limit.",
        )
        .expect("valid metric");
        for m in [
            Box::new(cores.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(budget.clone()),
            Box::new(rate_limit.clone()),
        ] {
            // Registered once per registry; a second service in the same process shares them.
            let _ = registry.register(m);
        }
        CpuBudgetMetrics {
            cores,
            budget,
            rate_limit,
        }
    }
}

/// The running governor; stops when dropped.
pub struct CpuGovernor {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CpuGovernor {
    /// Starts keeping the service within `budget_cores` by setting `pacer`'s budget rate.
    pub fn start(
        budget_cores: f64,
        sessions: usize,
        pacer: Arc<Pacer>,
        metrics: CpuBudgetMetrics,
    ) -> CpuGovernor {
        let (stop, stopped) = mpsc::channel::<()>();
        metrics.budget.set(budget_cores);
        let thread = std::thread::Builder::new()
            .name("cpu-budget".into())
            .spawn(move || {
                govern(
                    RateController::new(budget_cores, sessions),
                    &pacer,
                    &metrics,
                    &stopped,
                )
            })
            .expect("spawning the cpu-budget thread");
        info!(
            cores = budget_cores,
            "CPU budget: the detector's rate is set every 2 s to keep the service within it"
        );
        CpuGovernor {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for CpuGovernor {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn govern(
    mut controller: RateController,
    pacer: &Pacer,
    metrics: &CpuBudgetMetrics,
    stopped: &mpsc::Receiver<()>,
) {
    let mut clock = ThreadClock::default();
    if let Err(e) = clock.read() {
        warn!(error = %e, "cannot read the threads' CPU time from /proc/self/task; the CPU budget is not applied");
        return;
    }
    let (mut at, mut cpu, mut runs) = (Instant::now(), process_cpu_s(), pacer.runs());
    let mut limited = false;
    loop {
        match stopped.recv_timeout(TICK) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let threads = match clock.read() {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "cannot read the threads' CPU time; the CPU budget is lifted");
                pacer.set_budget_rate(None);
                metrics.rate_limit.set(0.0);
                return;
            }
        };
        let (now, cpu_now, runs_now) = (Instant::now(), process_cpu_s(), pacer.runs());
        let seconds = now.duration_since(at).as_secs_f64();
        let used = Used {
            seconds,
            service_cpu_s: (cpu_now - cpu - threads.api_s).max(0.0),
            detector_cpu_s: threads.detector_s,
            runs: runs_now.saturating_sub(runs),
        };
        (at, cpu, runs) = (now, cpu_now, runs_now);
        let limit = controller.update(used);
        pacer.set_budget_rate(limit);
        for (part, s) in [
            ("service", used.service_cpu_s),
            ("detector", used.detector_cpu_s),
            ("api", threads.api_s),
        ] {
            metrics.cores.with_label_values(&[part]).set(s / seconds);
        }
        metrics.rate_limit.set(limit.unwrap_or(0.0));
        if limit.is_some() != limited {
            limited = limit.is_some();
            info!(
                service_cores = format!("{:.2}", used.service_cpu_s / seconds),
                detector_runs_per_s = format!("{:.2}", used.runs as f64 / seconds),
                limit_per_s = limit.map(|l| format!("{l:.2}")),
                "CPU budget: detector rate {}",
                if limited {
                    "limited"
                } else {
                    "no longer limited"
                }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service whose decoders use `other` cores plus `decode_per_run` CPU seconds for each
    /// detector run, and whose detector runs cost `per_run` each, with work for `demand` runs a
    /// second on `sessions` sessions.
    struct Service {
        other: f64,
        decode_per_run: f64,
        per_run: f64,
        demand: f64,
        sessions: f64,
        /// The part of a run begun in one tick and counted in the next (runs are whole).
        begun: std::cell::Cell<f64>,
    }

    impl Service {
        fn tick(&self, limit: Option<f64>) -> Used {
            let rate = self
                .demand
                .min(self.sessions / self.per_run)
                .min(limit.unwrap_or(f64::INFINITY));
            let runs = self.begun.get() + 2.0 * rate;
            self.begun.set(runs.fract());
            Used {
                seconds: 2.0,
                service_cpu_s: 2.0 * (self.other + rate * (self.per_run + self.decode_per_run)),
                detector_cpu_s: 2.0 * rate * self.per_run,
                runs: runs.floor() as u64,
            }
        }

        fn cores(&self, limit: Option<f64>) -> f64 {
            let u = self.tick(limit);
            u.service_cpu_s / u.seconds
        }
    }

    fn settle(service: &Service, budget: f64) -> Option<f64> {
        let mut c = RateController::new(budget, service.sessions as usize);
        let mut limit = None;
        for _ in 0..15 {
            limit = c.update(service.tick(limit));
        }
        limit
    }

    #[test]
    fn a_saturated_service_settles_at_its_budget() {
        // The 77-camera box: decoders 0.45 core, detector 0.14 s a run, decoding 0.01 s more
        // per run, work for more than the two sessions can do.
        let box77 = Service {
            other: 0.45,
            decode_per_run: 0.01,
            per_run: 0.14,
            demand: 100.0,
            sessions: 2.0,
            begun: Default::default(),
        };
        assert!(box77.cores(None) > 1.9);
        let limit = settle(&box77, 1.6).expect("limited");
        let cores = box77.cores(Some(limit));
        // A ceiling: under it, by little.
        assert!((1.52..1.6).contains(&cores), "{cores} cores at {limit}/s");
        // One core: the same, lower.
        let limit = settle(&box77, 1.0).expect("limited");
        let cores = box77.cores(Some(limit));
        assert!((0.95..1.0).contains(&cores), "{cores} cores at {limit}/s");
    }

    #[test]
    fn a_service_under_its_budget_is_not_limited() {
        let quiet = Service {
            other: 0.2,
            decode_per_run: 0.01,
            per_run: 0.14,
            demand: 3.0,
            sessions: 2.0,
            begun: Default::default(),
        };
        assert_eq!(settle(&quiet, 1.6), None);
    }

    #[test]
    fn decoders_over_the_budget_leave_the_detector_its_floor() {
        let decoding = Service {
            other: 1.8,
            decode_per_run: 0.0,
            per_run: 0.14,
            demand: 100.0,
            sessions: 2.0,
            begun: Default::default(),
        };
        assert_eq!(settle(&decoding, 1.6), Some(FLOOR_PER_S));
    }

    #[test]
    fn nothing_is_limited_before_a_run_is_measured_and_one_tick_cuts_at_most_half() {
        let mut c = RateController::new(1.0, 2);
        let idle = Used {
            seconds: 2.0,
            service_cpu_s: 3.0,
            detector_cpu_s: 0.0,
            runs: 0,
        };
        assert_eq!(c.update(idle), None);
        let over = Used {
            seconds: 2.0,
            service_cpu_s: 6.0,
            detector_cpu_s: 2.8,
            runs: 20,
        };
        assert_eq!(c.update(over), Some(5.0));
        assert!(c.per_run_s().is_some_and(|p| (p - 0.14).abs() < 1e-9));
    }

    #[test]
    fn the_detector_threads_cpu_is_read_by_name() {
        /// The calling thread's own CPU time.
        fn own_cpu() -> Duration {
            // SAFETY: clock_gettime writes one timespec, which we own.
            let t = unsafe {
                let mut t: libc::timespec = std::mem::zeroed();
                libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t);
                t
            };
            Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
        }
        let mut clock = ThreadClock::default();
        clock.read().unwrap();
        let (spun, go_on) = (mpsc::channel(), mpsc::channel::<()>());
        let (spun_tx, go_on_rx) = (spun.0, go_on.1);
        let spin = std::thread::Builder::new()
            .name("detect-test".into())
            .spawn(move || {
                let mut x = 0u64;
                while own_cpu() < Duration::from_millis(100) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                spun_tx.send(()).unwrap();
                // Alive until read: a thread that ended is gone from /proc.
                let _ = go_on_rx.recv();
                x
            })
            .unwrap();
        spun.1.recv().unwrap();
        let used = clock.read().unwrap();
        drop(go_on.0);
        spin.join().unwrap();
        assert!(used.detector_s >= 0.099, "{used:?}");
        assert!(process_cpu_s() >= used.detector_s);
        assert_eq!(ThreadKind::of("dw-api"), ThreadKind::Api);
        assert_eq!(ThreadKind::of("decode-0"), ThreadKind::Other);
    }
}
