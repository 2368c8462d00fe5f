//! Background comparisons in a child process.
//!
//! The inspector never runs a model in its own process: each job is `trtlens compare ...` started
//! as a child, with its stderr streamed back line by line (the build/run log and the progress) and
//! its report read from the file it writes. A crash in a runner or builder therefore ends the job,
//! not the session, and cancelling is killing the child.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::sync::{Arc, Mutex};

use crate::compare::report::Report;
use crate::error::{Error, Result};

/// One comparison to run.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// What the UI calls it (`reference + candidate`, `rebuild 3`).
    pub label: String,
    /// The `trtlens` executable.
    pub exe: PathBuf,
    /// Arguments after the executable (`compare MODEL ...`), without `--report`/`--save-runs`.
    pub args: Vec<OsString>,
    /// Where the child writes its runs (`DIR/reference`, `DIR/candidate`).
    pub runs_dir: PathBuf,
    /// Where the child writes its report.
    pub report: PathBuf,
    /// Runner sides the child will run (for progress: 1 or 2).
    pub sides: usize,
}

/// What a job reports.
#[derive(Debug)]
pub enum JobEvent {
    /// A line of the child's log (stderr).
    Log(String),
    /// Fraction done, 0..=1.
    Progress(f64),
    /// The comparison finished (pass or fail); the runs are under `runs_dir`.
    Finished {
        /// The report.
        report: Box<Report>,
        /// The job's run directory.
        runs_dir: PathBuf,
    },
    /// The job failed; the message ends with the log tail.
    Failed(String),
    /// Cancelled on request.
    Cancelled,
}

/// A running job.
#[derive(Debug)]
pub struct Job {
    rx: Receiver<JobEvent>,
    child: Arc<Mutex<Child>>,
    cancelled: Arc<std::sync::atomic::AtomicBool>,
    /// The spec it runs.
    pub spec: JobSpec,
}

/// Progress of one side from its log lines: `SIDE: N nodes...` and `SIDE: iteration d/t ...`.
#[derive(Debug, Default)]
struct Meter {
    loaded: usize,
    fraction_of_side: f64,
}

impl Meter {
    fn line(&mut self, line: &str, sides: usize) -> Option<f64> {
        let (_, rest) = line.split_once(": ")?;
        if rest.contains("tensors to capture") {
            self.loaded += 1;
            self.fraction_of_side = 0.05;
        } else if let Some(it) = rest.strip_prefix("iteration ") {
            let frac = it.split_whitespace().next()?;
            let (d, t) = frac.split_once('/')?;
            let (d, t): (f64, f64) = (d.parse().ok()?, t.parse().ok()?);
            self.fraction_of_side = if t > 0.0 { d / t } else { 1.0 };
        } else {
            return None;
        }
        let sides = sides.max(1) as f64;
        let done = (self.loaded.saturating_sub(1)) as f64 + self.fraction_of_side;
        Some((done / sides).clamp(0.0, 0.98))
    }
}

impl Job {
    /// Start the child process.
    pub fn spawn(spec: JobSpec) -> Result<Job> {
        let mut cmd = Command::new(&spec.exe);
        cmd.args(&spec.args)
            .arg("--save-runs")
            .arg(&spec.runs_dir)
            .arg("--report")
            .arg(&spec.report)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1");
        let mut child =
            cmd.spawn().map_err(|e| Error::runner("inspect", format!("cannot start {}: {e}", spec.exe.display())))?;
        let stderr = child.stderr.take();
        let child = Arc::new(Mutex::new(child));
        let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = channel();
        let (c, cx, sp) = (Arc::clone(&child), Arc::clone(&cancelled), spec.clone());
        std::thread::spawn(move || {
            let mut tail: Vec<String> = Vec::new();
            let mut meter = Meter::default();
            if let Some(err) = stderr {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    if let Some(p) = meter.line(&line, sp.sides) {
                        let _ = tx.send(JobEvent::Progress(p));
                    }
                    tail.push(line.clone());
                    if tail.len() > 20 {
                        tail.remove(0);
                    }
                    let _ = tx.send(JobEvent::Log(line));
                }
            }
            let status = c.lock().map_err(|_| ()).and_then(|mut ch| ch.wait().map_err(|_| ()));
            let event = if cx.load(std::sync::atomic::Ordering::SeqCst) {
                JobEvent::Cancelled
            } else {
                match status {
                    Ok(s) if matches!(s.code(), Some(0 | 1)) => match read_report(&sp.report) {
                        Ok(report) => JobEvent::Finished { report: Box::new(report), runs_dir: sp.runs_dir.clone() },
                        Err(e) => JobEvent::Failed(e),
                    },
                    Ok(s) => JobEvent::Failed(format!(
                        "{} failed ({}): {}",
                        sp.label,
                        crate::trt::child::describe_exit(s),
                        tail.iter().rev().take(3).rev().cloned().collect::<Vec<_>>().join(" | ")
                    )),
                    Err(()) => JobEvent::Failed(format!("{}: cannot wait for the child process", sp.label)),
                }
            };
            let _ = tx.send(event);
        });
        Ok(Job { rx, child, cancelled, spec })
    }

    /// Events so far (never blocks). After a final event (finished, failed, cancelled) the list
    /// ends; a disconnected channel without one is reported as a failure.
    pub fn poll(&self) -> Vec<JobEvent> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(e) => out.push(e),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !out.iter().any(JobEvent::is_final) {
                        out.push(JobEvent::Failed(format!("{}: the job ended without a result", self.spec.label)));
                    }
                    break;
                }
            }
        }
        out
    }

    /// Kill the child; a `Cancelled` event follows.
    pub fn cancel(&self) {
        self.cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // A job nobody listens to any more must not keep running.
        if let Ok(mut c) = self.child.try_lock()
            && matches!(c.try_wait(), Ok(None))
        {
            let _ = c.kill();
        }
    }
}

impl JobEvent {
    /// Finished, failed or cancelled.
    #[must_use]
    pub fn is_final(&self) -> bool {
        matches!(self, JobEvent::Finished { .. } | JobEvent::Failed(_) | JobEvent::Cancelled)
    }
}

fn read_report(path: &std::path::Path) -> std::result::Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the report {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a trtlens report: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_follows_sides_and_iterations() {
        let mut m = Meter::default();
        assert!(m.line("reference: 5 nodes, 6 tensors to capture", 2).is_some_and(|p| p > 0.0 && p < 0.1));
        assert_eq!(m.line("reference: iteration 1/2 ran in 3.0 ms", 2), Some(0.25));
        assert_eq!(m.line("reference: iteration 2/2 ran in 3.0 ms", 2), Some(0.5));
        m.line("candidate: 5 nodes, 6 tensors to capture", 2);
        assert_eq!(m.line("candidate: iteration 2/2 ran in 3.0 ms", 2), Some(0.98));
        assert_eq!(m.line("something else", 2), None);
    }
}
