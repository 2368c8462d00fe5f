//! The diff report: the public JSON interface written by `compare --report` and `--json`
//! (schema `trtlens.report/1.1`, which only adds optional keys to `trtlens.report/1`; documented in `docs/report-schema.md`, JSON Schema in
//! `docs/report-schema.json`). Non-finite numbers are written as the strings `"inf"`, `"-inf"`,
//! `"nan"` so every standard JSON parser accepts the file.

use serde::{Deserialize, Serialize};

use super::metrics::{Metrics, Rule, json_f64};
use crate::inputs::InputSource;
use crate::store::ToolInfo;

/// Schema tag of reports written by this version.
pub const REPORT_SCHEMA: &str = "trtlens.report/1.1";

/// Schema tags this version reads (`1.1` only adds optional keys to `1`).
pub const REPORT_SCHEMAS_READ: &[&str] = &["trtlens.report/1", "trtlens.report/1.1"];

/// The model compared, when known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportModel {
    /// Path as given.
    pub path: Option<String>,
    /// sha256 of the model file.
    pub sha256: Option<String>,
    /// Default-domain opset.
    pub opset: Option<i64>,
    /// Nodes in the main graph.
    pub node_count: Option<usize>,
}

/// One side of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideReport {
    /// What was asked for (`tract`, `saved:PATH`, ...).
    pub spec: String,
    /// Runner that produced the tensors.
    pub runner: String,
    /// Its version.
    pub version: String,
    /// The run directory or file the tensors were read from (None for a temporary run).
    pub path: Option<String>,
    /// Precision plan applied, if any.
    pub precision_plan: Option<String>,
    /// For a side that converted the model (`cpu-fp16`): the out-of-range policy and every
    /// initializer/`Constant` value FP16 cannot hold, with what the policy did to it (`null`
    /// otherwise, and absent in reports written before it existed).
    #[serde(default)]
    pub conversion: Option<crate::precision::RangeConversion>,
    /// The whole precision plan a plan-taking runner side ran with (its TOML text in JSON, as in
    /// `--plan` files), predicted FP32 islands included; absent otherwise and in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::precision::Plan>,
    /// Backend settings of the run that change its numbers (TF32, graph optimization, provider,
    /// device); absent for runners without any and in reports written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<crate::runner::RunnerSettings>,
}

/// A per-tensor tolerance override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToleranceOverride {
    /// Exact tensor name.
    pub tensor: String,
    /// Absolute tolerance for it, if overridden.
    pub atol: Option<f64>,
    /// Relative tolerance for it, if overridden.
    pub rtol: Option<f64>,
}

/// Tolerances used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToleranceReport {
    /// `allclose` or `polygraphy`.
    pub rule: Rule,
    /// Default absolute tolerance.
    pub atol: f64,
    /// Default relative tolerance.
    pub rtol: f64,
    /// Equal infinities on both sides count as a match.
    pub inf_equal: bool,
    /// Per-tensor overrides.
    pub overrides: Vec<ToleranceOverride>,
}

/// `pass`, `fail` or `skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Within tolerance.
    Pass,
    /// Out of tolerance (or NaN).
    Fail,
    /// Not compared; see `reason`.
    Skipped,
}

/// Metrics of one iteration (per-iteration detail when there are several).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationMetrics {
    /// Iteration number.
    pub iteration: usize,
    /// Status in that iteration.
    pub status: Status,
    /// Why it was skipped, if it was.
    pub reason: Option<String>,
    /// Metrics (None when skipped).
    pub metrics: Option<Metrics>,
}

/// One compared tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorReport {
    /// Exact ONNX tensor name (same on both sides).
    pub name: String,
    /// Producing node.
    pub node: Option<String>,
    /// Producing node's op type.
    pub op_type: Option<String>,
    /// Position in topological order.
    pub topo_index: Option<usize>,
    /// Reference shape.
    pub shape: Vec<usize>,
    /// Candidate shape when it differs from the reference.
    pub shape_candidate: Option<Vec<usize>>,
    /// Reference dtype.
    pub dtype_reference: String,
    /// Candidate dtype.
    pub dtype_candidate: String,
    /// True for graph outputs.
    pub is_output: bool,
    /// True for integer/bool tensors, compared exactly.
    pub exact: bool,
    /// Worst status over iterations.
    pub status: Status,
    /// Why it was skipped.
    pub reason: Option<String>,
    /// Effective absolute tolerance.
    pub atol: f64,
    /// Effective relative tolerance.
    pub rtol: f64,
    /// Metrics of the worst iteration.
    pub metrics: Option<Metrics>,
    /// Which iteration `metrics` belongs to.
    pub worst_iteration: usize,
    /// Every iteration's metrics, when there is more than one.
    pub iterations: Option<Vec<IterationMetrics>>,
    /// Short markers: `OVF` (reference exceeds FP16 range), `UNF` (reference below the smallest FP16
    /// subnormal), `SUB` (reference in the FP16 subnormal range), `NaN`/`INF` (in the candidate),
    /// `FIRST` (first divergence), `FIRST_NONFINITE`.
    pub flags: Vec<String>,
    /// TensorRT candidates: the engine tensor holding this tensor, the engine layer that produced it
    /// and the ONNX nodes that layer computes (fused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineRef>,
}

/// Where a TensorRT engine computes a tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineRef {
    /// The engine tensor read back (the ONNX name, or `NAME__fp16` for FP16 graph outputs).
    pub tensor: Option<String>,
    /// The engine layer that writes it.
    pub layer: Option<String>,
    /// Its type (`kgen`, `gemm`, `CaskConvolution`, ...).
    pub layer_type: Option<String>,
    /// The ONNX nodes the layer computes.
    pub onnx_nodes: Vec<String>,
}

/// A TensorRT candidate's engine, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrtReport {
    /// `tensorrt` or `tensorrt-rtx`.
    pub flavour: String,
    /// Library version.
    pub version: String,
    /// Observation mode the engine was built with.
    pub observe: String,
    /// Engine cache key.
    pub engine_key: String,
    /// Tensors the engine exposes / ONNX tensors.
    pub mapped: usize,
    /// ONNX tensors in the tensor map.
    pub tensors: usize,
    /// Plan FP32 nodes the engine computes in FP16, and the reverse.
    pub precision_mismatches: Vec<crate::trt::tensor_map::PrecisionMismatch>,
    /// The production engine's (`--observe outputs`) graph outputs against the reference, when it ran.
    pub production: Option<ProductionReport>,
}

/// The production engine's graph-output verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductionReport {
    /// `pass` or `fail`.
    pub verdict: String,
    /// Its graph outputs with their verdicts.
    pub outputs: Vec<OutputReport>,
    /// True when it differs from the report's verdict (marking tensors changed the fusion's numbers).
    pub differs: bool,
}

/// A graph output and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputReport {
    /// Output name.
    pub name: String,
    /// Its status (`skipped` also when unmatched).
    pub status: Status,
    /// Largest absolute error (NaN when not compared).
    #[serde(with = "json_f64")]
    pub max_abs: f64,
}

/// Tensors present on one side only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Unmatched {
    /// Only in the reference.
    pub reference: Vec<String>,
    /// Only in the candidate.
    pub candidate: Vec<String>,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Tensors compared (float and exact).
    pub compared: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Integer/bool tensors among the compared.
    pub exact: usize,
    /// Tensors with predicted FP16 overflow in the reference.
    pub fp16_overflow_predicted: usize,
    /// Tensors with predicted FP16 underflow in the reference.
    pub fp16_underflow_predicted: usize,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_SCHEMA`].
    pub schema: String,
    /// Tool name and version.
    pub tool: ToolInfo,
    /// The model.
    pub model: ReportModel,
    /// Reference side.
    pub reference: SideReport,
    /// Candidate side.
    pub candidate: SideReport,
    /// Tolerances.
    pub tolerance: ToleranceReport,
    /// Inputs used.
    pub inputs: InputSource,
    /// Every paired tensor, in topological order.
    pub tensors: Vec<TensorReport>,
    /// First tensor (topological order) that fails.
    pub first_divergence: Option<String>,
    /// First tensor whose candidate holds NaN or Inf.
    pub first_nonfinite: Option<String>,
    /// Tensors on one side only (never paired by guesswork).
    pub unmatched: Unmatched,
    /// Graph outputs with their verdicts.
    pub outputs: Vec<OutputReport>,
    /// Counts.
    pub summary: Summary,
    /// `pass` when every graph output is within tolerance, else `fail`.
    pub verdict: String,
    /// Notes worth knowing (e.g. outputs unknown without a model).
    pub notes: Vec<String>,
    /// `If` nodes the runs replaced by the branch their inputs select (control-flow
    /// specialization), in the order applied; absent when none was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub specialized: Vec<crate::model::specialize::Specialized>,
    /// TensorRT candidates: the engine, the precision mismatches, the production engine's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trt: Option<TrtReport>,
    /// The nodes that introduced the most error (their own error on the candidate's inputs, not
    /// the error they inherit), worst first; absent when introduced error was not computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introducers: Vec<super::introduced::Introducer>,
}

impl Report {
    /// True for a passing verdict.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }

    /// Serialize as pretty JSON.
    pub fn to_json(&self) -> crate::error::Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| crate::error::Error::usage(format!("cannot serialize report: {e}")))
    }

    /// The tensor entry by name.
    #[must_use]
    pub fn tensor(&self, name: &str) -> Option<&TensorReport> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
