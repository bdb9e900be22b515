//! The one circuit breaker, for Redis and the AI provider: after `failures`
//! consecutive failed calls it refuses calls for `cooldown`, then lets exactly
//! one probe through (half-open). The probe's outcome closes or reopens it.
//!
//! State lives in the process, so each function instance learns on its own;
//! that is enough to stop one warm instance from hammering a dependency that
//! is down. Like [`crate::settings`], it imports nothing of the crate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When a breaker opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitSettings {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long an open circuit refuses calls before one probe goes through.
    pub cooldown: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// Shared by every call of one client.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

/// Permission to make one call; report its outcome with [`Permit::success`]
/// or [`Permit::failure`]. A permit dropped unreported (the caller went away)
/// frees the half-open slot so another caller may probe.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl CircuitBreaker {
    pub fn new(settings: CircuitSettings) -> Self {
        Self {
            threshold: settings.failures.max(1),
            cooldown: settings.cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few integers; a panic mid-update cannot corrupt it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A permit, or `None` while the circuit is open (or its probe is out).
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        self.try_acquire_at(Instant::now())
    }

    /// [`CircuitBreaker::try_acquire`] at a given time, for tests that step the clock.
    pub fn try_acquire_at(&self, now: Instant) -> Option<Permit<'_>> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => return None,
        };
        Some(Permit {
            breaker: self,
            probe,
            reported: false,
        })
    }

    /// Whether calls are currently refused.
    pub fn is_open(&self) -> bool {
        self.is_open_at(Instant::now())
    }

    pub fn is_open_at(&self, now: Instant) -> bool {
        match *self.lock() {
            State::Closed { .. } => false,
            State::Open { until } => now < until,
            State::HalfOpen => true,
        }
    }
}

impl Permit<'_> {
    /// The call reached a healthy provider (whatever it answered).
    pub fn success(mut self) {
        self.reported = true;
        *self.breaker.lock() = State::Closed { failures: 0 };
    }

    /// The dependency failed (timeout, refused connection, 429, 5xx).
    /// Returns whether this failure opened a closed circuit.
    pub fn failure(self) -> bool {
        self.failure_at(Instant::now())
    }

    pub fn failure_at(mut self, now: Instant) -> bool {
        self.reported = true;
        let breaker = self.breaker;
        let mut state = breaker.lock();
        let was_closed = matches!(*state, State::Closed { .. });
        let failures = match *state {
            State::Closed { failures } if !self.probe => failures + 1,
            _ => breaker.threshold,
        };
        *state = if failures >= breaker.threshold {
            State::Open {
                until: now + breaker.cooldown,
            }
        } else {
            State::Closed { failures }
        };
        was_closed && failures >= breaker.threshold
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            let mut state = self.breaker.lock();
            if *state == State::HalfOpen {
                *state = State::Open {
                    until: Instant::now(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(failures: u32, cooldown: Duration) -> CircuitSettings {
        CircuitSettings { failures, cooldown }
    }

    #[test]
    fn the_circuit_opens_after_the_threshold_of_consecutive_failures() {
        let breaker = CircuitBreaker::new(settings(3, Duration::from_secs(60)));
        for _ in 0..2 {
            breaker.try_acquire().unwrap().failure();
        }
        breaker.try_acquire().unwrap().success();
        for _ in 0..3 {
            breaker.try_acquire().unwrap().failure();
        }
        assert!(breaker.try_acquire().is_none());
        assert!(breaker.is_open());
    }

    #[test]
    fn after_the_cooldown_exactly_one_probe_goes_through_and_its_outcome_decides() {
        let breaker = CircuitBreaker::new(settings(1, Duration::from_millis(20)));
        breaker.try_acquire().unwrap().failure();
        assert!(breaker.try_acquire().is_none());
        std::thread::sleep(Duration::from_millis(30));
        let probe = breaker.try_acquire().expect("one probe after the cooldown");
        assert!(breaker.try_acquire().is_none(), "only one probe at a time");
        probe.failure();
        assert!(breaker.try_acquire().is_none(), "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(30));
        breaker.try_acquire().unwrap().success();
        assert!(breaker.try_acquire().is_some(), "a good probe closes");
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_caller_probe() {
        let breaker = CircuitBreaker::new(settings(1, Duration::from_millis(1)));
        breaker.try_acquire().unwrap().failure();
        std::thread::sleep(Duration::from_millis(5));
        drop(breaker.try_acquire().unwrap());
        assert!(breaker.try_acquire().is_some());
    }

    #[test]
    fn only_the_failure_that_opens_the_circuit_says_so_and_a_success_resets_the_count() {
        let breaker = CircuitBreaker::new(settings(3, Duration::from_secs(5)));
        let now = Instant::now();
        assert!(!breaker.try_acquire_at(now).unwrap().failure_at(now));
        assert!(!breaker.try_acquire_at(now).unwrap().failure_at(now));
        breaker.try_acquire_at(now).unwrap().success();
        assert!(!breaker.try_acquire_at(now).unwrap().failure_at(now));
        assert!(!breaker.try_acquire_at(now).unwrap().failure_at(now));
        assert!(breaker.try_acquire_at(now).unwrap().failure_at(now));
        assert!(breaker.try_acquire_at(now).is_none());
        assert!(
            breaker
                .try_acquire_at(now + Duration::from_millis(4_999))
                .is_none()
        );
    }

    #[test]
    fn a_failed_probe_keeps_the_circuit_open_for_another_cooldown_without_saying_it_opened() {
        let breaker = CircuitBreaker::new(settings(3, Duration::from_secs(5)));
        let now = Instant::now();
        for _ in 0..3 {
            breaker.try_acquire_at(now).unwrap().failure_at(now);
        }
        let later = now + Duration::from_secs(5);
        let probe = breaker
            .try_acquire_at(later)
            .expect("the first caller probes");
        assert!(
            breaker.try_acquire_at(later).is_none(),
            "the others skip while it probes"
        );
        assert!(!probe.failure_at(later));
        assert!(
            breaker
                .try_acquire_at(later + Duration::from_secs(4))
                .is_none()
        );
        assert!(breaker.is_open_at(later + Duration::from_secs(4)));
        breaker
            .try_acquire_at(later + Duration::from_secs(5))
            .unwrap()
            .success();
        assert!(!breaker.is_open_at(later + Duration::from_secs(5)));
    }
}
