//! Latest-value-wins slots, one per camera, with a fair scheduler for the worker threads that
//! empty them.
//!
//! This is the edge between an async producer that must never wait (ingest, decode) and a pool of
//! blocking workers (decoders, detectors):
//! - [`LatestSlots::put`] never blocks: a value replaces the one still waiting in the camera's
//!   slot, and the replaced value is returned so the caller can count the drop with its reason;
//! - workers take cameras in the order they became ready (round-robin), so a camera that produces
//!   fast cannot starve the others;
//! - a camera is held by at most one worker at a time (between [`LatestSlots::take`] and
//!   [`Lease`] drop), which keeps a camera's frames in order and lets per-camera state (a
//!   decoder, a tracker) be used without locks.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Which queue a camera's waiting value is served from.
///
/// Busy cameras (someone near a zone, an object pending, an incident open) are where dumping
/// happens: they are served first. Idle cameras get what is left, but never nothing: when both
/// queues wait, every [`BUSY_PER_IDLE`]-th take serves the idle queue, so an idle camera's
/// refresh is delayed under load, never starved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Priority {
    /// Served after busy cameras.
    #[default]
    Idle,
    /// Served first.
    Busy,
}

/// Takes from the busy queue for each one from the idle queue, while both have cameras waiting.
pub const BUSY_PER_IDLE: u32 = 3;

/// Once the oldest idle camera has waited this long, idle and busy cameras are served in turn
/// (one each) until it is served: busy work can cost far more per take than idle work (a run of
/// frames against one keyframe), and a backlog of idle work (77 cameras starting at once) must
/// neither wait behind busy cameras nor push them out.
pub const IDLE_MAX_WAIT: Duration = Duration::from_secs(1);

struct Inner<T> {
    slots: Vec<Option<T>>,
    /// Camera is held by a worker.
    held: Vec<bool>,
    /// The queue a camera waits in, if it waits (it has a value and is not held).
    queued: Vec<Option<Priority>>,
    /// Cameras waiting, busy ones, in the order they became ready.
    ready_busy: VecDeque<usize>,
    /// Cameras waiting, idle ones, in the order they became ready, with the time they did.
    ready_idle: VecDeque<(usize, Instant)>,
    /// Busy takes since the last idle take while idle cameras waited.
    busy_streak: u32,
    closed: bool,
}

impl<T> Inner<T> {
    /// Queues `camera` (which has a value and is not held) in `priority`'s queue, moving it if it
    /// waits in the other one. Returns whether it was not waiting before (a worker may wake).
    fn enqueue(&mut self, camera: usize, priority: Priority) -> bool {
        match self.queued[camera] {
            Some(p) if p == priority => return false,
            Some(_) => self.dequeue(camera),
            None => {}
        }
        self.queued[camera] = Some(priority);
        match priority {
            Priority::Busy => self.ready_busy.push_back(camera),
            Priority::Idle => self.ready_idle.push_back((camera, Instant::now())),
        }
        true
    }

    fn dequeue(&mut self, camera: usize) {
        match self.queued[camera].take() {
            Some(Priority::Busy) => self.ready_busy.retain(|&c| c != camera),
            Some(Priority::Idle) => self.ready_idle.retain(|&(c, _)| c != camera),
            None => {}
        }
    }

    /// The next camera to serve: busy first, an idle one after every [`BUSY_PER_IDLE`] busy ones
    /// (after every busy one while the oldest idle one has waited [`IDLE_MAX_WAIT`]).
    fn next_ready(&mut self) -> Option<(usize, Priority)> {
        let idle_overdue = self
            .ready_idle
            .front()
            .is_some_and(|(_, since)| since.elapsed() >= IDLE_MAX_WAIT);
        let busy_per_idle = if idle_overdue { 1 } else { BUSY_PER_IDLE };
        let idle_turn = self.busy_streak >= busy_per_idle || self.ready_busy.is_empty();
        let camera = if idle_turn && !self.ready_idle.is_empty() {
            self.busy_streak = 0;
            self.ready_idle.pop_front().map(|(c, _)| c)
        } else {
            let c = self.ready_busy.pop_front();
            if c.is_some() && !self.ready_idle.is_empty() {
                self.busy_streak += 1;
            }
            c
        }?;
        let priority = self.queued[camera].take().unwrap_or_default();
        Some((camera, priority))
    }

    fn any_ready(&self) -> bool {
        !self.ready_busy.is_empty() || !self.ready_idle.is_empty()
    }
}

/// Per-camera latest-value slots; see the module documentation.
pub struct LatestSlots<T> {
    inner: Mutex<Inner<T>>,
    available: Condvar,
}

/// A worker's hold on one camera; releasing it (drop) makes the camera schedulable again.
pub struct Lease<'a, T> {
    slots: &'a LatestSlots<T>,
    camera: usize,
    priority: Priority,
}

impl<T> Lease<'_, T> {
    /// The camera this lease holds.
    pub fn camera(&self) -> usize {
        self.camera
    }
}

impl<T> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        inner.held[self.camera] = false;
        if inner.slots[self.camera].is_some() {
            inner.enqueue(self.camera, self.priority);
            drop(inner);
            self.slots.available.notify_one();
        }
    }
}

impl<T> LatestSlots<T> {
    /// Slots for cameras `0..cameras`.
    pub fn new(cameras: usize) -> Self {
        LatestSlots {
            inner: Mutex::new(Inner {
                slots: (0..cameras).map(|_| None).collect(),
                held: vec![false; cameras],
                queued: vec![None; cameras],
                ready_busy: VecDeque::with_capacity(cameras),
                ready_idle: VecDeque::with_capacity(cameras),
                busy_streak: 0,
                closed: false,
            }),
            available: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A worker that panicked while holding the lock left consistent data (every critical
        // section is a few assignments), so keep going rather than poison the pipeline.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `value` as the camera's newest, served as an idle camera; returns the value it
    /// replaced, if any.
    ///
    /// Panics if `camera` is out of range (a wiring bug, not an input error).
    pub fn put(&self, camera: usize, value: T) -> Option<T> {
        self.put_as(camera, value, Priority::Idle)
    }

    /// Stores `value` as the camera's newest, served with `priority`; returns the value it
    /// replaced, if any.
    pub fn put_as(&self, camera: usize, value: T, priority: Priority) -> Option<T> {
        self.update(camera, priority, |slot| slot.replace(value))
    }

    /// Changes the camera's waiting value in place (`merge` sees `None` when nothing waits) and
    /// queues the camera with `priority` if a value waits afterwards. Lets a producer append to
    /// what waits instead of replacing it (a run of frames for the decoder).
    pub fn update<R>(
        &self,
        camera: usize,
        priority: Priority,
        merge: impl FnOnce(&mut Option<T>) -> R,
    ) -> R {
        let mut inner = self.lock();
        let result = merge(&mut inner.slots[camera]);
        let woke = if inner.slots[camera].is_some() && !inner.held[camera] {
            inner.enqueue(camera, priority)
        } else {
            if inner.slots[camera].is_none() {
                inner.dequeue(camera);
            }
            false
        };
        drop(inner);
        if woke {
            self.available.notify_one();
        }
        result
    }

    /// Waits for the next ready camera (busy ones first, see [`Priority`]) and takes its value.
    /// Returns `None` once the slots are closed and `timeout` (if any) passes without a value.
    pub fn take(&self, timeout: Option<Duration>) -> Option<(Lease<'_, T>, T)> {
        let mut inner = self.lock();
        loop {
            if let Some((camera, priority)) = inner.next_ready() {
                let value = inner.slots[camera]
                    .take()
                    .expect("a ready camera has a value");
                inner.held[camera] = true;
                return Some((
                    Lease {
                        slots: self,
                        camera,
                        priority,
                    },
                    value,
                ));
            }
            if inner.closed {
                return None;
            }
            inner = match timeout {
                None => self
                    .available
                    .wait(inner)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(t) => {
                    let (guard, result) = self
                        .available
                        .wait_timeout(inner, t)
                        .unwrap_or_else(|e| e.into_inner());
                    if result.timed_out() && !guard.any_ready() {
                        return None;
                    }
                    guard
                }
            };
        }
    }

    /// Takes the next ready camera without waiting (for gathering a batch).
    pub fn try_take(&self) -> Option<(Lease<'_, T>, T)> {
        self.take(Some(Duration::ZERO))
    }

    /// Wakes every waiting worker; after the remaining values are taken, [`take`](Self::take)
    /// returns `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.available.notify_all();
    }

    /// Number of cameras with a value waiting.
    pub fn pending(&self) -> usize {
        self.lock().slots.iter().filter(|s| s.is_some()).count()
    }

    /// Drops the camera's waiting value, if any (the camera was removed or its slot is reused).
    pub fn clear(&self, camera: usize) -> Option<T> {
        let mut inner = self.lock();
        let value = inner.slots[camera].take();
        inner.dequeue(camera);
        value
    }
}

impl<T> FromIterator<T> for SlotTable<T> {
    /// One occupied slot per value.
    fn from_iter<I: IntoIterator<Item = T>>(values: I) -> Self {
        SlotTable {
            slots: values
                .into_iter()
                .map(|v| std::sync::RwLock::new(Some(v)))
                .collect(),
        }
    }
}

/// A value per camera slot that the supervisor sets when a camera starts, changes on reload and
/// removes when the camera stops; readers clone it out (cheap: handles and `Arc`s).
pub struct SlotTable<T> {
    slots: Vec<std::sync::RwLock<Option<T>>>,
}

impl<T: Clone> SlotTable<T> {
    /// `n` vacant slots.
    pub fn new(n: usize) -> Self {
        SlotTable {
            slots: (0..n).map(|_| std::sync::RwLock::new(None)).collect(),
        }
    }

    /// Slot `i`'s value; `None` if vacant or out of range.
    pub fn get(&self, i: usize) -> Option<T> {
        self.slots
            .get(i)?
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets (or with `None` vacates) slot `i`.
    pub fn set(&self, i: usize, value: Option<T>) {
        *self.slots[i].write().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn newest_value_wins_and_replaced_is_returned() {
        let s = LatestSlots::new(2);
        assert_eq!(s.put(0, 1), None);
        assert_eq!(s.put(0, 2), Some(1));
        let (lease, v) = s.take(None).unwrap();
        assert_eq!((lease.camera(), v), (0, 2));
    }

    #[test]
    fn round_robin_across_cameras() {
        let s = LatestSlots::new(3);
        s.put(2, "c");
        s.put(0, "a");
        s.put(1, "b");
        let order: Vec<_> = (0..3)
            .map(|_| s.take(None).map(|(l, v)| (l.camera(), v)).unwrap())
            .collect();
        assert_eq!(order, vec![(2, "c"), (0, "a"), (1, "b")]);
    }

    #[test]
    fn a_busy_camera_is_not_handed_to_a_second_worker() {
        let s = LatestSlots::new(2);
        s.put(0, 1);
        let (lease, _) = s.take(None).unwrap();
        s.put(0, 2);
        s.put(1, 10);
        // Camera 0 is held: the next worker gets camera 1 even though 0 has a value.
        let (other, v) = s.take(Some(Duration::from_millis(10))).unwrap();
        assert_eq!((other.camera(), v), (1, 10));
        drop(other);
        assert!(s.take(Some(Duration::from_millis(10))).is_none());
        drop(lease);
        let (again, v) = s.take(Some(Duration::from_millis(10))).unwrap();
        assert_eq!((again.camera(), v), (0, 2));
    }

    #[test]
    fn close_wakes_waiting_workers() {
        let s = Arc::new(LatestSlots::<u32>::new(1));
        let worker = {
            let s = s.clone();
            std::thread::spawn(move || s.take(None).is_none())
        };
        std::thread::sleep(Duration::from_millis(20));
        s.close();
        assert!(worker.join().unwrap());
    }

    #[test]
    fn a_cleared_camera_is_no_longer_ready() {
        let s = LatestSlots::new(2);
        s.put(0, 1);
        s.put(1, 2);
        assert_eq!(s.clear(0), Some(1));
        assert_eq!(s.clear(0), None);
        let (lease, v) = s.take(Some(Duration::from_millis(10))).unwrap();
        assert_eq!((lease.camera(), v), (1, 2));
        drop(lease);
        assert!(s.take(Some(Duration::from_millis(10))).is_none());
    }

    /// The cameras of the next `n` takes, each released at once.
    fn served_order<T>(s: &LatestSlots<T>, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| s.take(None).expect("a camera is ready").0.camera())
            .collect()
    }

    #[test]
    fn busy_cameras_are_served_first_but_idle_ones_are_never_starved() {
        let s = LatestSlots::new(6);
        // Idle cameras became ready first; busy ones still go first.
        s.put(0, 0);
        s.put(1, 1);
        for c in 2..6 {
            s.put_as(c, c, Priority::Busy);
        }
        assert_eq!(
            served_order(&s, 6),
            vec![2, 3, 4, 0, 5, 1],
            "one idle take per {BUSY_PER_IDLE} busy ones"
        );
    }

    #[test]
    fn idle_cameras_that_waited_too_long_are_served_in_turn_with_busy_ones() {
        let s = LatestSlots::new(6);
        for c in 0..3 {
            s.put(c, c);
        }
        std::thread::sleep(IDLE_MAX_WAIT + Duration::from_millis(20));
        for c in 3..6 {
            s.put_as(c, c, Priority::Busy);
        }
        assert_eq!(served_order(&s, 6), vec![3, 0, 4, 1, 5, 2]);
    }

    #[test]
    fn a_camera_that_becomes_busy_moves_to_the_busy_queue() {
        let s = LatestSlots::new(3);
        s.put(0, "idle");
        s.put(1, "idle");
        s.put_as(1, "busy now", Priority::Busy);
        let (lease, v) = s.take(None).unwrap();
        assert_eq!((lease.camera(), v), (1, "busy now"));
        drop(lease);
        let (lease, v) = s.take(None).unwrap();
        assert_eq!((lease.camera(), v), (0, "idle"));
        drop(lease);
        assert!(
            s.try_take().is_none(),
            "each camera waits in one queue only"
        );
    }

    #[test]
    fn update_appends_to_what_waits() {
        let s = LatestSlots::<Vec<u32>>::new(1);
        for i in 0..3 {
            s.update(0, Priority::Busy, |slot| {
                slot.get_or_insert_with(Vec::new).push(i)
            });
        }
        let (lease, v) = s.take(None).unwrap();
        assert_eq!(v, vec![0, 1, 2]);
        // Appended while held: waits for the lease's release, then is served.
        s.update(0, Priority::Busy, |slot| {
            slot.get_or_insert_with(Vec::new).push(3)
        });
        assert!(s.try_take().is_none());
        drop(lease);
        assert_eq!(s.try_take().map(|(_, v)| v), Some(vec![3]));
    }

    #[test]
    fn busy_producer_cannot_starve_others() {
        let s = LatestSlots::new(2);
        let mut served = [0; 2];
        s.put(1, 0);
        for i in 0..100 {
            s.put(0, i);
            let (lease, _) = s.take(None).unwrap();
            served[lease.camera()] += 1;
            if lease.camera() == 1 {
                drop(lease);
                s.put(1, i);
            }
        }
        assert!(served[1] >= 49, "{served:?}");
    }
}
