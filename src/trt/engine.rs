//! Builds and runs on top of [`super::ffi`]: the build runs on a helper thread while the calling
//! thread turns TensorRT's progress into status lines (or elapsed time) for the caller; running an
//! engine copies the inputs to the GPU once, binds every engine tensor, enqueues, and copies the
//! outputs back one at a time into the caller's sink.
//!
//! Binding device addresses to an engine and enqueueing it are FFI contracts (memory that must stay
//! alive until the stream is synchronised), hence the `unsafe` blocks here, each with its reason.
#![allow(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::build::{BuildEvent, Target};
use super::cache::ShapeRange;
use super::discover::Libraries;
use super::ffi::{self, Event};
use super::layers::{self, EngineInfo};
use super::tensor_map::NetworkTensor;
use crate::error::{Error, Result};
use crate::runner::{NotCaptured, StreamedRun, TensorSink, TensorSpec, Tensors};
use crate::tensor::DType;

/// A finished build.
pub(crate) struct Built {
    pub engine: Vec<u8>,
    pub log: String,
    pub network: Vec<NetworkTensor>,
    pub not_marked: Vec<(String, String)>,
    pub timing_cache: Option<Vec<u8>>,
}

/// Build on a helper thread; forward progress to `progress` (a status line per TensorRT step, or
/// the elapsed time every second when TensorRT reports nothing).
#[allow(clippy::too_many_arguments)]
pub(crate) fn build(
    libs: &Libraries,
    onnx: &[u8],
    model_path: &Path,
    mark: &HashSet<String>,
    debug_unfused: bool,
    shapes: &[(String, ShapeRange)],
    target_sm: Option<u32>,
    timing_cache: Option<&[u8]>,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<Built> {
    let flavour = libs.flavour;
    let (tx, rx) = std::sync::mpsc::channel::<Event>();
    let spec = ffi::BuildSpec {
        libs,
        onnx,
        model_path,
        mark,
        debug_unfused,
        shapes,
        target_sm,
        timing_cache,
        cancel,
        events: tx,
    };
    progress(BuildEvent::Status("building engine".into()));
    let t0 = Instant::now();
    let result = std::thread::scope(|s| {
        let handle = s.spawn(move || {
            let spec = spec;
            ffi::build(&spec)
        });
        // (steps, top-level) per phase.
        let mut phases: HashMap<String, (i32, bool)> = HashMap::new();
        let mut last = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Event::PhaseStart(name, parent, n)) => {
                    phases.insert(name, (n, parent.is_empty()));
                }
                Ok(Event::Step(name, k)) => {
                    let (n, top) = phases.get(&name).copied().unwrap_or((0, false));
                    if let Some(line) = step_line(&name, k, n, top, last.elapsed()) {
                        progress(BuildEvent::Status(line));
                        last = Instant::now();
                    }
                }
                Ok(Event::Log(sev, msg)) => progress(BuildEvent::Log(format!("[{}] {msg}", sev.tag()))),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if last.elapsed() >= Duration::from_secs(1) {
                        progress(BuildEvent::Status(format!("building engine: {} s", t0.elapsed().as_secs())));
                        last = Instant::now();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        handle.join()
    });
    let result = result.map_err(|_| Error::runner(flavour.name(), "the TensorRT build thread panicked"))?;
    match result {
        Ok(b) => Ok(Built {
            engine: b.engine,
            log: b.log,
            network: b.network,
            not_marked: b.not_marked,
            timing_cache: b.timing_cache,
        }),
        Err(f) if f.cancelled => Err(Error::Cancelled("the engine build was cancelled".into())),
        Err(f) => Err(Error::runner_details(flavour.name(), f.message, log_tail(&f.log, 40))),
    }
}

/// The status line for step `k` of phase `name` (`n` steps): every step of the per-layer phase
/// (`building engine: layer 3/12`, TensorRT's "Timing graph nodes") and of the top-level phase,
/// other phases at most once a second.
fn step_line(name: &str, k: i32, n: i32, top: bool, since_last: Duration) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let count = if n > 0 { format!("{}/{n}", k + 1) } else { format!("{}", k + 1) };
    if lower.contains("graph nodes") || lower.contains("layer") {
        Some(format!("building engine: layer {count}"))
    } else if top {
        Some(format!("building engine: step {count}"))
    } else if since_last >= Duration::from_secs(1) {
        Some(format!("building engine: {lower} {count}"))
    } else {
        None
    }
}

/// The last `n` lines of a log.
#[must_use]
pub(crate) fn log_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The engine's layers: from the engine inspector when the engine can be deserialized here, else
/// from the build log. Returns the info and where it came from.
pub(crate) fn layer_info(libs: &Libraries, engine: &[u8], log: &str, target: &Target) -> (EngineInfo, String) {
    if target.not_runnable.is_none()
        && let Ok(info) = inspect(libs, engine)
        && !info.layers.is_empty()
    {
        let mut info = info;
        // The inspector does not list I/O tensors; the log does.
        info.io = layers::from_build_log(log).io;
        return (info, "inspector".into());
    }
    (layers::from_build_log(log), "build log".into())
}

fn inspect(libs: &Libraries, engine: &[u8]) -> std::result::Result<EngineInfo, String> {
    let device = super::cuda::Device::open(0)?;
    device.bind()?;
    let e = ffi::Engine::load(libs, engine).map_err(|f| f.message)?;
    layers::from_inspector_json(&e.inspector_json()?)
}

/// trtlens' dtype for a TensorRT data type (`None`: FP8, INT4, FP4, E8M0 cannot be stored).
fn dtype_of(t: trtx_sys::DataType) -> Option<DType> {
    use trtx_sys::DataType as T;
    Some(match t {
        T::kFLOAT => DType::Float32,
        T::kHALF => DType::Float16,
        T::kBF16 => DType::Bfloat16,
        T::kINT8 => DType::Int8,
        T::kINT32 => DType::Int32,
        T::kINT64 => DType::Int64,
        T::kBOOL => DType::Bool,
        T::kUINT8 => DType::Uint8,
        _ => return None,
    })
}

/// A debug tensor copied to the host: name, dtype, shape, bytes.
type DebugCopy = (String, DType, Vec<usize>, Vec<u8>);

/// A deserialized engine on a GPU, ready to run.
pub(crate) struct Executor {
    engine: ffi::Engine,
    device: super::cuda::Device,
    /// (name, is input, dtype, declared dims with -1 for dynamic).
    io: Vec<(String, bool, trtx_sys::DataType, Vec<i64>)>,
    flavour: super::Flavour,
}

impl Executor {
    /// Deserialize `bytes` on GPU 0.
    pub(crate) fn load(libs: &Libraries, bytes: &[u8]) -> Result<Executor> {
        let err = |m: String| Error::runner(libs.flavour.name(), m);
        let device = super::cuda::Device::open(0).map_err(err)?;
        device.bind().map_err(err)?;
        let engine = ffi::Engine::load(libs, bytes)
            .map_err(|f| Error::runner_details(libs.flavour.name(), f.message, log_tail(&f.log, 40)))?;
        let io = engine.io_tensors();
        Ok(Executor { engine, device, io, flavour: libs.flavour })
    }

    /// Run once. `want` lists (ONNX name, engine name) in the order the tensors are stored; engine
    /// outputs not in it are ignored, and wanted tensors the engine cannot give are reported.
    /// Debug tensors (`debug`) are read through a debug listener during the run.
    pub(crate) fn run(
        &mut self,
        inputs: &Tensors,
        want: &[(String, String)],
        debug: bool,
        sink: &mut dyn TensorSink,
    ) -> Result<StreamedRun> {
        let flavour = self.flavour.name();
        let err = |m: String| Error::runner(flavour, m);
        self.device.bind().map_err(err)?;
        let mut ctx = self.engine.context().map_err(err)?;
        let mut keep = Vec::new();
        // Inputs: copied once, shapes set for dynamic dimensions.
        for (name, _, dt, dims) in self.io.iter().filter(|t| t.1) {
            let t =
                crate::runner::find(inputs, name).ok_or_else(|| err(format!("no value for engine input '{name}'")))?;
            let want_dt = dtype_of(*dt).ok_or_else(|| err(format!("engine input '{name}' has type {dt:?}")))?;
            if t.dtype() != want_dt {
                return Err(err(format!(
                    "input '{name}' is {} but the engine takes {}",
                    t.dtype().name(),
                    want_dt.name()
                )));
            }
            if dims.iter().any(|d| *d < 0) {
                ctx.set_input_shape(name, t.shape()).map_err(err)?;
            }
            let b = self.device.upload(t.bytes()).map_err(err)?;
            // SAFETY: the buffer lives in `keep` until after the stream is synchronised below.
            unsafe { ctx.set_address(name, self.device.address(&b)) }.map_err(err)?;
            keep.push(b);
        }
        // Outputs: sized from the shapes TensorRT infers from the inputs.
        let mut outputs: HashMap<&str, (DType, Vec<usize>, super::cuda::Buffer)> = HashMap::new();
        let mut not_captured = Vec::new();
        let mut unstorable: HashMap<&str, String> = HashMap::new();
        for (name, _, dt, _) in self.io.iter().filter(|t| !t.1) {
            let Some(shape) = ctx.tensor_shape(name) else {
                return Err(err(format!(
                    "output '{name}' has a data-dependent shape, which trtlens cannot size before running yet"
                )));
            };
            let Some(dtype) = dtype_of(*dt) else {
                let b = self.device.alloc(1).map_err(err)?;
                // SAFETY: never read; sized for nothing because TensorRT needs an address for every output.
                unsafe { ctx.set_address(name, self.device.address(&b)) }.map_err(err)?;
                keep.push(b);
                unstorable
                    .insert(name.as_str(), format!("the engine computes it as {dt:?}, which trtlens cannot store"));
                continue;
            };
            let b = self.device.alloc(crate::tensor::numel(&shape) * dtype.size()).map_err(err)?;
            // SAFETY: the buffer lives in `outputs` until it has been copied back after the sync.
            unsafe { ctx.set_address(name, self.device.address(&b)) }.map_err(err)?;
            outputs.insert(name.as_str(), (dtype, shape, b));
        }
        let debug_tensors: std::sync::Arc<std::sync::Mutex<Vec<DebugCopy>>> = std::sync::Arc::default();
        let listener = if debug {
            let sinkv = std::sync::Arc::clone(&debug_tensors);
            let device = super::cuda::Device::open(0).map_err(err)?;
            let l = ffi::DebugListener::new(Box::new(move |t: ffi::DebugTensor<'_>| {
                let Some(dtype) = dtype_of(t.dtype) else { return true };
                let mut host = Vec::new();
                let len = crate::tensor::numel(&t.shape) * dtype.size();
                // SAFETY: TensorRT hands over a live device tensor of this shape and type on `stream`,
                // valid for the duration of the callback.
                if unsafe { device.download_raw(t.addr, len, t.stream, &mut host) }.is_ok()
                    && let Ok(mut v) = sinkv.lock()
                {
                    v.push((t.name.to_string(), dtype, t.shape.clone(), host));
                }
                true
            }))
            .map_err(err)?;
            // SAFETY: `l` outlives the enqueue below (dropped at the end of this function).
            unsafe { ctx.set_debug_listener(&l) }.map_err(err)?;
            Some(l)
        } else {
            None
        };
        let t0 = Instant::now();
        // SAFETY: every I/O tensor has a bound buffer of its size, alive until after the sync.
        unsafe { ctx.enqueue(self.device.raw_stream()) }.map_err(|m| {
            let logged = self.engine.log_errors();
            err(if logged.is_empty() { m } else { format!("{m}: {}", logged.join(" | ")) })
        })?;
        self.device.sync().map_err(err)?;
        let seconds = t0.elapsed().as_secs_f64();
        drop(listener);
        let debug_tensors =
            std::mem::take(&mut *debug_tensors.lock().map_err(|_| err("debug tensors poisoned".into()))?);
        // Stream the wanted tensors out, one at a time.
        let mut specs: Vec<TensorSpec> = Vec::new();
        let mut sources: Vec<(&str, Option<usize>)> = Vec::new();
        for (onnx, engine) in want {
            if let Some((dtype, shape, _)) = outputs.get(engine.as_str()) {
                specs.push((onnx.clone(), *dtype, shape.clone()));
                sources.push((engine.as_str(), None));
            } else if let Some(i) = debug_tensors.iter().position(|d| &d.0 == engine) {
                specs.push((onnx.clone(), debug_tensors[i].1, debug_tensors[i].2.clone()));
                sources.push((engine.as_str(), Some(i)));
            } else if let Some(why) = unstorable.get(engine.as_str()) {
                not_captured.push((onnx.clone(), why.clone()));
            } else {
                not_captured.push((onnx.clone(), format!("the engine did not produce '{engine}'")));
            }
        }
        sink.begin(&specs)?;
        let mut host = Vec::new();
        for ((onnx, _, _), (engine, debug_index)) in specs.iter().zip(&sources) {
            match debug_index {
                Some(i) => sink.put(onnx, &debug_tensors[*i].3)?,
                None => {
                    let (_, _, b) = &outputs[*engine];
                    self.device.download(b, &mut host).map_err(err)?;
                    sink.put(onnx, &host)?;
                }
            }
        }
        drop(keep);
        Ok(StreamedRun {
            specs,
            not_captured: not_captured.into_iter().map(|(name, reason)| NotCaptured { name, reason }).collect(),
            seconds,
        })
    }
}
