//! The check policy (`--policy policy.toml`): what counts as an accuracy regression. Every key has
//! a default, so an empty file (or no `--policy`) is the default policy; unknown keys are an error
//! (a typo never silently turns a rule off). The format is documented in `docs/check.md`, and
//! `docs/check-policy.toml` spells out every key with its default (a test keeps the two equal).
//!
//! ```toml
//! [outputs]               # graph outputs: tolerances that must hold, as in `trtlens compare`
//! rule = "allclose"       # or "polygraphy"
//! atol = 1e-2             # default: the candidate's (1e-2 for runners that take a plan, else 1e-5)
//! rtol = 1e-2
//! inf_equal = false
//! gate = true             # an output out of tolerance fails the check
//! [outputs.overrides."logits"]
//! atol = 0.05
//!
//! [layers]                # per-layer regressions against the baseline
//! metric = "max_abs"      # or "mismatch_ratio", "cosine_distance" (1 - cosine)
//! factor = 2.0            # regressed when  after > factor * before + slack
//! slack = 1e-3            # default per metric: max_abs 1e-3, mismatch_ratio 0.01, cosine_distance 1e-4
//! new_nonfinite = true
//! new_overflow = true
//! first_divergence_earlier = true
//! first_nonfinite_earlier = true
//! new_precision_mismatch = true
//! new_skipped = true
//! [[layers.override]]     # other factor/slack for some tensors
//! op_type = "Softmax"
//! factor = 4.0
//!
//! [ignore]                # tensors no layer rule looks at
//! tensors = []
//! regex = []
//! op_types = []
//!
//! [changes]               # tensors that appear or disappear
//! fail_on_added = false
//! fail_on_removed = false
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::compare::metrics::{Metrics, Rule};
use crate::compare::report::TensorReport;
use crate::error::{Error, Result};

/// The whole policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Graph outputs: tolerances that must hold.
    pub outputs: OutputsPolicy,
    /// Per-layer regression rules.
    pub layers: LayersPolicy,
    /// Tensors the layer rules skip.
    pub ignore: Ignore,
    /// Tensors that appear or disappear between the baseline and the new report.
    pub changes: Changes,
}

/// `[outputs]`: the comparison's tolerances; every graph output must be within them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputsPolicy {
    /// Element rule (default `allclose`).
    pub rule: Rule,
    /// Default absolute tolerance; `None`: the candidate's default (as in `compare`).
    pub atol: Option<f64>,
    /// Default relative tolerance; `None`: the candidate's default.
    pub rtol: Option<f64>,
    /// Equal infinities on both sides match.
    pub inf_equal: bool,
    /// A graph output out of tolerance fails the check (default true).
    pub gate: bool,
    /// Per-tensor tolerances (any tensor of the model, usually graph outputs).
    pub overrides: BTreeMap<String, TensorTolerance>,
}

impl Default for OutputsPolicy {
    fn default() -> OutputsPolicy {
        OutputsPolicy {
            rule: Rule::Allclose,
            atol: None,
            rtol: None,
            inf_equal: false,
            gate: true,
            overrides: BTreeMap::new(),
        }
    }
}

impl OutputsPolicy {
    /// The comparison's tolerance and per-tensor overrides; what the policy leaves out is the
    /// candidate's default (as in `compare`).
    #[must_use]
    pub fn tolerance(
        &self,
        candidate: &crate::compare::source::SideSpec,
    ) -> (crate::compare::metrics::Tolerance, Vec<crate::compare::report::ToleranceOverride>) {
        let (atol, rtol) = candidate.default_tolerance();
        let tolerance = crate::compare::metrics::Tolerance {
            rule: self.rule,
            atol: self.atol.unwrap_or(atol),
            rtol: self.rtol.unwrap_or(rtol),
            inf_equal: self.inf_equal,
        };
        let overrides = self
            .overrides
            .iter()
            .map(|(name, t)| crate::compare::report::ToleranceOverride {
                tensor: name.clone(),
                atol: t.atol,
                rtol: t.rtol,
            })
            .collect();
        (tolerance, overrides)
    }
}

/// One tensor's tolerance in `[outputs.overrides."NAME"]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TensorTolerance {
    /// Absolute tolerance.
    pub atol: Option<f64>,
    /// Relative tolerance.
    pub rtol: Option<f64>,
}

/// Which per-tensor error the layer rule compares with the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerMetric {
    /// Largest absolute error (`metrics.max_abs`).
    #[default]
    MaxAbs,
    /// Fraction of elements out of tolerance (`metrics.mismatch_ratio`).
    MismatchRatio,
    /// `1 − cosine` (`metrics.cosine`).
    #[serde(alias = "1-cosine", alias = "one_minus_cosine")]
    CosineDistance,
}

impl LayerMetric {
    /// The name in the policy and the check result.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            LayerMetric::MaxAbs => "max_abs",
            LayerMetric::MismatchRatio => "mismatch_ratio",
            LayerMetric::CosineDistance => "cosine_distance",
        }
    }

    /// The default slack: an absolute amount of this metric that never counts as a regression.
    #[must_use]
    pub fn default_slack(self) -> f64 {
        match self {
            LayerMetric::MaxAbs => 1e-3,
            LayerMetric::MismatchRatio => 0.01,
            LayerMetric::CosineDistance => 1e-4,
        }
    }

    /// The metric of one iteration. A candidate holding more NaN or more infinities than the
    /// reference counts as an infinite error (the statistics themselves cover finite pairs only),
    /// and so does a statistic that could not be computed (NaN: no finite pair).
    #[must_use]
    pub fn of(self, m: &Metrics) -> f64 {
        if m.nan_candidate > m.nan_reference || m.inf_candidate > m.inf_reference {
            return f64::INFINITY;
        }
        let v = match self {
            LayerMetric::MaxAbs => m.max_abs,
            LayerMetric::MismatchRatio => m.mismatch_ratio,
            LayerMetric::CosineDistance => 1.0 - m.cosine,
        };
        if v.is_nan() { f64::INFINITY } else { v.max(0.0) }
    }

    /// The metric of a tensor: the largest over its iterations; `None` when it was not compared.
    #[must_use]
    pub fn of_tensor(self, t: &TensorReport) -> Option<f64> {
        iteration_metrics(t).map(|m| self.of(m)).reduce(f64::max)
    }
}

/// The metrics of every iteration of a tensor (just `metrics` for a single iteration).
#[must_use]
pub fn iteration_metrics(t: &TensorReport) -> Box<dyn Iterator<Item = &Metrics> + '_> {
    match &t.iterations {
        Some(its) if !its.is_empty() => Box::new(its.iter().filter_map(|i| i.metrics.as_ref())),
        _ => Box::new(t.metrics.iter()),
    }
}

/// `[layers]`: when a tensor counts as regressed against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[allow(clippy::struct_excessive_bools)] // one switch per documented rule
pub struct LayersPolicy {
    /// The error compared with the baseline.
    pub metric: LayerMetric,
    /// A tensor regresses when its metric exceeds `factor × baseline + slack`.
    pub factor: f64,
    /// See `factor`; `None`: [`LayerMetric::default_slack`].
    pub slack: Option<f64>,
    /// NaN or Inf in the candidate (beyond the reference's own) where the baseline had none.
    pub new_nonfinite: bool,
    /// A new predicted FP16 overflow (reference values above 65504, flag `OVF`) or a new observed
    /// one (the candidate holds infinities where such reference values are).
    pub new_overflow: bool,
    /// The first divergence (first failing tensor) moves to an earlier tensor, or appears.
    pub first_divergence_earlier: bool,
    /// The first non-finite tensor moves to an earlier tensor, or appears.
    pub first_nonfinite_earlier: bool,
    /// A node the engine computes in another precision than the plan says (`TensorRT` candidates'
    /// `precision_mismatches`) that the baseline did not list.
    pub new_precision_mismatch: bool,
    /// A tensor compared in the baseline is skipped now (shape or dtype mismatch, missing).
    pub new_skipped: bool,
    /// Other `factor`/`slack` for some tensors (the first matching entry applies).
    #[serde(rename = "override")]
    pub overrides: Vec<LayerOverride>,
}

impl Default for LayersPolicy {
    fn default() -> LayersPolicy {
        LayersPolicy {
            metric: LayerMetric::MaxAbs,
            factor: 2.0,
            slack: None,
            new_nonfinite: true,
            new_overflow: true,
            first_divergence_earlier: true,
            first_nonfinite_earlier: true,
            new_precision_mismatch: true,
            new_skipped: true,
            overrides: Vec::new(),
        }
    }
}

impl LayersPolicy {
    /// The slack in force for tensors without an override.
    #[must_use]
    pub fn slack(&self) -> f64 {
        self.slack.unwrap_or_else(|| self.metric.default_slack())
    }
}

/// `[[layers.override]]`: exactly one of `tensor`, `regex`, `op_type`, and the factor and/or slack
/// for the tensors it matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayerOverride {
    /// Exact tensor name.
    pub tensor: Option<String>,
    /// Regex searched in the tensor name.
    pub regex: Option<String>,
    /// Op type of the producing node.
    pub op_type: Option<String>,
    /// Factor for these tensors.
    pub factor: Option<f64>,
    /// Slack for these tensors.
    pub slack: Option<f64>,
}

/// `[ignore]`: tensors the layer rules skip (graph outputs still obey `[outputs]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ignore {
    /// Exact tensor names.
    pub tensors: Vec<String>,
    /// Regexes searched in tensor names.
    pub regex: Vec<String>,
    /// Op types of the producing nodes.
    pub op_types: Vec<String>,
}

/// `[changes]`: tensors present in only one of the baseline and the new report (the model, the
/// runner or the control flow changed). They are always reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Changes {
    /// A tensor the baseline did not compare fails the check.
    pub fail_on_added: bool,
    /// A tensor the baseline compared and the new report does not fails the check.
    pub fail_on_removed: bool,
}

/// A condensed TOML error: where, and what (one line).
pub(crate) fn toml_error(e: &toml::de::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let first = lines.first().copied().unwrap_or("invalid TOML");
    let last = lines.last().copied().unwrap_or("");
    if lines.len() > 1 { format!("{first}: {last}") } else { first.to_string() }
}

impl Policy {
    /// Read a policy file.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::usage(format!("cannot read the policy {}: {e}", path.display())))?;
        Policy::from_toml(&text).map_err(|e| Error::usage(format!("{}: {e}", path.display())))
    }

    /// Parse and validate a policy.
    pub fn from_toml(text: &str) -> Result<Policy> {
        let p: Policy =
            toml::from_str(text).map_err(|e| Error::usage(format!("invalid check policy: {}", toml_error(&e))))?;
        p.validate()?;
        Ok(p)
    }

    /// Numbers finite and non-negative, factors at least 1, each override with one selector,
    /// every regex valid.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, msg: &str| Err(Error::usage(format!("invalid check policy: {what} {msg}")));
        let non_negative = |v: Option<f64>| v.is_none_or(|x| x.is_finite() && x >= 0.0);
        if !non_negative(self.outputs.atol) || !non_negative(self.outputs.rtol) {
            return bad("outputs.atol/rtol", "must be finite and >= 0");
        }
        for (name, t) in &self.outputs.overrides {
            if !non_negative(t.atol) || !non_negative(t.rtol) {
                return bad(&format!("outputs.overrides.\"{name}\""), "atol/rtol must be finite and >= 0");
            }
            if t.atol.is_none() && t.rtol.is_none() {
                return bad(&format!("outputs.overrides.\"{name}\""), "sets neither atol nor rtol");
            }
        }
        let factor_ok = |f: f64| f.is_finite() && f >= 1.0;
        if !factor_ok(self.layers.factor) {
            return bad("layers.factor", "must be a finite number >= 1");
        }
        if !non_negative(self.layers.slack) {
            return bad("layers.slack", "must be finite and >= 0");
        }
        for (i, o) in self.layers.overrides.iter().enumerate() {
            let which = format!("layers.override #{}", i + 1);
            let selectors = [o.tensor.is_some(), o.regex.is_some(), o.op_type.is_some()];
            if selectors.iter().filter(|s| **s).count() != 1 {
                return bad(&which, "must have exactly one of `tensor`, `regex`, `op_type`");
            }
            if o.factor.is_some_and(|f| !factor_ok(f)) {
                return bad(&which, "factor must be a finite number >= 1");
            }
            if !non_negative(o.slack) {
                return bad(&which, "slack must be finite and >= 0");
            }
            if o.factor.is_none() && o.slack.is_none() {
                return bad(&which, "sets neither factor nor slack");
            }
        }
        self.matchers().map(|_| ())
    }

    /// The compiled ignore list and layer overrides.
    pub fn matchers(&self) -> Result<Matchers> {
        let compile = |what: &str, r: &str| {
            Regex::new(r).map_err(|e| {
                let msg = e.to_string();
                Error::usage(format!(
                    "invalid check policy: {what} regex '{r}': {}",
                    msg.lines().last().unwrap_or("invalid").trim()
                ))
            })
        };
        let ignore_regex = self.ignore.regex.iter().map(|r| compile("ignore", r)).collect::<Result<Vec<_>>>()?;
        let mut overrides = Vec::with_capacity(self.layers.overrides.len());
        for o in &self.layers.overrides {
            let selector = match (&o.tensor, &o.regex, &o.op_type) {
                (Some(t), _, _) => Selector::Tensor(t.clone()),
                (_, Some(r), _) => Selector::Regex(compile("layers.override", r)?),
                (_, _, Some(op)) => Selector::OpType(op.clone()),
                _ => return Err(Error::usage("invalid check policy: layers.override without a selector")),
            };
            overrides.push((selector, o.factor, o.slack));
        }
        Ok(Matchers { policy: self.clone(), ignore_regex, overrides })
    }
}

enum Selector {
    Tensor(String),
    Regex(Regex),
    OpType(String),
}

impl Selector {
    fn matches(&self, tensor: &str, op_type: Option<&str>) -> bool {
        match self {
            Selector::Tensor(t) => t == tensor,
            Selector::Regex(r) => r.is_match(tensor),
            Selector::OpType(op) => op_type == Some(op.as_str()),
        }
    }
}

/// A policy with its regexes compiled.
pub struct Matchers {
    policy: Policy,
    ignore_regex: Vec<Regex>,
    overrides: Vec<(Selector, Option<f64>, Option<f64>)>,
}

impl Matchers {
    /// True when the layer rules skip this tensor.
    #[must_use]
    pub fn ignored(&self, tensor: &str, op_type: Option<&str>) -> bool {
        let ig = &self.policy.ignore;
        ig.tensors.iter().any(|t| t == tensor)
            || self.ignore_regex.iter().any(|r| r.is_match(tensor))
            || op_type.is_some_and(|op| ig.op_types.iter().any(|o| o == op))
    }

    /// `(factor, slack)` for this tensor.
    #[must_use]
    pub fn factor_slack(&self, tensor: &str, op_type: Option<&str>) -> (f64, f64) {
        let layers = &self.policy.layers;
        let (mut factor, mut slack) = (layers.factor, layers.slack());
        if let Some((_, f, s)) = self.overrides.iter().find(|(sel, _, _)| sel.matches(tensor, op_type)) {
            factor = f.unwrap_or(factor);
            slack = s.unwrap_or(slack);
        }
        (factor, slack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_policy_is_the_default() -> Result<()> {
        let p = Policy::from_toml("")?;
        assert_eq!(p, Policy::default());
        assert!(p.outputs.gate);
        assert_eq!(p.layers.metric, LayerMetric::MaxAbs);
        assert_eq!((p.layers.factor, p.layers.slack()), (2.0, 1e-3));
        Ok(())
    }

    #[test]
    fn every_section_parses() -> Result<()> {
        let p = Policy::from_toml(
            r#"
            [outputs]
            rule = "polygraphy"
            atol = 0.05
            gate = false
            [outputs.overrides."logits"]
            rtol = 0.2
            [layers]
            metric = "1-cosine"
            factor = 3
            new_overflow = false
            [[layers.override]]
            op_type = "Softmax"
            slack = 0.5
            [[layers.override]]
            regex = "^attn/"
            factor = 10
            [ignore]
            tensors = ["a"]
            regex = ["shape$"]
            op_types = ["Shape"]
            [changes]
            fail_on_removed = true
            "#,
        )?;
        assert_eq!(p.outputs.rule, Rule::Polygraphy);
        assert_eq!(p.outputs.overrides["logits"].rtol, Some(0.2));
        assert_eq!(p.layers.metric, LayerMetric::CosineDistance);
        assert_eq!(p.layers.slack(), 1e-4);
        assert!(!p.layers.new_overflow && p.changes.fail_on_removed && !p.changes.fail_on_added);
        let m = p.matchers()?;
        assert!(m.ignored("a", None) && m.ignored("x/shape", Some("Add")) && m.ignored("y", Some("Shape")));
        assert!(!m.ignored("b", Some("Add")));
        assert_eq!(m.factor_slack("s", Some("Softmax")), (3.0, 0.5));
        assert_eq!(m.factor_slack("attn/x", Some("Add")), (10.0, 1e-4));
        assert_eq!(m.factor_slack("z", None), (3.0, 1e-4));
        Ok(())
    }

    #[test]
    fn mistakes_are_one_line_errors() {
        for (text, says) in [
            ("[layers]\nfactr = 2", "unknown field `factr`"),
            ("[layers]\nmetric = \"rmse\"", "unknown variant `rmse`"),
            ("[layers]\nfactor = 0.5", "layers.factor"),
            ("[layers]\nslack = -1", "layers.slack"),
            ("[outputs]\natol = -1", "outputs.atol"),
            ("[ignore]\nregex = [\"(\"]", "ignore regex '('"),
            ("[[layers.override]]\ntensor = \"a\"\nop_type = \"B\"\nfactor = 2", "exactly one of"),
            ("[[layers.override]]\ntensor = \"a\"", "neither factor nor slack"),
            ("[outputs.overrides.x]", "neither atol nor rtol"),
            ("[bogus]", "unknown field `bogus`"),
        ] {
            let e = Policy::from_toml(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{text:?}: {e}");
        }
    }

    #[test]
    fn non_finite_candidates_are_infinite_errors() {
        let mut m = crate::check::test_metrics();
        m.max_abs = 0.5;
        m.mismatch_ratio = 0.25;
        m.cosine = 0.75;
        assert_eq!(LayerMetric::MaxAbs.of(&m), 0.5);
        assert_eq!(LayerMetric::MismatchRatio.of(&m), 0.25);
        assert_eq!(LayerMetric::CosineDistance.of(&m), 0.25);
        m.inf_candidate = 1;
        assert_eq!(LayerMetric::MaxAbs.of(&m), f64::INFINITY);
        m.inf_reference = 1;
        assert_eq!(LayerMetric::MaxAbs.of(&m), 0.5, "the reference's own infinities are no error");
        m.max_abs = f64::NAN;
        assert_eq!(LayerMetric::MaxAbs.of(&m), f64::INFINITY);
    }
}
