//! Finding `libonnxruntime.so` on this machine.
//!
//! Order, first hit wins:
//! 1. the explicit path (`--ort-lib`, [`RunnerOptions::ort_lib`](crate::runner::RunnerOptions));
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. the Python `onnxruntime` package (`<package>/capi/libonnxruntime.so.X.Y.Z`), located with
//!    `python3` (skipped when there is no `python3`);
//! 4. the directories of `LD_LIBRARY_PATH`, then `/usr/lib`, `/usr/local/lib`, `/usr/lib/x86_64-linux-gnu`.
//!
//! An explicit path (1 or 2) is the only candidate when given: a wrong one is an error, not a reason to
//! fall back silently to another library. Either may also name a directory, which is searched like 4.
//! Within a directory the highest versioned `libonnxruntime.so.X.Y.Z` is preferred over the bare
//! `libonnxruntime.so` (pip wheels ship only the versioned file).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The file name every candidate starts with.
const LIB_NAME: &str = "libonnxruntime.so";

/// The message when nothing is found anywhere.
pub const NOT_FOUND: &str = "libonnxruntime.so not found; install it with `pip install onnxruntime` or point \
                             ORT_DYLIB_PATH / --ort-lib at libonnxruntime.so.X.Y.Z";

/// Standard library directories, searched after `LD_LIBRARY_PATH`.
const SYSTEM_DIRS: [&str; 3] = ["/usr/lib", "/usr/local/lib", "/usr/lib/x86_64-linux-gnu"];

/// Prints the directory of the `onnxruntime` package without importing it (importing pulls in numpy
/// and, for GPU wheels, preloads CUDA libraries; `find_spec` only resolves the location).
const PYTHON_SCRIPT: &str = "import importlib.util, os\n\
                             s = importlib.util.find_spec('onnxruntime')\n\
                             print(os.path.dirname(s.origin) if s is not None and s.origin else '')";

/// A library file to try, and where it was found (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Path of the shared library.
    pub path: PathBuf,
    /// Where it came from: `--ort-lib`, `ORT_DYLIB_PATH`, `python onnxruntime`, or the directory.
    pub source: String,
}

/// The libraries to try, in order. An explicit path (`explicit`, else `ORT_DYLIB_PATH`) yields exactly one
/// candidate or an error; otherwise the automatic search yields one candidate per place that has one, or
/// the "not found" error.
pub fn candidates(explicit: Option<&Path>) -> Result<Vec<Candidate>> {
    if let Some(p) = explicit {
        return explicit_candidate(p, "--ort-lib").map(|c| vec![c]);
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        return explicit_candidate(Path::new(&p), "ORT_DYLIB_PATH").map(|c| vec![c]);
    }
    let mut out: Vec<Candidate> = Vec::new();
    let mut push = |path: PathBuf, source: String| {
        let path = absolute(&path);
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !out.iter().any(|c| std::fs::canonicalize(&c.path).unwrap_or_else(|_| c.path.clone()) == key) {
            out.push(Candidate { path, source });
        }
    };
    if let Some(dir) = python_package_dir()
        && let Some(p) = best_in_dir(&dir.join("capi"))
    {
        push(p, format!("python onnxruntime ({})", dir.display()));
    }
    for dir in search_dirs() {
        if let Some(p) = best_in_dir(&dir) {
            push(p, dir.display().to_string());
        }
    }
    if out.is_empty() {
        return Err(Error::runner("onnxruntime", NOT_FOUND));
    }
    Ok(out)
}

/// `p` made absolute against the working directory: the loader would otherwise search its own
/// directories for a bare file name instead of the file the user named.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The directories of step 4, in order.
fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    dirs.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
    dirs
}

fn explicit_candidate(p: &Path, source: &str) -> Result<Candidate> {
    if p.is_dir() {
        return best_in_dir(p).map(|path| Candidate { path: absolute(&path), source: source.to_string() }).ok_or_else(
            || {
                Error::runner(
                    "onnxruntime",
                    format!(
                        "{source} {}: the directory has no {LIB_NAME}*; point it at libonnxruntime.so.X.Y.Z",
                        p.display()
                    ),
                )
            },
        );
    }
    if p.is_file() {
        return Ok(Candidate { path: absolute(p), source: source.to_string() });
    }
    Err(Error::runner(
        "onnxruntime",
        format!(
            "{source} {}: no such file; point it at libonnxruntime.so.X.Y.Z (e.g. from `pip install onnxruntime`)",
            p.display()
        ),
    ))
}

/// The directory of the Python `onnxruntime` package, if `python3` exists and has it.
fn python_package_dir() -> Option<PathBuf> {
    let out =
        Command::new("python3").args(["-c", PYTHON_SCRIPT]).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// The version suffix of a library file name: `Some([])` for the bare `libonnxruntime.so`,
/// `Some([1, 31, 1])` for `libonnxruntime.so.1.31.1`, `None` for anything else.
#[must_use]
pub fn version_suffix(file_name: &str) -> Option<Vec<u64>> {
    let rest = file_name.strip_prefix(LIB_NAME)?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let rest = rest.strip_prefix('.')?;
    rest.split('.').map(|p| p.parse::<u64>().ok()).collect()
}

/// The best library file in `dir`: the highest version, the bare name last.
fn best_in_dir(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut found: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let v = version_suffix(e.file_name().to_str()?)?;
            let path = e.path();
            path.is_file().then_some((v, path))
        })
        .collect();
    // Lexicographic order on the numbers: `1.31.1` > `1.31` > `1` > bare.
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().next().map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_suffixes() {
        assert_eq!(version_suffix("libonnxruntime.so"), Some(vec![]));
        assert_eq!(version_suffix("libonnxruntime.so.1.31.1"), Some(vec![1, 31, 1]));
        assert_eq!(version_suffix("libonnxruntime.so.1"), Some(vec![1]));
        assert_eq!(version_suffix("libonnxruntime_providers_shared.so"), None);
        assert_eq!(version_suffix("libonnxruntime.so.1.x"), None);
        assert_eq!(version_suffix("libonnxruntime.sox"), None);
    }

    #[test]
    fn prefers_the_highest_versioned_file() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("trtlens-ort-discover-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        for f in ["libonnxruntime.so", "libonnxruntime.so.1", "libonnxruntime.so.1.9.0", "libonnxruntime.so.1.31.1"] {
            std::fs::write(dir.join(f), b"")?;
        }
        std::fs::write(dir.join("libonnxruntime_providers_shared.so"), b"")?;
        let best = best_in_dir(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            best.and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned())).as_deref(),
            Some("libonnxruntime.so.1.31.1")
        );
        Ok(())
    }

    #[test]
    fn a_missing_explicit_path_is_a_clean_error() {
        let Err(e) = candidates(Some(Path::new("/nonexistent/libonnxruntime.so.1.2.3"))) else {
            panic!("a missing file was accepted");
        };
        let msg = e.to_string();
        assert!(msg.contains("/nonexistent/libonnxruntime.so.1.2.3") && msg.contains("no such file"), "{msg}");
    }
}
