//! The library's error type. Callers branch on the kind: a bad model, a bad input, a runner that
//! failed, a store problem or a usage mistake. All of them are "run errors" (exit code 2); a
//! tolerance failure is not an error at all but a verdict carried in a report.

use std::path::PathBuf;

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
        /// What went wrong.
        msg: String,
    },
    /// A run directory cannot be written or read.
    #[error("{}: {msg}", path.display())]
    Store {
        /// The run directory or file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
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
        Error::Runner { runner: runner.into(), msg: msg.into() }
    }
    /// A store error.
    pub fn store(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
        Error::Store { path: path.into(), msg: msg.into() }
    }
    /// A usage error.
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }
}

/// Result with the library error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
