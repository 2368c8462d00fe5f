//! The inspector's background comparisons: each is a `trtlens worker` child process running a
//! [`Job::Compare`] request ([`crate::job`]); its typed events become [`JobEvent`]s for
//! [`App::update`](super::app::App::update). A crash in a runner or builder ends the worker, never
//! the inspector, and cancelling is killing the worker.

use std::path::{Path, PathBuf};

use crate::compare::CompareRequest;
use crate::compare::report::Report;
use crate::error::{Error, Result};
use crate::job::client::{Update, Worker};
use crate::job::{Event, Job, JobResult, Request};

/// What a background job tells the app.
#[derive(Debug)]
pub enum JobEvent {
    /// A line of the worker's log (progress lines, warnings, backend output).
    Log(String),
    /// Fraction done, 0..=1.
    Progress(f64),
    /// The comparison finished (pass or fail); the runs are under `runs_dir`.
    Finished {
        /// The report.
        report: Box<Report>,
        /// The job's run directory (`reference/`, `candidate/`).
        runs_dir: PathBuf,
    },
    /// The job failed; the message says why (a died worker's message ends with its log tail).
    Failed(String),
    /// Cancelled on request.
    Cancelled,
}

impl JobEvent {
    /// Finished, failed or cancelled.
    #[must_use]
    pub fn is_final(&self) -> bool {
        matches!(self, JobEvent::Finished { .. } | JobEvent::Failed(_) | JobEvent::Cancelled)
    }
}

/// A comparison running in a worker.
#[derive(Debug)]
pub struct CompareJob {
    worker: Worker,
    runs_dir: PathBuf,
    /// What the UI calls it.
    pub label: String,
}

impl CompareJob {
    /// Start `request` in a worker (`exe worker`), with its runs under `runs_dir` and its request
    /// and report files next to it.
    pub fn spawn(exe: &Path, label: &str, mut request: CompareRequest, runs_dir: &Path) -> Result<CompareJob> {
        request.save_runs = Some(runs_dir.to_path_buf());
        let report = runs_dir.with_extension("report.json");
        let request_file = runs_dir.with_extension("request.json");
        let job = Request::new(label, Job::Compare { request, report });
        let worker = Worker::spawn(exe, &job, &request_file)?;
        Ok(CompareJob { worker, runs_dir: runs_dir.to_path_buf(), label: label.to_string() })
    }

    /// Events so far (never blocks).
    pub fn poll(&mut self) -> Vec<JobEvent> {
        let mut out = Vec::new();
        for u in self.worker.poll() {
            match u {
                Update::Event(e @ Event::Progress { fraction, .. }) => {
                    if let Some(line) = e.line() {
                        out.push(JobEvent::Log(line));
                    }
                    out.push(JobEvent::Progress(fraction));
                }
                Update::Event(e) => out.extend(e.line().map(JobEvent::Log)),
                Update::Done(Ok(JobResult::Compare { report, .. })) => out.push(match read_report(&report) {
                    Ok(r) => JobEvent::Finished { report: Box::new(r), runs_dir: self.runs_dir.clone() },
                    Err(e) => JobEvent::Failed(format!("{}: {e}", self.label)),
                }),
                Update::Done(Ok(other)) => {
                    out.push(JobEvent::Failed(format!("{}: unexpected result {other:?}", self.label)));
                }
                Update::Done(Err(Error::Cancelled(_))) => out.push(JobEvent::Cancelled),
                Update::Done(Err(e)) => out.push(JobEvent::Failed(format!("{} failed: {e}", self.label))),
            }
        }
        out
    }

    /// Kill the worker; a `Cancelled` event follows.
    pub fn cancel(&self) {
        self.worker.cancel();
    }
}

fn read_report(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::store_io(path, "cannot read the report", e))?;
    serde_json::from_str(&text).map_err(|e| Error::store(path, format!("not a trtlens report: {e}")))
}

/// What a background search tells the app.
#[derive(Debug)]
pub enum SearchUpdate {
    /// A progress line (`run 3 (hand back): 4 node(s) FP32 -> pass`).
    Line(String),
    /// The search ended: the outcome, or why not.
    Done(std::result::Result<Box<crate::search::SearchOutcome>, String>),
}

/// A precision search running on a thread (its candidate runs go where the runner's registry
/// placement says: in-process CPU runners on that thread, others in worker processes); the UI
/// polls it and never waits.
#[derive(Debug)]
pub struct SearchJob {
    rx: std::sync::mpsc::Receiver<SearchUpdate>,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: bool,
}

impl SearchJob {
    /// Start `request` on a thread.
    #[must_use]
    pub fn spawn(request: crate::search::SearchRequest) -> SearchJob {
        let (tx, rx) = std::sync::mpsc::channel();
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&cancel);
        std::thread::spawn(move || {
            let lines = tx.clone();
            let result = crate::search::search_cancellable(
                &request,
                &mut |e| {
                    if !matches!(e, crate::search::SearchEvent::Run(..)) {
                        let _ = lines.send(SearchUpdate::Line(e.to_string()));
                    }
                },
                &flag,
            );
            let _ = tx.send(SearchUpdate::Done(result.map(Box::new).map_err(|e| e.to_string())));
        });
        SearchJob { rx, cancel, done: false }
    }

    /// Updates so far (never blocks); a thread that vanished ends with an error.
    pub fn poll(&mut self) -> Vec<SearchUpdate> {
        let mut out = Vec::new();
        while !self.done {
            match self.rx.try_recv() {
                Ok(u) => {
                    self.done = matches!(u, SearchUpdate::Done(_));
                    out.push(u);
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.done = true;
                    out.push(SearchUpdate::Done(Err("the search thread ended without a result".into())));
                }
            }
        }
        out
    }

    /// Stop before the next candidate run.
    pub fn cancel(&self) {
        self.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
