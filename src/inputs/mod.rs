//! Model inputs: seeded random data (Polygraphy-like defaults), shape overrides for dynamic
//! dimensions, loading from files, and validation against the model's declared inputs.
//!
//! Random data is reproducible: each input of each iteration gets its own stream derived from the
//! seed, the iteration number and the input name, so adding an input or reordering them does not
//! change the others. Defaults: floats uniform in `[0, 1)` (like Polygraphy), integers uniform in
//! `[0, 1]` (inclusive: a valid token id, mask value or index for almost any model), bools 50/50.

pub mod rng;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::model::graph::{Dim, dims_string};
use crate::model::proto::data_type;
use crate::runner::Tensors;
use crate::tensor::{DType, Tensor, numel, shape_string};
use rng::Rng;

/// The default seed (same as Polygraphy's default data-loader seed).
pub const DEFAULT_SEED: u64 = 1;

/// A value range for random data. `name: None` applies to every input without its own range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValRange {
    /// Input name, or None for all.
    pub name: Option<String>,
    /// Lower bound (inclusive).
    pub lo: f64,
    /// Upper bound (exclusive for floats, inclusive for integers).
    pub hi: f64,
}

/// Parse `NAME:LO,HI`, `NAME:[LO,HI]`, `LO,HI` or `[LO,HI]`.
pub fn parse_val_range(s: &str) -> Result<ValRange> {
    let bad =
        || Error::usage(format!("--val-range '{s}': expected NAME:LO,HI (or LO,HI for every input), e.g. input:0,1"));
    let (name, range) = match s.rsplit_once(':') {
        Some((n, r)) => (Some(n.to_string()), r),
        None => (None, s),
    };
    let range = range.trim().trim_start_matches('[').trim_end_matches(']');
    let (lo, hi) = range.split_once(',').ok_or_else(bad)?;
    let lo: f64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: f64 = hi.trim().parse().map_err(|_| bad())?;
    if !(lo.is_finite() && hi.is_finite()) || lo > hi {
        return Err(Error::usage(format!("--val-range '{s}': need finite LO <= HI")));
    }
    Ok(ValRange { name, lo, hi })
}

/// Parse `NAME:1x3x224x224` (also `NAME:1,3,224,224`; `NAME:scalar` for rank 0).
pub fn parse_shape(s: &str) -> Result<(String, Vec<usize>)> {
    let bad = || Error::usage(format!("--shape '{s}': expected NAME:DIMS such as input:1x3x224x224"));
    let (name, dims) = s.rsplit_once(':').ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    let dims = dims.trim().trim_start_matches('[').trim_end_matches(']');
    if dims.is_empty() || dims == "scalar" {
        return Ok((name.to_string(), vec![]));
    }
    let parsed: std::result::Result<Vec<usize>, _> =
        dims.split(['x', ',']).map(|d| d.trim().parse::<usize>()).collect();
    Ok((name.to_string(), parsed.map_err(|_| bad())?))
}

/// Where inputs come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputOptions {
    /// Seed for random data.
    pub seed: u64,
    /// Value ranges.
    pub val_ranges: Vec<ValRange>,
    /// Concrete shapes for inputs (required for dynamic dimensions).
    pub shapes: BTreeMap<String, Vec<usize>>,
    /// Number of random iterations (ignored when loading a file, which brings its own).
    pub iterations: usize,
    /// Load inputs from this file (`.npz`, `.safetensors`, Polygraphy JSON) or run directory.
    pub load: Option<PathBuf>,
}

/// A description of the inputs, stored in manifests and reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSource {
    /// `random` or `file`.
    pub kind: String,
    /// The file loaded, when `kind == "file"`.
    pub path: Option<String>,
    /// Seed used for random data.
    pub seed: Option<u64>,
    /// Value ranges used for random data.
    pub val_ranges: Vec<ValRange>,
    /// Shape of each input (first iteration).
    pub shapes: BTreeMap<String, Vec<usize>>,
    /// Number of iterations.
    pub iterations: usize,
}

/// Inputs for every iteration plus warnings worth showing (NaN/Inf in loaded data, ...).
#[derive(Debug, Clone)]
pub struct InputSet {
    /// One entry per iteration, each every data input of the model in declaration order.
    pub iterations: Vec<Tensors>,
    /// Where they came from.
    pub source: InputSource,
    /// Things the user should know (never fatal).
    pub warnings: Vec<String>,
}

/// The declared dtype of a model input, as a [`DType`].
fn input_dtype(model: &Model, name: &str) -> Result<DType> {
    let t = &model.graph.tensors[name];
    let Some(e) = t.ty.elem_type else {
        return Err(Error::input(format!("input '{name}' has no declared element type ({} input)", t.ty.kind)));
    };
    DType::from_onnx(e).ok_or_else(|| {
        Error::input(format!("input '{name}' has element type {}, which trtlens cannot feed", data_type::name(e)))
    })
}

/// Every data input of the model with its dtype and concrete shape (declared, dynamic dims from
/// `shapes`), in declaration order: what a runner or engine build needs before any data exists.
pub fn input_specs(model: &Model, shapes: &BTreeMap<String, Vec<usize>>) -> Result<Vec<(String, DType, Vec<usize>)>> {
    model
        .graph
        .inputs
        .iter()
        .map(|n| Ok((n.clone(), input_dtype(model, n)?, resolve_shape(model, n, shapes)?)))
        .collect()
}

/// Concrete shape of input `name`: the declared shape with dynamic dims taken from `--shape`.
fn resolve_shape(model: &Model, name: &str, overrides: &BTreeMap<String, Vec<usize>>) -> Result<Vec<usize>> {
    let t = &model.graph.tensors[name];
    let given = overrides.get(name);
    let Some(decl) = &t.ty.shape else {
        return given.cloned().ok_or_else(|| {
            Error::input(format!(
                "input '{name}' has no declared shape: give it with --shape {name}:DIMS (e.g. 1x3x224x224)"
            ))
        });
    };
    if let Some(g) = given {
        check_shape_against(name, decl, g).map_err(|m| Error::usage(format!("--shape {name}: {m}")))?;
        return Ok(g.clone());
    }
    decl.iter()
        .enumerate()
        .map(|(axis, d)| match d {
            Dim::Fixed(v) if *v >= 0 => Ok(*v as usize),
            _ => Err(Error::input(format!(
                "input '{name}' has a dynamic dimension '{d}' (axis {axis} of {}): give a concrete shape with --shape {name}:{}",
                dims_string(decl),
                decl.iter().map(|d| if let Dim::Fixed(v) = d { v.to_string() } else { "N".into() }).collect::<Vec<_>>().join("x")
            ))),
        })
        .collect()
}

fn check_shape_against(name: &str, decl: &[Dim], got: &[usize]) -> std::result::Result<(), String> {
    if decl.len() != got.len() {
        return Err(format!(
            "rank {} ({}) does not match the model's declared rank {} ({}) for '{name}'",
            got.len(),
            shape_string(got),
            decl.len(),
            dims_string(decl)
        ));
    }
    for (axis, (d, g)) in decl.iter().zip(got).enumerate() {
        if let Dim::Fixed(v) = d
            && *v >= 0
            && *v as usize != *g
        {
            return Err(format!(
                "axis {axis} is {g} but the model fixes it to {v} (declared {}, got {})",
                dims_string(decl),
                shape_string(got)
            ));
        }
    }
    Ok(())
}

fn range_for<'a>(ranges: &'a [ValRange], name: &str) -> Option<&'a ValRange> {
    ranges
        .iter()
        .rev()
        .find(|r| r.name.as_deref() == Some(name))
        .or_else(|| ranges.iter().rev().find(|r| r.name.is_none()))
}

/// Random tensor of `dtype` and `shape`.
#[must_use]
pub fn random_tensor(rng: &mut Rng, dtype: DType, shape: &[usize], range: Option<(f64, f64)>) -> Tensor {
    let n = numel(shape);
    let mut data = Vec::with_capacity(n * dtype.size());
    if dtype.is_float() {
        let (lo, hi) = range.unwrap_or((0.0, 1.0));
        for _ in 0..n {
            let v = lo + (hi - lo) * rng.next_f64();
            match dtype {
                DType::Float32 => data.extend_from_slice(&(v as f32).to_le_bytes()),
                DType::Float16 => data.extend_from_slice(&half::f16::from_f64(v).to_le_bytes()),
                DType::Bfloat16 => data.extend_from_slice(&half::bf16::from_f64(v).to_le_bytes()),
                _ => data.extend_from_slice(&v.to_le_bytes()),
            }
        }
    } else if dtype == DType::Bool {
        let (lo, hi) = range.unwrap_or((0.0, 1.0));
        for _ in 0..n {
            let v = if lo >= 1.0 {
                1
            } else if hi < 1.0 {
                0
            } else {
                u8::from(rng.next_u64() & 1 == 1)
            };
            data.push(v);
        }
    } else {
        let (lo, hi) = range.map_or((0i64, 1i64), |(l, h)| (l.ceil() as i64, h.floor() as i64));
        let span = (hi - lo).max(0) as u64 + 1;
        for _ in 0..n {
            let v = lo + (rng.next_u64() % span) as i64;
            match dtype.size() {
                1 => data.push(v as u8),
                2 => data.extend_from_slice(&(v as u16).to_le_bytes()),
                4 => data.extend_from_slice(&(v as u32).to_le_bytes()),
                _ => data.extend_from_slice(&v.to_le_bytes()),
            }
        }
    }
    // Sizes match by construction.
    Tensor::from_bytes(dtype, shape.to_vec(), data).unwrap_or_else(|_| Tensor::zeros(dtype, shape.to_vec()))
}

/// Build the inputs for a run.
pub fn prepare(model: &Model, opts: &InputOptions) -> Result<InputSet> {
    for name in opts.shapes.keys() {
        if !model.graph.inputs.contains(name) {
            return Err(Error::usage(format!(
                "--shape names '{name}', which is not an input of the model (inputs: {})",
                model.graph.inputs.join(", ")
            )));
        }
    }
    for r in &opts.val_ranges {
        if let Some(n) = &r.name
            && !model.graph.inputs.contains(n)
        {
            return Err(Error::usage(format!(
                "--val-range names '{n}', which is not an input of the model (inputs: {})",
                model.graph.inputs.join(", ")
            )));
        }
    }
    let set = match &opts.load {
        Some(path) => load(model, path, opts)?,
        None => generate(model, opts)?,
    };
    Ok(set)
}

fn generate(model: &Model, opts: &InputOptions) -> Result<InputSet> {
    let iterations = opts.iterations.max(1);
    let mut specs = Vec::new();
    for name in &model.graph.inputs {
        specs.push((name.clone(), input_dtype(model, name)?, resolve_shape(model, name, &opts.shapes)?));
    }
    let mut out = Vec::with_capacity(iterations);
    for it in 0..iterations {
        let mut tensors = Vec::with_capacity(specs.len());
        for (name, dtype, shape) in &specs {
            let mut rng = Rng::for_stream(opts.seed, it as u64, name);
            let range = range_for(&opts.val_ranges, name).map(|r| (r.lo, r.hi));
            tensors.push((name.clone(), random_tensor(&mut rng, *dtype, shape, range)));
        }
        out.push(tensors);
    }
    Ok(InputSet {
        source: InputSource {
            kind: "random".into(),
            path: None,
            seed: Some(opts.seed),
            val_ranges: opts.val_ranges.clone(),
            shapes: specs.iter().map(|(n, _, s)| (n.clone(), s.clone())).collect(),
            iterations,
        },
        iterations: out,
        warnings: vec![],
    })
}

fn load(model: &Model, path: &Path, opts: &InputOptions) -> Result<InputSet> {
    let iterations = crate::io::export::load_any_inputs(path)?;
    if iterations.is_empty() {
        return Err(Error::input(format!("{}: the file holds no iterations", path.display())));
    }
    let mut warnings = Vec::new();
    let mut checked = Vec::with_capacity(iterations.len());
    for (it, tensors) in iterations.into_iter().enumerate() {
        checked.push(check_loaded(model, path, it, tensors, opts, &mut warnings)?);
    }
    let shapes = checked[0].iter().map(|(n, t)| (n.clone(), t.shape().to_vec())).collect();
    Ok(InputSet {
        source: InputSource {
            kind: "file".into(),
            path: Some(path.display().to_string()),
            seed: None,
            val_ranges: vec![],
            shapes,
            iterations: checked.len(),
        },
        iterations: checked,
        warnings,
    })
}

/// Check one loaded iteration against the model: every input present, no extra names, dtypes and
/// fixed dims as declared. Returns the tensors in the model's input order.
fn check_loaded(
    model: &Model,
    path: &Path,
    it: usize,
    mut tensors: Tensors,
    opts: &InputOptions,
    warnings: &mut Vec<String>,
) -> Result<Tensors> {
    let file = path.display();
    // A single unnamed array (a bare .npy) feeds a single-input model.
    if tensors.len() == 1 && tensors[0].0.is_empty() && model.graph.inputs.len() == 1 {
        tensors[0].0.clone_from(&model.graph.inputs[0]);
    }
    for (name, _) in &tensors {
        if !model.graph.inputs.contains(name) {
            let hint =
                if model.graph.tensors.contains_key(name) { " (it is not a data input of this model)" } else { "" };
            return Err(Error::input(format!(
                "{file}: iteration {it} has tensor '{name}', which is not an input of the model{hint}; model inputs: {}",
                model.graph.inputs.join(", ")
            )));
        }
    }
    let mut out = Vec::with_capacity(model.graph.inputs.len());
    for name in &model.graph.inputs {
        let Some(pos) = tensors.iter().position(|(n, _)| n == name) else {
            return Err(Error::input(format!("{file}: iteration {it} has no value for model input '{name}'")));
        };
        let (_, t) = tensors.swap_remove(pos);
        let want = input_dtype(model, name)?;
        if t.dtype() != want {
            return Err(Error::input(format!(
                "{file}: input '{name}' (iteration {it}) is {} but the model declares {want}; convert it (e.g. numpy .astype(np.{want}))",
                t.dtype()
            )));
        }
        if let Some(decl) = &model.graph.tensors[name].ty.shape {
            check_shape_against(name, decl, t.shape())
                .map_err(|m| Error::input(format!("{file}: input '{name}' (iteration {it}): {m}")))?;
        }
        if let Some(s) = opts.shapes.get(name)
            && s.as_slice() != t.shape()
        {
            return Err(Error::usage(format!(
                "--shape {name}:{} contradicts the loaded input's shape {}",
                shape_string(s),
                shape_string(t.shape())
            )));
        }
        let (nan, inf) = t.count_nonfinite();
        if nan + inf > 0 {
            warnings.push(format!("input '{name}' (iteration {it}) contains {nan} NaN and {inf} Inf values"));
        }
        out.push((name.clone(), t));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_val_ranges() -> Result<()> {
        assert_eq!(parse_val_range("x:0,1")?, ValRange { name: Some("x".into()), lo: 0.0, hi: 1.0 });
        assert_eq!(parse_val_range("in:0:[-2,2]")?, ValRange { name: Some("in:0".into()), lo: -2.0, hi: 2.0 });
        assert_eq!(parse_val_range("[-1, 1]")?, ValRange { name: None, lo: -1.0, hi: 1.0 });
        assert!(parse_val_range("x:1").is_err());
        assert!(parse_val_range("x:2,1").is_err());
        Ok(())
    }

    #[test]
    fn parses_shapes() -> Result<()> {
        assert_eq!(parse_shape("x:1x3x224x224")?, ("x".into(), vec![1, 3, 224, 224]));
        assert_eq!(parse_shape("a:b:2,3")?, ("a:b".into(), vec![2, 3]));
        assert_eq!(parse_shape("s:scalar")?, ("s".into(), vec![]));
        assert!(parse_shape("x:1xq").is_err());
        assert!(parse_shape("1x2").is_err());
        Ok(())
    }

    #[test]
    fn random_data_respects_ranges() {
        let mut rng = Rng::for_stream(1, 0, "x");
        let f = random_tensor(&mut rng, DType::Float32, &[1000], Some((-2.0, -1.0)));
        assert!(f.to_f64_vec().iter().all(|v| (-2.0..-1.0).contains(v)));
        let i = random_tensor(&mut rng, DType::Int64, &[1000], Some((3.0, 5.0)));
        let vals = i.to_f64_vec();
        assert!(vals.iter().all(|v| (3.0..=5.0).contains(v)));
        assert!(vals.contains(&3.0) && vals.contains(&5.0), "integer ranges are inclusive");
        let b = random_tensor(&mut rng, DType::Bool, &[100], None);
        let ones = b.bytes().iter().filter(|&&x| x == 1).count();
        assert!((20..80).contains(&ones));
    }
}
