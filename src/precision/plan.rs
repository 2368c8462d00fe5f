//! Precision plans: which precision each node of a graph should compute in.
//!
//! A [`Plan`] is a default precision plus a list of [`Override`]s, each selecting nodes by exact
//! name, by a regular expression on the node name, or by op type. It is stored as TOML
//! (`--plan plan.toml`, see `docs/precision.md`):
//!
//! ```toml
//! default = "fp16"
//! out_of_range = "saturate"
//!
//! [[override]]
//! node = "mlp/fc1/MatMul"
//! precision = "fp32"
//! reason = "user"
//! note = "hidden activation exceeds 65504"
//! ```
//!
//! **Precedence** ([`Plan::resolve`]): for each node, the overrides that select it are ranked by how
//! specific their selector is — an exact node name beats a regex, a regex beats an op type — and
//! among overrides of the same kind the *last* one in the list wins. A node no override selects
//! gets the default. An override that selects no node at all is an error (a typo in a node name
//! must not silently do nothing); the message lists the closest names.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::graph::{Graph, Node};

/// The precision a node computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE single precision (the ONNX model as exported).
    Fp32,
    /// IEEE half precision.
    Fp16,
    /// bfloat16 (accepted in plans; the Cast rewrite does not support it yet).
    Bf16,
}

impl Precision {
    /// `fp32`, `fp16` or `bf16`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Precision> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "float32" | "float" => Ok(Precision::Fp32),
            "fp16" | "float16" | "half" => Ok(Precision::Fp16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(Error::usage(format!("unknown precision '{other}' (use fp32, fp16 or bf16)"))),
        }
    }
}

/// What the Cast rewrite does with initializer and `Constant` values FP16 cannot hold (finite
/// |v| > 65504, or non-zero |v| below the smallest FP16 subnormal 5.96e-8) when it stores them as
/// FP16. Only stored values are concerned: activations are never saturated (an activation above
/// 65504 is inf, as on the GPU), and NaN and ±inf are stored as they are under every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OutOfRangePolicy {
    /// What `TensorRT`'s own FP32→FP16 weight conversion does: |v| > 65504 becomes ±65504, non-zero
    /// |v| below the smallest subnormal becomes ± the smallest subnormal (5.96e-8).
    #[default]
    #[value(name = "saturate")]
    Saturate,
    /// Every node that would read an initializer or `Constant` holding a value above 65504 in FP16
    /// stays FP32 and reads it unchanged (`ModelOpt` `AutoCast`'s `init_max` rule). Values below the
    /// subnormal range are no reason to keep a node (trained weights nearly always hold a few):
    /// they are saturated as under `saturate`.
    #[value(name = "keep-fp32")]
    KeepFp32,
    /// IEEE round to nearest even, nothing else: |v| ≥ 65520 becomes ±inf, |v| ≤ 2.98e-8 becomes 0
    /// (what trtlens did before the policy existed).
    #[value(name = "ieee")]
    Ieee,
}

impl OutOfRangePolicy {
    /// `saturate`, `keep-fp32` or `ieee`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OutOfRangePolicy::Saturate => "saturate",
            OutOfRangePolicy::KeepFp32 => "keep-fp32",
            OutOfRangePolicy::Ieee => "ieee",
        }
    }
}

impl fmt::Display for OutOfRangePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OutOfRangePolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<OutOfRangePolicy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "saturate" => Ok(OutOfRangePolicy::Saturate),
            "keep-fp32" | "keep_fp32" => Ok(OutOfRangePolicy::KeepFp32),
            "ieee" => Ok(OutOfRangePolicy::Ieee),
            other => {
                Err(Error::usage(format!("unknown out-of-range policy '{other}' (use saturate, keep-fp32 or ieee)")))
            }
        }
    }
}

/// How an override selects nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The node with exactly this name (unnamed nodes: their display name `<op_type>#<index>`).
    Node(String),
    /// Every node whose name matches this regular expression (unanchored: use `^...$` for a full match).
    Regex(String),
    /// Every node of this op type (exact, case-sensitive: `MatMul`).
    OpType(String),
}

impl Selector {
    /// Specificity rank: exact node 3, regex 2, op type 1.
    fn rank(&self) -> u8 {
        match self {
            Selector::Node(_) => 3,
            Selector::Regex(_) => 2,
            Selector::OpType(_) => 1,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Node(n) => write!(f, "node '{n}'"),
            Selector::Regex(r) => write!(f, "regex '{r}'"),
            Selector::OpType(o) => write!(f, "op type '{o}'"),
        }
    }
}

/// Where an override came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// Written by a person (plan file or command line).
    #[default]
    User,
    /// Found by a search over runs (bisection, per-layer fallback).
    Search,
    /// Predicted from a reference run's value ranges, before any FP16 run.
    Prediction,
}

impl Reason {
    /// `user`, `search` or `prediction`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Reason::User => "user",
            Reason::Search => "search",
            Reason::Prediction => "prediction",
        }
    }
}

/// One rule of a plan: the nodes `selector` picks compute in `precision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Which nodes.
    pub selector: Selector,
    /// Their precision.
    pub precision: Precision,
    /// Who decided.
    pub reason: Reason,
    /// Free text: why (shown in reports).
    pub note: Option<String>,
}

/// A precision plan: a default, overrides (see the module documentation for precedence) and the
/// policy for stored values FP16 cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Precision of every node no override selects.
    pub default: Precision,
    /// Rules, in file order (later rules of the same selector kind win).
    pub overrides: Vec<Override>,
    /// What the Cast rewrite does with initializer/`Constant` values outside the FP16 range.
    pub out_of_range: OutOfRangePolicy,
}

/// In JSON (worker requests, sessions) a plan is its TOML text: one format, one parser.
impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_toml())
    }
}

impl<'de> Deserialize<'de> for Plan {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Plan, D::Error> {
        let text = String::deserialize(d)?;
        Plan::from_toml(&text).map_err(serde::de::Error::custom)
    }
}

/// The on-disk shape of a plan.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    default: Precision,
    /// Absent in plans written before the policy existed: they load with the default.
    #[serde(default)]
    out_of_range: OutOfRangePolicy,
    #[serde(rename = "override", default, skip_serializing_if = "Vec::is_empty")]
    overrides: Vec<OverrideFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    op_type: Option<String>,
    precision: Precision,
    #[serde(default)]
    reason: Reason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// Compile a selector regex, with a message naming it.
pub(crate) fn compile_regex(pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern).map_err(|e| Error::usage(format!("invalid node-name regex '{pattern}': {e}")))
}

impl Plan {
    /// Every node in `default`, no overrides.
    #[must_use]
    pub fn uniform(default: Precision) -> Plan {
        Plan { default, overrides: Vec::new(), out_of_range: OutOfRangePolicy::default() }
    }

    /// The plan the command-line flags describe: `precision` for every node, except the listed
    /// node names, op types and node-name regexes, which are kept FP32 (reason `user`); the
    /// default out-of-range policy.
    pub fn from_cli(
        precision: Precision,
        keep_fp32_nodes: &[String],
        keep_fp32_ops: &[String],
        keep_fp32_regex: &[String],
    ) -> Result<Plan> {
        let selectors = keep_fp32_ops
            .iter()
            .map(|o| Selector::OpType(o.clone()))
            .chain(keep_fp32_regex.iter().map(|r| Selector::Regex(r.clone())))
            .chain(keep_fp32_nodes.iter().map(|n| Selector::Node(n.clone())));
        let overrides = selectors
            .map(|selector| Override { selector, precision: Precision::Fp32, reason: Reason::User, note: None })
            .collect();
        let plan = Plan { default: precision, overrides, out_of_range: OutOfRangePolicy::default() };
        plan.validate()?;
        Ok(plan)
    }

    /// Every regex compiles and no selector is empty.
    pub fn validate(&self) -> Result<()> {
        for (i, o) in self.overrides.iter().enumerate() {
            match &o.selector {
                Selector::Regex(r) => {
                    compile_regex(r)?;
                }
                Selector::Node(s) | Selector::OpType(s) if s.is_empty() => {
                    return Err(Error::usage(format!("plan override #{}: empty {}", i + 1, o.selector)));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Read a plan from TOML text.
    pub fn from_toml(text: &str) -> Result<Plan> {
        let file: PlanFile = toml::from_str(text)
            .map_err(|e| Error::usage(format!("invalid precision plan: {}", e.to_string().trim())))?;
        let mut overrides = Vec::with_capacity(file.overrides.len());
        for (i, o) in file.overrides.into_iter().enumerate() {
            let selector = match (o.node, o.regex, o.op_type) {
                (Some(n), None, None) => Selector::Node(n),
                (None, Some(r), None) => Selector::Regex(r),
                (None, None, Some(t)) => Selector::OpType(t),
                _ => {
                    return Err(Error::usage(format!(
                        "invalid precision plan: override #{} must have exactly one of `node`, `regex`, `op_type`",
                        i + 1
                    )));
                }
            };
            overrides.push(Override { selector, precision: o.precision, reason: o.reason, note: o.note });
        }
        let plan = Plan { default: file.default, overrides, out_of_range: file.out_of_range };
        plan.validate()?;
        Ok(plan)
    }

    /// Read a plan file.
    pub fn load(path: &std::path::Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::usage(format!("cannot read precision plan {}: {e}", path.display())))?;
        Plan::from_toml(&text).map_err(|e| Error::usage(format!("{}: {e}", path.display())))
    }

    /// The plan as TOML. Deterministic, and [`Plan::from_toml`] reads it back to an equal plan.
    #[must_use]
    pub fn to_toml(&self) -> String {
        let file = PlanFile {
            default: self.default,
            out_of_range: self.out_of_range,
            overrides: self
                .overrides
                .iter()
                .map(|o| {
                    let (mut node, mut regex, mut op_type) = (None, None, None);
                    match &o.selector {
                        Selector::Node(n) => node = Some(n.clone()),
                        Selector::Regex(r) => regex = Some(r.clone()),
                        Selector::OpType(t) => op_type = Some(t.clone()),
                    }
                    OverrideFile {
                        node,
                        regex,
                        op_type,
                        precision: o.precision,
                        reason: o.reason,
                        note: o.note.clone(),
                    }
                })
                .collect(),
        };
        let body = toml::to_string(&file).unwrap_or_else(|e| format!("# cannot serialise the plan: {e}\n"));
        format!("# trtlens precision plan (format: docs/precision.md)\n{body}")
    }

    /// The precision of every node of `graph`, in node order, with the override that decided it
    /// (`None`: the default). Errors when a regex does not compile or an override selects no node.
    pub fn resolve_nodes<'a>(&'a self, graph: &Graph) -> Result<Vec<(Precision, Option<&'a Override>)>> {
        let regexes: Vec<Option<regex::Regex>> = self
            .overrides
            .iter()
            .map(|o| match &o.selector {
                Selector::Regex(r) => compile_regex(r).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        let names: Vec<String> = graph.nodes.iter().map(Node::display_name).collect();
        let mut used = vec![false; self.overrides.len()];
        let mut out = Vec::with_capacity(graph.nodes.len());
        for (node, name) in graph.nodes.iter().zip(&names) {
            let mut best: Option<(u8, usize)> = None;
            for (i, o) in self.overrides.iter().enumerate() {
                let hit = match &o.selector {
                    Selector::Node(n) => n == name,
                    Selector::Regex(_) => regexes[i].as_ref().is_some_and(|r| r.is_match(name)),
                    Selector::OpType(t) => *t == node.op_type,
                };
                if hit {
                    used[i] = true;
                    let key = (o.selector.rank(), i);
                    if best.is_none_or(|b| key > b) {
                        best = Some(key);
                    }
                }
            }
            out.push(match best {
                Some((_, i)) => (self.overrides[i].precision, Some(&self.overrides[i])),
                None => (self.default, None),
            });
        }
        let unmatched: Vec<String> = self
            .overrides
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(o, _)| format!("{} selects no node{}", o.selector, suggest(&o.selector, graph, &names)))
            .collect();
        if !unmatched.is_empty() {
            return Err(Error::usage(format!("precision plan: {}", unmatched.join("; "))));
        }
        Ok(out)
    }

    /// The precision of every node, keyed by node name (display name for unnamed nodes), with the
    /// override that decided it. Nodes sharing a name share an entry (the last one wins).
    pub fn resolve<'a>(&'a self, graph: &Graph) -> Result<BTreeMap<String, (Precision, Option<&'a Override>)>> {
        let per_node = self.resolve_nodes(graph)?;
        Ok(graph.nodes.iter().map(Node::display_name).zip(per_node).collect())
    }
}

/// `" (did you mean 'a', 'b'?)"` for a selector that matched nothing.
fn suggest(sel: &Selector, graph: &Graph, names: &[String]) -> String {
    let close = match sel {
        Selector::Node(n) => closest(n, names.iter().map(String::as_str)),
        Selector::OpType(t) => {
            let mut ops: Vec<&str> = graph.nodes.iter().map(|n| n.op_type.as_str()).collect();
            ops.sort_unstable();
            ops.dedup();
            closest(t, ops.into_iter())
        }
        Selector::Regex(_) => {
            let shown: Vec<String> = names.iter().take(5).map(|n| format!("'{n}'")).collect();
            return if shown.is_empty() {
                " (the graph has no nodes)".into()
            } else {
                format!(" (node names look like {})", shown.join(", "))
            };
        }
    };
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", close.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", "))
    }
}

/// Up to five candidates closest to `wanted`: case-insensitive equality, substring either way,
/// or a small edit distance.
fn closest<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let w = wanted.to_lowercase();
    let limit = (w.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .filter_map(|c| {
            let l = c.to_lowercase();
            let d = if l == w {
                0
            } else if l.contains(&w) || w.contains(&l) {
                1
            } else {
                let d = edit_distance(&l, &w);
                if d > limit {
                    return None;
                }
                d + 1
            };
            Some((d, c))
        })
        .collect();
    scored.sort_unstable();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(5).map(|(_, c)| c.to_string()).collect()
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(closest("mlp/fc1/matmul", ["mlp/fc1/MatMul", "x"].into_iter()), vec!["mlp/fc1/MatMul"]);
    }

    #[test]
    fn toml_round_trip_and_errors() -> Result<()> {
        let text = r#"
default = "fp16"
[[override]]
node = "a"
precision = "fp32"
note = "why"
[[override]]
op_type = "Softmax"
precision = "fp32"
reason = "search"
"#;
        let p = Plan::from_toml(text)?;
        assert_eq!(p.overrides.len(), 2);
        assert_eq!(p.overrides[0].reason, Reason::User);
        assert_eq!(Plan::from_toml(&p.to_toml())?, p);
        assert!(
            Plan::from_toml("default = \"fp16\"\n[[override]]\nnode = \"a\"\nregex = \"b\"\nprecision = \"fp32\"\n")
                .is_err()
        );
        let tricky = Plan {
            default: Precision::Fp32,
            overrides: vec![Override {
                selector: Selector::Regex(r#"^a\.b/"c"$"#.into()),
                precision: Precision::Bf16,
                reason: Reason::Prediction,
                note: Some("two\nlines, 'quotes' \"and\" unicode ±inf".into()),
            }],
            out_of_range: OutOfRangePolicy::Ieee,
        };
        assert_eq!(Plan::from_toml(&tricky.to_toml())?, tricky);
        assert!(Plan::from_toml("default = \"fp8\"\n").is_err());
        // Plans written before the policy existed load with the default; the policy is written out.
        assert_eq!(p.out_of_range, OutOfRangePolicy::Saturate);
        assert!(p.to_toml().contains("out_of_range = \"saturate\"\n"), "{}", p.to_toml());
        for policy in [OutOfRangePolicy::Saturate, OutOfRangePolicy::KeepFp32, OutOfRangePolicy::Ieee] {
            let q = Plan { out_of_range: policy, ..p.clone() };
            assert_eq!(Plan::from_toml(&q.to_toml())?, q);
            assert_eq!(policy.name().parse::<OutOfRangePolicy>()?, policy);
        }
        assert!(Plan::from_toml("default = \"fp16\"\nout_of_range = \"clamp\"\n").is_err());
        assert!("clamp".parse::<OutOfRangePolicy>().is_err());
        assert!(Plan::from_toml("default = \"fp16\"\n[[override]]\nregex = \"(\"\nprecision = \"fp32\"\n").is_err());
        Ok(())
    }
}
