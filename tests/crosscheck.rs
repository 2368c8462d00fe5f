//! Cross-checks of the reference runners on every bundled sample:
//! - tract and ONNX Runtime agree on every captured tensor (same names, dtypes, shapes; values within
//!   [`TRACT_TOL`] of each tensor's magnitude);
//! - the `onnxruntime` runner matches Polygraphy's own capture (`polygraphy run --onnxrt --onnx-outputs
//!   mark all`) on Polygraphy's inputs to float32 precision ([`ORT_TOL`]), and tract matches it within
//!   [`TRACT_TOL`].
//!
//! Needs `pip install -r .ci/requirements.txt`. Missing tools make a test fail under CI (env `CI`)
//! and print `skipped` otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use trtlens::inputs::InputOptions;
use trtlens::model::Model;
use trtlens::run::{RunRequest, capture_list};
use trtlens::runner::{self, RunnerKind, RunnerOptions, Tensors};
use trtlens::tensor::Tensor;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Largest allowed `max |a - b| / max(max |reference|, 1e-30)` for the two ONNX Runtime captures
/// (ours and Polygraphy's): float32 precision, allowing for different graph optimisation levels.
const ORT_TOL: f64 = 1e-6;
/// The same measure for tract against ONNX Runtime: float32 arithmetic in another summation order.
const TRACT_TOL: f64 = 1e-5;

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

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

/// Magnitude-relative difference of two tensors; an error string when they are not comparable.
fn rel_diff(name: &str, reference: &Tensor, other: &Tensor) -> Result<f64, String> {
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
    Ok(if diff == 0.0 { 0.0 } else { diff / mag.max(1e-30) })
}

/// Compare two captures: identical name lists, every tensor within `tol`. Returns the worst value.
fn compare(what: &str, reference: &Tensors, other: &Tensors, tol: f64) -> Result<f64, String> {
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
        let d = rel_diff(name, r, o).map_err(|e| format!("{what}: {e}"))?;
        if d > tol {
            return Err(format!("{what}: tensor {name} differs by {d:.3e} of its magnitude (tolerance {tol:.0e})"));
        }
        worst = worst.max(d);
    }
    Ok(worst)
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
        let model = Model::load(&path)?;
        let inputs = trtlens::inputs::prepare(&model, &InputOptions { seed: 1, iterations: 1, ..Default::default() })?;
        let feed = &inputs.iterations[0];
        let ort = run_with(RunnerKind::Onnxruntime, &model, feed)?;
        let tract = run_with(RunnerKind::Tract, &model, feed)?;
        assert_eq!(ort.len(), capture_list(&model).len(), "every node output is captured");
        let worst = compare(&path.display().to_string(), &ort, &tract, TRACT_TOL)?;
        println!("{}: {} tensors, worst tract/ORT difference {worst:.2e} of magnitude", path.display(), ort.len());
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
        let inputs_json = tmp.path().join(format!("{stem}.inputs.json"));
        let outputs_json = tmp.path().join(format!("{stem}.outputs.json"));
        let status = Command::new(&poly)
            .arg("run")
            .arg(&path)
            .args(["--onnxrt", "--onnx-outputs", "mark", "all", "--silent", "--save-inputs"])
            .arg(&inputs_json)
            .arg("--save-outputs")
            .arg(&outputs_json)
            .status()?;
        assert!(status.success(), "polygraphy failed on {}", path.display());

        // Our two runners, fed Polygraphy's inputs through the CLI path (--load-inputs JSON).
        let model = Model::load(&path)?;
        let mut captures = Vec::new();
        for kind in [RunnerKind::Onnxruntime, RunnerKind::Tract] {
            let save = tmp.path().join(format!("{stem}.{}", kind.name()));
            let req = RunRequest {
                model: path.clone(),
                runner: kind,
                inputs: InputOptions { load: Some(inputs_json.clone()), iterations: 1, ..Default::default() },
                runner_options: RunnerOptions::default(),
                save: save.clone(),
            };
            trtlens::run::run(&req, &mut |_| {})?;
            let run = trtlens::store::RunDir::open(&save)?;
            let m = run.tensors(0)?;
            let mut tensors = Vec::new();
            for e in &run.manifest.tensors {
                tensors.push((e.name.clone(), m.get(&e.name)?.ok_or("tensor listed but not stored")?));
            }
            captures.push(tensors);
        }

        let results = trtlens::io::polygraphy::read_run_results(&std::fs::read(&outputs_json)?)?;
        let theirs = &results.runners[0].iterations[0].outputs;
        // Same names in the same (topological) order, same dtypes and shapes, float32-precision values.
        let their_names: Vec<&str> = theirs.iter().map(|(n, _)| n.as_str()).collect();
        let our_names = capture_list(&model);
        let mut a = their_names.clone();
        a.sort_unstable();
        let mut b: Vec<&str> = our_names.iter().map(String::as_str).collect();
        b.sort_unstable();
        assert_eq!(a, b, "{}: Polygraphy and trtlens capture different tensors", path.display());
        let ort = compare(&format!("{stem} onnxruntime vs polygraphy"), theirs, &captures[0], ORT_TOL)?;
        let tract = compare(&format!("{stem} tract vs polygraphy"), theirs, &captures[1], TRACT_TOL)?;
        println!(
            "{stem}: {} tensors; onnxruntime vs polygraphy {ort:.2e}, tract vs polygraphy {tract:.2e}",
            theirs.len()
        );
    }
    Ok(())
}
