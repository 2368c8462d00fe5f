//! `tensor_map.json` (schema `trtlens.tensor_map/1`): which engine tensor holds each ONNX tensor
//! (or why none does), the engine's layers with the ONNX nodes each covers, and the nodes whose
//! engine precision differs from the plan.
//!
//! ```json
//! {"schema": "trtlens.tensor_map/1", "trt": {"flavour": "tensorrt-rtx", "version": "1.7.1.116"},
//!  "observe": "all", "precision_mode": "strict", "plan": "fp16; keep fp32: ln/square/Pow",
//!  "tensors": [{"onnx": "hidden", "engine": "hidden", "dtype": "float16", "reason": null}, ...],
//!  "layers": [{"name": "...", "type": "kgen", "onnx_nodes": ["proj/Add"],
//!              "inputs": [{"name": "x__fp16", "dtype": "float16"}], "outputs": [...]}],
//!  "precision_mismatches": [{"onnx_node": "ln/square/Pow", "plan": "fp32", "engine": "fp16"}]}
//! ```
//!
//! Tensors are listed in the model's topological order (the order of a run), then Constant outputs
//! and tensors inside control-flow bodies, which no engine exposes.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::layers::{EngineInfo, EngineLayer};
use super::{Flavour, Observe, PrecisionMode};
use crate::model::Model;
use crate::precision::{ConvertReport, KeepReason};

/// Schema tag of tensor maps written by this version.
pub const TENSOR_MAP_SCHEMA: &str = "trtlens.tensor_map/1";
/// File name of the tensor map in a build directory.
pub const TENSOR_MAP_FILE: &str = "tensor_map.json";

/// Which TensorRT built the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrtInfo {
    /// `tensorrt` or `tensorrt-rtx`.
    pub flavour: Flavour,
    /// Library version (`10.16.0.12`, `1.7.1.116`).
    pub version: String,
}

/// One ONNX tensor and where the engine holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedTensor {
    /// The ONNX tensor name (of the original model, as the reference names it).
    pub onnx: String,
    /// The engine tensor holding its value, `None` when it cannot be read back.
    pub engine: Option<String>,
    /// The engine tensor's dtype (trtlens names), when known.
    pub dtype: Option<String>,
    /// Why it cannot be read back (set exactly when `engine` is `None`).
    pub reason: Option<String>,
}

/// A node whose engine precision is not the plan's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecisionMismatch {
    /// ONNX node name.
    pub onnx_node: String,
    /// What the plan (after the Cast rewrite's own rules) gives it: `fp16` or `fp32`.
    pub plan: String,
    /// What the engine computes it in.
    pub engine: String,
}

/// `tensor_map.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorMap {
    /// [`TENSOR_MAP_SCHEMA`].
    pub schema: String,
    /// The TensorRT that built the engine.
    pub trt: TrtInfo,
    /// Observation mode.
    pub observe: Observe,
    /// Precision mode.
    #[serde(default)]
    pub precision_mode: PrecisionMode,
    /// The plan, as labelled on the command line (`None`: all FP16).
    pub plan: Option<String>,
    /// Every ONNX tensor, mapped or with the reason it is not.
    pub tensors: Vec<MappedTensor>,
    /// The engine's layers, in execution order.
    pub layers: Vec<EngineLayer>,
    /// Plan FP32 nodes computed in FP16 by the engine, and the reverse.
    pub precision_mismatches: Vec<PrecisionMismatch>,
}

/// A tensor of the parsed TensorRT network, as the build saw it.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkTensor {
    /// Name (ONNX names for what the parser imported; generated names for helper layers).
    pub name: String,
    /// trtlens dtype name.
    pub dtype: Option<String>,
    /// A shape tensor (computed on the host).
    pub shape_tensor: bool,
    /// Written by a Constant layer.
    pub constant: bool,
    /// A network input.
    pub input: bool,
    /// A network output (graph output, or marked by trtlens).
    pub output: bool,
}

/// What the build knows when it maps tensors.
#[derive(Debug)]
pub struct MapInputs<'a> {
    /// The original model (names as the reference has them).
    pub model: &'a Model,
    /// The Cast rewrite's account (where each tensor lives, which nodes are FP16).
    pub convert: &'a ConvertReport,
    /// True when the engine was built from the rewritten model (strict mode).
    pub rewritten: bool,
    /// The parsed network's tensors.
    pub network: &'a [NetworkTensor],
    /// The engine's layers and I/O tensors.
    pub engine: &'a EngineInfo,
    /// Observation mode.
    pub observe: Observe,
    /// Precision mode.
    pub precision_mode: PrecisionMode,
    /// TensorRT identity.
    pub trt: TrtInfo,
    /// Plan label.
    pub plan: Option<String>,
}

const REASON_SHAPE: &str = "shape tensor: computed on the host to size other tensors, not an engine output";
const REASON_CONSTANT_LAYER: &str = "constant: folded into the engine's weights";
const REASON_NOT_IN_NETWORK: &str =
    "not in the parsed network: the ONNX parser folded it away (constant folding, identity, shape arithmetic)";
const REASON_CONSTANT_NODE: &str = "output of a Constant node: model data, not computed";
const REASON_SUBGRAPH: &str = "inside an If/Loop/Scan body: TensorRT cannot expose tensors of control-flow bodies";
const REASON_OUTPUTS_ONLY: &str = "not marked: --observe outputs keeps the production fusion (use --observe all)";
const REASON_NOT_KEPT: &str = "marked, but the engine does not list it among its outputs";

/// Build the tensor map.
#[must_use]
pub fn build(inp: &MapInputs<'_>) -> TensorMap {
    let net: HashMap<&str, &NetworkTensor> = inp.network.iter().map(|t| (t.name.as_str(), t)).collect();
    let io_outputs: Option<Vec<&str>> = (!inp.engine.io.is_empty())
        .then(|| inp.engine.io.iter().filter(|t| t.mode == "output").map(|t| t.name.as_str()).collect());
    let in_layers =
        |name: &str| inp.engine.layers.iter().any(|l| l.outputs.iter().chain(&l.inputs).any(|t| t.name == name));
    let home = |onnx: &str| -> String {
        if inp.rewritten {
            inp.convert.tensors.get(onnx).map_or_else(|| onnx.to_string(), |h| h.name.clone())
        } else {
            onnx.to_string()
        }
    };
    let unmapped = |onnx: &str, reason: String| MappedTensor {
        onnx: onnx.into(),
        engine: None,
        dtype: None,
        reason: Some(reason),
    };
    let mut tensors = Vec::new();
    for onnx in inp.model.graph.captured() {
        let h = home(onnx);
        let Some(t) = net.get(h.as_str()) else {
            tensors.push(unmapped(onnx, REASON_NOT_IN_NETWORK.into()));
            continue;
        };
        if t.shape_tensor {
            tensors.push(unmapped(onnx, REASON_SHAPE.into()));
            continue;
        }
        if t.constant {
            tensors.push(unmapped(onnx, REASON_CONSTANT_LAYER.into()));
            continue;
        }
        // A graph output computed in FP16 is held by `NAME__fp16` (its home) and cast back to the FP32
        // graph output `NAME`: the same values. In `outputs` mode only `NAME` is an engine output.
        let kept = |name: &str| {
            net.get(name).is_some_and(|t| t.output) && io_outputs.as_ref().is_none_or(|io| io.contains(&name))
        };
        let read_from = if kept(&h) { Some(h.clone()) } else { kept(onnx).then(|| onnx.to_string()) };
        let observable = match (inp.observe, read_from) {
            (_, Some(e)) => Ok(e),
            (Observe::All, None) => Err(REASON_NOT_KEPT.to_string()),
            (Observe::Outputs, None) => Err(REASON_OUTPUTS_ONLY.to_string()),
            (Observe::Debug, None) if in_layers(&h) => Ok(h.clone()),
            (Observe::Debug, None) => {
                let node = inp.model.graph.producer(onnx).map(crate::model::graph::Node::display_name);
                let layer = node.as_deref().and_then(|n| inp.engine.layers_of_node(n).next());
                Err(match layer {
                    Some(l) => format!("fused inside engine layer {}: not a debug tensor (use --observe all)", l.name),
                    None => "fused: not a debug tensor (use --observe all)".to_string(),
                })
            }
        };
        match observable {
            Ok(e) => tensors.push(MappedTensor {
                onnx: onnx.to_string(),
                dtype: inp
                    .engine
                    .dtype_of(&e)
                    .map(str::to_string)
                    .or_else(|| net.get(e.as_str()).and_then(|t| t.dtype.clone())),
                engine: Some(e),
                reason: None,
            }),
            Err(reason) => tensors.push(unmapped(onnx, reason)),
        }
    }
    let constants = inp.model.graph.nodes.iter().filter(|n| n.is_constant());
    for name in constants.flat_map(|n| n.outputs.iter().filter(|o| !o.is_empty())) {
        tensors.push(unmapped(name, REASON_CONSTANT_NODE.into()));
    }
    for s in &inp.model.graph.subgraph_tensors {
        tensors.push(unmapped(&s.name, REASON_SUBGRAPH.into()));
    }
    TensorMap {
        schema: TENSOR_MAP_SCHEMA.into(),
        trt: inp.trt.clone(),
        observe: inp.observe,
        precision_mode: inp.precision_mode,
        plan: inp.plan.clone(),
        precision_mismatches: precision_mismatches(inp.model, inp.convert, inp.rewritten, inp.engine),
        tensors,
        layers: inp.engine.layers.clone(),
    }
}

/// `fp16`/`fp32` for a float dtype name, `None` otherwise.
fn precision_of(dtype: &str) -> Option<&'static str> {
    match dtype {
        "float16" => Some("fp16"),
        "float32" => Some("fp32"),
        "bfloat16" => Some("bf16"),
        _ => None,
    }
}

/// The precision the engine computes node `node` in: the dtype of its float outputs where the engine
/// shows them, else the float outputs of an engine layer computing that node alone (`None` when
/// the node is fused away and nothing shows its type).
fn engine_precision(
    node: &crate::model::graph::Node,
    convert: &ConvertReport,
    rewritten: bool,
    engine: &EngineInfo,
) -> Option<&'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    for o in node.outputs.iter().filter(|o| !o.is_empty()) {
        let h = if rewritten { convert.tensors.get(o).map_or(o.as_str(), |h| h.name.as_str()) } else { o.as_str() };
        if let Some(p) = engine.dtype_of(h).and_then(precision_of) {
            seen.push(p);
        }
    }
    if seen.is_empty() {
        // Not materialized: only a layer computing this node alone says its precision (a fused
        // layer's outputs say nothing about the nodes inside it).
        let name = node.display_name();
        for l in engine.layers_of_node(&name).filter(|l| l.onnx_nodes.len() == 1) {
            seen.extend(l.outputs.iter().filter_map(|t| t.dtype.as_deref().and_then(precision_of)));
        }
    }
    seen.sort_unstable();
    seen.dedup();
    (seen.len() == 1).then(|| seen[0])
}

/// Nodes the plan (as the Cast rewrite resolved it) puts in FP16 that the engine computes in FP32,
/// and the reverse. Nodes whose FP32 is not a precision choice (integer, shape, control flow,
/// attribute-typed) are not checked.
#[must_use]
pub fn precision_mismatches(
    model: &Model,
    convert: &ConvertReport,
    rewritten: bool,
    engine: &EngineInfo,
) -> Vec<PrecisionMismatch> {
    let mut expected: BTreeMap<&str, &str> = BTreeMap::new();
    for n in &convert.nodes_fp16 {
        expected.insert(n, "fp16");
    }
    for k in &convert.nodes_fp32 {
        if matches!(k.reason, KeepReason::Plan | KeepReason::OpRejectsFloat16) {
            expected.insert(&k.node, "fp32");
        }
    }
    let mut out = Vec::new();
    for node in &model.graph.nodes {
        let name = node.display_name();
        let Some(plan) = expected.get(name.as_str()) else { continue };
        if let Some(eng) = engine_precision(node, convert, rewritten, engine)
            && eng != *plan
        {
            out.push(PrecisionMismatch { onnx_node: name.clone(), plan: (*plan).to_string(), engine: eng.to_string() });
        }
    }
    out
}

impl TensorMap {
    /// Tensors the engine exposes.
    #[must_use]
    pub fn mapped(&self) -> usize {
        self.tensors.iter().filter(|t| t.engine.is_some()).count()
    }

    /// The entry of ONNX tensor `onnx`.
    #[must_use]
    pub fn tensor(&self, onnx: &str) -> Option<&MappedTensor> {
        self.tensors.iter().find(|t| t.onnx == onnx)
    }

    /// The engine layer that writes ONNX tensor `onnx` (through its engine tensor), or else the layer
    /// covering the node that produces it in the model.
    #[must_use]
    pub fn layer_of(&self, onnx: &str, producer_node: Option<&str>) -> Option<&EngineLayer> {
        let engine = self.tensor(onnx).and_then(|t| t.engine.as_deref());
        engine
            .and_then(|e| self.layers.iter().find(|l| l.outputs.iter().any(|o| o.name == e)))
            .or_else(|| producer_node.and_then(|n| self.layers.iter().find(|l| l.onnx_nodes.iter().any(|x| x == n))))
    }

    /// Serialize as pretty JSON.
    pub fn to_json(&self) -> crate::error::Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| crate::error::Error::usage(format!("cannot serialize the tensor map: {e}")))
    }

    /// The mapping as a table (ONNX tensor, engine tensor, dtype, engine layer or reason), then the
    /// precision mismatches, ending with `mapped K/N tensors`.
    #[must_use]
    pub fn render(&self, width: usize) -> String {
        let mut out = String::new();
        let col = self.tensors.iter().map(|t| t.onnx.chars().count()).max().unwrap_or(4).clamp(4, 40);
        let ecol = self
            .tensors
            .iter()
            .filter_map(|t| t.engine.as_ref().map(|e| e.chars().count()))
            .max()
            .unwrap_or(6)
            .clamp(6, 32);
        let _ = writeln!(out, "{:<col$}  {:<ecol$}  {:<8}  layer / reason", "onnx", "engine", "dtype");
        for t in &self.tensors {
            let (engine, dtype, rest) = match &t.engine {
                Some(e) => {
                    let layer = self.layers.iter().find(|l| l.outputs.iter().any(|o| &o.name == e));
                    (e.as_str(), t.dtype.as_deref().unwrap_or("?"), layer.map_or_else(String::new, |l| l.name.clone()))
                }
                None => ("-", "", t.reason.clone().unwrap_or_default()),
            };
            let line = format!("{:<col$}  {:<ecol$}  {:<8}  {rest}", clip(&t.onnx, col), clip(engine, ecol), dtype);
            let _ = writeln!(out, "{}", clip(&line, width.max(40)));
        }
        if !self.precision_mismatches.is_empty() {
            let _ = writeln!(out, "precision mismatches (plan vs engine):");
            for m in &self.precision_mismatches {
                let _ = writeln!(out, "  {}: plan {}, engine {}", m.onnx_node, m.plan, m.engine);
            }
        }
        let _ = writeln!(out, "mapped {}/{} tensors", self.mapped(), self.tensors.len());
        out
    }
}

/// `s` cut to `n` characters (with `…` when cut).
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
    c.push('…');
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precision::{Plan, Precision};
    use crate::trt::layers::{EngineLayer, IoTensor, LayerTensor};

    fn model(name: &str) -> Model {
        let s = crate::samples::find(name).expect("sample exists");
        let bytes = prost::Message::encode_to_vec(&(s.build)());
        Model::from_bytes(std::path::Path::new("sample.onnx"), &bytes).expect("sample loads")
    }

    fn net(name: &str, dtype: &str) -> NetworkTensor {
        NetworkTensor {
            name: name.into(),
            dtype: Some(dtype.into()),
            shape_tensor: false,
            constant: false,
            input: false,
            output: true,
        }
    }

    /// An engine that marked every home, in one fused layer covering every node.
    fn setup(m: &Model, plan: &Plan) -> (ConvertReport, Vec<NetworkTensor>, EngineInfo) {
        let report = crate::precision::convert(m, plan).expect("converts").report;
        let homes: Vec<(String, String)> = m
            .graph
            .captured()
            .into_iter()
            .map(|t| {
                let h = &report.tensors[t];
                (h.name.clone(), if h.is_fp16() { "float16".to_string() } else { "float32".to_string() })
            })
            .collect();
        let network: Vec<NetworkTensor> = homes.iter().map(|(n, d)| net(n, d)).collect();
        let layer = EngineLayer {
            name: "fused".into(),
            layer_type: "kgen".into(),
            onnx_nodes: m.graph.nodes.iter().map(crate::model::graph::Node::display_name).collect(),
            inputs: vec![],
            outputs: homes.iter().map(|(n, d)| LayerTensor { name: n.clone(), dtype: Some(d.clone()) }).collect(),
        };
        let io = homes
            .iter()
            .map(|(n, d)| IoTensor { name: n.clone(), mode: "output".into(), dtype: Some(d.clone()) })
            .collect();
        (report, network, EngineInfo { layers: vec![layer], io })
    }

    fn inputs<'a>(
        m: &'a Model,
        report: &'a ConvertReport,
        network: &'a [NetworkTensor],
        engine: &'a EngineInfo,
        observe: Observe,
    ) -> MapInputs<'a> {
        MapInputs {
            model: m,
            convert: report,
            rewritten: true,
            network,
            engine,
            observe,
            precision_mode: PrecisionMode::Strict,
            trt: TrtInfo { flavour: Flavour::TensorrtRtx, version: "1.7.1.116".into() },
            plan: Some("fp16".into()),
        }
    }

    #[test]
    fn every_tensor_is_mapped_or_has_a_reason() {
        let m = model("layernorm_overflow");
        let (report, mut network, engine) = setup(&m, &Plan::uniform(Precision::Fp16));
        let captured = m.graph.captured();
        // One tensor folded away by the parser, one shape tensor.
        let folded = captured[1].to_string();
        let shape = captured[2].to_string();
        let home = |t: &str| report.tensors[t].name.clone();
        network.retain(|t| t.name != home(&folded));
        if let Some(t) = network.iter_mut().find(|t| t.name == home(&shape)) {
            t.shape_tensor = true;
        }
        let map = build(&inputs(&m, &report, &network, &engine, Observe::All));
        assert_eq!(map.tensors.len(), captured.len() + crate::run::excluded_list(&m, &[], true).len());
        for t in &map.tensors {
            assert!(t.engine.is_some() != t.reason.is_some(), "{t:?}");
        }
        assert_eq!(map.mapped(), captured.len() - 2);
        assert!(map.tensor(&folded).and_then(|t| t.reason.as_deref()).is_some_and(|r| r.contains("folded")));
        assert!(map.tensor(&shape).and_then(|t| t.reason.as_deref()).is_some_and(|r| r.contains("shape tensor")));
        // The graph output is read from its FP16 home.
        let out = &m.graph.outputs[0];
        assert_eq!(map.tensor(out).and_then(|t| t.engine.clone()), Some(home(out)));
        assert!(map.precision_mismatches.is_empty());
        assert!(map.render(100).ends_with(&format!("mapped {}/{} tensors\n", map.mapped(), map.tensors.len())));
        let json: TensorMap = serde_json::from_str(&map.to_json().expect("json")).expect("reads back");
        assert_eq!(json, map);
    }

    #[test]
    fn outputs_mode_maps_graph_outputs_only() {
        let m = model("mlp_overflow");
        let (report, mut network, engine) = setup(&m, &Plan::uniform(Precision::Fp16));
        let outputs: Vec<String> = m.graph.outputs.iter().map(|o| report.tensors[o].name.clone()).collect();
        for t in &mut network {
            t.output = outputs.contains(&t.name);
        }
        let map = build(&inputs(&m, &report, &network, &engine, Observe::Outputs));
        assert_eq!(map.mapped(), m.graph.outputs.len());
        assert!(
            map.tensors.iter().filter(|t| t.engine.is_none()).all(|t| t
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("--observe outputs") || r.contains("Constant")))
        );
    }

    #[test]
    fn a_node_computed_in_the_other_precision_is_a_mismatch() {
        let m = model("layernorm_overflow");
        let (report, network, mut engine) = setup(&m, &Plan::uniform(Precision::Fp16));
        // The engine computes ln/square/Pow in FP32 although the plan says FP16...
        let pow = m.graph.nodes.iter().find(|n| n.display_name() == "ln/square/Pow").expect("node");
        let out = report.tensors[&pow.outputs[0]].name.clone();
        for t in &mut engine.layers[0].outputs {
            if t.name == out {
                t.dtype = Some("float32".into());
            }
        }
        engine.io.retain(|t| t.name != out);
        let map = build(&inputs(&m, &report, &network, &engine, Observe::All));
        assert_eq!(
            map.precision_mismatches,
            [PrecisionMismatch { onnx_node: "ln/square/Pow".into(), plan: "fp16".into(), engine: "fp32".into() }]
        );
        assert!(map.render(200).contains("ln/square/Pow: plan fp16, engine fp32"));
    }
}
