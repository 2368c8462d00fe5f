//! The server side of the worker protocol: `trtlens worker REQUEST.json` reads one [`Request`],
//! executes it in this process and writes one JSON [`Event`] per line on stdout, ending with the
//! result or the error. See the [module documentation](super) for the protocol.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Event, Request, execute};
use crate::error::{Error, Result};

/// Set once this process serves a job (see [`super::in_worker`]).
static SERVING: AtomicBool = AtomicBool::new(false);
/// Set when the job this process serves is a run ([`super::Job::Run`]).
static SERVING_RUN: AtomicBool = AtomicBool::new(false);

/// True when this process is a worker serving a run job (its runner runs here, whatever its
/// placement).
#[must_use]
pub fn serving_run() -> bool {
    SERVING_RUN.load(Ordering::SeqCst)
}

/// True when this process is serving a job as a worker.
#[must_use]
pub fn serving() -> bool {
    SERVING.load(Ordering::SeqCst)
}

/// Test hook: when this variable is set to `after-start`, the worker aborts (SIGABRT) right after
/// its `started` event, as a crashing backend would; `after-progress` aborts at the first progress.
pub const TEST_ABORT_ENV: &str = "TRTLENS_TEST_WORKER_ABORT";

fn emit(e: &Event) {
    let Ok(line) = serde_json::to_string(e) else { return };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn read_request(source: &Path) -> Result<Request> {
    let text = if source.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::usage(format!("cannot read the job request from stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(source)
            .map_err(|e| Error::usage(format!("cannot read the job request {}: {e}", source.display())))?
    };
    Request::from_json(&text)
}

/// Serve the request in `source` (a file, or `-` for stdin); the exit status is 0 after a result
/// and 2 after an error (which is also reported as the last event).
#[must_use]
pub fn serve(source: &Path) -> ExitCode {
    SERVING.store(true, Ordering::SeqCst);
    let request = match read_request(source) {
        Ok(r) => r,
        Err(e) => {
            emit(&Event::error(&e));
            return ExitCode::from(e.kind().exit_code());
        }
    };
    SERVING_RUN.store(matches!(request.job, super::Job::Run { .. }), Ordering::SeqCst);
    emit(&Event::Started {
        label: request.label.clone(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    });
    let abort = std::env::var(TEST_ABORT_ENV).unwrap_or_default();
    if abort == "after-start" {
        std::process::abort();
    }
    let mut emitted_progress = false;
    let result = execute(&request, &mut |e| {
        if abort == "after-progress" && matches!(e, Event::Progress { .. }) && !emitted_progress {
            std::process::abort();
        }
        emitted_progress |= matches!(e, Event::Progress { .. });
        emit(&e);
    });
    match result {
        Ok(result) => {
            emit(&Event::Result { result });
            ExitCode::SUCCESS
        }
        Err(e) => {
            emit(&Event::error(&e));
            ExitCode::from(e.kind().exit_code())
        }
    }
}
