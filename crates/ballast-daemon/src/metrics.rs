//! Prometheus metrics: reconciles by kind and result, reconcile duration, manifest reloads by
//! result, queue depth, and the counts of resources, drifted and failing ones (set when
//! scraped).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: String,
    /// `changed`, `unchanged` or `failed`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// Reloads: `ok` (the set or its commit changed), `unchanged` (nothing to do, nothing
    /// recorded) or `error` (did not validate; the last good set is kept).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub duration: Family<KindLabel, Histogram>,
    pub reloads: Family<ResultLabel, Counter>,
    pub queue_depth: Gauge,
    pub resources: Gauge,
    pub drifted: Gauge,
    pub failing: Gauge,
    pub last_reload_ok: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ballast");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 14))
        });
        let reloads = Family::<ResultLabel, Counter>::default();
        // Every result shows from the start, at 0, so a rate over it is defined.
        for result in ["ok", "unchanged", "error"] {
            drop(reloads.get_or_create(&ResultLabel {
                result: result.into(),
            }));
        }
        let queue_depth = Gauge::default();
        let resources = Gauge::default();
        let drifted = Gauge::default();
        let failing = Gauge::default();
        let last_reload_ok = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        registry.register(
            "reloads",
            "Manifest reloads by result (ok, unchanged, error)",
            reloads.clone(),
        );
        registry.register(
            "queue_depth",
            "Resources waiting to be reconciled",
            queue_depth.clone(),
        );
        registry.register(
            "resources",
            "Resources in the desired state",
            resources.clone(),
        );
        registry.register(
            "drifted_resources",
            "Resources whose drift is reported, not healed",
            drifted.clone(),
        );
        registry.register(
            "failing_resources",
            "Resources whose last reconcile failed",
            failing.clone(),
        );
        registry.register(
            "last_reload_success",
            "1 if the last manifest reload validated",
            last_reload_ok.clone(),
        );
        Metrics {
            registry,
            reconciles,
            duration,
            reloads,
            queue_depth,
            resources,
            drifted,
            failing,
            last_reload_ok,
        }
    }

    /// Counts one reload with its result.
    pub fn reload(&self, result: &str) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
