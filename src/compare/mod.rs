//! Comparison of a candidate run against a reference run.

pub mod metrics;
