//! The check result: what `trtlens check --json` prints (schema `trtlens.check/1`, documented in
//! `docs/check.md`, JSON Schema in `docs/check-schema.json`). One [`CheckRun`] holds one
//! [`CheckResult`] per model checked (one for `trtlens check MODEL`, one per `[[check]]` of a
//! `trtlens.toml`). Non-finite numbers are the strings `"inf"`, `"-inf"`, `"nan"`, as in reports.

use serde::{Deserialize, Serialize};

use crate::compare::report::Status;
use crate::error::ErrorKind;
use crate::store::ToolInfo;

/// Schema tag of check results written by this version.
pub const CHECK_SCHEMA: &str = "trtlens.check/1";

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Nothing regressed and every graph output is within tolerance (exit 0).
    Pass,
    /// Accuracy regressed, or a graph output is out of tolerance (exit 1).
    Fail,
    /// The check could not run: bad arguments, unreadable model, policy or baseline, runner failure (exit 2).
    Error,
}

impl CheckStatus {
    /// The process exit code for this status.
    #[must_use]
    pub fn exit_code(self) -> u8 {
        match self {
            CheckStatus::Pass => 0,
            CheckStatus::Fail => 1,
            CheckStatus::Error => 2,
        }
    }

    /// `pass`, `fail`, `error`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Error => "error",
        }
    }

    /// The worst of two statuses (error > fail > pass).
    #[must_use]
    pub fn worst(self, other: CheckStatus) -> CheckStatus {
        if other.exit_code() > self.exit_code() { other } else { self }
    }
}

/// Every check of one `trtlens check` invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRun {
    /// [`CHECK_SCHEMA`].
    pub schema: String,
    /// The trtlens that ran the checks.
    pub tool: ToolInfo,
    /// The worst status of the checks.
    pub status: CheckStatus,
    /// The process exit code (the worst of the checks': 0, 1 or 2).
    pub exit_code: u8,
    /// The config file the checks came from (`null` for `trtlens check MODEL`).
    pub config: Option<String>,
    /// One result per check, in the order given.
    pub checks: Vec<CheckResult>,
}

impl CheckRun {
    /// The run of these checks.
    #[must_use]
    pub fn new(config: Option<String>, checks: Vec<CheckResult>) -> CheckRun {
        let status = checks.iter().fold(CheckStatus::Pass, |s, c| s.worst(c.status));
        CheckRun {
            schema: CHECK_SCHEMA.into(),
            tool: ToolInfo::current(),
            status,
            exit_code: status.exit_code(),
            config,
            checks,
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> crate::error::Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| crate::error::Error::usage(format!("cannot serialize the check result: {e}")))
    }
}

/// Why a check could not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckError {
    /// The error's kind (`usage`, `model`, `input`, `runner`, `store`, `worker_died`, ...).
    pub kind: ErrorKind,
    /// One line.
    pub message: String,
    /// More, when there is more.
    pub details: Option<String>,
}

/// One model checked against its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name (`[[check]] name`, else the model's file stem).
    pub name: String,
    /// The model, as given.
    pub model: Option<String>,
    /// The baseline report.
    pub baseline: String,
    /// The policy file (`null`: the default policy).
    pub policy: Option<String>,
    /// `pass`, `fail` or `error`.
    pub status: CheckStatus,
    /// 0, 1 or 2.
    pub exit_code: u8,
    /// Why the check could not run (`status` `error` only).
    pub error: Option<CheckError>,
    /// The reference side (`tract 0.23.9`).
    pub reference: Option<String>,
    /// The candidate side now, with its precision plan.
    pub candidate: Option<String>,
    /// The candidate side of the baseline.
    pub baseline_candidate: Option<String>,
    /// The layer metric, factor and slack the layer rule used.
    pub layer_rule: Option<LayerRule>,
    /// Every graph output, with its tolerance verdict now and in the baseline.
    pub outputs: Vec<OutputCheck>,
    /// Regressed layers (tensors, or nodes for precision mismatches), in topological order.
    pub regressions: Vec<LayerChange>,
    /// Improved layers, in topological order.
    pub improvements: Vec<LayerChange>,
    /// The first divergence (first failing tensor) before and after.
    pub first_divergence: Moved,
    /// The first tensor whose candidate holds NaN or Inf, before and after.
    pub first_nonfinite: Moved,
    /// Tensor counts and the tensors that appeared or disappeared.
    pub tensors: TensorCounts,
    /// Things worth knowing (differences allowed by `--allow-model-change`, a replaced baseline, ...).
    pub notes: Vec<String>,
    /// True when this run wrote the new report as the baseline.
    pub baseline_updated: bool,
    /// Wall-clock seconds of the check (comparison included).
    pub seconds: f64,
}

impl CheckResult {
    /// A check that could not run.
    #[must_use]
    pub fn failed(
        name: &str,
        model: Option<String>,
        baseline: String,
        policy: Option<String>,
        e: &crate::Error,
    ) -> Self {
        let message = match e {
            crate::Error::Remote { message, .. } => message.clone(),
            other => other.to_string(),
        };
        CheckResult {
            name: name.to_string(),
            model,
            baseline,
            policy,
            status: CheckStatus::Error,
            exit_code: CheckStatus::Error.exit_code(),
            error: Some(CheckError { kind: e.kind(), message, details: e.details() }),
            reference: None,
            candidate: None,
            baseline_candidate: None,
            layer_rule: None,
            outputs: Vec::new(),
            regressions: Vec::new(),
            improvements: Vec::new(),
            first_divergence: Moved::default(),
            first_nonfinite: Moved::default(),
            tensors: TensorCounts::default(),
            notes: Vec::new(),
            baseline_updated: false,
            seconds: 0.0,
        }
    }

    /// Graph outputs that fail the check.
    pub fn failing_outputs(&self) -> impl Iterator<Item = &OutputCheck> {
        self.outputs.iter().filter(|o| o.failed)
    }
}

/// The layer rule in force (from the policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRule {
    /// `max_abs`, `mismatch_ratio` or `cosine_distance`.
    pub metric: String,
    /// Default factor.
    pub factor: f64,
    /// Default slack.
    pub slack: f64,
}

/// One graph output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputCheck {
    /// Output name.
    pub name: String,
    /// Its status now (`skipped` when it was not compared).
    pub status: Status,
    /// Largest absolute error now (`"inf"` when the candidate went non-finite, `"nan"` when not compared).
    #[serde(with = "crate::compare::metrics::json_f64")]
    pub max_abs: f64,
    /// Absolute tolerance applied.
    pub atol: Option<f64>,
    /// Relative tolerance applied.
    pub rtol: Option<f64>,
    /// Its status in the baseline (`null`: not in the baseline).
    pub baseline_status: Option<Status>,
    /// Its largest absolute error in the baseline.
    #[serde(with = "opt_f64")]
    pub baseline_max_abs: Option<f64>,
    /// True when it fails the check (out of tolerance while `[outputs] gate` is on).
    pub failed: bool,
}

/// A regressed or improved layer: a tensor, or a node (precision mismatches name nodes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerChange {
    /// The tensor (`null` for a node-only entry).
    pub tensor: Option<String>,
    /// The producing node.
    pub node: Option<String>,
    /// Its op type.
    pub op_type: Option<String>,
    /// Position in topological order (new report, else baseline).
    pub topo_index: Option<usize>,
    /// True for a graph output.
    pub is_output: bool,
    /// Every rule that fired, in a fixed order.
    pub reasons: Vec<Reason>,
}

impl LayerChange {
    /// The tensor or node name.
    #[must_use]
    pub fn label(&self) -> &str {
        self.tensor.as_deref().or(self.node.as_deref()).unwrap_or("?")
    }

    /// `tensor (Op)`, `tensor`, or `node NAME`.
    #[must_use]
    pub fn title(&self) -> String {
        match (&self.tensor, &self.op_type, &self.node) {
            (Some(t), Some(op), _) => format!("{t} ({op})"),
            (Some(t), None, _) => t.clone(),
            (None, _, n) => format!("node {}", n.as_deref().unwrap_or("?")),
        }
    }

    /// One line: the title and every reason (`mlp/fc1/matmul_out (MatMul): max_abs 0 -> inf ...; ...`).
    #[must_use]
    pub fn message(&self) -> String {
        let reasons: Vec<&str> = self.reasons.iter().map(|r| r.message.as_str()).collect();
        format!("{}: {}", self.title(), reasons.join("; "))
    }

    /// How bad: `after / limit` of the worst metric reason; infinite for the other rules.
    #[must_use]
    pub fn severity(&self) -> f64 {
        self.reasons
            .iter()
            .map(|r| match (r.after, r.limit) {
                (Some(a), Some(l)) if r.rule == "metric" && l > 0.0 => a / l,
                _ => f64::INFINITY,
            })
            .fold(0.0, f64::max)
    }
}

/// One rule that fired on a layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// `metric`, `new_nonfinite`, `new_overflow_predicted`, `new_overflow_observed`,
    /// `first_divergence_earlier`, `first_nonfinite_earlier`, `new_precision_mismatch`,
    /// `new_skipped`, `tensor_added`, `tensor_removed` (improvements: `metric`, `nonfinite_gone`,
    /// `first_divergence_later`, `first_nonfinite_later`, `precision_mismatch_gone`).
    pub rule: String,
    /// The metric compared (`metric` rules).
    pub metric: Option<String>,
    /// Its value in the baseline.
    #[serde(with = "opt_f64")]
    pub before: Option<f64>,
    /// Its value now.
    #[serde(with = "opt_f64")]
    pub after: Option<f64>,
    /// `factor × before + slack` (regressions) or `(before − slack) / factor` (improvements).
    #[serde(with = "opt_f64")]
    pub limit: Option<f64>,
    /// What happened, with before and after, on one line ([`LayerChange::message`] prefixes the
    /// tensor and its op).
    pub message: String,
}

/// Where a "first" tensor was and is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    /// In the baseline.
    pub before: Option<String>,
    /// Now.
    pub after: Option<String>,
    /// `none` (neither has one), `same`, `earlier`, `later`, `appeared`, `gone`, or `no_baseline`.
    pub change: String,
}

impl Default for Moved {
    fn default() -> Moved {
        Moved { before: None, after: None, change: "none".into() }
    }
}

/// Tensor counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TensorCounts {
    /// Tensors in the new report.
    pub compared: usize,
    /// Tensors the layer rules looked at (in both reports, not ignored).
    pub checked: usize,
    /// Tensors skipped by the ignore lists.
    pub ignored: usize,
    /// Tensors in the new report only.
    pub added: Vec<String>,
    /// Tensors in the baseline only.
    pub removed: Vec<String>,
}

/// `Option<f64>` with non-finite values as strings (`null` for `None`).
pub mod opt_f64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct W(#[serde(with = "crate::compare::metrics::json_f64")] f64);

    /// Writes `null`, a number, or `"inf"`/`"-inf"`/`"nan"`.
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        v.map(W).serialize(s)
    }

    /// Reads what [`serialize`] writes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}
