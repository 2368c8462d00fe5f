//! The runner registry: one entry per runner, the only place that says what a runner is called,
//! what it takes and where it runs. The command line (`--runner`, `--reference`, `--candidate`),
//! the comparison, the inspector and the worker all ask here instead of matching strings.

use crate::runner::{RunnerKind, RunnerOptions};

/// Where a runner executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In the calling process (CPU runtimes that cannot take the process down).
    InProcess,
    /// In a `trtlens worker` child process, so that a crash, abort or out-of-memory in the backend
    /// ends the worker, never the caller (engine builders and GPU runtimes). The worker serves that
    /// run alone (a worker running a whole comparison starts one of its own for it), with the
    /// environment of the entry's [`RunnerEntry::worker_setup`].
    Worker,
}

/// What a runner that takes a plan runs when it is given none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPlan {
    /// Every node that can run in FP16 does (`cpu-fp16`: its purpose is FP16).
    AllFp16,
    /// The model as written (`onnxruntime-cuda`: an FP32 GPU run, e.g. as a reference).
    AsWritten,
}

/// What a runner's worker process needs: the options to send it (e.g. with the library already
/// resolved) and environment variables for the process (e.g. `LD_LIBRARY_PATH`, which the dynamic
/// loader only reads when a process starts).
#[derive(Debug, Clone, Default)]
pub struct WorkerSetup {
    /// The runner options the worker gets.
    pub options: RunnerOptions,
    /// Environment variables set for the worker.
    pub env: Vec<(String, std::ffi::OsString)>,
}

/// Runner flags that only some runners honour (checked against [`RunnerEntry::flags`]).
pub const RUNNER_FLAGS: [&str; 3] = ["--tf32", "--ort-opt", "--device"];

/// What one runner is.
#[derive(Debug)]
pub struct RunnerEntry {
    /// The runner.
    pub kind: RunnerKind,
    /// Its name on the command line, in manifests and reports.
    pub name: &'static str,
    /// Other accepted spellings (case-insensitive, like the name).
    pub aliases: &'static [&'static str],
    /// One line for `--help` and error messages.
    pub summary: &'static str,
    /// True when it runs a precision plan (the Cast rewrite); such a candidate is compared at
    /// FP16-appropriate tolerances by default.
    pub takes_plan: bool,
    /// What it runs without a plan (for runners that take one).
    pub default_plan: DefaultPlan,
    /// Default (atol, rtol) when this runner is the candidate and the user gives none.
    pub default_tolerance: (f64, f64),
    /// Which of [`RUNNER_FLAGS`] it honours.
    pub flags: &'static [&'static str],
    /// For runners placed in a worker: what the worker needs (checked before it starts, so a
    /// missing library is an error of the caller, not a dead worker).
    pub worker_setup: Option<fn(&RunnerOptions) -> crate::error::Result<WorkerSetup>>,
    /// Where it runs.
    pub placement: Placement,
    /// True when several runs may execute at once (separate worker processes): CPU runners; a
    /// runner owning one GPU or a licence says false.
    pub parallel_runs: bool,
    /// The cargo feature that compiles it in, when it is optional.
    pub feature: Option<&'static str>,
    /// Whether this binary was built with it.
    pub compiled: bool,
    /// Whether it can run here: `Ok(what was found)` or `Err(why not and what to install)`.
    check: fn(&RunnerOptions) -> Result<String, String>,
}

/// Tolerances of a candidate that computes in FP32 (Polygraphy's defaults).
pub const FP32_TOLERANCE: (f64, f64) = (1e-5, 1e-5);
/// Tolerances of a candidate that computes (partly) in FP16: about three decimal digits.
pub const FP16_TOLERANCE: (f64, f64) = (1e-2, 1e-2);

#[allow(clippy::unnecessary_wraps)] // one signature for every availability check
fn always(_: &RunnerOptions) -> Result<String, String> {
    Ok("embedded in this binary".into())
}

#[cfg(feature = "onnxruntime")]
fn ort_check(opts: &RunnerOptions) -> Result<String, String> {
    crate::runner::ort::discover::candidates(opts.ort_lib.as_deref())
        .map(|c| c.first().map_or_else(String::new, |c| format!("{} ({})", c.path.display(), c.source)))
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "onnxruntime"))]
fn ort_check(_: &RunnerOptions) -> Result<String, String> {
    Err("this build of trtlens was compiled without the `onnxruntime` feature".into())
}

#[cfg(feature = "onnxruntime")]
fn ort_cuda_check(opts: &RunnerOptions) -> Result<String, String> {
    let p = crate::runner::ort::cuda::probe(opts.ort_lib.as_deref());
    let missing = p.missing_hint();
    match (&p.library, p.error) {
        (Some(lib), _) => Ok(format!(
            "{} ({}){}",
            lib.display(),
            p.source.unwrap_or_default(),
            if missing.is_empty() { String::new() } else { format!("; {missing}") }
        )),
        (None, e) => Err(e.unwrap_or_else(|| "no ONNX Runtime with a CUDA provider found".into())),
    }
}

#[cfg(not(feature = "onnxruntime"))]
fn ort_cuda_check(opts: &RunnerOptions) -> Result<String, String> {
    ort_check(opts)
}

#[cfg(feature = "onnxruntime")]
const ORT_CUDA_SETUP: Option<fn(&RunnerOptions) -> crate::error::Result<WorkerSetup>> =
    Some(crate::runner::ort::cuda::worker_setup);
#[cfg(not(feature = "onnxruntime"))]
const ORT_CUDA_SETUP: Option<fn(&RunnerOptions) -> crate::error::Result<WorkerSetup>> = None;

#[cfg(not(feature = "tract"))]
fn no_tract(_: &RunnerOptions) -> Result<String, String> {
    Err("this build of trtlens was compiled without the `tract` feature".into())
}

#[cfg(feature = "tract")]
const TRACT_CHECK: fn(&RunnerOptions) -> Result<String, String> = always;
#[cfg(not(feature = "tract"))]
const TRACT_CHECK: fn(&RunnerOptions) -> Result<String, String> = no_tract;

static ENTRIES: &[RunnerEntry] = &[
    RunnerEntry {
        kind: RunnerKind::Tract,
        name: "tract",
        aliases: &[],
        summary: "tract-onnx, embedded (FP32, nothing to install)",
        takes_plan: false,
        default_plan: DefaultPlan::AsWritten,
        default_tolerance: FP32_TOLERANCE,
        flags: &[],
        worker_setup: None,
        placement: Placement::InProcess,
        parallel_runs: true,
        feature: Some("tract"),
        compiled: cfg!(feature = "tract"),
        check: TRACT_CHECK,
    },
    RunnerEntry {
        kind: RunnerKind::Onnxruntime,
        name: "onnxruntime",
        aliases: &["ort", "onnxrt"],
        summary: "ONNX Runtime CPU (FP32), libonnxruntime.so loaded at run time",
        takes_plan: false,
        default_plan: DefaultPlan::AsWritten,
        default_tolerance: FP32_TOLERANCE,
        flags: &[],
        worker_setup: None,
        placement: Placement::InProcess,
        parallel_runs: true,
        feature: Some("onnxruntime"),
        compiled: cfg!(feature = "onnxruntime"),
        check: ort_check,
    },
    RunnerEntry {
        kind: RunnerKind::CpuFp16,
        name: "cpu-fp16",
        aliases: &["cpu_fp16"],
        summary: "the precision plan's mixed FP16/FP32 graph on CPU with IEEE half storage",
        takes_plan: true,
        default_plan: DefaultPlan::AllFp16,
        default_tolerance: FP16_TOLERANCE,
        flags: &["--tf32"],
        worker_setup: None,
        placement: Placement::InProcess,
        parallel_runs: true,
        feature: Some("tract"),
        compiled: cfg!(feature = "tract"),
        check: TRACT_CHECK,
    },
    RunnerEntry {
        kind: RunnerKind::OnnxruntimeCuda,
        name: "onnxruntime-cuda",
        aliases: &["ort-cuda", "onnxruntime_cuda"],
        summary: "ONNX Runtime's CUDA provider on a GPU (onnxruntime-gpu): the plan's model, or the model as written",
        takes_plan: true,
        default_plan: DefaultPlan::AsWritten,
        // A GPU's FP32 differs from a CPU's by more than 1e-5 (TF32 is on by default, other kernels).
        default_tolerance: FP16_TOLERANCE,
        flags: &["--tf32", "--ort-opt", "--device"],
        worker_setup: ORT_CUDA_SETUP,
        placement: Placement::Worker,
        // One GPU: candidate runs of a search go one at a time.
        parallel_runs: false,
        feature: Some("onnxruntime"),
        compiled: cfg!(feature = "onnxruntime"),
        check: ort_cuda_check,
    },
    RunnerEntry {
        kind: RunnerKind::Tensorrt,
        name: "tensorrt",
        aliases: &["trt"],
        summary: "TensorRT 11: the plan's engine, strongly typed, every tensor observable, on a GPU",
        takes_plan: true,
        default_plan: DefaultPlan::AllFp16,
        default_tolerance: FP16_TOLERANCE,
        flags: &[],
        worker_setup: None,
        placement: Placement::Worker,
        // One GPU: candidate runs of a search go one at a time.
        parallel_runs: false,
        feature: Some("tensorrt"),
        compiled: cfg!(feature = "tensorrt"),
        check: trt_check_enterprise,
    },
    RunnerEntry {
        kind: RunnerKind::TensorrtRtx,
        name: "tensorrt-rtx",
        aliases: &["trt-rtx"],
        summary: "TensorRT-RTX 1.x: the plan's engine, strongly typed, every tensor observable, on a GPU",
        takes_plan: true,
        default_plan: DefaultPlan::AllFp16,
        default_tolerance: FP16_TOLERANCE,
        flags: &[],
        worker_setup: None,
        placement: Placement::Worker,
        // One GPU: candidate runs of a search go one at a time.
        parallel_runs: false,
        feature: Some("tensorrt-rtx"),
        compiled: cfg!(feature = "tensorrt-rtx"),
        check: trt_check_rtx,
    },
];

/// A TensorRT flavour can run when this binary has it and its libraries load.
fn trt_check(flavour: crate::trt::Flavour, opts: &RunnerOptions) -> Result<String, String> {
    crate::trt::require_compiled(flavour).map_err(|e| e.to_string())?;
    crate::trt::discover::find(flavour, opts.trt.lib_dir.as_deref())
        .map(|l| format!("{} {}", l.flavour.title(), l.version))
        .map_err(|e| e.to_string())
}

fn trt_check_enterprise(opts: &RunnerOptions) -> Result<String, String> {
    trt_check(crate::trt::Flavour::Tensorrt, opts)
}

fn trt_check_rtx(opts: &RunnerOptions) -> Result<String, String> {
    trt_check(crate::trt::Flavour::TensorrtRtx, opts)
}

/// Every runner, in a fixed order.
#[must_use]
pub fn all() -> &'static [RunnerEntry] {
    ENTRIES
}

/// The entry of a runner.
#[must_use]
pub fn entry(kind: RunnerKind) -> &'static RunnerEntry {
    // Every kind has exactly one entry (a unit test checks it); the first entry is a safe fallback.
    ENTRIES.iter().find(|e| e.kind == kind).unwrap_or(&ENTRIES[0])
}

/// The runner called `name` (or one of its aliases), case-insensitive.
#[must_use]
pub fn lookup(name: &str) -> Option<&'static RunnerEntry> {
    ENTRIES.iter().find(|e| e.name.eq_ignore_ascii_case(name) || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(name)))
}

/// The runners that honour `flag` (one of [`RUNNER_FLAGS`]), for messages (`cpu-fp16, onnxruntime-cuda`).
#[must_use]
pub fn honouring(flag: &str) -> String {
    ENTRIES.iter().filter(|e| e.flags.contains(&flag)).map(|e| e.name).collect::<Vec<_>>().join(", ")
}

/// The names of the runners that take a precision plan, for messages
/// (`cpu-fp16, onnxruntime-cuda, tensorrt, tensorrt-rtx`).
#[must_use]
pub fn plan_takers() -> String {
    ENTRIES.iter().filter(|e| e.takes_plan).map(|e| e.name).collect::<Vec<_>>().join(", ")
}

/// The names of every runner, for messages (`tract, onnxruntime, cpu-fp16`).
#[must_use]
pub fn names() -> String {
    ENTRIES.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}

/// The FP32 reference a user gets when they do not choose one: ONNX Runtime when its library is
/// found here, else the embedded runner.
#[must_use]
pub fn auto_reference(opts: &RunnerOptions) -> RunnerKind {
    if entry(RunnerKind::Onnxruntime).availability(opts).is_ok() { RunnerKind::Onnxruntime } else { RunnerKind::Tract }
}

impl RunnerEntry {
    /// Whether it can run here: `Ok(what was found)` or `Err(why not, and what to install)`.
    pub fn availability(&self, opts: &RunnerOptions) -> Result<String, String> {
        if !self.compiled {
            return Err(format!(
                "this build of trtlens was compiled without it (rebuild with `--features {}`)",
                self.feature.unwrap_or(self.name)
            ));
        }
        (self.check)(opts)
    }

    /// Default tolerances as a [`Tolerance`](crate::compare::metrics::Tolerance) with the given rule.
    #[must_use]
    pub fn tolerance(&self) -> crate::compare::metrics::Tolerance {
        crate::compare::metrics::Tolerance {
            atol: self.default_tolerance.0,
            rtol: self.default_tolerance.1,
            ..crate::compare::metrics::Tolerance::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_entry_and_names_are_unique() {
        for kind in RunnerKind::ALL {
            assert_eq!(ENTRIES.iter().filter(|e| e.kind == kind).count(), 1, "{kind:?}");
            assert_eq!(entry(kind).kind, kind);
        }
        let mut seen = std::collections::HashSet::new();
        for e in ENTRIES {
            for n in std::iter::once(e.name).chain(e.aliases.iter().copied()) {
                assert!(seen.insert(n.to_ascii_lowercase()), "{n} is used twice");
            }
        }
    }

    #[test]
    fn lookup_by_name_and_alias() {
        assert_eq!(lookup("ORT").map(|e| e.kind), Some(RunnerKind::Onnxruntime));
        assert_eq!(lookup("cpu-fp16").map(|e| e.kind), Some(RunnerKind::CpuFp16));
        assert!(lookup("tensorflow").is_none());
        assert_eq!(lookup("ort-cuda").map(|e| e.kind), Some(RunnerKind::OnnxruntimeCuda));
        let cuda = entry(RunnerKind::OnnxruntimeCuda);
        assert!(cuda.takes_plan && cuda.placement == Placement::Worker);
        assert_eq!(cuda.default_plan, DefaultPlan::AsWritten);
        assert_eq!(honouring("--tf32"), "cpu-fp16, onnxruntime-cuda");
        assert_eq!(honouring("--device"), "onnxruntime-cuda");
        assert!(entry(RunnerKind::CpuFp16).takes_plan);
        assert_eq!(entry(RunnerKind::CpuFp16).default_tolerance, FP16_TOLERANCE);
        assert_eq!(entry(RunnerKind::Tract).default_tolerance, FP32_TOLERANCE);
    }
}
