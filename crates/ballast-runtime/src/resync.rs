//! Periodic resync: reconciles are level-triggered, so re-adding every key now and then repairs
//! anything a missed event or a drifting external system left behind.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The shortest wait between calls, so a zero period can't spin a core.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Spawns a task that calls `f` every `period ± jitter` (each wait drawn afresh, so daemons and
/// resync loops started together drift apart) until `cancel` is cancelled. The first call comes
/// after one wait, not at once: the caller does its own initial pass. The next wait starts when
/// a call finishes, so calls never overlap. Cancelling stops the wait, and also a call in
/// progress at its next await point (a resync only re-adds keys, so an interrupted one loses
/// nothing that the next start won't redo).
///
/// `jitter` larger than `period` is treated as `period`.
pub fn spawn_resync<F, Fut>(
    period: Duration,
    jitter: Duration,
    cancel: CancellationToken,
    mut f: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let jitter = jitter.min(period);
    let fraction = if period.is_zero() {
        0.0
    } else {
        jitter.as_secs_f64() / period.as_secs_f64()
    };
    tokio::spawn(async move {
        loop {
            let wait = crate::jitter::spread(period, fraction).max(MIN_PERIOD);
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = f() => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::time::{Instant, sleep};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[tokio::test(start_paused = true)]
    async fn calls_about_every_period_and_stops_when_cancelled() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let start = Instant::now();
        let task = spawn_resync(secs(10), secs(1), cancel.clone(), {
            let calls = calls.clone();
            move || {
                calls.lock().expect("test lock").push(Instant::now());
                async {}
            }
        });
        sleep(secs(100) + Duration::from_millis(1)).await;
        let times = calls.lock().expect("test lock").clone();
        assert!((9..=11).contains(&times.len()), "{} calls", times.len());
        let mut previous = start;
        for t in &times {
            let gap = *t - previous;
            assert!(gap >= secs(9) && gap <= secs(11), "gap {gap:?}");
            previous = *t;
        }

        cancel.cancel();
        sleep(secs(100)).await;
        assert_eq!(calls.lock().expect("test lock").len(), times.len());
        assert!(task.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_a_slow_call_and_cancel_interrupts_it() {
        let started = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let start = Instant::now();
        let task = spawn_resync(secs(10), Duration::ZERO, cancel.clone(), {
            let started = started.clone();
            move || {
                started
                    .lock()
                    .expect("test lock")
                    .push(Instant::now() - start);
                sleep(secs(15))
            }
        });
        sleep(secs(61)).await;
        // Calls at 10, then 15 s of work and 10 s of waiting each.
        assert_eq!(
            *started.lock().expect("test lock"),
            [secs(10), secs(35), secs(60)]
        );
        cancel.cancel();
        assert!(task.await.is_ok());
        // Cancelled mid-call: it stops at once, not after the call's 15 s.
        assert_eq!(Instant::now() - start, secs(61));
    }
}
