//! Cross-checks of the reference runners on every bundled sample:
//! - tract and ONNX Runtime agree on every captured tensor (same names, dtypes, shapes; values within
//!   [`TRACT_TOL`] of each tensor's magnitude);
//! - the `onnxruntime` runner matches Polygraphy's own capture (`polygraphy run --onnxrt --onnx-outputs
//!   mark all`) on Polygraphy's inputs to float32 precision ([`ORT_TOL`]), and tract matches it within
//!   [`TRACT_TOL`]. For a model whose `If`s trtlens specializes, Polygraphy runs the specialized
//!   model (on the same inputs), so the tensors inside the inlined branches are checked too.
//!
//! Needs `pip install -r .ci/requirements.txt`. Missing tools make a test fail under CI (env `CI`)
//! and print `skipped` otherwise.

mod common;
use common::in_ci;
use std::path::{Path, PathBuf};
use std::process::Command;

use trtlens::inputs::InputOptions;
use trtlens::model::Model;
use trtlens::run::{RunRequest, capture_list, executable};
use trtlens::runner::{self, RunnerKind, RunnerOptions, Tensors};
use trtlens::tensor::Tensor;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Tolerance of a whole tensor: `max |a - b| <= rtol * max |reference| + atol`, i.e. relative to the
/// tensor's magnitude, with an absolute floor for tensors whose values are all tiny (a saturated
/// sigmoid near 1e-6 is computed with different approximations by different runtimes).
#[derive(Clone, Copy)]
struct Tol {
    rtol: f64,
    atol: f64,
}

/// Our `onnxruntime` runner against Polygraphy's ONNX Runtime capture: float32 precision (the two
/// sessions differ only in graph optimisation level).
const ORT_TOL: Tol = Tol { rtol: 3e-5, atol: 1e-6 };
/// tract against ONNX Runtime: float32 arithmetic in another summation order and other
/// approximations of exp/tanh/sigmoid.
const TRACT_TOL: Tol = Tol { rtol: 1e-4, atol: 1e-6 };

/// In CI a missing prerequisite fails the test; elsewhere it is reported and skipped.
fn unavailable(what: &str) -> TestResult {
    if in_ci() {
        return Err(format!("{what} (CI must install it: pip install -r .ci/requirements.txt)").into());
    }
    println!("skipped: {what}");
    Ok(())
}

fn samples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "onnx")).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// (max |a - b|, max |reference|) over finite elements; an error string when the tensors are not
/// comparable (dtype, shape, non-finite values at different places, differing integers).
fn diff(name: &str, reference: &Tensor, other: &Tensor) -> Result<(f64, f64), String> {
    if reference.dtype() != other.dtype() || reference.shape() != other.shape() {
        return Err(format!(
            "{name}: {} {:?} vs {} {:?}",
            reference.dtype(),
            reference.shape(),
            other.dtype(),
            other.shape()
        ));
    }
    let (a, b) = (reference.to_f64_vec(), other.to_f64_vec());
    let mut mag = 0f64;
    let mut diff = 0f64;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if !x.is_finite() || !y.is_finite() {
            let same = (x.is_nan() && y.is_nan()) || x == y;
            if !same {
                return Err(format!("{name}[{i}]: {x} vs {y}"));
            }
            continue;
        }
        mag = mag.max(x.abs());
        diff = diff.max((x - y).abs());
    }
    if !reference.dtype().is_float() && diff > 0.0 {
        return Err(format!("{name}: integer tensors differ (max {diff})"));
    }
    Ok((diff, mag))
}

/// Compare two captures: identical name sets, every tensor within `tol`. Returns the largest
/// fraction of its tolerance any tensor uses (for the log; 1.0 would be at the limit).
fn compare(what: &str, reference: &Tensors, other: &Tensors, tol: Tol) -> Result<f64, String> {
    let rn: Vec<&str> = reference.iter().map(|(n, _)| n.as_str()).collect();
    let mut on: Vec<&str> = other.iter().map(|(n, _)| n.as_str()).collect();
    let mut rs = rn.clone();
    rs.sort_unstable();
    on.sort_unstable();
    if rs != on {
        return Err(format!("{what}: different tensor sets\n  reference: {rn:?}\n  other: {on:?}"));
    }
    let mut worst = 0f64;
    for (name, r) in reference {
        let o = runner::find(other, name).ok_or_else(|| format!("{what}: {name} missing"))?;
        let (d, mag) = diff(name, r, o).map_err(|e| format!("{what}: {e}"))?;
        if d > tol.rtol * mag + tol.atol {
            return Err(format!(
                "{what}: tensor {name} differs by {d:.3e} (magnitude {mag:.3e}; tolerance {:.0e} x magnitude + {:.0e})",
                tol.rtol, tol.atol
            ));
        }
        worst = worst.max(d / (tol.rtol * mag + tol.atol));
    }
    Ok(worst)
}

/// Seeded random inputs for a bundled sample (at its documented shape when its dims are symbolic).
fn sample_inputs(path: &Path) -> InputOptions {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    trtlens::samples::find(&stem)
        .map_or_else(|| InputOptions { seed: 1, iterations: 1, ..Default::default() }, |s| s.input_options(1))
}

/// Polygraphy's `--input-shapes` for a sample with symbolic dims (`images:[1,3,64,64]`).
fn polygraphy_shapes(path: &Path) -> Vec<String> {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let shapes: Vec<String> = trtlens::samples::find(&stem)
        .map(|s| {
            s.shapes
                .iter()
                .filter_map(|v| trtlens::inputs::parse_shape(v).ok())
                .map(|(n, d)| format!("{n}:[{}]", d.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")))
                .collect()
        })
        .unwrap_or_default();
    if shapes.is_empty() { shapes } else { std::iter::once("--input-shapes".to_string()).chain(shapes).collect() }
}

fn ort_available() -> bool {
    let Some(model) = samples().into_iter().next() else { return false };
    let Ok(m) = Model::load(&model) else { return false };
    runner::create(RunnerKind::Onnxruntime, &m, &[], &RunnerOptions::default()).is_ok()
}

fn run_with(kind: RunnerKind, model: &Model, inputs: &Tensors) -> Result<Tensors, Box<dyn std::error::Error>> {
    let mut r = runner::create(kind, model, &capture_list(model), &RunnerOptions::default())?;
    let out = r.run(inputs)?;
    if !out.not_captured.is_empty() {
        return Err(format!("{}: not captured: {:?}", kind.name(), out.not_captured).into());
    }
    Ok(out.tensors)
}

#[test]
fn tract_matches_onnxruntime_on_every_sample() -> TestResult {
    let samples = samples();
    assert!(samples.len() >= 6, "the bundled samples are missing");
    if !ort_available() {
        return unavailable("onnxruntime library not found");
    }
    for path in samples {
        let original = Model::load(&path)?;
        let inputs = trtlens::inputs::prepare(&original, &sample_inputs(&path))?;
        let feed = &inputs.iterations[0];
        // The model as `trtlens run` executes it (control flow specialized for these inputs).
        let exe = executable(&original, &inputs.iterations, true, &RunnerOptions::default())?;
        let model = &exe.model;
        let ort = run_with(RunnerKind::Onnxruntime, model, feed)?;
        let tract = run_with(RunnerKind::Tract, model, feed)?;
        assert_eq!(ort.len(), capture_list(model).len(), "every node output is captured");
        let worst = compare(&path.display().to_string(), &ort, &tract, TRACT_TOL)?;
        println!("{}: {} tensors, tract vs ORT uses {:.1}% of the tolerance", path.display(), ort.len(), worst * 100.0);
    }
    Ok(())
}

fn polygraphy() -> Option<PathBuf> {
    let out =
        Command::new("python3").args(["-c", "import shutil; print(shutil.which('polygraphy') or '')"]).output().ok()?;
    let p = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!p.is_empty()).then(|| PathBuf::from(p))
}

#[test]
fn onnxruntime_runner_matches_polygraphy_capture() -> TestResult {
    let Some(poly) = polygraphy() else { return unavailable("polygraphy not installed") };
    if !ort_available() {
        return unavailable("onnxruntime library not found");
    }
    let tmp = tempfile::tempdir()?;
    for path in samples() {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("m").to_string();
        let (inputs_json, theirs, model) = polygraphy_reference(&poly, &path, &polygraphy_shapes(&path), tmp.path())?;
        // Our two runners, fed Polygraphy's inputs through the CLI's path (--load-inputs JSON).
        let captures = [
            stored_run(RunnerKind::Onnxruntime, &path, &inputs_json, &tmp.path().join(format!("{stem}.ort")))?,
            stored_run(RunnerKind::Tract, &path, &inputs_json, &tmp.path().join(format!("{stem}.tract")))?,
        ];
        // Same names in the same (topological) order, same dtypes and shapes, float32-precision values.
        let their_names: Vec<&str> = theirs.iter().map(|(n, _)| n.as_str()).collect();
        let our_names = capture_list(&model);
        let mut a = their_names.clone();
        a.sort_unstable();
        let mut b: Vec<&str> = our_names.iter().map(String::as_str).collect();
        b.sort_unstable();
        assert_eq!(a, b, "{}: Polygraphy and trtlens capture different tensors", path.display());
        let ort = compare(&format!("{stem} onnxruntime vs polygraphy"), &theirs, &captures[0], ORT_TOL)?;
        let tract = compare(&format!("{stem} tract vs polygraphy"), &theirs, &captures[1], TRACT_TOL)?;
        println!(
            "{stem}: {} tensors; onnxruntime vs polygraphy {:.1}%, tract vs polygraphy {:.1}% of the tolerance",
            theirs.len(),
            ort * 100.0,
            tract * 100.0
        );
    }
    Ok(())
}

/// Polygraphy's capture of every tensor on its own random inputs, of the model as trtlens runs it on
/// those inputs: when trtlens specializes control flow, Polygraphy runs the specialized model (written
/// next to its inputs) on the same inputs. Returns (inputs.json, Polygraphy's tensors, that model).
fn polygraphy_reference(
    poly: &Path,
    model: &Path,
    extra: &[String],
    dir: &Path,
) -> Result<(PathBuf, Tensors, Model), Box<dyn std::error::Error>> {
    let (inputs_json, outputs_json) = polygraphy_capture(poly, model, extra, dir)?;
    let original = Model::load(model)?;
    let inputs = trtlens::inputs::prepare(
        &original,
        &InputOptions { load: Some(inputs_json.clone()), iterations: 1, ..Default::default() },
    )?;
    let outcome = trtlens::model::specialize::decide(&original, &inputs.iterations, &RunnerOptions::default())?;
    let Some(proto) = outcome.proto else {
        let results = trtlens::io::polygraphy::read_run_results(&std::fs::read(&outputs_json)?)?;
        return Ok((inputs_json, results.runners[0].iterations[0].outputs.clone(), original));
    };
    let specialized = trtlens::model::specialize::materialize(&original, proto, dir)?;
    let mut again = extra.to_vec();
    again.extend(["--load-inputs".to_string(), inputs_json.display().to_string()]);
    let (_, outputs_json) = polygraphy_capture(poly, &specialized.path, &again, dir)?;
    let results = trtlens::io::polygraphy::read_run_results(&std::fs::read(&outputs_json)?)?;
    Ok((inputs_json, results.runners[0].iterations[0].outputs.clone(), specialized))
}

/// A real trained model and how to feed it.
struct RealModel {
    file: &'static str,
    /// Polygraphy `--input-shapes` values.
    shapes: &'static [&'static str],
    /// Polygraphy `--val-range` values.
    val_ranges: &'static [&'static str],
    /// `Some(reason)` when tract is known not to run the model (the test checks it still fails, so a
    /// fix upstream is noticed).
    tract_fails: Option<&'static str>,
}

const REAL_MODELS: &[RealModel] = &[
    RealModel {
        file: "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        shapes: &["x:[1,3,48,192]"],
        val_ranges: &[],
        tract_fails: None,
    },
    RealModel { file: "ch_PP-OCRv4_det_infer.onnx", shapes: &["x:[1,3,160,160]"], val_ranges: &[], tract_fails: None },
    RealModel { file: "ch_PP-OCRv4_rec_infer.onnx", shapes: &["x:[1,3,48,160]"], val_ranges: &[], tract_fails: None },
    // The Silero models put (part of) the network inside If nodes chosen by `sr` or by shapes:
    // tract runs them once trtlens inlines the branches the inputs select.
    RealModel {
        file: "silero_vad.onnx",
        shapes: &["input:[1,512]", "state:[2,1,128]"],
        val_ranges: &["input:[-1,1]", "sr:[16000,16000]"],
        tract_fails: None,
    },
    RealModel {
        file: "silero_vad_16k_op15.onnx",
        shapes: &["input:[1,512]", "state:[2,1,128]"],
        val_ranges: &["input:[-1,1]", "sr:[16000,16000]"],
        tract_fails: None,
    },
    RealModel {
        file: "silero_vad_op18_ifless.onnx",
        shapes: &["input:[1,512]", "state:[2,1,128]"],
        val_ranges: &["input:[-1,1]", "sr:[16000,16000]"],
        tract_fails: None,
    },
    RealModel {
        file: "silero_vad_openvino_16k.onnx",
        shapes: &[],
        val_ranges: &["input:[-1,1]"],
        tract_fails: Some("duplicate node names after function inlining"),
    },
];

/// Polygraphy's capture of every tensor on its own random inputs; returns (inputs.json, outputs.json).
fn polygraphy_capture(
    poly: &Path,
    model: &Path,
    extra: &[String],
    dir: &Path,
) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let stem = model.file_stem().and_then(|s| s.to_str()).unwrap_or("m").to_string();
    let inputs_json = dir.join(format!("{stem}.inputs.json"));
    let outputs_json = dir.join(format!("{stem}.outputs.json"));
    let out = Command::new(poly)
        .arg("run")
        .arg(model)
        .args(["--onnxrt", "--onnx-outputs", "mark", "all", "--silent", "--save-inputs"])
        .arg(&inputs_json)
        .arg("--save-outputs")
        .arg(&outputs_json)
        .args(extra)
        .output()?;
    if !out.status.success() {
        return Err(
            format!("polygraphy failed on {}: {}", model.display(), String::from_utf8_lossy(&out.stderr)).into()
        );
    }
    Ok((inputs_json, outputs_json))
}

/// Run `kind` through the library's `run` job on Polygraphy's inputs and read every stored tensor back.
fn stored_run(
    kind: RunnerKind,
    model: &Path,
    inputs_json: &Path,
    save: &Path,
) -> Result<Tensors, Box<dyn std::error::Error>> {
    let req = RunRequest {
        model: model.to_path_buf(),
        runner: kind,
        inputs: InputOptions { load: Some(inputs_json.to_path_buf()), iterations: 1, ..Default::default() },
        runner_options: RunnerOptions::default(),
        save: save.to_path_buf(),
        specialize: true,
    };
    trtlens::run::run(&req, &mut |_| {})?;
    let run = trtlens::store::RunDir::open(save)?;
    if !run.manifest.not_captured.is_empty() {
        return Err(format!("{}: not captured: {:?}", kind.name(), run.manifest.not_captured).into());
    }
    let m = run.tensors(0)?;
    let mut tensors = Vec::new();
    for e in &run.manifest.tensors {
        tensors.push((e.name.clone(), m.get(&e.name)?.ok_or("tensor listed but not stored")?));
    }
    Ok(tensors)
}

#[test]
fn real_models_match_polygraphy() -> TestResult {
    let Some(dir) = std::env::var_os("TRTLENS_REAL_MODELS").map(PathBuf::from) else {
        println!("skipped: TRTLENS_REAL_MODELS not set (scripts/real-models sets it)");
        return Ok(());
    };
    let Some(poly) = polygraphy() else { return unavailable("polygraphy not installed") };
    let tmp = tempfile::tempdir()?;
    let mut checked = 0;
    for rm in REAL_MODELS {
        let path = dir.join(rm.file);
        assert!(path.is_file(), "{} missing from {}", rm.file, dir.display());
        // Polygraphy takes every value of a flag after one occurrence (a repeated flag replaces).
        let mut extra = Vec::new();
        for (flag, values) in [("--input-shapes", rm.shapes), ("--val-range", rm.val_ranges)] {
            if !values.is_empty() {
                extra.push(flag.to_string());
                extra.extend(values.iter().map(ToString::to_string));
            }
        }
        let (inputs_json, theirs, model) = polygraphy_reference(&poly, &path, &extra, tmp.path())?;
        let theirs = &theirs;

        let ort =
            stored_run(RunnerKind::Onnxruntime, &path, &inputs_json, &tmp.path().join(format!("{}.ort", rm.file)))?;
        assert_eq!(ort.len(), capture_list(&model).len(), "{}: every node output is captured", rm.file);
        let d_ort = compare(&format!("{} onnxruntime vs polygraphy", rm.file), theirs, &ort, ORT_TOL)?;
        let tract = stored_run(RunnerKind::Tract, &path, &inputs_json, &tmp.path().join(format!("{}.tract", rm.file)));
        let tract_note = match (tract, rm.tract_fails) {
            (Ok(t), None) => {
                let d = compare(&format!("{} tract vs polygraphy", rm.file), theirs, &t, TRACT_TOL)?;
                format!("tract vs polygraphy {:.1}%", d * 100.0)
            }
            (Err(e), Some(reason)) => format!("tract fails as known ({reason}): {e}"),
            (Ok(_), Some(reason)) => {
                return Err(format!("{}: tract now runs it; drop the known failure '{reason}'", rm.file).into());
            }
            (Err(e), None) => return Err(format!("{}: tract failed: {e}", rm.file).into()),
        };
        println!(
            "{}: {} tensors; onnxruntime vs polygraphy {:.1}%; {tract_note}",
            rm.file,
            theirs.len(),
            d_ort * 100.0
        );
        checked += 1;
    }
    println!("real models checked: {checked}");
    Ok(())
}
