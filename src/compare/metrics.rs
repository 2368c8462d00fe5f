//! Per-tensor metrics (being written).
