//! Finding the TensorRT libraries of a flavour and reading their versions.
//!
//! Order, first place with both libraries wins:
//! 1. `--trt-lib DIR` ([`TrtOptions::lib_dir`](super::TrtOptions)), else the `TENSORRT_LIB_DIR`
//!    environment variable: the only place searched when given (a wrong one is an error, never a
//!    reason to fall back silently to another installation); a file path names the builder library
//!    itself and its directory is searched for the parser;
//! 2. the directories of `LD_LIBRARY_PATH`;
//! 3. the Python package (`tensorrt_libs` for TensorRT, `tensorrt_rtx_libs` for TensorRT-RTX),
//!    located with `python3` without importing it;
//! 4. system directories.
//!
//! Within a directory the builder library whose major version matches the headers this binary was
//! compiled with is preferred, then the highest versioned file name (`libnvinfer.so.10.16.0` over
//! `libnvinfer.so.10` over `libnvinfer.so`). The version itself is read from the library
//! (`getInferLibVersion`), not from its file name.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Flavour, LibVersion};
use crate::error::{Error, Result};

/// Standard library directories, searched last.
const SYSTEM_DIRS: [&str; 7] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/local/tensorrt/lib",
    "/opt/tensorrt/lib",
];

/// The file names of a flavour's libraries (without version suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibNames {
    /// The builder/runtime library.
    pub infer: &'static str,
    /// The ONNX parser library.
    pub parser: &'static str,
    /// The Python package that ships both.
    pub python_package: &'static str,
    /// What to install when nothing is found.
    pub install: &'static str,
}

/// Library names of a flavour.
#[must_use]
pub fn names(flavour: Flavour) -> LibNames {
    match flavour {
        Flavour::Tensorrt => LibNames {
            infer: "libnvinfer.so",
            parser: "libnvonnxparser.so",
            python_package: "tensorrt_libs",
            install: "install TensorRT 10.x or 11.x from NVIDIA (tar or deb packages; or `pip install tensorrt-cu12-libs` \
                      where pypi.nvidia.com is reachable) and point --trt-lib / TENSORRT_LIB_DIR at its lib directory",
        },
        Flavour::TensorrtRtx => LibNames {
            infer: "libtensorrt_rtx.so",
            parser: "libtensorrt_onnxparser_rtx.so",
            python_package: "tensorrt_rtx_libs",
            install: "`pip install tensorrt-rtx-cu13-libs` (or the TensorRT-RTX SDK from NVIDIA, with --trt-lib / \
                      TENSORRT_LIB_DIR pointing at its lib directory)",
        },
    }
}

/// A pair of library files found together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The builder/runtime library.
    pub infer: PathBuf,
    /// The ONNX parser library next to it (`None` when the directory has none).
    pub parser: Option<PathBuf>,
    /// Where it was found: `--trt-lib`, `TENSORRT_LIB_DIR`, `LD_LIBRARY_PATH`, `python tensorrt_rtx_libs`, or
    /// a system directory.
    pub source: String,
}

/// Libraries that loaded and told their version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Libraries {
    /// Which flavour.
    pub flavour: Flavour,
    /// The builder/runtime library.
    pub infer: PathBuf,
    /// The ONNX parser library.
    pub parser: PathBuf,
    /// Where they were found.
    pub source: String,
    /// The builder library's version.
    pub version: LibVersion,
    /// The parser's version number as it reports it (`getNvOnnxParserVersion`).
    pub parser_version: Option<u32>,
}

/// The places searched and the candidates found, in order. An explicit directory yields its pair or
/// an error; otherwise every place with a builder library is listed (the parser may be missing).
pub fn candidates(flavour: Flavour, explicit: Option<&Path>) -> Result<Vec<Candidate>> {
    let n = names(flavour);
    let prefer = preferred_major(flavour);
    if let Some(p) = explicit {
        return explicit_candidate(flavour, p, "--trt-lib", prefer).map(|c| vec![c]);
    }
    if let Some(p) = std::env::var_os("TENSORRT_LIB_DIR").filter(|v| !v.is_empty()) {
        return explicit_candidate(flavour, Path::new(&p), "TENSORRT_LIB_DIR", prefer).map(|c| vec![c]);
    }
    let mut places: Vec<(PathBuf, String)> = Vec::new();
    if let Some(v) = std::env::var_os("LD_LIBRARY_PATH") {
        places.extend(
            std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).map(|p| (p, "LD_LIBRARY_PATH".to_string())),
        );
    }
    if let Some(dir) = python_package_dir(n.python_package) {
        places.push((dir, format!("python {}", n.python_package)));
    }
    places.extend(SYSTEM_DIRS.iter().map(|d| (PathBuf::from(d), (*d).to_string())));
    let mut out: Vec<Candidate> = Vec::new();
    for (dir, source) in places {
        let Some(infer) = best_in_dir(&dir, n.infer, prefer) else { continue };
        let key = std::fs::canonicalize(&infer).unwrap_or_else(|_| infer.clone());
        if out.iter().any(|c| std::fs::canonicalize(&c.infer).unwrap_or_else(|_| c.infer.clone()) == key) {
            continue;
        }
        let parser = best_in_dir(&dir, n.parser, prefer);
        out.push(Candidate { infer, parser, source });
    }
    if out.is_empty() {
        return Err(Error::runner(flavour.name(), not_found(flavour)));
    }
    Ok(out)
}

/// The message when no library is found anywhere.
#[must_use]
pub fn not_found(flavour: Flavour) -> String {
    let n = names(flavour);
    format!(
        "{} not found (searched --trt-lib, TENSORRT_LIB_DIR, LD_LIBRARY_PATH, the python package {}, {}): {}",
        n.infer,
        n.python_package,
        SYSTEM_DIRS.join(", "),
        n.install
    )
}

/// Find, load and version the libraries: the first candidate that has both libraries and loads.
pub fn find(flavour: Flavour, explicit: Option<&Path>) -> Result<Libraries> {
    let mut problems = Vec::new();
    for c in candidates(flavour, explicit)? {
        match open(flavour, &c) {
            Ok(l) => return Ok(l),
            Err(e) => problems.push(format!("{} ({}): {e}", c.infer.display(), c.source)),
        }
    }
    Err(Error::runner_details(
        flavour.name(),
        format!("no usable {} libraries: {}", flavour.title(), problems.first().map_or("", String::as_str)),
        problems.join("\n"),
    ))
}

/// Load a candidate's libraries (builder first: the parser may need it by soname) and read versions.
pub fn open(flavour: Flavour, c: &Candidate) -> std::result::Result<Libraries, String> {
    let n = names(flavour);
    let parser = c.parser.clone().ok_or_else(|| {
        format!(
            "{} has no {}* next to it (the ONNX parser is needed to build engines)",
            c.infer.parent().map_or_else(String::new, |p| p.display().to_string()),
            n.parser
        )
    })?;
    let version = probe(&c.infer)?;
    let plib = crate::sys::load_library(&parser).map_err(|e| format!("cannot load {}: {e}", parser.display()))?;
    let parser_version = crate::sys::call_i32_getter(plib, "getNvOnnxParserVersion").map(|v| v as u32);
    Ok(Libraries { flavour, infer: c.infer.clone(), parser, source: c.source.clone(), version, parser_version })
}

/// Load a builder library and read its version.
pub fn probe(infer: &Path) -> std::result::Result<LibVersion, String> {
    let lib = crate::sys::load_library(infer).map_err(|e| format!("cannot load: {e}"))?;
    let packed = crate::sys::call_i32_getter(lib, "getInferLibVersion")
        .ok_or_else(|| "not a TensorRT library (no getInferLibVersion)".to_string())?;
    let mut v = LibVersion::from_packed(packed as u32);
    let part = |s: &str| crate::sys::call_i32_getter(lib, s).map(|x| x as u32);
    if let (Some(major), Some(minor), Some(patch)) =
        (part("getInferLibMajorVersion"), part("getInferLibMinorVersion"), part("getInferLibPatchVersion"))
    {
        v = LibVersion { major, minor, patch, build: None };
    }
    v.build = part("getInferLibBuildVersion");
    Ok(v)
}

/// The major version of the headers compiled in, when this binary serves the flavour.
fn preferred_major(flavour: Flavour) -> Option<u64> {
    #[cfg(any(feature = "tensorrt", feature = "tensorrt-rtx"))]
    if flavour.compiled_in() {
        return Some(u64::from(super::ffi::header_version().major));
    }
    let _ = flavour;
    None
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn explicit_candidate(flavour: Flavour, p: &Path, source: &str, prefer: Option<u64>) -> Result<Candidate> {
    let n = names(flavour);
    let (dir, infer) = if p.is_file() {
        (p.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf), Some(absolute(p)))
    } else if p.is_dir() {
        (p.to_path_buf(), best_in_dir(p, n.infer, prefer))
    } else {
        return Err(Error::runner(
            flavour.name(),
            format!("{source} {}: no such directory; point it at the directory holding {}*", p.display(), n.infer),
        ));
    };
    let Some(infer) = infer else {
        return Err(Error::runner(
            flavour.name(),
            format!("{source} {}: the directory has no {}*; {}", p.display(), n.infer, n.install),
        ));
    };
    Ok(Candidate { infer, parser: best_in_dir(&dir, n.parser, prefer).map(|p| absolute(&p)), source: source.into() })
}

/// The directory of a Python package, if `python3` exists and has it (not imported: `find_spec`
/// only resolves the location).
fn python_package_dir(package: &str) -> Option<PathBuf> {
    let script = format!(
        "import importlib.util, os\ns = importlib.util.find_spec('{package}')\n\
         print(os.path.dirname(s.origin) if s is not None and s.origin else '')"
    );
    let out = Command::new("python3").args(["-c", &script]).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// The version suffix of a library file name: `Some([])` for the bare `stem`, `Some([10, 16, 0])`
/// for `stem.10.16.0`, `None` for anything else (`libnvinfer_plugin.so`, `libnvinfer.so.x`).
#[must_use]
pub fn version_suffix(file_name: &str, stem: &str) -> Option<Vec<u64>> {
    let rest = file_name.strip_prefix(stem)?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let rest = rest.strip_prefix('.')?;
    rest.split('.').map(|p| p.parse::<u64>().ok()).collect()
}

/// The best `stem*` file in `dir`: the preferred major first, then the highest version, the bare
/// name last.
fn best_in_dir(dir: &Path, stem: &str, prefer: Option<u64>) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut found: Vec<(bool, Vec<u64>, PathBuf)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let v = version_suffix(e.file_name().to_str()?, stem)?;
            let path = e.path();
            let matches = prefer.is_some_and(|m| v.first() == Some(&m));
            path.is_file().then_some((matches, v, absolute(&path)))
        })
        .collect();
    found.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    found.into_iter().next().map(|(_, _, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_suffixes() {
        assert_eq!(version_suffix("libnvinfer.so", "libnvinfer.so"), Some(vec![]));
        assert_eq!(version_suffix("libnvinfer.so.10.16.0", "libnvinfer.so"), Some(vec![10, 16, 0]));
        assert_eq!(version_suffix("libnvinfer_plugin.so.10", "libnvinfer.so"), None);
        assert_eq!(version_suffix("libnvinfer.so.10.x", "libnvinfer.so"), None);
        assert_eq!(version_suffix("libtensorrt_rtx.so.1", "libtensorrt_rtx.so"), Some(vec![1]));
    }

    #[test]
    fn prefers_the_compiled_major_then_the_highest_version() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        for f in [
            "libnvinfer.so",
            "libnvinfer.so.10",
            "libnvinfer.so.10.16.0",
            "libnvinfer.so.11.4.0",
            "libnvinfer_lean.so.11",
        ] {
            std::fs::write(dir.path().join(f), b"")?;
        }
        let name = |p: Option<PathBuf>| p.and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
        assert_eq!(name(best_in_dir(dir.path(), "libnvinfer.so", None)).as_deref(), Some("libnvinfer.so.11.4.0"));
        assert_eq!(name(best_in_dir(dir.path(), "libnvinfer.so", Some(10))).as_deref(), Some("libnvinfer.so.10.16.0"));
        assert_eq!(name(best_in_dir(dir.path(), "libnvonnxparser.so", None)), None);
        Ok(())
    }

    #[test]
    fn explicit_directories_are_the_only_place_searched() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let Err(e) = candidates(Flavour::TensorrtRtx, Some(&dir.path().join("missing"))) else {
            panic!("a missing directory was accepted");
        };
        assert!(e.to_string().contains("no such directory"), "{e}");
        let Err(e) = candidates(Flavour::TensorrtRtx, Some(dir.path())) else {
            panic!("an empty directory was accepted");
        };
        assert!(e.to_string().contains("has no libtensorrt_rtx.so*"), "{e}");
        std::fs::write(dir.path().join("libtensorrt_rtx.so.1"), b"")?;
        let c = candidates(Flavour::TensorrtRtx, Some(dir.path())).map_err(std::io::Error::other)?;
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].parser, None);
        assert_eq!(c[0].source, "--trt-lib");
        // Without a parser the pair is not usable, and the error says why.
        let Err(e) = find(Flavour::TensorrtRtx, Some(dir.path())) else { panic!("no parser, yet usable") };
        assert!(e.to_string().contains("libtensorrt_onnxparser_rtx.so"), "{e}");
        // A file that is not a library fails to load, with the loader's message.
        std::fs::write(dir.path().join("libtensorrt_onnxparser_rtx.so.1"), b"")?;
        let Err(e) = find(Flavour::TensorrtRtx, Some(dir.path())) else { panic!("an empty file loaded") };
        assert!(e.to_string().contains("cannot load"), "{e}");
        Ok(())
    }
}
