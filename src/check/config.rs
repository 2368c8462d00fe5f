//! `trtlens.toml`: the checks of a repository with many models. `trtlens check` without a model
//! reads it (from the current directory or the nearest parent up to the repository root, or
//! `--config FILE`) and runs every `[[check]]`. Paths are relative to the file's directory.
//!
//! ```toml
//! [defaults]                       # optional: any check key but name, model, baseline
//! reference = "tract"
//! candidate = "cpu-fp16"
//! policy = "ci/check-policy.toml"
//!
//! [[check]]
//! name = "mlp"                     # default: the model's file stem (names must be unique)
//! model = "models/mlp.onnx"
//! baseline = "baselines/mlp.json"
//! keep_fp32 = ["mlp/fc1/MatMul"]   # plan: plan, precision, keep_fp32, keep_fp32_op, keep_fp32_regex, out_of_range
//! shape = ["x:1x64"]               # inputs: load_inputs, seed, val_range, shape, iterations, no_specialize
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::policy::{Policy, toml_error};
use super::{CheckSpec, DEFAULT_CANDIDATE, DEFAULT_REFERENCE, Labels, Planned};
use crate::cli::{InputArgs, PlanArgs};
use crate::error::{Error, Result};

/// The file name looked for.
pub const CONFIG_FILE: &str = "trtlens.toml";

/// One `[[check]]` (or `[defaults]`) as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Entry {
    /// Check name.
    pub name: Option<String>,
    /// The ONNX model.
    pub model: Option<String>,
    /// The baseline report.
    pub baseline: Option<String>,
    /// Reference side (default `tract`).
    pub reference: Option<String>,
    /// Candidate side (default `cpu-fp16`).
    pub candidate: Option<String>,
    /// Policy file.
    pub policy: Option<String>,
    /// Precision plan file.
    pub plan: Option<String>,
    /// Default precision (`fp16`, `fp32`).
    pub precision: Option<String>,
    /// Nodes kept FP32.
    pub keep_fp32: Option<Vec<String>>,
    /// Op types kept FP32.
    pub keep_fp32_op: Option<Vec<String>>,
    /// Node-name regexes kept FP32.
    pub keep_fp32_regex: Option<Vec<String>>,
    /// `saturate`, `keep-fp32` or `ieee`.
    pub out_of_range: Option<String>,
    /// Input file or run directory.
    pub load_inputs: Option<String>,
    /// Seed of random inputs.
    pub seed: Option<u64>,
    /// Random value ranges (`[NAME:]LO,HI`).
    pub val_range: Option<Vec<String>>,
    /// Input shapes (`NAME:DIMS`).
    pub shape: Option<Vec<String>>,
    /// Random iterations.
    pub iterations: Option<usize>,
    /// Keep every `If` node.
    pub no_specialize: Option<bool>,
    /// `libonnxruntime.so`.
    pub ort_lib: Option<String>,
}

impl Entry {
    /// This entry with `defaults` filling what it leaves out.
    #[must_use]
    pub fn or(&self, d: &Entry) -> Entry {
        fn pick<T: Clone>(a: Option<&T>, b: Option<&T>) -> Option<T> {
            a.or(b).cloned()
        }
        Entry {
            name: self.name.clone(),
            model: self.model.clone(),
            baseline: self.baseline.clone(),
            reference: pick(self.reference.as_ref(), d.reference.as_ref()),
            candidate: pick(self.candidate.as_ref(), d.candidate.as_ref()),
            policy: pick(self.policy.as_ref(), d.policy.as_ref()),
            plan: pick(self.plan.as_ref(), d.plan.as_ref()),
            precision: pick(self.precision.as_ref(), d.precision.as_ref()),
            keep_fp32: pick(self.keep_fp32.as_ref(), d.keep_fp32.as_ref()),
            keep_fp32_op: pick(self.keep_fp32_op.as_ref(), d.keep_fp32_op.as_ref()),
            keep_fp32_regex: pick(self.keep_fp32_regex.as_ref(), d.keep_fp32_regex.as_ref()),
            out_of_range: pick(self.out_of_range.as_ref(), d.out_of_range.as_ref()),
            load_inputs: pick(self.load_inputs.as_ref(), d.load_inputs.as_ref()),
            seed: pick(self.seed.as_ref(), d.seed.as_ref()),
            val_range: pick(self.val_range.as_ref(), d.val_range.as_ref()),
            shape: pick(self.shape.as_ref(), d.shape.as_ref()),
            iterations: pick(self.iterations.as_ref(), d.iterations.as_ref()),
            no_specialize: pick(self.no_specialize.as_ref(), d.no_specialize.as_ref()),
            ort_lib: pick(self.ort_lib.as_ref(), d.ort_lib.as_ref()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Entry,
    #[serde(default)]
    check: Vec<Entry>,
}

/// A parsed `trtlens.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file.
    pub path: PathBuf,
    /// Its directory (what relative paths are relative to).
    pub dir: PathBuf,
    /// Every check, defaults applied, in file order.
    pub checks: Vec<Entry>,
}

impl Config {
    /// Read and validate: at least one check, each with a model and a baseline, unique names.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::usage(format!("cannot read the check config {}: {e}", path.display())))?;
        let file: File =
            toml::from_str(&text).map_err(|e| Error::usage(format!("{}: {}", path.display(), toml_error(&e))))?;
        let bad = |msg: String| Error::usage(format!("{}: {msg}", path.display()));
        if file.defaults.name.is_some() || file.defaults.model.is_some() || file.defaults.baseline.is_some() {
            return Err(bad("[defaults] cannot set name, model or baseline (they differ per check)".into()));
        }
        if file.check.is_empty() {
            return Err(bad("no [[check]] entries".into()));
        }
        let mut names = HashSet::new();
        let mut checks = Vec::with_capacity(file.check.len());
        for (i, e) in file.check.iter().enumerate() {
            let e = e.or(&file.defaults);
            let Some(model) = &e.model else {
                return Err(bad(format!("[[check]] #{} has no model", i + 1)));
            };
            if e.baseline.is_none() {
                return Err(bad(format!("[[check]] #{} ({model}) has no baseline", i + 1)));
            }
            let name = e.name.clone().unwrap_or_else(|| stem(model));
            if !names.insert(name.clone()) {
                return Err(bad(format!("two checks are named '{name}': give each a unique name")));
            }
            checks.push(Entry { name: Some(name), ..e });
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Config { path: path.to_path_buf(), dir, checks })
    }

    /// A path of the file, relative to its directory.
    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() || self.dir.as_os_str().is_empty() { p.to_path_buf() } else { self.dir.join(p) }
    }

    /// A side: `saved:PATH` is relative to the file too.
    fn side(&self, s: &str) -> String {
        match s.strip_prefix("saved:") {
            Some(rest) => format!("saved:{}", self.resolve(rest).display()),
            None => s.to_string(),
        }
    }

    /// Every check as a spec to run (or why it cannot be set up), `ort_lib` applying where a
    /// check does not set its own.
    #[must_use]
    pub fn plan(&self, ort_lib: Option<&Path>) -> Vec<Planned> {
        self.checks
            .iter()
            .map(|e| {
                let labels = Labels {
                    name: e.name.clone().unwrap_or_default(),
                    model: e.model.clone(),
                    baseline: e.baseline.as_deref().map(|b| self.resolve(b).display().to_string()).unwrap_or_default(),
                    policy: e.policy.as_deref().map(|p| self.resolve(p).display().to_string()),
                };
                (labels, self.spec(e, ort_lib))
            })
            .collect()
    }

    fn spec(&self, e: &Entry, ort_lib: Option<&Path>) -> Result<CheckSpec> {
        let policy_path = e.policy.as_deref().map(|p| self.resolve(p));
        let policy = policy_path.as_deref().map(Policy::load).transpose()?.unwrap_or_default();
        let plan = PlanArgs {
            plan: e.plan.as_deref().map(|p| self.resolve(p)),
            precision: e.precision.clone(),
            keep_fp32: e.keep_fp32.clone().unwrap_or_default(),
            keep_fp32_op: e.keep_fp32_op.clone().unwrap_or_default(),
            keep_fp32_regex: e.keep_fp32_regex.clone().unwrap_or_default(),
            out_of_range: e.out_of_range.as_deref().map(str::parse).transpose()?,
        };
        let inputs = InputArgs {
            seed: e.seed.unwrap_or(crate::inputs::DEFAULT_SEED),
            val_range: e.val_range.clone().unwrap_or_default(),
            shape: e.shape.clone().unwrap_or_default(),
            iterations: e.iterations.unwrap_or(1),
            load_inputs: e.load_inputs.as_deref().map(|p| self.resolve(p)),
            no_specialize: e.no_specialize.unwrap_or(false),
        };
        let model = e.model.as_deref().map(|m| self.resolve(m));
        let ort = e.ort_lib.as_deref().map(|p| self.resolve(p)).or_else(|| ort_lib.map(Path::to_path_buf));
        let request = super::compare_request(
            model,
            &self.side(e.reference.as_deref().unwrap_or(DEFAULT_REFERENCE)),
            &self.side(e.candidate.as_deref().unwrap_or(DEFAULT_CANDIDATE)),
            &plan,
            &inputs,
            ort,
            &policy,
        )?;
        Ok(CheckSpec {
            name: e.name.clone().unwrap_or_default(),
            model_label: e.model.clone(),
            request,
            baseline: self.resolve(e.baseline.as_deref().unwrap_or_default()),
            policy,
            policy_path,
        })
    }
}

/// The model's file stem (a check's default name).
#[must_use]
pub fn stem(model: &str) -> String {
    Path::new(model).file_stem().map_or_else(|| model.to_string(), |s| s.to_string_lossy().into_owned())
}

/// `trtlens.toml` in `start` or the nearest parent, not looking above the repository root (the
/// first directory holding `.git`).
#[must_use]
pub fn find(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        let candidate = d.join(CONFIG_FILE);
        if candidate.is_file() {
            return Some(candidate);
        }
        if d.join(".git").exists() {
            return None;
        }
        dir = d.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().map_err(|e| Error::usage(e.to_string()))?;
        let p = dir.path().join(CONFIG_FILE);
        std::fs::write(&p, text).map_err(|e| Error::usage(e.to_string()))?;
        Config::load(&p)
    }

    #[test]
    fn defaults_fill_checks_and_names_default_to_the_stem() -> Result<()> {
        let c = load(
            r#"
            [defaults]
            candidate = "cpu-fp16"
            shape = ["x:1x4"]
            [[check]]
            model = "m/a.onnx"
            baseline = "b/a.json"
            [[check]]
            name = "second"
            model = "m/a.onnx"
            baseline = "b/a2.json"
            shape = ["x:2x4"]
            keep_fp32 = ["n1"]
            "#,
        )?;
        assert_eq!(c.checks.len(), 2);
        assert_eq!(c.checks[0].name.as_deref(), Some("a"));
        assert_eq!(c.checks[0].shape, Some(vec!["x:1x4".to_string()]));
        assert_eq!(c.checks[1].shape, Some(vec!["x:2x4".to_string()]), "a check's own list replaces the default");
        assert_eq!(c.checks[1].candidate.as_deref(), Some("cpu-fp16"));
        let planned = c.plan(None);
        let spec = planned[1].1.as_ref().map_err(|e| Error::usage(e.to_string()))?;
        assert_eq!(spec.request.model.as_deref(), Some(c.dir.join("m/a.onnx").as_path()));
        assert_eq!(spec.baseline, c.dir.join("b/a2.json"));
        assert!(spec.request.runner_options.plan.is_some());
        assert_eq!(spec.request.tolerance.atol, 1e-2, "cpu-fp16's default tolerance");
        Ok(())
    }

    #[test]
    fn mistakes_are_clear() {
        for (text, says) in [
            ("[[check]]\nbaseline = \"b\"", "has no model"),
            ("[[check]]\nmodel = \"a.onnx\"", "has no baseline"),
            (
                "[[check]]\nmodel = \"a.onnx\"\nbaseline = \"b\"\n[[check]]\nmodel = \"x/a.onnx\"\nbaseline = \"c\"",
                "two checks are named 'a'",
            ),
            (
                "[defaults]\nmodel = \"a.onnx\"\n[[check]]\nmodel = \"a.onnx\"\nbaseline = \"b\"",
                "[defaults] cannot set",
            ),
            ("[[check]]\nmodel = \"a.onnx\"\nbaseline = \"b\"\nkeep-fp32 = []", "unknown field `keep-fp32`"),
            ("", "no [[check]] entries"),
        ] {
            let e = load(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_bad_plan_fails_that_check_only() -> Result<()> {
        let c = load(
            "[[check]]\nmodel = \"a.onnx\"\nbaseline = \"a.json\"\nout_of_range = \"clip\"\n\
             [[check]]\nmodel = \"b.onnx\"\nbaseline = \"b.json\"\n",
        )?;
        let planned = c.plan(None);
        assert!(planned[0].1.as_ref().err().is_some_and(|e| e.to_string().contains("clip")));
        assert!(planned[1].1.is_ok());
        Ok(())
    }

    #[test]
    fn find_stops_at_the_repository_root() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::usage(e.to_string()))?;
        let repo = dir.path().join("repo");
        let sub = repo.join("a/b");
        std::fs::create_dir_all(&sub).map_err(|e| Error::usage(e.to_string()))?;
        std::fs::create_dir(repo.join(".git")).map_err(|e| Error::usage(e.to_string()))?;
        std::fs::write(dir.path().join(CONFIG_FILE), "").map_err(|e| Error::usage(e.to_string()))?;
        assert_eq!(find(&sub), None, "a trtlens.toml above the repository root is not this repository's");
        std::fs::write(repo.join(CONFIG_FILE), "").map_err(|e| Error::usage(e.to_string()))?;
        assert_eq!(find(&sub), Some(repo.join(CONFIG_FILE)));
        Ok(())
    }
}
