//! The store's own thread: the one writer. Everything that writes the database is a closure
//! sent to it over a bounded channel; a full channel makes the sender wait (an incident is never
//! dropped to keep up). Reads for the API go to read-only connections on the caller's blocking
//! threads instead ([`StoreHandle::read`]): however many clients page through the feed, the
//! writer thread is free for incidents, and the reads run at the priority of the API's threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc, oneshot};

use super::changes::Changes;
use super::{NewEvent, Store, StoreError};

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// Queue length of the store thread (callers wait beyond it).
const QUEUE: usize = 256;
/// Read-only connections kept open between reads.
const IDLE_READERS: usize = 4;

/// A handle on the store thread; clone it freely.
#[derive(Clone)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
    recorded: Arc<Notify>,
    changes: Changes,
    readers: Arc<Readers>,
}

/// Read-only connections to the database, opened as needed, a few kept.
struct Readers {
    dir: PathBuf,
    idle: Mutex<Vec<Store>>,
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
            changes: Changes::default(),
            readers: Arc::new(Readers {
                dir: dir.to_path_buf(),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Runs the read `f` on a read-only connection, on a blocking thread of the calling
    /// runtime (not on the store thread). It sees what was committed when it began.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let reader = readers.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let reader = match reader {
                Some(r) => r,
                None => Store::open_read_only(&readers.dir)?,
            };
            let result = f(&reader);
            let mut idle = readers.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(reader);
            }
            Ok(result)
        })
        .await
        .map_err(|_| StoreError::Closed)?
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

    /// Where the writers tell what the store took, and the live feed listens.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::EventKind;
    use crate::store::testing::event;

    #[tokio::test]
    async fn reads_see_what_was_committed_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path()).unwrap();
        let id = uuid::Uuid::now_v7();
        store
            .record(event(id, EventKind::Raised, 10.0, &[]), 10.0)
            .await
            .unwrap();
        let row = store.read(move |s| s.incident(id)).await.unwrap().unwrap();
        assert_eq!(row.map(|r| r.state), Some("open".to_owned()));
        // Many reads at once, each on a connection of its own.
        let reads: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.read(|s| s.outbox_counts()).await })
            })
            .collect();
        for r in reads {
            assert_eq!(r.await.unwrap().unwrap().unwrap().pending, 1);
        }
        let written = store
            .read(|s| s.conn().execute("DELETE FROM outbox", []))
            .await
            .unwrap();
        assert!(written.is_err(), "a reader wrote");
    }
}
