//! The store's own thread: the one writer. Everything that touches the database is a closure
//! sent to it over a bounded channel; a full channel makes the sender wait (an incident is never
//! dropped to keep up).

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use super::{NewEvent, Store, StoreError};

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// Queue length of the store thread (callers wait beyond it).
const QUEUE: usize = 256;

/// A handle on the store thread; clone it freely.
#[derive(Clone)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
    recorded: Arc<Notify>,
}

impl StoreHandle {
    /// Opens the store in `dir` and starts its thread. The thread ends when every handle is
    /// dropped, after finishing the jobs already queued.
    pub fn open(dir: &Path) -> Result<StoreHandle, StoreError> {
        let mut store = Store::open(dir)?;
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&mut store);
                }
            })
            .map_err(StoreError::Thread)?;
        Ok(StoreHandle {
            jobs: tx,
            recorded: Arc::new(Notify::new()),
        })
    }

    /// Runs `f` on the store thread and waits for its result (async callers).
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |s| {
                let _ = tx.send(f(s));
            }))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// Runs `f` on the store thread and waits for its result (threads outside the runtime, such
    /// as the detector workers). Never call it from async code.
    pub fn call_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .blocking_send(Box::new(move |s| {
                let _ = tx.send(f(s));
            }))
            .map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)
    }

    /// Records an incident event (blocking; see [`StoreHandle::call_blocking`]) and wakes the
    /// delivery worker. Returns the outbox row id.
    pub fn record_blocking(&self, event: NewEvent, now: f64) -> Result<i64, StoreError> {
        let id = self.call_blocking(move |s| s.record(&event, now))??;
        self.recorded.notify_one();
        Ok(id)
    }

    /// Records an incident event (async) and wakes the delivery worker.
    pub async fn record(&self, event: NewEvent, now: f64) -> Result<i64, StoreError> {
        let id = self.call(move |s| s.record(&event, now)).await??;
        self.recorded.notify_one();
        Ok(id)
    }

    /// Wakes the delivery worker (rows were put back in the outbox).
    pub fn wake_delivery(&self) {
        self.recorded.notify_one();
    }

    /// Notified whenever an event was recorded.
    pub fn recorded(&self) -> Arc<Notify> {
        self.recorded.clone()
    }
}
