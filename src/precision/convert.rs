//! The Cast rewrite: an FP32 ONNX model plus a [`Plan`] → a strongly typed mixed-precision model
//! (the only per-layer precision control `TensorRT` 11 has).
//!
//! **Names.** Every original tensor name still exists in the rewritten model and holds that
//! tensor's value as its producer computed it (FP16 for FP16 nodes, FP32 otherwise), so a capture
//! of the rewritten model pairs with the FP32 reference by name. The one exception are graph outputs
//! produced by an FP16 node: graph inputs and outputs keep their names *and types*, so the node
//! writes `NAME__fp16` and a Cast writes the FP32 `NAME`. [`ConvertReport::tensors`] maps every
//! original name to the tensor holding the computed value and its type. New tensors: `X__fp16`
//! (Cast or initializer copy to FP16), `X__fp32` (Cast back for FP32 readers); a `_2`, `_3`...
//! suffix is added if a name is taken. One Cast per (tensor, type), shared by all readers.
//!
//! **Values FP16 cannot hold.** Initializers and `Constant` values stored as FP16 go through the
//! plan's [`OutOfRangePolicy`]: saturated to ±65504 / ± the smallest subnormal (`saturate`, the
//! default, as `TensorRT` converts weights), left FP32 with their FP16 readers kept FP32 (`keep-fp32`),
//! or rounded as IEEE does (`ieee`: ±inf, 0). [`ConvertReport::out_of_range`] lists each one.
//! Activations (node outputs, graph inputs) are never saturated.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::decide::{Decision, Role, decide};
use super::names::{Names, cast_node, declared_types, fp16_tensor, rename_outer_reads, retype, value_info};
use super::ops;
use super::plan::{OutOfRangePolicy, Plan, Precision};
use super::report::{
    CastInserted, ConvertReport, InitializerConverted, KeepReason, KeptNode, OutOfRange, RangeAction, TensorHome,
};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::model::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, ValueInfoProto, attribute_type,
    data_type,
};
use crate::model::tensor_proto::to_tensor;

/// A rewritten model and the account of the rewrite.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The rewritten model. Initializers converted to FP16 are stored inline; others keep their
    /// external-data references, which resolve against the original model's directory.
    pub proto: ModelProto,
    /// What was done.
    pub report: ConvertReport,
}

/// The forms of one float tensor in the rewritten model.
#[derive(Debug, Clone)]
struct Forms {
    /// What the producer writes (or the initializer holds).
    native: String,
    native_fp16: bool,
    fp32: Option<String>,
    fp16: Option<String>,
}

/// A Cast to emit.
#[derive(Debug, Clone)]
struct CastSpec {
    from: String,
    to: String,
    elem: i32,
    orig: String,
}

/// How an initializer or Constant value is converted.
#[derive(Debug, Clone)]
enum ValueConversion {
    InPlace,
    Copy(String),
}

/// Everything decided before emitting.
#[derive(Default)]
struct Rewrite {
    forms: HashMap<String, Forms>,
    /// Casts right after node `i`.
    after: BTreeMap<usize, Vec<CastSpec>>,
    /// Casts of non-node tensors, emitted right before their first reader.
    before: HashMap<String, CastSpec>,
    /// Output renames (graph outputs written by FP16 nodes): tensor → new name.
    out_rename: HashMap<String, String>,
    /// Initializers and Constant outputs converted, in processing order.
    values: Vec<(String, ValueConversion)>,
}

fn is_float(types: &HashMap<String, i32>, name: &str) -> bool {
    types.get(name) == Some(&data_type::FLOAT)
}

/// Rewrite `model` so that every node `plan` puts in FP16 (and that can run in FP16) computes in
/// FP16: Casts around them, FP16 initializers, value infos updated. See the module documentation.
pub fn convert(model: &Model, plan: &Plan) -> Result<Converted> {
    let graph = &model.graph;
    let g = model.graph_proto();
    let opset = model.opset().unwrap_or(0);
    let resolved = plan.resolve_nodes(graph)?;
    if let Some(i) = resolved.iter().position(|(p, _)| *p == Precision::Bf16) {
        return Err(Error::usage(format!(
            "precision plan: bf16 (node '{}') is not supported by the Cast rewrite yet; use fp16 or fp32",
            graph.nodes[i].display_name()
        )));
    }
    let types = ops::infer_types(g, graph, opset);
    let mut decisions: Vec<Decision> =
        graph.nodes.iter().zip(&resolved).map(|(n, (p, o))| decide(n, *p, *o, &types, opset)).collect();
    let kept_values = if plan.out_of_range == OutOfRangePolicy::KeepFp32 {
        keep_readers_fp32(model, &types, &mut decisions)?
    } else {
        Vec::new()
    };

    // Who reads what, in which type.
    let mut need16: HashSet<&str> = HashSet::new();
    let mut need32: HashSet<&str> = HashSet::new();
    for (n, d) in graph.nodes.iter().zip(&decisions) {
        for (x, role) in n.inputs.iter().zip(&d.inputs).filter(|(x, _)| !x.is_empty()) {
            match role {
                Role::Fp16 if types.get(x.as_str()) != Some(&data_type::FLOAT16) => {
                    need16.insert(x);
                }
                Role::Original if is_float(&types, x) => {
                    need32.insert(x);
                }
                _ => {}
            }
        }
        need32.extend(n.implicit_inputs.iter().filter(|x| is_float(&types, x)).map(String::as_str));
    }
    need32.extend(graph.outputs.iter().filter(|x| is_float(&types, x)).map(String::as_str));

    let mut names = Names::of(g);
    let graph_inputs: HashSet<&str> = g.input.iter().map(ValueInfoProto::value_name).collect();
    let dense_inits: HashSet<&str> = g.initializer.iter().map(TensorProto::tensor_name).collect();
    let outputs: HashSet<&str> = graph.outputs.iter().map(String::as_str).collect();
    let mut order: Vec<&str> = g.input.iter().map(ValueInfoProto::value_name).collect();
    order.extend(g.initializer.iter().map(TensorProto::tensor_name));
    order.extend(g.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).map(TensorProto::tensor_name));
    order.extend(graph.nodes.iter().flat_map(|n| n.outputs.iter().map(String::as_str)));
    let mut seen = HashSet::new();

    let mut rw = Rewrite::default();
    for x in order.into_iter().filter(|x| !x.is_empty() && seen.insert(*x)) {
        let Some(info) = graph.tensor(x) else { continue };
        let (n16, n32) = (need16.contains(x), need32.contains(x));
        let producer = info.producer;
        let slot = producer.and_then(|p| graph.nodes[p].outputs.iter().position(|o| o == x));
        let fp16_out = producer.zip(slot).is_some_and(|(p, s)| decisions[p].outputs[s]);
        let constant = producer.is_some_and(|p| graph.nodes[p].is_constant())
            && producer
                .is_some_and(|p| ops::constant_type(&g.node[graph.nodes[p].proto_index]) == Some(data_type::FLOAT))
            && producer.is_some_and(|p| g.node[graph.nodes[p].proto_index].attr("sparse_value").is_none());
        let dense_init =
            producer.is_none() && dense_inits.contains(x) && !graph_inputs.contains(x) && is_float(&types, x);
        if fp16_out {
            let p = producer.unwrap_or_default();
            let mut f = Forms { native: x.to_string(), native_fp16: true, fp32: None, fp16: Some(x.to_string()) };
            if outputs.contains(x) {
                let native = names.tensor(&format!("{x}__fp16"));
                rw.out_rename.insert(x.to_string(), native.clone());
                rw.after.entry(p).or_default().push(cast(&native, x, data_type::FLOAT, x));
                f = Forms { native: native.clone(), native_fp16: true, fp32: Some(x.to_string()), fp16: Some(native) };
            } else if n32 {
                let back = names.tensor(&format!("{x}__fp32"));
                rw.after.entry(p).or_default().push(cast(x, &back, data_type::FLOAT, x));
                f.fp32 = Some(back);
            }
            rw.forms.insert(x.to_string(), f);
        } else if (constant || dense_init) && n16 {
            let (conv, f) = if n32 {
                let copy = names.tensor(&format!("{x}__fp16"));
                let f = Forms { native: x.into(), native_fp16: false, fp32: Some(x.into()), fp16: Some(copy.clone()) };
                (ValueConversion::Copy(copy), f)
            } else {
                (
                    ValueConversion::InPlace,
                    Forms { native: x.into(), native_fp16: true, fp32: None, fp16: Some(x.into()) },
                )
            };
            rw.values.push((x.to_string(), conv));
            rw.forms.insert(x.to_string(), f);
        } else if n16 {
            let to = names.tensor(&format!("{x}__fp16"));
            let spec = cast(x, &to, data_type::FLOAT16, x);
            match producer {
                Some(p) => rw.after.entry(p).or_default().push(spec),
                None => {
                    rw.before.insert(x.to_string(), spec);
                }
            }
            rw.forms.insert(
                x.to_string(),
                Forms { native: x.into(), native_fp16: false, fp32: Some(x.into()), fp16: Some(to) },
            );
        }
    }
    let mut converted = emit(model, &decisions, &types, rw, &mut names, plan.out_of_range)?;
    let report = &mut converted.report;
    report.out_of_range.splice(0..0, kept_values);
    Ok(converted)
}

/// Model data the rewrite may store as FP16: dense float initializers that are not graph inputs
/// (by name), and the float `Constant` nodes (not sparse) by output name.
struct StoredValues<'a> {
    initializers: HashMap<&'a str, &'a TensorProto>,
    constants: HashMap<&'a str, &'a NodeProto>,
}

impl<'a> StoredValues<'a> {
    fn of(model: &'a Model, types: &HashMap<String, i32>) -> StoredValues<'a> {
        let g = model.graph_proto();
        let inputs: HashSet<&str> = g.input.iter().map(ValueInfoProto::value_name).collect();
        let initializers = g
            .initializer
            .iter()
            .map(|t| (t.tensor_name(), t))
            .filter(|(n, _)| !inputs.contains(n) && is_float(types, n))
            .collect();
        let constants = model
            .graph
            .nodes
            .iter()
            .filter(|n| n.is_constant())
            .map(|n| &g.node[n.proto_index])
            .filter(|p| ops::constant_type(p) == Some(data_type::FLOAT) && p.attr("sparse_value").is_none())
            .filter_map(|p| Some((p.output.first()?.as_str(), p)))
            .collect();
        StoredValues { initializers, constants }
    }

    /// The float32 values of `x` and `initializer` or `constant`; `None` when `x` is computed.
    fn get(&self, model: &Model, x: &str) -> Result<Option<(Vec<f32>, &'static str)>> {
        if let Some(p) = self.constants.get(x) {
            return Ok(Some((constant_values(model, p)?.1, "constant")));
        }
        match self.initializers.get(x) {
            Some(t) => Ok(Some((f32_values(model, t)?, "initializer"))),
            None => Ok(None),
        }
    }
}

/// `--out-of-range keep-fp32`: every FP16 node that would read an initializer or `Constant` holding
/// a value above 65504 in FP16 stays FP32 (reason `out_of_range_constant`), so the value is never
/// converted. Returns one entry per such value, naming the nodes kept.
fn keep_readers_fp32(
    model: &Model,
    types: &HashMap<String, i32>,
    decisions: &mut [Decision],
) -> Result<Vec<OutOfRange>> {
    let graph = &model.graph;
    // Values read in FP16, in the order of their first reader, with those readers.
    let mut readers: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut slot: HashMap<&str, usize> = HashMap::new();
    for (i, (n, d)) in graph.nodes.iter().zip(decisions.iter()).enumerate() {
        for (x, _) in n.inputs.iter().zip(&d.inputs).filter(|(x, r)| !x.is_empty() && **r == Role::Fp16) {
            let k = *slot.entry(x.as_str()).or_insert_with(|| {
                readers.push((x.as_str(), Vec::new()));
                readers.len() - 1
            });
            if readers[k].1.last() != Some(&i) {
                readers[k].1.push(i);
            }
        }
    }
    let stored = StoredValues::of(model, types);
    let mut out = Vec::new();
    let mut why: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (x, nodes) in readers {
        let Some((values, kind)) = stored.get(model, x)? else { continue };
        let Some(mut r) = OutOfRange::check(x, kind, &values).filter(|r| r.above_max > 0) else { continue };
        for &i in &nodes {
            why.entry(i).or_default().push(format!("'{x}', max |value| {:.4e}", r.max_abs));
        }
        r.action = RangeAction::KeptFp32;
        r.readers_kept_fp32 = nodes.iter().map(|&i| graph.nodes[i].display_name()).collect();
        out.push(r);
    }
    for (i, what) in why {
        let detail = what.join("; ");
        decisions[i] = Decision::keep(&graph.nodes[i], KeepReason::OutOfRangeConstant, detail);
    }
    Ok(out)
}

fn cast(from: &str, to: &str, elem: i32, orig: &str) -> CastSpec {
    CastSpec { from: from.into(), to: to.into(), elem, orig: orig.into() }
}

/// The name a reader in `role` uses for `x`.
fn read_name(forms: &HashMap<String, Forms>, x: &str, role: Role) -> String {
    let Some(f) = forms.get(x) else { return x.to_string() };
    match role {
        Role::Any => f.native.clone(),
        Role::Fp16 => f.fp16.clone().unwrap_or_else(|| f.native.clone()),
        Role::Original => f.fp32.clone().unwrap_or_else(|| f.native.clone()),
    }
}

/// The f32 values of an initializer or Constant attribute tensor.
fn f32_values(model: &Model, t: &TensorProto) -> Result<Vec<f32>> {
    let tensor = to_tensor(t, Some(&model.base_dir()))?;
    Ok(tensor.to_f32_vec())
}

/// The f32 values a Constant node holds and the tensor proto to model the FP16 one on.
pub(crate) fn constant_values(model: &Model, n: &NodeProto) -> Result<(TensorProto, Vec<f32>)> {
    for a in &n.attribute {
        match a.name.as_deref() {
            Some("value") => {
                if let Some(t) = &a.t {
                    return Ok((t.clone(), f32_values(model, t)?));
                }
            }
            Some("value_float") => return Ok((TensorProto::default(), vec![a.f.unwrap_or(0.0)])),
            Some("value_floats") => {
                let t = TensorProto { dims: vec![a.floats.len() as i64], ..TensorProto::default() };
                return Ok((t, a.floats.clone()));
            }
            _ => {}
        }
    }
    Err(Error::input(format!("Constant node '{}' holds no float value", n.node_name())))
}

fn value_attr(t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some("value".into()),
        t: Some(t),
        r#type: Some(attribute_type::TENSOR),
        ..AttributeProto::default()
    }
}

/// Append a Cast node (with a value info for its output when that is a new tensor).
fn push_cast(
    spec: &CastSpec,
    declared: &HashMap<&str, &TypeProto>,
    names: &mut Names,
    out: &mut Vec<NodeProto>,
    report: &mut ConvertReport,
    vi: &mut Vec<ValueInfoProto>,
) {
    let node_name = names.node(&format!("{}__cast", spec.to));
    out.push(cast_node(node_name.clone(), &spec.from, &spec.to, spec.elem));
    let dtype = if spec.elem == data_type::FLOAT16 { "float16" } else { "float32" };
    report.casts.push(CastInserted { node: node_name, from: spec.from.clone(), to: spec.to.clone(), dtype });
    if spec.to != spec.orig {
        vi.push(value_info(&spec.to, spec.elem, declared.get(spec.orig.as_str()).copied()));
    }
}

/// Build the rewritten model from the decisions.
#[allow(clippy::needless_pass_by_value)]
fn emit(
    model: &Model,
    decisions: &[Decision],
    types: &HashMap<String, i32>,
    rw: Rewrite,
    names: &mut Names,
    policy: OutOfRangePolicy,
) -> Result<Converted> {
    let graph = &model.graph;
    let g = model.graph_proto();
    let mut report = ConvertReport { out_of_range_policy: policy, ..ConvertReport::default() };
    let declared = declared_types(g);
    let mut new_g = GraphProto { node: Vec::with_capacity(g.node.len()), ..g.clone() };
    let mut new_vi = Vec::new();
    let mut emitted_before: HashSet<&str> = HashSet::new();
    let conversions: HashMap<&str, &ValueConversion> = rw.values.iter().map(|(n, c)| (n.as_str(), c)).collect();

    // Initializers: in place or with a copy, in initializer order.
    let mut copies = Vec::new();
    for t in &mut new_g.initializer {
        let name = t.tensor_name().to_string();
        let Some(conv) = conversions.get(name.as_str()) else { continue };
        let mut values = f32_values(model, t)?;
        report.out_of_range.extend(OutOfRange::store(&name, "initializer", &mut values, policy));
        let (fp16_name, kept) = match conv {
            ValueConversion::InPlace => {
                *t = fp16_tensor(t, &name, &values);
                (name.clone(), false)
            }
            ValueConversion::Copy(c) => {
                copies.push(fp16_tensor(t, c, &values));
                (c.clone(), true)
            }
        };
        let elements = values.len();
        report.initializers.push(InitializerConverted {
            name,
            fp16_name,
            kind: "initializer",
            elements,
            kept_fp32: kept,
        });
    }
    new_g.initializer.extend(copies);

    let mut renames_for_bodies: HashMap<String, String> = HashMap::new();
    for (x, f) in &rw.forms {
        if f.native_fp16
            && f.native == *x
            && let Some(back) = &f.fp32
        {
            renames_for_bodies.insert(x.clone(), back.clone());
        }
    }

    for (idx, (node, d)) in graph.nodes.iter().zip(decisions).enumerate() {
        let mut proto = g.node[node.proto_index].clone();
        for (x, role) in node.inputs.iter().zip(&d.inputs) {
            if *role == Role::Fp16
                && let Some(spec) = rw.before.get(x)
                && emitted_before.insert(x.as_str())
            {
                push_cast(spec, &declared, names, &mut new_g.node, &mut report, &mut new_vi);
            }
        }
        for (slot, role) in proto.input.iter_mut().zip(&d.inputs) {
            if !slot.is_empty() {
                *slot = read_name(&rw.forms, slot, *role);
            }
        }
        for o in &mut proto.output {
            if let Some(r) = rw.out_rename.get(o.as_str()) {
                new_vi.push(value_info(r, data_type::FLOAT16, declared.get(o.as_str()).copied()));
                o.clone_from(r);
            }
        }
        if !node.implicit_inputs.is_empty() && !renames_for_bodies.is_empty() {
            for a in &mut proto.attribute {
                for body in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                    rename_outer_reads(body, &renames_for_bodies, &HashSet::new());
                }
            }
        }
        let name = node.display_name();
        let mut constant_copy = None;
        if node.is_constant() {
            let out = node.outputs.first().map(String::as_str).unwrap_or_default();
            match conversions.get(out) {
                Some(conv) => {
                    let (like, mut values) = constant_values(model, &proto)?;
                    report.out_of_range.extend(OutOfRange::store(out, "constant", &mut values, policy));
                    let elements = values.len();
                    match conv {
                        ValueConversion::InPlace => {
                            proto.attribute.retain(|a| {
                                !matches!(a.name.as_deref(), Some("value" | "value_float" | "value_floats"))
                            });
                            proto.attribute.push(value_attr(fp16_tensor(&like, "", &values)));
                            report.nodes_fp16.push(name.clone());
                            report.initializers.push(InitializerConverted {
                                name: out.into(),
                                fp16_name: out.into(),
                                kind: "constant",
                                elements,
                                kept_fp32: false,
                            });
                        }
                        ValueConversion::Copy(c) => {
                            let copy = NodeProto {
                                output: vec![c.clone()],
                                name: Some(names.node(&format!("{name}__fp16"))),
                                op_type: Some("Constant".into()),
                                attribute: vec![value_attr(fp16_tensor(&like, "", &values))],
                                ..NodeProto::default()
                            };
                            new_vi.push(value_info(c, data_type::FLOAT16, declared.get(out).copied()));
                            constant_copy = Some(copy);
                            report.nodes_fp32.push(KeptNode {
                                node: name.clone(),
                                op_type: node.op_type.clone(),
                                reason: KeepReason::ConstantReadInFp32,
                                detail: format!("FP16 copy '{c}' added for the FP16 readers"),
                            });
                            report.initializers.push(InitializerConverted {
                                name: out.into(),
                                fp16_name: c.clone(),
                                kind: "constant",
                                elements,
                                kept_fp32: true,
                            });
                        }
                    }
                }
                None => {
                    let (reason, detail) = if types.get(out) == Some(&data_type::FLOAT) {
                        (KeepReason::ConstantReadInFp32, "no FP16 reader".to_string())
                    } else {
                        (KeepReason::NoFloatValues, String::new())
                    };
                    report.nodes_fp32.push(KeptNode {
                        node: name.clone(),
                        op_type: node.op_type.clone(),
                        reason,
                        detail,
                    });
                }
            }
        } else if d.fp16 {
            report.nodes_fp16.push(name.clone());
        } else if let Some((reason, detail)) = &d.kept {
            report.nodes_fp32.push(KeptNode {
                node: name.clone(),
                op_type: node.op_type.clone(),
                reason: *reason,
                detail: detail.clone(),
            });
        }
        if !node.subgraph_attrs.is_empty() {
            report.subgraphs_fp32.push(name);
        }
        new_g.node.push(proto);
        new_g.node.extend(constant_copy);
        for spec in rw.after.get(&idx).into_iter().flatten() {
            push_cast(spec, &declared, names, &mut new_g.node, &mut report, &mut new_vi);
        }
    }

    // Value infos: tensors now FP16 under their own name, then the new tensors.
    for v in &mut new_g.value_info {
        if rw.forms.get(v.value_name()).is_some_and(|f| f.native_fp16 && f.native == v.value_name()) {
            retype(v, data_type::FLOAT16);
        }
    }
    new_g.value_info.extend(new_vi);

    for name in graph.tensors.keys() {
        let home = match rw.forms.get(name) {
            Some(f) => TensorHome {
                name: f.native.clone(),
                elem_type: if f.native_fp16 { Some(data_type::FLOAT16) } else { types.get(name).copied() },
            },
            None => TensorHome { name: name.clone(), elem_type: types.get(name).copied() },
        };
        report.tensors.insert(name.clone(), home);
    }
    let proto = ModelProto { graph: Some(new_g), ..model.proto.clone() };
    Ok(Converted { proto, report })
}
