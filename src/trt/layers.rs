//! The engine's layers as TensorRT reports them: name, type, the tensors each layer reads and
//! writes with their data types, and the ONNX nodes it covers (`Metadata: [ONNX Layer: ...]`).
//!
//! Two sources, same result:
//! * the engine inspector's JSON (`IEngineInspector::getEngineInformation(kJSON)`), available when
//!   the engine can be deserialized (a GPU the flavour runs on);
//! * the builder's log at profiling verbosity `kDETAILED`, which prints the same list after
//!   "Layers:" as one record per line (`Name: ..., LayerType: kgen, Inputs: [ { Name: x, ...,
//!   Datatype: Half, ... }], Outputs: [...], TacticName: ..., Metadata: [ONNX Layer: a][ONNX Layer:
//!   b]`), followed by "I/O Tensors:". This is what works without a GPU.

use serde::{Deserialize, Serialize};

/// One tensor a layer reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerTensor {
    /// Engine tensor name (the ONNX name for tensors the network keeps: inputs, outputs, marked).
    pub name: String,
    /// trtlens dtype name (`float16`, `float32`, `int64`, ...; TensorRT's own name lower-cased when
    /// trtlens has no such type, e.g. `fp8`), `None` when not reported.
    pub dtype: Option<String>,
}

/// One engine layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineLayer {
    /// Layer name (fused layers get generated names such as `__myl_AddMulAdd_myl0_3`).
    pub name: String,
    /// Layer type as TensorRT names it (`kgen`, `gemm`, `CaskConvolution`, `Reformat`, ...).
    #[serde(rename = "type")]
    pub layer_type: String,
    /// The ONNX nodes this layer computes, from its metadata.
    pub onnx_nodes: Vec<String>,
    /// Tensors read (constants excluded).
    pub inputs: Vec<LayerTensor>,
    /// Tensors written.
    pub outputs: Vec<LayerTensor>,
}

/// One input or output of the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoTensor {
    /// Name.
    pub name: String,
    /// `input` or `output`.
    pub mode: String,
    /// trtlens dtype name (see [`LayerTensor::dtype`]).
    pub dtype: Option<String>,
}

/// What a layer list says about an engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// Layers in execution order.
    pub layers: Vec<EngineLayer>,
    /// The engine's inputs and outputs (empty when the source does not list them).
    pub io: Vec<IoTensor>,
}

impl EngineInfo {
    /// The layer that writes tensor `name`, if one does.
    #[must_use]
    pub fn producer(&self, name: &str) -> Option<&EngineLayer> {
        self.layers.iter().find(|l| l.outputs.iter().any(|o| o.name == name))
    }

    /// The dtype the engine gives tensor `name` (as an output of a layer, else as an I/O tensor).
    #[must_use]
    pub fn dtype_of(&self, name: &str) -> Option<&str> {
        self.layers
            .iter()
            .flat_map(|l| l.outputs.iter().chain(&l.inputs))
            .find(|t| t.name == name)
            .and_then(|t| t.dtype.as_deref())
            .or_else(|| self.io.iter().find(|t| t.name == name).and_then(|t| t.dtype.as_deref()))
    }

    /// The layers covering ONNX node `node` (usually one).
    pub fn layers_of_node<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a EngineLayer> + 'a {
        self.layers.iter().filter(move |l| l.onnx_nodes.iter().any(|n| n == node))
    }
}

/// trtlens' name for a TensorRT data type as logs and the inspector spell it (`Float`, `Half`,
/// `Row major linear FP32`, `Int64`, ...).
#[must_use]
pub fn dtype_name(trt: &str) -> String {
    let t = trt.trim();
    let lower = t.to_ascii_lowercase();
    // Inspector "Format/Datatype" strings carry the type as a word inside a longer description.
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let has = |w: &str| words.contains(&w);
    let known = [
        (&["float", "fp32", "kfloat"][..], "float32"),
        (&["half", "fp16", "khalf"][..], "float16"),
        (&["bf16", "bfloat16", "kbf16"][..], "bfloat16"),
        (&["int64", "kint64"][..], "int64"),
        (&["int32", "kint32"][..], "int32"),
        (&["int8", "kint8"][..], "int8"),
        (&["uint8", "kuint8"][..], "uint8"),
        (&["bool", "kbool"][..], "bool"),
        (&["fp8", "kfp8"][..], "fp8"),
        (&["int4", "kint4"][..], "int4"),
        (&["fp4", "kfp4"][..], "fp4"),
    ];
    for (spellings, name) in known {
        if spellings.iter().any(|s| has(s)) {
            return name.to_string();
        }
    }
    lower
}

/// The ONNX node names in a metadata string: `[ONNX Layer: a][ONNX Layer: b]` (entries may be
/// separated by `\u{1e}`; a name may itself contain brackets).
#[must_use]
pub fn onnx_nodes(metadata: &str) -> Vec<String> {
    const MARK: &str = "[ONNX Layer: ";
    let mut out: Vec<String> = Vec::new();
    let parts: Vec<&str> = metadata.split(MARK).skip(1).collect();
    for part in parts {
        // The entry ends at the last ']' of its segment (the next entry starts a new segment).
        let end = part.rfind(']').unwrap_or(part.len());
        let name = part[..end].trim();
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    out
}

/// A value in a log record.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    List(Vec<Value>),
    Record(Vec<(String, Value)>),
}

impl Value {
    fn text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

fn get<'a>(record: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    record.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// A cursor over one record line.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c == b' ' || c == b'\t') {
            self.i += 1;
        }
    }

    /// True when `", KEY: "` starts at `at` (KEY: a letter, then letters, digits or `/`).
    fn separator_at(&self, at: usize) -> bool {
        let s = self.s;
        if s.get(at) != Some(&b',') || s.get(at + 1) != Some(&b' ') {
            return false;
        }
        let mut j = at + 2;
        if !s.get(j).is_some_and(u8::is_ascii_alphabetic) {
            return false;
        }
        while s.get(j).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'/' || *c == b'_') {
            j += 1;
        }
        s.get(j) == Some(&b':') && matches!(s.get(j + 1), Some(b' ') | None)
    }

    /// `KEY: value, KEY: value ...` up to a closing `}` (not consumed) or the end.
    fn record(&mut self) -> Vec<(String, Value)> {
        let mut fields = Vec::new();
        loop {
            self.skip_ws();
            let start = self.i;
            while self.peek().is_some_and(|c| c != b':' && c != b'}' && c != b']') {
                self.i += 1;
            }
            if self.peek() != Some(b':') {
                self.i = start.max(self.i);
                break;
            }
            let key = String::from_utf8_lossy(&self.s[start..self.i]).trim().trim_start_matches(',').trim().to_string();
            self.i += 1;
            self.skip_ws();
            let value = if key == "Metadata" { self.metadata() } else { self.value(false) };
            fields.push((key, value));
            if self.separator_at(self.i) {
                self.i += 2;
                continue;
            }
            break;
        }
        fields
    }

    /// Metadata runs to the next field separator at bracket depth 0, or the end.
    fn metadata(&mut self) -> Value {
        let start = self.i;
        while self.i < self.s.len() && !self.separator_at(self.i) {
            self.i += 1;
        }
        Value::Text(String::from_utf8_lossy(&self.s[start..self.i]).trim().to_string())
    }

    fn value(&mut self, in_list: bool) -> Value {
        self.skip_ws();
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let r = self.record();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                }
                Value::Record(r)
            }
            Some(b'[') if self.looks_like_list() => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        None => break,
                        Some(b']') => {
                            self.i += 1;
                            break;
                        }
                        Some(b',') => self.i += 1,
                        Some(_) => {
                            let before = self.i;
                            items.push(self.value(true));
                            if self.i == before {
                                self.i += 1;
                            }
                        }
                    }
                }
                Value::List(items)
            }
            _ => self.scalar(in_list),
        }
    }

    /// A `[` opens a list when it holds records, numbers or nothing (`[ {`, `[1,2]`, `[]`), not text
    /// such as `[Shuffle]_output` inside a name.
    fn looks_like_list(&self) -> bool {
        let rest = &self.s[self.i + 1..];
        let first = rest.iter().find(|c| **c != b' ');
        match first {
            Some(b'{' | b']') => true,
            Some(c) if c.is_ascii_digit() || *c == b'-' => {
                let close = rest.iter().position(|c| *c == b']').unwrap_or(rest.len());
                rest[..close].iter().all(|c| c.is_ascii_digit() || matches!(c, b',' | b'-' | b' ' | b':' | b'.'))
            }
            _ => false,
        }
    }

    fn scalar(&mut self, in_list: bool) -> Value {
        let start = self.i;
        let mut depth = 0i32;
        while let Some(c) = self.peek() {
            match c {
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth == 0 => break,
                b')' | b']' | b'}' => depth -= 1,
                b',' if depth == 0 && (in_list || self.separator_at(self.i)) => break,
                _ => {}
            }
            self.i += 1;
        }
        Value::Text(String::from_utf8_lossy(&self.s[start..self.i]).trim().to_string())
    }
}

fn parse_record(line: &str) -> Vec<(String, Value)> {
    Cursor { s: line.as_bytes(), i: 0 }.record()
}

fn tensors(v: Option<&Value>, dtype_key: &str) -> Vec<LayerTensor> {
    let Some(Value::List(items)) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| match item {
            Value::Record(r) => Some(LayerTensor {
                name: get(r, "Name")?.text()?.to_string(),
                dtype: get(r, dtype_key).and_then(Value::text).map(dtype_name),
            }),
            _ => None,
        })
        .collect()
}

/// Parse the layer list and I/O tensors out of a detailed build log (the whole log text; other
/// lines are ignored). Empty when the log has no "Layers:" section.
#[must_use]
pub fn from_build_log(log: &str) -> EngineInfo {
    #[derive(PartialEq)]
    enum Section {
        None,
        Layers,
        Io,
    }
    let mut info = EngineInfo::default();
    let mut section = Section::None;
    for raw in log.lines() {
        let line = raw.trim_start();
        // Log lines may carry a severity prefix such as `[V] ` before the message.
        let msg = strip_prefix_tag(line);
        if msg.starts_with("Layers:") {
            section = Section::Layers;
            info.layers.clear();
            continue;
        }
        if msg.starts_with("I/O Tensors:") {
            section = Section::Io;
            info.io.clear();
            continue;
        }
        if !msg.starts_with("Name: ") {
            section = Section::None;
            continue;
        }
        let r = parse_record(msg);
        match section {
            Section::Layers => info.layers.push(EngineLayer {
                name: get(&r, "Name").and_then(Value::text).unwrap_or_default().to_string(),
                layer_type: get(&r, "LayerType").and_then(Value::text).unwrap_or_default().to_string(),
                onnx_nodes: get(&r, "Metadata").and_then(Value::text).map(onnx_nodes).unwrap_or_default(),
                inputs: tensors(get(&r, "Inputs"), "Datatype"),
                outputs: tensors(get(&r, "Outputs"), "Datatype"),
            }),
            Section::Io => info.io.push(IoTensor {
                name: get(&r, "Name").and_then(Value::text).unwrap_or_default().to_string(),
                mode: get(&r, "IOMode").and_then(Value::text).unwrap_or_default().to_ascii_lowercase(),
                dtype: get(&r, "DataType").and_then(Value::text).map(dtype_name),
            }),
            Section::None => {}
        }
    }
    info
}

/// `[V] message` → `message`; `message` unchanged.
fn strip_prefix_tag(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('[')
        && let Some(end) = rest.find("] ")
        && end <= 8
    {
        return &rest[end + 2..];
    }
    line
}

/// Parse the engine inspector's JSON (`getEngineInformation(kJSON)` at `kDETAILED`): `{"Layers":
/// [{"Name", "LayerType", "Inputs": [{"Name", "Datatype" or "Format/Datatype"}], "Outputs",
/// "Metadata"}], "Bindings": [...]}`. Layers given as plain strings (lower verbosities) keep their
/// name only.
pub fn from_inspector_json(json: &str) -> Result<EngineInfo, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("engine inspector JSON: {e}"))?;
    let layers = v.get("Layers").and_then(serde_json::Value::as_array).ok_or("engine inspector JSON has no Layers")?;
    let tensor = |t: &serde_json::Value| -> Option<LayerTensor> {
        let name = t.get("Name")?.as_str()?.to_string();
        let dtype = t
            .get("Datatype")
            .or_else(|| t.get("DataType"))
            .or_else(|| t.get("Format/Datatype"))
            .and_then(serde_json::Value::as_str)
            .map(dtype_name);
        Some(LayerTensor { name, dtype })
    };
    let list = |l: &serde_json::Value, key: &str| -> Vec<LayerTensor> {
        l.get(key)
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(tensor).collect())
            .unwrap_or_default()
    };
    let mut info = EngineInfo::default();
    for l in layers {
        if let Some(name) = l.as_str() {
            info.layers.push(EngineLayer {
                name: name.to_string(),
                layer_type: String::new(),
                onnx_nodes: Vec::new(),
                inputs: Vec::new(),
                outputs: Vec::new(),
            });
            continue;
        }
        let text = |k: &str| l.get(k).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        info.layers.push(EngineLayer {
            name: text("Name"),
            layer_type: text("LayerType"),
            onnx_nodes: onnx_nodes(&text("Metadata")),
            inputs: list(l, "Inputs"),
            outputs: list(l, "Outputs"),
        });
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of a real TensorRT-RTX 1.7.1 detailed build log (`samples/layernorm_overflow.onnx`, Cast
    /// rewrite with ln/square/Pow kept FP32, every tensor marked), strides and formats shortened.
    const LOG: &str = "[V] Engine generation completed in 0.161093 seconds.
[V] Layers:
Name: __myl_Move_myl0_3, LayerType: kgen, Inputs: [], Constants: [], Outputs: [ { Name: (Unnamed Layer* 11) [Shuffle]_output, Dimensions: [1,1,1], Strides: [1,1,1], StrideOrder: [2,1,0], Datatype: Float, Format: (Linear) Row major linear format }], TacticName: __myl_Move_0xe9af, StreamId: 0, Metadata: 
Name: __myl_Cast_myl0_6, LayerType: kgen, Inputs: [ { Name: x, Dimensions: [1,16,64], Datatype: Float, Format: (Linear) Row major linear format }], Constants: [], Outputs: [ { Name: x__fp16, Dimensions: [1,16,64], Datatype: Half, Format: (Linear) Row major linear format }], TacticName: __myl_Cast_0x4d40, StreamId: 0, Metadata: [ONNX Layer: x__fp16__cast]
Name: proj/MatMul_myl0_7, LayerType: gemm, Inputs: [ { Name: x__fp16, Dimensions: [1,16,64], Datatype: Half, Format: (Linear) Row major linear format }], Constants: [ { Name: __mye2414_dconst_myl0, Dimensions: [1,64,64], Datatype: Half, Format: (Linear) Row major linear format }], Outputs: [ { Name: proj/matmul_out, Dimensions: [1,16,64], Datatype: Half, Format: (Linear) Row major linear format }], TacticName: __myelin_CASK_STUB, StreamId: 0, Metadata: [ONNX Layer: proj/MatMul]
Name: __myl_AddMeanSubCastMul_myl0_8, LayerType: kgen, Inputs: [ { Name: proj/matmul_out, Dimensions: [1,16,64], Datatype: Half, Format: (Linear) Row major linear format }], Constants: [], Outputs: [ { Name: hidden, Dimensions: [1,16,64], Datatype: Half, Format: (Linear) Row major linear format }, { Name: ln/squared, Dimensions: [1,16,64], Datatype: Float, Format: (Linear) Row major linear format }], TacticName: __myl_AddMean_0x1, StreamId: 0, Metadata: [ONNX Layer: proj/Add][ONNX Layer: ln/square/Pow]

I/O Tensors:
 Name: x, IOMode: Input, DataType: Float, Dimensions: [1,16,64], Location: Device, IsShapeInferenceIO: false, ProfileInfo: [ { MinShape: [1,16,64], OptShape: [1,16,64], MaxShape: [1,16,64], Format: Row major linear FP32 format (kLINEAR) }]
 Name: ln/squared, IOMode: Output, DataType: Float, Dimensions: [1,16,64], Location: Device, IsShapeInferenceIO: false, ProfileInfo: [ { Format: Row major linear FP32 format (kLINEAR) }]

Engine Metadata:
 Multi-Device: Disabled
[V] Adding 1 engine(s) to plan file.";

    #[test]
    fn parses_the_detailed_build_log() {
        let info = from_build_log(LOG);
        assert_eq!(info.layers.len(), 4);
        let shuffle = &info.layers[0];
        assert_eq!(shuffle.outputs[0].name, "(Unnamed Layer* 11) [Shuffle]_output");
        assert!(shuffle.onnx_nodes.is_empty());
        let gemm = &info.layers[2];
        assert_eq!((gemm.name.as_str(), gemm.layer_type.as_str()), ("proj/MatMul_myl0_7", "gemm"));
        assert_eq!(gemm.onnx_nodes, ["proj/MatMul"]);
        assert_eq!(gemm.inputs, [LayerTensor { name: "x__fp16".into(), dtype: Some("float16".into()) }]);
        let fused = &info.layers[3];
        assert_eq!(fused.onnx_nodes, ["proj/Add", "ln/square/Pow"]);
        assert_eq!(fused.outputs.len(), 2);
        assert_eq!(info.dtype_of("ln/squared"), Some("float32"));
        assert_eq!(info.dtype_of("hidden"), Some("float16"));
        assert_eq!(info.producer("hidden").map(|l| l.name.as_str()), Some("__myl_AddMeanSubCastMul_myl0_8"));
        assert_eq!(info.layers_of_node("ln/square/Pow").count(), 1);
        assert_eq!(info.io.len(), 2);
        assert_eq!((info.io[1].mode.as_str(), info.io[1].dtype.as_deref()), ("output", Some("float32")));
    }

    #[test]
    fn names_with_separators_and_brackets_survive() {
        let r = parse_record(
            "Name: a, b [c] (d, e), LayerType: kgen, Outputs: [ { Name: t(x)[0], Datatype: Half }], Metadata: [ONNX Layer: n[0]][ONNX Layer: m]",
        );
        assert_eq!(get(&r, "Name").and_then(Value::text), Some("a, b [c] (d, e)"));
        let outputs = tensors(get(&r, "Outputs"), "Datatype");
        assert_eq!((outputs[0].name.as_str(), outputs[0].dtype.as_deref()), ("t(x)[0]", Some("float16")));
        assert_eq!(onnx_nodes(get(&r, "Metadata").and_then(Value::text).unwrap_or_default()), ["n[0]", "m"]);
        assert_eq!(onnx_nodes("[ONNX Layer: a]\u{1e}[ONNX Layer: b]"), ["a", "b"]);
    }

    #[test]
    fn dtype_names() {
        for (trt, ours) in [
            ("Float", "float32"),
            ("Half", "float16"),
            ("Row major linear FP32", "float32"),
            ("Channel major FP16 format where channel % 8 == 0", "float16"),
            ("Int64", "int64"),
            ("Bool", "bool"),
            ("UInt8", "uint8"),
            ("BFloat16", "bfloat16"),
            ("FP8", "fp8"),
        ] {
            assert_eq!(dtype_name(trt), ours, "{trt}");
        }
    }

    #[test]
    fn parses_inspector_json() -> Result<(), String> {
        let json = r#"{"Layers": [
            {"Name": "conv1 + relu1", "LayerType": "CaskConvolution",
             "Inputs": [{"Name": "input", "Location": "Device", "Dimensions": [1,3,8,8], "Format/Datatype": "Row major linear FP32"}],
             "Outputs": [{"Name": "relu_out", "Location": "Device", "Dimensions": [1,4,8,8], "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
             "Metadata": "[ONNX Layer: /conv1/Conv]\u001e[ONNX Layer: /relu1/Relu]"},
            "reformat_only_name"],
            "Bindings": ["input", "relu_out"]}"#;
        let info = from_inspector_json(json)?;
        assert_eq!(info.layers.len(), 2);
        assert_eq!(info.layers[0].onnx_nodes, ["/conv1/Conv", "/relu1/Relu"]);
        assert_eq!(info.dtype_of("relu_out"), Some("float16"));
        assert!(from_inspector_json("{}").is_err());
        Ok(())
    }
}
