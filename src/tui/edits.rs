//! Precision editing: the plan the current report was made with ("applied"), the plan the next
//! rebuild will use ("effective"), and which nodes differ between them ("pending"). Also what a
//! rebuild changed, tensor by tensor.

use std::collections::{BTreeMap, HashMap};

use crate::compare::report::{Report, Status};
use crate::model::graph::{Graph, Node};
use crate::precision::{Override, Plan, Precision, Reason, Selector};

/// Applied and effective plans over one graph (the graph itself stays with the caller, which
/// passes it to every method that resolves a plan).
#[derive(Debug, Clone)]
pub struct Edits {
    applied: Option<Plan>,
    effective: Option<Plan>,
    applied_res: HashMap<String, (Precision, Option<Reason>)>,
    effective_res: HashMap<String, (Precision, Option<Reason>)>,
    pending: BTreeMap<String, Precision>,
}

fn resolve(plan: Option<&Plan>, graph: Option<&Graph>) -> HashMap<String, (Precision, Option<Reason>)> {
    let (Some(plan), Some(graph)) = (plan, graph) else { return HashMap::new() };
    let Ok(per_node) = plan.resolve_nodes(graph) else { return HashMap::new() };
    graph
        .nodes
        .iter()
        .map(Node::display_name)
        .zip(per_node.into_iter().map(|(p, o)| (p, o.map(|o| o.reason))))
        .collect()
}

fn flip(p: Precision) -> Precision {
    if p == Precision::Fp16 { Precision::Fp32 } else { Precision::Fp16 }
}

fn short(p: Precision) -> &'static str {
    match p {
        Precision::Fp32 => "FP32",
        Precision::Fp16 => "FP16",
        Precision::Bf16 => "BF16",
    }
}

impl Edits {
    /// No pending edits. `plan` is what the candidate runs with (`None`: it takes no plan).
    #[must_use]
    pub fn new(plan: Option<Plan>, graph: Option<&Graph>) -> Edits {
        let applied_res = resolve(plan.as_ref(), graph);
        Edits {
            effective: plan.clone(),
            effective_res: applied_res.clone(),
            applied: plan,
            applied_res,
            pending: BTreeMap::new(),
        }
    }

    /// The plan the next rebuild uses.
    #[must_use]
    pub fn effective(&self) -> Option<&Plan> {
        self.effective.as_ref()
    }

    /// The plan of the current report.
    #[must_use]
    pub fn applied_plan(&self) -> Option<&Plan> {
        self.applied.as_ref()
    }

    /// Nodes whose precision changes at the next rebuild.
    #[must_use]
    pub fn pending(&self) -> &BTreeMap<String, Precision> {
        &self.pending
    }

    /// A node's precision as shown: `("FP16", "FP16")`, `("FP32", "FP32 user")`, or with a pending
    /// change `("FP32", "FP16→FP32*")`. Empty for no node or no plan.
    #[must_use]
    pub fn label(&self, node: Option<&str>) -> (String, String) {
        let Some(node) = node else { return (String::new(), String::new()) };
        let Some(&(p, reason)) = self.applied_res.get(node) else { return (String::new(), String::new()) };
        if let Some(&to) = self.pending.get(node) {
            return (short(to).into(), format!("{}→{}*", short(p), short(to)));
        }
        let why = match reason {
            Some(Reason::User) => " user",
            Some(Reason::Prediction) => " pred",
            Some(Reason::Search) => " search",
            None => "",
        };
        (short(p).into(), format!("{}{why}", short(p)))
    }

    /// The node's precision in the applied plan.
    #[must_use]
    pub fn applied_precision(&self, node: &str) -> Option<Precision> {
        self.applied_res.get(node).map(|x| x.0)
    }

    /// Resolve both plans again over another graph (the control-flow specialization a report was
    /// made with), keeping pending edits that still differ.
    pub fn regraph(&mut self, graph: Option<&Graph>) {
        self.applied_res = resolve(self.applied.as_ref(), graph);
        self.recompute(graph);
    }

    fn recompute(&mut self, graph: Option<&Graph>) {
        self.effective_res = resolve(self.effective.as_ref(), graph);
        self.pending = self
            .effective_res
            .iter()
            .filter(|(n, (p, _))| self.applied_res.get(*n).is_some_and(|(a, _)| a != p))
            .map(|(n, (p, _))| (n.clone(), *p))
            .collect();
    }

    /// Flip one node. Returns a status message.
    pub fn toggle_node(&mut self, node: &str, graph: Option<&Graph>) -> String {
        let Some(&(cur, _)) = self.effective_res.get(node) else { return format!("{node}: not in the plan") };
        let Some(plan) = self.effective.as_mut() else { return "the candidate takes no plan".into() };
        let to = flip(cur);
        plan.overrides.retain(|o| o.selector != Selector::Node(node.to_string()));
        let without = resolve(Some(plan), graph).get(node).map(|x| x.0);
        if without != Some(to) {
            plan.overrides.push(Override {
                selector: Selector::Node(node.to_string()),
                precision: to,
                reason: Reason::User,
                note: Some("set in trtlens inspect".into()),
            });
        }
        self.recompute(graph);
        format!("{node}: {} → {} ({} pending; r rebuilds)", short(cur), short(to), self.pending.len())
    }

    /// Flip every node of `op`: to FP32 if any of them is FP16, else to FP16.
    pub fn toggle_op(&mut self, op: &str, graph: Option<&Graph>) -> String {
        let Some(graph) = graph else { return "no graph".into() };
        let nodes: Vec<String> = graph.nodes.iter().filter(|n| n.op_type == op).map(Node::display_name).collect();
        if nodes.is_empty() {
            return format!("no {op} nodes");
        }
        let any16 = nodes.iter().any(|n| self.effective_res.get(n).is_some_and(|x| x.0 == Precision::Fp16));
        let to = if any16 { Precision::Fp32 } else { Precision::Fp16 };
        let Some(plan) = self.effective.as_mut() else { return "the candidate takes no plan".into() };
        plan.overrides.retain(|o| match &o.selector {
            Selector::OpType(t) => t != op,
            Selector::Node(n) => !nodes.contains(n),
            Selector::Regex(_) => true,
        });
        plan.overrides.push(Override {
            selector: Selector::OpType(op.to_string()),
            precision: to,
            reason: Reason::User,
            note: Some("set in trtlens inspect".into()),
        });
        self.recompute(Some(graph));
        format!("every {op} ({} nodes) → {} ({} pending; r rebuilds)", nodes.len(), short(to), self.pending.len())
    }

    /// Keep `nodes` FP32 with reason `prediction`. Returns a status message.
    pub fn add_predicted(&mut self, nodes: Vec<String>, graph: Option<&Graph>) -> String {
        let Some(plan) = self.effective.as_mut() else { return "the candidate takes no plan".into() };
        let n = nodes.len();
        plan.overrides.extend(crate::precision::predict::overrides_for(nodes));
        self.recompute(graph);
        format!("prediction: keeping {n} nodes FP32 around tensors that do not fit FP16; rebuilding")
    }

    /// Keep `nodes` FP32 with reason `search` (the result of a search), replacing the overrides of
    /// an earlier search.
    pub fn add_searched(&mut self, nodes: &[String], graph: Option<&Graph>) -> String {
        let Some(plan) = self.effective.as_mut() else { return "the candidate takes no plan".into() };
        plan.overrides.retain(|o| o.reason != crate::precision::Reason::Search);
        plan.overrides.extend(nodes.iter().map(|n| crate::precision::Override {
            selector: crate::precision::Selector::Node(n.clone()),
            precision: Precision::Fp32,
            reason: crate::precision::Reason::Search,
            note: Some("search".into()),
        }));
        self.recompute(graph);
        format!("search: keeping {} node(s) FP32; rebuilding", nodes.len())
    }

    /// The effective plan became the applied one (a rebuild finished).
    pub fn applied(&mut self) {
        self.applied.clone_from(&self.effective);
        self.applied_res = self.effective_res.clone();
        self.pending.clear();
    }

    /// The effective plan as TOML when something is pending (saved with the session's UI state).
    #[must_use]
    pub fn pending_toml(&self) -> Option<String> {
        (!self.pending.is_empty()).then(|| self.effective.as_ref().map(Plan::to_toml)).flatten()
    }

    /// Restore pending edits saved by [`Edits::pending_toml`]; ignored when it does not parse.
    pub fn restore_pending(&mut self, toml: &str, graph: Option<&Graph>) {
        if let Ok(p) = Plan::from_toml(toml) {
            self.effective = Some(p);
            self.recompute(graph);
        }
    }
}

/// What a rebuild did to one tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Now passes, or the error shrank at least 2x.
    Better,
    /// Now fails, or the error grew at least 2x.
    Worse,
}

fn rank(s: Status) -> u8 {
    match s {
        Status::Pass => 0,
        Status::Fail => 1,
        Status::Skipped => 2,
    }
}

/// Per-tensor changes from `old` to `new` (tensors present in both).
#[must_use]
pub fn diff(old: &Report, new: &Report) -> HashMap<String, Change> {
    let mut out = HashMap::new();
    for t in &new.tensors {
        let Some(o) = old.tensor(&t.name) else { continue };
        let (a, b) = (o.metrics.as_ref().map(|m| m.max_abs), t.metrics.as_ref().map(|m| m.max_abs));
        let change = match rank(t.status).cmp(&rank(o.status)) {
            std::cmp::Ordering::Less => Some(Change::Better),
            std::cmp::Ordering::Greater => Some(Change::Worse),
            std::cmp::Ordering::Equal => match (a, b) {
                (Some(a), Some(b)) if a.is_nan() != b.is_nan() => {
                    Some(if b.is_nan() { Change::Worse } else { Change::Better })
                }
                (Some(a), Some(b)) if !a.is_finite() && b.is_finite() => Some(Change::Better),
                (Some(a), Some(b)) if a.is_finite() && !b.is_finite() => Some(Change::Worse),
                (Some(a), Some(b)) if a.is_finite() && b.is_finite() && b * 2.0 <= a && a > 0.0 => Some(Change::Better),
                (Some(a), Some(b)) if a.is_finite() && b.is_finite() && b >= a * 2.0 && b > 0.0 => Some(Change::Worse),
                _ => None,
            },
        };
        if let Some(c) = change {
            out.insert(t.name.clone(), c);
        }
    }
    out
}

/// One line: outputs pass count before → after, better/worse counts, verdict.
#[must_use]
pub fn describe<S: std::hash::BuildHasher>(old: &Report, new: &Report, changes: &HashMap<String, Change, S>) -> String {
    let pass = |r: &Report| r.outputs.iter().filter(|o| o.status == Status::Pass).count();
    let better = changes.values().filter(|c| **c == Change::Better).count();
    let worse = changes.len() - better;
    format!(
        "rebuilt: outputs {}/{} → {}/{} pass; {better} tensors better, {worse} worse; verdict {}",
        pass(old),
        old.outputs.len(),
        pass(new),
        new.outputs.len(),
        new.verdict.to_uppercase()
    )
}
