//! Per-identity rate limits: a token bucket per authenticated caller, refilled at `rate`
//! calls per second up to `burst`. A streaming call counts once, when it starts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Calls per second per caller; 0 turns limiting off.
    pub per_second: f64,
    pub burst: f64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { per_second: 10.0, burst: 40.0 }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Limiter {
    cfg: RateLimitConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets idle this long are full again and can be forgotten.
const IDLE: Duration = Duration::from_secs(600);

impl Limiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self { cfg, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `subject` at `now`; false when the caller is over the limit.
    pub fn allow(&self, subject: &str, now: Instant) -> bool {
        if self.cfg.per_second <= 0.0 {
            return true;
        }
        let Ok(mut buckets) = self.buckets.lock() else { return true };
        if buckets.len() > 100_000 {
            buckets.retain(|_, b| now.duration_since(b.at) < IDLE);
        }
        let b = buckets.entry(subject.to_owned()).or_insert(Bucket { tokens: self.cfg.burst, at: now });
        let refill = now.duration_since(b.at).as_secs_f64() * self.cfg.per_second;
        b.tokens = (b.tokens + refill).min(self.cfg.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate_per_caller() {
        let l = Limiter::new(RateLimitConfig { per_second: 2.0, burst: 3.0 });
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.allow("a", t0)), "the burst");
        assert!(!l.allow("a", t0), "over the burst");
        assert!(l.allow("b", t0), "another caller has its own bucket");
        assert!(l.allow("a", t0 + Duration::from_millis(500)), "one token back after 0.5 s at 2/s");
        assert!(!l.allow("a", t0 + Duration::from_millis(600)));
        assert!((0..3).all(|_| l.allow("a", t0 + Duration::from_secs(60))), "refills to the burst, not beyond");
        assert!(!l.allow("a", t0 + Duration::from_secs(60)));
    }

    #[test]
    fn zero_disables() {
        let l = Limiter::new(RateLimitConfig { per_second: 0.0, burst: 0.0 });
        assert!((0..1000).all(|_| l.allow("a", Instant::now())));
    }
}
