//! The library's error type. Callers branch on the kind: a bad model, a bad input, a runner that
//! failed, a store problem, a usage mistake, or a job that was cancelled. All of them are "run
//! errors" (exit code 2); a tolerance failure is not an error at all but a verdict carried in a
//! report.
//!
//! Every error has a one-line message (its `Display`); some carry longer `details` (printed by the
//! CLI with `-v`, and sent by the worker) and the underlying cause as their `source()`, so nothing
//! is lost when an error crosses a layer or a process boundary.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The underlying cause of an error, when there is one.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure an [`Error`] is; stable names for the worker protocol and for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A command-line or request value that does not make sense.
    Usage,
    /// The model is missing, not ONNX, or inconsistent.
    Model,
    /// An input tensor or input file is wrong.
    Input,
    /// A runner (or engine builder) could not be loaded or failed.
    Runner,
    /// A run directory, report or other file cannot be written or read.
    Store,
    /// The job was cancelled on request.
    Cancelled,
    /// A worker process died (crash, abort, killed) before it answered.
    WorkerDied,
}

impl ErrorKind {
    /// The stable name (`usage`, `runner`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::Model => "model",
            ErrorKind::Input => "input",
            ErrorKind::Runner => "runner",
            ErrorKind::Store => "store",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::WorkerDied => "worker_died",
        }
    }

    /// Process exit code of a command that ends with this error (every kind is a run error: 2).
    #[must_use]
    pub fn exit_code(self) -> u8 {
        2
    }
}

/// Everything that can go wrong while loading, running or storing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line value that does not make sense.
    #[error("{0}")]
    Usage(String),
    /// The model file is missing, not ONNX, or inconsistent.
    #[error("{}: {msg}", path.display())]
    Model {
        /// The model (or external-data) file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        msg: String,
    },
    /// An input tensor or input file is wrong.
    #[error("{msg}")]
    Input {
        /// What is wrong, naming the file and tensor.
        msg: String,
    },
    /// A runner could not be loaded or failed while running.
    #[error("runner {runner}: {msg}")]
    Runner {
        /// Runner name.
        runner: String,
        /// What went wrong, on one line.
        msg: String,
        /// Longer explanation (the backend's own message chain, shapes, log tail), shown with `-v`.
        details: Option<String>,
        /// The underlying cause.
        #[source]
        source: Option<Source>,
    },
    /// A run directory cannot be written or read.
    #[error("{}: {msg}", path.display())]
    Store {
        /// The run directory or file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
        /// The underlying cause (an I/O error, a parse error).
        #[source]
        source: Option<Source>,
    },
    /// The job was cancelled.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// A worker process ended without answering (crash, abort, out of memory, killed).
    #[error("{msg}")]
    WorkerDied {
        /// What happened (exit status or signal) and the last lines of its log.
        msg: String,
        /// The whole log tail.
        details: Option<String>,
    },
    /// An error reported by a worker process, rebuilt on the caller's side with its kind.
    #[error("{message}")]
    Remote {
        /// The kind the worker reported.
        kind: ErrorKind,
        /// Its one-line message.
        message: String,
        /// Its details.
        details: Option<String>,
    },
}

impl Error {
    /// A model error.
    pub fn model(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
        Error::Model { path: path.into(), msg: msg.into() }
    }
    /// An input error.
    pub fn input(msg: impl Into<String>) -> Error {
        Error::Input { msg: msg.into() }
    }
    /// A runner error.
    pub fn runner(runner: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::Runner { runner: runner.into(), msg: msg.into(), details: None, source: None }
    }
    /// A runner error with a longer explanation (shown with `-v`).
    pub fn runner_details(runner: impl Into<String>, msg: impl Into<String>, details: impl Into<String>) -> Error {
        Error::Runner { runner: runner.into(), msg: msg.into(), details: Some(details.into()), source: None }
    }
    /// A store error.
    pub fn store(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
        Error::Store { path: path.into(), msg: msg.into(), source: None }
    }
    /// A store error caused by `source` (an I/O or parse error): the message says what was being
    /// done, the source keeps the cause.
    pub fn store_io(
        path: impl Into<PathBuf>,
        msg: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        let source: Source = Box::new(source);
        Error::Store { path: path.into(), msg: format!("{}: {source}", msg.into()), source: Some(source) }
    }
    /// A usage error.
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    /// The kind of failure.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(_) => ErrorKind::Usage,
            Error::Model { .. } => ErrorKind::Model,
            Error::Input { .. } => ErrorKind::Input,
            Error::Runner { .. } => ErrorKind::Runner,
            Error::Store { .. } => ErrorKind::Store,
            Error::Cancelled(_) => ErrorKind::Cancelled,
            Error::WorkerDied { .. } => ErrorKind::WorkerDied,
            Error::Remote { kind, .. } => *kind,
        }
    }

    /// The longer explanation, when there is one (the CLI prints it with `-v`).
    #[must_use]
    pub fn details(&self) -> Option<String> {
        let own = match self {
            Error::Runner { details, .. } | Error::WorkerDied { details, .. } | Error::Remote { details, .. } => {
                details.clone()
            }
            _ => None,
        };
        // The cause chain below the message, unless the message already says it.
        let msg = self.to_string();
        let mut chain = Vec::new();
        let mut cur = std::error::Error::source(self);
        while let Some(s) = cur {
            let text = s.to_string();
            if !msg.contains(&text) {
                chain.push(format!("caused by: {text}"));
            }
            cur = s.source();
        }
        match (own, chain.is_empty()) {
            (None, true) => None,
            (Some(d), true) => Some(d),
            (None, false) => Some(chain.join("\n")),
            (Some(d), false) => Some(format!("{d}\n{}", chain.join("\n"))),
        }
    }
}

/// Result with the library error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_details() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::store_io("/x/y", "cannot write the manifest", io);
        assert_eq!(e.kind(), ErrorKind::Store);
        assert_eq!(e.to_string(), "/x/y: cannot write the manifest: denied");
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
        assert_eq!(e.details(), None, "a cause already in the message is not repeated");
        let r = Error::runner_details("tract", "node 'a' (Add) failed", "shapes 1x2 and 1x3");
        assert_eq!(r.kind(), ErrorKind::Runner);
        assert_eq!(r.details().as_deref(), Some("shapes 1x2 and 1x3"));
        assert_eq!(Error::usage("x").kind().name(), "usage");
        let remote = Error::Remote { kind: ErrorKind::Model, message: "m".into(), details: None };
        assert_eq!(remote.kind(), ErrorKind::Model);
    }
}
