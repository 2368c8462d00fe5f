//! Polygraphy's JSON files: input data (`polygraphy run --save-inputs`) and run results
//! (`polygraphy run --save-outputs`, alias `--save-results`).
//!
//! Both wrap every array as `{"array": B64, "polygraphy_class": "ndarray"}`, where `B64` is the
//! standard base64 of a complete `.npy` file (see [`crate::io::npy`]).
//!
//! - An **inputs file** is a JSON list with one object per iteration, mapping input names to
//!   arrays. Polygraphy also loads a file holding a single such object; so does this module.
//! - A **run-results file** is `{"lst": [[runner_name, [iteration, ...]], ...], "polygraphy_class":
//!   "RunResults"}`, each iteration being `{"outputs": {name: {"values": ARRAY, "polygraphy_class":
//!   "LazyArray"}}, "runtime": seconds, "runner_name": ..., "polygraphy_class":
//!   "IterationResult"}`. Outputs are in the runner's (topological) order, and that order is kept.
//!
//! Reading is lenient about older spellings: outputs stored directly as an array (without the
//! `LazyArray` wrapper), `LazyNumpyArray`, legacy `"__polygraphy_encoded_<type>":
//! "polygraphy_serialized_json_type"` markers, latin-1 instead of base64 payloads and payloads
//! that are `.npz` archives (the first array is used) are all accepted. Bare `NaN`/`Infinity`
//! literals, which Python's `json` writes for non-finite floats, are read as `null`.
//! `PyTorch` tensors (`"polygraphy_class": "Tensor"`, a pickle) are refused with an explanation.
//!
//! Writing produces what Polygraphy itself writes (4-space indented JSON, the same key order and
//! `.npy` payloads byte-identical to `numpy.save`), so `polygraphy run --load-inputs` and
//! `RunResults.load` read the files.

use std::io::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::io::npy;
use crate::runner::Tensors;
use crate::tensor::Tensor;

/// The key Polygraphy adds to every object it encodes from a custom type.
const CLASS_KEY: &str = "polygraphy_class";
/// Old Polygraphy versions marked types with `"__polygraphy_encoded_<type>": LEGACY_MARKER`.
const LEGACY_PREFIX: &str = "__polygraphy_encoded_";
const LEGACY_MARKER: &str = "polygraphy_serialized_json_type";

/// What a Polygraphy JSON file holds, as far as [`sniff`] can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Input data: a list of feed dicts (or a single feed dict).
    Inputs,
    /// Run results (`polygraphy run --save-outputs`).
    RunResults,
    /// Comparison results (`polygraphy run --save-accuracy-results`), which hold no tensors.
    AccuracyResults,
    /// Not JSON, or JSON of another shape.
    Unknown,
}

/// Outputs of every runner in a Polygraphy run, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunResults {
    /// One entry per runner (names may repeat, as in Polygraphy).
    pub runners: Vec<RunnerResults>,
}

/// The iterations of one runner.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunnerResults {
    /// Runner name, e.g. `trt-runner-N0-01/02/25-10:00:00`.
    pub name: String,
    /// One entry per inference iteration.
    pub iterations: Vec<IterationResult>,
}

/// The outputs of one iteration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IterationResult {
    /// Output tensors in the runner's order.
    pub outputs: Tensors,
    /// Inference time in seconds, when recorded.
    pub runtime: Option<f64>,
}

/// Tell an inputs file from a run-results file without decoding it. Looks only at the first key
/// and at the type marker that Polygraphy writes as the last key of the top-level object, so it
/// is cheap on large files; the `read_*` functions still validate everything.
#[must_use]
pub fn sniff(bytes: &[u8]) -> Kind {
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let Some(start) = text.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Kind::Unknown;
    };
    match text[start] {
        b'[' => Kind::Inputs,
        b'{' => match top_level_class(text).as_deref() {
            Some("RunResults") => Kind::RunResults,
            Some("AccuracyResults") => Kind::AccuracyResults,
            Some(_) => Kind::Unknown,
            None if first_key_is_list(&text[start + 1..], "lst") => Kind::RunResults,
            None => Kind::Inputs,
        },
        _ => Kind::Unknown,
    }
}

/// The class named by the last key of the top-level object, if that key is a type marker.
fn top_level_class(text: &[u8]) -> Option<String> {
    let tail = String::from_utf8_lossy(&text[text.len().saturating_sub(512)..]);
    let rest = tail.trim_end().strip_suffix('}')?.trim_end().strip_suffix('"')?;
    let open = rest.rfind('"')?;
    let value = &rest[open + 1..];
    let rest = rest[..open].trim_end().strip_suffix(':')?.trim_end().strip_suffix('"')?;
    let key = &rest[rest.rfind('"')? + 1..];
    if key == CLASS_KEY {
        Some(value.to_string())
    } else if value == LEGACY_MARKER {
        key.strip_prefix(LEGACY_PREFIX).map(str::to_string)
    } else {
        None
    }
}

/// True when the object body (after its `{`) starts with `"key": [`.
fn first_key_is_list(body: &[u8], key: &str) -> bool {
    let head = String::from_utf8_lossy(&body[..body.len().min(256)]);
    head.trim_start()
        .strip_prefix('"')
        .and_then(|s| s.strip_prefix(key))
        .and_then(|s| s.strip_prefix('"'))
        .and_then(|s| s.trim_start().strip_prefix(':'))
        .is_some_and(|s| s.trim_start().starts_with('['))
}

/// Read an inputs file: one [`Tensors`] per iteration, inputs in file order.
pub fn read_inputs_json(bytes: &[u8]) -> Result<Vec<Tensors>> {
    let value = parse_json(bytes)?;
    let items: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => {
            match class_of(map).as_deref() {
                None => {}
                Some("RunResults") => {
                    return Err(Error::input(
                        "this is a Polygraphy run-results file (polygraphy run --save-outputs), not input data; \
                         pass the file written by --save-inputs",
                    ));
                }
                Some(other) => {
                    return Err(Error::input(format!(
                        "this is a Polygraphy {other} file, not input data (polygraphy run --save-inputs)"
                    )));
                }
            }
            vec![&value]
        }
        other => {
            return Err(Error::input(format!(
                "not Polygraphy input data: expected a list of iterations, found {}",
                kind_of(other)
            )));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(it, item)| {
            let Value::Object(feed) = item else {
                return Err(Error::input(format!(
                    "Polygraphy input data, iteration {it}: expected an object mapping input names to arrays, found {}",
                    kind_of(item)
                )));
            };
            feed.iter()
                .map(|(name, v)| {
                    decode_array(v).map(|t| (name.clone(), t)).map_err(|e| {
                        Error::input(format!("Polygraphy input data, iteration {it}, input '{name}': {e}"))
                    })
                })
                .collect()
        })
        .collect()
}

/// Write an inputs file the way `polygraphy run --save-inputs` does.
#[must_use]
pub fn write_inputs_json(iterations: &[Tensors]) -> Vec<u8> {
    let list = iterations
        .iter()
        .map(|tensors| Value::Object(tensors.iter().map(|(name, t)| (name.clone(), encode_array(t))).collect()))
        .collect();
    to_pretty_json(&Value::Array(list))
}

/// Read a run-results file (`--save-outputs`), keeping runner, iteration and output order.
pub fn read_run_results(bytes: &[u8]) -> Result<RunResults> {
    let value = parse_json(bytes)?;
    let runners = walk_run_results(&value, &mut decode_array)?
        .into_iter()
        .map(|(name, iterations)| RunnerResults {
            name,
            iterations: iterations.into_iter().map(|(outputs, runtime)| IterationResult { outputs, runtime }).collect(),
        })
        .collect();
    Ok(RunResults { runners })
}

/// One runner of a run-results file with each array as `T`: its name and, per iteration, the
/// outputs in file order and the runtime.
pub(crate) type Walked<T> = (String, Vec<(Vec<(String, T)>, Option<f64>)>);

/// Walk a parsed run-results file, turning each encoded array into a `T` with `array` (decoding
/// it, or noting where its payload is). Structure errors are those of [`read_run_results`].
pub(crate) fn walk_run_results<T>(value: &Value, array: &mut dyn FnMut(&Value) -> Result<T>) -> Result<Vec<Walked<T>>> {
    let top = match value {
        Value::Object(top) => top,
        Value::Array(_) => {
            return Err(Error::input(
                "this looks like Polygraphy input data (a list of iterations, from --save-inputs), not run results (--save-outputs)",
            ));
        }
        other => {
            return Err(Error::input(format!(
                "not a Polygraphy run-results file: expected an object, found {}",
                kind_of(other)
            )));
        }
    };
    match class_of(top).as_deref() {
        None | Some("RunResults") => {}
        Some(other) => {
            return Err(Error::input(format!(
                "this is a Polygraphy {other} file, not run results (polygraphy run --save-outputs)"
            )));
        }
    }
    let Some(Value::Array(lst)) = top.get("lst") else {
        return Err(Error::input(
            "not a Polygraphy run-results file: it has no \"lst\" list (input data from --save-inputs is read differently)",
        ));
    };
    let mut runners = Vec::with_capacity(lst.len());
    for (r, entry) in lst.iter().enumerate() {
        let (name, iterations) = match entry {
            Value::Array(pair) if pair.len() == 2 => match (&pair[0], &pair[1]) {
                (Value::String(name), Value::Array(iterations)) => (name, iterations),
                _ => return Err(bad_runner_entry(r)),
            },
            _ => return Err(bad_runner_entry(r)),
        };
        let iterations = iterations
            .iter()
            .enumerate()
            .map(|(it, v)| {
                read_iteration(v, array)
                    .map_err(|e| Error::input(format!("Polygraphy run results, runner '{name}', iteration {it}{e}")))
            })
            .collect::<Result<_>>()?;
        runners.push((name.clone(), iterations));
    }
    Ok(runners)
}

/// Append the iterations of `more` to `results`, matching runners by name (Polygraphy's
/// `RunResults.concat`, used for directories of per-iteration files).
pub fn concat_run_results(results: &mut RunResults, more: RunResults) {
    for runner in more.runners {
        match results.runners.iter_mut().find(|r| r.name == runner.name) {
            Some(existing) => existing.iterations.extend(runner.iterations),
            None => results.runners.push(runner),
        }
    }
}

fn bad_runner_entry(r: usize) -> Error {
    Error::input(format!("Polygraphy run results: entry {r} of \"lst\" is not a [runner_name, [iterations...]] pair"))
}

/// One `IterationResult`; errors are suffixes for the caller's context (`: ...` or `, output ...`).
#[allow(clippy::type_complexity)]
fn read_iteration<T>(
    v: &Value,
    array: &mut dyn FnMut(&Value) -> Result<T>,
) -> Result<(Vec<(String, T)>, Option<f64>), String> {
    let Value::Object(m) = v else {
        return Err(format!(": expected an IterationResult object, found {}", kind_of(v)));
    };
    match class_of(m).as_deref() {
        None | Some("IterationResult") => {}
        Some(other) => return Err(format!(": expected an IterationResult, found a {other}")),
    }
    let Some(Value::Object(outputs)) = m.get("outputs") else {
        return Err(": no \"outputs\" object".to_string());
    };
    let runtime = match m.get("runtime") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => return Err(format!(": \"runtime\" is {}, not a number", kind_of(other))),
    };
    let outputs = outputs
        .iter()
        .map(|(name, v)| array(v).map(|t| (name.clone(), t)).map_err(|e| format!(", output '{name}': {e}")))
        .collect::<Result<_, _>>()?;
    Ok((outputs, runtime))
}

/// Write a run-results file the way `polygraphy run --save-outputs` does.
#[must_use]
pub fn write_run_results(results: &RunResults) -> Vec<u8> {
    to_pretty_json(&run_results_value(results, |_, _, t| encode_array(t)))
}

/// The JSON value of a run-results file, each array's encoding given by `array(runner, iteration,
/// tensor)`.
fn run_results_value(results: &RunResults, mut array: impl FnMut(usize, usize, &Tensor) -> Value) -> Value {
    let lst = results
        .runners
        .iter()
        .enumerate()
        .map(|(ri, runner)| {
            let iterations = runner
                .iterations
                .iter()
                .enumerate()
                .map(|(ii, it)| {
                    let outputs: Map<String, Value> = it
                        .outputs
                        .iter()
                        .map(|(name, t)| {
                            let mut lazy = Map::new();
                            lazy.insert("values".into(), array(ri, ii, t));
                            lazy.insert(CLASS_KEY.into(), "LazyArray".into());
                            (name.clone(), Value::Object(lazy))
                        })
                        .collect();
                    let mut m = Map::new();
                    m.insert("outputs".into(), Value::Object(outputs));
                    m.insert(
                        "runtime".into(),
                        it.runtime.and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number),
                    );
                    m.insert("runner_name".into(), runner.name.clone().into());
                    m.insert(CLASS_KEY.into(), "IterationResult".into());
                    Value::Object(m)
                })
                .collect();
            Value::Array(vec![runner.name.clone().into(), Value::Array(iterations)])
        })
        .collect();
    let mut top = Map::new();
    top.insert("lst".into(), Value::Array(lst));
    top.insert(CLASS_KEY.into(), "RunResults".into());
    Value::Object(top)
}

/// One tensor of a streamed run-results file: name, dtype, shape; its bytes come from the writer's
/// callback when it is written.
pub type StreamedArray = (String, crate::tensor::DType, Vec<usize>);

/// Write one runner's run-results file to `w` (the bytes [`write_run_results`] writes), holding one
/// tensor at a time: `iterations` lists each iteration's tensors and runtime, and `data(iteration,
/// name, sink)` writes that tensor's little-endian bytes to `sink` when its turn comes (base64 is
/// encoded on the way, so not even the encoded text of one tensor is held).
pub fn write_run_results_streamed(
    w: &mut dyn std::io::Write,
    runner: &str,
    iterations: &[(Vec<StreamedArray>, Option<f64>)],
    data: &mut dyn FnMut(usize, &str, &mut dyn std::io::Write) -> Result<()>,
) -> Result<()> {
    use crate::tensor::DType;
    // The file's text with a placeholder for each array's base64 text (a zero-element tensor
    // stands in for each: only names, order and runtime matter here).
    // A marker no name contains (names are keys of the same text).
    let names =
        || std::iter::once(runner).chain(iterations.iter().flat_map(|(a, _)| a.iter().map(|(n, _, _)| n.as_str())));
    let mut nonce = 0usize;
    while names().any(|n| n.contains(&format!("@@trtlens{nonce}-"))) {
        nonce += 1;
    }
    let open = format!("\"@@trtlens{nonce}-");
    let placeholder = |k: usize| format!("@@trtlens{nonce}-{k}@@");
    let mut order: Vec<(usize, usize)> = Vec::new();
    let shell = RunResults {
        runners: vec![RunnerResults {
            name: runner.to_string(),
            iterations: iterations
                .iter()
                .map(|(arrays, runtime)| IterationResult {
                    outputs: arrays
                        .iter()
                        .filter_map(|(n, _, _)| {
                            Tensor::from_bytes(DType::Uint8, vec![0], vec![]).ok().map(|t| (n.clone(), t))
                        })
                        .collect(),
                    runtime: *runtime,
                })
                .collect(),
        }],
    };
    let mut next_in: Vec<usize> = vec![0; iterations.len()];
    let value = run_results_value(&shell, |_, ii, _| {
        let ai = next_in[ii];
        next_in[ii] += 1;
        order.push((ii, ai));
        let mut m = Map::new();
        m.insert("array".into(), placeholder(order.len() - 1).into());
        m.insert(CLASS_KEY.into(), "ndarray".into());
        Value::Object(m)
    });
    let text = String::from_utf8(to_pretty_json(&value)).map_err(|e| Error::input(e.to_string()))?;
    let io = |e: std::io::Error| Error::input(format!("cannot write: {e}"));
    // Placeholders appear in the text's order (keys may be sorted), each once.
    let mut rest = text.as_str();
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        let digits = after.find("@@\"").ok_or_else(|| Error::input("cannot lay out the run-results file"))?;
        let k: usize = after[..digits].parse().map_err(|_| Error::input("cannot lay out the run-results file"))?;
        let &(ii, ai) = order.get(k).ok_or_else(|| Error::input("cannot lay out the run-results file"))?;
        let (name, dtype, shape) = &iterations[ii].0[ai];
        w.write_all(&rest.as_bytes()[..at]).and_then(|()| w.write_all(b"\"")).map_err(io)?;
        {
            let mut enc = base64::write::EncoderWriter::new(&mut *w, &BASE64);
            enc.write_all(&npy::npy_header(*dtype, shape)).map_err(io)?;
            data(ii, name, &mut enc)?;
            enc.finish().map_err(io)?;
        }
        w.write_all(b"\"").map_err(io)?;
        rest = &after[digits + 3..];
    }
    w.write_all(rest.as_bytes()).map_err(io)
}

/// Encode a tensor as Polygraphy encodes a numpy array.
#[must_use]
pub fn encode_array(t: &Tensor) -> Value {
    let mut m = Map::new();
    m.insert("array".into(), BASE64.encode(npy::write_npy(t)).into());
    m.insert(CLASS_KEY.into(), "ndarray".into());
    Value::Object(m)
}

/// Decode an encoded numpy array (also accepting a `LazyArray` wrapper and legacy spellings).
pub fn decode_array(v: &Value) -> Result<Tensor> {
    decode_array_at(v, 0)
}

fn decode_array_at(v: &Value, depth: usize) -> Result<Tensor> {
    decode_payload_text(payload_at(v, depth)?)
}

/// The payload text of an encoded numpy array (through `LazyArray` wrappers and legacy spellings),
/// not decoded yet.
pub(crate) fn array_payload(v: &Value) -> Result<&str> {
    payload_at(v, 0)
}

fn payload_at(v: &Value, depth: usize) -> Result<&str> {
    let Value::Object(m) = v else {
        return Err(Error::input(format!("expected an encoded numpy array, found {}", kind_of(v))));
    };
    let class = class_of(m);
    let torch = || {
        Error::input(
            "this is a PyTorch tensor (stored as a pickle), which trtlens does not read; save numpy arrays instead",
        )
    };
    match class.as_deref() {
        Some("LazyArray" | "LazyNumpyArray") => {
            let inner = m.get("values").ok_or_else(|| Error::input("LazyArray without \"values\""))?;
            return payload_at(inner, depth + 1);
        }
        Some("Tensor") => return Err(torch()),
        Some("FormattedArray") => {
            return Err(Error::input(
                "this is a Polygraphy FormattedArray (a TensorRT vectorized-format buffer), which trtlens does not read",
            ));
        }
        Some("ndarray") | None => {}
        Some(other) => return Err(Error::input(format!("expected a numpy array, found a Polygraphy {other}"))),
    }
    match m.get("array") {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Error::input(format!("\"array\" is {}, not a string", kind_of(other)))),
        None if m.contains_key("tensor") => Err(torch()),
        // An unmarked LazyArray from a tool that leaves out the class markers.
        None if class.is_none() && depth == 0 && m.contains_key("values") => payload_at(&m["values"], depth + 1),
        None => Err(Error::input("expected an encoded numpy array, but the object has no \"array\" field")),
    }
}

/// Decode an array payload (base64 or latin-1 text of a `.npy` file or `.npz` archive).
pub(crate) fn decode_payload_text(payload: &str) -> Result<Tensor> {
    let bytes = decode_payload(payload)?;
    if bytes.starts_with(npy::MAGIC) {
        npy::read_npy(&bytes)
    } else if bytes.starts_with(b"PK") {
        // Very old Polygraphy versions stored an .npz archive holding the one array.
        let mut arrays = npy::read_npz(&bytes)?;
        if arrays.is_empty() {
            return Err(Error::input("the array payload is an empty .npz archive"));
        }
        Ok(arrays.swap_remove(0).1)
    } else {
        Err(Error::input("the array payload is neither a .npy array nor a .npz archive"))
    }
}

/// Base64 (current Polygraphy) or latin-1 text (very old versions) to bytes.
fn decode_payload(payload: &str) -> Result<Vec<u8>> {
    match BASE64.decode(payload) {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let latin1: Option<Vec<u8>> = payload.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
            match latin1 {
                Some(bytes) if bytes.starts_with(npy::MAGIC) || bytes.starts_with(b"PK") => Ok(bytes),
                _ => Err(Error::input(format!("the array payload is not valid base64: {e}"))),
            }
        }
    }
}

/// The Polygraphy type an object was encoded from, if it is marked.
fn class_of(m: &Map<String, Value>) -> Option<String> {
    if let Some(Value::String(class)) = m.get(CLASS_KEY) {
        return Some(class.clone());
    }
    m.iter().find_map(|(k, v)| match v {
        Value::String(s) if s == LEGACY_MARKER => k.strip_prefix(LEGACY_PREFIX).map(str::to_string),
        _ => None,
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Parse JSON, keeping key order. Python's `json` writes non-finite floats as bare `NaN`,
/// `Infinity` and `-Infinity`, which are not JSON; when parsing fails, they are read as `null`.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(e) => {
            if let Some(fixed) = null_non_finite(bytes)
                && let Ok(v) = serde_json::from_slice(&fixed)
            {
                return Ok(v);
            }
            let hint = if e.is_eof() { " (the file is truncated)" } else { "" };
            Err(Error::input(format!("not valid JSON: {e}{hint}")))
        }
    }
}

/// Replace bare `NaN`, `Infinity` and `-Infinity` outside strings with `null`; `None` if there
/// are none.
fn null_non_finite(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if let Some(token) =
            [&b"-Infinity"[..], b"Infinity", b"NaN"].into_iter().find(|t| bytes[i..].starts_with(t))
        {
            out.extend_from_slice(b"null");
            i += token.len();
            changed = true;
            continue;
        }
        out.push(b);
        i += 1;
    }
    changed.then_some(out)
}

/// JSON as Python's `json.dumps(obj, indent=4)` writes it.
fn to_pretty_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    v.serialize(&mut ser).expect("serializing a JSON value into memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;
    use crate::tensor::DType;

    fn fixture(name: &str) -> Result<Vec<u8>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/io").join(name);
        std::fs::read(&path).map_err(|e| Error::input(format!("{}: {e}", path.display())))
    }

    fn t(r: std::result::Result<Tensor, crate::tensor::TensorError>) -> Result<Tensor> {
        r.map_err(|e| Error::input(e.to_string()))
    }

    fn names(tensors: &Tensors) -> Vec<&str> {
        tensors.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Ok(v) => format!("unexpectedly succeeded: {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_polygraphy_inputs_fixture() -> Result<()> {
        let bytes = fixture("polygraphy_inputs.json")?;
        assert_eq!(sniff(&bytes), Kind::Inputs);
        let iterations = read_inputs_json(&bytes)?;
        assert_eq!(iterations.len(), 2);
        for (it, tensors) in iterations.iter().enumerate() {
            let k = it as f64;
            assert_eq!(names(tensors), ["input_ids", "pixel/values:0", "mask", "scale"]);
            let ids = &tensors[0].1;
            assert_eq!((ids.dtype(), ids.shape()), (DType::Int64, &[1, 4][..]));
            assert_eq!(ids.to_f64_vec(), [0.0, 1.0, 2.0, 3.0].map(|v| v + 100.0 * k));
            let pixels = &tensors[1].1;
            assert_eq!((pixels.dtype(), pixels.shape()), (DType::Float32, &[1, 2, 2][..]));
            assert_eq!(pixels.to_f64_vec(), [0.0, 0.25, 0.5, 0.75].map(|v| v - k));
            let mask = &tensors[2].1;
            assert_eq!((mask.dtype(), mask.shape(), mask.bytes()), (DType::Bool, &[4][..], &[1, 0, it as u8, 1][..]));
            let scale = &tensors[3].1;
            assert_eq!((scale.dtype(), scale.shape(), scale.to_f64_vec()), (DType::Float16, &[][..], vec![0.5 + k]));
        }
        // Writing gives Polygraphy's exact bytes back.
        assert_eq!(String::from_utf8_lossy(&write_inputs_json(&iterations)), String::from_utf8_lossy(&bytes));
        Ok(())
    }

    /// The streamed writer of one runner against the in-memory writer.
    fn streamed(runner: &RunnerResults) -> Result<Vec<u8>> {
        let listed: Vec<(Vec<StreamedArray>, Option<f64>)> = runner
            .iterations
            .iter()
            .map(|it| {
                (it.outputs.iter().map(|(n, t)| (n.clone(), t.dtype(), t.shape().to_vec())).collect(), it.runtime)
            })
            .collect();
        let mut out = Vec::new();
        let mut calls = 0;
        write_run_results_streamed(&mut out, &runner.name, &listed, &mut |it, name, sink| {
            calls += 1;
            let t = runner.iterations[it].outputs.iter().find(|(n, _)| n == name).map(|(_, t)| t);
            let t = t.ok_or_else(|| Error::input(format!("no {name}")))?;
            sink.write_all(t.bytes()).map_err(|e| Error::input(e.to_string()))
        })?;
        let want: usize = runner.iterations.iter().map(|it| it.outputs.len()).sum();
        assert_eq!(calls, want, "each tensor read once");
        Ok(out)
    }

    #[test]
    fn streamed_writer_writes_the_same_bytes() -> Result<()> {
        let results = read_run_results(&fixture("polygraphy_outputs.json")?)?;
        for runner in &results.runners {
            let eager = write_run_results(&RunResults { runners: vec![runner.clone()] });
            assert_eq!(String::from_utf8_lossy(&streamed(runner)?), String::from_utf8_lossy(&eager), "{}", runner.name);
        }
        // Names that look like the writer's markers, and an empty run.
        let x = t(Tensor::from_f32(&[2], &[1.5, -2.0]))?;
        let tricky = RunnerResults {
            name: "@@trtlens0-0@@".into(),
            iterations: vec![
                IterationResult {
                    outputs: vec![("@@trtlens0-1@@".into(), x.clone()), ("\"@@trtlens1-0@@".into(), x.clone())],
                    runtime: Some(0.5),
                },
                IterationResult { outputs: vec![("y".into(), x)], runtime: None },
            ],
        };
        let eager = write_run_results(&RunResults { runners: vec![tricky.clone()] });
        assert_eq!(String::from_utf8_lossy(&streamed(&tricky)?), String::from_utf8_lossy(&eager));
        assert_eq!(read_run_results(&streamed(&tricky)?)?, RunResults { runners: vec![tricky] });
        let empty = RunnerResults { name: "r".into(), iterations: vec![] };
        assert_eq!(streamed(&empty)?, write_run_results(&RunResults { runners: vec![empty] }));
        Ok(())
    }

    #[test]
    fn reads_polygraphy_run_results_fixture() -> Result<()> {
        let bytes = fixture("polygraphy_outputs.json")?;
        assert_eq!(sniff(&bytes), Kind::RunResults);
        let results = read_run_results(&bytes)?;
        let runner_names: Vec<&str> = results.runners.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(runner_names, ["onnxrt-runner-N0-01/02/25-10:00:00", "trt-runner-N0-01/02/25-10:00:00"]);
        for (r, runner) in results.runners.iter().enumerate() {
            assert_eq!(runner.iterations.len(), 2);
            for (it, iteration) in runner.iterations.iter().enumerate() {
                let (rf, itf) = (r as f64, it as f64);
                let expected_runtime = if (r, it) == (1, 1) { None } else { Some(0.25 / (1.0 + rf + itf)) };
                assert_eq!(iteration.runtime, expected_runtime);
                let outs = &iteration.outputs;
                assert_eq!(names(outs), ["z_logits", "argmax", "is_valid", "a_probs"], "file order, not sorted");
                let z = &outs[0].1;
                assert_eq!((z.dtype(), z.shape()), (DType::Float16, &[2, 3][..]));
                let want: Vec<f64> =
                    (0..6).map(|i| f64::from(f16::from_f64(f64::from(i) / 8.0 + itf + rf / 1024.0))).collect();
                assert_eq!(z.to_f64_vec(), want);
                let argmax = &outs[1].1;
                assert_eq!((argmax.dtype(), argmax.shape()), (DType::Int64, &[2][..]));
                assert_eq!([argmax.get_i64(0), argmax.get_i64(1)], [2, -(1i64 << 40) - it as i64]);
                let valid = &outs[2].1;
                assert_eq!((valid.dtype(), valid.bytes()), (DType::Bool, &[1, u8::from(it == 0)][..]));
                let probs = &outs[3].1;
                assert_eq!((probs.dtype(), probs.shape()), (DType::Float32, &[1, 2][..]));
                assert_eq!(probs.to_f64_vec(), [0.125 * (itf + 1.0), 1.0 - rf / 4.0]);
            }
        }
        assert_eq!(String::from_utf8_lossy(&write_run_results(&results)), String::from_utf8_lossy(&bytes));
        Ok(())
    }

    #[test]
    fn reads_a_real_polygraphy_cli_run() -> Result<()> {
        // `polygraphy run tiny.onnx --onnxrt --iterations 2 --save-inputs --save-outputs`, see
        // make_fixtures.py: x_half = float16(x), twice_ids = ids + ids, positive = x > 0.
        let inputs_bytes = fixture("cli_inputs.json")?;
        let outputs_bytes = fixture("cli_outputs.json")?;
        assert_eq!((sniff(&inputs_bytes), sniff(&outputs_bytes)), (Kind::Inputs, Kind::RunResults));
        let inputs = read_inputs_json(&inputs_bytes)?;
        let results = read_run_results(&outputs_bytes)?;
        assert_eq!(results.runners.len(), 1);
        let runner = &results.runners[0];
        assert!(runner.name.starts_with("onnxrt-runner-"), "{}", runner.name);
        assert_eq!((inputs.len(), runner.iterations.len()), (2, 2));
        for (feed, it) in inputs.iter().zip(&runner.iterations) {
            assert_eq!(names(feed), ["x", "ids"]);
            let (x, ids) = (&feed[0].1, &feed[1].1);
            assert_eq!(
                (x.dtype(), x.shape(), ids.dtype(), ids.shape()),
                (DType::Float32, &[2, 3][..], DType::Int64, &[2][..])
            );
            assert!(it.runtime.is_some_and(|r| r > 0.0 && r < 10.0));
            assert_eq!(names(&it.outputs), ["x_half", "twice_ids", "positive"]);
            let half: Vec<f64> = x.to_f64_vec().iter().map(|&v| f64::from(f16::from_f64(v))).collect();
            assert_eq!(it.outputs[0].1.to_f64_vec(), half);
            assert_eq!(it.outputs[0].1.dtype(), DType::Float16);
            let twice: Vec<i64> = (0..2).map(|i| 2 * ids.get_i64(i)).collect();
            assert_eq!((0..2).map(|i| it.outputs[1].1.get_i64(i)).collect::<Vec<_>>(), twice);
            let positive: Vec<u8> = x.to_f64_vec().iter().map(|&v| u8::from(v > 0.0)).collect();
            assert_eq!((it.outputs[2].1.dtype(), it.outputs[2].1.bytes()), (DType::Bool, &positive[..]));
        }
        // Distinct iterations (the data loader varies them).
        assert_ne!(inputs[0], inputs[1]);
        assert_eq!(read_run_results(&write_run_results(&results))?, results);
        assert_eq!(write_inputs_json(&inputs), inputs_bytes);
        Ok(())
    }

    #[test]
    fn round_trips_every_dtype() -> Result<()> {
        let tensors: Tensors = DType::ALL
            .iter()
            .enumerate()
            .map(|(i, &d)| (format!("t{i}_{d}"), Tensor::zeros(d, vec![i % 3, 2])))
            .collect();
        let iterations = vec![tensors.clone(), vec![], tensors.iter().rev().cloned().collect()];
        assert_eq!(read_inputs_json(&write_inputs_json(&iterations))?, iterations);
        let results = RunResults {
            runners: vec![
                RunnerResults {
                    name: "a".into(),
                    iterations: vec![IterationResult { outputs: tensors.clone(), runtime: Some(1e-5) }],
                },
                RunnerResults { name: "a".into(), iterations: vec![] },
            ],
        };
        assert_eq!(read_run_results(&write_run_results(&results))?, results);
        assert_eq!(read_run_results(&write_run_results(&RunResults::default()))?, RunResults::default());
        Ok(())
    }

    /// A `RunResults` file with one output, `x`, whose value object is `array`.
    fn run_results_with(array: &str, runtime: &str) -> String {
        format!(
            r#"{{"lst": [["r", [{{"outputs": {{"x": {array}}}, "runtime": {runtime}, "runner_name": "r"}}]]],
                "polygraphy_class": "RunResults"}}"#
        )
    }

    #[test]
    fn accepts_older_spellings_and_non_finite_literals() -> Result<()> {
        let x = t(Tensor::from_f32(&[2], &[1.5, -2.0]))?;
        let b64 = BASE64.encode(npy::write_npy(&x));
        let check = |json: String, runtime: Option<f64>| -> Result<()> {
            let results = read_run_results(json.as_bytes())?;
            let it = &results.runners[0].iterations[0];
            assert_eq!((it.outputs.clone(), it.runtime), (vec![("x".to_string(), x.clone())], runtime), "{json}");
            Ok(())
        };
        // A bare ndarray instead of a LazyArray; runtime NaN (Python writes a bare NaN).
        check(run_results_with(&format!(r#"{{"array": "{b64}", "polygraphy_class": "ndarray"}}"#), "NaN"), None)?;
        // LazyNumpyArray and legacy markers.
        let legacy = format!(
            r#"{{"values": {{"array": "{b64}", "__polygraphy_encoded_ndarray": "polygraphy_serialized_json_type"}},
                "__polygraphy_encoded_LazyNumpyArray": "polygraphy_serialized_json_type"}}"#
        );
        check(run_results_with(&legacy, "0.5"), Some(0.5))?;
        check(run_results_with(&format!(r#"{{"values": {{"array": "{b64}"}}}}"#), "null"), None)?;
        // An .npz payload (first array) and Infinity in a string stays untouched.
        let npz = BASE64.encode(npy::write_npz(&[("first".into(), x.clone())])?);
        let json = run_results_with(&format!(r#"{{"array": "{npz}", "note": "NaN Infinity"}}"#), "-Infinity");
        check(json, None)?;
        // Latin-1 payload.
        let latin1: String = npy::write_npy(&x).iter().map(|&b| char::from(b)).collect();
        let json = serde_json::to_string(&serde_json::json!({"x": {"array": latin1, "polygraphy_class": "ndarray"}}))
            .map_err(|e| Error::input(e.to_string()))?;
        assert_eq!(read_inputs_json(json.as_bytes())?, vec![vec![("x".to_string(), x.clone())]]);
        Ok(())
    }

    #[test]
    fn clear_errors() -> Result<()> {
        let x = t(Tensor::from_f32(&[1], &[1.0]))?;
        let inputs = write_inputs_json(&[vec![("x".into(), x.clone())]]);
        let outputs = write_run_results(&RunResults {
            runners: vec![RunnerResults {
                name: "r".into(),
                iterations: vec![IterationResult { outputs: vec![("y".into(), x)], runtime: None }],
            }],
        });
        assert!(err_text(read_inputs_json(&outputs)).contains("run-results file"));
        assert!(err_text(read_run_results(&inputs)).contains("looks like Polygraphy input data"));
        let e = err_text(read_inputs_json(&inputs[..inputs.len() / 2]));
        assert!(e.contains("not valid JSON") && e.contains("truncated"), "{e}");
        let e = err_text(read_inputs_json(b"[{\"x\": {\"array\": \"abc!\", \"polygraphy_class\": \"ndarray\"}}]"));
        assert!(e.contains("iteration 0, input 'x'") && e.contains("not valid base64"), "{e}");
        let e = err_text(read_inputs_json(b"[{\"x\": {\"tensor\": \"gAJ9\", \"polygraphy_class\": \"Tensor\"}}]"));
        assert!(e.contains("PyTorch tensor"), "{e}");
        let e = err_text(read_inputs_json(b"[{\"x\": {\"array\": \"AAAA\", \"polygraphy_class\": \"ndarray\"}}]"));
        assert!(e.contains("neither a .npy array nor a .npz"), "{e}");
        let e = err_text(read_inputs_json(b"[[1, 2]]"));
        assert!(e.contains("iteration 0: expected an object"), "{e}");
        let e = err_text(read_inputs_json(b"{\"lst\": [], \"polygraphy_class\": \"AccuracyResults\"}"));
        assert!(e.contains("Polygraphy AccuracyResults file"), "{e}");
        let e = err_text(read_run_results(run_results_with("{\"array\": 3}", "1").as_bytes()));
        assert!(e.contains("runner 'r', iteration 0, output 'x': \"array\" is a number"), "{e}");
        let e = err_text(read_run_results(b"{\"lst\": [[\"r\"]], \"polygraphy_class\": \"RunResults\"}"));
        assert!(e.contains("entry 0 of \"lst\""), "{e}");
        let e = err_text(read_run_results(b"{\"lst\": [[\"r\", [{\"runtime\": 1}]]]}"));
        assert!(e.contains("runner 'r', iteration 0: no \"outputs\""), "{e}");
        let e = err_text(read_run_results(b"{\"x\": {}}"));
        assert!(e.contains("no \"lst\" list"), "{e}");
        let e = err_text(read_run_results(b"NaN x"));
        assert!(e.contains("not valid JSON"), "{e}");
        Ok(())
    }

    /// Polygraphy and numpy themselves read what trtlens writes. Skipped (passing) when python3
    /// with polygraphy and numpy is not installed.
    #[test]
    fn polygraphy_reads_what_we_write() -> Result<()> {
        let probe = std::process::Command::new("python3").args(["-c", "import numpy, polygraphy.json"]).output();
        if !probe.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: python3 with numpy and polygraphy is not available");
            return Ok(());
        }
        let dir = tempfile::tempdir().map_err(|e| Error::input(e.to_string()))?;
        let tensors: Tensors = DType::ALL
            .iter()
            .map(|&d| {
                let n = 6 * d.size();
                let bytes: Vec<u8> =
                    (0..n).map(|i| if d == DType::Bool { (i % 2) as u8 } else { (i * 37 % 251) as u8 }).collect();
                Tensor::from_bytes(d, vec![2, 3], bytes)
                    .map(|t| (format!("/{d}:0"), t))
                    .map_err(|e| Error::input(e.to_string()))
            })
            .collect::<Result<_>>()?;
        let results = RunResults {
            runners: vec![RunnerResults {
                name: "trtlens".into(),
                iterations: vec![IterationResult { outputs: tensors.clone(), runtime: Some(0.5) }],
            }],
        };
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.path().join(name), bytes).map_err(|e| Error::input(e.to_string()))
        };
        write("in.json", &write_inputs_json(&[tensors.clone(), tensors.clone()]))?;
        write("out.json", &write_run_results(&results))?;
        write("t.npz", &npy::write_npz(&tensors)?)?;
        // Print name, dtype, shape and the raw bytes (hex) of every array as each reader sees it.
        let script = r#"
import sys, numpy as np
from polygraphy.json import load_json
from polygraphy.comparator import RunResults
d = sys.argv[1]
def show(name, a):
    print(name, a.dtype.str, list(a.shape), a.tobytes().hex())
feeds = load_json(d + "/in.json")
assert len(feeds) == 2
for k, v in feeds[1].items(): show(k, v)
res = RunResults.load(d + "/out.json")
for name, its in res.items():
    assert name == "trtlens" and its[0].runtime == 0.5
    for k, v in its[0].items(): show(k, v)
for k, v in np.load(d + "/t.npz").items(): show(k, v)
"#;
        let out = std::process::Command::new("python3")
            .args(["-c", script, &dir.path().display().to_string()])
            .output()
            .map_err(|e| Error::input(e.to_string()))?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let expected: Vec<String> = tensors
            .iter()
            .map(|(name, t)| {
                // numpy reports bfloat16 as raw 2-byte records.
                let descr = if t.dtype() == DType::Bfloat16 { "|V2" } else { t.dtype().npy_descr() };
                let hex: Vec<String> = t.bytes().iter().map(|b| format!("{b:02x}")).collect();
                format!("{name} {descr} [2, 3] {}", hex.concat())
            })
            .collect();
        // Polygraphy logs to stdout too; keep only the array lines (every name starts with '/').
        let stdout = String::from_utf8_lossy(&out.stdout);
        let shown: Vec<&str> = stdout.lines().filter(|l| l.starts_with('/')).collect();
        assert_eq!(shown, [&expected[..], &expected, &expected].concat());
        Ok(())
    }

    #[test]
    fn sniffs_kinds() {
        assert_eq!(sniff(b"  [ {} ]"), Kind::Inputs);
        assert_eq!(sniff(b"{\"x\": {\"array\": \"\", \"polygraphy_class\": \"ndarray\"}}"), Kind::Inputs);
        assert_eq!(sniff(b"{\"lst\": [], \"polygraphy_class\": \"RunResults\"}\n"), Kind::RunResults);
        assert_eq!(sniff(b"{\n \"lst\": [\n]}"), Kind::RunResults);
        assert_eq!(
            sniff(b"{\"lst\": [], \"__polygraphy_encoded_RunResults\": \"polygraphy_serialized_json_type\"}"),
            Kind::RunResults
        );
        assert_eq!(sniff(b"{\"lst\": [], \"polygraphy_class\": \"AccuracyResults\"}"), Kind::AccuracyResults);
        assert_eq!(sniff(b"{\"a\": 1, \"polygraphy_class\": \"Other\"}"), Kind::Unknown);
        assert_eq!(sniff(b"\x93NUMPY"), Kind::Unknown);
        assert_eq!(sniff(b""), Kind::Unknown);
    }
}
