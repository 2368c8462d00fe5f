//! Helpers of the Cast rewrite that work on the protobuf: fresh names, value infos, FP16 tensor
//! protos, and renaming outer-scope reads inside control-flow bodies.

use std::collections::{HashMap, HashSet};

use crate::model::proto::{
    AttributeProto, GraphProto, NodeProto, TensorProto, TypeProto, ValueInfoProto, attribute_type, data_type,
    type_proto,
};
use crate::model::tensor_proto::f32_to_f16_bytes;

/// Every tensor and node name used anywhere in a graph (bodies included), for collision-free
/// new names.
#[derive(Debug, Default)]
pub(crate) struct Names {
    tensors: HashSet<String>,
    nodes: HashSet<String>,
}

impl Names {
    pub fn of(g: &GraphProto) -> Names {
        let mut n = Names::default();
        n.collect(g);
        n
    }

    fn collect(&mut self, g: &GraphProto) {
        let vi = g.input.iter().chain(&g.output).chain(&g.value_info).map(|v| v.value_name().to_string());
        self.tensors.extend(vi);
        self.tensors.extend(g.initializer.iter().map(|t| t.tensor_name().to_string()));
        self.tensors
            .extend(g.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).map(|t| t.tensor_name().to_string()));
        for n in &g.node {
            self.nodes.insert(n.node_name().to_string());
            self.tensors.extend(n.input.iter().chain(&n.output).cloned());
            for a in &n.attribute {
                for body in a.g.iter().chain(&a.graphs) {
                    self.collect(body);
                }
            }
        }
    }

    fn fresh_in(set: &mut HashSet<String>, base: &str) -> String {
        crate::model::unique_name(set, base)
    }

    /// `base`, or `base_2`, `base_3`... when taken; the name is reserved.
    pub fn tensor(&mut self, base: &str) -> String {
        Names::fresh_in(&mut self.tensors, base)
    }

    /// A fresh node name.
    pub fn node(&mut self, base: &str) -> String {
        Names::fresh_in(&mut self.nodes, base)
    }
}

/// A `Cast` node.
pub(crate) fn cast_node(name: String, from: &str, to: &str, elem: i32) -> NodeProto {
    NodeProto {
        input: vec![from.to_string()],
        output: vec![to.to_string()],
        name: Some(name),
        op_type: Some("Cast".into()),
        attribute: vec![AttributeProto {
            name: Some("to".into()),
            i: Some(i64::from(elem)),
            r#type: Some(attribute_type::INT),
            ..AttributeProto::default()
        }],
        ..NodeProto::default()
    }
}

/// `orig` re-encoded as FP16 (`raw_data`), keeping dims, doc string and metadata; `name` replaces
/// the name. Values are rounded to nearest even; the out-of-range policy has been applied to
/// `values` before (this only rounds).
pub(crate) fn fp16_tensor(orig: &TensorProto, name: &str, values: &[f32]) -> TensorProto {
    TensorProto {
        dims: orig.dims.clone(),
        data_type: Some(data_type::FLOAT16),
        name: (!name.is_empty() || orig.name.is_some()).then(|| name.to_string()),
        raw_data: Some(f32_to_f16_bytes(values)),
        doc_string: orig.doc_string.clone(),
        metadata_props: orig.metadata_props.clone(),
        ..TensorProto::default()
    }
}

/// The tensor `TypeProto`s the main graph's `value_info` entries declare, by name. (Shapes declared
/// on graph inputs and outputs are not copied to new intermediate tensors: some runtimes treat a
/// `value_info` shape as a hard fact but an output shape as a hint.)
pub(crate) fn declared_types(g: &GraphProto) -> HashMap<&str, &TypeProto> {
    g.value_info
        .iter()
        .filter_map(|v| Some((v.value_name(), v.r#type.as_ref()?)))
        .filter(|(_, t)| matches!(t.value, Some(type_proto::Value::TensorType(_))))
        .collect()
}

/// A value info for `name` with element type `elem`, shaped like `like` when it declares a shape.
pub(crate) fn value_info(name: &str, elem: i32, like: Option<&TypeProto>) -> ValueInfoProto {
    let shape = like.and_then(|t| match &t.value {
        Some(type_proto::Value::TensorType(tt)) => tt.shape.clone(),
        _ => None,
    });
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: Some(elem), shape })),
            denotation: None,
        }),
        ..ValueInfoProto::default()
    }
}

/// Set the element type of a tensor value info.
pub(crate) fn retype(v: &mut ValueInfoProto, elem: i32) {
    if let Some(TypeProto { value: Some(type_proto::Value::TensorType(tt)), .. }) = v.r#type.as_mut() {
        tt.elem_type = Some(elem);
    }
}

/// Rename reads of outer-scope tensors inside a body (and bodies nested in it), leaving names the
/// body defines itself alone.
pub(crate) fn rename_outer_reads(
    g: &mut GraphProto,
    renames: &HashMap<String, String>,
    outer_shadow: &HashSet<String>,
) {
    let mut shadow = outer_shadow.clone();
    shadow.extend(g.input.iter().map(|v| v.value_name().to_string()));
    shadow.extend(g.initializer.iter().map(|t| t.tensor_name().to_string()));
    shadow.extend(g.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).map(|t| t.tensor_name().to_string()));
    shadow.extend(g.node.iter().flat_map(|n| n.output.iter().cloned()));
    for n in &mut g.node {
        for i in &mut n.input {
            if !shadow.contains(i)
                && let Some(r) = renames.get(i)
            {
                i.clone_from(r);
            }
        }
        for a in &mut n.attribute {
            for body in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                rename_outer_reads(body, renames, &shadow);
            }
        }
    }
    for o in &mut g.output {
        if let Some(name) = o.name.as_mut()
            && !shadow.contains(name.as_str())
            && let Some(r) = renames.get(name.as_str())
        {
            name.clone_from(r);
        }
    }
}
