//! The work queue: a deduplicating FIFO of keys that never hands one key to two workers at once,
//! with delayed and rate-limited adds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::backoff::Backoff;

/// What can be queued: anything cheap to clone and usable as a hash key across tasks.
pub trait Key: Clone + Eq + Hash + Send + Sync + 'static {}
impl<T: Clone + Eq + Hash + Send + Sync + 'static> Key for T {}

/// A queue of keys to reconcile. Cloning it gives another handle to the same queue.
///
/// A key is in at most one of three places at a time, which is what makes the guarantees hold:
/// waiting (in the FIFO), processing (handed out by [`get`](Self::get), not yet
/// [`done`](Self::done)), or both processing and dirty (added again while processing; it goes
/// back into the FIFO on `done`). Delayed adds sit apart, each on its own timer, until they fire
/// and become ordinary adds.
///
/// The methods take a short-lived lock and never hold it across an await, so they can be called
/// from any task or thread.
pub struct WorkQueue<K> {
    inner: Arc<Inner<K>>,
}

struct Inner<K> {
    state: Mutex<State<K>>,
    /// Wakes getters when a key becomes waiting (one getter) or on shutdown (all of them).
    ready: Notify,
    backoff: Backoff,
}

struct State<K> {
    /// Waiting keys, in the order they were added.
    queue: VecDeque<K>,
    /// Keys that need processing: every waiting key, plus processing keys added again.
    dirty: HashSet<K>,
    /// Keys handed out by `get` and not yet `done`.
    processing: HashSet<K>,
    /// Pending delayed adds, one per key: the earliest asked for.
    delayed: HashMap<K, Delayed>,
    /// Failures in a row per key, for the backoff. Absent means none.
    failures: HashMap<K, u32>,
    shut_down: bool,
}

struct Delayed {
    deadline: Instant,
    timer: AbortHandle,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: Key> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Key> fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("WorkQueue")
            .field("waiting", &state.queue.len())
            .field("processing", &state.processing.len())
            .field("delayed", &state.delayed.len())
            .field("shut_down", &state.shut_down)
            .finish()
    }
}

impl<K: Key> WorkQueue<K> {
    /// A queue whose rate-limited adds use the default backoff (1 s doubling to 5 min, ±10 %).
    pub fn new() -> Self {
        Self::with_backoff(Backoff::default())
    }

    /// A queue whose rate-limited adds use `backoff`.
    pub fn with_backoff(backoff: Backoff) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    delayed: HashMap::new(),
                    failures: HashMap::new(),
                    shut_down: false,
                }),
                ready: Notify::new(),
                backoff,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        self.inner.lock()
    }

    /// Queues `key` unless it is already waiting. A key being processed is not handed out again
    /// until it is `done`, then it is queued once however many times it was added meanwhile.
    /// Ignored after [`shut_down`](Self::shut_down).
    pub fn add(&self, key: K) {
        let queued = self.lock().add(key);
        if queued {
            self.inner.ready.notify_one();
        }
    }

    /// Adds `key` once `delay` has passed. If a delayed add of `key` is already pending, the
    /// earlier of the two is kept, so a burst of retries can only bring a key forward. Ignored
    /// after shutdown.
    ///
    /// The delay runs on a Tokio timer; called outside a Tokio runtime, the key is added at once
    /// (a reconcile is level-triggered, so an early one is wasted work, never a wrong one).
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("WorkQueue::add_after outside a Tokio runtime; adding at once");
            return self.add(key);
        };
        let deadline = Instant::now() + delay;
        let mut state = self.lock();
        if state.shut_down {
            return;
        }
        if let Some(pending) = state.delayed.get(&key)
            && pending.deadline <= deadline
        {
            return;
        }
        // The timer holds a weak handle so that pending timers don't keep a dropped queue alive;
        // dropping the queue aborts them (see `Drop for Inner`).
        let inner = Arc::downgrade(&self.inner);
        let fired = key.clone();
        let timer = runtime.spawn(async move {
            tokio::time::sleep_until(deadline).await;
            fire(&inner, fired, deadline);
        });
        let new = Delayed {
            deadline,
            timer: timer.abort_handle(),
        };
        if let Some(superseded) = state.delayed.insert(key, new) {
            superseded.timer.abort();
        }
    }

    /// Adds `key` after its backoff delay and counts a failure for it. Returns the delay, for
    /// logging. Call [`forget`](Self::forget) when the key next succeeds.
    pub fn add_rate_limited(&self, key: K) -> Duration {
        let delay = {
            let mut state = self.lock();
            let failures = state.failures.entry(key.clone()).or_insert(0);
            let delay = self.inner.backoff.delay(*failures);
            *failures = failures.saturating_add(1);
            delay
        };
        self.add_after(key, delay);
        delay
    }

    /// Resets `key`'s failure count, so its next failure backs off from the base again.
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// How many times in a row `key` has been rate-limited since it was last forgotten.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Waits for the next waiting key and marks it processing; the caller must call
    /// [`done`](Self::done) with it when finished. Returns `None` once the queue is shut down
    /// and nothing is waiting.
    pub async fn get(&self) -> Option<K> {
        loop {
            // Registered as a waiter before looking, so an add between the look and the await
            // still wakes this getter. If this getter is woken but takes a key without waiting,
            // dropping `notified` passes the wake-up on to another getter.
            let mut notified = pin!(self.inner.ready.notified());
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if let Some(key) = state.queue.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    return Some(key);
                }
                if state.shut_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks `key`'s processing finished. If it was added while processing, it is queued now.
    /// A key that is not processing is ignored.
    pub fn done(&self, key: &K) {
        let requeued = {
            let mut state = self.lock();
            if !state.processing.remove(key) {
                return;
            }
            if state.dirty.contains(key) {
                state.queue.push_back(key.clone());
                true
            } else {
                false
            }
        };
        if requeued {
            self.inner.ready.notify_one();
        }
    }

    /// Stops accepting adds (including pending delayed ones, which are dropped). Keys already
    /// waiting are still handed out; once none are left, `get` returns `None`. Keys being
    /// processed finish normally; one added again while processing is still queued on `done`,
    /// because its change arrived before the shutdown.
    pub fn shut_down(&self) {
        {
            let mut state = self.lock();
            state.shut_down = true;
            for (_, pending) in state.delayed.drain() {
                pending.timer.abort();
            }
        }
        self.inner.ready.notify_waiters();
    }

    /// Whether [`shut_down`](Self::shut_down) was called.
    pub fn is_shut_down(&self) -> bool {
        self.lock().shut_down
    }

    /// How many keys are waiting to be handed out.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key is waiting.
    pub fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// How many keys are being processed.
    pub fn processing_len(&self) -> usize {
        self.lock().processing.len()
    }

    /// How many delayed adds are pending.
    pub fn delayed_len(&self) -> usize {
        self.lock().delayed.len()
    }

    /// Whether `key` has work in hand: waiting, being processed, or due again after a delay
    /// (a backoff). A caller comparing a key's state with what it expects uses this to tell
    /// work in progress from a change nobody has acted on yet.
    pub fn is_pending(&self, key: &K) -> bool {
        let state = self.lock();
        state.dirty.contains(key)
            || state.processing.contains(key)
            || state.delayed.contains_key(key)
    }
}

impl<K> Inner<K> {
    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // Every critical section only moves keys between collections, so a panic inside one
        // (which would need a panicking Hash or Eq) is a bug worth surfacing everywhere.
        self.state.lock().expect("work queue lock poisoned")
    }
}

impl<K> Drop for Inner<K> {
    fn drop(&mut self) {
        // `get_mut` needs no lock; a poisoned state still has timers worth stopping.
        let state = match self.state.get_mut() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        for pending in state.delayed.values() {
            pending.timer.abort();
        }
    }
}

/// A delayed add's timer went off: add the key, unless a later call replaced this timer.
fn fire<K: Key>(inner: &Weak<Inner<K>>, key: K, deadline: Instant) {
    let Some(inner) = inner.upgrade() else {
        return;
    };
    let queued = {
        let mut state = inner.lock();
        match state.delayed.get(&key) {
            Some(pending) if pending.deadline == deadline => {
                state.delayed.remove(&key);
                state.add(key)
            }
            // Replaced by an earlier add (whose abort raced with this timer firing), or dropped
            // by shutdown.
            _ => false,
        }
    };
    if queued {
        inner.ready.notify_one();
    }
}

impl<K: Key> State<K> {
    /// Records that `key` needs processing. Returns whether it was queued (so a getter should be
    /// woken).
    fn add(&mut self, key: K) -> bool {
        if self.shut_down || self.dirty.contains(&key) {
            return false;
        }
        self.dirty.insert(key.clone());
        if self.processing.contains(&key) {
            // Queued by `done`, so no second worker gets it meanwhile.
            return false;
        }
        self.queue.push_back(key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::timeout;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// `get` that must return at once (time is paused, so any wait would auto-advance it).
    async fn get_now(q: &WorkQueue<&'static str>) -> Option<&'static str> {
        let start = Instant::now();
        let key = q.get().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "get waited");
        key
    }

    /// Asserts that nothing is handed out for a long (paused) while.
    async fn assert_nothing_for(q: &WorkQueue<&'static str>, d: Duration) {
        if let Ok(key) = timeout(d, q.get()).await {
            panic!("unexpected key {key:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_keys_are_deduplicated() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(get_now(&q).await, Some("a"));
        assert_eq!(get_now(&q).await, Some("b"));
        assert!(q.is_empty());
        assert_nothing_for(&q, secs(60)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_pending_while_waiting_processing_or_delayed() {
        let q = WorkQueue::new();
        assert!(!q.is_pending(&"a"));
        q.add("a");
        assert!(q.is_pending(&"a"), "waiting");
        assert_eq!(get_now(&q).await, Some("a"));
        assert!(q.is_pending(&"a"), "processing");
        q.done(&"a");
        assert!(!q.is_pending(&"a"), "done");
        q.add_after("a", secs(10));
        assert!(q.is_pending(&"a"), "delayed");
        assert_eq!(get_now_after(&q, secs(10)).await, Some("a"));
        q.done(&"a");
        assert!(!q.is_pending(&"a"));
    }

    /// `get` that returns once the (paused) clock has moved `by`.
    async fn get_now_after(q: &WorkQueue<&'static str>, by: Duration) -> Option<&'static str> {
        timeout(by + secs(1), q.get()).await.ok().flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn keys_come_out_in_fifo_order() {
        let q = WorkQueue::new();
        let keys = ["c", "a", "e", "b", "d"];
        for k in keys {
            q.add(k);
        }
        for k in keys {
            assert_eq!(get_now(&q).await, Some(k));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn key_added_while_processing_waits_for_done_then_runs_once() {
        let q = WorkQueue::new();
        q.add("a");
        assert_eq!(get_now(&q).await, Some("a"));
        assert_eq!(q.processing_len(), 1);

        q.add("a");
        q.add("a");
        q.add("b");
        // "a" is not handed to a second getter while processing; "b" is.
        assert_eq!(q.len(), 1);
        assert_eq!(get_now(&q).await, Some("b"));
        assert_nothing_for(&q, secs(60)).await;

        q.done(&"a");
        assert_eq!(q.len(), 1);
        assert_eq!(get_now(&q).await, Some("a"));
        q.done(&"a");
        q.done(&"b");
        assert_eq!(q.processing_len(), 0);
        assert_nothing_for(&q, secs(60)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_getter_is_woken_by_add_and_by_done() {
        let q = WorkQueue::new();
        let getter = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::time::sleep(secs(5)).await;
        q.add("a");
        assert_eq!(getter.await.ok().flatten(), Some("a"));

        let getter = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        q.add("a");
        tokio::time::sleep(secs(5)).await;
        assert!(!getter.is_finished());
        q.done(&"a");
        assert_eq!(getter.await.ok().flatten(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn done_on_unknown_key_is_ignored() {
        let q = WorkQueue::<&str>::new();
        q.done(&"x");
        assert_eq!(q.processing_len(), 0);
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_fires_at_its_time_and_the_earliest_wins() {
        let q = WorkQueue::new();
        let start = Instant::now();
        q.add_after("a", secs(10));
        q.add_after("a", secs(3));
        q.add_after("a", secs(7));
        assert_eq!(q.delayed_len(), 1);
        assert!(q.is_empty());

        assert_eq!(q.get().await, Some("a"));
        assert_eq!(start.elapsed(), secs(3));
        q.done(&"a");
        assert_eq!(q.delayed_len(), 0);
        // The superseded 10 s timer does not add it again.
        assert_nothing_for(&q, secs(60)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_orders_keys_by_deadline_and_zero_is_immediate() {
        let q = WorkQueue::new();
        let start = Instant::now();
        q.add_after("late", secs(20));
        q.add_after("early", secs(5));
        q.add_after("now", Duration::ZERO);
        assert_eq!(get_now(&q).await, Some("now"));
        assert_eq!(q.get().await, Some("early"));
        assert_eq!(start.elapsed(), secs(5));
        assert_eq!(q.get().await, Some("late"));
        assert_eq!(start.elapsed(), secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_add_of_a_waiting_key_is_deduplicated() {
        let q = WorkQueue::new();
        q.add("a");
        q.add_after("a", secs(1));
        tokio::time::sleep(secs(2)).await;
        assert_eq!(q.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_adds_back_off_exponentially_and_forget_resets() {
        let q = WorkQueue::new();
        let mut expected = 1u64;
        for n in 0..12u32 {
            assert_eq!(q.failures(&"a"), n);
            let start = Instant::now();
            let delay = q.add_rate_limited("a");
            let nominal = secs(expected.min(300));
            assert!(delay >= nominal.mul_f64(0.9), "failure {n}: {delay:?}");
            assert!(
                delay <= nominal.mul_f64(1.1).min(secs(300)),
                "failure {n}: {delay:?}"
            );
            // And the key really comes back after that delay.
            assert_eq!(q.get().await, Some("a"));
            // Tokio timers have millisecond resolution and round up.
            let late = start.elapsed() - delay;
            assert!(
                late < Duration::from_millis(1),
                "failure {n}: {late:?} late"
            );
            q.done(&"a");
            expected *= 2;
        }
        assert_eq!(q.failures(&"a"), 12);

        q.forget(&"a");
        assert_eq!(q.failures(&"a"), 0);
        let delay = q.add_rate_limited("a");
        assert!(delay >= Duration::from_millis(900) && delay <= Duration::from_millis(1100));
        assert_eq!(q.failures(&"a"), 1);
        // Other keys keep their own counts.
        assert_eq!(q.failures(&"b"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_hands_out_waiting_keys_then_returns_none() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add_after("delayed", secs(1));
        q.shut_down();
        assert!(q.is_shut_down());
        assert_eq!(q.delayed_len(), 0);

        q.add("c");
        q.add_after("d", secs(1));
        q.add_rate_limited("e");
        assert_eq!(q.len(), 2);
        assert_eq!(q.delayed_len(), 0);

        assert_eq!(get_now(&q).await, Some("a"));
        assert_eq!(get_now(&q).await, Some("b"));
        assert_eq!(get_now(&q).await, None);
        // In-flight keys stay processing until done.
        assert_eq!(q.processing_len(), 2);
        q.done(&"a");
        q.done(&"b");
        assert_eq!(q.processing_len(), 0);
        assert_eq!(get_now(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_wakes_every_waiting_getter() {
        let q = WorkQueue::<&str>::new();
        let getters: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.get().await })
            })
            .collect();
        tokio::time::sleep(secs(1)).await;
        q.shut_down();
        for getter in getters {
            assert_eq!(getter.await.ok(), Some(None));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn key_dirtied_before_shutdown_is_still_requeued_on_done() {
        let q = WorkQueue::new();
        q.add("a");
        assert_eq!(get_now(&q).await, Some("a"));
        q.add("a");
        q.shut_down();
        q.done(&"a");
        assert_eq!(get_now(&q).await, Some("a"));
        q.done(&"a");
        assert_eq!(get_now(&q).await, None);
    }

    #[test]
    fn add_after_outside_a_runtime_adds_at_once() {
        let q = WorkQueue::new();
        q.add_after("a", secs(10));
        assert_eq!(q.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_queue_stops_pending_timers() {
        let q = WorkQueue::new();
        q.add_after("a", secs(10));
        let weak = Arc::downgrade(&q.inner);
        drop(q);
        assert!(weak.upgrade().is_none());
        // Nothing to observe but the absence of a panic when the aborted timer would have fired.
        tokio::time::sleep(secs(20)).await;
    }
}
