//! `trtlens predict` and `trtlens search`: the commands that name the culprits.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{InputArgs, PlanArgs, ToleranceArgs, absolute_path};
use crate::compare::source::SideSpec;
use crate::compare::{CompareRequest, Comparison};
use crate::error::{Error, Result};
use crate::precision::risk::{self, RiskOptions};
use crate::precision::{OutOfRangePolicy, Plan, Precision};
use crate::runner::{RunnerKind, RunnerOptions};

/// Thresholds of the prediction (shared by `predict` and `search`).
#[derive(Debug, Args, Clone)]
pub struct RiskArgs {
    /// Activations whose reference |x| exceeds this are at risk (`AutoCast`'s `data_max`).
    #[arg(long = "data-max", default_value_t = risk::DEFAULT_DATA_MAX, value_name = "X")]
    pub data_max: f64,
    /// Initializers/Constants whose |x| exceeds this are at risk (`AutoCast`'s `init_max`).
    #[arg(long = "init-max", default_value_t = risk::DEFAULT_INIT_MAX, value_name = "X")]
    pub init_max: f64,
}

impl RiskArgs {
    fn options(&self, policy: OutOfRangePolicy) -> Result<RiskOptions> {
        for (flag, v) in [("--data-max", self.data_max), ("--init-max", self.init_max)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::usage(format!("{flag} {v}: a positive finite number")));
            }
        }
        Ok(RiskOptions { data_max: self.data_max, init_max: self.init_max, policy })
    }
}

/// `trtlens predict`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  trtlens predict samples/mlp_overflow.onnx\n  trtlens predict model.onnx --iterations 8 --json\n  trtlens predict model.onnx --write-plan predicted.toml && trtlens convert model.onnx --plan predicted.toml -o mixed.onnx"
)]
pub struct PredictArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Reference: a runner (tract, onnxruntime), saved:DIR (a trtlens run of this model), or auto
    /// (onnxruntime when its library is found, else tract).
    #[arg(long, default_value = "auto", value_name = "RUNNER|saved:DIR|auto")]
    pub reference: String,
    /// Inputs of the reference run (several iterations: every one is checked).
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Thresholds.
    #[command(flatten)]
    pub risk: RiskArgs,
    /// How FP16 will store initializer/Constant values it cannot hold (what a mask constant becomes).
    #[arg(long = "out-of-range", value_enum, default_value_t = OutOfRangePolicy::Saturate, value_name = "saturate|keep-fp32|ieee")]
    pub out_of_range: OutOfRangePolicy,
    /// Print `{"at_risk": [...], "benign": [...]}` as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the islands as a precision plan (default fp16, the island nodes fp32, reason prediction).
    #[arg(long = "write-plan", value_name = "FILE")]
    pub write_plan: Option<PathBuf>,
    /// Path to libonnxruntime.so.
    #[arg(long = "ort-lib", value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
}

fn reference_spec(text: &str, ort_lib: Option<&PathBuf>) -> Result<SideSpec> {
    let opts = RunnerOptions { ort_lib: ort_lib.map(|p| absolute_path(p)), ..RunnerOptions::default() };
    let spec = if text == "auto" {
        SideSpec::Runner(crate::runner::registry::auto_reference(&opts))
    } else {
        SideSpec::parse(text)?
    };
    if let SideSpec::Runner(k) = spec
        && k.takes_plan()
    {
        return Err(Error::usage(format!(
            "--reference {}: the reference runs the model in FP32 (tract, onnxruntime)",
            k.name()
        )));
    }
    Ok(spec)
}

/// `trtlens predict`.
pub fn predict_cmd(a: &PredictArgs, quiet: bool) -> Result<ExitCode> {
    let reference = reference_spec(&a.reference, a.ort_lib.as_ref())?;
    let mut req = CompareRequest::new(Some(a.model.clone()), reference, SideSpec::Runner(RunnerKind::CpuFp16));
    req.inputs = a.inputs.options()?;
    req.runner_options.ort_lib.clone_from(&a.ort_lib);
    req.specialize = !a.inputs.no_specialize;
    req.introduced = false;
    let mut err = std::io::stderr();
    let c = Comparison::new(&req, &mut |side, p| {
        if !quiet || matches!(p, crate::run::Progress::Warning(_)) {
            let _ = writeln!(err, "{side}: {p}");
        }
    })?;
    let model = c.reference_graph_model()?.ok_or_else(|| Error::usage("predict needs the model"))?;
    let run = c.reference_rundir().ok_or_else(|| {
        Error::usage("--reference: predict reads a trtlens run (a runner or saved:DIR), not Polygraphy JSON")
    })?;
    let prediction = risk::predict(&model, run, &a.risk.options(a.out_of_range)?)?;
    if let Some(p) = &a.write_plan {
        let mut base = Plan::uniform(Precision::Fp16);
        base.out_of_range = a.out_of_range;
        crate::store::write_atomic(p, prediction.plan(&base).to_toml().as_bytes())?;
        if !quiet {
            let _ = writeln!(std::io::stderr(), "plan written to {}", p.display());
        }
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        let s = serde_json::to_string_pretty(&prediction).map_err(|e| Error::usage(e.to_string()))?;
        let _ = writeln!(out, "{s}");
    } else {
        let _ = write!(out, "{prediction}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `trtlens search`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  trtlens search samples/mlp_overflow.onnx --candidate cpu-fp16 --precision fp16 --write-plan fix.toml -o mixed.onnx\n  trtlens search model.onnx --candidate cpu-fp16 --precision fp16 --atol 1e-2 --rtol 1e-2 -j 2\n  trtlens search model.onnx --candidate cpu-fp16 --precision fp16 --log search.jsonl --resume   # continue an interrupted search"
)]
pub struct SearchArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Reference side: a runner (tract, onnxruntime), saved:DIR, or auto (onnxruntime when found, else tract).
    #[arg(long, default_value = "auto", value_name = "RUNNER|saved:DIR|auto")]
    pub reference: String,
    /// The candidate: a runner that takes a precision plan.
    #[arg(long, default_value = "cpu-fp16", value_name = "RUNNER")]
    pub candidate: String,
    /// The base plan the search starts from (default: every node FP16).
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Tolerances of the graph outputs (the pass/fail oracle; default: the candidate's, 1e-2 for cpu-fp16).
    #[command(flatten)]
    pub tol: ToleranceArgs,
    /// Inputs of every run.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Prediction thresholds (the search starts from the prediction's islands).
    #[command(flatten)]
    pub risk: RiskArgs,
    /// Candidate runs at once, in worker processes (where the candidate allows parallel runs).
    #[arg(short = 'j', long = "jobs", default_value_t = 1, value_name = "N")]
    pub jobs: usize,
    /// Log of every candidate run and its verdict (JSON lines; default: `MODEL_STEM.search.jsonl`).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Replay the log first: sets already judged are not run again, new runs are appended.
    #[arg(long)]
    pub resume: bool,
    /// Write the resulting plan (TOML; the kept nodes with reason `search`).
    #[arg(long = "write-plan", value_name = "FILE")]
    pub write_plan: Option<PathBuf>,
    /// Write the mixed-precision ONNX of the resulting plan.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Path to libonnxruntime.so.
    #[arg(long = "ort-lib", value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Judge the graph outputs with the `[outputs]` tolerances of a check policy (docs/check.md)
    /// instead of --rule/--atol/--rtol.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Runner settings (TF32, ONNX Runtime optimizations, GPU) of the candidate.
    #[command(flatten)]
    pub backend: super::BackendArgs,
    /// TensorRT flags (for --candidate tensorrt / tensorrt-rtx).
    #[command(flatten)]
    pub trt: super::TrtArgs,
}

impl SearchArgs {
    /// Tolerances on the graph outputs: from `--policy` (its `[outputs]` section) or the flags.
    fn tolerances(
        &self,
        candidate: &SideSpec,
    ) -> Result<(crate::compare::metrics::Tolerance, Vec<crate::compare::report::ToleranceOverride>)> {
        let Some(path) = &self.policy else { return self.tol.resolve(candidate) };
        if !self.tol.atol.is_empty() || !self.tol.rtol.is_empty() || self.tol.inf_equal || self.tol.rule != "allclose" {
            return Err(Error::usage(
                "--policy sets the tolerances: give either --policy or --rule/--atol/--rtol/--inf-equal",
            ));
        }
        Ok(crate::check::policy::Policy::load(path)?.outputs.tolerance(candidate))
    }

    /// The search this command line asks for.
    pub fn request(&self) -> Result<crate::search::SearchRequest> {
        let candidate = SideSpec::parse(&self.candidate)?;
        let SideSpec::Runner(kind) = candidate else {
            return Err(Error::usage(format!(
                "--candidate: search runs the candidate, give a runner that takes a plan ({})",
                crate::runner::registry::plan_takers()
            )));
        };
        crate::search::require_plan_taker(kind)?;
        let (tolerance, overrides) = self.tolerances(&candidate)?;
        let plan = self.plan.build()?;
        let policy = plan.as_ref().map_or(OutOfRangePolicy::Saturate, |(p, _)| p.out_of_range);
        let (plan, plan_label) = plan.map_or((None, None), |(p, l)| (Some(p), Some(l)));
        let mut compare = CompareRequest::new(
            Some(self.model.clone()),
            reference_spec(&self.reference, self.ort_lib.as_ref())?,
            candidate,
        );
        compare.inputs = self.inputs.options()?;
        compare.runner_options =
            RunnerOptions { ort_lib: self.ort_lib.clone(), plan, plan_label, ..RunnerOptions::default() };
        self.backend.check(&[kind])?;
        self.backend.apply(&mut compare.runner_options);
        self.trt.check(&[kind])?;
        compare.runner_options.trt = self.trt.options();
        compare.tolerance = tolerance;
        compare.overrides = overrides;
        compare.specialize = !self.inputs.no_specialize;
        compare.top_k = 1;
        if self.jobs == 0 {
            return Err(Error::usage("-j: at least 1"));
        }
        let log = self.log.clone().unwrap_or_else(|| {
            let stem = self.model.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
            PathBuf::from(format!("{stem}.search.jsonl"))
        });
        Ok(crate::search::SearchRequest {
            compare,
            risk: self.risk.options(policy)?,
            jobs: self.jobs,
            log: Some(log),
            resume: self.resume,
        })
    }
}

/// `trtlens search`.
pub fn search_cmd(a: &SearchArgs, quiet: bool) -> Result<ExitCode> {
    use crate::search::SearchEvent;
    let req = a.request()?;
    let mut err = std::io::stderr();
    let outcome = crate::search::search(&req, &mut |e| {
        let show = match &e {
            SearchEvent::Run(_, p) => matches!(p, crate::run::Progress::Warning(_)),
            _ => !quiet,
        };
        if show {
            let _ = writeln!(err, "{e}");
        }
    })?;
    if let Some(p) = &a.write_plan {
        crate::store::write_atomic(p, outcome.plan.to_toml().as_bytes())?;
    }
    if let Some(p) = &a.output {
        let model = crate::model::Model::load(&a.model)?;
        let model = crate::model::specialize::apply_to(&model, &outcome.specialized)?;
        let (bytes, _) = crate::precision::convert_to_bytes(&model, &outcome.plan)?;
        crate::store::write_atomic(p, &bytes)?;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut v = serde_json::to_value(&outcome).map_err(|e| Error::usage(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("summary".into(), outcome.summary().into());
            o.insert("autocast".into(), outcome.autocast_args().into());
            o.insert("trtexec".into(), outcome.layer_precisions_args().into());
            o.insert("plan".into(), outcome.plan.to_toml().into());
        }
        let s = serde_json::to_string_pretty(&v).map_err(|e| Error::usage(e.to_string()))?;
        let _ = writeln!(out, "{s}");
    } else {
        if outcome.baseline_passed {
            let _ = writeln!(out, "the base plan passes as it is: nothing to keep FP32");
        }
        for i in &outcome.islands {
            let _ = writeln!(out, "island (root cause {}): {}", i.root, i.nodes.join(", "));
        }
        if !outcome.kept.is_empty() {
            let _ = writeln!(out, "nodes to keep FP32:");
            for n in &outcome.kept {
                let _ = writeln!(out, "  {n}");
            }
            let _ = writeln!(out, "AutoCast:        {}", outcome.autocast_args());
            let _ = writeln!(out, "TensorRT <= 10:  trtexec {}", outcome.layer_precisions_args());
        }
        let _ = writeln!(out, "{}", outcome.summary());
    }
    if !quiet {
        for (what, p) in [("plan", &a.write_plan), ("mixed-precision model", &a.output)] {
            if let Some(p) = p {
                let _ = writeln!(std::io::stderr(), "{what} written to {}", p.display());
            }
        }
        if let Some(l) = &req.log {
            let _ = writeln!(std::io::stderr(), "log: {} (replay with --resume)", l.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
