//! Shared helpers for moor's benchmarks: timing statistics.
#![forbid(unsafe_code)]

use std::time::Duration;

/// Median and p99 of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: Duration,
    pub p99: Duration,
    pub samples: usize,
}

pub fn stats(samples: &mut [Duration]) -> Stats {
    samples.sort_unstable();
    let pick = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Stats {
        median: pick(0.5),
        p99: pick(0.99),
        samples: samples.len(),
    }
}
