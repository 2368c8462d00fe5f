//! Jobs: one serializable request for each kind of long work (a run, a comparison), executed in
//! this process ([`execute`]) or in a `trtlens worker` child process ([`client`]), which reports
//! line-delimited JSON [`Event`]s on its stdout ([`worker`]).
//!
//! The worker protocol (`trtlens.job/1`, described in `docs/worker.md`):
//!
//! ```text
//! trtlens worker REQUEST.json            (or `-`: the request on stdin)
//! stdout, one JSON object per line:
//!   {"event":"started","label":...,"pid":...,"version":...}
//!   {"event":"progress","phase":"reference","progress":{"step":"iteration","data":{...}},"fraction":0.25}
//!   {"event":"log","level":"warning","line":"..."}
//!   {"event":"result","result":{"kind":"compare","report":"...","verdict":"fail",...}}    (last line)
//!   {"event":"error","kind":"runner","message":"...","details":"..."}                      (last line)
//! exit status: 0 after a result (whatever the verdict), 2 after an error.
//! ```
//!
//! A worker that dies before its last line (a backend crash, an abort, out of memory, a kill) is
//! reported by the caller as [`ErrorKind::WorkerDied`] with the tail of its stderr; the caller's own
//! state is untouched. The inspector, sessions, and every runner placed in a worker by the registry
//! go through this protocol; sessions store the [`Request`], never an argument vector.

pub mod client;
pub mod worker;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::compare::{self, CompareRequest, Comparison};
use crate::error::{Error, ErrorKind, Result};
use crate::run::{self, Progress, RunRequest};

/// `protocol` of every request.
pub const PROTOCOL: &str = "trtlens.job/1";

/// The environment variable a worker process is started with (so that runners placed in a worker
/// run in-process there instead of starting another worker).
pub const WORKER_ENV: &str = "TRTLENS_WORKER";

/// True inside a `trtlens worker` process.
#[must_use]
pub fn in_worker() -> bool {
    worker::serving() || std::env::var_os(WORKER_ENV).is_some_and(|v| v == "1")
}

/// True inside a `trtlens worker` process serving a run job: a runner placed in a worker runs
/// there in-process (any other process starts a worker for it).
#[must_use]
pub fn serving_run() -> bool {
    worker::serving_run()
}

/// One job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// [`PROTOCOL`].
    pub protocol: String,
    /// What the caller calls it (`reference + candidate`, `rebuild 3`).
    pub label: String,
    /// The work.
    pub job: Job,
}

/// The kinds of work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Run a model and save every tensor (`trtlens run`).
    Run {
        /// The run.
        request: RunRequest,
    },
    /// Compare a candidate against a reference (`trtlens compare`) and write the report.
    Compare {
        /// The comparison (its `save_runs` says where the runs of runner sides go).
        request: CompareRequest,
        /// Where the report is written.
        report: PathBuf,
    },
}

impl Request {
    /// A request with the current protocol.
    #[must_use]
    pub fn new(label: impl Into<String>, job: Job) -> Request {
        Request { protocol: PROTOCOL.into(), label: label.into(), job }
    }

    /// The runner sides the job runs (for progress: each is one share of the work).
    #[must_use]
    pub fn runner_sides(&self) -> usize {
        match &self.job {
            Job::Run { .. } => 1,
            Job::Compare { request, .. } => [&request.reference, &request.candidate]
                .iter()
                .filter(|s| matches!(s, compare::source::SideSpec::Runner(_)))
                .count(),
        }
    }

    /// Read a request (JSON), checking the protocol.
    pub fn from_json(text: &str) -> Result<Request> {
        let r: Request =
            serde_json::from_str(text).map_err(|e| Error::usage(format!("not a trtlens job request: {e}")))?;
        if r.protocol != PROTOCOL {
            return Err(Error::usage(format!("job request protocol '{}' is not {PROTOCOL}", r.protocol)));
        }
        Ok(r)
    }

    /// The request as JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::usage(format!("cannot serialise the job request: {e}")))
    }
}

/// Log levels of [`Event::Log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Ordinary output.
    Info,
    /// Worth the user's attention, never fatal.
    Warning,
}

/// What a job reports, in order; `Result` or `Error` is the last event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The worker read the request and starts.
    Started {
        /// The request's label.
        label: String,
        /// The worker's process id.
        pid: u32,
        /// trtlens version of the worker.
        version: String,
    },
    /// Progress of one phase (`reference`, `candidate`, `building engine`, `compare`).
    Progress {
        /// The phase.
        phase: String,
        /// What happened.
        progress: Progress,
        /// Fraction of the whole job done, 0..=1 (never 1 before the result).
        fraction: f64,
    },
    /// A line of log.
    Log {
        /// Level.
        level: LogLevel,
        /// The line.
        line: String,
    },
    /// The job finished (whatever the comparison's verdict).
    Result {
        /// What it produced.
        result: JobResult,
    },
    /// The job failed.
    Error {
        /// The kind of failure.
        kind: ErrorKind,
        /// One line.
        message: String,
        /// More, when there is more.
        details: Option<String>,
    },
}

impl Event {
    /// The event describing an error.
    #[must_use]
    pub fn error(e: &Error) -> Event {
        let message = match e {
            Error::Remote { message, .. } => message.clone(),
            other => other.to_string(),
        };
        Event::Error { kind: e.kind(), message, details: e.details() }
    }

    /// A line for a log or a terminal (`reference: iteration 1/2 ran in 3.1 ms`).
    #[must_use]
    pub fn line(&self) -> Option<String> {
        match self {
            Event::Progress { phase, progress, .. } => Some(format!("{phase}: {progress}")),
            Event::Log { line, .. } => Some(line.clone()),
            Event::Error { message, .. } => Some(format!("error: {message}")),
            Event::Started { .. } | Event::Result { .. } => None,
        }
    }
}

/// What a finished job produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobResult {
    /// A run directory.
    Run {
        /// The run directory.
        dir: PathBuf,
        /// Tensors captured.
        tensors: usize,
        /// Iterations run.
        iterations: usize,
        /// Tensors that could not be captured.
        not_captured: usize,
    },
    /// A comparison report.
    Compare {
        /// The report file.
        report: PathBuf,
        /// `pass` or `fail`.
        verdict: String,
        /// Where the runs of runner sides are (`DIR/reference`, `DIR/candidate`), when kept.
        runs_dir: Option<PathBuf>,
    },
}

/// Turns per-side progress into a fraction of the whole job: each runner side is one equal share,
/// loading is 5 % of a share, iterations the rest; preparation steps (`building engine`) report
/// their own fraction of the share.
#[derive(Debug, Default)]
pub struct Meter {
    sides: usize,
    started: Vec<String>,
    within: f64,
}

impl Meter {
    /// A meter for a job with `sides` runner sides.
    #[must_use]
    pub fn new(sides: usize) -> Meter {
        Meter { sides: sides.max(1), ..Meter::default() }
    }

    /// The fraction done after `p` of side `phase`.
    pub fn update(&mut self, phase: &str, p: &Progress) -> f64 {
        if !self.started.iter().any(|s| s == phase) {
            self.started.push(phase.to_string());
            self.within = 0.0;
        }
        match p {
            Progress::Loaded { .. } => self.within = self.within.max(0.05),
            Progress::Iteration { done, total, .. } => {
                self.within = if *total > 0 { *done as f64 / *total as f64 } else { 1.0 };
            }
            Progress::Step { fraction: Some(f), .. } => self.within = (0.05 + 0.5 * f.clamp(0.0, 1.0)).max(self.within),
            Progress::Step { fraction: None, .. } | Progress::Warning(_) | Progress::Specialized(_) => {}
        }
        let done = (self.started.len().saturating_sub(1)) as f64 + self.within;
        (done / self.sides as f64).clamp(0.0, 0.98)
    }
}

/// Execute a job in this process, sending events (progress, logs) to `emit`; the result or the
/// error is returned, not emitted.
pub fn execute(request: &Request, emit: &mut dyn FnMut(Event)) -> Result<JobResult> {
    let mut meter = Meter::new(request.runner_sides());
    let mut forward = |phase: &str, p: Progress| {
        let fraction = meter.update(phase, &p);
        if let Progress::Warning(w) = &p {
            emit(Event::Log { level: LogLevel::Warning, line: format!("{phase}: warning: {w}") });
        }
        emit(Event::Progress { phase: phase.to_string(), progress: p, fraction });
    };
    match &request.job {
        Job::Run { request } => {
            let summary = run::run(request, &mut |p| forward("run", p))?;
            Ok(JobResult::Run {
                dir: summary.dir,
                tensors: summary.manifest.tensors.len(),
                iterations: summary.manifest.iterations.len(),
                not_captured: summary.manifest.not_captured.len(),
            })
        }
        Job::Compare { request, report } => {
            let mut c = Comparison::new(request, &mut forward)?;
            let r =
                c.candidate(&request.candidate, &request.runner_options, request.keep_fp32_predicted, &mut forward)?;
            crate::store::write_atomic(report, r.to_json()?.as_bytes())?;
            Ok(JobResult::Compare {
                report: report.clone(),
                verdict: r.verdict.clone(),
                runs_dir: request.save_runs.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_follows_sides_and_iterations() {
        let mut m = Meter::new(2);
        let f = m.update("reference", &Progress::Loaded { nodes: 5, tensors: 6 });
        assert!(f > 0.0 && f < 0.1);
        assert_eq!(m.update("reference", &Progress::Iteration { done: 1, total: 2, seconds: 0.0 }), 0.25);
        assert_eq!(m.update("reference", &Progress::Iteration { done: 2, total: 2, seconds: 0.0 }), 0.5);
        m.update("candidate", &Progress::Loaded { nodes: 5, tensors: 6 });
        assert_eq!(m.update("candidate", &Progress::Iteration { done: 2, total: 2, seconds: 0.0 }), 0.98);
    }

    #[test]
    fn events_round_trip_as_json_lines() -> Result<()> {
        let events = vec![
            Event::Started { label: "x".into(), pid: 1, version: "0".into() },
            Event::Progress {
                phase: "candidate".into(),
                progress: Progress::Step {
                    phase: "building engine".into(),
                    message: "layer 3/9".into(),
                    fraction: Some(0.3),
                },
                fraction: 0.6,
            },
            Event::Progress { phase: "reference".into(), progress: Progress::Warning("w".into()), fraction: 0.1 },
            Event::Log { level: LogLevel::Info, line: "hello".into() },
            Event::Result {
                result: JobResult::Compare { report: "r.json".into(), verdict: "fail".into(), runs_dir: None },
            },
            Event::error(&Error::runner_details("tract", "node 'a' failed", "details")),
        ];
        for e in events {
            let line = serde_json::to_string(&e).map_err(|e| Error::usage(e.to_string()))?;
            assert!(!line.contains('\n'));
            let back: Event = serde_json::from_str(&line).map_err(|e| Error::usage(e.to_string()))?;
            assert_eq!(back, e, "{line}");
        }
        Ok(())
    }
}
