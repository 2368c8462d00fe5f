//! Per-node decisions: does a node the plan wants in FP16 actually run in FP16, which of its inputs
//! are read in FP16 (data sharing a type variable with the outputs), which keep their type
//! (shapes, indices, axes, parameters), and which outputs become FP16.

use std::collections::{BTreeSet, HashMap};

use super::ops::{self, FormalType, Schema};
use super::plan::{Override, Precision, Selector};
use super::report::KeepReason;
use crate::model::graph::Node;
use crate::model::proto::data_type;

/// How a node reads one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// In the tensor's original type (float32 tensors: their FP32 form).
    Original,
    /// In FP16 (a Cast is inserted unless the value is already FP16).
    Fp16,
    /// Any element type: whatever form the producer wrote (Shape, Size, Cast inputs).
    Any,
}

/// The decision for one node.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    /// The node computes in FP16.
    pub fp16: bool,
    /// Why it stays FP32 (for nodes with `fp16 == false`; `None` for Constant nodes, decided later).
    pub kept: Option<(KeepReason, String)>,
    /// Per input slot.
    pub inputs: Vec<Role>,
    /// Per output slot: written in FP16.
    pub outputs: Vec<bool>,
}

impl Decision {
    /// The node stays FP32 for `reason`; inputs read as they are.
    pub(crate) fn keep(node: &Node, reason: KeepReason, detail: String) -> Decision {
        Decision {
            fp16: false,
            kept: Some((reason, detail)),
            inputs: any_roles(node),
            outputs: vec![false; node.outputs.len()],
        }
    }
}

fn any_roles(node: &Node) -> Vec<Role> {
    (0..node.inputs.len()).map(|i| if ops::any_input(&node.op_type, i) { Role::Any } else { Role::Original }).collect()
}

/// Why the plan keeps a node FP32.
fn plan_detail(o: Option<&Override>) -> String {
    match o {
        None => "plan default fp32".into(),
        Some(o) => {
            let how = match &o.selector {
                Selector::Node(_) => "node".to_string(),
                s => s.to_string(),
            };
            let note = o.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
            format!("{how}, {}{note}", o.reason.name())
        }
    }
}

/// Decide one node. `precision` is what the plan asks for (FP32 or FP16; BF16 is rejected earlier).
pub(crate) fn decide(
    node: &Node,
    precision: Precision,
    why: Option<&Override>,
    types: &HashMap<String, i32>,
    opset: i64,
) -> Decision {
    if node.is_constant() {
        // Constants follow their consumers (decided with the tensors).
        return Decision { fp16: false, kept: None, inputs: vec![], outputs: vec![false; node.outputs.len()] };
    }
    if precision != Precision::Fp16 {
        return Decision::keep(node, KeepReason::Plan, plan_detail(why));
    }
    if !node.subgraph_attrs.is_empty() {
        return Decision::keep(node, KeepReason::ControlFlow, format!("bodies: {}", node.subgraph_attrs.join(", ")));
    }
    let Some(schema) = ops::schema(&node.op_type, &node.domain, opset) else {
        let detail = if ops::default_domain(&node.domain) {
            format!("{} is not an operator at opset {opset}", node.op_type)
        } else {
            format!("domain '{}'", node.domain)
        };
        return Decision::keep(node, KeepReason::UnknownOp, detail);
    };
    if ops::attribute_typed(&node.op_type) {
        return Decision::keep(node, KeepReason::AttributeTyped, String::new());
    }
    if ops::float32_function_body(&node.op_type) {
        let detail = "its ONNX function body only type-checks in float32".to_string();
        return Decision::keep(node, KeepReason::OpRejectsFloat16, detail);
    }
    if schema.has_non_tensor() || ops::optional_op(&node.op_type) {
        return Decision::keep(node, KeepReason::NonTensorValues, String::new());
    }
    let bound = ops::bindings(schema, &node.inputs, types);
    let mut float_vars: Vec<&String> = bound.iter().filter(|(_, t)| **t == data_type::FLOAT).map(|(v, _)| v).collect();
    float_vars.sort();
    // A float32 output of fixed type (DequantizeLinear-10) cannot become FP16.
    let fixed_float = schema.outputs.iter().any(|f| f.ty == FormalType::Fixed(data_type::FLOAT));
    let mut rejected = fixed_float;
    let slots_of = |var: &str| -> Vec<usize> {
        (0..node.inputs.len())
            .filter(|&i| !node.inputs[i].is_empty())
            .filter(|&i| schema.input(i).is_some_and(|f| f.ty == FormalType::Var(var.to_string())))
            .collect()
    };
    let mut convert: BTreeSet<&str> = BTreeSet::new();
    for v in &float_vars {
        let in_outputs = schema.var_in_outputs(v);
        let allows = schema.vars.get(v.as_str()).is_some_and(|i| i.float16);
        if !allows {
            if in_outputs {
                return Decision::keep(
                    node,
                    KeepReason::OpRejectsFloat16,
                    format!("type {v} of {}-{} excludes float16 (opset {opset})", node.op_type, schema.since),
                );
            }
            rejected = true;
            continue;
        }
        if !in_outputs
            && slots_of(v).iter().all(|&i| ops::keep_input(&node.op_type, i) || ops::any_input(&node.op_type, i))
        {
            continue;
        }
        convert.insert(v.as_str());
    }
    if convert.is_empty() {
        return if rejected {
            Decision::keep(node, KeepReason::OpRejectsFloat16, describe_fixed(node, schema, opset))
        } else {
            Decision::keep(node, KeepReason::NoFloatValues, String::new())
        };
    }
    let is_converted =
        |f: Option<&ops::Formal>| matches!(f.map(|f| &f.ty), Some(FormalType::Var(v)) if convert.contains(v.as_str()));
    let inputs = (0..node.inputs.len())
        .map(|i| {
            if ops::any_input(&node.op_type, i) {
                Role::Any
            } else if is_converted(schema.input(i))
                && (var_reaches_output(schema, i) || !ops::keep_input(&node.op_type, i))
            {
                Role::Fp16
            } else {
                Role::Original
            }
        })
        .collect();
    let outputs = (0..node.outputs.len()).map(|j| is_converted(schema.output(j))).collect();
    Decision { fp16: true, kept: None, inputs, outputs }
}

fn var_reaches_output(schema: &Schema, input: usize) -> bool {
    matches!(schema.input(input).map(|f| &f.ty), Some(FormalType::Var(v)) if schema.var_in_outputs(v))
}

fn describe_fixed(node: &Node, schema: &Schema, opset: i64) -> String {
    format!("{}-{} has no float type variable admitting float16 (opset {opset})", node.op_type, schema.since)
}
