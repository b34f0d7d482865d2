//! The daemon's runtime: a work queue of keys, per-key exponential backoff, a worker pool and a
//! periodic resync. None of it knows what a key names: the daemon queues resource keys, and a
//! kind's controller is just the handler the workers call.
//!
//! The guarantees the rest of ballast relies on (see the architecture rules in the design):
//! - a key waiting in the queue is there once, however many times it is added;
//! - no two workers ever hold the same key at once: a key added while it is processing is queued
//!   again only when that processing is `done`;
//! - failures back off per key, exponentially with jitter, and a success resets the count;
//! - shutting down stops new work, hands out what was already waiting, and lets in-flight work
//!   finish.
//!
//! The semantics follow Kubernetes client-go's `workqueue` and its per-item exponential rate
//! limiter, which have been exercised by many controllers.

mod backoff;
mod jitter;
mod queue;
mod resync;
mod workers;

pub use backoff::Backoff;
pub use queue::{Key, WorkQueue};
pub use resync::spawn_resync;
pub use tokio_util::sync::CancellationToken;
pub use workers::{Outcome, run_workers};
