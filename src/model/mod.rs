//! The ONNX model layer: decoding (`prost` types in [`proto`]), external data, the analysed
//! [`graph::Graph`], and the `info` summary.

pub mod graph;
pub mod proto;
pub mod specialize;
pub mod tensor_proto;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use graph::{Graph, TensorKind, dims_string};
use proto::{ModelProto, data_type};

/// A loaded ONNX model.
#[derive(Debug, Clone)]
pub struct Model {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The decoded protobuf.
    pub proto: ModelProto,
    /// The analysed main graph.
    pub graph: Graph,
    /// sha256 of the model file, hex.
    pub sha256: String,
    /// Size of the model file in bytes.
    pub file_bytes: u64,
}

/// `base` if no name in `taken` has it, else `base_2`, `base_3`, ...; the name returned is added to
/// `taken`. Every rewrite that adds tensors or nodes (the Cast rewrite, the FP16 emulation, control
/// flow inlining) names them with it.
pub fn unique_name<S: std::hash::BuildHasher>(taken: &mut std::collections::HashSet<String, S>, base: &str) -> String {
    if taken.insert(base.to_string()) {
        return base.to_string();
    }
    let mut k = 2;
    loop {
        let candidate = format!("{base}_{k}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        k += 1;
    }
}

/// Hex sha256 of bytes.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let d = Sha256::digest(bytes);
    d.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Model {
    /// Load and analyse a model file.
    pub fn load(path: &Path) -> Result<Model> {
        let bytes = std::fs::read(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound { " (check the path)" } else { "" };
            Error::model(path, format!("cannot read model: {e}{hint}"))
        })?;
        Model::from_bytes(path, &bytes)
    }

    /// Decode and analyse model bytes; `path` is used for messages and external data.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Model> {
        if bytes.is_empty() {
            return Err(Error::model(path, "file is empty, not an ONNX model"));
        }
        let proto = ModelProto::decode(bytes).map_err(|e| {
            Error::model(path, format!("not an ONNX model or truncated file (protobuf decode failed: {e})"))
        })?;
        let Some(g) = proto.graph.as_ref() else {
            return Err(Error::model(path, "not an ONNX model: no graph (is this really a .onnx file?)"));
        };
        if proto.ir_version.is_none() || proto.opset_import.is_empty() && !g.node.is_empty() {
            return Err(Error::model(path, "not an ONNX model: missing ir_version or opset_import"));
        }
        let graph = Graph::build(g).map_err(|e| Error::model(path, e.to_string()))?;
        let model =
            Model { path: path.to_path_buf(), sha256: sha256_hex(bytes), file_bytes: bytes.len() as u64, proto, graph };
        model.check_external_data()?;
        Ok(model)
    }

    /// The directory external data is resolved against.
    #[must_use]
    pub fn base_dir(&self) -> PathBuf {
        self.path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// The main graph proto.
    #[must_use]
    pub fn graph_proto(&self) -> &proto::GraphProto {
        // `from_bytes` guarantees a graph.
        static EMPTY: std::sync::OnceLock<proto::GraphProto> = std::sync::OnceLock::new();
        self.proto.graph.as_ref().unwrap_or_else(|| EMPTY.get_or_init(proto::GraphProto::default))
    }

    /// Distinct external-data files the main graph refers to (relative locations).
    pub fn external_files(&self) -> Result<Vec<String>> {
        let mut files = Vec::new();
        for t in &self.graph_proto().initializer {
            if let Some(r) = tensor_proto::external_ref(t)?
                && !files.contains(&r.location)
            {
                files.push(r.location);
            }
        }
        Ok(files)
    }

    /// Every external-data file exists and is large enough for the ranges that use it.
    fn check_external_data(&self) -> Result<()> {
        let base = self.base_dir();
        for t in &self.graph_proto().initializer {
            let Some(r) = tensor_proto::external_ref(t).map_err(|e| Error::model(&self.path, e.to_string()))? else {
                continue;
            };
            let p = base.join(&r.location);
            let len = std::fs::metadata(&p)
                .map_err(|e| {
                    Error::model(
                        &p,
                        format!(
                            "external data for initializer '{}' is missing ({e}); copy '{}' next to the model",
                            t.tensor_name(),
                            r.location
                        ),
                    )
                })?
                .len();
            let need = r.offset + r.length.unwrap_or(0);
            if need > len {
                return Err(Error::model(
                    &p,
                    format!(
                        "external data for initializer '{}' needs {need} bytes, the file has {len}",
                        t.tensor_name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The default-domain opset version.
    #[must_use]
    pub fn opset(&self) -> Option<i64> {
        self.proto
            .opset_import
            .iter()
            .find(|o| matches!(o.domain.as_deref(), None | Some("" | "ai.onnx")))
            .and_then(|o| o.version)
    }

    /// A summary for `trtlens info`.
    #[must_use]
    pub fn summary(&self) -> Summary {
        let g = &self.graph;
        let mut ops: BTreeMap<String, usize> = BTreeMap::new();
        for n in &g.nodes {
            let key = if n.domain.is_empty() || n.domain == "ai.onnx" {
                n.op_type.clone()
            } else {
                format!("{}::{}", n.domain, n.op_type)
            };
            *ops.entry(key).or_default() += 1;
        }
        let io = |name: &String| {
            let t = &g.tensors[name];
            IoSummary {
                name: name.clone(),
                dtype: t.ty.elem_type.map_or_else(|| t.ty.kind.to_string(), |e| data_type::name(e).to_string()),
                shape: t.ty.shape.as_ref().map_or_else(|| "?".to_string(), |s| dims_string(s)),
            }
        };
        let mut param_count = 0u64;
        let mut param_bytes = 0u64;
        for t in &self.graph_proto().initializer {
            let n: i64 = t.dims.iter().product();
            param_count += n.max(0) as u64;
            let elem =
                t.data_type.and_then(crate::tensor::DType::from_onnx).map_or(0, crate::tensor::DType::size) as u64;
            param_bytes += n.max(0) as u64 * elem;
        }
        let external = self.external_files().unwrap_or_default();
        Summary {
            path: self.path.display().to_string(),
            sha256: self.sha256.clone(),
            file_bytes: self.file_bytes,
            ir_version: self.proto.ir_version.unwrap_or(0),
            opsets: self
                .proto
                .opset_import
                .iter()
                .map(|o| {
                    (
                        o.domain.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "ai.onnx".into()),
                        o.version.unwrap_or(0),
                    )
                })
                .collect(),
            producer: format!(
                "{} {}",
                self.proto.producer_name.as_deref().unwrap_or(""),
                self.proto.producer_version.as_deref().unwrap_or("")
            )
            .trim()
            .to_string(),
            inputs: g.inputs.iter().map(io).collect(),
            outputs: g.outputs.iter().map(io).collect(),
            node_count: g.nodes.len(),
            ops,
            initializer_count: g.tensors.values().filter(|t| t.kind == TensorKind::Initializer).count(),
            param_count,
            param_bytes,
            activation_count: g.captured().len(),
            subgraph_nodes: g.nodes.iter().filter(|n| !n.subgraph_attrs.is_empty()).map(Node::display_name).collect(),
            subgraph_tensor_count: g.subgraph_tensors.len(),
            control_flow: specialize::control_flow(self),
            external_data_files: external,
        }
    }
}

use graph::Node;

/// One graph input or output in a summary.
#[derive(Debug, Clone, Serialize)]
pub struct IoSummary {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: String,
    /// Declared shape.
    pub shape: String,
}

/// What `trtlens info` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Model path.
    pub path: String,
    /// sha256 of the file.
    pub sha256: String,
    /// File size.
    pub file_bytes: u64,
    /// IR version.
    pub ir_version: i64,
    /// Opset imports (domain, version).
    pub opsets: Vec<(String, i64)>,
    /// Producer name and version.
    pub producer: String,
    /// Data inputs.
    pub inputs: Vec<IoSummary>,
    /// Graph outputs.
    pub outputs: Vec<IoSummary>,
    /// Nodes in the main graph.
    pub node_count: usize,
    /// Node count per op type.
    pub ops: BTreeMap<String, usize>,
    /// Number of initializers.
    pub initializer_count: usize,
    /// Number of parameters (initializer elements).
    pub param_count: u64,
    /// Parameter bytes.
    pub param_bytes: u64,
    /// Tensors a run captures.
    pub activation_count: usize,
    /// Control-flow nodes with bodies.
    pub subgraph_nodes: Vec<String>,
    /// Tensors inside bodies (not captured).
    pub subgraph_tensor_count: usize,
    /// The control-flow nodes: for an `If`, whether a constant or inputs select its branch.
    pub control_flow: Vec<specialize::ControlFlow>,
    /// External-data files.
    pub external_data_files: Vec<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "model       {}", self.path)?;
        writeln!(f, "sha256      {}", self.sha256)?;
        let opsets: Vec<String> = self.opsets.iter().map(|(d, v)| format!("{d} {v}")).collect();
        writeln!(f, "ir_version  {}    opsets: {}", self.ir_version, opsets.join(", "))?;
        if !self.producer.is_empty() {
            writeln!(f, "producer    {}", self.producer)?;
        }
        writeln!(f, "inputs")?;
        for i in &self.inputs {
            writeln!(f, "  {:<32} {:<8} {}", i.name, i.dtype, i.shape)?;
        }
        writeln!(f, "outputs")?;
        for o in &self.outputs {
            writeln!(f, "  {:<32} {:<8} {}", o.name, o.dtype, o.shape)?;
        }
        writeln!(
            f,
            "nodes       {} ({} captured tensors)    parameters {} ({})",
            self.node_count,
            self.activation_count,
            self.param_count,
            human_bytes(self.param_bytes)
        )?;
        if !self.external_data_files.is_empty() {
            writeln!(f, "external    {}", self.external_data_files.join(", "))?;
        }
        if !self.control_flow.is_empty() {
            writeln!(
                f,
                "subgraphs   {} control-flow nodes ({} inner tensors, not captured unless specialized)",
                self.control_flow.len(),
                self.subgraph_tensor_count,
            )?;
            for c in &self.control_flow {
                let what = match (c.op_type.as_str(), c.constant) {
                    ("If", _) if !c.selected_by.is_empty() => format!(
                        "input-selected by {}: run/compare inline the branch the inputs pick",
                        c.selected_by.join(", ")
                    ),
                    ("If", Some(v)) => format!(
                        "constant condition ({v}): run/compare inline its {}",
                        if v { specialize::THEN_BRANCH } else { specialize::ELSE_BRANCH }
                    ),
                    ("If", None) => "constant condition: run/compare inline the branch it picks".into(),
                    _ => "body tensors not captured".into(),
                };
                writeln!(f, "  {:<4} {} ({} inner tensors): {what}", c.op_type, c.node, c.inner_tensors)?;
            }
        }
        writeln!(f, "ops")?;
        let mut ops: Vec<_> = self.ops.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (op, n) in ops {
            writeln!(f, "  {op:<28} {n}")?;
        }
        Ok(())
    }
}

/// `1.5 MiB` style sizes.
#[must_use]
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[u]) }
}
