//! Per-key exponential backoff: how long a key waits before its next attempt after failing.

use std::time::Duration;

use crate::jitter;

/// How retry delays grow: `base * 2^failures`, capped at `cap`, then spread by `jitter` (a
/// fraction: 0.1 means ±10 %) so that keys which failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// The longest delay, however many failures came before.
    pub cap: Duration,
    /// The fraction by which a delay is randomly spread either way.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 1 s doubling to 5 min, ±10 %.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(5 * 60),
            jitter: 0.1,
        }
    }
}

impl Backoff {
    /// The delay before the next attempt of a key that has failed `failures` times before this
    /// failure (0 for its first failure). Never more than `cap`.
    pub fn delay(&self, failures: u32) -> Duration {
        jitter::spread(self.nominal(failures), self.jitter).min(self.cap)
    }

    /// The delay without jitter.
    fn nominal(&self, failures: u32) -> Duration {
        // Saturating, because a key can fail for days and 2^failures must not overflow.
        let factor = 2u32.saturating_pow(failures);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn doubles_from_base_and_caps() {
        let b = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        let delays: Vec<u64> = (0..12).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(b.delay(u32::MAX), secs(300));
    }

    #[test]
    fn jitter_stays_within_fraction_and_under_cap() {
        let b = Backoff::default();
        for n in 0..20 {
            let nominal = b.nominal(n);
            for _ in 0..100 {
                let d = b.delay(n);
                assert!(d >= nominal.mul_f64(0.9), "{n}: {d:?}");
                assert!(d <= nominal.mul_f64(1.1).min(b.cap), "{n}: {d:?}");
            }
        }
    }

    #[test]
    fn cap_below_base_wins() {
        let b = Backoff {
            base: secs(10),
            cap: secs(3),
            jitter: 0.0,
        };
        assert_eq!(b.delay(0), secs(3));
    }
}
