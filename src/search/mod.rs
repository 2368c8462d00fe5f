//! `trtlens search`: the fewest nodes to keep FP32 so that the graph outputs pass, by name,
//! verified, with as few candidate runs as possible.
//!
//! The unit of a fix is an *island* (a node and its FP16 readers: under strong typing one FP32
//! node cannot contain an overflow). The search:
//!
//! 1. runs the base plan (all FP16) once, with the introduced error of every node (the error a node
//!    makes on the candidate's own inputs, not the one it inherits) — that run ranks the nodes;
//! 2. verifies the prediction from the reference run ([`crate::precision::risk`]): its islands;
//! 3. if that does not pass, grows the set along the introduced-error ranking, island by island,
//!    in doubling steps (non-contiguous sets; never a prefix of the topological order);
//! 4. shrinks the sufficient set to a minimal one by handing nodes back to FP16: first the nodes
//!    nothing points at as a cause, in groups split in halves on failure (adaptive group testing),
//!    then every likely cause alone. No single node of the result can be handed back (assuming that
//!    more FP32 never hurts: each was tested alone against a superset of the result).
//!
//! Every candidate run and its verdict is appended to a JSON-lines log; `--resume` replays the log
//! (a set already judged is never run again), so an interrupted search continues where it stopped.
//! Candidate runs reuse the reference run ([`Comparison`]) and, with `jobs > 1` where the
//! candidate allows it, run as `trtlens worker` compare jobs in parallel.

pub mod log;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::compare::report::Report;
use crate::compare::source::SideSpec;
use crate::compare::{CompareRequest, Comparison};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::precision::risk::{self, Prediction, RiskOptions};
use crate::precision::{Override, Plan, Precision, Reason, Selector};
use crate::run::Progress;
use crate::runner::RunnerOptions;
use log::{Log, RunRecord};

/// What to search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchRequest {
    /// The comparison: model, reference, candidate (a runner that takes a plan), inputs, the base
    /// plan in `runner_options.plan` (all FP16 when `None`), the tolerance of the graph outputs.
    pub compare: CompareRequest,
    /// Prediction thresholds and the out-of-range policy.
    pub risk: RiskOptions,
    /// Candidate runs at once (worker processes), when the candidate allows parallel runs.
    pub jobs: usize,
    /// The log of every candidate run (JSON lines).
    pub log: Option<PathBuf>,
    /// Replay the log first (it must be a log of the same search).
    pub resume: bool,
}

/// What the search reports while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchEvent {
    /// Progress of the reference or a candidate run.
    Run(String, Progress),
    /// A candidate run finished (or was replayed from the log).
    Verdict {
        /// Its number (1-based).
        run: usize,
        /// The search phase that asked for it.
        phase: String,
        /// Nodes kept FP32 in it.
        kept: usize,
        /// Whether the graph outputs passed.
        passed: bool,
        /// True when the verdict came from the log.
        replayed: bool,
    },
    /// Something worth telling.
    Note(String),
}

impl std::fmt::Display for SearchEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchEvent::Run(side, p) => write!(f, "{side}: {p}"),
            SearchEvent::Verdict { run, phase, kept, passed, replayed } => write!(
                f,
                "run {run} ({phase}): {kept} node(s) FP32 -> {}{}",
                if *passed { "pass" } else { "fail" },
                if *replayed { " (replayed from the log)" } else { "" }
            ),
            SearchEvent::Note(n) => f.write_str(n),
        }
    }
}

/// One island of the result: connected nodes kept FP32 and the node that causes the damage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundIsland {
    /// The root cause: the island's node with the largest introduced error (else the first one).
    pub root: String,
    /// Every node of the island, in topological order.
    pub nodes: Vec<String>,
}

/// What the search found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchOutcome {
    /// Nodes to keep FP32, in topological order.
    pub kept: Vec<String>,
    /// The same, grouped into islands with their root cause.
    pub islands: Vec<FoundIsland>,
    /// Nodes the base plan runs in FP16 (the search space).
    pub universe: usize,
    /// Candidate runs used (replayed ones included).
    pub runs: usize,
    /// Of which replayed from the log.
    pub replayed: usize,
    /// Whether the base plan passed as it is (nothing to keep).
    pub baseline_passed: bool,
    /// The prediction's island nodes (within the search space).
    pub predicted: Vec<String>,
    /// The plan: the base plan plus the kept nodes (reason `search`).
    pub plan: Plan,
    /// The control-flow specialization of the reference run (node names of inlined branches live
    /// in the model with these applied: write the mixed-precision model from it).
    pub specialized: Vec<crate::model::specialize::Specialized>,
}

impl SearchOutcome {
    /// `kept 2 of 95 nodes FP32 after 9 candidate runs`.
    #[must_use]
    pub fn summary(&self) -> String {
        let replayed =
            if self.replayed > 0 { format!(" ({} replayed from the log)", self.replayed) } else { String::new() };
        format!("kept {} of {} nodes FP32 after {} candidate runs{replayed}", self.kept.len(), self.universe, self.runs)
    }

    /// `--nodes_to_exclude` of `ModelOpt` `AutoCast` (`python -m modelopt.onnx.autocast`).
    #[must_use]
    pub fn autocast_args(&self) -> String {
        let names: Vec<String> = self.kept.iter().map(|n| shell_quote(n)).collect();
        format!("--nodes_to_exclude {}", names.join(" "))
    }

    /// `trtexec` (`TensorRT` ≤ 10) per-layer precisions; layer names follow the ONNX node names.
    #[must_use]
    pub fn layer_precisions_args(&self) -> String {
        let spec: Vec<String> = self.kept.iter().map(|n| format!("{n}:fp32")).collect();
        format!("--fp16 --precisionConstraints=obey --layerPrecisions={}", shell_quote(&spec.join(",")))
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:,=+@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A set of nodes kept FP32 (sorted: the log's key).
type Set = BTreeSet<String>;

/// Runs candidates and remembers every verdict.
struct Oracle<'a> {
    comparison: Comparison,
    spec: SideSpec,
    base: Plan,
    opts: RunnerOptions,
    log: Log,
    memo: HashMap<Set, bool>,
    runs: usize,
    replayed: usize,
    jobs: usize,
    progress: &'a mut dyn FnMut(SearchEvent),
    /// Temporary folder for worker requests and reports.
    scratch: Option<tempfile::TempDir>,
    /// Set to stop before the next run.
    cancel: &'a std::sync::atomic::AtomicBool,
}

impl Oracle<'_> {
    fn plan_for(&self, set: &Set) -> Plan {
        let mut plan = self.base.clone();
        plan.overrides.extend(set.iter().map(|n| Override {
            selector: Selector::Node(n.clone()),
            precision: Precision::Fp32,
            reason: Reason::Search,
            note: Some("search".into()),
        }));
        plan
    }

    fn record(&mut self, set: &Set, phase: &str, report: Option<&Report>, passed: bool, seconds: f64) -> Result<()> {
        self.runs += 1;
        let rec = RunRecord {
            run: self.runs,
            phase: phase.to_string(),
            kept: set.iter().cloned().collect(),
            verdict: if passed { "pass".into() } else { "fail".into() },
            outputs: report.map(log::outputs_of).unwrap_or_default(),
            seconds,
            ranking: vec![],
        };
        self.log.append(&rec)?;
        self.memo.insert(set.clone(), passed);
        (self.progress)(SearchEvent::Verdict {
            run: self.runs,
            phase: phase.into(),
            kept: set.len(),
            passed,
            replayed: false,
        });
        Ok(())
    }

    /// The verdict of a replayed set, counted as a run.
    fn replay(&mut self, set: &Set, phase: &str) -> Option<bool> {
        let passed = *self.memo.get(set)?;
        if self.log.replayable(set) {
            self.runs += 1;
            self.replayed += 1;
            self.log.consume(set);
            (self.progress)(SearchEvent::Verdict {
                run: self.runs,
                phase: phase.into(),
                kept: set.len(),
                passed,
                replayed: true,
            });
        }
        Some(passed)
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Cancelled("search".into()));
        }
        Ok(())
    }

    /// Run one candidate in this process (the comparison's runner placement applies).
    fn run_here(&mut self, set: &Set, phase: &str) -> Result<(bool, Report)> {
        self.check_cancel()?;
        let opts = RunnerOptions {
            plan: Some(self.plan_for(set)),
            plan_label: Some(format!("search {phase}: {} node(s) FP32", set.len())),
            ..self.opts.clone()
        };
        let t0 = std::time::Instant::now();
        let spec = self.spec.clone();
        let progress = &mut *self.progress;
        let report = self.comparison.candidate(&spec, &opts, None, &mut |side, p| {
            progress(SearchEvent::Run(side.to_string(), p));
        })?;
        let passed = report.passed();
        self.record(set, phase, Some(&report), passed, t0.elapsed().as_secs_f64())?;
        Ok((passed, report))
    }

    /// The verdict on keeping `set` FP32.
    fn test(&mut self, set: &Set, phase: &str) -> Result<bool> {
        if let Some(v) = self.replay(set, phase) {
            return Ok(v);
        }
        Ok(self.run_here(set, phase)?.0)
    }

    /// Verdicts on several sets: in parallel worker jobs when allowed, else one after the other.
    fn test_many(&mut self, sets: &[Set], phase: &str) -> Result<Vec<bool>> {
        let mut out: Vec<Option<bool>> = sets.iter().map(|s| self.replay(s, phase)).collect();
        let todo: Vec<usize> = (0..sets.len()).filter(|&i| out[i].is_none()).collect();
        if self.jobs <= 1 || todo.len() <= 1 {
            for i in todo {
                out[i] = Some(self.run_here(&sets[i], phase)?.0);
            }
        } else {
            for chunk in todo.chunks(self.jobs) {
                let verdicts = self.run_workers(&chunk.iter().map(|&i| sets[i].clone()).collect::<Vec<_>>(), phase)?;
                for (&i, v) in chunk.iter().zip(verdicts) {
                    out[i] = Some(v);
                }
            }
        }
        Ok(out.into_iter().map(|v| v.unwrap_or(false)).collect())
    }

    /// Run candidates as `trtlens worker` compare jobs, all at once, against the saved reference run.
    fn run_workers(&mut self, sets: &[Set], phase: &str) -> Result<Vec<bool>> {
        use crate::job::client::{Worker, default_exe};
        use crate::job::{Job, Request};
        self.check_cancel()?;
        let ref_dir = self
            .comparison
            .reference_rundir()
            .map(|r| r.path.clone())
            .ok_or_else(|| Error::usage("parallel candidate runs need a trtlens reference run"))?;
        if self.scratch.is_none() {
            self.scratch = Some(
                tempfile::Builder::new()
                    .prefix("trtlens-search-")
                    .tempdir()
                    .map_err(|e| Error::store_io(std::env::temp_dir(), "cannot create a temporary folder", e))?,
            );
        }
        let scratch = self.scratch.as_ref().map(|t| t.path().to_path_buf()).unwrap_or_default();
        let exe = default_exe()?;
        let t0 = std::time::Instant::now();
        let mut workers = Vec::new();
        for (i, set) in sets.iter().enumerate() {
            let base = self.comparison.request();
            let request = CompareRequest {
                reference: SideSpec::Saved { path: ref_dir.clone(), runner: None },
                candidate: self.spec.clone(),
                inputs: crate::inputs::InputOptions::default(),
                runner_options: RunnerOptions {
                    plan: Some(self.plan_for(set)),
                    plan_label: Some(format!("search {phase}: {} node(s) FP32", set.len())),
                    ..self.opts.clone()
                },
                save_runs: None,
                keep_fp32_predicted: None,
                introduced: false,
                top_k: 1,
                ..base.clone()
            };
            let n = self.runs + i + 1;
            let report = scratch.join(format!("report-{n}.json"));
            let req = Request::new(format!("search run {n}"), Job::Compare { request, report: report.clone() });
            workers.push((Worker::spawn(&exe, &req, &scratch.join(format!("request-{n}.json")))?, report));
        }
        let mut verdicts = Vec::new();
        let mut reports = Vec::new();
        for (w, report) in workers {
            w.wait(&mut |_| {})?;
            let text = std::fs::read_to_string(&report)
                .map_err(|e| Error::store_io(&report, "cannot read the worker's report", e))?;
            let r: Report =
                serde_json::from_str(&text).map_err(|e| Error::store(&report, format!("not a report: {e}")))?;
            verdicts.push(r.passed());
            reports.push(r);
        }
        let seconds = t0.elapsed().as_secs_f64() / sets.len().max(1) as f64;
        for ((set, passed), report) in sets.iter().zip(&verdicts).zip(&reports) {
            self.record(set, phase, Some(report), *passed, seconds)?;
        }
        Ok(verdicts)
    }
}

/// Nodes of `graph` ordered by how much error they introduced in `report` (worst first), with their
/// key (new non-finite values, mismatches, relative L2); nodes with no introduced error are left out.
fn ranking(graph: &crate::model::graph::Graph, report: &Report) -> Vec<(String, (u64, u64, f64))> {
    let mut scored: Vec<(String, (u64, u64, f64))> = Vec::new();
    for t in &report.tensors {
        let (Some(node), Some(m)) = (&t.node, &t.metrics) else { continue };
        let key = (
            m.introduced_nonfinite.unwrap_or(0),
            m.introduced_mismatches.unwrap_or(0),
            m.introduced_rel_l2.filter(|v| v.is_finite()).unwrap_or(0.0),
        );
        if key == (0, 0, 0.0) || graph.nodes.iter().all(|n| &n.display_name() != node) {
            continue;
        }
        match scored.iter_mut().find(|(n, _)| n == node) {
            Some((_, k)) if key.partial_cmp(k).is_some_and(std::cmp::Ordering::is_gt) => *k = key,
            Some(_) => {}
            None => scored.push((node.clone(), key)),
        }
    }
    scored.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    scored
}

/// `node` and the nodes of `universe` that read one of its outputs (its island).
fn island_of(graph: &crate::model::graph::Graph, node: &str, universe: &Set) -> Vec<String> {
    let mut out = vec![node.to_string()];
    if let Some(n) = graph.nodes.iter().find(|n| n.display_name() == node) {
        for o in n.outputs.iter().filter(|o| !o.is_empty()) {
            if let Some(t) = graph.tensor(o) {
                for &c in &t.consumers {
                    let name = graph.nodes[c].display_name();
                    if universe.contains(&name) && !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
        }
    }
    out
}

/// Group `kept` into connected islands (an edge: one node reads another's output), each with the
/// node of the largest introduced error as its root.
fn islands(graph: &crate::model::graph::Graph, kept: &[String], rank: &[String]) -> Vec<FoundIsland> {
    fn find(p: &mut BTreeMap<String, String>, x: &str) -> String {
        let mut cur = x.to_string();
        while let Some(next) = p.get(&cur).filter(|n| **n != cur).cloned() {
            cur = next;
        }
        cur
    }
    let set: Set = kept.iter().cloned().collect();
    let mut parent: BTreeMap<String, String> = kept.iter().map(|n| (n.clone(), n.clone())).collect();
    for n in kept {
        for m in island_of(graph, n, &set).into_iter().skip(1) {
            let (a, b) = (find(&mut parent, n), find(&mut parent, &m));
            if a != b {
                parent.insert(a, b);
            }
        }
    }
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in kept {
        let r = find(&mut parent, n);
        groups.entry(r).or_default().push(n.clone());
    }
    let mut out: Vec<FoundIsland> = groups
        .into_values()
        .map(|nodes| {
            let root = rank
                .iter()
                .find(|r| nodes.contains(r))
                .cloned()
                .unwrap_or_else(|| nodes.first().cloned().unwrap_or_default());
            FoundIsland { root, nodes }
        })
        .collect();
    let pos = |n: &str| kept.iter().position(|k| k == n).unwrap_or(usize::MAX);
    out.sort_by_key(|i| pos(&i.nodes[0]));
    out
}

/// The error for a candidate runner that cannot take a precision plan (search toggles nodes of a
/// plan, so its candidate must take one).
pub fn require_plan_taker(kind: crate::runner::RunnerKind) -> Result<()> {
    if kind.takes_plan() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "--candidate {}: search needs a candidate that takes a precision plan ({})",
        kind.name(),
        crate::runner::registry::plan_takers()
    )))
}

/// Run the search.
pub fn search(req: &SearchRequest, progress: &mut dyn FnMut(SearchEvent)) -> Result<SearchOutcome> {
    search_cancellable(req, progress, &std::sync::atomic::AtomicBool::new(false))
}

/// Run the search; setting `cancel` stops it before the next candidate run (`Error::Cancelled`;
/// the log keeps every run so far, `--resume` continues).
pub fn search_cancellable(
    req: &SearchRequest,
    progress: &mut dyn FnMut(SearchEvent),
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<SearchOutcome> {
    let SideSpec::Runner(kind) = req.compare.candidate else {
        return Err(Error::usage(format!(
            "search needs a candidate runner that takes a precision plan ({})",
            crate::runner::registry::plan_takers()
        )));
    };
    require_plan_taker(kind)?;
    let mut jobs = req.jobs.max(1);
    if jobs > 1 && !kind.entry().parallel_runs {
        progress(SearchEvent::Note(format!("{} runs one candidate at a time: -j {jobs} ignored", kind.name())));
        jobs = 1;
    }
    let mut creq = req.compare.clone();
    creq.keep_fp32_predicted = None;
    creq.introduced = true;
    let comparison = Comparison::new(&creq, &mut |side, p| progress(SearchEvent::Run(side.to_string(), p)))?;
    let model: Model = comparison
        .reference_graph_model()?
        .ok_or_else(|| Error::usage("search needs the model: trtlens search MODEL.onnx ..."))?;
    let run = comparison
        .reference_rundir()
        .ok_or_else(|| Error::usage("search needs a trtlens reference run (a runner or saved:DIR)"))?;
    let specialized = run.manifest.specialized.clone();
    let base = req.compare.runner_options.plan.clone().unwrap_or_else(|| {
        let mut p = Plan::uniform(Precision::Fp16);
        p.out_of_range = req.risk.policy;
        p
    });
    let prediction: Prediction = risk::predict(&model, run, &RiskOptions { policy: base.out_of_range, ..req.risk })?;
    let converted = crate::precision::convert(&model, &base)?;
    let universe_list: Vec<String> = converted.report.nodes_fp16.clone();
    let universe: Set = universe_list.iter().cloned().collect();
    let topo = |s: &Set| -> Vec<String> { universe_list.iter().filter(|n| s.contains(*n)).cloned().collect() };

    let header = log::Header::new(&model, &req.compare, &base);
    let (log, memo, logged_ranking) = Log::open(req.log.as_deref(), &header, req.resume)?;
    let opts = RunnerOptions { plan: None, plan_label: None, ..req.compare.runner_options.clone() };
    let mut oracle = Oracle {
        comparison,
        spec: req.compare.candidate.clone(),
        base: base.clone(),
        opts,
        log,
        memo,
        runs: 0,
        replayed: 0,
        jobs,
        progress,
        scratch: None,
        cancel,
    };

    // 1. The base plan, with every node's introduced error.
    let empty = Set::new();
    let (baseline_passed, rank, failing) = match oracle.replay(&empty, "baseline") {
        Some(v) => (v, logged_ranking.nodes, logged_ranking.failing),
        None => {
            let (passed, report) = oracle.run_here(&empty, "baseline")?;
            let scored = ranking(&model.graph, &report);
            let rank: Vec<String> = scored.iter().map(|(n, _)| n.clone()).collect();
            let failing: Vec<String> =
                scored.iter().filter(|(_, k)| k.0 > 0 || k.1 > 0).map(|(n, _)| n.clone()).collect();
            oracle.log.note_ranking(&rank, &failing)?;
            (passed, rank, failing)
        }
    };
    oracle.comparison.set_introduced(false);
    let predicted: Set = prediction.nodes().into_iter().filter(|n| universe.contains(n)).collect();
    let finish = |o: &Oracle<'_>, kept: Vec<String>, rank: &[String]| SearchOutcome {
        islands: islands(&model.graph, &kept, rank),
        plan: o.plan_for(&kept.iter().cloned().collect()),
        kept,
        universe: universe.len(),
        runs: o.runs,
        replayed: o.replayed,
        baseline_passed,
        predicted: topo(&predicted),
        specialized: specialized.clone(),
    };
    if baseline_passed {
        return Ok(finish(&oracle, vec![], &rank));
    }

    // 2. The prediction.
    let mut sufficient: Option<Set> = None;
    if !predicted.is_empty() && oracle.test(&predicted, "prediction")? {
        sufficient = Some(predicted.clone());
    }

    // 3. Grow along the introduced-error ranking, island by island, in doubling steps.
    if sufficient.is_none() {
        let mut order: Vec<String> = rank.iter().filter(|n| universe.contains(*n)).cloned().collect();
        let others: Vec<String> = universe_list.iter().filter(|n| !order.contains(n)).cloned().collect();
        order.extend(others);
        order.retain(|n| !predicted.contains(n));
        let mut cur = predicted.clone();
        let (mut idx, mut step) = (0usize, 1usize);
        while idx < order.len() {
            let end = (idx + step).min(order.len());
            for n in &order[idx..end] {
                cur.extend(island_of(&model.graph, n, &universe));
            }
            idx = end;
            step *= 2;
            if oracle.test(&cur, "grow")? {
                sufficient = Some(cur.clone());
                break;
            }
        }
        if sufficient.is_none() && cur != universe && oracle.test(&universe, "grow")? {
            sufficient = Some(universe.clone());
        }
    }
    let Some(mut set) = sufficient else {
        return Err(Error::usage(format!(
            "no plan passes: even with all {} FP16 nodes kept FP32 the graph outputs fail the tolerance \
             (atol {}, rtol {}); check the tolerance against an FP32 candidate",
            universe.len(),
            req.compare.tolerance.atol,
            req.compare.tolerance.rtol
        )));
    };

    // 4. Shrink: hand nodes back to FP16. Likely causes (predicted for sure, or introducing failing
    // error) are tried alone; the rest in groups first.
    let certain = prediction.certain_nodes();
    let failing_rank: Set = failing.iter().cloned().collect();
    let likely: Vec<String> =
        topo(&set).into_iter().filter(|n| certain.contains(n) || failing_rank.contains(n)).collect();
    let rest: Vec<String> = topo(&set).into_iter().filter(|n| !likely.contains(n)).collect();
    let mut queue: VecDeque<Vec<String>> = VecDeque::new();
    if !rest.is_empty() {
        queue.push_back(rest);
    }
    while let Some(group) = queue.pop_front() {
        let without: Set = set.iter().filter(|n| !group.contains(n)).cloned().collect();
        if oracle.test(&without, "hand back")? {
            set = without;
        } else if group.len() > 1 {
            let (a, b) = group.split_at(group.len() / 2);
            queue.push_front(b.to_vec());
            queue.push_front(a.to_vec());
        }
    }
    let mut singles: VecDeque<String> = likely.into_iter().filter(|n| set.contains(n)).collect();
    while !singles.is_empty() {
        let batch: Vec<String> = (0..oracle.jobs.max(1)).filter_map(|_| singles.pop_front()).collect();
        let sets: Vec<Set> = batch.iter().map(|x| set.iter().filter(|n| *n != x).cloned().collect::<Set>()).collect();
        let verdicts = oracle.test_many(&sets, "hand back")?;
        let passing: Vec<&String> = batch.iter().zip(&verdicts).filter(|(_, v)| **v).map(|(x, _)| x).collect();
        match passing.as_slice() {
            [] => {}
            [x] => {
                set.remove(*x);
            }
            [first, others @ ..] => {
                let all: Set = set.iter().filter(|n| !passing.contains(n)).cloned().collect();
                if oracle.test(&all, "hand back")? {
                    set = all;
                } else {
                    set.remove(*first);
                    for o in others.iter().rev() {
                        singles.push_front((*o).clone());
                    }
                }
            }
        }
    }
    let kept = topo(&set);
    Ok(finish(&oracle, kept, &rank))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_spellings_quote_only_what_needs_it() {
        assert_eq!(shell_quote("/heads/cls/Exp"), "/heads/cls/Exp");
        assert_eq!(shell_quote("model/tf.math.reduce_sum/Sum"), "model/tf.math.reduce_sum/Sum");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        let o = SearchOutcome {
            kept: vec!["a/Mul".into(), "b c".into()],
            islands: vec![],
            universe: 9,
            runs: 4,
            replayed: 1,
            baseline_passed: false,
            predicted: vec![],
            plan: Plan::uniform(Precision::Fp16),
            specialized: vec![],
        };
        assert_eq!(o.summary(), "kept 2 of 9 nodes FP32 after 4 candidate runs (1 replayed from the log)");
        assert_eq!(o.autocast_args(), "--nodes_to_exclude a/Mul 'b c'");
        assert_eq!(
            o.layer_precisions_args(),
            "--fp16 --precisionConstraints=obey --layerPrecisions='a/Mul:fp32,b c:fp32'"
        );
    }

    #[test]
    fn islands_are_connected_kept_nodes_rooted_at_the_worst_introducer() -> Result<()> {
        let model = crate::model::Model::from_bytes(
            std::path::Path::new("multitask_heads.onnx"),
            &crate::samples::encode(&crate::samples::models::multitask_heads()),
        )?;
        let kept: Vec<String> = ["/heads/price/fc2/Gemm", "/heads/cls/Exp", "/heads/cls/ReduceSum", "/heads/cls/Div"]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        let rank = vec!["/heads/cls/ReduceSum".to_string()];
        let found = islands(&model.graph, &kept, &rank);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].nodes, vec!["/heads/price/fc2/Gemm".to_string()]);
        assert_eq!(found[1].root, "/heads/cls/ReduceSum");
        assert_eq!(found[1].nodes.len(), 3);
        Ok(())
    }
}
