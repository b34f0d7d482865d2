//! A pool of workers that take keys from a queue and run a handler on each, turning the
//! handler's outcome into the queue bookkeeping (forget, back off, requeue, done).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};

use crate::queue::{Key, WorkQueue};

/// How handling a key went, which decides when it runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Reality matches: the key's backoff is reset and it runs again only when added.
    Success,
    /// A transient failure: the key runs again after its backoff, which grows with each retry.
    Retry,
    /// Not a failure, but the key should be looked at again after this delay (say, to poll a
    /// long external task); its backoff is left as it is.
    RequeueAfter(Duration),
    /// A failure that retrying cannot fix (the handler records it): the backoff is reset and the
    /// key runs again only when added, e.g. after the user changes it.
    Terminal,
}

/// Runs `workers` workers (at least one) that take keys from `queue` and call `handler` on each,
/// so at most `workers` keys are handled at once and never one key twice at once. Returns once
/// the queue is shut down, nothing is waiting and every worker has finished its key.
///
/// A handler that panics is treated as [`Outcome::Retry`]: the panic is logged, and the backoff
/// keeps a key that always panics from spinning.
///
/// Stop the workers with [`WorkQueue::shut_down`]. If this future is dropped instead, the
/// running handlers are aborted and their keys stay marked as processing, so they are never
/// handed out again by that queue: that is safe (no key runs twice at once), but the queue is
/// then only good for dropping.
pub async fn run_workers<K, F, Fut>(queue: WorkQueue<K>, workers: usize, handler: F)
where
    K: Key + fmt::Debug,
    F: Fn(K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let handler = Arc::new(handler);
    let mut set = JoinSet::new();
    for _ in 0..workers.max(1) {
        set.spawn(work(queue.clone(), Arc::clone(&handler)));
    }
    while let Some(joined) = set.join_next().await {
        if let Err(error) = joined {
            // `work` catches handler panics, so this is a bug in the worker itself.
            tracing::error!(%error, "work queue worker failed");
        }
    }
}

async fn work<K, F, Fut>(queue: WorkQueue<K>, handler: Arc<F>)
where
    K: Key + fmt::Debug,
    F: Fn(K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    while let Some(key) = queue.get().await {
        // The handler runs in its own task so that a panic ends that task, not this worker, and
        // the key still gets its `done`.
        let task = AbortOnDrop(tokio::spawn(handler(key.clone())));
        let outcome = match task.join().await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(?key, %error, "handler failed; retrying after backoff");
                Outcome::Retry
            }
        };
        match outcome {
            Outcome::Success | Outcome::Terminal => queue.forget(&key),
            Outcome::Retry => {
                let delay = queue.add_rate_limited(key.clone());
                tracing::debug!(?key, ?delay, failures = queue.failures(&key), "retrying");
            }
            Outcome::RequeueAfter(delay) => queue.add_after(key.clone(), delay),
        }
        // After the re-add, so an immediate requeue lands as "dirty" and is queued here.
        queue.done(&key);
    }
}

/// A task handle that aborts the task when dropped, so a handler never outlives its worker (it
/// would otherwise keep running while its key might be handed to someone else).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backoff;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::time::{Instant, sleep};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[tokio::test(start_paused = true)]
    async fn two_workers_never_run_one_key_at_once() {
        let q = WorkQueue::<u32>::new();
        // Per key: how many handlers are running it now, and the most seen at once.
        let running: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
        let most_per_key = Arc::new(AtomicUsize::new(0));
        let overall = Arc::new(AtomicUsize::new(0));
        let most_overall = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));

        let workers = tokio::spawn(run_workers(q.clone(), 2, {
            let (running, most_per_key) = (running.clone(), most_per_key.clone());
            let (overall, most_overall, runs) =
                (overall.clone(), most_overall.clone(), runs.clone());
            move |key: u32| {
                let (running, most_per_key) = (running.clone(), most_per_key.clone());
                let (overall, most_overall, runs) =
                    (overall.clone(), most_overall.clone(), runs.clone());
                async move {
                    let now = running[key as usize].fetch_add(1, Ordering::SeqCst) + 1;
                    most_per_key.fetch_max(now, Ordering::SeqCst);
                    let now = overall.fetch_add(1, Ordering::SeqCst) + 1;
                    most_overall.fetch_max(now, Ordering::SeqCst);
                    runs.fetch_add(1, Ordering::SeqCst);
                    sleep(Duration::from_millis(30)).await;
                    overall.fetch_sub(1, Ordering::SeqCst);
                    running[key as usize].fetch_sub(1, Ordering::SeqCst);
                    Outcome::Success
                }
            }
        }));

        // Hammer key 0 (and a little of keys 1 and 2) while handlers run.
        for i in 0..200u32 {
            q.add(0);
            if i % 3 == 0 {
                q.add(1 + i % 2);
            }
            sleep(Duration::from_millis(7)).await;
        }
        q.shut_down();
        assert!(workers.await.is_ok());

        assert_eq!(
            most_per_key.load(Ordering::SeqCst),
            1,
            "a key ran twice at once"
        );
        assert_eq!(
            most_overall.load(Ordering::SeqCst),
            2,
            "the two workers never overlapped"
        );
        // Deduplication: far fewer runs than adds, but key 0 ran many times.
        let runs = runs.load(Ordering::SeqCst);
        assert!((40..=270).contains(&runs), "{runs} runs");
        assert_eq!(q.processing_len(), 0);
        assert!(q.is_empty());
    }

    /// The same guarantee under real parallelism: four workers on a multi-threaded runtime, two
    /// producers adding a handful of keys as fast as they can.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_threads_never_run_one_key_at_once() {
        const KEYS: usize = 5;
        let q = WorkQueue::<usize>::new();
        let running: Arc<[AtomicUsize; KEYS]> = Arc::new(Default::default());
        let violations = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let workers = tokio::spawn(run_workers(q.clone(), 4, {
            let (running, violations, runs) = (running.clone(), violations.clone(), runs.clone());
            move |key: usize| {
                let (running, violations, runs) =
                    (running.clone(), violations.clone(), runs.clone());
                async move {
                    if running[key].fetch_add(1, Ordering::SeqCst) != 0 {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                    runs.fetch_add(1, Ordering::SeqCst);
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                    running[key].fetch_sub(1, Ordering::SeqCst);
                    Outcome::Success
                }
            }
        }));
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let q = q.clone();
                tokio::spawn(async move {
                    for i in 0..20_000 {
                        q.add((i + p) % KEYS);
                        if i % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for producer in producers {
            assert!(producer.await.is_ok());
        }
        q.shut_down();
        let finished = tokio::time::timeout(Duration::from_secs(30), workers).await;
        assert!(matches!(finished, Ok(Ok(()))), "workers did not drain");
        assert_eq!(
            violations.load(Ordering::SeqCst),
            0,
            "a key ran twice at once"
        );
        assert!(runs.load(Ordering::SeqCst) >= KEYS);
        assert_eq!(q.processing_len(), 0);
        assert!(q.is_empty());
    }

    /// Runs one worker over `q` whose handler answers from `outcomes` in turn (then Success),
    /// recording when each run started.
    fn scripted(
        q: &WorkQueue<&'static str>,
        outcomes: Vec<Outcome>,
    ) -> (JoinHandle<()>, Arc<Mutex<Vec<Instant>>>) {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let outcomes = Arc::new(Mutex::new(outcomes.into_iter()));
        let handle = tokio::spawn(run_workers(q.clone(), 1, {
            let runs = runs.clone();
            move |_key| {
                runs.lock().expect("test lock").push(Instant::now());
                let outcome = outcomes.lock().expect("test lock").next();
                async move { outcome.unwrap_or(Outcome::Success) }
            }
        }));
        (handle, runs)
    }

    #[tokio::test(start_paused = true)]
    async fn retry_reruns_after_growing_backoff_and_success_forgets() {
        let q = WorkQueue::with_backoff(Backoff {
            jitter: 0.0,
            ..Backoff::default()
        });
        let (workers, runs) = scripted(&q, vec![Outcome::Retry, Outcome::Retry, Outcome::Retry]);
        let start = Instant::now();
        q.add("a");
        sleep(secs(60)).await;
        let offsets: Vec<Duration> = runs
            .lock()
            .expect("test lock")
            .iter()
            .map(|t| *t - start)
            .collect();
        // Runs at 0, then 1 s, 2 s and 4 s apart; the fourth succeeds.
        assert_eq!(offsets, [secs(0), secs(1), secs(3), secs(7)]);
        assert_eq!(q.failures(&"a"), 0);
        q.shut_down();
        assert!(workers.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn terminal_is_not_retried() {
        let q = WorkQueue::new();
        let (workers, runs) = scripted(&q, vec![Outcome::Retry, Outcome::Terminal]);
        q.add("a");
        sleep(secs(600)).await;
        assert_eq!(runs.lock().expect("test lock").len(), 2);
        assert_eq!(q.failures(&"a"), 0);
        assert_eq!(q.delayed_len(), 0);
        q.shut_down();
        assert!(workers.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn requeue_after_keeps_the_failure_count() {
        let q = WorkQueue::with_backoff(Backoff {
            jitter: 0.0,
            ..Backoff::default()
        });
        let (workers, runs) = scripted(
            &q,
            vec![
                Outcome::Retry,
                Outcome::RequeueAfter(secs(5)),
                Outcome::Retry,
            ],
        );
        let start = Instant::now();
        q.add("a");
        sleep(secs(60)).await;
        let offsets: Vec<Duration> = runs
            .lock()
            .expect("test lock")
            .iter()
            .map(|t| *t - start)
            .collect();
        // Retry (1 s), requeue (5 s), retry as the second failure (2 s), success.
        assert_eq!(offsets, [secs(0), secs(1), secs(6), secs(8)]);
        q.shut_down();
        assert!(workers.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_drains_waiting_keys_and_stops_workers() {
        let q = WorkQueue::<u32>::new();
        let handled = Arc::new(Mutex::new(Vec::new()));
        for key in 0..10 {
            q.add(key);
        }
        q.shut_down();
        let workers = tokio::spawn(run_workers(q.clone(), 2, {
            let handled = handled.clone();
            move |key| {
                let handled = handled.clone();
                async move {
                    sleep(secs(1)).await;
                    handled.lock().expect("test lock").push(key);
                    // Retries after shutdown are dropped, not run.
                    Outcome::Retry
                }
            }
        }));
        let start = Instant::now();
        assert!(workers.await.is_ok());
        // Ten one-second keys over two workers.
        assert_eq!(start.elapsed(), secs(5));
        let mut handled = handled.lock().expect("test lock").clone();
        handled.sort_unstable();
        assert_eq!(handled, (0..10).collect::<Vec<_>>());
        assert_eq!(q.processing_len(), 0);
        assert_eq!(q.delayed_len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_lets_in_flight_keys_finish() {
        let q = WorkQueue::<&str>::new();
        let finished = Arc::new(AtomicUsize::new(0));
        let workers = tokio::spawn(run_workers(q.clone(), 2, {
            let finished = finished.clone();
            move |_| {
                let finished = finished.clone();
                async move {
                    sleep(secs(30)).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    Outcome::Success
                }
            }
        }));
        q.add("a");
        sleep(secs(1)).await;
        q.shut_down();
        assert!(workers.await.is_ok());
        assert_eq!(finished.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn panicking_handler_is_retried_and_the_worker_survives() {
        let q = WorkQueue::with_backoff(Backoff {
            jitter: 0.0,
            ..Backoff::default()
        });
        let calls = Arc::new(Mutex::new(HashMap::<&str, usize>::new()));
        let workers = tokio::spawn(run_workers(q.clone(), 1, {
            let calls = calls.clone();
            move |key: &'static str| {
                let n = {
                    let mut calls = calls.lock().expect("test lock");
                    let n = calls.entry(key).or_default();
                    *n += 1;
                    *n
                };
                async move {
                    if key == "bad" && n == 1 {
                        panic!("handler bug");
                    }
                    Outcome::Success
                }
            }
        }));
        q.add("bad");
        q.add("good");
        sleep(secs(10)).await;
        let calls = calls.lock().expect("test lock").clone();
        assert_eq!(calls.get("bad"), Some(&2));
        assert_eq!(calls.get("good"), Some(&1));
        assert_eq!(q.processing_len(), 0);
        q.shut_down();
        assert!(workers.await.is_ok());
    }
}
