//! `trtlens doctor`: which TensorRT flavours and versions are installed and where, the CUDA driver
//! and every GPU (name, compute capability, memory), whether each flavour can build and run here,
//! ONNX Runtime's library, and what to install for whatever is missing.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::build::{RTX_SUPPORTED_SM, rtx_supported_list};
use super::discover;
use super::{Flavour, LibVersion};

/// One GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// Device ordinal.
    pub index: usize,
    /// Name (`NVIDIA H200`).
    pub name: String,
    /// Compute capability (major, minor).
    pub cc: (u32, u32),
    /// Device memory.
    pub memory_bytes: u64,
}

impl Gpu {
    /// Compute capability as `major*10 + minor` (90 for 9.0).
    #[must_use]
    pub fn sm(&self) -> u32 {
        self.cc.0 * 10 + self.cc.1
    }
}

/// The CUDA side.
#[derive(Debug, Clone, Serialize)]
pub struct CudaStatus {
    /// Driver CUDA version, when a driver loaded.
    pub driver: Option<String>,
    /// Why there is no driver or no GPU list.
    pub error: Option<String>,
    /// GPUs.
    pub gpus: Vec<Gpu>,
}

/// One place a flavour's libraries were found.
#[derive(Debug, Clone, Serialize)]
pub struct LibStatus {
    /// The builder/runtime library.
    pub library: String,
    /// The ONNX parser next to it.
    pub parser: Option<String>,
    /// Where it was found.
    pub source: String,
    /// Its version, when it loaded.
    pub version: Option<String>,
    /// Why it cannot be used.
    pub error: Option<String>,
}

/// Can a flavour build or run here: the answer and why.
#[derive(Debug, Clone, Serialize)]
pub struct Ability {
    /// Yes or no.
    pub ok: bool,
    /// Why (or how).
    pub why: String,
}

/// One flavour.
#[derive(Debug, Clone, Serialize)]
pub struct FlavourStatus {
    /// Which.
    pub flavour: Flavour,
    /// This binary can drive it.
    pub compiled_in: bool,
    /// Header version compiled in.
    pub headers: Option<String>,
    /// Why not compiled in, and how to get it.
    pub not_compiled: Option<String>,
    /// Libraries found (first usable one is used).
    pub libraries: Vec<LibStatus>,
    /// Why none was found.
    pub not_found: Option<String>,
    /// Can it build engines here.
    pub build: Ability,
    /// Can it run engines on each GPU (empty without GPUs).
    pub run: Vec<(usize, Ability)>,
}

/// ONNX Runtime.
#[derive(Debug, Clone, Serialize)]
pub struct OrtStatus {
    /// The library that would be loaded.
    pub library: Option<String>,
    /// Where it was found.
    pub source: Option<String>,
    /// Why none was found.
    pub error: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Doctor {
    /// trtlens version.
    pub trtlens: String,
    /// Cargo features compiled in.
    pub features: Vec<String>,
    /// CUDA.
    pub cuda: CudaStatus,
    /// TensorRT flavours.
    pub flavours: Vec<FlavourStatus>,
    /// ONNX Runtime.
    pub onnxruntime: OrtStatus,
    /// ONNX Runtime's CUDA provider (`--candidate onnxruntime-cuda`): the library, the provider and
    /// the CUDA/cuDNN libraries it needs, found or missing.
    #[cfg(feature = "onnxruntime")]
    pub onnxruntime_cuda: crate::runner::ort::cuda::Probe,
}

/// Cargo features of this binary.
#[must_use]
pub fn features() -> Vec<String> {
    let mut f = Vec::new();
    for (on, name) in [
        (cfg!(feature = "tract"), "tract"),
        (cfg!(feature = "onnxruntime"), "onnxruntime"),
        (cfg!(feature = "cuda"), "cuda"),
        (cfg!(feature = "tensorrt"), "tensorrt"),
        (cfg!(feature = "tensorrt-rtx"), "tensorrt-rtx"),
    ] {
        if on {
            f.push(name.to_string());
        }
    }
    f
}

fn cuda_status() -> CudaStatus {
    #[cfg(feature = "cuda")]
    {
        match super::cuda::devices() {
            Ok((driver, gpus)) => CudaStatus {
                error: gpus.is_empty().then(|| "the driver reports no GPU".to_string()),
                driver: Some(driver),
                gpus,
            },
            Err(e) => CudaStatus { driver: super::cuda::driver_version().ok(), error: Some(e), gpus: Vec::new() },
        }
    }
    #[cfg(not(feature = "cuda"))]
    CudaStatus {
        driver: None,
        error: Some("this trtlens was built without the cuda feature (cargo build --features cuda)".into()),
        gpus: Vec::new(),
    }
}

fn header_version(flavour: Flavour) -> Option<LibVersion> {
    #[cfg(any(feature = "tensorrt", feature = "tensorrt-rtx"))]
    if flavour.compiled_in() {
        return Some(super::ffi::header_version());
    }
    let _ = flavour;
    None
}

fn flavour_status(flavour: Flavour, trt_lib: Option<&Path>, gpus: &[Gpu]) -> FlavourStatus {
    let headers = header_version(flavour);
    let mut libraries = Vec::new();
    let mut not_found = None;
    match discover::candidates(flavour, trt_lib) {
        Ok(cands) => {
            for c in cands {
                let (version, error) = match discover::open(flavour, &c) {
                    Ok(l) => {
                        let abi = headers.filter(|h| h.major != l.version.major).map(|h| {
                            format!(
                                "version {} does not match the {}.{} headers this trtlens was compiled with",
                                l.version, h.major, h.minor
                            )
                        });
                        (Some(l.version.to_string()), abi)
                    }
                    Err(e) => (discover::probe(&c.infer).ok().map(|v| v.to_string()), Some(e)),
                };
                libraries.push(LibStatus {
                    library: c.infer.display().to_string(),
                    parser: c.parser.as_ref().map(|p| p.display().to_string()),
                    source: c.source.clone(),
                    version,
                    error,
                });
            }
        }
        Err(crate::error::Error::Runner { msg, .. }) => not_found = Some(msg),
        Err(e) => not_found = Some(e.to_string()),
    }
    let usable = libraries.iter().find(|l| l.error.is_none());
    let not_compiled = flavour.not_compiled_reason();
    let missing = if not_compiled.is_some() {
        Some("not compiled in".to_string())
    } else if usable.is_none() {
        Some("no usable libraries".to_string())
    } else {
        None
    };
    let build = match (&missing, flavour) {
        (Some(m), _) => Ability { ok: false, why: m.clone() },
        (None, Flavour::Tensorrt) if gpus.is_empty() => {
            Ability { ok: false, why: "enterprise TensorRT needs an NVIDIA GPU to build".into() }
        }
        (None, Flavour::Tensorrt) => Ability { ok: true, why: "on the GPU".into() },
        (None, Flavour::TensorrtRtx) => match gpus.iter().find(|g| RTX_SUPPORTED_SM.contains(&g.sm())) {
            Some(g) => Ability { ok: true, why: format!("for {} (sm_{})", g.name, g.sm()) },
            None => Ability {
                ok: true,
                why: format!(
                    "without a supported GPU, for sm_{} (TRTLENS_RTX_TARGET_SM to change)",
                    super::build::DEFAULT_RTX_TARGET_SM
                ),
            },
        },
    };
    let run = gpus
        .iter()
        .map(|g| {
            let a = match (&missing, flavour) {
                (Some(m), _) => Ability { ok: false, why: m.clone() },
                (None, Flavour::Tensorrt) => Ability {
                    ok: g.sm() >= 75,
                    why: if g.sm() >= 75 {
                        "yes".into()
                    } else {
                        "TensorRT 11 needs compute capability 7.5 or newer".into()
                    },
                },
                (None, Flavour::TensorrtRtx) if RTX_SUPPORTED_SM.contains(&g.sm()) => {
                    Ability { ok: true, why: "yes".into() }
                }
                (None, Flavour::TensorrtRtx) => Ability {
                    ok: false,
                    why: format!(
                        "TensorRT-RTX does not run on compute capability {}.{} (it supports {})",
                        g.cc.0,
                        g.cc.1,
                        rtx_supported_list()
                    ),
                },
            };
            (g.index, a)
        })
        .collect();
    FlavourStatus {
        flavour,
        compiled_in: flavour.compiled_in(),
        headers: headers.map(|h| h.to_string()),
        not_compiled,
        libraries,
        not_found,
        build,
        run,
    }
}

fn ort_status(ort_lib: Option<&Path>) -> OrtStatus {
    #[cfg(feature = "onnxruntime")]
    {
        match crate::runner::ort::discover::candidates(ort_lib) {
            Ok(c) => OrtStatus {
                library: c.first().map(|c| c.path.display().to_string()),
                source: c.first().map(|c| c.source.clone()),
                error: None,
            },
            Err(e) => OrtStatus { library: None, source: None, error: Some(e.to_string()) },
        }
    }
    #[cfg(not(feature = "onnxruntime"))]
    {
        let _ = ort_lib;
        OrtStatus { library: None, source: None, error: Some("built without the onnxruntime feature".into()) }
    }
}

/// Look at this machine.
#[must_use]
pub fn examine(trt_lib: Option<&Path>, ort_lib: Option<&Path>) -> Doctor {
    let cuda = cuda_status();
    let flavours = Flavour::ALL.iter().map(|f| flavour_status(*f, trt_lib, &cuda.gpus)).collect();
    Doctor {
        trtlens: env!("CARGO_PKG_VERSION").to_string(),
        features: features(),
        cuda,
        flavours,
        onnxruntime: ort_status(ort_lib),
        #[cfg(feature = "onnxruntime")]
        onnxruntime_cuda: crate::runner::ort::cuda::probe(ort_lib),
    }
}

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30))
}

impl std::fmt::Display for Doctor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        let _ = writeln!(out, "trtlens {} (features: {})", self.trtlens, self.features.join(", "));
        let _ = writeln!(out);
        match &self.cuda.driver {
            Some(v) => {
                let _ = writeln!(out, "CUDA driver: {v}");
            }
            None => {
                let _ = writeln!(out, "CUDA driver: none");
            }
        }
        for g in &self.cuda.gpus {
            let _ = writeln!(
                out,
                "  GPU {}: {}, compute capability {}.{}, {}",
                g.index,
                g.name,
                g.cc.0,
                g.cc.1,
                gib(g.memory_bytes)
            );
        }
        if let Some(e) = &self.cuda.error {
            let _ = writeln!(out, "  {e}");
        }
        for s in &self.flavours {
            let _ = writeln!(out);
            let compiled = match (&s.headers, s.compiled_in) {
                (Some(h), true) => format!("compiled in ({h} headers)"),
                _ => "not compiled in".to_string(),
            };
            let _ = writeln!(out, "{} (--candidate {}): {compiled}", s.flavour.title(), s.flavour.name());
            for l in &s.libraries {
                let v = l.version.as_deref().unwrap_or("?");
                let _ = writeln!(out, "  library {} {v} ({})", l.library, l.source);
                match &l.parser {
                    Some(p) => {
                        let _ = writeln!(out, "  parser  {p}");
                    }
                    None => {
                        let _ = writeln!(out, "  parser  missing");
                    }
                }
                if let Some(e) = &l.error {
                    let _ = writeln!(out, "  unusable: {e}");
                }
            }
            if let Some(e) = &s.not_found {
                let _ = writeln!(out, "  libraries: {e}");
            }
            let yes = |a: &Ability| if a.ok { "yes" } else { "no" };
            let _ = writeln!(out, "  build: {} ({})", yes(&s.build), s.build.why);
            if s.run.is_empty() {
                let _ = writeln!(out, "  run: no (no GPU)");
            }
            for (i, a) in &s.run {
                let _ = writeln!(
                    out,
                    "  run on GPU {i}: {}{}",
                    yes(a),
                    if a.ok { String::new() } else { format!(" ({})", a.why) }
                );
            }
            if let Some(n) = &s.not_compiled {
                let _ = writeln!(out, "  to use it: {n}");
            } else if s.libraries.iter().all(|l| l.error.is_some()) {
                let _ = writeln!(out, "  to use it: {}", discover::names(s.flavour).install);
            }
        }
        let _ = writeln!(out);
        match (&self.onnxruntime.library, &self.onnxruntime.error) {
            (Some(l), _) => {
                let _ = writeln!(out, "ONNX Runtime: {l} ({})", self.onnxruntime.source.as_deref().unwrap_or(""));
            }
            (None, Some(e)) => {
                let _ = writeln!(out, "ONNX Runtime: {e}");
            }
            (None, None) => {
                let _ = writeln!(out, "ONNX Runtime: not found");
            }
        }
        #[cfg(feature = "onnxruntime")]
        {
            let _ = writeln!(out, "{}", self.onnxruntime_cuda);
        }
        f.write_str(&out)
    }
}
