//! The embedded reference runner: tract-onnx, nothing to install.
//!
//! * **Shapes.** Plans are built per input signature (dtypes and shapes) and cached, so iterations
//!   with the same shapes reuse a plan and iterations of another shape get their own. Before tract
//!   analyses the model, every graph input is pinned to the concrete dtype and shape of the value fed
//!   to it, and the symbolic dimensions (`dim_param`) declared anywhere else (graph outputs,
//!   `value_info`, control-flow bodies) are dropped: an exporter's `batch` or
//!   `floor(height/2 - 1/2) + 1` is a name, not a fact tract can unify with the concrete sizes
//!   (tract would fail with "Impossible to unify Sym(batch) with Val(1)"). Fixed sizes and element
//!   types stay. The rewrite uses this project's protobuf types ([`crate::model::proto`]); tract only
//!   decodes the result.
//! * **Captures.** Every tensor to capture is resolved to its tract outlet by its exact ONNX tensor
//!   name (the name → outlet table tract's ONNX loader builds) and declared a model output before
//!   tract types and optimises the graph, so intermediates survive optimisation. Names are never
//!   looked up through tract's `select_outputs_by_name`, which reads `X:0` as "output 0 of node X": in
//!   a tf2onnx model (tensor `X:0` written by node `X`) after the FP16 emulation rewrite, that is a
//!   different tensor.
//! * **Errors.** When tract cannot prepare or run the model, the one-line message names the ONNX
//!   node and op tract failed on, the shapes of its inputs as tract inferred them, tract's reason, and
//!   what to try; the details (`-v`) hold tract's whole error chain and the feed.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use tract_onnx::prelude::{
    Datum, DatumType, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable, IntoTValue, OutletId,
    TValue, TVec, Tensor as TTensor, TractError, TractResult, TypedModel, TypedNode, TypedRunnableModel, tvec,
};
use tract_onnx::tract_core::ops::OpState;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::plan::EvalContext;
use tract_onnx::tract_hir::infer::Factoid as _;

use super::{NotCaptured, RunOutput, Runner, StreamedRun, TensorSink, TensorSpec, Tensors};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::model::graph::Dim;
use crate::model::proto::{
    GraphProto, ModelProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};
use crate::tensor::{DType, Tensor, shape_string};

/// The tract version this binary was built with.
pub const VERSION: &str = env!("TRTLENS_TRACT_VERSION");

/// The dtypes and shapes of one iteration's inputs, in the model's input order.
type Signature = Vec<(DType, Vec<usize>)>;

/// A plan for one input signature.
///
/// Every requested tensor is declared a model output before tract optimises the graph (so it
/// survives optimisation), but the plan itself only keeps the captured tensors nothing reads: each
/// captured value is handed over as soon as its node has run (see [`TractRunner::run_streamed`]),
/// and tract frees it after its last reader, so a run holds the live activations, not every tensor.
struct Prepared {
    plan: Arc<TypedRunnableModel>,
    /// Input names in the order the plan takes them.
    feed_order: Vec<String>,
    /// For each requested tensor: the outlet of the optimised model it is read from, or why it is
    /// not captured.
    slots: Vec<std::result::Result<OutletId, String>>,
    /// Node of the optimised model → (output slot, index of the requested tensor) read from it.
    by_node: HashMap<usize, Vec<(usize, usize)>>,
    /// Requested tensors tract folded into constants (computed by no node of the plan).
    constants: Vec<(usize, Arc<TTensor>)>,
    /// Name, dtype and shape of each captured tensor, in request order, when tract knows every
    /// shape before running (always, unless a shape depends on the data).
    specs: Option<Vec<TensorSpec>>,
    /// What tract inferred for every ONNX tensor (`1x3x64x64 float32`), for error messages.
    facts: HashMap<String, String>,
}

/// An ONNX node as tract names it, for mapping tract's messages back to the model.
#[derive(Debug, Clone)]
struct NodeLabel {
    /// The node name tract uses (the ONNX name, or the first output's name when that is empty).
    tract_name: String,
    /// The name shown to users ([`crate::model::graph::Node::display_name`]).
    display: String,
    op: String,
    inputs: Vec<String>,
}

/// tract-onnx runner.
pub struct TractRunner {
    /// Runner name in messages (`tract`, or `cpu-fp16` when it runs the emulated model).
    name: &'static str,
    /// What to suggest besides `--shape` when tract cannot run a node (`{node}` stands for its name).
    fallback: &'static str,
    /// The model with symbolic dims outside the main graph's inputs dropped; inputs are pinned per
    /// signature before each build.
    proto: ModelProto,
    /// The directory external data is resolved against.
    base_dir: PathBuf,
    inputs: Vec<String>,
    /// Data inputs with a dimension that is not fixed (`--shape` applies to them).
    dynamic_inputs: Vec<String>,
    nodes: Vec<NodeLabel>,
    capture: Vec<String>,
    /// The name each requested tensor is reported under (the same as `capture` unless a wrapping
    /// runner renamed the model's tensors, as `cpu-fp16` does).
    report_as: Vec<String>,
    plans: HashMap<Signature, Prepared>,
    /// Nodes rewritten for ONNX Runtime's NaN/infinity semantics.
    ieee_fixes: Vec<String>,
}

impl TractRunner {
    /// Prepare a runner for `model` capturing `capture` (ONNX tensor names), with ONNX Runtime's
    /// NaN and infinity semantics ([`super::ieee`]).
    pub fn new(model: &Model, capture: &[String]) -> Result<TractRunner> {
        Ok(Self::named(model, capture, "tract", "--runner onnxruntime"))
    }

    /// tract's own NaN and infinity semantics, without the [`super::ieee`] rewrite: only for the
    /// tests that show what the rewrite changes.
    #[doc(hidden)]
    #[must_use]
    pub fn without_ieee_fixes(model: &Model, capture: &[String]) -> TractRunner {
        Self::named_with(model, capture, "tract", "--runner onnxruntime", false)
    }

    /// The nodes the NaN/infinity rewrite ([`super::ieee`]) replaced before tract saw the model.
    #[must_use]
    pub fn ieee_fixes(&self) -> &[String] {
        &self.ieee_fixes
    }

    /// A runner that reports errors as `name` and suggests `fallback` (besides `--shape`; `{node}`
    /// stands for the failing node's name) when tract cannot run a node; `cpu-fp16` runs its emulated
    /// model through this.
    pub(crate) fn named(model: &Model, capture: &[String], name: &'static str, fallback: &'static str) -> TractRunner {
        Self::named_with(model, capture, name, fallback, true)
    }

    /// [`TractRunner::named`], with or without the NaN/infinity rewrite.
    pub(crate) fn named_with(
        model: &Model,
        capture: &[String],
        name: &'static str,
        fallback: &'static str,
        ieee: bool,
    ) -> TractRunner {
        let mut proto = model.proto.clone();
        let ieee_fixes = if ieee {
            let opset = model.opset().unwrap_or(0);
            let types = crate::precision::infer_types(model.graph_proto(), &model.graph, opset);
            super::ieee::rewrite(&mut proto, &types, opset)
        } else {
            Vec::new()
        };
        if let Some(g) = proto.graph.as_mut() {
            relax_graph(g, true);
        }
        let dynamic_inputs = model
            .graph
            .inputs
            .iter()
            .filter(|i| {
                model
                    .graph
                    .tensor(i)
                    .and_then(|t| t.ty.shape.as_ref())
                    .is_none_or(|dims| dims.iter().any(|d| !matches!(d, Dim::Fixed(v) if *v >= 0)))
            })
            .cloned()
            .collect();
        let nodes = model
            .graph
            .nodes
            .iter()
            .map(|n| NodeLabel {
                tract_name: if n.name.is_empty() {
                    n.outputs.first().cloned().unwrap_or_default()
                } else {
                    n.name.clone()
                },
                display: n.display_name(),
                op: n.op_type.clone(),
                inputs: n.inputs.iter().filter(|i| !i.is_empty()).cloned().collect(),
            })
            .collect();
        TractRunner {
            name,
            fallback,
            proto,
            base_dir: model.base_dir(),
            inputs: model.graph.inputs.clone(),
            dynamic_inputs,
            nodes,
            capture: capture.to_vec(),
            report_as: capture.to_vec(),
            plans: HashMap::new(),
            ieee_fixes,
        }
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::runner(self.name, msg)
    }

    /// Report the requested tensors under other names (one per requested tensor, in order): a
    /// runner that executes a rewritten model gives back its tensors under the original names.
    pub(crate) fn report_as(&mut self, names: Vec<String>) {
        debug_assert_eq!(names.len(), self.capture.len());
        if names.len() == self.capture.len() {
            self.report_as = names;
        }
    }

    /// Pin the inputs to `inputs`, hand the model to tract and build a plan capturing every
    /// requested tensor.
    fn build(&mut self, inputs: &Tensors) -> Result<Prepared> {
        for (name, t) in inputs {
            if t.dtype() == DType::Bfloat16 && self.inputs.contains(name) {
                return Err(self.err(format!("input '{name}' is bfloat16, which tract does not support")));
            }
        }
        if let Some(g) = self.proto.graph.as_mut() {
            pin_inputs(g, inputs);
        }
        let bytes = self.proto.encode_to_vec();
        let dir = self.base_dir.to_str().ok_or_else(|| {
            self.err(format!("the model directory {} is not valid UTF-8, which tract needs", self.base_dir.display()))
        })?;
        let onnx = tract_onnx::onnx();
        let parsed = onnx
            .proto_model_for_read(&mut bytes.as_slice())
            .and_then(|pb| onnx.parse(&pb, Some(dir)))
            .map_err(|e| self.failure(&e, None, inputs))?;
        let mut m = parsed.model;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(
                self.err(format!("the model reads tensors nothing defines: {}", parsed.unresolved_inputs.join(", ")))
            );
        }
        let input_outlets = m.input_outlets().map_err(|e| self.failure(&e, None, inputs))?.to_vec();
        let mut feed_order = Vec::with_capacity(input_outlets.len());
        for (ix, outlet) in input_outlets.iter().enumerate() {
            let name = m.node(outlet.node).name.clone();
            let t = super::find(inputs, &name).ok_or_else(|| self.err(format!("no value for input '{name}'")))?;
            m.set_input_fact(ix, InferenceFact::dt_shape(datum_type(t.dtype()), t.shape()))
                .map_err(|e| self.failure(&e, None, inputs))?;
            feed_order.push(name);
        }
        // Every requested tensor by its exact ONNX name; each outlet once.
        let mut outputs: Vec<OutletId> = Vec::new();
        let mut position: HashMap<OutletId, usize> = HashMap::new();
        let mut slots = Vec::with_capacity(self.capture.len());
        for name in &self.capture {
            slots.push(match parsed.outlets_by_name.get(name) {
                Some(o) => Ok(*position.entry(*o).or_insert_with(|| {
                    outputs.push(*o);
                    outputs.len() - 1
                })),
                None => Err("not a tensor of the main graph".to_string()),
            });
        }
        if !outputs.is_empty() {
            m.select_output_outlets(&outputs).map_err(|e| self.failure(&e, None, inputs))?;
        }
        if let Err(e) = m.analyse(false) {
            return Err(self.failure(&e, Some(&facts_by_name(&m, &parsed.outlets_by_name)), inputs));
        }
        let facts = facts_by_name(&m, &parsed.outlets_by_name);
        let mut typed: TypedModel = m.into_optimized().map_err(|e| self.failure(&e, Some(&facts), inputs))?;
        // The requested outlets of the optimised model, in the order they were selected.
        let typed_outputs = typed.output_outlets().map_err(|e| self.failure(&e, Some(&facts), inputs))?.to_vec();
        let slots: Vec<std::result::Result<OutletId, String>> = slots
            .into_iter()
            .map(|s| {
                let o = *typed_outputs.get(s?).ok_or_else(|| "tract lost it while optimising".to_string())?;
                let fact = typed.outlet_fact(o).map_err(|e| e.to_string())?;
                storable(fact.datum_type).map(|_| o)
            })
            .collect();
        let mut by_node: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        let mut constants = Vec::new();
        let mut specs = Some(Vec::with_capacity(slots.len()));
        for (ix, slot) in slots.iter().enumerate() {
            let Ok(o) = slot else { continue };
            let node = typed.node(o.node);
            match node.op_as::<Const>() {
                Some(k) => constants.push((ix, k.val().clone())),
                None => by_node.entry(o.node).or_default().push((o.slot, ix)),
            }
            let fact = &node.outputs[o.slot].fact;
            specs = specs.and_then(|mut v: Vec<TensorSpec>| {
                let dtype = storable(fact.datum_type).ok()?;
                v.push((self.report_as[ix].clone(), dtype, fact.shape.as_concrete()?.to_vec()));
                Some(v)
            });
        }
        // The plan keeps only the captured tensors that nothing reads (graph outputs, dead ends):
        // the others are handed over as their node runs and freed after their last reader.
        let mut seen = HashSet::new();
        let mut kept: Vec<OutletId> = typed_outputs
            .iter()
            .copied()
            .filter(|o| typed.node(o.node).outputs[o.slot].successors.is_empty() && seen.insert(*o))
            .collect();
        let needed = ancestors(&typed, &kept);
        if kept.is_empty() || !by_node.keys().all(|n| needed.contains(n)) {
            // A captured node no kept tensor needs: keep every requested tensor instead.
            kept.clone_from(&typed_outputs);
        }
        typed.select_output_outlets(&kept).map_err(|e| self.failure(&e, Some(&facts), inputs))?;
        let plan = typed.into_runnable().map_err(|e| self.failure(&e, Some(&facts), inputs))?;
        let ran: HashSet<usize> = plan.order_without_consts().iter().copied().collect();
        let mut slots = slots;
        for (node, caps) in &by_node {
            if !ran.contains(node) {
                for &(_, ix) in caps {
                    slots[ix] = Err("tract does not compute it".into());
                    specs = None;
                }
            }
        }
        by_node.retain(|n, _| ran.contains(n));
        Ok(Prepared { plan, feed_order, slots, by_node, constants, specs, facts })
    }

    /// The plan for `inputs`' signature (built on first use).
    fn prepared(&mut self, inputs: &Tensors) -> Result<Signature> {
        let sig: Signature = self
            .inputs
            .iter()
            .map(|n| super::find(inputs, n).map(|t| (t.dtype(), t.shape().to_vec())))
            .collect::<Option<_>>()
            .ok_or_else(|| self.err("an input of the model has no value"))?;
        if !self.plans.contains_key(&sig) {
            let prepared = self.build(inputs)?;
            self.plans.insert(sig.clone(), prepared);
        }
        Ok(sig)
    }

    /// The error for a tract failure: the node and op tract names, the shapes of its inputs as tract
    /// inferred them, tract's reason and what to try, with tract's whole chain as details.
    fn failure(&self, e: &TractError, facts: Option<&HashMap<String, String>>, feed: &Tensors) -> Error {
        let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
        let full = chain.join(": ");
        let reason = if chain.iter().any(|c| c.contains("Unimplemented(")) {
            "not implemented in tract".to_string()
        } else {
            reason_text(chain.last().map_or("", String::as_str), 300)
        };
        let node = self.node_in(&full);
        let shape_of = |t: &str| -> String {
            facts
                .and_then(|f| f.get(t).cloned())
                .or_else(|| super::find(feed, t).map(|v| format!("{} {}", shape_string(v.shape()), v.dtype())))
                .unwrap_or_else(|| "?".to_string())
        };
        let mut hint = Vec::new();
        if let Some(first) = self.dynamic_inputs.first() {
            hint.push(format!("--shape {first}:DIMS with other sizes"));
        }
        hint.push(self.fallback.replace("{node}", node.map_or("NODE", |n| n.display.as_str())));
        // A failure inside a control-flow body: tract names the body node after the outer one.
        let inner = node.and_then(|n| innermost_node(&full).filter(|(name, _)| *name != n.tract_name));
        let msg = match node {
            Some(n) => {
                let shapes: Vec<String> = n.inputs.iter().map(|i| shape_of(i)).collect();
                let at = match &inner {
                    Some((name, op)) => format!("node '{name}' ({op}) inside '{}' ({})", n.display, n.op),
                    None => format!("node '{}' ({})", n.display, n.op),
                };
                format!(
                    "cannot run {at}: {reason}; inputs: {}; try {}",
                    if shapes.is_empty() { "none".to_string() } else { shapes.join(", ") },
                    hint.join(" or ")
                )
            }
            None => format!("cannot prepare the model: {reason}; try {}", hint.join(" or ")),
        };
        let mut details = String::from("tract's error chain:\n");
        for c in &chain {
            let _ = writeln!(details, "  {c}");
        }
        if let Some(n) = node {
            let _ = writeln!(details, "node '{}' ({}), inputs as tract inferred them:", n.display, n.op);
            for i in &n.inputs {
                let _ = writeln!(details, "  {i}: {}", shape_of(i));
            }
        }
        let _ = writeln!(details, "fed:");
        for (name, t) in feed {
            let _ = writeln!(details, "  {name}: {} {}", shape_string(t.shape()), t.dtype());
        }
        Error::runner_details(self.name, msg, details.trim_end())
    }

    /// The ONNX node tract's message is about: the node whose name appears first in it (as a whole
    /// name, quoted or delimited), the longest name when several start at the same place.
    fn node_in(&self, text: &str) -> Option<&NodeLabel> {
        let mut best: Option<(usize, usize, &NodeLabel)> = None;
        for n in self.nodes.iter().filter(|n| !n.tract_name.is_empty()) {
            let Some(pos) = mention(text, &n.tract_name) else { continue };
            let better = match best {
                None => true,
                Some((p, len, _)) => pos < p || (pos == p && n.tract_name.len() > len),
            };
            if better {
                best = Some((pos, n.tract_name.len(), n));
            }
        }
        best.map(|(_, _, n)| n)
    }
}

/// A `Cast` between float32 and float16 (the FP16 storage of `cpu-fp16` puts two around every FP16
/// tensor), converted by `half`'s slice conversion, which uses the CPU's F16C instructions where it
/// has them: tract casts one element at a time. The same IEEE round-to-nearest-even conversion, so
/// the same bits. `None` for any other node.
fn fast_cast(node: &TypedNode, input: &TVec<TValue>) -> Option<TractResult<TVec<TValue>>> {
    use half::slice::HalfFloatSliceExt as _;
    let cast = node.op_as::<Cast>()?;
    let [x] = input.as_slice() else { return None };
    let (from, to) = (x.datum_type(), cast.to);
    let narrow = from == DatumType::F32 && to == DatumType::F16;
    let widen = from == DatumType::F16 && to == DatumType::F32;
    if !(narrow || widen) || !x.is_plain() {
        return None;
    }
    let run = || -> TractResult<TVec<TValue>> {
        let src = x.try_as_plain_ram()?;
        let out = if narrow {
            let mut out = TTensor::zero::<half::f16>(x.shape())?;
            out.try_as_plain_ram_mut()?.as_slice_mut::<half::f16>()?.convert_from_f32_slice(src.as_slice::<f32>()?);
            out
        } else {
            let mut out = TTensor::zero::<f32>(x.shape())?;
            src.as_slice::<half::f16>()?.convert_to_f32_slice(out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
            out
        };
        Ok(tvec!(out.into_tvalue()))
    };
    Some(run())
}

/// The nodes `outputs` depend on (themselves included).
fn ancestors(model: &TypedModel, outputs: &[OutletId]) -> HashSet<usize> {
    let mut seen = HashSet::new();
    let mut stack: Vec<usize> = outputs.iter().map(|o| o.node).collect();
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            stack.extend(model.node(n).inputs.iter().map(|i| i.node));
        }
    }
    seen
}

/// The dtype a tract value of this type is stored as (symbolic dims as int64), or why it cannot be.
fn storable(d: DatumType) -> std::result::Result<DType, String> {
    if d == DatumType::TDim {
        return Ok(DType::Int64);
    }
    from_dtype(d).ok_or_else(|| format!("element type {d:?} cannot be stored"))
}

/// The little-endian bytes of a tract value as stored (symbolic dims cast to int64).
fn stored_bytes(t: &TTensor) -> std::result::Result<std::borrow::Cow<'_, [u8]>, String> {
    if t.datum_type() == DatumType::TDim {
        let c = t.cast_to::<i64>().map_err(|e| format!("symbolic shape value ({e})"))?;
        return Ok(std::borrow::Cow::Owned(c.as_bytes().to_vec()));
    }
    storable(t.datum_type())?;
    Ok(std::borrow::Cow::Borrowed(t.as_bytes()))
}

/// The last node tract's analysis names (`Failed analyse for node #N "NAME" OP`): the innermost
/// one when the failure is inside a subgraph.
fn innermost_node(text: &str) -> Option<(String, String)> {
    const MARK: &str = "Failed analyse for node #";
    let at = text.rfind(MARK)?;
    let rest = &text[at + MARK.len()..];
    let open = rest.find('"')?;
    let close = open + 1 + rest[open + 1..].find('"')?;
    let name = rest[open + 1..close].to_string();
    let op = rest[close + 1..].split_whitespace().next().unwrap_or("?").trim_end_matches(':').to_string();
    Some((name, op))
}

/// The first position where `name` appears in `text` as a whole name: after a quote, a space or the
/// start, and before a quote, a space, `.`, `:`, `,`, `#` or the end (tract writes node names as
/// `"name"`, and names derived from them as `name.suffix`).
fn mention(text: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find(name) {
        let pos = from + found;
        let before = text[..pos].chars().next_back();
        let after = text[pos + name.len()..].chars().next();
        let start_ok = before.is_none_or(|c| c == '"' || c == ' ');
        let end_ok = after.is_none_or(|c| matches!(c, '"' | ' ' | '.' | ':' | ',' | '#'));
        if start_ok && end_ok {
            return Some(pos);
        }
        from = pos + name.len().max(1);
        if from >= text.len() {
            break;
        }
    }
    None
}

/// tract's reason on one line, without its final period, at most `max` characters.
fn reason_text(s: &str, max: usize) -> String {
    let flat = super::one_line(&s);
    let flat = flat.trim_end_matches('.');
    if flat.chars().count() <= max {
        return flat.to_string();
    }
    let cut: String = flat.chars().take(max).collect();
    format!("{cut}…")
}

/// What tract knows about every named tensor: `1x16x?x? float32`, `? ?` when nothing.
fn facts_by_name(m: &InferenceModel, outlets: &HashMap<String, OutletId>) -> HashMap<String, String> {
    outlets
        .iter()
        .filter_map(|(name, o)| {
            let f = m.outlet_fact(*o).ok()?;
            let dims: Vec<String> = f.shape.dims().map(ToString::to_string).collect();
            let shape = match (dims.is_empty(), f.shape.is_open()) {
                (true, true) => "?".to_string(),
                (true, false) => "scalar".to_string(),
                (false, open) => dims.join("x") + if open { "x…" } else { "" },
            };
            let dt = f.datum_type.concretize().map_or_else(
                || "?".to_string(),
                |d| from_dtype(d).map_or_else(|| format!("{d:?}"), |d| d.name().to_string()),
            );
            Some((name.clone(), format!("{shape} {dt}")))
        })
        .collect()
}

/// Drop the symbolic dimensions (`dim_param`) a graph declares, keeping fixed sizes and element
/// types; in bodies too. The main graph's data inputs are left for [`pin_inputs`] (its inputs that
/// are initializers are not fed: they are relaxed like the rest).
fn relax_graph(g: &mut GraphProto, main: bool) {
    let init: HashSet<&str> =
        if main { g.initializer.iter().map(TensorProto::tensor_name).collect() } else { HashSet::new() };
    let inputs = g.input.iter_mut().filter(|v| !main || init.contains(v.value_name()));
    for v in inputs.chain(g.output.iter_mut()).chain(g.value_info.iter_mut()) {
        if let Some(shape) = tensor_shape_mut(v) {
            for d in &mut shape.dim {
                if matches!(d.value, Some(tensor_shape_proto::dimension::Value::DimParam(_))) {
                    d.value = None;
                }
            }
        }
    }
    for n in &mut g.node {
        for a in &mut n.attribute {
            for body in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                relax_graph(body, false);
            }
        }
    }
}

fn tensor_shape_mut(v: &mut ValueInfoProto) -> Option<&mut TensorShapeProto> {
    match v.r#type.as_mut()?.value.as_mut()? {
        type_proto::Value::TensorType(t) => t.shape.as_mut(),
        _ => None,
    }
}

/// Declare each fed graph input with the dtype and shape of its value.
fn pin_inputs(g: &mut GraphProto, feed: &Tensors) {
    for v in &mut g.input {
        let Some(t) = super::find(feed, v.value_name()) else { continue };
        let dim = t
            .shape()
            .iter()
            .map(|&d| tensor_shape_proto::Dimension {
                value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
                denotation: None,
            })
            .collect();
        let denotation = v.r#type.as_ref().and_then(|t| t.denotation.clone());
        v.r#type = Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(t.dtype().onnx()),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation,
        });
    }
}

/// tract's datum type for ours; tract has no bfloat16 (callers reject it first, it maps to F32 here).
fn datum_type(d: DType) -> DatumType {
    match d {
        DType::Float32 | DType::Bfloat16 => f32::datum_type(),
        DType::Float16 => half::f16::datum_type(),
        DType::Float64 => f64::datum_type(),
        DType::Int8 => i8::datum_type(),
        DType::Int16 => i16::datum_type(),
        DType::Int32 => i32::datum_type(),
        DType::Int64 => i64::datum_type(),
        DType::Uint8 => u8::datum_type(),
        DType::Uint16 => u16::datum_type(),
        DType::Uint32 => u32::datum_type(),
        DType::Uint64 => u64::datum_type(),
        DType::Bool => bool::datum_type(),
    }
}

fn from_dtype(d: DatumType) -> Option<DType> {
    DType::ALL.into_iter().filter(|x| *x != DType::Bfloat16).find(|x| datum_type(*x) == d)
}

fn typed<T: bytemuck::Pod + Datum>(t: &Tensor) -> TractResult<TTensor> {
    let v: Vec<T> = bytemuck::pod_collect_to_vec(t.bytes());
    TTensor::from_shape(t.shape(), &v)
}

/// Convert our tensor into a tract tensor (copying).
fn to_tract(t: &Tensor) -> TractResult<TTensor> {
    match t.dtype() {
        DType::Float32 => typed::<f32>(t),
        DType::Float16 => typed::<half::f16>(t),
        DType::Bfloat16 => {
            let v: Vec<f32> = t.to_f32_vec();
            TTensor::from_shape(t.shape(), &v)
        }
        DType::Float64 => typed::<f64>(t),
        DType::Int8 => typed::<i8>(t),
        DType::Int16 => typed::<i16>(t),
        DType::Int32 => typed::<i32>(t),
        DType::Int64 => typed::<i64>(t),
        DType::Uint8 => typed::<u8>(t),
        DType::Uint16 => typed::<u16>(t),
        DType::Uint32 => typed::<u32>(t),
        DType::Uint64 => typed::<u64>(t),
        DType::Bool => {
            let v: Vec<bool> = t.bytes().iter().map(|&b| b != 0).collect();
            TTensor::from_shape(t.shape(), &v)
        }
    }
}

impl Runner for TractRunner {
    fn name(&self) -> &'static str {
        self.name
    }

    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn run(&mut self, inputs: &Tensors) -> Result<RunOutput> {
        let mut sink = super::CollectSink::default();
        let r = self.run_streamed(inputs, &mut sink)?;
        Ok(RunOutput { tensors: sink.into_tensors(&r.specs), not_captured: r.not_captured, seconds: r.seconds })
    }

    fn streams(&self) -> bool {
        true
    }

    /// Builds the plan of every input signature of `iterations` (so the run's `prepare_s` holds
    /// tract's analysis and optimisation, and `run_s` the inference alone).
    fn prepare(&mut self, iterations: &[Tensors], _progress: &mut dyn FnMut(crate::run::Progress)) -> Result<()> {
        for inputs in iterations {
            self.prepared(inputs)?;
        }
        Ok(())
    }

    /// Each captured tensor goes to `sink` as soon as its node has run, and tract frees it after its
    /// last reader: the run holds the live activations, never every captured tensor. (When a shape
    /// depends on the data, so that the tensors cannot be announced first, they are collected and
    /// handed over after the run.)
    fn run_streamed(&mut self, inputs: &Tensors, sink: &mut dyn TensorSink) -> Result<StreamedRun> {
        let sig = self.prepared(inputs)?;
        let Some(p) = self.plans.get(&sig) else { return Err(self.err("no plan for these input shapes")) };
        let mut feed = tvec![];
        for name in &p.feed_order {
            let t = super::find(inputs, name).ok_or_else(|| self.err(format!("no value for input '{name}'")))?;
            let tt: TValue = to_tract(t).map_err(|e| self.failure(&e, Some(&p.facts), inputs))?.into_tvalue();
            feed.push(tt);
        }
        let mut not_captured = Vec::new();
        for (ix, slot) in p.slots.iter().enumerate() {
            if let Err(reason) = slot {
                not_captured.push(NotCaptured { name: self.report_as[ix].clone(), reason: reason.clone() });
            }
        }
        let names = &self.report_as;
        // Values held until the run ends when the tensors could not be announced first.
        let mut held: Vec<Option<TValue>> = vec![None; if p.specs.is_some() { 0 } else { names.len() }];
        let mut sink_error: Option<Error> = None;
        let mut put_s = 0.0;
        if let Some(specs) = &p.specs {
            sink.begin(specs)?;
            for (ix, k) in &p.constants {
                let bytes = stored_bytes(k).map_err(|e| self.err(format!("tensor '{}': {e}", names[*ix])))?;
                sink.put(&names[*ix], &bytes)?;
            }
        } else {
            for (ix, k) in &p.constants {
                held[*ix] = Some(k.clone().into_tvalue());
            }
        }
        let start = Instant::now();
        let mut state = p.plan.spawn().map_err(|e| self.failure(&e, Some(&p.facts), inputs))?;
        let ran = state.run_plan_with_eval(
            feed,
            |ctx: &EvalContext<'_>,
             op_state: Option<&mut (dyn OpState + 'static)>,
             node: &TypedNode,
             input: TVec<TValue>|
             -> TractResult<TVec<TValue>> {
                let values = match fast_cast(node, &input) {
                    Some(cast) => cast?,
                    None => tract_onnx::tract_core::plan::eval(ctx, op_state, node, input)?,
                };
                let Some(caps) = p.by_node.get(&node.id) else { return Ok(values) };
                for &(slot, ix) in caps {
                    let v = values.get(slot).ok_or_else(|| anyhow::anyhow!("{node} has no output {slot}"))?;
                    if p.specs.is_none() {
                        held[ix] = Some(v.clone());
                        continue;
                    }
                    let t0 = Instant::now();
                    let put = stored_bytes(v)
                        .map_err(|e| Error::runner(self.name, format!("tensor '{}': {e}", names[ix])))
                        .and_then(|bytes| sink.put(&names[ix], &bytes));
                    put_s += t0.elapsed().as_secs_f64();
                    if let Err(e) = put {
                        sink_error = Some(e);
                        anyhow::bail!("{STOPPED}");
                    }
                }
                Ok(values)
            },
        );
        let seconds = (start.elapsed().as_secs_f64() - put_s).max(0.0);
        if let Some(e) = sink_error {
            return Err(e);
        }
        drop(ran.map_err(|e| self.failure(&e, Some(&p.facts), inputs))?);
        let specs = match &p.specs {
            Some(specs) => specs.clone(),
            None => {
                let mut specs = Vec::new();
                let mut values = Vec::new();
                for (ix, v) in held.into_iter().enumerate() {
                    let Some(v) = v else { continue };
                    match storable(v.datum_type()) {
                        Ok(dtype) => {
                            specs.push((names[ix].clone(), dtype, v.shape().to_vec()));
                            values.push((ix, v));
                        }
                        Err(reason) => not_captured.push(NotCaptured { name: names[ix].clone(), reason }),
                    }
                }
                sink.begin(&specs)?;
                for (ix, v) in values {
                    let bytes = stored_bytes(&v).map_err(|e| self.err(format!("tensor '{}': {e}", names[ix])))?;
                    sink.put(&names[ix], &bytes)?;
                }
                specs
            }
        };
        Ok(StreamedRun { specs, not_captured, seconds })
    }
}

/// The error a capture callback returns to stop tract when the sink failed (the sink's own error
/// is what the caller sees).
const STOPPED: &str = "trtlens stopped the run: the captured tensors could not be stored";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_whole_names() {
        let text = "Failed analyse for node #7 \"/model.0/conv/Conv\" ConvHir: Impossible";
        assert_eq!(mention(text, "/model.0/conv/Conv"), text.find('/'));
        assert_eq!(mention(text, "/model.0/conv"), None, "a prefix of a name is not a mention");
        assert_eq!(mention("Wiring node \"a.b.1\", x", "a.b"), Some(13));
        assert_eq!(mention("in output_facts invocation for mul: Mul", "mul"), Some(31));
        assert_eq!(mention("ab a", "a"), Some(3));
        assert_eq!(mention("", "a"), None);
    }

    #[test]
    fn the_innermost_failing_node_is_found() {
        let text = "Failed analyse for node #11 \"/If\" If: Infering facts: Failed analyse for node #1 \
                    \"/_model_8k/Unsqueeze\" Unsqueeze13: Impossible to unify Val(256) with Val(512).";
        assert_eq!(innermost_node(text), Some(("/_model_8k/Unsqueeze".to_string(), "Unsqueeze13".to_string())));
        assert_eq!(innermost_node("no node here"), None);
    }

    #[test]
    fn symbolic_dims_are_dropped_outside_the_pinned_inputs() {
        use crate::samples::builder::{Dim as D, value_info_dims};
        use tensor_shape_proto::dimension::Value::{DimParam, DimValue};
        let f = crate::model::proto::data_type::FLOAT;
        let mut g = GraphProto {
            input: vec![value_info_dims("x", f, &[D::Param("batch"), D::Fixed(3)])],
            output: vec![value_info_dims("y", f, &[D::Param("batch"), D::Fixed(3)])],
            value_info: vec![value_info_dims("h", f, &[D::Param("batch"), D::Param("n")])],
            ..GraphProto::default()
        };
        relax_graph(&mut g, true);
        let dims = |v: &ValueInfoProto| -> Vec<Option<tensor_shape_proto::dimension::Value>> {
            let mut v = v.clone();
            tensor_shape_mut(&mut v).map(|s| s.dim.iter().map(|d| d.value.clone()).collect()).unwrap_or_default()
        };
        assert_eq!(dims(&g.input[0]), [Some(DimParam("batch".into())), Some(DimValue(3))], "inputs wait for the feed");
        assert_eq!(dims(&g.output[0]), [None, Some(DimValue(3))]);
        assert_eq!(dims(&g.value_info[0]), [None, None]);
        let feed = vec![("x".to_string(), Tensor::from_f32(&[2, 3], &[0.0; 6]).expect("tensor"))];
        pin_inputs(&mut g, &feed);
        assert_eq!(dims(&g.input[0]), [Some(DimValue(2)), Some(DimValue(3))]);
    }
}
