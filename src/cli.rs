//! Command-line interface (clap derive). Parses arguments, calls the library, prints results.
//! Exit codes: 0 success, 1 a verdict of failure (accuracy), 2 any usage or run error.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub mod culprits;

use crate::error::{Error, Result};
use crate::inputs::{self, InputOptions};
use crate::model::Model;
use crate::run::{self, Progress, RunRequest};
use crate::runner::{RunnerKind, RunnerOptions};

pub mod share;

/// Find where and why an engine's numbers drift away from its ONNX model.
#[derive(Debug, Parser)]
#[command(name = "trtlens", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Print nothing but errors and results.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// On errors, also print the details (the backend's message chain, shapes, log tail).
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarise an ONNX model: opset, inputs/outputs, node count per op type, parameters.
    Info(InfoArgs),
    /// Run a model on CPU and save every intermediate tensor to a run directory.
    Run(RunArgs),
    /// Compare every tensor of a candidate against a reference (exit 0 pass, 1 fail, 2 error).
    Compare(CompareArgs),
    /// Write the mixed-precision model for a precision plan (Cast nodes + FP16 initializers), or the
    /// plan as autocast or trtexec arguments (--format).
    Convert(ConvertArgs),
    /// Browse the per-layer diff in a terminal UI, toggle layers FP16/FP32, rebuild and re-compare.
    Inspect(InspectArgs),
    /// Turn a saved JSON report into plots, a self-contained HTML report and a markdown summary.
    Report(share::ReportArgs),
    /// Export the inputs of a run: Polygraphy JSON, .npz, .safetensors, raw files for trtexec.
    Inputs(share::InputsArgs),
    /// Export the captured tensors of a run: .npz, Polygraphy run results JSON.
    Tensors(share::TensorsArgs),
    /// Build a TensorRT engine with every tensor observable (no run): engine, build log, `tensor_map.json`.
    Build(BuildArgs),
    /// Show which TensorRT flavours, GPUs and ONNX Runtime this machine has, and what can run where.
    Doctor(DoctorArgs),
    /// Predict FP16 overflow/underflow per node from FP32 reference runs alone (masks and clamps apart).
    Predict(culprits::PredictArgs),
    /// Find the fewest nodes to keep FP32 so that the graph outputs pass, verified by candidate runs.
    Search(culprits::SearchArgs),
    /// Gate CI on accuracy: compare with a baseline report, per layer (exit 0 pass, 1 regressed, 2 error).
    Check(CheckArgs),
    /// Execute one job request and stream JSON events on stdout (used by trtlens itself; docs/worker.md).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// TensorRT flags (shared by `run`, `compare`, `inspect` and `build`).
#[derive(Debug, Args, Clone, Default)]
pub struct TrtArgs {
    /// Directory of the TensorRT libraries (else `TENSORRT_LIB_DIR`, `LD_LIBRARY_PATH`, the `tensorrt_libs` /
    /// `tensorrt_rtx_libs` Python packages, system paths).
    #[arg(long = "trt-lib", value_name = "DIR")]
    pub trt_lib: Option<PathBuf>,
    /// Tensors a TensorRT engine exposes: all (every ONNX tensor marked; breaks fusions), outputs
    /// (production fusion), debug (unfused tensors as debug tensors).
    #[arg(long, value_enum, value_name = "all|outputs|debug")]
    pub observe: Option<crate::trt::Observe>,
    /// How the plan reaches TensorRT: strict (Cast-rewritten ONNX, strongly typed) or constraints
    /// (TensorRT 10 per-layer precision flags).
    #[arg(long = "precision-mode", value_enum, value_name = "strict|constraints")]
    pub precision_mode: Option<crate::trt::PrecisionMode>,
    /// Build the engine even when the engine cache has it, and do not store it.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Engine cache directory (default: `TRTLENS_CACHE_DIR`, else `$XDG_CACHE_HOME/trtlens`, else `~/.cache/trtlens`).
    #[arg(long = "cache-dir", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl TrtArgs {
    /// True when any TensorRT flag was given.
    #[must_use]
    pub fn given(&self) -> bool {
        self.trt_lib.is_some()
            || self.observe.is_some()
            || self.precision_mode.is_some()
            || self.no_cache
            || self.cache_dir.is_some()
    }

    /// The library options.
    #[must_use]
    pub fn options(&self) -> crate::trt::TrtOptions {
        crate::trt::TrtOptions {
            lib_dir: self.trt_lib.clone(),
            observe: self.observe.unwrap_or_default(),
            precision_mode: self.precision_mode.unwrap_or_default(),
            no_cache: self.no_cache,
            cache_dir: self.cache_dir.clone(),
        }
    }

    /// TensorRT flags only make sense with a TensorRT runner.
    pub(crate) fn check(&self, runners: &[RunnerKind]) -> Result<()> {
        if self.given() && !runners.iter().any(|k| k.flavour().is_some()) {
            return Err(Error::usage(
                "--trt-lib, --observe, --precision-mode, --no-cache and --cache-dir apply to a TensorRT runner \
                 (--runner/--candidate tensorrt or tensorrt-rtx)",
            ));
        }
        Ok(())
    }
}

/// `trtlens build`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  trtlens build samples/mlp_overflow.onnx --candidate tensorrt-rtx --save build/mlp\n  trtlens build model.onnx --candidate tensorrt --keep-fp32-op LayerNormalization --shape input:1x3x224x224 --save build/m\n\nWrites DIR/engine.plan, DIR/build.log, DIR/tensor_map.json and DIR/build.json."
)]
pub struct BuildArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Which TensorRT builds it.
    #[arg(long, value_enum, value_name = "tensorrt|tensorrt-rtx")]
    pub candidate: crate::trt::Flavour,
    /// Precision plan.
    #[command(flatten)]
    pub plan: PlanArgs,
    /// TensorRT flags.
    #[command(flatten)]
    pub trt: TrtArgs,
    /// Concrete shape of an input with dynamic dimensions (optimization profile): NAME:1x3x224x224.
    #[arg(long, value_name = "NAME:DIMS")]
    pub shape: Vec<String>,
    /// Directory to write (replaced if it is an earlier trtlens build).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub save: PathBuf,
    /// Print the tensor map JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `trtlens doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Directory of the TensorRT libraries to examine (else discovery).
    #[arg(long = "trt-lib", value_name = "DIR")]
    pub trt_lib: Option<PathBuf>,
    /// Path to libonnxruntime.so.
    #[arg(long = "ort-lib", value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `trtlens worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The job request (JSON, protocol trtlens.job/1), or `-` to read it from stdin.
    pub request: PathBuf,
}

/// `trtlens inspect`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  trtlens inspect samples/mlp_overflow.onnx\n  trtlens inspect model.onnx --reference onnxruntime --keep-fp32-op LayerNormalization --atol 1e-3\n  trtlens inspect sessions/mlp_overflow      # reopen a saved session, nothing re-runs\n\nPress ? inside for the keys."
)]
pub struct InspectArgs {
    /// The ONNX model, or a saved session directory (sessions/NAME).
    pub target: PathBuf,
    /// Reference side: a runner (tract, onnxruntime), saved:PATH, or auto (onnxruntime when its library is found, else tract).
    #[arg(long, default_value = "auto", value_name = "RUNNER|saved:PATH|auto")]
    pub reference: String,
    /// Candidate side (cpu-fp16 takes a precision plan and can be rebuilt from the UI).
    #[arg(long, default_value = "cpu-fp16", value_name = "RUNNER|saved:PATH")]
    pub candidate: String,
    /// Tolerances (default atol = rtol = 1e-2 for a cpu-fp16 candidate).
    #[command(flatten)]
    pub tol: ToleranceArgs,
    /// Inputs for runner sides.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Path to libonnxruntime.so.
    #[arg(long = "ort-lib", value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Precision plan of the candidate.
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Runner settings (TF32, ONNX Runtime optimizations, GPU).
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Session name used by save (default: the model's file stem).
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
    /// Where sessions are saved.
    #[arg(long = "sessions-dir", default_value = "sessions", value_name = "DIR")]
    pub sessions_dir: PathBuf,
    /// Where exports (report JSON, plots, plan, mixed-precision ONNX) are written.
    #[arg(long = "export-dir", default_value = ".", value_name = "DIR")]
    pub export_dir: PathBuf,
    /// Keep FP32 (reason: prediction) every node reading or writing a tensor whose reference values
    /// exceed FP16 (`overflow`), or also flush to zero (`all`): applied after the first comparison,
    /// which is then rebuilt.
    #[arg(long = "keep-fp32-predicted", value_name = "overflow|all", num_args = 0..=1, default_missing_value = "overflow", value_parser = ["overflow", "all"])]
    pub keep_fp32_predicted: Option<String>,
    /// Key bindings file (TOML; default: `$XDG_CONFIG_HOME/trtlens/keys.toml` or `~/.config/trtlens/keys.toml` when present).
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// TensorRT flags (for --candidate tensorrt / tensorrt-rtx).
    #[command(flatten)]
    pub trt: TrtArgs,
}

impl InspectArgs {
    /// The session's comparison as a request: the first comparison runs it as is; rebuilds reuse
    /// it with the stored reference run and the edited plan. `auto` picks the reference here.
    pub fn request(&self) -> Result<crate::compare::CompareRequest> {
        use crate::compare::source::SideSpec;
        let mut ort =
            RunnerOptions { ort_lib: self.ort_lib.as_ref().map(|p| absolute_path(p)), ..RunnerOptions::default() };
        let reference = if self.reference == "auto" {
            SideSpec::Runner(crate::runner::registry::auto_reference(&ort))
        } else {
            SideSpec::parse(&self.reference)?
        };
        let candidate = SideSpec::parse(&self.candidate)?;
        self.backend.check(&runner_kinds(&[&reference, &candidate]))?;
        self.backend.apply(&mut ort);
        self.trt.check(&runner_kinds(&[&reference, &candidate]))?;
        ort.trt = self.trt.options();
        let (tolerance, overrides) = self.tol.resolve(&candidate)?;
        let mut inputs = self.inputs.options()?;
        inputs.load = inputs.load.map(|p| absolute_path(&p));
        Ok(crate::compare::CompareRequest {
            model: Some(absolute_path(&self.target)),
            reference,
            candidate,
            inputs,
            runner_options: ort,
            tolerance,
            overrides,
            top_k: self.tol.top_k,
            save_runs: None,
            keep_fp32_predicted: None,
            specialize: !self.inputs.no_specialize,
            introduced: true,
        })
    }
}

fn absolute_path(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Tolerance flags (shared by `compare` and `inspect`).
#[derive(Debug, Args, Clone)]
pub struct ToleranceArgs {
    /// Element rule: allclose (|c-r| > atol + rtol*|r| fails) or polygraphy (fails only if abs > atol and rel > rtol).
    #[arg(long, default_value = "allclose", value_parser = ["allclose", "polygraphy"])]
    pub rule: String,
    /// Absolute tolerance (default 1e-5; `inspect` with a cpu-fp16 candidate: 1e-2), or NAME:X for one tensor; repeatable.
    #[arg(long, value_name = "[NAME:]X")]
    pub atol: Vec<String>,
    /// Relative tolerance (default 1e-5; `inspect` with a cpu-fp16 candidate: 1e-2), or NAME:X for one tensor; repeatable.
    #[arg(long, value_name = "[NAME:]X")]
    pub rtol: Vec<String>,
    /// Count equal infinities on both sides as a match.
    #[arg(long)]
    pub inf_equal: bool,
    /// Worst elements kept per tensor in the report.
    #[arg(long = "top-k", default_value_t = 5)]
    pub top_k: usize,
}

impl ToleranceArgs {
    /// The tolerance and per-tensor overrides. What is not given comes from the candidate: its
    /// registry entry's defaults (FP16-appropriate for a candidate that takes a plan), or, for a
    /// saved trtlens run made with a plan, the FP16 defaults too.
    pub fn resolve(
        &self,
        candidate: &crate::compare::source::SideSpec,
    ) -> Result<(crate::compare::metrics::Tolerance, Vec<crate::compare::report::ToleranceOverride>)> {
        use crate::compare::{self, metrics::Tolerance};
        let (atol, atol_per) = compare::parse_tolerance_values("--atol", &self.atol)?;
        let (rtol, rtol_per) = compare::parse_tolerance_values("--rtol", &self.rtol)?;
        let (da, dr) = candidate_default_tolerance(candidate);
        let tolerance = Tolerance {
            rule: self.rule.parse().map_err(Error::usage)?,
            atol: atol.unwrap_or(da),
            rtol: rtol.unwrap_or(dr),
            inf_equal: self.inf_equal,
        };
        Ok((tolerance, compare::merge_overrides(atol_per, rtol_per)))
    }
}

/// Default (atol, rtol) for a candidate side.
fn candidate_default_tolerance(candidate: &crate::compare::source::SideSpec) -> (f64, f64) {
    candidate.default_tolerance()
}

/// `--keep-fp32-predicted [overflow|all]` as the library's mode.
fn predict_mode(flag: Option<&str>) -> Option<crate::precision::predict::Predict> {
    use crate::precision::predict::Predict;
    flag.map(|w| if w == "all" { Predict::OverflowAndUnderflow } else { Predict::Overflow })
}

/// A precision plan from a file and/or flags (for `cpu-fp16` and `convert`).
#[derive(Debug, Args, Clone, Default)]
pub struct PlanArgs {
    /// Precision plan (TOML; see docs/precision.md).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Default precision of every node (overrides the plan file's default).
    #[arg(long, value_name = "fp32|fp16")]
    pub precision: Option<String>,
    /// Keep this node FP32 (exact node name; repeatable).
    #[arg(long = "keep-fp32", value_name = "NODE")]
    pub keep_fp32: Vec<String>,
    /// Keep every node of this op type FP32 (repeatable).
    #[arg(long = "keep-fp32-op", value_name = "OP")]
    pub keep_fp32_op: Vec<String>,
    /// Keep nodes whose name matches this regex FP32 (repeatable).
    #[arg(long = "keep-fp32-regex", value_name = "REGEX")]
    pub keep_fp32_regex: Vec<String>,
    /// Initializer/Constant values FP16 cannot hold: saturate (to ±65504 / ±5.96e-8, like the engine
    /// builder's own weight conversion; the default), keep-fp32 (nodes reading values above 65504 stay
    /// FP32), or ieee (round: ±inf / 0). Overrides the plan file's policy.
    #[arg(long = "out-of-range", value_enum, value_name = "saturate|keep-fp32|ieee")]
    pub out_of_range: Option<crate::precision::OutOfRangePolicy>,
}

impl PlanArgs {
    /// True when any plan flag was given.
    #[must_use]
    pub fn given(&self) -> bool {
        self.plan.is_some()
            || self.precision.is_some()
            || !self.keep_fp32.is_empty()
            || !self.keep_fp32_op.is_empty()
            || !self.keep_fp32_regex.is_empty()
            || self.out_of_range.is_some()
    }

    /// The plan and a label naming it (`None` when no flag was given).
    pub fn build(&self) -> Result<Option<(crate::precision::Plan, String)>> {
        use crate::precision::{Plan, Precision};
        if !self.given() {
            return Ok(None);
        }
        let precision: Option<Precision> = self
            .precision
            .as_deref()
            .map(|p| p.parse().map_err(|e: Error| Error::usage(format!("--precision: {e}"))))
            .transpose()?;
        let from_flags = Plan::from_cli(
            precision.unwrap_or(Precision::Fp16),
            &self.keep_fp32,
            &self.keep_fp32_op,
            &self.keep_fp32_regex,
        )?;
        let mut label = Vec::new();
        let mut plan = match &self.plan {
            Some(path) => {
                let mut p = Plan::load(path)?;
                if let Some(d) = precision {
                    p.default = d;
                }
                p.overrides.extend(from_flags.overrides);
                label.push(path.display().to_string());
                p
            }
            None => {
                label.push(from_flags.default.to_string());
                from_flags
            }
        };
        let keeps: Vec<String> = self
            .keep_fp32
            .iter()
            .cloned()
            .chain(self.keep_fp32_op.iter().map(|o| format!("op {o}")))
            .chain(self.keep_fp32_regex.iter().map(|r| format!("/{r}/")))
            .collect();
        if !keeps.is_empty() {
            label.push(format!("keep fp32: {}", keeps.join(", ")));
        }
        if self.plan.is_some() && precision.is_some() {
            label.push(format!("default {}", plan.default));
        }
        if let Some(policy) = self.out_of_range {
            plan.out_of_range = policy;
            label.push(format!("out-of-range {policy}"));
        }
        Ok(Some((plan, label.join("; "))))
    }
}

/// Runner settings that change the numbers; each applies to the runners that honour it (the
/// registry's `flags`) and is an error when no runner of the command does.
#[derive(Debug, Args, Clone, Default)]
pub struct BackendArgs {
    /// TF32 for FP32 MatMul/Gemm/Conv. On onnxruntime-cuda: the CUDA provider's `use_tf32` (default: the
    /// backend's own, on). On cpu-fp16: round the inputs of FP32 matrix products to TF32, as a GPU
    /// does (default off). `--tf32` alone means on.
    #[arg(long, value_name = "on|off", num_args = 0..=1, default_missing_value = "on", value_parser = ["on", "off"])]
    pub tf32: Option<String>,
    /// ONNX Runtime's graph optimizations on onnxruntime-cuda (default disable: the Casts and
    /// per-node types stay exactly as the plan wrote them; the level is recorded in the report).
    #[arg(long = "ort-opt", value_enum, value_name = "disable|basic|extended|layout|all")]
    pub ort_opt: Option<crate::runner::OrtOpt>,
    /// GPU ordinal for onnxruntime-cuda (default 0).
    #[arg(long, value_name = "N")]
    pub device: Option<u32>,
}

impl BackendArgs {
    /// The flags given, by name.
    fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.tf32.is_some() {
            v.push("--tf32");
        }
        if self.ort_opt.is_some() {
            v.push("--ort-opt");
        }
        if self.device.is_some() {
            v.push("--device");
        }
        v
    }

    /// Refuse a flag no runner of the command honours.
    pub fn check(&self, runners: &[RunnerKind]) -> Result<()> {
        for flag in self.given() {
            if !runners.iter().any(|k| k.entry().flags.contains(&flag)) {
                let used = runners.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
                return Err(Error::usage(format!(
                    "{flag} applies to {}; {} ignore{} it",
                    crate::runner::registry::honouring(flag),
                    if used.is_empty() { "saved results".to_string() } else { used },
                    if runners.len() == 1 { "s" } else { "" }
                )));
            }
        }
        Ok(())
    }

    /// Copy the settings into runner options.
    pub fn apply(&self, opts: &mut RunnerOptions) {
        opts.tf32 = self.tf32.as_deref().map(|v| v == "on");
        opts.ort_opt = self.ort_opt;
        opts.device = self.device;
    }
}

/// The runner kinds of two sides (saved sides have none).
fn runner_kinds(sides: &[&crate::compare::source::SideSpec]) -> Vec<RunnerKind> {
    sides
        .iter()
        .filter_map(|s| match s {
            crate::compare::source::SideSpec::Runner(k) => Some(*k),
            crate::compare::source::SideSpec::Saved { .. } => None,
        })
        .collect()
}

/// `trtlens convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// The plan.
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Where to write the mixed-precision model (or, with --format autocast|trtexec, the arguments).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// What to write (see `--help`).
    #[arg(help = "What to write: the mixed-precision ONNX, the ModelOpt AutoCast command line, or trtexec (TensorRT 10 and older) --layerPrecisions/--layerOutputTypes flags", long, value_enum, default_value_t = share::ConvertFormat::Onnx, value_name = "onnx|autocast|trtexec")]
    pub format: share::ConvertFormat,
    /// Also write the plan used as TOML (to reproduce the model with --plan).
    #[arg(long = "write-plan", value_name = "FILE")]
    pub write_plan: Option<PathBuf>,
    /// Inline the If branches a trtlens run directory recorded (its control-flow specialization),
    /// so the written model (e.g. for an engine build) has the tensors that run captured.
    #[arg(long = "specialize-from", value_name = "RUN_DIR")]
    pub specialize_from: Option<PathBuf>,
    /// Print the conversion report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `trtlens info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How inputs are made or loaded (shared by every command that runs a model).
#[derive(Debug, Args, Clone, Default)]
pub struct InputArgs {
    /// Seed for random inputs.
    #[arg(long, default_value_t = inputs::DEFAULT_SEED)]
    pub seed: u64,
    /// Range of random values: NAME:LO,HI for one input, LO,HI for all (floats [LO,HI), ints [LO,HI]).
    #[arg(long = "val-range", value_name = "[NAME:]LO,HI")]
    pub val_range: Vec<String>,
    /// Concrete shape of an input, required for dynamic dimensions: NAME:1x3x224x224.
    #[arg(long, value_name = "NAME:DIMS")]
    pub shape: Vec<String>,
    /// Number of random iterations.
    #[arg(long, default_value_t = 1)]
    pub iterations: usize,
    /// Load inputs from a .npz, .safetensors, Polygraphy --save-inputs JSON, or a run directory.
    #[arg(long = "load-inputs", alias = "inputs", value_name = "FILE")]
    pub load_inputs: Option<PathBuf>,
    /// Keep every If node as it is. By default an If whose condition has the same value in every
    /// iteration (a constant, or computed from the inputs) is replaced by the branch it takes, so
    /// the tensors inside are captured and compared like any other.
    #[arg(long = "no-specialize")]
    pub no_specialize: bool,
}

impl InputArgs {
    /// Turn into library options.
    pub fn options(&self) -> Result<InputOptions> {
        let mut shapes = BTreeMap::new();
        for s in &self.shape {
            let (n, d) = inputs::parse_shape(s)?;
            shapes.insert(n, d);
        }
        if self.iterations == 0 {
            return Err(Error::usage("--iterations must be at least 1"));
        }
        if self.load_inputs.is_some() && self.iterations != 1 {
            return Err(Error::usage(
                "--iterations makes random inputs; a loaded input file brings its own iterations",
            ));
        }
        Ok(InputOptions {
            seed: self.seed,
            val_ranges: self.val_range.iter().map(|s| inputs::parse_val_range(s)).collect::<Result<_>>()?,
            shapes,
            iterations: self.iterations,
            load: self.load_inputs.clone(),
        })
    }
}

/// `trtlens run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Which runner executes the model.
    #[arg(long, value_enum, default_value_t = RunnerKind::Tract)]
    pub runner: RunnerKind,
    /// Run directory to write (replaced if it is an earlier trtlens run).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub save: PathBuf,
    /// Inputs.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Path to libonnxruntime.so (otherwise `ORT_DYLIB_PATH`, the onnxruntime Python package, system paths).
    #[arg(long = "ort-lib", value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Precision plan (for --runner cpu-fp16 and onnxruntime-cuda).
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Runner settings (TF32, ONNX Runtime optimizations, GPU).
    #[command(flatten)]
    pub backend: BackendArgs,
    /// TensorRT flags (for --runner tensorrt / tensorrt-rtx).
    #[command(flatten)]
    pub trt: TrtArgs,
}

/// `trtlens compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The ONNX model (optional when both sides are saved:).
    pub model: Option<PathBuf>,
    /// Reference side: a runner (tract, onnxruntime) or saved:PATH (run directory or Polygraphy JSON[#RUNNER]).
    #[arg(long, default_value = "onnxruntime", value_name = "RUNNER|saved:PATH")]
    pub reference: String,
    /// Candidate side: a runner or saved:PATH.
    #[arg(long, value_name = "RUNNER|saved:PATH")]
    pub candidate: String,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print the JSON report to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Tolerances.
    #[command(flatten)]
    pub tol: ToleranceArgs,
    /// Show only failing and skipped tensors.
    #[arg(long)]
    pub only_failing: bool,
    /// Show only the N worst tensors (mismatch ratio, then max abs error).
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Keep the runs of runner sides in DIR/reference and DIR/candidate.
    #[arg(long = "save-runs", value_name = "DIR")]
    pub save_runs: Option<PathBuf>,
    /// Skip the introduced-error pass (one more reference run that re-runs every node on the
    /// candidate's own inputs; docs/culprits.md).
    #[arg(long = "no-introduced")]
    pub no_introduced: bool,
    /// Keep FP32 (reason: prediction) every node reading or writing a tensor whose reference values
    /// exceed FP16 (`overflow`), or also flush to zero in FP16 (`all`).
    #[arg(long = "keep-fp32-predicted", value_name = "overflow|all", num_args = 0..=1, default_missing_value = "overflow", value_parser = ["overflow", "all"])]
    pub keep_fp32_predicted: Option<String>,
    /// Inputs for runner sides.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Path to libonnxruntime.so.
    #[arg(long = "ort-lib", value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Precision plan of the candidate (for --candidate cpu-fp16 and onnxruntime-cuda).
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Plots, HTML report, markdown summary.
    #[command(flatten)]
    pub share: share::ShareArgs,
    /// Runner settings (TF32, ONNX Runtime optimizations, GPU); each applies to the sides whose
    /// runner honours it.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// TensorRT flags (for --candidate tensorrt / tensorrt-rtx).
    #[command(flatten)]
    pub trt: TrtArgs,
}

/// `trtlens check`.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools, clippy::doc_markdown)] // flags; JUnit and GitHub are names in the help text
#[command(
    after_help = "Exit codes: 0 nothing regressed, 1 accuracy regressed (or a graph output is out of tolerance), 2 the check could not run.\n\nExamples:\n  trtlens check model.onnx --baseline base.json --keep-fp32 ln/Pow --update-baseline\n  trtlens check model.onnx --baseline base.json --policy policy.toml --junit junit.xml\n  trtlens check -j 4 --markdown \"$GITHUB_STEP_SUMMARY\"      # every [[check]] of trtlens.toml\n\nSee docs/check.md (policy, trtlens.toml, outputs) and docs/ci.md (CI jobs)."
)]
pub struct CheckArgs {
    /// The ONNX model. Without a model (and without --baseline), the checks listed in trtlens.toml
    /// (current directory or the nearest parent up to the repository root, or --config) run.
    pub model: Option<PathBuf>,
    /// The baseline report (a `trtlens compare --report` or `check --update-baseline` JSON file).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// What counts as a regression (TOML; docs/check.md). Default: the built-in policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Reference side: a runner or saved:PATH (default tract: embedded, the same everywhere).
    #[arg(long, value_name = "RUNNER|saved:PATH")]
    pub reference: Option<String>,
    /// Candidate side: a runner or saved:PATH (default cpu-fp16).
    #[arg(long, value_name = "RUNNER|saved:PATH")]
    pub candidate: Option<String>,
    /// Precision plan of the candidate.
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Inputs for runner sides.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Path to libonnxruntime.so.
    #[arg(long = "ort-lib", value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Also write the new comparison report here (single model only).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write JUnit XML here (one test suite per model).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a markdown summary here (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Print the check result as JSON (schema trtlens.check/1) instead of the text.
    #[arg(long)]
    pub json: bool,
    /// Write the new report as the baseline (atomically) when the check passes.
    #[arg(long = "update-baseline")]
    pub update_baseline: bool,
    /// With --update-baseline: write it whatever the verdict, replacing an unreadable or incompatible baseline.
    #[arg(long, requires = "update_baseline")]
    pub force: bool,
    /// Compare with a baseline made from another model, other inputs or other tolerances (the differences become notes).
    #[arg(long = "allow-model-change")]
    pub allow_model_change: bool,
    /// The check config (default: trtlens.toml, see MODEL).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Checks of the config run at the same time, each comparison in its own worker process
    /// (default: the number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Runner settings (TF32, ONNX Runtime optimizations, GPU), for every check's runner sides.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// TensorRT flags, for every check whose candidate is tensorrt / tensorrt-rtx.
    #[command(flatten)]
    pub trt: TrtArgs,
}

impl CheckArgs {
    /// Put this machine's runner flags (`--tf32`, `--device`, `--trt-lib`...) into a check's request.
    fn machine_flags(&self, request: &mut crate::compare::CompareRequest) -> Result<()> {
        let kinds = runner_kinds(&[&request.reference, &request.candidate]);
        self.backend.check(&kinds)?;
        self.backend.apply(&mut request.runner_options);
        if self.trt.given() {
            self.trt.check(&kinds)?;
            request.runner_options.trt = self.trt.options();
        }
        Ok(())
    }

    /// Flags that describe one comparison (not allowed with a config, which sets them per check).
    fn comparison_flags(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        let i = &self.inputs;
        for (on, flag) in [
            (self.policy.is_some(), "--policy"),
            (self.reference.is_some(), "--reference"),
            (self.candidate.is_some(), "--candidate"),
            (self.plan.given(), "plan flags"),
            (i.seed != inputs::DEFAULT_SEED, "--seed"),
            (!i.val_range.is_empty(), "--val-range"),
            (!i.shape.is_empty(), "--shape"),
            (i.iterations != 1, "--iterations"),
            (i.load_inputs.is_some(), "--load-inputs"),
            (i.no_specialize, "--no-specialize"),
            (self.report.is_some(), "--report"),
        ] {
            if on {
                given.push(flag);
            }
        }
        given
    }
}

/// Entry point used by `main`.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            report_error(&e, cli.verbose);
            ExitCode::from(e.kind().exit_code())
        }
    }
}

/// Print an error: one line, then its details with `-v` (or a hint that there are some).
fn report_error(e: &Error, verbose: bool) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    match e.details() {
        Some(d) if verbose => {
            for line in d.lines() {
                let _ = writeln!(err, "  {line}");
            }
        }
        Some(_) => {
            let _ = writeln!(err, "  (run with -v for details)");
        }
        None => {}
    }
}

fn dispatch(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Worker(a) => Ok(crate::job::worker::serve(&a.request)),
        Command::Build(a) => build_cmd(a, cli.quiet),
        Command::Doctor(a) => doctor_cmd(a),
        Command::Info(a) => info(a),
        Command::Run(a) => run_cmd(a, cli.quiet),
        Command::Compare(a) => compare_cmd(a, cli.quiet),
        Command::Convert(a) => convert_cmd(a, cli.quiet),
        Command::Inspect(a) => inspect_cmd(a),
        Command::Report(a) => share::report_cmd(a, cli.quiet, use_color()),
        Command::Inputs(a) => share::inputs_cmd(a, cli.quiet),
        Command::Tensors(a) => share::tensors_cmd(a, cli.quiet),
        Command::Predict(a) => culprits::predict_cmd(a, cli.quiet),
        Command::Search(a) => culprits::search_cmd(a, cli.quiet),
        Command::Check(a) => check_cmd(a, cli.quiet, cli.verbose),
    }
}

/// The bindings file: `--keys`, else the user's config file when it exists, else the defaults.
fn keymap(explicit: Option<&std::path::Path>) -> Result<crate::tui::keys::KeyMap> {
    use crate::tui::keys::KeyMap;
    if let Some(p) = explicit {
        return KeyMap::load(p);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    match config.map(|c| c.join("trtlens").join("keys.toml")).filter(|p| p.is_file()) {
        Some(p) => KeyMap::load(&p),
        None => Ok(KeyMap::default()),
    }
}

fn inspect_cmd(a: &InspectArgs) -> Result<ExitCode> {
    use std::io::IsTerminal as _;
    let keymap = keymap(a.keys.as_deref())?;
    if !a.target.exists() {
        return Err(Error::usage(format!(
            "{}: no such model or session (give an .onnx file or a sessions/NAME directory)",
            a.target.display()
        )));
    }
    let launch = crate::tui::Launch {
        target: a.target.clone(),
        plan: a.plan.build()?.map(|(p, _)| p),
        request: a.request()?,
        keep_fp32_predicted: predict_mode(a.keep_fp32_predicted.as_deref()),
        session_name: a.session.clone(),
        sessions_dir: a.sessions_dir.clone(),
        export_dir: a.export_dir.clone(),
        exe: None,
    };
    if !std::io::stdout().is_terminal() {
        return Err(Error::usage("trtlens inspect needs a terminal (use trtlens compare for scripts)"));
    }
    let app = crate::tui::start(&launch, &keymap)?;
    crate::tui::run(app, &keymap)?;
    Ok(ExitCode::SUCCESS)
}

fn info(a: &InfoArgs) -> Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let summary = model.summary();
    let mut out = std::io::stdout().lock();
    if a.json {
        let s = serde_json::to_string_pretty(&summary).map_err(|e| Error::usage(e.to_string()))?;
        let _ = writeln!(out, "{s}");
    } else {
        let _ = write!(out, "{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

fn run_cmd(a: &RunArgs, quiet: bool) -> Result<ExitCode> {
    run::check_destination(&a.save)?;
    let plan = a.plan.build()?;
    if plan.is_some() && !a.runner.takes_plan() {
        return Err(Error::usage(format!(
            "a precision plan applies to --runner cpu-fp16; {} always runs the model as written",
            a.runner.name()
        )));
    }
    a.backend.check(&[a.runner])?;
    let (plan, plan_label) = plan.map_or((None, None), |(p, l)| (Some(p), Some(l)));
    let mut runner_options = RunnerOptions { ort_lib: a.ort_lib.clone(), plan, plan_label, ..RunnerOptions::default() };
    a.backend.apply(&mut runner_options);
    a.trt.check(&[a.runner])?;
    runner_options.trt = a.trt.options();
    let req = RunRequest {
        model: a.model.clone(),
        runner: a.runner,
        inputs: a.inputs.options()?,
        runner_options,
        save: a.save.clone(),
        specialize: !a.inputs.no_specialize,
    };
    let mut err = std::io::stderr();
    let mut progress = |p: Progress| {
        if quiet && !matches!(p, Progress::Warning(_)) {
            return;
        }
        let _ = match p {
            Progress::Loaded { .. } => writeln!(err, "loaded {}: {p}", a.model.display()),
            _ => writeln!(err, "{p}"),
        };
    };
    let summary = run::run_placed(&req, &mut progress)?;
    let m = &summary.manifest;
    let _ = writeln!(
        std::io::stdout(),
        "saved {} tensors x {} iteration(s) from {} {} to {}{}",
        m.tensors.len(),
        m.iterations.len(),
        m.runner.name,
        m.runner.version,
        summary.dir.display(),
        if m.not_captured.is_empty() { String::new() } else { format!(" ({} not captured)", m.not_captured.len()) }
    );
    Ok(ExitCode::SUCCESS)
}

fn use_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// The comparison of a `trtlens.session/1` file, which stored the sides and two argument vectors.
pub fn legacy_session_request(
    model: &std::path::Path,
    reference: &str,
    candidate: &str,
    input_args: &[String],
    compare_args: &[String],
) -> Result<crate::compare::CompareRequest> {
    let mut argv: Vec<std::ffi::OsString> = vec!["trtlens".into(), "compare".into(), model.into()];
    argv.extend(["--reference".into(), reference.into(), "--candidate".into(), candidate.into()]);
    argv.extend(input_args.iter().chain(compare_args).map(Into::into));
    let cli =
        Cli::try_parse_from(argv).map_err(|e| Error::usage(e.to_string().lines().next().unwrap_or("").to_string()))?;
    match cli.command {
        Command::Compare(a) => a.request(),
        _ => Err(Error::usage("not a comparison")),
    }
}

impl CompareArgs {
    /// The comparison this command line asks for.
    pub fn request(&self) -> Result<crate::compare::CompareRequest> {
        use crate::compare::source::SideSpec;
        let candidate = SideSpec::parse(&self.candidate)?;
        let (tolerance, overrides) = self.tol.resolve(&candidate)?;
        let plan = self.plan.build()?;
        let plan_taker = matches!(candidate, SideSpec::Runner(k) if k.takes_plan());
        if (plan.is_some() || self.keep_fp32_predicted.is_some()) && !plan_taker {
            return Err(Error::usage(format!(
                "a precision plan applies to a --candidate that takes one ({}); saved results already carry theirs",
                crate::runner::registry::plan_takers()
            )));
        }
        let (plan, plan_label) = plan.map_or((None, None), |(p, l)| (Some(p), Some(l)));
        let reference = SideSpec::parse(&self.reference)?;
        self.backend.check(&runner_kinds(&[&reference, &candidate]))?;
        let mut runner_options =
            RunnerOptions { ort_lib: self.ort_lib.clone(), plan, plan_label, ..RunnerOptions::default() };
        self.backend.apply(&mut runner_options);
        self.trt.check(&runner_kinds(&[&reference, &candidate]))?;
        runner_options.trt = self.trt.options();
        Ok(crate::compare::CompareRequest {
            model: self.model.clone(),
            reference,
            candidate,
            inputs: self.inputs.options()?,
            runner_options,
            tolerance,
            overrides,
            top_k: self.tol.top_k,
            save_runs: self.save_runs.clone(),
            keep_fp32_predicted: predict_mode(self.keep_fp32_predicted.as_deref()),
            specialize: !self.inputs.no_specialize,
            introduced: !self.no_introduced,
        })
    }
}

fn compare_cmd(a: &CompareArgs, quiet: bool) -> Result<ExitCode> {
    use crate::compare::{self, table};
    if let Some(p) = &a.report
        && p.is_dir()
    {
        return Err(Error::usage(format!("--report {}: is a directory; give a file name", p.display())));
    }
    a.share.check()?;
    let mut req = a.request()?;
    // Plots of a tensor need its values after the comparison: keep temporary runs until then.
    let scratch = match &req.save_runs {
        None if a.share.outputs().wants_tensors() => Some(
            tempfile::Builder::new()
                .prefix("trtlens-compare-")
                .tempdir()
                .map_err(|e| Error::store_io(std::env::temp_dir(), "cannot create a temporary run directory", e))?,
        ),
        _ => None,
    };
    if let Some(t) = &scratch {
        req.save_runs = Some(t.path().to_path_buf());
    }
    let mut err = std::io::stderr();
    let mut progress = |side: &str, p: Progress| {
        if quiet && !matches!(p, Progress::Warning(_)) {
            return;
        }
        let _ = writeln!(err, "{side}: {p}");
    };
    let mut report = compare::compare(&req, &mut progress)?;
    let pairs = share::pairs_for(&report, &a.share)?;
    if let Some(t) = &scratch {
        // The report says a temporary run was used, as without plots.
        for side in [&mut report.reference, &mut report.candidate] {
            if side.path.as_deref().is_some_and(|p| std::path::Path::new(p).starts_with(t.path())) {
                side.path = None;
            }
        }
    }
    let json = report.to_json()?;
    if let Some(p) = &a.report {
        crate::store::write_atomic(p, json.as_bytes())?;
        if !quiet {
            let _ = writeln!(std::io::stderr(), "report written to {}", p.display());
        }
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        let _ = writeln!(out, "{json}");
    } else {
        let opts = table::TableOptions { color: use_color(), only_failing: a.only_failing, top: a.top };
        let _ = write!(out, "{}", table::render(&report, opts));
    }
    drop(out);
    share::write_shared(&report, &a.share, pairs, &crate::render::Extras::default(), quiet)?;
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn check_cmd(a: &CheckArgs, quiet: bool, verbose: bool) -> Result<ExitCode> {
    use crate::check::{self, CheckOptions, config, result::CheckRun, summary};
    let opts =
        CheckOptions { update_baseline: a.update_baseline, force: a.force, allow_model_change: a.allow_model_change };
    // Output files are relative to where the user is, whatever directory the checks run in.
    let outputs: Vec<(Option<PathBuf>, &str)> =
        vec![(a.junit.as_deref().map(absolute_path), "junit"), (a.markdown.as_deref().map(absolute_path), "markdown")];
    for (p, flag) in &outputs {
        if let Some(p) = p
            && p.is_dir()
        {
            return Err(Error::usage(format!("--{flag} {}: is a directory; give a file name", p.display())));
        }
    }
    let run = if a.model.is_some() || a.baseline.is_some() {
        if a.config.is_some() || a.jobs.is_some() {
            return Err(Error::usage(
                "--config and -j run the checks of a config file; leave out MODEL and --baseline",
            ));
        }
        let Some(baseline) = &a.baseline else {
            return Err(Error::usage("trtlens check MODEL needs --baseline FILE (create it with --update-baseline)"));
        };
        let policy = a.policy.as_deref().map(check::policy::Policy::load).transpose()?.unwrap_or_default();
        let mut request = check::compare_request(
            a.model.clone(),
            a.reference.as_deref().unwrap_or(check::DEFAULT_REFERENCE),
            a.candidate.as_deref().unwrap_or(check::DEFAULT_CANDIDATE),
            &a.plan,
            &a.inputs,
            a.ort_lib.clone(),
            &policy,
        )?;
        a.machine_flags(&mut request)?;
        let name = a
            .model
            .as_ref()
            .map_or_else(|| config::stem(&baseline.display().to_string()), |m| config::stem(&m.display().to_string()));
        let spec = check::CheckSpec {
            name,
            model_label: a.model.as_ref().map(|m| m.display().to_string()),
            request,
            baseline: baseline.clone(),
            policy,
            policy_path: a.policy.clone(),
        };
        let mut err = std::io::stderr();
        let mut progress = |side: &str, p: Progress| {
            if quiet && !matches!(p, Progress::Warning(_)) {
                return;
            }
            let _ = writeln!(err, "{side}: {p}");
        };
        let (result, report) = check::run_in_process_with_report(&spec, opts, &mut progress);
        if let (Some(path), Some(report)) = (&a.report, report) {
            crate::store::write_atomic(path, report.to_json()?.as_bytes())?;
        }
        CheckRun::new(None, vec![result])
    } else {
        let given = a.comparison_flags();
        if !given.is_empty() {
            return Err(Error::usage(format!(
                "{} describe one comparison: with a config, set them per check in the file (or give MODEL and --baseline)",
                given.join(", ")
            )));
        }
        let path = match &a.config {
            Some(p) => p.clone(),
            None => {
                let cwd = std::env::current_dir().map_err(|e| Error::usage(format!("no current directory: {e}")))?;
                config::find(&cwd).ok_or_else(|| {
                    Error::usage(format!(
                        "no MODEL given and no {} in {} or its parents up to the repository root: \
                         give MODEL --baseline FILE, or --config FILE",
                        config::CONFIG_FILE,
                        cwd.display()
                    ))
                })?
            }
        };
        let cfg = config::Config::load(&absolute_path(&path))?;
        // Paths in the file are relative to it: run there, so reports and baselines spell them as written.
        let ort_lib = a.ort_lib.as_deref().map(absolute_path);
        std::env::set_current_dir(&cfg.dir)
            .map_err(|e| Error::usage(format!("cannot enter {}: {e}", cfg.dir.display())))?;
        let cfg = config::Config { dir: PathBuf::new(), ..cfg };
        let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
        if jobs == 0 {
            return Err(Error::usage("-j must be at least 1"));
        }
        let exe = crate::job::client::default_exe()?;
        let json = a.json;
        let done = |r: &check::result::CheckResult| {
            if !json && !quiet {
                let _ = write!(std::io::stdout().lock(), "{}", summary::check_text(r));
            }
        };
        let mut planned = cfg.plan(ort_lib.as_deref());
        for (_, spec) in &mut planned {
            if let Ok(s) = spec
                && let Err(e) = a.machine_flags(&mut s.request)
            {
                *spec = Err(e);
            }
        }
        let results = check::run_all(&planned, opts, jobs, &exe, &done)?;
        let run = CheckRun::new(Some(path.display().to_string()), results);
        return finish_check(a, &run, &outputs, quiet, verbose, true);
    };
    finish_check(a, &run, &outputs, quiet, verbose, false)
}

/// Write the outputs of a check run, print it, and turn it into the exit code.
fn finish_check(
    a: &CheckArgs,
    run: &crate::check::result::CheckRun,
    outputs: &[(Option<PathBuf>, &str)],
    quiet: bool,
    verbose: bool,
    printed: bool,
) -> Result<ExitCode> {
    // `printed`: each check's text was printed as it finished; only the verdict is left.
    use crate::check::{junit, summary};
    for (path, what) in outputs {
        let Some(path) = path else { continue };
        let text = if *what == "junit" { junit::render(run) } else { summary::markdown(run) };
        crate::store::write_atomic(path, text.as_bytes())?;
    }
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        // The runner reads workflow commands from either stream; stdout stays pure JSON with --json.
        let notes = summary::github_annotations(run);
        if a.json {
            let _ = write!(std::io::stderr().lock(), "{notes}");
        } else {
            let _ = write!(std::io::stdout().lock(), "{notes}");
        }
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        let _ = writeln!(out, "{}", run.to_json()?);
    } else if printed || quiet {
        let _ = writeln!(out, "{}", summary::verdict_line(run));
    } else {
        let _ = write!(out, "{}", summary::text(run));
    }
    drop(out);
    let mut err = std::io::stderr().lock();
    for c in &run.checks {
        if let Some(e) = &c.error {
            let prefix = if run.checks.len() > 1 { format!("{}: ", c.name) } else { String::new() };
            let _ = writeln!(err, "error: {prefix}{}", e.message);
            match &e.details {
                Some(d) if verbose => {
                    for line in d.lines() {
                        let _ = writeln!(err, "  {line}");
                    }
                }
                Some(_) => {
                    let _ = writeln!(err, "  (run with -v for details)");
                }
                None => {}
            }
        }
    }
    Ok(ExitCode::from(run.exit_code))
}

fn convert_cmd(a: &ConvertArgs, quiet: bool) -> Result<ExitCode> {
    use crate::precision::{Plan, Precision};
    let mut model = Model::load(&a.model)?;
    if let Some(dir) = &a.specialize_from {
        let run = crate::store::RunDir::open(dir)?;
        if run.manifest.model.sha256 != model.sha256 {
            return Err(Error::store(dir, format!("was made from another model than {}", a.model.display())));
        }
        model = crate::model::specialize::apply_to(&model, &run.manifest.specialized)?;
    }
    let (plan, label) = a.plan.build()?.unwrap_or_else(|| (Plan::uniform(Precision::Fp16), "fp16".into()));
    if a.format != share::ConvertFormat::Onnx {
        if a.output.is_dir() {
            return Err(Error::usage(format!("-o {}: is a directory; give a file name", a.output.display())));
        }
        let what = share::convert_to_args(a.format, &model, &a.model, &plan, &a.output)?;
        if let Some(p) = &a.write_plan {
            crate::store::write_atomic(p, plan.to_toml().as_bytes())?;
        }
        if a.specialize_from.is_some() {
            let _ = writeln!(
                std::io::stderr(),
                "note: the names are those of the specialized graph: give the tool the model written by \
                 trtlens convert --specialize-from RUN_DIR --precision fp32 -o specialized.onnx"
            );
        }
        let _ = writeln!(std::io::stderr(), "wrote {} (plan: {label}; {what})", a.output.display());
        return Ok(ExitCode::SUCCESS);
    }
    let (bytes, report) = crate::precision::convert_to_bytes(&model, &plan)?;
    crate::store::write_atomic(&a.output, &bytes)?;
    if let Some(p) = &a.write_plan {
        crate::store::write_atomic(p, plan.to_toml().as_bytes())?;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        let s = serde_json::to_string_pretty(&report).map_err(|e| Error::usage(e.to_string()))?;
        let _ = writeln!(out, "{s}");
    } else if !quiet {
        let _ = write!(out, "{report}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "wrote {} (plan: {label}; {} nodes FP16, {} FP32){}",
        a.output.display(),
        report.nodes_fp16.len(),
        report.nodes_fp32.len(),
        a.write_plan.as_ref().map_or_else(String::new, |p| format!("; plan written to {}", p.display()))
    );
    Ok(ExitCode::SUCCESS)
}

fn build_cmd(a: &BuildArgs, quiet: bool) -> Result<ExitCode> {
    use crate::trt::build::{BuildEvent, BuildRequest, build_job};
    use crate::trt::cache::ShapeRange;
    let plan = a.plan.build()?;
    let (plan, plan_label) = plan.map_or((None, None), |(p, l)| (Some(p), Some(l)));
    let mut shapes = BTreeMap::new();
    for s in &a.shape {
        let (n, d) = inputs::parse_shape(s)?;
        shapes.insert(n, ShapeRange::fixed(&d));
    }
    let req = BuildRequest {
        model: a.model.clone(),
        flavour: a.candidate,
        plan,
        plan_label,
        options: a.trt.options(),
        shapes,
        save: Some(a.save.clone()),
        cancel: None,
    };
    let mut err = std::io::stderr();
    let mut last_status = String::new();
    let out = build_job(&req, &mut |e| {
        if quiet {
            return;
        }
        let _ = match e {
            BuildEvent::Status(s) => {
                if s == last_status {
                    return;
                }
                last_status.clone_from(&s);
                writeln!(err, "{s}")
            }
            BuildEvent::Log(l) => writeln!(err, "{l}"),
        };
    })?;
    let mut stdout = std::io::stdout().lock();
    if a.json {
        let _ = writeln!(stdout, "{}", out.tensor_map.to_json()?);
    } else {
        let _ = write!(stdout, "{}", out.tensor_map.render(120));
    }
    if !quiet {
        let how = if out.cache_hit {
            "from the engine cache".to_string()
        } else {
            format!("built in {:.1} s", out.meta.build_seconds)
        };
        let _ = writeln!(
            std::io::stderr(),
            "{} {} engine {how}: {} (engine.plan, build.log, tensor_map.json, build.json; layers from the {})",
            out.libraries.flavour.title(),
            out.libraries.version,
            out.dir.display(),
            out.meta.layers_from
        );
        if let Some(why) = &out.not_runnable {
            let _ = writeln!(std::io::stderr(), "note: this machine cannot run the engine: {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn doctor_cmd(a: &DoctorArgs) -> Result<ExitCode> {
    let d = crate::trt::doctor::examine(a.trt_lib.as_deref(), a.ort_lib.as_deref());
    let mut out = std::io::stdout().lock();
    if a.json {
        let s = serde_json::to_string_pretty(&d).map_err(|e| Error::usage(e.to_string()))?;
        let _ = writeln!(out, "{s}");
    } else {
        let _ = write!(out, "{d}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_flags_reach_the_runner_options() -> Result<()> {
        use crate::runner::OrtOpt;
        let parse = |args: &[&str]| Cli::try_parse_from(args).map_err(|e| Error::usage(e.to_string()));
        let args = ["trtlens", "compare", "m.onnx", "--candidate", "onnxruntime-cuda", "--precision", "fp16"];
        let Command::Compare(c) =
            parse(&[&args[..], &["--tf32", "off", "--ort-opt", "all", "--device", "1"]].concat())?.command
        else {
            return Err(Error::usage("not compare"));
        };
        let r = c.request()?;
        assert_eq!(
            (r.runner_options.tf32, r.runner_options.ort_opt, r.runner_options.device),
            (Some(false), Some(OrtOpt::All), Some(1))
        );
        assert!(r.runner_options.plan.is_some(), "onnxruntime-cuda takes the plan");
        assert_eq!(r.tolerance.atol, 1e-2, "a GPU candidate gets FP16-appropriate tolerances");
        let Command::Compare(c) = parse(&args)?.command else { return Err(Error::usage("not compare")) };
        let r = c.request()?;
        assert_eq!((r.runner_options.tf32, r.runner_options.ort_opt, r.runner_options.device), (None, None, None));
        // `--tf32` alone means on.
        let Command::Run(a) =
            parse(&["trtlens", "run", "m.onnx", "--runner", "cpu-fp16", "--save", "d", "--tf32"])?.command
        else {
            return Err(Error::usage("not run"));
        };
        assert_eq!(a.backend.tf32.as_deref(), Some("on"));
        // An FP32 GPU reference: the flags reach it too.
        let Command::Compare(c) = parse(&[
            "trtlens",
            "compare",
            "m.onnx",
            "--reference",
            "onnxruntime-cuda",
            "--candidate",
            "cpu-fp16",
            "--tf32",
        ])?
        .command
        else {
            return Err(Error::usage("not compare"));
        };
        assert_eq!(c.request()?.runner_options.tf32, Some(true));
        // Options written by older sessions (no such keys) still load.
        let old: RunnerOptions = serde_json::from_str(r#"{"ort_lib": null, "plan": null, "plan_label": null}"#)
            .map_err(|e| Error::usage(e.to_string()))?;
        assert_eq!(old, RunnerOptions::default());
        Ok(())
    }

    #[test]
    fn no_specialize_reaches_every_command_that_runs_a_model() -> Result<()> {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map_err(|e| Error::usage(e.to_string()));
        let Command::Inspect(a) = parse(&["trtlens", "inspect", "m.onnx", "--no-specialize"])?.command else {
            return Err(Error::usage("not inspect"));
        };
        // Every job of the session (first comparison and rebuilds) repeats it.
        assert!(!a.request()?.specialize);
        let Command::Inspect(a) = parse(&["trtlens", "inspect", "m.onnx"])?.command else {
            return Err(Error::usage("not inspect"));
        };
        assert!(a.request()?.specialize);
        let Command::Run(r) = parse(&["trtlens", "run", "m.onnx", "--save", "d", "--no-specialize"])?.command else {
            return Err(Error::usage("not run"));
        };
        assert!(r.inputs.no_specialize);
        let Command::Compare(c) = parse(&["trtlens", "compare", "m.onnx", "--candidate", "tract"])?.command else {
            return Err(Error::usage("not compare"));
        };
        assert!(!c.inputs.no_specialize, "specialization is on by default");
        Ok(())
    }
}
