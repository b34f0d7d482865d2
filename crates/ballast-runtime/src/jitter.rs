//! Cheap randomness for jitter. Jitter only has to keep many keys (or many daemons) from firing in
//! lockstep, so a hash of a counter under a randomly keyed hasher is enough, and it spares the
//! workspace a dependency on `rand`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A value uniformly spread over `[0, 1)`.
fn unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // `RandomState::new` keys each hasher differently, and the counter keeps two calls that get
    // the same keys (they are derived per thread) from returning the same value.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    // The top 53 bits fill an f64 mantissa exactly.
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `duration` scaled by a random factor in `[1 - fraction, 1 + fraction]`.
pub(crate) fn spread(duration: Duration, fraction: f64) -> Duration {
    let fraction = clamp_fraction(fraction);
    if fraction == 0.0 {
        return duration;
    }
    let factor = 1.0 + fraction * (2.0 * unit() - 1.0);
    duration.mul_f64(factor)
}

/// A jitter fraction made safe to use: NaN and negatives mean none, above 1 means 1 (a delay
/// can't go below zero).
pub(crate) fn clamp_fraction(fraction: f64) -> f64 {
    if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_stays_in_range_and_varies() {
        let values: Vec<f64> = (0..1000).map(|_| unit()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let low = values.iter().filter(|v| **v < 0.5).count();
        // A fair coin over 1000 throws lands far inside this band.
        assert!((350..650).contains(&low), "{low} of 1000 below 0.5");
    }

    #[test]
    fn spread_stays_within_fraction() {
        let base = Duration::from_secs(10);
        for _ in 0..1000 {
            let d = spread(base, 0.1);
            assert!(
                d >= Duration::from_secs(9) && d <= Duration::from_secs(11),
                "{d:?}"
            );
        }
        assert_eq!(spread(base, 0.0), base);
        assert_eq!(spread(base, f64::NAN), base);
        assert!(spread(base, 5.0) <= Duration::from_secs(20));
    }
}
