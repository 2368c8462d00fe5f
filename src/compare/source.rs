//! The two sides of a comparison: a runner to execute now, or saved results (a trtlens run
//! directory or a Polygraphy `RunResults` JSON file). Whatever their origin, sides are read the same
//! way: an ordered list of tensor names and, per iteration, borrowed tensor views (memory-mapped for
//! run directories).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::polygraphy_index::{LazyArray, LazyIteration, LazyResults, Loaded};
use crate::runner::{RunnerKind, Tensors};
use crate::store::{MappedTensors, RunDir, TensorView};
use crate::tensor::DType;

/// What the user asked for on one side (`--reference`, `--candidate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SideSpec {
    /// Run this runner now.
    Runner(RunnerKind),
    /// Load saved results: a run directory or a Polygraphy JSON file, optionally `#RUNNER` to pick
    /// one runner of a multi-runner Polygraphy file.
    Saved {
        /// The run directory or JSON file.
        path: PathBuf,
        /// Runner name (or index) inside a Polygraphy file.
        runner: Option<String>,
    },
}

impl SideSpec {
    /// Parse `tract`, `onnxruntime`, `saved:PATH` or `saved:PATH#RUNNER`.
    pub fn parse(s: &str) -> Result<SideSpec> {
        if let Some(rest) = s.strip_prefix("saved:") {
            if rest.is_empty() {
                return Err(Error::usage("saved: needs a path, e.g. saved:runs/a or saved:polygraphy_outputs.json"));
            }
            let (path, runner) = match rest.rsplit_once('#') {
                Some((p, r)) if !Path::new(rest).exists() => (p, Some(r.to_string())),
                _ => (rest, None),
            };
            return Ok(SideSpec::Saved { path: PathBuf::from(path), runner });
        }
        crate::runner::registry::lookup(s).map(|e| SideSpec::Runner(e.kind)).ok_or_else(|| {
            Error::usage(format!(
                "unknown runner '{s}': use a runner ({}) or saved:PATH (a trtlens run directory or a Polygraphy --save-outputs file)",
                crate::runner::registry::names()
            ))
        })
    }

    /// Default (atol, rtol) when this side is the candidate and the user gives none: its registry
    /// entry's defaults (FP16-appropriate for a runner that takes a plan), or, for a saved trtlens
    /// run made with a plan, the FP16 defaults too.
    #[must_use]
    pub fn default_tolerance(&self) -> (f64, f64) {
        use crate::runner::registry::{FP16_TOLERANCE, FP32_TOLERANCE};
        match self {
            SideSpec::Runner(k) => k.entry().default_tolerance,
            SideSpec::Saved { path, .. } => {
                let planned = RunDir::open(path).is_ok_and(|r| r.manifest.runner.plan.is_some());
                if planned { FP16_TOLERANCE } else { FP32_TOLERANCE }
            }
        }
    }

    /// Short description for reports.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            SideSpec::Runner(k) => k.name().to_string(),
            SideSpec::Saved { path, runner: None } => format!("saved:{}", path.display()),
            SideSpec::Saved { path, runner: Some(r) } => format!("saved:{}#{r}", path.display()),
        }
    }
}

/// A side is written as on the command line (`tract`, `saved:PATH#RUNNER`).
impl serde::Serialize for SideSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.describe())
    }
}

impl<'de> serde::Deserialize<'de> for SideSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<SideSpec, D::Error> {
        let text = String::deserialize(d)?;
        SideSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Saved results opened for reading.
pub enum Side {
    /// A trtlens run directory (memory-mapped).
    Run(Box<RunDir>),
    /// One runner of a Polygraphy `RunResults` file: its structure indexed, each tensor decoded
    /// from the file when it is read ([`LazyResults`]).
    Polygraphy {
        /// The file.
        path: PathBuf,
        /// Runner name inside the file.
        runner: String,
        /// The indexed file.
        results: Box<LazyResults>,
        /// Which of its runners.
        index: usize,
    },
}

/// One iteration of one side.
pub enum IterationTensors<'a> {
    /// Mapped from a run directory.
    Mapped(MappedTensors),
    /// Indexed in a Polygraphy file, decoded on demand.
    Polygraphy {
        /// The file.
        results: &'a LazyResults,
        /// The iteration's outputs.
        iteration: &'a LazyIteration,
    },
}

/// One tensor read from a side: borrowed from a memory map, or decoded into its own buffer.
pub struct TensorData<'a> {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: &'a [usize],
    data: Data<'a>,
}

enum Data<'a> {
    Mapped(&'a [u8]),
    Decoded(Loaded<'a>),
}

impl TensorData<'_> {
    /// Borrow it as a view.
    #[must_use]
    pub fn view(&self) -> TensorView<'_> {
        let data = match &self.data {
            Data::Mapped(d) => d,
            Data::Decoded(l) => l.bytes(),
        };
        TensorView { dtype: self.dtype, shape: self.shape, data }
    }
}

impl IterationTensors<'_> {
    /// Read a tensor by exact name (`None` when absent). Polygraphy tensors are decoded here.
    pub fn get(&self, name: &str) -> Result<Option<TensorData<'_>>> {
        match self {
            IterationTensors::Mapped(m) => {
                Ok(m.view(name).map(|v| TensorData { dtype: v.dtype, shape: v.shape, data: Data::Mapped(v.data) }))
            }
            IterationTensors::Polygraphy { results, iteration } => {
                let Some(a) = iteration.get(name) else { return Ok(None) };
                let loaded = results.load(name, a)?;
                Ok(Some(TensorData { dtype: a.dtype(), shape: a.shape(), data: Data::Decoded(loaded) }))
            }
        }
    }

    /// The dtype and shape of a tensor without reading it.
    #[must_use]
    pub fn meta(&self, name: &str) -> Option<(DType, &[usize])> {
        match self {
            IterationTensors::Mapped(m) => m.view(name).map(|v| (v.dtype, v.shape)),
            IterationTensors::Polygraphy { iteration, .. } => iteration.get(name).map(|a| (a.dtype(), a.shape())),
        }
    }

    /// Give a tensor's pages back to the system once it has been read (it can be read again).
    pub fn release(&self, name: &str) {
        match self {
            IterationTensors::Mapped(m) => m.release(name),
            IterationTensors::Polygraphy { results, iteration } => {
                if let Some(a) = iteration.get(name) {
                    results.release(a);
                }
            }
        }
    }
}

impl Side {
    /// Open saved results.
    pub fn open(path: &Path, runner: Option<&str>) -> Result<Side> {
        if path.is_dir() {
            if runner.is_some() {
                return Err(Error::usage(format!(
                    "{}: '#RUNNER' only applies to Polygraphy JSON files",
                    path.display()
                )));
            }
            return Ok(Side::Run(Box::new(RunDir::open(path)?)));
        }
        if !path.exists() {
            return Err(Error::store(
                path,
                "does not exist (saved: wants a trtlens run directory or a Polygraphy JSON file)",
            ));
        }
        let results = LazyResults::open(path)?;
        let names: Vec<String> = results.runners.iter().map(|r| r.name.clone()).collect();
        let index = pick_runner(path, &names, runner)?;
        Ok(Side::Polygraphy {
            path: path.to_path_buf(),
            runner: names[index].clone(),
            results: Box::new(results),
            index,
        })
    }

    /// The precision plan recorded by the run, if any.
    #[must_use]
    pub fn plan(&self) -> Option<String> {
        match self {
            Side::Run(r) => r.manifest.runner.plan.clone(),
            Side::Polygraphy { .. } => None,
        }
    }

    /// The out-of-range policy and the values it concerned, recorded by a converting runner.
    #[must_use]
    pub fn conversion(&self) -> Option<crate::precision::RangeConversion> {
        match self {
            Side::Run(r) => r.manifest.runner.conversion.clone(),
            Side::Polygraphy { .. } => None,
        }
    }

    /// The backend settings recorded by the run.
    #[must_use]
    pub fn settings(&self) -> Option<crate::runner::RunnerSettings> {
        match self {
            Side::Run(r) => r.manifest.runner.settings.clone(),
            Side::Polygraphy { .. } => None,
        }
    }

    /// Runner name and version.
    #[must_use]
    pub fn runner(&self) -> (String, String) {
        match self {
            Side::Run(r) => (r.manifest.runner.name.clone(), r.manifest.runner.version.clone()),
            Side::Polygraphy { runner, .. } => (format!("polygraphy:{runner}"), String::new()),
        }
    }

    /// Where it was loaded from.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Side::Run(r) => &r.path,
            Side::Polygraphy { path, .. } => path,
        }
    }

    /// The iterations of a Polygraphy side.
    fn polygraphy_iterations(&self) -> &[LazyIteration] {
        match self {
            Side::Run(_) => &[],
            Side::Polygraphy { results, index, .. } => &results.runners[*index].iterations,
        }
    }

    /// Number of iterations.
    #[must_use]
    pub fn iterations(&self) -> usize {
        match self {
            Side::Run(r) => r.iterations(),
            Side::Polygraphy { .. } => self.polygraphy_iterations().len(),
        }
    }

    /// Tensor names in the side's own order (topological for both trtlens and Polygraphy).
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        match self {
            Side::Run(r) => r.manifest.tensors.iter().map(|t| t.name.clone()).collect(),
            Side::Polygraphy { .. } => self
                .polygraphy_iterations()
                .first()
                .map(|it| it.outputs.iter().map(|(n, _)| n.clone()).collect())
                .unwrap_or_default(),
        }
    }

    /// Dtype of a tensor (first iteration).
    #[must_use]
    pub fn dtype(&self, name: &str) -> Option<DType> {
        match self {
            Side::Run(r) => r.entry(name).map(|e| e.dtype),
            Side::Polygraphy { .. } => self.polygraphy_iterations().first()?.get(name).map(LazyArray::dtype),
        }
    }

    /// Model sha256 when known.
    #[must_use]
    pub fn model_sha256(&self) -> Option<&str> {
        match self {
            Side::Run(r) => Some(&r.manifest.model.sha256),
            Side::Polygraphy { .. } => None,
        }
    }

    /// The inputs used, when the side recorded them.
    pub fn inputs(&self) -> Result<Option<Vec<Tensors>>> {
        match self {
            Side::Run(r) => r.load_inputs().map(Some),
            Side::Polygraphy { .. } => Ok(None),
        }
    }

    /// Tensors of iteration `it`.
    pub fn iteration(&self, it: usize) -> Result<IterationTensors<'_>> {
        match self {
            Side::Run(r) => r.tensors(it).map(IterationTensors::Mapped),
            Side::Polygraphy { results, path, .. } => self
                .polygraphy_iterations()
                .get(it)
                .map(|iteration| IterationTensors::Polygraphy { results, iteration })
                .ok_or_else(|| Error::store(path, format!("iteration {it} does not exist"))),
        }
    }
}

fn pick_runner(path: &Path, names: &[String], want: Option<&str>) -> Result<usize> {
    if names.is_empty() {
        return Err(Error::store(path, "the Polygraphy results hold no runner"));
    }
    let idx = match want {
        None if names.len() == 1 => 0,
        None => {
            return Err(Error::usage(format!(
                "{} holds several runners ({}); pick one with saved:{}#RUNNER (a name or an index)",
                path.display(),
                names.join(", "),
                path.display()
            )));
        }
        Some(w) => names
            .iter()
            .position(|n| n == w)
            .or_else(|| w.parse::<usize>().ok().filter(|i| *i < names.len()))
            .ok_or_else(|| {
            Error::usage(format!("{}: no runner '{w}' (runners: {})", path.display(), names.join(", ")))
        })?,
    };
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_side_specs() -> Result<()> {
        assert_eq!(SideSpec::parse("tract")?, SideSpec::Runner(RunnerKind::Tract));
        assert_eq!(SideSpec::parse("ORT")?, SideSpec::Runner(RunnerKind::Onnxruntime));
        assert_eq!(SideSpec::parse("saved:a/b")?, SideSpec::Saved { path: "a/b".into(), runner: None });
        assert_eq!(
            SideSpec::parse("saved:out.json#trt-runner")?,
            SideSpec::Saved { path: "out.json".into(), runner: Some("trt-runner".into()) }
        );
        assert!(SideSpec::parse("saved:").is_err());
        assert_eq!(SideSpec::parse("tensorrt-rtx")?, SideSpec::Runner(RunnerKind::TensorrtRtx));
        assert_eq!(SideSpec::parse("trt")?, SideSpec::Runner(RunnerKind::Tensorrt));
        assert!(SideSpec::parse("tensorrt9").is_err_and(|e| e.to_string().contains("saved:PATH")));
        Ok(())
    }
}
