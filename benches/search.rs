//! `cargo bench --bench search`: how many candidate runs (engine builds) each way of finding the
//! FP32 nodes costs, on the same models with the same pass/fail oracle (graph outputs of the
//! `cpu-fp16` candidate against the tract reference at atol = rtol = 1e-2).
//!
//! * `trtlens search`: the real search ([`trtlens::search::search`]).
//! * Polygraphy `debug precision` (default `--mode bisect --direction forward`): re-implemented from
//!   its `BisectMarker` (polygraphy/tools/debug/subtool/precision.py): binary search on the number
//!   of leading layers run in higher precision; it needs `TensorRT` to run for real. Layers are the
//!   nodes the base plan runs in FP16, in topological order.
//! * onnxconverter-common `auto_convert_mixed_precision`: re-implemented from its `SegmentList`
//!   (`auto_mixed_precision.py`): the sanity session with every node blocked, one session per
//!   segment attempt (largest segment first, split in halves on failure), and the final validation
//!   session (its FP32 reference session is not counted, as the reference run is not for the others).

use std::collections::BTreeSet;

use trtlens::compare::source::SideSpec;
use trtlens::compare::{CompareRequest, Comparison};
use trtlens::precision::{Override, Plan, Precision, Reason, Selector};
use trtlens::runner::{RunnerKind, RunnerOptions};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Oracle {
    comparison: Comparison,
    base: Plan,
    calls: usize,
}

impl Oracle {
    fn pass(&mut self, fp32: &BTreeSet<String>) -> Result<bool> {
        self.calls += 1;
        let mut plan = self.base.clone();
        plan.overrides.extend(fp32.iter().map(|n| Override {
            selector: Selector::Node(n.clone()),
            precision: Precision::Fp32,
            reason: Reason::Search,
            note: None,
        }));
        let opts = RunnerOptions { plan: Some(plan), ..RunnerOptions::default() };
        Ok(self.comparison.candidate(&SideSpec::Runner(RunnerKind::CpuFp16), &opts, None, &mut |_, _| {})?.passed())
    }
}

/// Polygraphy's `BisectMarker`, forward: (iterations, layers marked in the answer).
fn polygraphy_bisect(layers: &[String], oracle: &mut Oracle) -> Result<(usize, usize)> {
    let max = layers.len();
    let (mut good, mut bad, mut mark) = (max + 1, 0usize, max);
    let mut iterations = 0;
    loop {
        let set: BTreeSet<String> = layers[..mark.min(max)].iter().cloned().collect();
        iterations += 1;
        let success = oracle.pass(&set)?;
        let old = mark;
        if success {
            good = mark;
            mark = usize::midpoint(good, bad); // floor
        } else {
            bad = mark;
            mark = (good + bad).div_ceil(2); // ceil
        }
        if old == mark || good.abs_diff(bad) <= 1 || mark > max {
            break;
        }
    }
    Ok((iterations, good.min(max)))
}

/// onnxconverter-common's `auto_convert_mixed_precision`: (sessions, nodes left FP32).
fn auto_mixed_precision(nodes: &[String], oracle: &mut Oracle) -> Result<(usize, usize)> {
    struct Seg {
        start: usize,
        size: usize,
        good: bool,
        bad: bool,
    }
    let all: BTreeSet<String> = nodes.iter().cloned().collect();
    let mut sessions = 1;
    if !oracle.pass(&all)? {
        return Err("validation failed with every node blocked".into());
    }
    let mut segs = vec![Seg { start: 0, size: nodes.len(), good: false, bad: false }];
    loop {
        // The first largest segment neither good nor bad.
        let mut pick: Option<usize> = None;
        for (i, s) in segs.iter().enumerate() {
            if !s.good && !s.bad && pick.is_none_or(|p| s.size > segs[p].size) {
                pick = Some(i);
            }
        }
        let Some(i) = pick else { break };
        let blocked: BTreeSet<String> = segs
            .iter()
            .enumerate()
            .filter(|(j, s)| *j != i && !s.good)
            .flat_map(|(_, s)| nodes[s.start..s.start + s.size].iter().cloned())
            .collect();
        sessions += 1;
        if oracle.pass(&blocked)? {
            segs[i].good = true;
        } else if segs[i].size == 1 {
            segs[i].bad = true;
        } else {
            let half = segs[i].size / 2;
            let second = Seg { start: segs[i].start + half, size: segs[i].size - half, good: false, bad: false };
            segs[i].size = half;
            segs.insert(i + 1, second);
        }
    }
    let left: BTreeSet<String> =
        segs.iter().filter(|s| !s.good).flat_map(|s| nodes[s.start..s.start + s.size].iter().cloned()).collect();
    sessions += 1;
    if !oracle.pass(&left)? {
        return Err("final validation failed".into());
    }
    Ok((sessions, left.len()))
}

fn main() -> Result<()> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    println!(
        "{:<24} {:>4} {:>2} {:>14} {:>20} {:>22} {:>10}",
        "model", "N", "k", "search runs", "polygraphy bisect", "auto_mixed_precision", "2k·log2 N"
    );
    println!(
        "{:<24} {:>4} {:>2} {:>14} {:>20} {:>22} {:>10}",
        "", "", "", "(kept)", "runs (layers kept)", "sessions (kept)", ""
    );
    for s in trtlens::samples::all().into_iter().filter(|s| s.culprit.is_some()) {
        let model = root.join("samples").join(s.file);
        let mut plan = Plan::uniform(Precision::Fp16);
        plan.out_of_range = s.policy;
        let mut req = CompareRequest::new(
            Some(model.clone()),
            SideSpec::Runner(RunnerKind::Tract),
            SideSpec::Runner(RunnerKind::CpuFp16),
        );
        req.introduced = false;
        req.top_k = 1;
        req.runner_options.plan = Some(plan.clone());
        let sreq = trtlens::search::SearchRequest {
            compare: req.clone(),
            risk: trtlens::precision::risk::RiskOptions { policy: s.policy, ..Default::default() },
            jobs: 1,
            log: None,
            resume: false,
        };
        let outcome = trtlens::search::search(&sreq, &mut |_| {})?;
        let comparison = Comparison::new(&req, &mut |_, _| {})?;
        let graph = comparison.reference_graph_model()?.ok_or("no model")?;
        let layers = trtlens::precision::convert(&graph, &plan)?.report.nodes_fp16;
        let mut oracle = Oracle { comparison, base: plan, calls: 0 };
        let (pg_runs, pg_kept) = polygraphy_bisect(&layers, &mut oracle)?;
        let (amp_sessions, amp_kept) = auto_mixed_precision(&layers, &mut oracle)?;
        let k = outcome.islands.len().max(1) as f64;
        let n = layers.len() as f64;
        println!(
            "{:<24} {:>4} {:>2} {:>14} {:>20} {:>22} {:>10.1}",
            s.name,
            layers.len(),
            outcome.islands.len(),
            format!("{} ({})", outcome.runs, outcome.kept.len()),
            format!("{pg_runs} ({pg_kept})"),
            format!("{amp_sessions} ({amp_kept})"),
            2.0 * k * n.log2()
        );
    }
    println!(
        "\nsearch keeps exactly the planted islands, by name; Polygraphy answers a count of leading layers; \
         auto_mixed_precision keeps the nodes of every failing segment it could not split further."
    );
    Ok(())
}
