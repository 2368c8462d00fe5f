//! The build job: model + plan → engine, build log and tensor map, through the engine cache.
//!
//! Strict mode (the default) builds the plan-rewritten ONNX ([`crate::precision::convert`], the same
//! bytes `trtlens convert` writes) strongly typed, so each layer computes in the type the plan
//! gives it. The original model's directory resolves external data. Every tensor of the original
//! model that the network holds under its name (or, for FP16 graph outputs, under the rewrite's
//! `NAME__fp16`) is marked as an output in `--observe all`; nothing extra in `outputs`; unfused
//! tensors become debug tensors in `debug`.
//!
//! The layer list comes from the engine inspector when this machine can deserialize the engine,
//! else from the builder's detailed log (the same information, available without a GPU).
//!
//! [`build_job`] is what `trtlens build` runs, and what a worker process runs for a build request;
//! progress goes to a callback, cancellation through a flag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::cache::{self, Cache, KeyParts, ShapeRange};
use super::discover::Libraries;
use super::tensor_map::{TENSOR_MAP_FILE, TensorMap};
use super::{Flavour, PrecisionMode, TrtOptions};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::precision::{Plan, Precision};

/// Compute capability TensorRT-RTX builds for when no GPU it supports is present
/// (`TRTLENS_RTX_TARGET_SM` overrides: 75, 80, 86, 89, 120, 121).
pub const DEFAULT_RTX_TARGET_SM: u32 = 89;

/// Compute capabilities TensorRT-RTX 1.x builds for and runs on (major*10 + minor).
pub const RTX_SUPPORTED_SM: [u32; 6] = [75, 80, 86, 89, 120, 121];

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The ONNX model.
    pub model: PathBuf,
    /// Which TensorRT.
    pub flavour: Flavour,
    /// The precision plan (`None`: every node that can is FP16).
    pub plan: Option<Plan>,
    /// How the plan is named in the tensor map and reports.
    pub plan_label: Option<String>,
    /// Libraries, observation, precision mode, cache.
    pub options: TrtOptions,
    /// Shapes of the inputs (optimization profile). Inputs not listed take their declared shape,
    /// which must then be static.
    pub shapes: BTreeMap<String, ShapeRange>,
    /// Also write the build directory here (`trtlens build --save DIR`).
    pub save: Option<PathBuf>,
    /// Set to cancel the build at TensorRT's next step.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Progress of a build.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent {
    /// What is happening (`converting the model`, `building engine: layer 3/12`, `building engine: 4 s`).
    Status(String),
    /// A warning or error line of TensorRT's log.
    Log(String),
}

/// `build.json`: what was built, with what, how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildMeta {
    /// Cache key.
    pub key: String,
    /// Everything the key is made of.
    pub parts: KeyParts,
    /// The builder library.
    pub library: String,
    /// Seconds the TensorRT build took.
    pub build_seconds: f64,
    /// Where the layer list came from: `inspector` or `build log`.
    pub layers_from: String,
    /// Tensors TensorRT refused to mark.
    pub not_marked: Vec<(String, String)>,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
}

/// A finished (or cached) build.
#[derive(Debug)]
pub struct BuildOutput {
    /// The build directory (`--save DIR`, else the cache entry, else a temporary directory).
    pub dir: PathBuf,
    /// The tensor map.
    pub tensor_map: TensorMap,
    /// Its metadata.
    pub meta: BuildMeta,
    /// True when the engine came from the cache.
    pub cache_hit: bool,
    /// The libraries used.
    pub libraries: Libraries,
    /// Why this machine cannot execute the engine (`None`: it can).
    pub not_runnable: Option<String>,
    /// Keeps a temporary build directory alive.
    _tmp: Option<tempfile::TempDir>,
}

impl BuildOutput {
    /// The serialized engine file.
    #[must_use]
    pub fn engine_file(&self) -> PathBuf {
        self.dir.join(cache::ENGINE_FILE)
    }
}

/// The GPU an engine is built on, or the target without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Part of the cache key.
    pub label: String,
    /// TensorRT-RTX compute capability to build for when no supported GPU is present.
    pub target_sm: Option<u32>,
    /// Why the engine cannot run here (`None`: it can).
    pub not_runnable: Option<String>,
}

/// Where this flavour builds on this machine.
pub fn target(flavour: Flavour) -> Result<Target> {
    let gpus = gpus();
    let first = gpus.first();
    match flavour {
        Flavour::Tensorrt => match first {
            Some(g) => Ok(Target { label: format!("{} sm_{}", g.name, g.sm()), target_sm: None, not_runnable: None }),
            None => Err(Error::runner(
                flavour.name(),
                "enterprise TensorRT builds and runs on an NVIDIA GPU, and none was found (no CUDA driver or no \
                 device; run `trtlens doctor`)",
            )),
        },
        Flavour::TensorrtRtx => {
            let env_sm = std::env::var("TRTLENS_RTX_TARGET_SM").ok().and_then(|v| v.parse::<u32>().ok());
            match first {
                Some(g) if RTX_SUPPORTED_SM.contains(&g.sm()) && env_sm.is_none() => {
                    Ok(Target { label: format!("{} sm_{}", g.name, g.sm()), target_sm: None, not_runnable: None })
                }
                other => {
                    let sm = env_sm.unwrap_or(DEFAULT_RTX_TARGET_SM);
                    let why = match other {
                        Some(g) if !RTX_SUPPORTED_SM.contains(&g.sm()) => format!(
                            "TensorRT-RTX does not run on {} (compute capability {}.{}; it supports {})",
                            g.name,
                            g.cc.0,
                            g.cc.1,
                            rtx_supported_list()
                        ),
                        Some(g) => format!("the engine was built for sm_{sm} (TRTLENS_RTX_TARGET_SM), not {}", g.name),
                        None => "no NVIDIA GPU was found (the engine was built without one)".to_string(),
                    };
                    Ok(Target {
                        label: format!("no usable GPU, built for sm_{sm}"),
                        target_sm: Some(sm),
                        not_runnable: Some(why),
                    })
                }
            }
        }
    }
}

/// `7.5, 8.0, 8.6, 8.9, 12.0, 12.1`.
#[must_use]
pub fn rtx_supported_list() -> String {
    RTX_SUPPORTED_SM.iter().map(|s| format!("{}.{}", s / 10, s % 10)).collect::<Vec<_>>().join(", ")
}

/// The GPUs (none without the `cuda` feature or a driver).
fn gpus() -> Vec<super::doctor::Gpu> {
    #[cfg(feature = "cuda")]
    {
        super::cuda::devices().map(|(_, g)| g).unwrap_or_default()
    }
    #[cfg(not(feature = "cuda"))]
    Vec::new()
}

/// The optimization profile: `shapes` for the inputs listed, the declared shape for the others (an
/// input with a dynamic dimension and no shape is an error naming it).
pub fn profile(model: &Model, shapes: &BTreeMap<String, ShapeRange>) -> Result<BTreeMap<String, ShapeRange>> {
    for name in shapes.keys() {
        if !model.graph.inputs.contains(name) {
            return Err(Error::usage(format!(
                "--shape names '{name}', which is not an input of the model (inputs: {})",
                model.graph.inputs.join(", ")
            )));
        }
    }
    let fixed: BTreeMap<String, Vec<usize>> = shapes.iter().map(|(n, r)| (n.clone(), r.opt.clone())).collect();
    let specs = crate::inputs::input_specs(model, &fixed)?;
    Ok(specs
        .into_iter()
        .map(|(name, _, shape)| {
            let r = shapes.get(&name).cloned().unwrap_or_else(|| ShapeRange::fixed(&shape));
            (name, r)
        })
        .collect())
}

/// Build (or fetch from the cache) the engine of `req`.
pub fn build_job(req: &BuildRequest, progress: &mut dyn FnMut(BuildEvent)) -> Result<BuildOutput> {
    super::require_compiled(req.flavour)?;
    if req.options.precision_mode == PrecisionMode::Constraints {
        return Err(Error::usage(format!(
            "--precision-mode constraints is the TensorRT 10 route (per-layer precision flags), and {} has no \
             per-layer precision API: use the default --precision-mode strict (the plan's Cast rewrite, built \
             strongly typed)",
            match req.flavour {
                Flavour::Tensorrt => "this trtlens drives TensorRT 11, which",
                Flavour::TensorrtRtx => "TensorRT-RTX",
            }
        )));
    }
    if let Some(dir) = &req.save {
        check_save_dir(dir)?;
    }
    let model = Model::load(&req.model)?;
    let plan = req.plan.clone().unwrap_or_else(|| Plan::uniform(Precision::Fp16));
    let shapes = profile(&model, &req.shapes)?;
    progress(BuildEvent::Status("finding TensorRT".into()));
    let libs = super::discover::find(req.flavour, req.options.lib_dir.as_deref())?;
    let target = target(req.flavour)?;
    let planted = planted_mismatch();
    let parts = KeyParts {
        model_sha256: model.sha256.clone(),
        plan_sha256: Some({
            // The effective plan (all FP16 when none was given) and its label (kept in the tensor map).
            let text = format!("{}\n# label: {:?}", plan.to_toml(), req.plan_label);
            let h = crate::model::sha256_hex(text.as_bytes());
            match &planted {
                Some(n) => format!("{h}+planted:{n}"),
                None => h,
            }
        }),
        flavour: req.flavour,
        version: libs.version.to_string(),
        observe: req.options.observe,
        precision_mode: req.options.precision_mode,
        shapes: shapes.clone(),
        gpu: target.label.clone(),
        trtlens: env!("CARGO_PKG_VERSION").to_string(),
    };
    let key = parts.key();
    let cache = Cache::new(req.options.cache_dir.clone().unwrap_or_else(cache::default_dir));
    if !req.options.no_cache
        && let Some(entry) = cache.lookup(&key)
    {
        progress(BuildEvent::Status(format!("engine cache hit ({})", short(&key))));
        let (dir, tmp) = match &req.save {
            Some(d) => (publish(&entry, d)?, None),
            None => (entry, None),
        };
        let tensor_map = read_tensor_map(&dir)?;
        let meta = read_meta(&dir)?;
        return Ok(BuildOutput {
            dir,
            tensor_map,
            meta,
            cache_hit: true,
            libraries: libs,
            not_runnable: target.not_runnable,
            _tmp: tmp,
        });
    }

    progress(BuildEvent::Status("converting the model with the plan".into()));
    let converted = crate::precision::convert(&model, &plan)?;
    let onnx = match &planted {
        Some(node) => plant_mismatch(&model, &plan, &converted.report, node)?,
        None => prost::Message::encode_to_vec(&converted.proto),
    };
    let tmp = tempfile::Builder::new()
        .prefix("trtlens-build-")
        .tempdir()
        .map_err(|e| Error::store_io(std::env::temp_dir(), "cannot create a temporary build directory", e))?;
    let t0 = Instant::now();
    let timing_file = cache.timing_file(req.flavour, &libs.version.to_string(), &target.label);
    // A CPU-only TensorRT-RTX build writes a timing cache it cannot read back: start it empty.
    let timing =
        if req.options.no_cache || target.target_sm.is_some() { None } else { std::fs::read(&timing_file).ok() };
    let built =
        build_engine(req, &libs, &model, &converted.report, &onnx, &shapes, &target, timing.as_deref(), progress)?;
    let build_seconds = t0.elapsed().as_secs_f64();
    if !req.options.no_cache
        && let Some(t) = &built.timing_cache
    {
        let _ = timing_file.parent().map(std::fs::create_dir_all);
        let _ = crate::store::write_atomic(&timing_file, t);
    }
    let meta = BuildMeta {
        key: key.clone(),
        parts,
        library: libs.infer.display().to_string(),
        build_seconds,
        layers_from: built.layers_from.clone(),
        not_marked: built.not_marked.clone(),
        created_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    write_build_dir(tmp.path(), &built.engine, &built.log, &built.tensor_map, &meta)?;
    let (dir, keep) = if req.options.no_cache {
        match &req.save {
            Some(d) => (publish(tmp.path(), d)?, None),
            None => (tmp.path().to_path_buf(), Some(tmp)),
        }
    } else {
        let entry = cache.store(&key, tmp.path())?;
        match &req.save {
            Some(d) => (publish(&entry, d)?, None),
            None => (entry, None),
        }
    };
    Ok(BuildOutput {
        dir,
        tensor_map: built.tensor_map,
        meta,
        cache_hit: false,
        libraries: libs,
        not_runnable: target.not_runnable,
        _tmp: keep,
    })
}

/// Debug builds only: `TRTLENS_TEST_PLANT_MISMATCH=NODE` builds the engine with NODE in the other
/// precision than the plan gives it, while the tensor map still checks against the plan, so tests
/// can see a precision mismatch reported end to end. Release builds ignore the variable.
fn planted_mismatch() -> Option<String> {
    if cfg!(debug_assertions) {
        std::env::var("TRTLENS_TEST_PLANT_MISMATCH").ok().filter(|v| !v.is_empty())
    } else {
        None
    }
}

/// The rewritten model with `node` flipped to the other precision (see [`planted_mismatch`]).
fn plant_mismatch(model: &Model, plan: &Plan, report: &crate::precision::ConvertReport, node: &str) -> Result<Vec<u8>> {
    use crate::precision::{Override, Reason, Selector};
    let flipped = if report.nodes_fp16.iter().any(|n| n == node) { Precision::Fp32 } else { Precision::Fp16 };
    let mut p = plan.clone();
    p.overrides.push(Override {
        selector: Selector::Node(node.to_string()),
        precision: flipped,
        reason: Reason::User,
        note: None,
    });
    Ok(prost::Message::encode_to_vec(&crate::precision::convert(model, &p)?.proto))
}

fn short(key: &str) -> &str {
    &key[..12.min(key.len())]
}

/// `--save DIR` must be empty, absent, or an earlier build directory.
fn check_save_dir(dir: &Path) -> Result<()> {
    if dir.is_file() {
        return Err(Error::store(dir, "is a file; --save wants a directory path"));
    }
    if dir.is_dir() {
        let earlier = dir.join(TENSOR_MAP_FILE).is_file() && dir.join(cache::META_FILE).is_file();
        let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
        if !earlier && !empty {
            return Err(Error::store(
                dir,
                "exists and is not a trtlens build directory; choose another --save path (trtlens only replaces its own builds)",
            ));
        }
    }
    Ok(())
}

/// Copy a build directory to `dest` (replacing an earlier build there), atomically.
fn publish(from: &Path, dest: &Path) -> Result<PathBuf> {
    check_save_dir(dest)?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::store_io(&parent, "cannot create the directory", e))?;
    let base = dest.file_name().map_or_else(|| "build".into(), |n| n.to_string_lossy().into_owned());
    let tmp = parent.join(format!(".{base}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    cache::copy_dir(from, &tmp)?;
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(|e| Error::store_io(dest, "cannot replace the earlier build", e))?;
    }
    std::fs::rename(&tmp, dest).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        Error::store_io(dest, "cannot write the build directory", e)
    })?;
    Ok(dest.to_path_buf())
}

fn write_build_dir(dir: &Path, engine: &[u8], log: &str, map: &TensorMap, meta: &BuildMeta) -> Result<()> {
    let w = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).map_err(|e| Error::store_io(dir.join(name), "cannot write", e))
    };
    w(cache::ENGINE_FILE, engine)?;
    w(cache::LOG_FILE, log.as_bytes())?;
    w(TENSOR_MAP_FILE, map.to_json()?.as_bytes())?;
    let meta = serde_json::to_string_pretty(meta).map_err(|e| Error::store(dir, e.to_string()))?;
    w(cache::META_FILE, meta.as_bytes())
}

/// Read `DIR/tensor_map.json`.
pub fn read_tensor_map(dir: &Path) -> Result<TensorMap> {
    let p = dir.join(TENSOR_MAP_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| Error::store_io(&p, "cannot read the tensor map", e))?;
    let map: TensorMap =
        serde_json::from_str(&text).map_err(|e| Error::store(&p, format!("not a trtlens tensor map: {e}")))?;
    if map.schema != super::tensor_map::TENSOR_MAP_SCHEMA {
        return Err(Error::store(&p, format!("unsupported tensor map schema '{}'", map.schema)));
    }
    Ok(map)
}

fn read_meta(dir: &Path) -> Result<BuildMeta> {
    let p = dir.join(cache::META_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| Error::store_io(&p, "cannot read the build metadata", e))?;
    serde_json::from_str(&text).map_err(|e| Error::store(&p, format!("not a trtlens build.json: {e}")))
}

/// What the engine build produced.
struct Built {
    engine: Vec<u8>,
    log: String,
    tensor_map: TensorMap,
    layers_from: String,
    not_marked: Vec<(String, String)>,
    timing_cache: Option<Vec<u8>>,
}

#[cfg(any(feature = "tensorrt", feature = "tensorrt-rtx"))]
#[allow(clippy::too_many_arguments)]
fn build_engine(
    req: &BuildRequest,
    libs: &Libraries,
    model: &Model,
    report: &crate::precision::ConvertReport,
    onnx: &[u8],
    shapes: &BTreeMap<String, ShapeRange>,
    target: &Target,
    timing: Option<&[u8]>,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<Built> {
    use super::Observe;
    use super::tensor_map::{MapInputs, TrtInfo};
    let mark: std::collections::HashSet<String> = match req.options.observe {
        Observe::All => model
            .graph
            .captured()
            .into_iter()
            .map(|t| report.tensors.get(t).map_or_else(|| t.to_string(), |h| h.name.clone()))
            .collect(),
        Observe::Outputs | Observe::Debug => std::collections::HashSet::new(),
    };
    // Dynamic inputs only: a static input needs no profile.
    let dynamic: Vec<(String, ShapeRange)> = shapes
        .iter()
        .filter(|(name, _)| {
            model
                .graph
                .tensor(name)
                .and_then(|t| t.ty.shape.as_ref())
                .is_none_or(|dims| dims.iter().any(|d| !matches!(d, crate::model::graph::Dim::Fixed(v) if *v >= 0)))
        })
        .map(|(n, r)| (n.clone(), r.clone()))
        .collect();
    let cancel = req.cancel.clone().unwrap_or_default();
    let built = super::engine::build(
        libs,
        onnx,
        &req.model,
        &mark,
        req.options.observe == Observe::Debug,
        &dynamic,
        target.target_sm,
        timing,
        &cancel,
        progress,
    )?;
    progress(BuildEvent::Status("reading the engine's layers".into()));
    let (engine_info, layers_from) = super::engine::layer_info(libs, &built.engine, &built.log, target);
    let tensor_map = super::tensor_map::build(&MapInputs {
        model,
        convert: report,
        rewritten: true,
        network: &built.network,
        engine: &engine_info,
        observe: req.options.observe,
        precision_mode: req.options.precision_mode,
        trt: TrtInfo { flavour: req.flavour, version: libs.version.to_string() },
        plan: req.plan_label.clone(),
    });
    Ok(Built {
        engine: built.engine,
        log: built.log,
        tensor_map,
        layers_from,
        not_marked: built.not_marked,
        timing_cache: built.timing_cache,
    })
}

#[cfg(not(any(feature = "tensorrt", feature = "tensorrt-rtx")))]
#[allow(clippy::too_many_arguments)]
fn build_engine(
    req: &BuildRequest,
    _libs: &Libraries,
    _model: &Model,
    _report: &crate::precision::ConvertReport,
    _onnx: &[u8],
    _shapes: &BTreeMap<String, ShapeRange>,
    _target: &Target,
    _timing: Option<&[u8]>,
    _progress: &mut dyn FnMut(BuildEvent),
) -> Result<Built> {
    super::require_compiled(req.flavour)?;
    Err(Error::runner(req.flavour.name(), "built without TensorRT"))
}
