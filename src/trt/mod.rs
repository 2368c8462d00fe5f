//! The TensorRT candidate: rebuild an engine from the plan-rewritten ONNX with every tensor
//! observable, map engine tensors and layers back to the ONNX graph, and run it beside the reference.
//!
//! Two flavours share this code: enterprise TensorRT (10.x and 11.x, cargo feature `tensorrt`) and
//! TensorRT-RTX (1.x, cargo feature `tensorrt-rtx`). What each part does:
//!
//! * [`discover`]: finding the libraries (`--trt-lib`, `TENSORRT_LIB_DIR`, `LD_LIBRARY_PATH`, the
//!   `tensorrt_libs` / `tensorrt_rtx_libs` Python packages, system paths) and reading their version.
//! * [`layers`]: the engine's layer list, from the engine inspector's JSON or, without a GPU, from
//!   the builder's detailed log.
//! * [`tensor_map`]: ONNX tensor → engine tensor (or why not), layers with the ONNX nodes they cover,
//!   and precision mismatches between the plan and the engine (`tensor_map.json`).
//! * [`cache`]: the engine cache keyed by everything that changes an engine, plus the timing cache.
//! * [`build`]: the build job (`trtlens build`, and the first step of every TensorRT run).
//! * [`child`]: running a build in a child process, so an abort or a crash of TensorRT ends the
//!   child and the caller reports it with the log tail.
//! * [`doctor`]: what is installed, what the GPUs are, what can build and run where.
//! * `cuda` (feature `cuda`): GPUs and device buffers through cudarc (loaded at run time).
//! * `ffi`, `engine` (features `tensorrt` / `tensorrt-rtx`): the only code that calls TensorRT.
//!
//! Nothing here is stored in the graph: results are keyed by tensor name in side tables.

pub mod build;
pub mod cache;
pub mod child;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod discover;
pub mod doctor;
#[cfg(any(feature = "tensorrt", feature = "tensorrt-rtx"))]
pub(crate) mod engine;
#[cfg(any(feature = "tensorrt", feature = "tensorrt-rtx"))]
mod ffi;
pub mod layers;
pub mod tensor_map;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which TensorRT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum Flavour {
    /// Enterprise TensorRT 10.x / 11.x (`libnvinfer.so`, `libnvonnxparser.so`).
    #[serde(rename = "tensorrt")]
    #[value(name = "tensorrt")]
    Tensorrt,
    /// TensorRT-RTX 1.x (`libtensorrt_rtx.so`, `libtensorrt_onnxparser_rtx.so`).
    #[serde(rename = "tensorrt-rtx")]
    #[value(name = "tensorrt-rtx")]
    TensorrtRtx,
}

impl Flavour {
    /// Both flavours.
    pub const ALL: [Flavour; 2] = [Flavour::Tensorrt, Flavour::TensorrtRtx];

    /// The name used on the command line, in manifests and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Tensorrt => "tensorrt",
            Flavour::TensorrtRtx => "tensorrt-rtx",
        }
    }

    /// The cargo feature that compiles it in.
    #[must_use]
    pub fn feature(self) -> &'static str {
        self.name()
    }

    /// What the user reads ("TensorRT", "TensorRT-RTX").
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Flavour::Tensorrt => "TensorRT",
            Flavour::TensorrtRtx => "TensorRT-RTX",
        }
    }

    /// True when this binary can build and run engines of this flavour.
    #[must_use]
    pub fn compiled_in(self) -> bool {
        compiled_flavour() == Some(self)
    }

    /// Why this binary cannot use the flavour, with what to do (`None` when it can).
    #[must_use]
    pub fn not_compiled_reason(self) -> Option<String> {
        if self.compiled_in() {
            return None;
        }
        let libs = match self {
            Flavour::Tensorrt => "libnvinfer.so and libnvonnxparser.so (TensorRT 10.x or 11.x)",
            Flavour::TensorrtRtx => {
                "libtensorrt_rtx.so and libtensorrt_onnxparser_rtx.so (e.g. `pip install tensorrt-rtx-cu13-libs`)"
            }
        };
        let other = match compiled_flavour() {
            Some(f) => format!(
                " (it was built with --features {}; the two select different TensorRT headers, so one binary serves one flavour)",
                f.feature()
            ),
            None => String::new(),
        };
        Some(format!(
            "this trtlens was built without {} support{other}: rebuild with `cargo build --release --features {}` \
             (needs libclang at build time) and install {libs}",
            self.title(),
            self.feature()
        ))
    }
}

impl std::fmt::Display for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The flavour the TensorRT bindings of this binary were compiled for. Enabling both features gives
/// enterprise headers (trtx-sys is built once, for one header set).
#[must_use]
pub fn compiled_flavour() -> Option<Flavour> {
    if cfg!(feature = "tensorrt") {
        Some(Flavour::Tensorrt)
    } else if cfg!(feature = "tensorrt-rtx") {
        Some(Flavour::TensorrtRtx)
    } else {
        None
    }
}

/// Which tensors of the engine can be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Observe {
    /// Every tensor with an ONNX name that is not a shape tensor or a constant is a network output.
    /// Marking breaks fusions, so numbers can differ from the production engine.
    #[default]
    All,
    /// Graph outputs only: the production fusion.
    Outputs,
    /// Unfused tensors as debug tensors (TensorRT 10.12+ / 11 / RTX): keeps the production fusion.
    Debug,
}

impl Observe {
    /// `all`, `outputs`, `debug`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Observe::All => "all",
            Observe::Outputs => "outputs",
            Observe::Debug => "debug",
        }
    }
}

/// How per-layer precision reaches the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionMode {
    /// The plan-rewritten ONNX (Cast nodes, FP16 initializers), built strongly typed: each layer
    /// computes in the type the plan gives it (the only control TensorRT 11 and TensorRT-RTX have).
    #[default]
    Strict,
    /// TensorRT 10 only: the original model, weakly typed, FP16 enabled, each layer's precision and
    /// output types set from the plan, precision constraints obeyed.
    Constraints,
}

impl PrecisionMode {
    /// `strict` or `constraints`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            PrecisionMode::Strict => "strict",
            PrecisionMode::Constraints => "constraints",
        }
    }
}

/// Options of the TensorRT runners and of `trtlens build`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrtOptions {
    /// `--trt-lib DIR`: where the libraries are (else discovery, see [`discover`]).
    pub lib_dir: Option<PathBuf>,
    /// What to observe.
    pub observe: Observe,
    /// How precision is set.
    pub precision_mode: PrecisionMode,
    /// Bypass the engine cache (`--no-cache`): always build, never store.
    pub no_cache: bool,
    /// Cache directory (else [`cache::default_dir`]).
    pub cache_dir: Option<PathBuf>,
}

/// What a TensorRT run records in its manifest (`manifest.json` key `trt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The engine's build directory (a cache entry, or a temporary directory gone after the run).
    pub build_dir: String,
    /// Its cache key.
    pub engine_key: String,
    /// True when the engine came from the cache.
    pub cache_hit: bool,
    /// Which engine tensor holds each ONNX tensor, the layers, the precision mismatches.
    pub tensor_map: tensor_map::TensorMap,
    /// The production engine (`--observe outputs`) run beside an `--observe all` engine, when it was.
    #[serde(default)]
    pub production: Option<Production>,
}

/// The production engine's graph outputs, stored beside the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Production {
    /// Its cache key.
    pub engine_key: String,
    /// One safetensors file per iteration (relative to the run directory).
    pub files: Vec<String>,
}

/// Version of a TensorRT library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LibVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
    /// Build number, when the library says.
    pub build: Option<u32>,
}

impl std::fmt::Display for LibVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(b) = self.build {
            write!(f, ".{b}")?;
        }
        Ok(())
    }
}

impl LibVersion {
    /// Decode `getInferLibVersion()`: `(major*100 + minor)*100 + patch` since TensorRT 10 (and in
    /// TensorRT-RTX), `major*1000 + minor*100 + patch` before.
    #[must_use]
    pub fn from_packed(v: u32) -> LibVersion {
        if v >= 10000 {
            LibVersion { major: v / 10000, minor: (v / 100) % 100, patch: v % 100, build: None }
        } else {
            LibVersion { major: v / 1000, minor: (v / 100) % 10, patch: v % 100, build: None }
        }
    }
}

/// The error for a flavour this binary cannot use.
pub fn require_compiled(flavour: Flavour) -> Result<()> {
    match flavour.not_compiled_reason() {
        None => Ok(()),
        Some(reason) => Err(Error::runner(flavour.name(), reason)),
    }
}

/// The fraction done in a build status line that says `layer K/N` (TensorRT reports layers as it
/// builds them), when it does.
#[must_use]
pub fn layer_fraction(status: &str) -> Option<f64> {
    let rest = &status[status.find("layer ")? + "layer ".len()..];
    let (k, n) = rest.split_whitespace().next()?.split_once('/')?;
    let (k, n): (f64, f64) = (k.parse().ok()?, n.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()?);
    (n > 0.0).then(|| (k / n).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_decode_both_packings() {
        assert_eq!(LibVersion::from_packed(10701).to_string(), "1.7.1");
        assert_eq!(LibVersion::from_packed(101_600).to_string(), "10.16.0");
        assert_eq!(LibVersion::from_packed(110_400).to_string(), "11.4.0");
        assert_eq!(LibVersion::from_packed(8601).to_string(), "8.6.1");
        let v = LibVersion { build: Some(116), ..LibVersion::from_packed(10701) };
        assert_eq!(v.to_string(), "1.7.1.116");
    }

    #[test]
    fn flavours_name_their_feature() {
        for f in Flavour::ALL {
            assert_eq!(f.compiled_in(), f.not_compiled_reason().is_none());
            if let Some(r) = f.not_compiled_reason() {
                assert!(r.contains(&format!("--features {}", f.feature())), "{r}");
            }
        }
    }

    #[test]
    fn build_status_lines_give_a_fraction() {
        assert_eq!(super::layer_fraction("building engine: layer 3/12"), Some(0.25));
        assert_eq!(super::layer_fraction("building engine: 4 s"), None);
        assert_eq!(super::layer_fraction("layer 5/0"), None);
    }
}
