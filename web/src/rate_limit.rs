//! Per-token request rate limits on the admin API.
//!
//! Each admin token may send `per_second` requests a second on average,
//! with bursts of up to `burst` (a GCRA bucket from `governor`). A request
//! beyond that is answered 429 `rate_limited` with `Retry-After`, and does
//! nothing. The limiter is keyed by a randomly seeded hash of the token, never
//! the token itself, and only tokens that authenticated reach it, so its memory is
//! bounded by the number of valid tokens. Off when `per_second` is 0.

use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The configured rate, per token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second per token; 0 turns limiting off.
    pub per_second: u32,
    /// Requests a token may send at once after being idle; at least 1.
    pub burst: u32,
}

/// The limiter shared by every request of this node's API listener.
pub struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<u64>>,
    clock: DefaultClock,
    /// Keys tokens by a randomly seeded hash.
    hasher: RandomState,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("on", &self.limiter.is_some())
            .finish()
    }
}

impl RateLimits {
    /// A limiter for `limit`.
    pub fn new(limit: RateLimit) -> Self {
        let limiter = NonZeroU32::new(limit.per_second).map(|rate| {
            let burst = NonZeroU32::new(limit.burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        RateLimits {
            limiter,
            clock: DefaultClock::default(),
            hasher: RandomState::new(),
        }
    }

    /// Counts one request of `token`; `Err` with how long to wait when the
    /// token is over its rate.
    pub fn check(&self, token: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&self.hasher.hash_one(token))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_has_its_own_burst_and_the_wait_is_told() {
        let limits = RateLimits::new(RateLimit {
            per_second: 1,
            burst: 3,
        });
        for _ in 0..3 {
            assert_eq!(limits.check("a"), Ok(()));
        }
        let wait = limits.check("a").expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another token is not charged for the first one's requests.
        assert_eq!(limits.check("b"), Ok(()));
    }

    #[test]
    fn a_zero_rate_turns_limiting_off() {
        let limits = RateLimits::new(RateLimit::default());
        for _ in 0..10_000 {
            assert_eq!(limits.check("a"), Ok(()));
        }
    }
}
