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
    /// ends the worker, never the caller (engine builders and GPU runtimes).
    Worker,
}

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
    /// Default (atol, rtol) when this runner is the candidate and the user gives none.
    pub default_tolerance: (f64, f64),
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
        default_tolerance: FP32_TOLERANCE,
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
        default_tolerance: FP32_TOLERANCE,
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
        default_tolerance: FP16_TOLERANCE,
        placement: Placement::InProcess,
        parallel_runs: true,
        feature: Some("tract"),
        compiled: cfg!(feature = "tract"),
        check: TRACT_CHECK,
    },
];

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
        assert!(entry(RunnerKind::CpuFp16).takes_plan);
        assert_eq!(entry(RunnerKind::CpuFp16).default_tolerance, FP16_TOLERANCE);
        assert_eq!(entry(RunnerKind::Tract).default_tolerance, FP32_TOLERANCE);
    }
}
