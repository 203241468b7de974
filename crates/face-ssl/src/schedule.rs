//! DINO's per-iteration schedules: learning rate (linear warm-up, then cosine), weight decay and
//! teacher momentum (cosine, no warm-up), and the teacher temperature (linear warm-up per epoch).

use serde::{Deserialize, Serialize};

/// A linear warm-up from `start` to `base` over `warmup` steps (inclusive ends, as
/// `numpy.linspace`), then a half cosine from `base` to `end` over the remaining steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cosine {
    /// Value after the warm-up.
    pub base: f64,
    /// Value approached at the last step.
    pub end: f64,
    /// Total steps.
    pub total: u64,
    /// Warm-up steps.
    pub warmup: u64,
    /// First warm-up value.
    pub start: f64,
}

impl Cosine {
    /// A cosine from `base` to `end` over `total` steps, no warm-up.
    pub fn new(base: f64, end: f64, total: u64) -> Self {
        Self {
            base,
            end,
            total,
            warmup: 0,
            start: 0.0,
        }
    }

    /// Adds a warm-up of `steps` from `start`.
    pub fn with_warmup(mut self, steps: u64, start: f64) -> Self {
        self.warmup = steps.min(self.total);
        self.start = start;
        self
    }

    /// The value at 0-based `step` (steps past the end keep the last value).
    pub fn at(&self, step: u64) -> f64 {
        if step < self.warmup {
            if self.warmup == 1 {
                return self.start;
            }
            return self.start + (self.base - self.start) * step as f64 / (self.warmup - 1) as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let j = (step - self.warmup).min(span - 1);
        self.end
            + 0.5 * (self.base - self.end) * (1.0 + (std::f64::consts::PI * j as f64 / span as f64).cos())
    }
}

/// The teacher temperature in `epoch` (0-based): `numpy.linspace(warmup, target, epochs)` during
/// the warm-up, then `target`.
pub fn teacher_temperature(warmup_temp: f64, target: f64, warmup_epochs: usize, epoch: usize) -> f64 {
    if epoch >= warmup_epochs {
        target
    } else if warmup_epochs == 1 {
        warmup_temp
    } else {
        warmup_temp + (target - warmup_temp) * epoch as f64 / (warmup_epochs - 1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = Cosine::new(1.0, 0.0, 10).with_warmup(3, 0.0);
        assert_eq!(s.at(0), 0.0);
        assert!((s.at(1) - 0.5).abs() < 1e-12);
        assert_eq!(s.at(2), 1.0);
        assert_eq!(s.at(3), 1.0);
        // 7 cosine steps: the last is end + (base − end)(1 + cos(6π/7))/2.
        let last = 0.5 * (1.0 + (6.0 * std::f64::consts::PI / 7.0).cos());
        assert!((s.at(9) - last).abs() < 1e-12);
        assert_eq!(s.at(100), s.at(9));
    }

    #[test]
    fn temperature_warms_up_linearly() {
        assert_eq!(teacher_temperature(0.04, 0.07, 4, 0), 0.04);
        assert!((teacher_temperature(0.04, 0.07, 4, 1) - 0.05).abs() < 1e-12);
        assert_eq!(teacher_temperature(0.04, 0.07, 4, 3), 0.07);
        assert_eq!(teacher_temperature(0.04, 0.07, 4, 9), 0.07);
        assert_eq!(teacher_temperature(0.04, 0.07, 0, 0), 0.07);
    }
}
