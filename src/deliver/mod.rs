//! Delivery: posts the outbox to the city's case system until each event is acknowledged (2xx)
//! or refused (dead letter).
//!
//! The outbox is in the store, so a crash or an outage loses nothing: after a restart the worker
//! picks up every pending row. A row may be sent again after a crash (it was posted but the
//! acknowledgement not yet recorded); it carries the same `Idempotency-Key`, so the city system
//! sees it once.

pub mod retry;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::unix_now;
use crate::incident::{IncidentBody, SnapshotRef};
use crate::store::writer::StoreHandle;
use crate::store::{OutboxItem, StoreError};
pub use retry::{Backoff, Outcome};

pub use crate::config::SnapshotMode;

/// The worker's settings (from `[delivery]`).
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// Where bodies are POSTed.
    pub endpoint: String,
    /// HMAC key for `X-Dumpwatch-Signature` (`t=<unix seconds>,v1=<HMAC of t.key.body>`, see
    /// docs/signature.md); `None`: unsigned.
    pub secret: Option<Vec<u8>>,
    /// Inline or URL snapshots.
    pub snapshots: SnapshotMode,
    /// Base URL of dumpwatch's API as the city system reaches it (for URL snapshots).
    pub public_url: String,
    /// Most requests in flight at once.
    pub concurrency: usize,
    /// Limit of one request.
    pub timeout: Duration,
    /// Retry delays.
    pub backoff: Backoff,
    /// Where the evidence files are (the storage directory).
    pub storage_dir: PathBuf,
}

impl DeliverySettings {
    /// The settings of `[delivery]`: the secret read from the environment variable it names,
    /// `public_url` defaulting to `default_public_url` (the service's own address).
    pub fn from_config(
        cfg: &crate::config::DeliveryConfig,
        storage_dir: &std::path::Path,
        default_public_url: &str,
    ) -> DeliverySettings {
        DeliverySettings {
            endpoint: cfg.endpoint.clone(),
            secret: cfg
                .secret_env
                .as_ref()
                .and_then(|n| std::env::var(n).ok())
                .map(String::into_bytes),
            snapshots: cfg.snapshots,
            public_url: cfg
                .public_url
                .clone()
                .unwrap_or_else(|| default_public_url.to_owned()),
            concurrency: cfg.concurrency as usize,
            timeout: Duration::from_secs_f64(cfg.timeout_s),
            backoff: Backoff {
                initial: Duration::from_secs_f64(cfg.backoff_initial_s),
                max: Duration::from_secs_f64(cfg.backoff_max_s),
            },
            storage_dir: storage_dir.to_path_buf(),
        }
    }
}

/// The delivery metrics.
#[derive(Clone)]
pub struct DeliveryMetrics {
    /// `dumpwatch_delivery_attempts_total{result}`.
    pub attempts: IntCounterVec,
    /// `dumpwatch_outbox_pending`: events waiting for delivery.
    pub pending: IntGauge,
    /// `dumpwatch_outbox_dead`: events the city system refused (dead letters).
    pub dead: IntGauge,
    /// `dumpwatch_delivery_latency_seconds`: from the event to the city system's 2xx.
    pub latency: Histogram,
}

impl DeliveryMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> DeliveryMetrics {
        let attempts = IntCounterVec::new(
            Opts::new(
                "dumpwatch_delivery_attempts_total",
                "Delivery attempts by result (delivered, retry_status, retry_network, dead_letter).",
            ),
            &["result"],
        )
        .expect("valid counter");
        let pending = IntGauge::new(
            "dumpwatch_outbox_pending",
            "Incident events waiting for delivery to the city system.",
        )
        .expect("valid gauge");
        let dead = IntGauge::new(
            "dumpwatch_outbox_dead",
            "Incident events the city system refused (dead letters, see the API).",
        )
        .expect("valid gauge");
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "dumpwatch_delivery_latency_seconds",
                "From an incident event to the city system's acknowledgement.",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
                7200.0,
            ]),
        )
        .expect("valid histogram");
        for c in [
            Box::new(attempts.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(pending.clone()),
            Box::new(dead.clone()),
            Box::new(latency.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        DeliveryMetrics {
            attempts,
            pending,
            dead,
            latency,
        }
    }
}

/// The delivery settings in force, replaced by a configuration reload; each attempt reads them
/// when it starts.
#[derive(Clone)]
pub struct SettingsCell(Arc<std::sync::RwLock<Arc<DeliverySettings>>>);

impl SettingsCell {
    /// The settings now.
    pub fn get(&self) -> Arc<DeliverySettings> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the settings (attempts in flight finish with the old ones).
    pub fn set(&self, settings: DeliverySettings) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
    }
}

/// The delivery worker.
pub struct Deliverer {
    store: StoreHandle,
    settings: SettingsCell,
    client: reqwest::Client,
    metrics: DeliveryMetrics,
}

/// Starting the worker failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The HTTP client could not be built (TLS setup).
    #[error("delivery HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Deliverer {
    /// A worker posting the outbox of `store` as `settings` say.
    pub fn new(
        store: StoreHandle,
        settings: DeliverySettings,
        metrics: DeliveryMetrics,
    ) -> Result<Deliverer, DeliveryError> {
        install_tls_provider();
        // Timeouts are set per request: a reload may change them. Redirects are not followed:
        // a client following one turns the POST into a GET on 301/302/303, and a 2xx to that
        // GET would be taken for a delivery (see `retry::classify` for what a 3xx becomes).
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dumpwatch/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Deliverer {
            store,
            settings: SettingsCell(Arc::new(std::sync::RwLock::new(Arc::new(settings)))),
            client,
            metrics,
        })
    }

    /// The settings, for a reload to replace.
    pub fn settings(&self) -> SettingsCell {
        self.settings.clone()
    }

    /// Delivers until `cancel`; then waits up to `grace` for the requests in flight (what is not
    /// acknowledged by then stays pending for the next start).
    pub async fn run(self, cancel: CancellationToken, grace: Duration) {
        let recorded = self.store.recorded();
        let mut in_flight: JoinSet<i64> = JoinSet::new();
        let mut sending: Vec<i64> = Vec::new();
        let mut next_due: Option<f64> = None;
        loop {
            self.refresh_gauges().await;
            let settings = self.settings.get();
            let free = settings.concurrency.saturating_sub(sending.len());
            if free > 0 {
                let now = unix_now();
                let exclude = sending.clone();
                match self
                    .store
                    .call(move |s| {
                        let due = s.due(now, free, &exclude)?;
                        let busy: Vec<i64> = exclude
                            .iter()
                            .copied()
                            .chain(due.iter().map(|d| d.id))
                            .collect();
                        let next = s.next_due(&busy)?;
                        Ok::<_, StoreError>((due, next))
                    })
                    .await
                    .and_then(|r| r)
                {
                    Ok((due, next)) => {
                        next_due = next;
                        for item in due {
                            sending.push(item.id);
                            let job = Attempt {
                                store: self.store.clone(),
                                settings: settings.clone(),
                                client: self.client.clone(),
                                metrics: self.metrics.clone(),
                            };
                            in_flight.spawn(async move {
                                let id = item.id;
                                job.run(item).await;
                                id
                            });
                        }
                    }
                    Err(StoreError::Closed) => break,
                    Err(e) => {
                        warn!(error = %e, "delivery: cannot read the outbox");
                        next_due = Some(unix_now() + 5.0);
                    }
                }
            }
            // Sleep until something is recorded, a request finishes, or the next row is due
            // (rows being sent count as not due).
            let wait = if sending.len() >= settings.concurrency {
                Duration::from_secs(3600)
            } else {
                next_due.map_or(Duration::from_secs(3600), |t| {
                    Duration::from_secs_f64((t - unix_now()).clamp(0.05, 3600.0))
                })
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = recorded.notified() => {}
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Ok(id) = done {
                        sending.retain(|s| *s != id);
                    }
                    // Others may have finished at the same time.
                    while let Some(done) = in_flight.try_join_next() {
                        if let Ok(id) = done {
                            sending.retain(|s| *s != id);
                        }
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if !in_flight.is_empty() {
            info!(
                requests = in_flight.len(),
                grace_s = grace.as_secs_f64(),
                "delivery: waiting for the requests in flight"
            );
            let _ = tokio::time::timeout(grace, async {
                while in_flight.join_next().await.is_some() {}
            })
            .await;
        }
        self.refresh_gauges().await;
    }

    async fn refresh_gauges(&self) {
        if let Ok(Ok(c)) = self.store.call(|s| s.outbox_counts()).await {
            self.metrics.pending.set(c.pending as i64);
            self.metrics.dead.set(c.dead as i64);
        }
    }
}

/// One attempt at one outbox row.
struct Attempt {
    store: StoreHandle,
    settings: Arc<DeliverySettings>,
    client: reqwest::Client,
    metrics: DeliveryMetrics,
}

impl Attempt {
    async fn run(self, item: OutboxItem) {
        let body = self.body(&item).await;
        let started = Instant::now();
        let outcome = self.post(&item.idempotency_key, body).await;
        self.metrics
            .attempts
            .with_label_values(&[outcome.label()])
            .inc();
        let now = unix_now();
        let id = item.id;
        let key = item.idempotency_key.clone();
        let recorded = match &outcome {
            Outcome::Delivered { status } => {
                self.metrics
                    .latency
                    .observe((now - item.created_at).max(0.0));
                debug!(key = %key, status, took_ms = started.elapsed().as_millis() as u64, "delivered");
                let status = *status;
                self.store
                    .call(move |s| s.mark_delivered(id, status, now))
                    .await
            }
            Outcome::Retry {
                status,
                error,
                retry_after,
            } => {
                let attempts = item.attempts + 1;
                let delay = self.settings.backoff.delay(attempts, *retry_after);
                warn!(key = %key, attempt = attempts, error = %error, retry_in_s = format!("{:.1}", delay.as_secs_f64()),
                      "delivery failed; will retry");
                let (status, error) = (*status, error.clone());
                let next = now + delay.as_secs_f64();
                self.store
                    .call(move |s| s.mark_retry(id, status, &error, next))
                    .await
            }
            Outcome::Refused { status, error } => {
                warn!(key = %key, status, error = %error,
                      "the city system refused the incident: dead letter (see /api/v1/incidents)");
                let (status, error) = (*status, error.clone());
                self.store
                    .call(move |s| s.mark_dead(id, Some(status), &error))
                    .await
            }
        };
        if let Err(e) | Ok(Err(e)) = recorded.map(|r| r.map(|_| ())) {
            warn!(key = %key, error = %e, "delivery: cannot record the outcome (the row stays pending and is sent again with the same key)");
        }
    }

    /// The body with its snapshots: inline data or URLs. A snapshot file that cannot be read is
    /// left out (and logged); the incident still goes.
    async fn body(&self, item: &OutboxItem) -> Vec<u8> {
        let mut body: IncidentBody = item.body.clone();
        body.snapshots.clear();
        for f in item
            .evidence
            .iter()
            .filter(|f| crate::incident::sent_to_city(&f.role))
        {
            let mut snap = SnapshotRef {
                role: f.role.clone(),
                content_type: f.content_type.clone(),
                sha256: f.sha256.clone(),
                data_base64: None,
                url: None,
            };
            match self.settings.snapshots {
                SnapshotMode::Inline => {
                    let path = self.settings.storage_dir.join(&f.path);
                    match tokio::fs::read(&path).await {
                        Ok(bytes) => {
                            snap.data_base64 =
                                Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                        }
                        Err(e) => {
                            warn!(key = %item.idempotency_key, path = %path.display(), error = %e,
                                  "evidence file unreadable; sending the incident without it");
                            continue;
                        }
                    }
                }
                SnapshotMode::Url => {
                    snap.url = Some(format!(
                        "{}/api/v1/incidents/{}/evidence/{}",
                        self.settings.public_url.trim_end_matches('/'),
                        item.incident_id,
                        f.id
                    ));
                }
            }
            body.snapshots.push(snap);
        }
        serde_json::to_vec(&body).expect("plain data")
    }

    async fn post(&self, key: &str, body: Vec<u8>) -> Outcome {
        let mut req = self
            .client
            .post(&self.settings.endpoint)
            .timeout(self.settings.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", key);
        if let Some(secret) = &self.settings.secret {
            // Signed at each attempt, with the time of the attempt.
            let t = unix_now().floor() as i64;
            req = req.header(
                "X-Dumpwatch-Signature",
                crate::hashing::sign_delivery(secret, t, key, &body),
            );
        }
        match req.body(body).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
                let text = if resp.status().is_success() {
                    String::new()
                } else if resp.status().is_redirection() {
                    let to = resp
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("nowhere named");
                    format!(
                        "redirect to {to} not followed (a redirect is not a delivery): \
                         set delivery.endpoint to the address the city system receives on"
                    )
                    .chars()
                    .take(300)
                    .collect()
                } else {
                    resp.text()
                        .await
                        .unwrap_or_default()
                        .chars()
                        .take(300)
                        .collect()
                };
                retry::classify(status, retry_after, &text)
            }
            Err(e) => Outcome::Retry {
                status: None,
                error: error_chain(&e),
                retry_after: None,
            },
        }
    }
}

/// An error with its causes (reqwest's top-level message hides "connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Makes ring the process's TLS provider for rustls (reqwest is built without one). Call it
/// before building any `reqwest::Client`; later calls do nothing.
pub fn install_tls_provider() {
    // An error means a provider is installed already, which is the point.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
