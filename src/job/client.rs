//! The caller's side of the worker protocol: start `trtlens worker` on a [`Request`], receive its
//! events over a channel without blocking, cancel it, and turn a worker that died without answering
//! into a clear [`Error::WorkerDied`] carrying the tail of its stderr.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};

use super::{Event, Job, JobResult, LogLevel, Request, WORKER_ENV};
use crate::error::{Error, Result};
use crate::run::{Progress, RunRequest, RunSummary};

/// What a running job reports to its caller.
#[derive(Debug)]
pub enum Update {
    /// An event before the end (started, progress, log; stderr lines arrive as info logs).
    Event(Event),
    /// The end: the result, or why there is none (the worker's error with its kind, a cancel, or
    /// a worker that died).
    Done(Result<JobResult>),
}

/// Lines of stderr kept for the message of a worker that dies.
const TAIL: usize = 40;

/// A job running in a worker process.
#[derive(Debug)]
pub struct Worker {
    rx: Receiver<Update>,
    child: Arc<Mutex<Child>>,
    cancelled: Arc<AtomicBool>,
    /// The request's label.
    pub label: String,
    finished: bool,
}

/// The `trtlens` executable to start workers with: `TRTLENS_EXE` when set, else this executable.
pub fn default_exe() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TRTLENS_EXE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    std::env::current_exe().map_err(|e| Error::usage(format!("cannot locate the trtlens executable: {e}")))
}

impl Worker {
    /// Write `request` to `request_file` and start `exe worker request_file`.
    pub fn spawn(exe: &Path, request: &Request, request_file: &Path) -> Result<Worker> {
        Worker::spawn_with_env(exe, request, request_file, &[])
    }

    /// [`Worker::spawn`] with extra environment variables for the worker (a runner's
    /// [`WorkerSetup`](crate::runner::registry::WorkerSetup)).
    pub fn spawn_with_env(
        exe: &Path,
        request: &Request,
        request_file: &Path,
        env: &[(String, std::ffi::OsString)],
    ) -> Result<Worker> {
        crate::store::write_atomic(request_file, request.to_json()?.as_bytes())?;
        let mut cmd = Command::new(exe);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.arg("worker")
            .arg(request_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env(WORKER_ENV, "1")
            .env("NO_COLOR", "1");
        let mut child =
            cmd.spawn().map_err(|e| Error::runner("worker", format!("cannot start {} worker: {e}", exe.display())))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let child = Arc::new(Mutex::new(child));
        let cancelled = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        let tail = Arc::new(Mutex::new(Vec::<String>::new()));
        let stderr_reader = stderr.map(|err| {
            let (tx, tail) = (tx.clone(), Arc::clone(&tail));
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut t) = tail.lock() {
                        t.push(line.clone());
                        let n = t.len();
                        if n > TAIL {
                            t.drain(..n - TAIL);
                        }
                    }
                    let _ = tx.send(Update::Event(Event::Log { level: LogLevel::Info, line }));
                }
            })
        });
        let (c, cx, label) = (Arc::clone(&child), Arc::clone(&cancelled), request.label.clone());
        std::thread::spawn(move || {
            let last = stdout.and_then(|out| read_events(out, &tx));
            if let Some(h) = stderr_reader {
                let _ = h.join();
            }
            let status = c.lock().map_err(|_| ()).and_then(|mut ch| ch.wait().map_err(|_| ()));
            let tail = tail.lock().map(|t| t.join("\n")).unwrap_or_default();
            let done = if cx.load(Ordering::SeqCst) {
                Err(Error::Cancelled(label))
            } else {
                match last {
                    Some(Event::Result { result }) => Ok(result),
                    Some(Event::Error { kind, message, details }) => Err(Error::Remote { kind, message, details }),
                    _ => Err(died(&label, status.ok(), &tail)),
                }
            };
            let _ = tx.send(Update::Done(done));
        });
        Ok(Worker { rx, child, cancelled, label: request.label.clone(), finished: false })
    }

    /// Updates so far (never blocks). After [`Update::Done`] the list ends; a worker thread that
    /// vanished without one is reported as a died worker.
    pub fn poll(&mut self) -> Vec<Update> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        loop {
            match self.rx.try_recv() {
                Ok(u) => {
                    let done = matches!(u, Update::Done(_));
                    out.push(u);
                    if done {
                        self.finished = true;
                        break;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.finished = true;
                    out.push(Update::Done(Err(died(&self.label, None, ""))));
                    break;
                }
            }
        }
        out
    }

    /// Block until the end, passing every event to `on_event`.
    pub fn wait(mut self, on_event: &mut dyn FnMut(Event)) -> Result<JobResult> {
        loop {
            match self.rx.recv() {
                Ok(Update::Event(e)) => on_event(e),
                Ok(Update::Done(r)) => {
                    self.finished = true;
                    return r;
                }
                Err(_) => {
                    self.finished = true;
                    return Err(died(&self.label, None, ""));
                }
            }
        }
    }

    /// Kill the worker; the job ends with [`Error::Cancelled`].
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A job nobody listens to any more must not keep running.
        if !self.finished
            && let Ok(mut c) = self.child.try_lock()
            && matches!(c.try_wait(), Ok(None))
        {
            let _ = c.kill();
        }
    }
}

/// Forward stdout events; return the last one (the result or the error, if the worker got there).
fn read_events(out: impl std::io::Read, tx: &Sender<Update>) -> Option<Event> {
    let mut last = None;
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Event>(&line) {
            Ok(e @ (Event::Result { .. } | Event::Error { .. })) => last = Some(e),
            Ok(e) => {
                let _ = tx.send(Update::Event(e));
            }
            // Something a library printed on stdout: keep it as log, never lose it.
            Err(_) => {
                let _ = tx.send(Update::Event(Event::Log { level: LogLevel::Info, line }));
            }
        }
    }
    last
}

fn died(label: &str, status: Option<std::process::ExitStatus>, tail: &str) -> Error {
    use std::os::unix::process::ExitStatusExt as _;
    let how = match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}{}", signal_name(sig)),
            (None, None) => "ended abnormally".to_string(),
        },
        None => "vanished".to_string(),
    };
    let last: Vec<&str> = tail.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect();
    let msg = if last.is_empty() {
        format!("the worker for '{label}' died without answering ({how})")
    } else {
        format!("the worker for '{label}' died without answering ({how}); last output: {}", last.join(" | "))
    };
    Error::WorkerDied { msg, details: (!tail.is_empty()).then(|| tail.to_string()) }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        6 => " (SIGABRT: the backend aborted)",
        9 => " (SIGKILL: killed, e.g. out of memory)",
        11 => " (SIGSEGV: the backend crashed)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

/// Run `req` in a worker process and wait for it, forwarding its progress (used for runners the
/// registry places in a worker).
pub fn run_in_worker(req: &RunRequest, progress: &mut dyn FnMut(Progress)) -> Result<RunSummary> {
    // The runner's needs first: a missing library is this process's error, before any worker.
    let (req, env) = match req.runner.entry().worker_setup {
        Some(setup) => {
            let s = setup(&req.runner_options)?;
            (RunRequest { runner_options: s.options, ..req.clone() }, s.env)
        }
        None => (req.clone(), Vec::new()),
    };
    let req = &req;
    let exe = default_exe()?;
    let tmp = tempfile::Builder::new()
        .prefix("trtlens-job-")
        .tempdir()
        .map_err(|e| Error::store(std::env::temp_dir(), format!("cannot create a temporary folder: {e}")))?;
    let request = Request::new(format!("run {}", req.runner.name()), Job::Run { request: req.clone() });
    let worker = Worker::spawn_with_env(&exe, &request, &tmp.path().join("request.json"), &env)?;
    let result = worker.wait(&mut |e| match e {
        Event::Progress { progress: p, .. } => progress(p),
        Event::Log { level: LogLevel::Warning, line } => progress(Progress::Warning(line)),
        _ => {}
    })?;
    match result {
        JobResult::Run { dir, .. } => {
            let run = crate::store::RunDir::open(&dir)?;
            Ok(RunSummary { dir, manifest: run.manifest })
        }
        other @ JobResult::Compare { .. } => {
            Err(Error::runner("worker", format!("expected a run result, got {other:?}")))
        }
    }
}
