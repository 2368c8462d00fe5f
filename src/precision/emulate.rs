//! FP16 *storage* emulation for the `cpu-fp16` runner: FP32 compute, FP16 storage.
//!
//! The Cast-rewritten model ([`super::convert()`]) is what a strongly typed `TensorRT` build runs. A CPU
//! runtime cannot be trusted to run it faithfully (ONNX Runtime's CPU provider has no FP16 kernels
//! for most ops, computes them in FP32 and removes the FP16 round trips between them, so an inf
//! never reaches the next layer). This pass turns the rewritten model into one that any FP32 runtime
//! executes faithfully:
//!
//! * every node that reads or writes FP16 tensors (except Casts and Constants) computes in FP32: each
//!   FP16 input is widened by a shared `Cast(to=FLOAT)` (`X__emu32`, exact), and each FP16 output is
//!   computed into `Y__acc32` and rounded to FP16 by a `Cast(to=FLOAT16)` that writes the original
//!   name `Y`;
//! * so every tensor the plan makes FP16 is stored as IEEE half under its own name: values above
//!   65504 become inf, tiny values go subnormal or flush to zero, everything is rounded to nearest
//!   even; and that stored value is exactly what the next layer reads, so an inf propagates.
//!
//! With [`Emulation::tf32`], the FP32 inputs of FP32 `MatMul`/`Gemm`/`Conv`/`ConvTranspose` nodes
//! are first rounded to TF32 ([`super::tf32`]), as a GPU does with TF32 on: `X` is read as
//! `X__tf32` (one rounding per tensor, shared by its readers). FP16 nodes need none (FP16 values are
//! TF32 values).
//!
//! What it means next to `TensorRT`: `TensorRT`'s FP16 kernels also store FP16 and usually accumulate
//! GEMMs/convolutions/reductions in FP32, so overflow and underflow of stored activations and
//! weights show up the same way. Intermediate values *inside* one layer are FP32 here; a `TensorRT`
//! tactic that accumulates in FP16 can lose more precision (or overflow inside a layer) than this
//! emulation shows.

use std::collections::{HashMap, HashSet};

use super::convert::Converted;
use crate::model::proto::{AttributeProto, ModelProto, NodeProto, attribute_type, data_type};

fn cast_node(name: String, from: &str, to: &str, elem: i32) -> NodeProto {
    NodeProto {
        name: Some(name),
        op_type: Some("Cast".into()),
        input: vec![from.to_string()],
        output: vec![to.to_string()],
        attribute: vec![AttributeProto {
            name: Some("to".into()),
            r#type: Some(attribute_type::INT),
            i: Some(i64::from(elem)),
            ..AttributeProto::default()
        }],
        ..NodeProto::default()
    }
}

fn attr_i(n: &NodeProto, name: &str) -> Option<i64> {
    n.attr(name).and_then(|a| a.i)
}

/// Names of every FP16 tensor of the rewritten main graph.
fn fp16_tensors(c: &Converted) -> HashSet<String> {
    let mut set = HashSet::new();
    let Some(g) = c.proto.graph.as_ref() else { return set };
    for v in &g.input {
        let ty = crate::model::graph::ValueType::from_proto(v.r#type.as_ref());
        if ty.elem_type == Some(data_type::FLOAT16) {
            set.insert(v.value_name().to_string());
        }
    }
    for t in &g.initializer {
        if t.data_type == Some(data_type::FLOAT16) {
            set.insert(t.tensor_name().to_string());
        }
    }
    for n in &g.node {
        let to16 = match n.op() {
            "Cast" => attr_i(n, "to") == Some(i64::from(data_type::FLOAT16)),
            "Constant" => {
                n.attr("value").and_then(|a| a.t.as_ref()).is_some_and(|t| t.data_type == Some(data_type::FLOAT16))
            }
            _ => false,
        };
        if to16 {
            set.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
        }
    }
    for home in c.report.tensors.values() {
        if home.is_fp16() {
            set.insert(home.name.clone());
        }
    }
    set
}

/// A fresh name based on `base`.
fn fresh(base: &str, taken: &mut HashSet<String>) -> String {
    crate::model::unique_name(taken, base)
}

/// What the emulation adds besides FP16 storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Emulation {
    /// Round the FP32 inputs of FP32 matrix products to TF32 (`cpu-fp16 --tf32`).
    pub tf32: bool,
}

/// The FP32-compute, FP16-storage model for a Cast-rewritten model (see the module docs).
#[must_use]
pub fn emulate(c: &Converted) -> ModelProto {
    emulate_with(c, Emulation::default())
}

/// [`emulate`], with the additions of `what`.
#[must_use]
pub fn emulate_with(c: &Converted, what: Emulation) -> ModelProto {
    let mut proto = c.proto.clone();
    let half = fp16_tensors(c);
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.as_deref().unwrap_or("").is_empty())
        .and_then(|o| o.version)
        .unwrap_or(0);
    let types = if what.tf32 {
        proto
            .graph
            .as_ref()
            .and_then(|g| crate::model::graph::Graph::build(g).ok().map(|graph| super::infer_types(g, &graph, opset)))
            .unwrap_or_default()
    } else {
        HashMap::new()
    };
    let Some(g) = proto.graph.as_mut() else { return proto };
    let mut taken: HashSet<String> = g.node.iter().flat_map(|n| n.output.iter().cloned()).collect();
    taken.extend(g.input.iter().map(|v| v.value_name().to_string()));
    taken.extend(g.initializer.iter().map(|t| t.tensor_name().to_string()));
    taken.extend(g.node.iter().map(|n| n.node_name().to_string()));

    let mut widened: HashMap<String, String> = HashMap::new();
    let mut tf32_of: HashMap<String, String> = HashMap::new();
    let tf32_constants = super::tf32::Constants::new(&fresh("__trtlens_tf32", &mut taken));
    let mut nodes = Vec::with_capacity(g.node.len() * 2);
    for mut n in std::mem::take(&mut g.node) {
        let touches_half = n.input.iter().chain(&n.output).any(|t| half.contains(t));
        if what.tf32 && !touches_half && super::tf32::OPS.contains(&n.op()) {
            for inp in n.input.iter_mut().take(2) {
                if inp.is_empty() || types.get(inp.as_str()) != Some(&data_type::FLOAT) {
                    continue;
                }
                let rounded = match tf32_of.get(inp.as_str()) {
                    Some(r) => r.clone(),
                    None => {
                        let r = fresh(&format!("{inp}__tf32"), &mut taken);
                        nodes.extend(super::tf32::rounding_nodes(inp, &r, &tf32_constants, &mut |base| {
                            fresh(&base, &mut taken)
                        }));
                        tf32_of.insert(inp.clone(), r.clone());
                        r
                    }
                };
                *inp = rounded;
            }
            nodes.push(n);
            continue;
        }
        if matches!(n.op(), "Cast" | "Constant")
            || !touches_half
            || !n.attribute.iter().all(|a| a.g.is_none() && a.graphs.is_empty())
        {
            nodes.push(n);
            continue;
        }
        let label = if n.node_name().is_empty() { n.op().to_string() } else { n.node_name().to_string() };
        for inp in &mut n.input {
            if !half.contains(inp.as_str()) {
                continue;
            }
            let wide = match widened.get(inp.as_str()) {
                Some(w) => w.clone(),
                None => {
                    let w = fresh(&format!("{inp}__emu32"), &mut taken);
                    let node_name = fresh(&format!("{inp}__emu32/Cast"), &mut taken);
                    nodes.push(cast_node(node_name, inp, &w, data_type::FLOAT));
                    widened.insert(inp.clone(), w.clone());
                    w
                }
            };
            *inp = wide;
        }
        let mut rounding = Vec::new();
        for out in &mut n.output {
            if out.is_empty() || !half.contains(out.as_str()) {
                continue;
            }
            let acc = fresh(&format!("{out}__acc32"), &mut taken);
            let node_name = fresh(&format!("{label}/round_fp16"), &mut taken);
            rounding.push(cast_node(node_name, &acc, out, data_type::FLOAT16));
            *out = acc;
        }
        nodes.push(n);
        nodes.extend(rounding);
    }
    g.node = nodes;
    if !tf32_of.is_empty() {
        g.initializer.extend(tf32_constants.initializers());
    }
    proto
}
