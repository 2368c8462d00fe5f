//! The only code that calls TensorRT: trtx-sys' autocxx bindings of the vendored headers (TensorRT
//! 11.4 for the `tensorrt` feature, TensorRT-RTX 1.7 for `tensorrt-rtx`), its logger and progress
//! bridges, and the libraries loaded at run time by path (`createInferBuilder_INTERNAL`,
//! `createInferRuntime_INTERNAL`, `createNvOnnxParser_INTERNAL`).
//!
//! Every TensorRT object is owned by a `cxx::UniquePtr` (deleted through its virtual destructor)
//! or by the object that created it, and never outlives the libraries (which are never unloaded).
//! Callbacks from TensorRT (log lines, build progress, debug tensors) only touch data that outlives
//! the call that can trigger them.
#![allow(unsafe_code)]

use std::collections::HashSet;
use std::ffi::{CStr, CString, c_char, c_void};
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use cxx::UniquePtr;
use trtx_sys::{nvinfer1, nvonnxparser};

use super::cache::ShapeRange;
use super::discover::Libraries;
use super::tensor_map::NetworkTensor;
use super::{Flavour, LibVersion};

/// The version of the headers compiled in.
#[must_use]
pub(crate) fn header_version() -> LibVersion {
    // SAFETY: plain getters compiled from the vendored headers' version macros.
    unsafe {
        LibVersion {
            major: trtx_sys::get_tensorrt_major_version(),
            minor: trtx_sys::get_tensorrt_minor_version(),
            patch: trtx_sys::get_tensorrt_patch_version(),
            build: None,
        }
    }
}

/// Severity of a TensorRT log line (`ILogger::Severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Severity {
    /// An internal error: TensorRT is in an undefined state.
    InternalError,
    /// An error.
    Error,
    /// A warning.
    Warning,
    /// Information.
    Info,
    /// Verbose (the detailed layer list is logged at this level).
    Verbose,
}

impl Severity {
    fn from_raw(v: i32) -> Severity {
        match v {
            0 => Severity::InternalError,
            1 => Severity::Error,
            2 => Severity::Warning,
            3 => Severity::Info,
            _ => Severity::Verbose,
        }
    }

    /// One-letter tag used in `build.log` (`[E]`, `[W]`, `[I]`, `[V]`).
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Severity::InternalError => "F",
            Severity::Error => "E",
            Severity::Warning => "W",
            Severity::Info => "I",
            Severity::Verbose => "V",
        }
    }
}

/// What TensorRT reports while building, forwarded to the thread that asked for the build.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// A log line (warnings and errors only; everything is kept in the log text).
    Log(Severity, String),
    /// A build phase started (name, parent phase or empty, number of steps).
    PhaseStart(String, String, i32),
    /// A step of a phase finished.
    Step(String, i32),
}

/// The receiving end of a logger: every line kept, important lines forwarded.
struct LogSink {
    lines: Mutex<Vec<(Severity, String)>>,
    events: Mutex<Option<Sender<Event>>>,
    /// Building without a GPU: TensorRT-RTX's CPU-only builder logs the missing CUDA driver as
    /// errors and goes on; those lines are kept at info level.
    no_gpu: AtomicBool,
}

/// A CUDA-driver error line that a CPU-only build logs and survives.
fn is_no_gpu_noise(msg: &str) -> bool {
    msg.contains("CUDA driver version is insufficient") || msg.contains("no CUDA-capable device")
}

unsafe extern "C" fn log_callback(user: *mut c_void, severity: i32, msg: *const c_char) {
    if user.is_null() || msg.is_null() {
        return;
    }
    // SAFETY: `user` is the `LogSink` owned by the `Logger` that registered this callback; the
    // logger outlives every TensorRT object created with it. `msg` is a NUL-terminated string valid
    // for the duration of the call.
    let (sink, text) =
        unsafe { (&*user.cast_const().cast::<LogSink>(), CStr::from_ptr(msg).to_string_lossy().into_owned()) };
    let mut sev = Severity::from_raw(severity);
    if sev <= Severity::Error && sink.no_gpu.load(Ordering::Relaxed) && is_no_gpu_noise(&text) {
        sev = Severity::Info;
    }
    if sev <= Severity::Warning
        && let Ok(tx) = sink.events.lock()
        && let Some(tx) = tx.as_ref()
    {
        let _ = tx.send(Event::Log(sev, text.clone()));
    }
    if let Ok(mut lines) = sink.lines.lock() {
        lines.push((sev, text));
    }
}

/// An `ILogger` that keeps every line.
pub(crate) struct Logger {
    bridge: *mut trtx_sys::RustLoggerBridge,
    sink: Box<LogSink>,
}

impl Logger {
    fn new() -> Result<Logger, String> {
        let sink = Box::new(LogSink {
            lines: Mutex::new(Vec::new()),
            events: Mutex::new(None),
            no_gpu: AtomicBool::new(false),
        });
        let user = std::ptr::from_ref::<LogSink>(&sink).cast_mut().cast::<c_void>();
        // SAFETY: the callback matches `RustLogCallback`; `user` points into `sink`, a box owned by
        // the returned logger, destroyed after the bridge (see Drop).
        let bridge = unsafe { trtx_sys::create_rust_logger_bridge(log_callback, user) };
        if bridge.is_null() {
            return Err("cannot create the TensorRT logger".into());
        }
        Ok(Logger { bridge, sink })
    }

    fn interface(&self) -> *mut c_void {
        // SAFETY: `bridge` is a live bridge created in `new`.
        unsafe { trtx_sys::get_logger_interface(self.bridge) }
    }

    fn forward(&self, tx: Option<Sender<Event>>) {
        if let Ok(mut e) = self.sink.events.lock() {
            *e = tx;
        }
    }

    /// The log so far, one `[X] message` per line (multi-line messages keep their lines).
    pub(crate) fn text(&self) -> String {
        let lines = self.sink.lines.lock().map(|l| l.clone()).unwrap_or_default();
        let mut out = String::new();
        for (sev, msg) in lines {
            out.push('[');
            out.push_str(sev.tag());
            out.push_str("] ");
            out.push_str(&msg);
            out.push('\n');
        }
        out
    }

    /// The last `n` lines at warning level or worse (for one-line error messages).
    pub(crate) fn errors(&self, n: usize) -> Vec<String> {
        let lines = self.sink.lines.lock().map(|l| l.clone()).unwrap_or_default();
        let errs: Vec<String> = lines.into_iter().filter(|(s, _)| *s <= Severity::Error).map(|(_, m)| m).collect();
        errs[errs.len().saturating_sub(n)..].to_vec()
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once; no TensorRT object created with it is alive
        // (their owners hold a borrow of the logger).
        unsafe { trtx_sys::destroy_rust_logger_bridge(self.bridge) };
    }
}

/// A function exported by a loaded TensorRT library.
fn symbol<T: Copy>(lib: &Path, name: &str) -> Result<T, String> {
    let l = crate::sys::load_library(lib)?;
    // SAFETY: callers name symbols whose C signature is `T` in every TensorRT release this code
    // supports (the `*_INTERNAL` factories).
    unsafe {
        let s: libloading::Symbol<'_, T> =
            l.get(name.as_bytes()).map_err(|e| format!("{}: no {name}: {e}", lib.display()))?;
        Ok(*s)
    }
}

type CreateBuilder = unsafe extern "C" fn(*mut c_void, i32) -> *mut nvinfer1::IBuilder;
type CreateRuntime = unsafe extern "C" fn(*mut c_void, i32) -> *mut nvinfer1::IRuntime;
type CreateParser =
    unsafe extern "C" fn(*mut nvinfer1::INetworkDefinition, *mut c_void, i32) -> *mut nvonnxparser::IParser;

/// Refuse a library whose major version is not the headers': the interfaces are C++ vtables that
/// change between majors (TensorRT 11 removed methods that 10 has in the middle of `ILayer`).
pub(crate) fn check_abi(libs: &Libraries) -> Result<(), String> {
    let h = header_version();
    if libs.version.major != h.major {
        return Err(format!(
            "{} is {} {}, but this trtlens was compiled with {} {}.{} headers: the C++ interfaces differ between \
             major versions ({})",
            libs.infer.display(),
            libs.flavour.title(),
            libs.version,
            libs.flavour.title(),
            h.major,
            h.minor,
            match libs.flavour {
                Flavour::Tensorrt => "TensorRT 10 is not supported by the trtx 0.9 bindings; use TensorRT 11",
                Flavour::TensorrtRtx => "install TensorRT-RTX 1.x",
            }
        ));
    }
    Ok(())
}

/// How to build.
pub(crate) struct BuildSpec<'a> {
    /// The libraries.
    pub libs: &'a Libraries,
    /// The ONNX model bytes to parse.
    pub onnx: &'a [u8],
    /// Where external data resolves (the original model's path).
    pub model_path: &'a Path,
    /// Tensors to mark as network outputs (network tensor names).
    pub mark: &'a HashSet<String>,
    /// Mark unfused tensors as debug tensors (`--observe debug`).
    pub debug_unfused: bool,
    /// Optimization profile (inputs with dynamic dimensions).
    pub shapes: &'a [(String, ShapeRange)],
    /// TensorRT-RTX without a usable GPU: the compute capability to build for (e.g. 89).
    pub target_sm: Option<u32>,
    /// Timing cache bytes to start from (enterprise).
    pub timing_cache: Option<&'a [u8]>,
    /// Set to stop the build at the next step.
    pub cancel: &'a AtomicBool,
    /// Where progress events go (the receiving thread forwards them).
    pub events: Sender<Event>,
}

/// A finished build.
pub(crate) struct Built {
    /// The serialized engine.
    pub engine: Vec<u8>,
    /// The whole log.
    pub log: String,
    /// The network's tensors after marking.
    pub network: Vec<NetworkTensor>,
    /// Tensors TensorRT refused to mark, with the reason.
    pub not_marked: Vec<(String, String)>,
    /// The timing cache after the build, serialized.
    pub timing_cache: Option<Vec<u8>>,
}

/// A failed build: a one-line message and the whole log.
#[derive(Debug)]
pub(crate) struct Failure {
    pub message: String,
    pub log: String,
    pub cancelled: bool,
}

fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: TensorRT returns NUL-terminated names that live as long as their object.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn dtype_name(t: nvinfer1::DataType) -> String {
    let t: trtx_sys::DataType = t.into();
    super::layers::dtype_name(&format!("{t:?}"))
}

/// Progress monitor state shared with TensorRT's callbacks.
struct Monitor<'a> {
    cancel: &'a AtomicBool,
    events: Mutex<Sender<Event>>,
}

unsafe extern "system" fn phase_start(user: *mut c_void, name: *const c_char, parent: *const c_char, steps: i32) {
    // SAFETY: `user` is the `Monitor` that outlives the build (see `build`).
    let m = unsafe { &*user.cast_const().cast::<Monitor<'_>>() };
    if let Ok(tx) = m.events.lock() {
        let _ = tx.send(Event::PhaseStart(cstr(name), cstr(parent), steps));
    }
}

unsafe extern "system" fn step_complete(user: *mut c_void, name: *const c_char, step: i32) -> bool {
    // SAFETY: as in `phase_start`.
    let m = unsafe { &*user.cast_const().cast::<Monitor<'_>>() };
    #[cfg(debug_assertions)]
    test_hooks(step);
    if let Ok(tx) = m.events.lock() {
        let _ = tx.send(Event::Step(cstr(name), step));
    }
    !m.cancel.load(Ordering::SeqCst)
}

unsafe extern "system" fn phase_finish(_user: *mut c_void, _name: *const c_char) {}

/// Test hooks of debug builds (never compiled into release binaries): `TRTLENS_TEST_ABORT_IN_BUILD=1`
/// aborts the process inside TensorRT's build (from a progress callback), `TRTLENS_TEST_SLOW_BUILD_MS=N`
/// sleeps N ms at every build step (so a test can kill or cancel a build mid-way).
#[cfg(debug_assertions)]
fn test_hooks(_step: i32) {
    if std::env::var_os("TRTLENS_TEST_ABORT_IN_BUILD").is_some_and(|v| v == "1") {
        eprintln!("TRTLENS_TEST_ABORT_IN_BUILD: aborting inside the TensorRT build");
        std::process::abort();
    }
    if let Some(ms) = std::env::var("TRTLENS_TEST_SLOW_BUILD_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Parse, mark, configure and build (blocking). Progress and warnings go to `spec.events` as they
/// happen; the log is returned whole.
pub(crate) fn build(spec: &BuildSpec<'_>) -> Result<Built, Failure> {
    let logger = Logger::new().map_err(|message| Failure { message, log: String::new(), cancelled: false })?;
    logger.sink.no_gpu.store(spec.target_sm.is_some(), Ordering::Relaxed);
    logger.forward(Some(spec.events.clone()));
    let fail = |logger: &Logger, message: String| {
        let errs = logger.errors(3);
        let message = if errs.is_empty() { message } else { format!("{message}: {}", errs.join(" | ")) };
        Failure { message, log: logger.text(), cancelled: false }
    };
    check_abi(spec.libs).map_err(|m| fail(&logger, m))?;
    let create_builder: CreateBuilder =
        symbol(&spec.libs.infer, "createInferBuilder_INTERNAL").map_err(|m| fail(&logger, m))?;
    let create_parser: CreateParser =
        symbol(&spec.libs.parser, "createNvOnnxParser_INTERNAL").map_err(|m| fail(&logger, m))?;
    // SAFETY: the factories take the logger interface and the header version; the logger outlives
    // the builder (dropped last in this function).
    let mut builder: UniquePtr<nvinfer1::IBuilder> =
        unsafe { UniquePtr::from_raw(create_builder(logger.interface(), trtx_sys::get_tensorrt_version() as i32)) };
    if builder.is_null() {
        return Err(fail(&logger, "TensorRT could not create a builder".into()));
    }
    // Strong typing: always on in TensorRT 11 and TensorRT-RTX (the flag is deprecated and ignored).
    let mut network: UniquePtr<nvinfer1::INetworkDefinition> =
        unsafe { UniquePtr::from_raw(builder.pin_mut().createNetworkV2(0)) };
    if network.is_null() {
        return Err(fail(&logger, "TensorRT could not create a network".into()));
    }
    // SAFETY: the parser keeps a pointer to the network and is dropped before it.
    let mut parser: UniquePtr<nvonnxparser::IParser> = unsafe {
        UniquePtr::from_raw(create_parser(
            network.as_mut_ptr(),
            logger.interface(),
            trtx_sys::get_nvonnxparser_version() as i32,
        ))
    };
    if parser.is_null() {
        return Err(fail(&logger, "TensorRT could not create an ONNX parser".into()));
    }
    let path = CString::new(spec.model_path.display().to_string()).unwrap_or_default();
    // SAFETY: the model bytes outlive the call; the path is NUL-terminated.
    let parsed = unsafe { parser.pin_mut().parse(spec.onnx.as_ptr().cast(), spec.onnx.len(), path.as_ptr()) };
    if !parsed {
        let n = i32::from(parser.getNbErrors());
        let first = if n > 0 {
            // SAFETY: index within getNbErrors(); the error lives until the next parse or the parser.
            unsafe {
                let e = trtx_sys::parser_get_error(parser.as_mut_ptr().cast(), 0);
                cstr(trtx_sys::parser_error_desc(e))
            }
        } else {
            String::new()
        };
        return Err(Failure {
            message: format!("the ONNX parser rejected the model ({n} error(s)): {first}"),
            log: logger.text(),
            cancelled: false,
        });
    }

    // Mark tensors and describe the network.
    let mut network_tensors = Vec::new();
    let mut not_marked = Vec::new();
    {
        let net = network.pin_mut();
        // SAFETY: `net` is a live network; layer and tensor pointers it returns live as long as it.
        let net: &mut nvinfer1::INetworkDefinition = unsafe { net.get_unchecked_mut() };
        for i in 0..net.getNbInputs() {
            // SAFETY: index within getNbInputs().
            if let Some(t) = unsafe { net.getInput(i).as_ref() } {
                network_tensors.push(describe(t, false));
            }
        }
        for li in 0..net.getNbLayers() {
            // SAFETY: index within getNbLayers().
            let Some(layer) = (unsafe { net.getLayer(li).as_ref() }) else { continue };
            let constant = trtx_sys::LayerType::from(layer.getType()) == trtx_sys::LayerType::kCONSTANT;
            for oi in 0..layer.getNbOutputs() {
                let tp = layer.getOutput(oi);
                // SAFETY: output index within getNbOutputs().
                let Some(t) = (unsafe { tp.as_ref() }) else { continue };
                let name = cstr(t.getName());
                if spec.mark.contains(&name) && !constant && !t.isShapeTensor() && !t.isNetworkOutput() {
                    // SAFETY: `tp` is a live tensor of `net`.
                    unsafe { Pin::new_unchecked(&mut *net).markOutput(Pin::new_unchecked(&mut *tp)) };
                    if !t.isNetworkOutput() {
                        not_marked.push((name.clone(), "TensorRT refused to mark it as an output".to_string()));
                    }
                }
                network_tensors.push(describe(t, constant));
            }
        }
        if spec.debug_unfused {
            // SAFETY: live network.
            let ok = unsafe { Pin::new_unchecked(&mut *net).markUnfusedTensorsAsDebugTensors() };
            if !ok {
                return Err(fail(&logger, "TensorRT refused to mark unfused tensors as debug tensors".into()));
            }
        }
    }

    // SAFETY: the config is owned here and dropped before the builder.
    let mut config: UniquePtr<nvinfer1::IBuilderConfig> =
        unsafe { UniquePtr::from_raw(builder.pin_mut().createBuilderConfig()) };
    if config.is_null() {
        return Err(fail(&logger, "TensorRT could not create a builder config".into()));
    }
    config.pin_mut().setProfilingVerbosity(trtx_sys::ProfilingVerbosity::kDETAILED.into());
    configure_target(&mut config, spec.target_sm).map_err(|m| fail(&logger, m))?;
    if !spec.shapes.is_empty() {
        let profile = builder.pin_mut().createOptimizationProfile();
        // SAFETY: the profile is owned by the builder and outlives the config's use of it.
        let Some(p) = (unsafe { profile.as_mut() }) else {
            return Err(fail(&logger, "TensorRT could not create an optimization profile".into()));
        };
        for (name, range) in spec.shapes {
            let cname = CString::new(name.as_str()).unwrap_or_default();
            for (sel, dims) in [
                (trtx_sys::OptProfileSelector::kMIN, &range.min),
                (trtx_sys::OptProfileSelector::kOPT, &range.opt),
                (trtx_sys::OptProfileSelector::kMAX, &range.max),
            ] {
                let d: Vec<i64> = dims.iter().map(|&x| x as i64).collect();
                let dims = trtx_sys::Dims64::from_slice(&d);
                // SAFETY: live profile, NUL-terminated name.
                let ok = unsafe { Pin::new_unchecked(&mut *p).setDimensions(cname.as_ptr(), sel.into(), &dims) };
                if !ok {
                    return Err(fail(&logger, format!("TensorRT refused the shapes of input '{name}'")));
                }
            }
        }
        // SAFETY: the profile pointer is live.
        if unsafe { config.pin_mut().addOptimizationProfile(profile) } < 0 {
            return Err(fail(&logger, "TensorRT refused the optimization profile".into()));
        }
    }
    let timing = attach_timing_cache(&mut config, spec.timing_cache);

    let monitor = Monitor { cancel: spec.cancel, events: Mutex::new(spec.events.clone()) };
    // SAFETY: the callbacks match the bridge's signatures; `monitor` outlives the build below and the
    // monitor object is destroyed after it.
    let pm = unsafe {
        trtx_sys::trtx_create_progress_monitor(
            std::ptr::from_ref(&monitor).cast_mut().cast(),
            phase_start,
            step_complete,
            phase_finish,
        )
    };
    if !pm.is_null() {
        // SAFETY: live config and monitor.
        unsafe { config.pin_mut().setProgressMonitor(pm) };
    }
    // The three objects are alive; this thread is their only user.
    let host = builder.pin_mut().buildSerializedNetwork(network.pin_mut(), config.pin_mut());
    if !pm.is_null() {
        // SAFETY: detach, then destroy the monitor created above.
        unsafe {
            config.pin_mut().setProgressMonitor(std::ptr::null_mut());
            trtx_sys::trtx_destroy_progress_monitor(pm);
        }
    }
    logger.forward(None);
    let timing_cache = if timing { serialize_timing_cache(&config) } else { None };
    if host.is_null() {
        let cancelled = spec.cancel.load(Ordering::SeqCst);
        let mut f = fail(&logger, "TensorRT could not build the engine".into());
        f.cancelled = cancelled;
        return Err(f);
    }
    // SAFETY: a live IHostMemory returned by the build; copied out, then deleted by its UniquePtr.
    let engine = unsafe {
        let hm: UniquePtr<nvinfer1::IHostMemory> = UniquePtr::from_raw(host);
        std::slice::from_raw_parts(hm.data().cast::<u8>(), hm.size()).to_vec()
    };
    drop(parser);
    drop(config);
    drop(network);
    drop(builder);
    Ok(Built { engine, log: logger.text(), network: network_tensors, not_marked, timing_cache })
}

/// Give the config a timing cache (from `blob` when it is valid for this library and GPU, else
/// empty). The cache object is not deleted: it must outlive the config, and a build process makes
/// one (a few kilobytes).
fn attach_timing_cache(config: &mut UniquePtr<nvinfer1::IBuilderConfig>, blob: Option<&[u8]>) -> bool {
    let create = |b: &[u8]| {
        // SAFETY: the blob outlives the call (TensorRT copies it); an empty blob makes an empty cache.
        unsafe { config.createTimingCache(b.as_ptr().cast(), b.len()) }
    };
    let mut cache = create(blob.unwrap_or_default());
    if cache.is_null() && blob.is_some() {
        // A cache from another version or GPU: start afresh.
        cache = create(&[]);
    }
    // SAFETY: a live cache created by this config.
    match unsafe { cache.as_ref() } {
        Some(c) => config.pin_mut().setTimingCache(c, false),
        None => false,
    }
}

/// The config's timing cache, serialized.
///
/// trtx-sys binds `ITimingCache` as an opaque type, so `ITimingCache::serialize()` (an inline
/// forwarder to `mImpl->serialize()`) is done here by hand with the Itanium C++ ABI of the vendored
/// headers: the object is `{vptr, apiv::VTimingCache* mImpl}` and `serialize` is the first virtual
/// function of `VTimingCache` after `VRoot`'s destructor pair (vtable slot 2). Checked against
/// TensorRT-RTX 1.7: the call is TensorRT's own serializer (it logs "Serializing timing cache"). A
/// CPU-only TensorRT-RTX writes an empty cache it cannot read back, so CPU-only builds are not
/// handed the file (see `build_job`).
fn serialize_timing_cache(config: &UniquePtr<nvinfer1::IBuilderConfig>) -> Option<Vec<u8>> {
    type Serialize = unsafe extern "C" fn(*const c_void) -> *mut nvinfer1::IHostMemory;
    let cache = config.getTimingCache();
    if cache.is_null() {
        return None;
    }
    // SAFETY: see the function documentation; every pointer is checked for null before use, and
    // the returned IHostMemory is owned (deleted by its UniquePtr).
    unsafe {
        let object = cache.cast::<*const c_void>();
        let imp = *object.add(1);
        if imp.is_null() {
            return None;
        }
        let vtable = *imp.cast::<*const *const c_void>();
        if vtable.is_null() {
            return None;
        }
        let f: Serialize = std::mem::transmute::<*const c_void, Serialize>(*vtable.add(2));
        let hm: UniquePtr<nvinfer1::IHostMemory> = UniquePtr::from_raw(f(imp));
        if hm.is_null() {
            return None;
        }
        Some(std::slice::from_raw_parts(hm.data().cast::<u8>(), hm.size()).to_vec())
    }
}

fn describe(t: &nvinfer1::ITensor, constant: bool) -> NetworkTensor {
    NetworkTensor {
        name: cstr(t.getName()),
        dtype: Some(dtype_name(t.getType())),
        shape_tensor: t.isShapeTensor(),
        constant,
        input: t.isNetworkInput(),
        output: t.isNetworkOutput(),
    }
}

#[cfg(feature = "tensorrt")]
fn configure_target(_config: &mut UniquePtr<nvinfer1::IBuilderConfig>, target_sm: Option<u32>) -> Result<(), String> {
    match target_sm {
        None => Ok(()),
        Some(_) => Err("enterprise TensorRT builds for the GPU it runs on; no GPU was found".into()),
    }
}

#[cfg(not(feature = "tensorrt"))]
fn configure_target(config: &mut UniquePtr<nvinfer1::IBuilderConfig>, target_sm: Option<u32>) -> Result<(), String> {
    let Some(sm) = target_sm else { return Ok(()) };
    let cc = match sm {
        75 => trtx_sys::ComputeCapability::kSM75,
        80 => trtx_sys::ComputeCapability::kSM80,
        86 => trtx_sys::ComputeCapability::kSM86,
        89 => trtx_sys::ComputeCapability::kSM89,
        120 => trtx_sys::ComputeCapability::kSM120,
        121 => trtx_sys::ComputeCapability::kSM121,
        other => return Err(format!("TensorRT-RTX cannot build for compute capability {}.{}", other / 10, other % 10)),
    };
    if !config.pin_mut().setNbComputeCapabilities(1) || !config.pin_mut().setComputeCapability(cc.into(), 0) {
        return Err(format!("TensorRT-RTX refused compute capability sm_{sm}"));
    }
    Ok(())
}

/// A deserialized engine with its runtime and logger (dropped in reverse order).
#[allow(clippy::struct_field_names)]
pub(crate) struct Engine {
    engine: UniquePtr<nvinfer1::ICudaEngine>,
    runtime: UniquePtr<nvinfer1::IRuntime>,
    logger: Logger,
}

impl Engine {
    /// Deserialize an engine (needs a GPU the engine was built for, with its CUDA context current).
    pub(crate) fn load(libs: &Libraries, bytes: &[u8]) -> Result<Engine, Failure> {
        let logger = Logger::new().map_err(|message| Failure { message, log: String::new(), cancelled: false })?;
        let fail = |logger: &Logger, m: String| {
            let errs = logger.errors(3);
            let message = if errs.is_empty() { m } else { format!("{m}: {}", errs.join(" | ")) };
            Failure { message, log: logger.text(), cancelled: false }
        };
        check_abi(libs).map_err(|m| fail(&logger, m))?;
        let create: CreateRuntime = symbol(&libs.infer, "createInferRuntime_INTERNAL").map_err(|m| fail(&logger, m))?;
        // SAFETY: as for the builder; the logger outlives the runtime (struct field order).
        let mut runtime: UniquePtr<nvinfer1::IRuntime> =
            unsafe { UniquePtr::from_raw(create(logger.interface(), trtx_sys::get_tensorrt_version() as i32)) };
        if runtime.is_null() {
            return Err(fail(&logger, "TensorRT could not create a runtime".into()));
        }
        // SAFETY: the bytes outlive the call (TensorRT copies what it keeps).
        let engine: UniquePtr<nvinfer1::ICudaEngine> =
            unsafe { UniquePtr::from_raw(runtime.pin_mut().deserializeCudaEngine(bytes.as_ptr().cast(), bytes.len())) };
        if engine.is_null() {
            return Err(fail(&logger, "TensorRT could not deserialize the engine".into()));
        }
        Ok(Engine { engine, runtime, logger })
    }

    /// The engine inspector's JSON (layer list at the build's profiling verbosity).
    pub(crate) fn inspector_json(&self) -> Result<String, String> {
        let inspector: UniquePtr<nvinfer1::IEngineInspector> =
            // SAFETY: the inspector borrows the engine and is dropped first.
            unsafe { UniquePtr::from_raw(self.engine.createEngineInspector()) };
        if inspector.is_null() {
            return Err("TensorRT could not create an engine inspector".into());
        }
        let json = cstr(inspector.getEngineInformation(trtx_sys::LayerInformationFormat::kJSON.into()));
        if json.is_empty() { Err("the engine inspector returned nothing".into()) } else { Ok(json) }
    }

    /// The engine's I/O tensors: (name, is an input, dtype, dims with -1 for dynamic).
    pub(crate) fn io_tensors(&self) -> Vec<(String, bool, trtx_sys::DataType, Vec<i64>)> {
        let mut out = Vec::new();
        for i in 0..self.engine.getNbIOTensors() {
            let name = cstr(self.engine.getIOTensorName(i));
            let c = CString::new(name.as_str()).unwrap_or_default();
            // SAFETY: NUL-terminated name of an I/O tensor of this engine.
            let (mode, dt, dims) = unsafe {
                (
                    trtx_sys::TensorIOMode::from(self.engine.getTensorIOMode(c.as_ptr())),
                    trtx_sys::DataType::from(self.engine.getTensorDataType(c.as_ptr())),
                    self.engine.getTensorShape(c.as_ptr()),
                )
            };
            let n = usize::try_from(dims.nbDims).unwrap_or(0).min(dims.d.len());
            out.push((name, mode == trtx_sys::TensorIOMode::kINPUT, dt, dims.d[..n].to_vec()));
        }
        out
    }

    /// An execution context.
    pub(crate) fn context(&mut self) -> Result<Context<'_>, String> {
        let ctx =
            self.engine.pin_mut().createExecutionContext(trtx_sys::ExecutionContextAllocationStrategy::kSTATIC.into());
        // SAFETY: the context borrows the engine (lifetime `'_`) and is deleted by its UniquePtr.
        let ctx: UniquePtr<nvinfer1::IExecutionContext> = unsafe { UniquePtr::from_raw(ctx) };
        if ctx.is_null() {
            return Err(format!(
                "TensorRT could not create an execution context: {}",
                self.logger.errors(2).join(" | ")
            ));
        }
        Ok(Context { ctx, _engine: std::marker::PhantomData })
    }

    /// Errors logged so far.
    pub(crate) fn log_errors(&self) -> Vec<String> {
        self.logger.errors(3)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Engine before runtime (the logger, a later field, goes last).
        self.engine = UniquePtr::null();
        self.runtime = UniquePtr::null();
    }
}

/// An execution context of an [`Engine`].
pub(crate) struct Context<'e> {
    ctx: UniquePtr<nvinfer1::IExecutionContext>,
    _engine: std::marker::PhantomData<&'e mut Engine>,
}

impl Context<'_> {
    /// Set the shape of a dynamic input.
    pub(crate) fn set_input_shape(&mut self, name: &str, dims: &[usize]) -> Result<(), String> {
        let c = CString::new(name).map_err(|e| e.to_string())?;
        let d: Vec<i64> = dims.iter().map(|&x| x as i64).collect();
        // SAFETY: live context, NUL-terminated name.
        let ok = unsafe { self.ctx.pin_mut().setInputShape(c.as_ptr(), &trtx_sys::Dims64::from_slice(&d)) };
        if ok { Ok(()) } else { Err(format!("TensorRT refused shape {dims:?} for input '{name}'")) }
    }

    /// The shape of a tensor once the input shapes are set (`None` while unknown, e.g. data-dependent).
    pub(crate) fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        let c = CString::new(name).ok()?;
        // SAFETY: live context, NUL-terminated name.
        let d = unsafe { self.ctx.getTensorShape(c.as_ptr()) };
        let n = usize::try_from(d.nbDims).ok()?.min(d.d.len());
        d.d[..n].iter().map(|&x| usize::try_from(x).ok()).collect()
    }

    /// Bind a device address to a tensor.
    ///
    /// # Safety
    /// `ptr` must point to device memory of the tensor's size that stays valid until the last
    /// [`Context::enqueue`] using it has completed.
    pub(crate) unsafe fn set_address(&mut self, name: &str, ptr: u64) -> Result<(), String> {
        let c = CString::new(name).map_err(|e| e.to_string())?;
        // SAFETY: guaranteed by the caller.
        let ok = unsafe { self.ctx.pin_mut().setTensorAddress(c.as_ptr(), ptr as usize as *mut autocxx::c_void) };
        if ok { Ok(()) } else { Err(format!("TensorRT refused the address of '{name}'")) }
    }

    /// Enqueue the engine on a CUDA stream.
    ///
    /// # Safety
    /// `stream` must be a live CUDA stream of the current context, and every tensor address bound.
    pub(crate) unsafe fn enqueue(&mut self, stream: *mut c_void) -> Result<(), String> {
        // SAFETY: guaranteed by the caller.
        let ok = unsafe { self.ctx.pin_mut().enqueueV3(stream.cast()) };
        if ok { Ok(()) } else { Err("TensorRT could not enqueue the engine".into()) }
    }

    /// Turn on every unfused debug tensor and route them to `listener`.
    ///
    /// # Safety
    /// `listener` must outlive every enqueue of this context.
    pub(crate) unsafe fn set_debug_listener(&mut self, listener: &DebugListener) -> Result<(), String> {
        // SAFETY: guaranteed by the caller.
        let ok = unsafe { self.ctx.pin_mut().setDebugListener(listener.raw) };
        if !ok || !self.ctx.pin_mut().setUnfusedTensorsDebugState(true) {
            return Err("TensorRT refused the debug listener".into());
        }
        Ok(())
    }
}

/// A debug tensor handed over by TensorRT during an enqueue: device address, type, shape, name.
pub(crate) struct DebugTensor<'a> {
    pub addr: u64,
    pub dtype: trtx_sys::DataType,
    pub shape: Vec<usize>,
    pub name: &'a str,
    pub stream: *mut c_void,
}

/// Receives debug tensors.
pub(crate) type DebugFn = dyn FnMut(DebugTensor<'_>) -> bool + Send;

/// An `IDebugListener` forwarding to a Rust closure.
pub(crate) struct DebugListener {
    raw: *mut nvinfer1::IDebugListener,
    f: Box<Mutex<Box<DebugFn>>>,
}

unsafe extern "C" {
    fn trtx_destroy_debug_listener(listener: *mut nvinfer1::IDebugListener);
}

unsafe extern "system" fn debug_callback(
    user: *const c_void,
    addr: *const c_void,
    _location: nvinfer1::TensorLocation,
    dtype: nvinfer1::DataType,
    shape: *const trtx_sys::Dims64,
    name: *const c_char,
    stream: *mut c_void,
) -> bool {
    // SAFETY: `user` is the closure box of the listener, which outlives the context's enqueues;
    // `shape` and `name` are valid for the call.
    unsafe {
        let f = &*user.cast::<Mutex<Box<DebugFn>>>();
        let Some(d) = shape.as_ref() else { return false };
        let n = usize::try_from(d.nbDims).unwrap_or(0).min(d.d.len());
        let dims: Vec<usize> = d.d[..n].iter().map(|&x| usize::try_from(x).unwrap_or(0)).collect();
        let name = cstr(name);
        let Ok(mut f) = f.lock() else { return false };
        f(DebugTensor { addr: addr as usize as u64, dtype: dtype.into(), shape: dims, name: &name, stream })
    }
}

impl DebugListener {
    /// A listener calling `f` for every debug tensor.
    pub(crate) fn new(f: Box<DebugFn>) -> Result<DebugListener, String> {
        let f = Box::new(Mutex::new(f));
        let user = std::ptr::from_ref::<Mutex<Box<DebugFn>>>(&f).cast_mut().cast::<c_void>();
        // SAFETY: the callback matches the bridge's signature; `user` lives in `f`, owned by the
        // listener, which destroys the C++ object first.
        let raw = unsafe { trtx_sys::trtx_create_debug_listener(user, debug_callback) };
        if raw.is_null() {
            return Err("cannot create a TensorRT debug listener".into());
        }
        Ok(DebugListener { raw, f })
    }
}

impl Drop for DebugListener {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once, before the closure box (`f`) is dropped.
        unsafe { trtx_destroy_debug_listener(self.raw) };
        let _ = &self.f;
    }
}
