//! Overrides predicted from a reference run: keep FP32 every node that reads or writes a tensor
//! whose reference values FP16 cannot hold (the `OVF` and `UNF` flags of a report).
//!
//! Under strong typing a single FP32 node cannot contain an overflow: the next FP16 node casts the
//! oversized value back to FP16 and gets inf. What fixes it is an FP32 island around every tensor
//! that does not fit, i.e. its producer and all its consumers (`ModelOpt` `AutoCast` keeps nodes by the
//! same rule with its `data_max`).

use std::collections::BTreeSet;

use super::plan::{Override, Precision, Reason, Selector};
use crate::compare::report::Report;
use crate::model::graph::Graph;

/// Which reference ranges count as "does not fit in FP16".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predict {
    /// Values above 65504 only.
    Overflow,
    /// Overflow, and non-zero values below the smallest FP16 subnormal (flush to zero).
    OverflowAndUnderflow,
}

/// Node names (display names) to keep FP32 so that no tensor flagged in `report` is stored in FP16.
#[must_use]
pub fn nodes_to_keep(graph: &Graph, report: &Report, what: Predict) -> Vec<String> {
    let mut keep = BTreeSet::new();
    for t in &report.tensors {
        let over = t.flags.iter().any(|f| f == "OVF");
        let under = what == Predict::OverflowAndUnderflow && t.flags.iter().any(|f| f == "UNF");
        if !(over || under) {
            continue;
        }
        let Some(info) = graph.tensor(&t.name) else { continue };
        for i in info.producer.iter().chain(&info.consumers) {
            keep.insert(graph.nodes[*i].display_name());
        }
    }
    keep.into_iter().collect()
}

/// Node names to keep FP32 judged from a saved reference run alone (no candidate needed): every
/// tensor of every iteration whose values FP16 cannot hold.
pub fn nodes_to_keep_from_run(
    graph: &Graph,
    run: &crate::store::RunDir,
    what: Predict,
) -> crate::error::Result<Vec<String>> {
    use crate::compare::metrics::{TensorRef, reference_stats};
    let mut keep = BTreeSet::new();
    for it in 0..run.iterations() {
        let tensors = run.tensors(it)?;
        for name in tensors.names() {
            let Some(v) = tensors.view(name) else { continue };
            if !v.dtype.is_float() {
                continue;
            }
            let s = reference_stats(TensorRef::new(v.dtype, v.shape, v.data));
            let bad = s.fp16_overflow > 0 || (what == Predict::OverflowAndUnderflow && s.fp16_underflow > 0);
            let Some(info) = graph.tensor(name).filter(|_| bad) else { continue };
            for i in info.producer.iter().chain(&info.consumers) {
                keep.insert(graph.nodes[*i].display_name());
            }
        }
    }
    Ok(keep.into_iter().collect())
}

/// Plan overrides with reason [`Reason::Prediction`] for the given nodes.
#[must_use]
pub fn overrides_for(nodes: Vec<String>) -> Vec<Override> {
    nodes
        .into_iter()
        .map(|n| Override {
            selector: Selector::Node(n),
            precision: Precision::Fp32,
            reason: Reason::Prediction,
            note: Some("reference values outside the FP16 range".into()),
        })
        .collect()
}

/// The same as plan overrides with reason [`Reason::Prediction`].
#[must_use]
pub fn overrides(graph: &Graph, report: &Report, what: Predict) -> Vec<Override> {
    overrides_for(nodes_to_keep(graph, report, what))
}
