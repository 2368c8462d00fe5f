//! ONNX Runtime runners (the CPU execution provider, and the CUDA provider for `onnxruntime-cuda`),
//! through the `ort` crate with `load-dynamic`: nothing is linked or downloaded at build time,
//! `libonnxruntime.so` is found and loaded at run time.
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
//! * **CUDA.** [`OrtRunner::cuda`] (`onnxruntime-cuda`) runs the plan-rewritten model (or the model as
//!   written, without a plan) on ONNX Runtime's CUDA provider from the `onnxruntime-gpu` libraries
//!   ([`cuda`]): graph optimizations off unless `--ort-opt` says otherwise, `--tf32` and `--device`
//!   passed to the provider, every tensor captured like on the CPU (FP16 tensors under their original
//!   names, as `cpu-fp16` does), and a check on the first iteration's profile that no node computing
//!   floating-point values ran on the CPU provider.

mod convert;
pub mod cuda;
pub mod discover;

use std::collections::{HashMap, HashSet};
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

/// The provider a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Cpu,
    Cuda { device: u32, tf32: Option<bool> },
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Cpu => "CPUExecutionProvider",
            Provider::Cuda { .. } => "CUDAExecutionProvider",
        }
    }
}

/// The ONNX Runtime runner: CPU (`onnxruntime`) or CUDA (`onnxruntime-cuda`).
pub struct OrtRunner {
    name: &'static str,
    session: Session,
    inputs: Vec<String>,
    capture: Vec<Capture>,
    library: Library,
    /// (name in the session's model, name reported), for tensors a plan moved (`cpu-fp16`'s rule).
    homes: Vec<(String, String)>,
    /// The provider whose node placement the first iteration's profile is checked against.
    check_placement: Option<&'static str>,
    /// Keeps the profile's folder while it is needed.
    profile_dir: Option<tempfile::TempDir>,
    settings: super::RunnerSettings,
    conversion: Option<crate::precision::RangeConversion>,
}

/// ONNX Runtime's message on one line without its source location prefix
/// (`/onnxruntime_src/....cc:2043 onnxruntime::...Get() [ONNXRuntimeError] : 1 : FAIL : `).
fn ort_message(e: &dyn std::fmt::Display) -> String {
    let line = one_line(e);
    if let Some(at) = line.find("[ONNXRuntimeError] : ") {
        let rest = &line[at + "[ONNXRuntimeError] : ".len()..];
        // `1 : FAIL : message`
        let mut parts = rest.splitn(3, " : ");
        if let (Some(_code), Some(_name), Some(msg)) = (parts.next(), parts.next(), parts.next()) {
            return msg.to_string();
        }
    }
    line
}

/// Rename a runner error of this module to `name` (the CUDA runner shares the loading code).
fn renamed(e: Error, name: &str) -> Error {
    match e {
        Error::Runner { msg, details, source, .. } => Error::Runner { runner: name.to_string(), msg, details, source },
        other => other,
    }
}

impl OrtRunner {
    /// Load ONNX Runtime and prepare a CPU session capturing `capture`.
    pub fn new(model: &Model, capture: &[String], opts: &RunnerOptions) -> Result<OrtRunner> {
        let lib = loaded(opts.ort_lib.as_deref())?;
        let settings = super::RunnerSettings {
            graph_optimization: Some(crate::runner::OrtOpt::Disable.name().into()),
            execution_provider: Some(Provider::Cpu.name().into()),
            ..super::RunnerSettings::default()
        };
        let homes = capture.iter().map(|c| (c.clone(), c.clone())).collect();
        Self::build(NAME, lib, model, homes, Provider::Cpu, GraphOptimizationLevel::Disable, None, settings, None)
    }

    /// Load the `onnxruntime-gpu` library and prepare a CUDA session capturing `capture`: the model
    /// rewritten with the plan in `opts` (the model as written without one). See the module docs.
    pub fn cuda(model: &Model, capture: &[String], opts: &RunnerOptions) -> Result<OrtRunner> {
        let probe = cuda::library(opts.ort_lib.as_deref())?;
        let lib = loaded(probe.library.as_deref()).map_err(|e| renamed(e, cuda::NAME))?;
        let device = opts.device.unwrap_or(0);
        let opt = opts.ort_opt.unwrap_or(crate::runner::OrtOpt::Disable);
        let level = match opt {
            crate::runner::OrtOpt::Disable => GraphOptimizationLevel::Disable,
            crate::runner::OrtOpt::Basic => GraphOptimizationLevel::Level1,
            crate::runner::OrtOpt::Extended => GraphOptimizationLevel::Level2,
            crate::runner::OrtOpt::Layout => GraphOptimizationLevel::Level3,
            crate::runner::OrtOpt::All => GraphOptimizationLevel::All,
        };
        let settings = super::RunnerSettings {
            tf32: Some(if opts.tf32.unwrap_or(cuda::TF32_DEFAULT) { "on" } else { "off" }.into()),
            tf32_source: Some(if opts.tf32.is_some() { "--tf32" } else { "default" }.into()),
            graph_optimization: Some(opt.name().into()),
            execution_provider: Some("CUDAExecutionProvider".into()),
            device: Some(device),
            cpu_nodes: Vec::new(),
        };
        let provider = Provider::Cuda { device, tf32: opts.tf32 };
        match &opts.plan {
            None => {
                let homes = capture.iter().map(|c| (c.clone(), c.clone())).collect();
                Self::build(cuda::NAME, lib, model, homes, provider, level, None, settings, Some(provider.name()))
            }
            Some(plan) => {
                let converted = crate::precision::convert(model, plan)?;
                // Same directory as the model: external weights the rewrite kept resolve as before.
                let rewritten = Model::from_bytes(&model.path, &converted.proto.encode_to_vec())?;
                let homes = capture
                    .iter()
                    .map(|c| (converted.report.tensors.get(c).map_or_else(|| c.clone(), |h| h.name.clone()), c.clone()))
                    .collect();
                let conversion = Some(converted.report.range_conversion());
                Self::build(
                    cuda::NAME,
                    lib,
                    &rewritten,
                    homes,
                    provider,
                    level,
                    conversion,
                    settings,
                    Some(provider.name()),
                )
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        name: &'static str,
        lib: &Loaded,
        model: &Model,
        homes: Vec<(String, String)>,
        provider: Provider,
        level: GraphOptimizationLevel,
        conversion: Option<crate::precision::RangeConversion>,
        settings: super::RunnerSettings,
        check_placement: Option<&'static str>,
    ) -> Result<OrtRunner> {
        let err = |msg: String| Error::runner(name, msg);
        let inner_capture: Vec<String> = homes.iter().map(|(h, _)| h.clone()).collect();
        let (plan, extra_outputs) = plan_capture(model, &inner_capture);
        let bytes = encode_with_outputs(&model.proto, &extra_outputs);
        let base_dir = std::path::absolute(model.base_dir()).unwrap_or_else(|_| model.base_dir());
        let base_dir = base_dir.to_str().ok_or_else(|| {
            err(format!("the model directory {} is not valid UTF-8, which ONNX Runtime needs", base_dir.display()))
        })?;
        let profile_dir = match check_placement {
            None => None,
            Some(_) => Some(
                tempfile::Builder::new()
                    .prefix("trtlens-ort-profile-")
                    .tempdir()
                    .map_err(|e| err(format!("cannot create a temporary folder: {e}")))?,
            ),
        };
        let msg = |e: &dyn std::fmt::Display| one_line(e);
        let mut builder = Session::builder(&lib.env)
            .map_err(|e| msg(&e))
            .and_then(|b| b.with_optimization_level(level).map_err(|e| msg(&e)))
            .and_then(|b| b.with_intra_threads(1).map_err(|e| msg(&e)))
            .and_then(|b| b.with_inter_threads(1).map_err(|e| msg(&e)))
            .and_then(|b| b.with_parallel_execution(false).map_err(|e| msg(&e)))
            .and_then(|b| b.with_deterministic_compute(true).map_err(|e| msg(&e)))
            .and_then(|b| b.with_config_entry(EXTERNAL_DATA_DIR_KEY, base_dir).map_err(|e| msg(&e)))
            .map_err(|e| err(format!("cannot configure an ONNX Runtime session: {e}")))?;
        if let Provider::Cuda { device, tf32 } = provider {
            let mut ep = ::ort::ep::CUDA::default().with_device_id(i32::try_from(device).unwrap_or(i32::MAX));
            if let Some(t) = tf32 {
                ep = ep.with_tf32(t);
            }
            builder = builder.with_execution_providers([ep.build().error_on_failure()]).map_err(|e| {
                let probe = cuda::probe(Some(&lib.library.path));
                let hint = probe.missing_hint();
                Error::runner_details(
                    name,
                    format!(
                        "cannot use ONNX Runtime's CUDA provider: {}{}",
                        ort_message(&e),
                        if hint.is_empty() { String::new() } else { format!("; {hint}") }
                    ),
                    probe.to_string(),
                )
            })?;
        }
        if let Some(dir) = &profile_dir {
            builder = builder
                .with_profiling(dir.path().join("profile"))
                .map_err(|e| err(format!("cannot enable ONNX Runtime's profiling: {}", msg(&e))))?;
        }
        let session = builder.commit_from_memory(&bytes).map_err(|e| {
            let what = if provider == Provider::Cpu { "ONNX Runtime" } else { "ONNX Runtime (CUDA provider)" };
            err(format!("cannot load model {} into {what}: {}", model.path.display(), ort_message(&e)))
        })?;
        let inputs = session.inputs().iter().map(|o| o.name().to_string()).collect();
        Ok(OrtRunner {
            name,
            session,
            inputs,
            capture: plan,
            library: lib.library.clone(),
            homes,
            check_placement,
            profile_dir,
            settings,
            conversion,
        })
    }

    /// The library this runner uses.
    #[must_use]
    pub fn library(&self) -> &Library {
        &self.library
    }

    /// After the first (profiled) iteration: where ONNX Runtime ran each node. A node computing
    /// floating-point values outside the requested provider is an error (no silent CPU run).
    fn verify_placement(&mut self, provider: &'static str) -> Result<()> {
        let file = self
            .session
            .end_profiling()
            .map_err(|e| Error::runner(self.name, format!("cannot read ONNX Runtime's profile: {}", one_line(&e))))?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::runner(self.name, format!("cannot read ONNX Runtime's profile {file}: {e}")))?;
        self.profile_dir = None;
        let p = cuda::placement(&text, provider).map_err(|e| Error::runner(self.name, e))?;
        if !p.float_elsewhere.is_empty() {
            let shown: Vec<&str> = p.float_elsewhere.iter().take(3).map(String::as_str).collect();
            let more = p.float_elsewhere.len().saturating_sub(3);
            return Err(Error::runner_details(
                self.name,
                format!(
                    "ONNX Runtime ran {} node(s) computing floating-point values on another provider than {provider}: \
                     {}{}; this is not a GPU result (the provider has no kernel for them at these types)",
                    p.float_elsewhere.len(),
                    shown.join("; "),
                    if more > 0 { format!(" and {more} more") } else { String::new() }
                ),
                p.float_elsewhere.join("\n"),
            ));
        }
        self.settings.cpu_nodes = p.other_elsewhere;
        Ok(())
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
        self.name
    }

    fn version(&self) -> String {
        let st = &self.settings;
        if st.execution_provider.as_deref() != Some("CUDAExecutionProvider") {
            return self.library.version.clone();
        }
        // The settings that change a GPU run's numbers, also in the table's header line.
        format!(
            "{} (CUDA device {}, TF32 {}{}, graph optimization {})",
            self.library.version,
            st.device.unwrap_or(0),
            st.tf32.as_deref().unwrap_or("?"),
            if st.tf32_source.as_deref() == Some("default") { " by default" } else { "" },
            st.graph_optimization.as_deref().unwrap_or("?")
        )
    }

    fn conversion(&self) -> Option<crate::precision::RangeConversion> {
        self.conversion.clone()
    }

    fn settings(&self) -> Option<super::RunnerSettings> {
        Some(self.settings.clone())
    }

    fn run(&mut self, inputs: &Tensors) -> Result<RunOutput> {
        let mut sink = super::CollectSink::default();
        let r = self.run_streamed(inputs, &mut sink)?;
        Ok(RunOutput { tensors: sink.into_tensors(&r.specs), not_captured: r.not_captured, seconds: r.seconds })
    }

    fn streams(&self) -> bool {
        true
    }

    /// ONNX Runtime returns every requested tensor at once; each goes to `sink` straight from ONNX
    /// Runtime's buffer (no copy in between), and the buffers are released together after the last.
    fn run_streamed(&mut self, inputs: &Tensors, sink: &mut dyn super::TensorSink) -> Result<super::StreamedRun> {
        let name = self.name;
        let err = |msg: String| Error::runner(name, msg);
        let mut feed: Vec<(String, DynValue)> = Vec::with_capacity(self.inputs.len());
        for name in &self.inputs {
            let t = super::find(inputs, name).ok_or_else(|| err(format!("no value for input '{name}'")))?;
            let v = convert::to_ort(t).map_err(|e| err(format!("input '{name}': {}", one_line(&e))))?;
            feed.push((name.clone(), v));
        }
        let start = Instant::now();
        let outputs = self.session.run(feed).map_err(|e| err(one_line(&e)))?;
        let seconds = start.elapsed().as_secs_f64();
        let reported: HashMap<&str, &str> =
            self.homes.iter().filter(|(h, o)| h != o).map(|(h, o)| (h.as_str(), o.as_str())).collect();
        let report = |n: &str| reported.get(n).map_or_else(|| n.to_string(), |o| (*o).to_string());
        let mut specs = Vec::with_capacity(self.capture.len());
        let mut data: Vec<std::borrow::Cow<'_, [u8]>> = Vec::with_capacity(self.capture.len());
        let mut not_captured = Vec::new();
        for c in &self.capture {
            let (name, value) = match c {
                Capture::Output(name) => (
                    name,
                    match outputs.get(name) {
                        Some(v) => convert::view_ort(v),
                        None => Err("ONNX Runtime did not return it".to_string()),
                    },
                ),
                Capture::Input(name) => (
                    name,
                    super::find(inputs, name)
                        .map(|t| (t.dtype(), t.shape().to_vec(), std::borrow::Cow::Borrowed(t.bytes())))
                        .ok_or_else(|| "no value was fed for this input".to_string()),
                ),
                Capture::Constant(name, t) => {
                    (name, Ok((t.dtype(), t.shape().to_vec(), std::borrow::Cow::Borrowed(t.bytes()))))
                }
                Capture::Missing(nc) => {
                    not_captured.push(NotCaptured { name: report(&nc.name), reason: nc.reason.clone() });
                    continue;
                }
            };
            match value {
                Ok((dtype, shape, bytes)) => {
                    specs.push((report(name), dtype, shape));
                    data.push(bytes);
                }
                Err(reason) => not_captured.push(NotCaptured { name: report(name), reason }),
            }
        }
        sink.begin(&specs)?;
        for ((name, _, _), bytes) in specs.iter().zip(&data) {
            sink.put(name, bytes)?;
        }
        drop(data);
        drop(outputs);
        if let Some(provider) = self.check_placement.take() {
            self.verify_placement(provider)?;
        }
        Ok(super::StreamedRun { specs, not_captured, seconds })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The placement check on a real ONNX Runtime profile (CPU provider, the only one here): asked
    /// for the CUDA provider, every float node is reported, the shape arithmetic is not; asked for
    /// the CPU provider, the run passes.
    #[test]
    fn the_profile_tells_where_every_node_ran() -> Result<()> {
        let Ok(lib) = loaded(None) else {
            assert!(std::env::var_os("CI").is_none(), "onnxruntime is required in CI");
            println!("skipped: onnxruntime not installed");
            return Ok(());
        };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/yolo_symbolic.onnx");
        let model = Model::load(&path)?;
        let capture = ["output0".to_string()];
        let homes: Vec<(String, String)> = capture.iter().map(|c| (c.clone(), c.clone())).collect();
        let feed = vec![(
            "images".to_string(),
            Tensor::from_f32(&[1, 3, 32, 32], &[0.5; 3 * 32 * 32]).map_err(|e| err(e.to_string()))?,
        )];
        let build = |against: &'static str| {
            let (level, settings) = (GraphOptimizationLevel::Disable, super::super::RunnerSettings::default());
            OrtRunner::build(NAME, lib, &model, homes.clone(), Provider::Cpu, level, None, settings, Some(against))
        };
        let Err(e) = build("CUDAExecutionProvider")?.run(&feed) else {
            panic!("float nodes on the CPU provider must fail the run");
        };
        let msg = e.to_string();
        assert!(msg.contains("computing floating-point values") && msg.contains("Conv"), "{msg}");
        assert!(!msg.contains("(Shape"), "shape arithmetic is allowed on the CPU: {msg}");
        let mut ok = build("CPUExecutionProvider")?;
        ok.run(&feed)?;
        assert!(ok.settings.cpu_nodes.is_empty());
        // Later iterations are not profiled again.
        ok.run(&feed)?;
        Ok(())
    }

    #[test]
    fn ort_messages_lose_their_source_location() {
        let raw = "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 onnxruntime::Provider& \
                   onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library \
                   x.so with error: libcublasLt.so.13: cannot open shared object file";
        assert_eq!(
            ort_message(&raw),
            "Failed to load library x.so with error: libcublasLt.so.13: cannot open shared object file"
        );
        assert_eq!(ort_message(&"plain message"), "plain message");
    }

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
