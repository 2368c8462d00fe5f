//! The engine cache: a finished build directory per key, so that rebuilding a plan seen before (a
//! layer toggled back, the same comparison re-run) costs nothing, plus TensorRT's timing cache per
//! (flavour, version, GPU) so that new builds reuse kernel timings.
//!
//! The key is the sha256 of everything that changes an engine: the model's sha256, the plan's
//! sha256 (its TOML, and the label the tensor map carries), the flavour and library version, the observation and precision modes, the
//! input shapes (the optimization profile), the GPU (or the compute capability targeted without
//! one) and trtlens' own version. Layout:
//!
//! ```text
//! CACHE/engines/KEY/   engine.plan, build.log, tensor_map.json, build.json (one build directory)
//! CACHE/timing/FLAVOUR-VERSION-GPU.cache
//! ```
//!
//! `CACHE` is `--cache-dir`/`TRTLENS_CACHE_DIR`, else `$XDG_CACHE_HOME/trtlens`, else
//! `~/.cache/trtlens`. Entries are written to a hidden sibling and renamed into place, so a crash
//! mid-build never leaves an entry that looks complete; two processes building the same key both
//! succeed and one entry is kept. Deleting the directory is always safe.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Flavour, Observe, PrecisionMode};
use crate::error::{Error, Result};

/// Files of a build directory.
pub const ENGINE_FILE: &str = "engine.plan";
/// The builder's log.
pub const LOG_FILE: &str = "build.log";
/// What was built, how, and how long it took.
pub const META_FILE: &str = "build.json";

/// The default cache directory.
#[must_use]
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TRTLENS_CACHE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(d).join("trtlens");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".cache").join("trtlens");
    }
    std::env::temp_dir().join("trtlens-cache")
}

/// Shapes of one input in the optimization profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShapeRange {
    /// Smallest shape.
    pub min: Vec<usize>,
    /// Shape the kernels are tuned for.
    pub opt: Vec<usize>,
    /// Largest shape.
    pub max: Vec<usize>,
}

impl ShapeRange {
    /// One fixed shape.
    #[must_use]
    pub fn fixed(shape: &[usize]) -> ShapeRange {
        ShapeRange { min: shape.to_vec(), opt: shape.to_vec(), max: shape.to_vec() }
    }

    /// Widen to cover `shape` (same rank; `opt` stays the first shape seen).
    pub fn cover(&mut self, shape: &[usize]) {
        for (i, d) in shape.iter().enumerate() {
            if let (Some(lo), Some(hi)) = (self.min.get_mut(i), self.max.get_mut(i)) {
                *lo = (*lo).min(*d);
                *hi = (*hi).max(*d);
            }
        }
    }
}

/// Everything that identifies an engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyParts {
    /// sha256 of the model file.
    pub model_sha256: String,
    /// sha256 of the effective plan's TOML and its label.
    pub plan_sha256: Option<String>,
    /// Flavour.
    pub flavour: Flavour,
    /// Library version.
    pub version: String,
    /// Observation mode.
    pub observe: Observe,
    /// Precision mode.
    pub precision_mode: PrecisionMode,
    /// Optimization profile, per input.
    pub shapes: BTreeMap<String, ShapeRange>,
    /// The GPU built on (`NVIDIA H200 sm_90`), or the compute capability targeted without one.
    pub gpu: String,
    /// trtlens version (build directories may change with it).
    pub trtlens: String,
}

impl KeyParts {
    /// The key: hex sha256 of the parts' canonical JSON.
    #[must_use]
    pub fn key(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        crate::model::sha256_hex(&json)
    }
}

/// The engine cache.
#[derive(Debug, Clone)]
pub struct Cache {
    /// Its root.
    pub dir: PathBuf,
}

impl Cache {
    /// The cache at `dir` (created on first store).
    #[must_use]
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    /// The build directory for `key` (it may not exist).
    #[must_use]
    pub fn entry(&self, key: &str) -> PathBuf {
        self.dir.join("engines").join(key)
    }

    /// The build directory for `key` when it holds a complete build.
    #[must_use]
    pub fn lookup(&self, key: &str) -> Option<PathBuf> {
        let e = self.entry(key);
        complete(&e).then_some(e)
    }

    /// Copy the build directory `from` into the cache under `key`; returns the entry.
    pub fn store(&self, key: &str, from: &Path) -> Result<PathBuf> {
        let dest = self.entry(key);
        if complete(&dest) {
            return Ok(dest);
        }
        let parent = self.dir.join("engines");
        fs::create_dir_all(&parent).map_err(|e| Error::store_io(&parent, "cannot create the engine cache", e))?;
        let tmp = parent.join(format!(".{key}.partial-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        copy_dir(from, &tmp)?;
        match fs::rename(&tmp, &dest) {
            Ok(()) => Ok(dest),
            // Another process stored the same key first: keep theirs.
            Err(_) if complete(&dest) => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(dest)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(Error::store_io(&dest, "cannot store the engine in the cache", e))
            }
        }
    }

    /// The timing cache file for a flavour, version and GPU.
    #[must_use]
    pub fn timing_file(&self, flavour: Flavour, version: &str, gpu: &str) -> PathBuf {
        let gpu: String = gpu.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
        self.dir.join("timing").join(format!("{}-{version}-{gpu}.cache", flavour.name()))
    }
}

/// True when `dir` holds the files of a finished build.
#[must_use]
pub fn complete(dir: &Path) -> bool {
    [ENGINE_FILE, super::tensor_map::TENSOR_MAP_FILE, META_FILE].iter().all(|f| dir.join(f).is_file())
}

/// Copy the plain files of `from` into a new directory `to`.
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| Error::store_io(to, "cannot create the directory", e))?;
    let entries = fs::read_dir(from).map_err(|e| Error::store_io(from, "cannot read the build directory", e))?;
    for e in entries {
        let e = e.map_err(|e| Error::store_io(from, "cannot read the build directory", e))?;
        let path = e.path();
        if path.is_file() {
            let dest = to.join(e.file_name());
            // Hard links when the file system allows (build files are never modified once written).
            if fs::hard_link(&path, &dest).is_err() {
                fs::copy(&path, &dest).map_err(|err| Error::store_io(&dest, "cannot copy", err))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> KeyParts {
        KeyParts {
            model_sha256: "ab".into(),
            plan_sha256: None,
            flavour: Flavour::TensorrtRtx,
            version: "1.7.1.116".into(),
            observe: Observe::All,
            precision_mode: PrecisionMode::Strict,
            shapes: BTreeMap::from([("x".to_string(), ShapeRange::fixed(&[1, 3]))]),
            gpu: "sm_89 (no GPU)".into(),
            trtlens: "0.1.0".into(),
        }
    }

    #[test]
    fn every_part_changes_the_key() {
        type Change = Box<dyn Fn(&mut KeyParts)>;
        let base = parts();
        let k = base.key();
        assert_eq!(k, parts().key(), "keys are deterministic");
        let changes: Vec<Change> = vec![
            Box::new(|p| p.model_sha256 = "cd".into()),
            Box::new(|p| p.plan_sha256 = Some("ef".into())),
            Box::new(|p| p.flavour = Flavour::Tensorrt),
            Box::new(|p| p.version = "1.7.2".into()),
            Box::new(|p| p.observe = Observe::Outputs),
            Box::new(|p| p.precision_mode = PrecisionMode::Constraints),
            Box::new(|p| p.shapes.get_mut("x").into_iter().for_each(|s| s.cover(&[2, 3]))),
            Box::new(|p| p.gpu = "NVIDIA RTX 4090 sm_89".into()),
            Box::new(|p| p.trtlens = "0.2.0".into()),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut p = parts();
            change(&mut p);
            assert_ne!(p.key(), k, "change {i} kept the key");
        }
    }

    #[test]
    fn store_and_lookup() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::store("tmp", e.to_string()))?;
        let cache = Cache::new(tmp.path().join("cache"));
        assert_eq!(cache.lookup("k"), None);
        let build = tmp.path().join("build");
        fs::create_dir_all(&build).map_err(|e| Error::store("tmp", e.to_string()))?;
        for f in [ENGINE_FILE, super::super::tensor_map::TENSOR_MAP_FILE] {
            fs::write(build.join(f), b"x").map_err(|e| Error::store("tmp", e.to_string()))?;
        }
        // Incomplete builds are not cached entries.
        cache.store("k", &build)?;
        let _ = fs::remove_dir_all(cache.entry("k"));
        fs::write(build.join(META_FILE), b"{}").map_err(|e| Error::store("tmp", e.to_string()))?;
        let e = cache.store("k", &build)?;
        assert_eq!(cache.lookup("k"), Some(e.clone()));
        assert_eq!(cache.store("k", &build)?, e, "storing twice keeps the first entry");
        let leftovers =
            fs::read_dir(tmp.path().join("cache/engines")).map_err(|e| Error::store("tmp", e.to_string()))?;
        assert_eq!(leftovers.count(), 1, "no partial directories left");
        Ok(())
    }
}
