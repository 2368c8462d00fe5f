//! ONNX Runtime runner (CPU execution provider), through the `ort` crate with `load-dynamic`: nothing is
//! linked or downloaded at build time, `libonnxruntime.so` is found and loaded at run time.
//!
//! * **Library.** Found by [`discover`] (explicit path, `ORT_DYLIB_PATH`, the Python `onnxruntime`
//!   package, library directories) and loaded once per process: ONNX Runtime and its environment are
//!   process-global, so every later runner reuses them. The path is always resolved here and handed to
//!   `ort::init_from`, which reports a bad library as an error (ort's own fallback lookup panics).
//! * **Capture.** The session is built from a rewritten model whose graph outputs are the original
//!   outputs followed by every requested intermediate (`ValueInfoProto` with a name only; ONNX Runtime
//!   infers the type). The rewrite never copies the model: protobuf merges a repeated field that occurs
//!   twice, so the encoded model followed by an encoded `ModelProto { graph { output: [...] } }` *is* the
//!   model with the extra outputs appended.
//! * **External data.** The model is loaded from memory with the session option
//!   `session.model_external_initializers_file_folder_path` set to the model's directory, so ONNX Runtime
//!   reads the weight files in place (relative locations and its own path checks preserved); no temp
//!   files, no copy of the weights.
//! * **Faithful values.** Graph optimisation is disabled (`ORT_DISABLE_ALL`): every node runs as written,
//!   no constant folding or fusion changes what an intermediate holds (marking every tensor an output
//!   blocks most fusions anyway, but not all rewrites). One intra-op thread, one inter-op thread,
//!   sequential execution and deterministic compute: the same inputs give bit-identical outputs from run
//!   to run, independent of the machine's core count.

mod convert;
pub mod discover;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use ::ort::environment::Environment;
use ::ort::session::Session;
use ::ort::session::builder::GraphOptimizationLevel;
use ::ort::value::DynValue;
use prost::Message;

use super::{NotCaptured, RunOutput, Runner, RunnerOptions, Tensors, one_line};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::model::graph::TensorKind;
use crate::model::proto::{GraphProto, ModelProto, ValueInfoProto};
use crate::model::tensor_proto;
use crate::tensor::Tensor;

/// Runner name in messages, manifests and reports.
const NAME: &str = "onnxruntime";

/// Session option naming the directory external data is read from when a model is loaded from memory.
const EXTERNAL_DATA_DIR_KEY: &str = "session.model_external_initializers_file_folder_path";

fn err(msg: impl Into<String>) -> Error {
    Error::runner(NAME, msg)
}

/// The loaded ONNX Runtime library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// The shared library file that was loaded.
    pub path: PathBuf,
    /// ONNX Runtime version (`1.31.1`), or `unknown`.
    pub version: String,
}

struct Loaded {
    env: Environment,
    library: Library,
}

/// The process-wide environment, set once the library is loaded and the environment built.
static LOADED: OnceLock<Loaded> = OnceLock::new();
/// The library `ort` holds once `init_from` succeeded (it cannot be unloaded or replaced afterwards).
static LIB_PATH: OnceLock<PathBuf> = OnceLock::new();
/// Serialises loading, so that concurrent runners neither race nor load twice.
static INIT: Mutex<()> = Mutex::new(());

/// Load ONNX Runtime (once per process) and return which library is in use.
///
/// `explicit` overrides discovery. Once a library is loaded it stays: asking for another explicit file
/// afterwards is an error rather than a silent switch.
pub fn load(explicit: Option<&Path>) -> Result<Library> {
    loaded(explicit).map(|l| l.library.clone())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn loaded(explicit: Option<&Path>) -> Result<&'static Loaded> {
    let _guard = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(l) = LOADED.get() {
        if let Some(p) = explicit {
            let wanted = discover::candidates(Some(p))?;
            if !wanted.iter().any(|c| same_file(&c.path, &l.library.path)) {
                return Err(err(format!(
                    "ONNX Runtime is already loaded in this process from {}; it cannot be replaced by {}",
                    l.library.path.display(),
                    p.display()
                )));
            }
        }
        return Ok(l);
    }
    // A library loaded by an earlier attempt whose environment failed: ort keeps it, so build on it.
    let candidates = match LIB_PATH.get() {
        Some(p) => vec![discover::Candidate { path: p.clone(), source: "already loaded".into() }],
        None => discover::candidates(explicit)?,
    };
    let mut failures = Vec::new();
    for c in candidates {
        match ::ort::init_from(&c.path) {
            Ok(builder) => {
                let path = LIB_PATH.get_or_init(|| c.path.clone()).clone();
                let env = builder
                    .with_name("trtlens")
                    .with_telemetry(false)
                    .build()
                    .map_err(|e| err(format!("cannot create the ONNX Runtime environment: {}", one_line(&e))))?;
                let version = library_version(&path);
                return Ok(LOADED.get_or_init(|| Loaded { env, library: Library { path, version } }));
            }
            Err(e) => failures.push(format!("{} ({}): {}", c.path.display(), c.source, load_error(&e))),
        }
    }
    Err(err(format!("cannot load ONNX Runtime: {}", failures.join("; "))))
}

/// Why a library file could not be loaded, without repeating its path.
fn load_error(e: &::ort::LoadDynamicError) -> String {
    use ::ort::LoadDynamicError as E;
    match e {
        // libloading's own text is just "dlopen failed"; the loader's reason is its source.
        E::Dlopen { error, .. } => match std::error::Error::source(error) {
            Some(why) => format!("not loadable: {}", one_line(&why)),
            None => format!("not loadable: {}", one_line(error)),
        },
        E::BadVersion { version_str, .. } => format!(
            "ONNX Runtime {version_str} is too old; trtlens needs 1.{}.0 or newer (`pip install -U onnxruntime`)",
            ::ort::MINOR_VERSION
        ),
        E::MissingApi { .. } => "not an ONNX Runtime library (no OrtGetApiBase symbol)".to_string(),
        E::InvalidVersionString => one_line(e),
    }
}

/// The version of the loaded library: from its build-info string when that names a release branch
/// (`git-branch=rel-1.31.1`), else from the (symlink-resolved) file name `libonnxruntime.so.1.31.1`.
/// The pip wheels say `git-branch=HEAD`, so for them the file name decides. (The exact string from
/// `OrtGetApiBase` is not exposed by `ort`, and reading it ourselves would take `unsafe` FFI.)
fn library_version(path: &Path) -> String {
    let info = ::ort::info();
    if let Some(v) = version_from_build_info(info) {
        return v;
    }
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    for p in [&real, &path.to_path_buf()] {
        if let Some(v) = p.file_name().and_then(|f| f.to_str()).and_then(discover::version_suffix)
            && !v.is_empty()
        {
            return v.iter().map(ToString::to_string).collect::<Vec<_>>().join(".");
        }
    }
    "unknown".to_string()
}

/// `1.31.1` from an ORT build-info string containing `git-branch=rel-1.31.1,`.
fn version_from_build_info(info: &str) -> Option<String> {
    let rest = &info[info.find("git-branch=rel-")? + "git-branch=rel-".len()..];
    let v: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let v = v.trim_end_matches('.');
    (v.split('.').count() >= 2 && v.split('.').all(|p| !p.is_empty())).then(|| v.to_string())
}

/// Where a requested tensor's value comes from.
enum Capture {
    /// A session output of this name.
    Output(String),
    /// A graph input: the fed value itself.
    Input(String),
    /// An initializer, decoded once from the model.
    Constant(String, Tensor),
    /// Cannot be captured, with the reason.
    Missing(NotCaptured),
}

/// ONNX Runtime CPU runner.
pub struct OrtRunner {
    session: Session,
    inputs: Vec<String>,
    capture: Vec<Capture>,
    library: Library,
}

impl OrtRunner {
    /// Load ONNX Runtime and prepare a session capturing `capture`.
    pub fn new(model: &Model, capture: &[String], opts: &RunnerOptions) -> Result<OrtRunner> {
        let lib = loaded(opts.ort_lib.as_deref())?;
        let (plan, extra_outputs) = plan_capture(model, capture);
        let bytes = encode_with_outputs(&model.proto, &extra_outputs);
        let base_dir = std::path::absolute(model.base_dir()).unwrap_or_else(|_| model.base_dir());
        let base_dir = base_dir.to_str().ok_or_else(|| {
            err(format!("the model directory {} is not valid UTF-8, which ONNX Runtime needs", base_dir.display()))
        })?;
        let build = || -> std::result::Result<Session, String> {
            let msg = |e: &dyn std::fmt::Display| one_line(e);
            Session::builder(&lib.env)
                .map_err(|e| msg(&e))?
                .with_optimization_level(GraphOptimizationLevel::Disable)
                .map_err(|e| msg(&e))?
                .with_intra_threads(1)
                .map_err(|e| msg(&e))?
                .with_inter_threads(1)
                .map_err(|e| msg(&e))?
                .with_parallel_execution(false)
                .map_err(|e| msg(&e))?
                .with_deterministic_compute(true)
                .map_err(|e| msg(&e))?
                .with_config_entry(EXTERNAL_DATA_DIR_KEY, base_dir)
                .map_err(|e| msg(&e))?
                .commit_from_memory(&bytes)
                .map_err(|e| msg(&e))
        };
        let session =
            build().map_err(|e| err(format!("cannot load model {} into ONNX Runtime: {e}", model.path.display())))?;
        let inputs = session.inputs().iter().map(|o| o.name().to_string()).collect();
        Ok(OrtRunner { session, inputs, capture: plan, library: lib.library.clone() })
    }

    /// The library this runner uses.
    #[must_use]
    pub fn library(&self) -> &Library {
        &self.library
    }
}

/// How each requested tensor is obtained, and the intermediates to add as graph outputs.
fn plan_capture(model: &Model, capture: &[String]) -> (Vec<Capture>, Vec<String>) {
    let g = &model.graph;
    let existing: HashSet<&str> = g.outputs.iter().map(String::as_str).collect();
    let mut extra: Vec<String> = Vec::new();
    let mut plan = Vec::with_capacity(capture.len());
    for name in capture {
        let missing = |reason: String| Capture::Missing(NotCaptured { name: name.clone(), reason });
        let Some(info) = g.tensor(name) else {
            let reason = match g.subgraph_tensors.iter().find(|s| s.name == *name) {
                Some(s) => format!(
                    "produced inside the '{}' body of node '{}', not observable from the main graph",
                    s.body,
                    g.nodes[s.owner].display_name()
                ),
                None => "not a tensor of the main graph".to_string(),
            };
            plan.push(missing(reason));
            continue;
        };
        plan.push(match info.kind {
            TensorKind::Input => Capture::Input(name.clone()),
            TensorKind::Initializer => match constant(model, name) {
                Ok(t) => Capture::Constant(name.clone(), t),
                Err(reason) => missing(reason),
            },
            TensorKind::Activation => {
                if !existing.contains(name.as_str()) && !extra.contains(name) {
                    extra.push(name.clone());
                }
                Capture::Output(name.clone())
            }
        });
    }
    (plan, extra)
}

/// The value of an initializer, decoded from the model.
fn constant(model: &Model, name: &str) -> std::result::Result<Tensor, String> {
    let Some(t) = model.graph_proto().initializer.iter().find(|t| t.tensor_name() == name) else {
        return Err("sparse initializer, not captured".to_string());
    };
    tensor_proto::to_tensor(t, Some(&model.base_dir())).map_err(|e| e.to_string())
}

/// The encoded model with `extra` appended to the main graph's outputs (name only: ONNX Runtime infers
/// the type; an explicit `elem_type` of 0 would be rejected).
///
/// Protobuf parsers merge a singular message field that occurs twice and concatenate repeated fields, so
/// appending an encoded `ModelProto { graph: GraphProto { output: extra } }` to the encoded model appends
/// to `graph.output` without cloning the model (which may hold gigabytes of embedded weights).
fn encode_with_outputs(model: &ModelProto, extra: &[String]) -> Vec<u8> {
    let mut bytes = model.encode_to_vec();
    if !extra.is_empty() {
        let patch = ModelProto {
            graph: Some(GraphProto {
                output: extra
                    .iter()
                    .map(|n| ValueInfoProto { name: Some(n.clone()), ..ValueInfoProto::default() })
                    .collect(),
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        };
        bytes.extend_from_slice(&patch.encode_to_vec());
    }
    bytes
}

impl Runner for OrtRunner {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> String {
        self.library.version.clone()
    }

    fn run(&mut self, inputs: &Tensors) -> Result<RunOutput> {
        let mut feed: Vec<(String, DynValue)> = Vec::with_capacity(self.inputs.len());
        for name in &self.inputs {
            let t = super::find(inputs, name).ok_or_else(|| err(format!("no value for input '{name}'")))?;
            let v = convert::to_ort(t).map_err(|e| err(format!("input '{name}': {}", one_line(&e))))?;
            feed.push((name.clone(), v));
        }
        let start = Instant::now();
        let outputs = self.session.run(feed).map_err(|e| err(one_line(&e)))?;
        let seconds = start.elapsed().as_secs_f64();
        let mut out = RunOutput { seconds, ..RunOutput::default() };
        for c in &self.capture {
            let (name, value) = match c {
                Capture::Output(name) => (
                    name,
                    match outputs.get(name) {
                        Some(v) => convert::from_ort(v),
                        None => Err("ONNX Runtime did not return it".to_string()),
                    },
                ),
                Capture::Input(name) => (
                    name,
                    super::find(inputs, name).cloned().ok_or_else(|| "no value was fed for this input".to_string()),
                ),
                Capture::Constant(name, t) => (name, Ok(t.clone())),
                Capture::Missing(nc) => {
                    out.not_captured.push(nc.clone());
                    continue;
                }
            };
            match value {
                Ok(t) => out.tensors.push((name.clone(), t)),
                Err(reason) => out.not_captured.push(NotCaptured { name: name.clone(), reason }),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_versions() {
        let info = "ORT Build Info: git-branch=rel-1.31.1, git-commit-id=abc, build type=Release";
        assert_eq!(version_from_build_info(info).as_deref(), Some("1.31.1"));
        assert_eq!(version_from_build_info("git-branch=main, x").as_deref(), None);
        assert_eq!(version_from_build_info("git-branch=rel-1.20.").as_deref(), Some("1.20"));
    }

    #[test]
    fn appended_outputs_merge_into_the_graph() -> std::result::Result<(), prost::DecodeError> {
        let model = ModelProto {
            ir_version: Some(8),
            graph: Some(GraphProto {
                name: Some("g".into()),
                output: vec![ValueInfoProto { name: Some("y".into()), ..ValueInfoProto::default() }],
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        };
        let bytes = encode_with_outputs(&model, &["a".to_string(), "b".to_string()]);
        let back = ModelProto::decode(bytes.as_slice())?;
        let g = back.graph.unwrap_or_default();
        assert_eq!(g.name.as_deref(), Some("g"));
        let names: Vec<_> = g.output.iter().map(|o| o.name.clone().unwrap_or_default()).collect();
        assert_eq!(names, ["y", "a", "b"]);
        assert!(g.output.iter().all(|o| o.r#type.is_none()));
        Ok(())
    }
}
