//! trtlens: find where and why an engine's numbers drift away from its ONNX model.
//!
//! The library holds the engine (model, inputs, runners, compare, precision, store, sessions);
//! [`tui`] is the only module that draws, and `src/main.rs` only parses the command line through
//! [`cli`].

pub mod check;
pub mod cli;
pub mod compare;
pub mod error;
pub mod inputs;
pub mod io;
pub mod job;
pub mod model;
pub mod precision;
pub mod render;
pub mod run;
pub mod runner;
pub mod samples;
pub mod search;
pub mod session;
pub mod store;
pub mod sys;
pub mod tensor;
pub mod text;
pub mod trt;
pub mod tui;

pub use error::{Error, Result};
