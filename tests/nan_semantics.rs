//! NaN, ±inf and ±0 through every op the samples, the ONNX node tests and common exports use, on
//! both CPU runners: tract (with trtlens' NaN/infinity rewrite, `src/runner/ieee.rs`) and ONNX
//! Runtime. A table of cases, each a one-node (or two-node) model fed rows holding NaN, ±inf, ±0
//! and ordinary values; every case requires tract's result to equal ONNX Runtime's (NaN equal to
//! NaN, infinities by sign, ±0 equal, approximated functions within 1e-6 + 1e-5·|x| on finite
//! values). The cases are the library's probes (`trtlens::samples::probes::nan_ops`, also written
//! for `scripts/fidelity`). The same table run on tract *without* the rewrite shows what the
//! rewrite fixes: it must differ from ONNX Runtime on exactly the cases listed in `FIXED`.
//!
//! ONNX Runtime's CPU max-reductions and `ArgMax`/`ArgMin` have no stable NaN rule (they return NaN
//! or the index of a NaN only when it is the first element scanned, and can return an unrelated
//! element otherwise). For them trtlens follows `NumPy` (NaN wins); the test requires tract to equal
//! `NumPy`'s rule on every row and ONNX Runtime on the rows where ONNX Runtime follows it (no NaN, or
//! NaN first), and prints the rows where ONNX Runtime does not. `MaxPool`, `GlobalMaxPool` and
//! `TopK` are fed rows without NaN for the same reason (ONNX Runtime's result depends on where the
//! NaN sits); `Hardmax` is left out (ONNX Runtime's CPU `Hardmax` returns a row of zeros for a row
//! starting with NaN).
//!
//! Also here: the `clip_nan_guard` sample, where a NaN reaches a `Clip`: `cpu-fp16` reports it as
//! ONNX Runtime (and the GPU) do, and without the rewrite it would call the broken layer healthy.
#![cfg(all(feature = "tract", feature = "onnxruntime"))]

mod common;

use std::fmt::Write as _;
use std::path::Path;

use prost::Message;
use trtlens::model::Model;
use trtlens::runner::tract::TractRunner;
use trtlens::runner::{Runner, RunnerKind, RunnerOptions, Tensors};
use trtlens::samples::probes::{self, Probe, X};
use trtlens::tensor::{DType, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How ONNX Runtime's result is used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rule {
    /// tract must equal ONNX Runtime on every row.
    Ort,
    /// tract must equal `NumPy`'s NaN rule on every row, and ONNX Runtime on the rows where it
    /// follows that rule (no NaN, or NaN first); the other rows are printed.
    NumpyAlongRows,
}

/// Finite values may differ by an approximation (exp, tanh, erf...).
const APPROX: &[&str] = &[
    "Selu",
    "HardSwish",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Erf",
    "Exp",
    "Softmax",
    "LogSoftmax",
    "ReduceLogSumExp",
    "LayerNormalization",
];
/// tract alone differs from ONNX Runtime on these; the rewrite (`src/runner/ieee.rs`) fixes them.
const FIXED: &[&str] = &[
    "Relu",
    "Celu",
    "HardSigmoid",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Clip(x, 0, 6)",
    "Clip(x, min=0)",
    "Clip(x, max=1)",
    "Clip(x)",
    "Max",
    "Min",
    "Max(x, 0)",
    "Min(0, x)",
    "Max(x, y, 0)",
    "ReduceMax",
    "ReduceMin",
    "ArgMax",
    "ArgMin",
];
/// ONNX Runtime's CPU provider has no stable NaN rule here: `NumPy`'s rule is the reference.
const NUMPY: &[&str] = &["ReduceMax", "ReduceMin", "ArgMax", "ArgMin"];

fn rule(p: &Probe) -> Rule {
    if NUMPY.contains(&p.name) { Rule::NumpyAlongRows } else { Rule::Ort }
}

fn model_file(dir: &Path, p: &Probe) -> Result<Model, Box<dyn std::error::Error>> {
    let path = dir.join(format!("{}.onnx", p.file_stem()));
    std::fs::write(&path, p.model.encode_to_vec())?;
    Ok(Model::load(&path)?)
}

fn rows(p: &Probe) -> usize {
    p.inputs[0].1.shape()[0]
}

fn output(r: &mut dyn Runner, inputs: &Tensors) -> Result<Tensor, Box<dyn std::error::Error>> {
    let out = r.run(inputs)?;
    Ok(trtlens::runner::find(&out.tensors, "out").cloned().ok_or("no output")?)
}

/// The same value under the table's rule: NaN = NaN, infinities by sign, ±0 equal; finite values
/// within 1e-6 + 1e-5·|b| when `approx`.
fn same(a: f64, b: f64, approx: bool) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    a == b || approx && (a - b).abs() <= 1e-6 + 1e-5 * b.abs()
}

/// Rows (of `out`, as it comes back) where `a` and `b` differ.
fn differing_rows(a: &Tensor, b: &Tensor, approx: bool) -> Vec<usize> {
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return vec![usize::MAX];
    }
    let (va, vb) = (a.to_f64_vec(), b.to_f64_vec());
    let rows = a.shape().first().copied().unwrap_or(1).max(1);
    let per = va.len() / rows;
    let mut out: Vec<usize> = (0..va.len()).filter(|&i| !same(va[i], vb[i], approx)).map(|i| i / per.max(1)).collect();
    out.dedup();
    out
}

fn show(t: &Tensor, row: usize) -> String {
    let v = t.to_f64_vec();
    let rows = t.shape().first().copied().unwrap_or(1).max(1);
    let per = v.len() / rows;
    let cells: Vec<String> = v[row * per..(row + 1) * per].iter().map(|x| format!("{x}")).collect();
    format!("[{}]", cells.join(", "))
}

/// `NumPy`'s rule along axis 1 of `X`: `max`/`min` return NaN when the row holds one, `argmax`/
/// `argmin` the index of the first NaN.
fn numpy_along_rows(op: &str) -> Result<Tensor, Box<dyn std::error::Error>> {
    let mut vals = Vec::new();
    let mut idx = Vec::new();
    for row in X {
        let first_nan = row.iter().position(|v| v.is_nan());
        let pick = |better: fn(f32, f32) -> bool| -> usize {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if better(v, row[best]) {
                    best = i;
                }
            }
            best
        };
        let k = first_nan.unwrap_or_else(|| if op.ends_with("Max") { pick(|a, b| a > b) } else { pick(|a, b| a < b) });
        vals.push(row[k]);
        idx.push(k as i64);
    }
    Ok(if op.starts_with("Arg") { Tensor::from_i64(&[6, 1], &idx)? } else { Tensor::from_f32(&[6, 1], &vals)? })
}

fn ort_available() -> bool {
    match trtlens::runner::ort::load(None) {
        Ok(_) => true,
        Err(e) => {
            assert!(!common::in_ci(), "onnxruntime is required in CI but cannot be loaded: {e}");
            println!("skipped: onnxruntime not installed ({e})");
            false
        }
    }
}

#[test]
fn nan_inf_and_signed_zero_agree_with_onnx_runtime_op_by_op() -> TestResult {
    if !ort_available() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut table = String::from("| op | tract alone | tract in trtlens | ONNX Runtime CPU |\n|---|---|---|---|\n");
    let mut failures = Vec::new();
    let mut fixed_seen = Vec::new();
    for case in probes::nan_ops() {
        let rows = rows(&case);
        let inputs = case.inputs.clone();
        let approx = APPROX.contains(&case.name);
        let fixed = FIXED.contains(&case.name);
        let model = model_file(dir.path(), &case)?;
        let capture = vec!["out".to_string()];
        let mut ort = trtlens::runner::create(RunnerKind::Onnxruntime, &model, &capture, &RunnerOptions::default())?;
        let mut tract = trtlens::runner::create(RunnerKind::Tract, &model, &capture, &RunnerOptions::default())?;
        let mut alone = TractRunner::without_ieee_fixes(&model, &capture);
        let (o, t, a) =
            (output(ort.as_mut(), &inputs)?, output(tract.as_mut(), &inputs)?, output(&mut alone, &inputs)?);
        let (ort_says, ours, theirs) = match rule(&case) {
            Rule::Ort => {
                let d = differing_rows(&t, &o, approx);
                if !d.is_empty() {
                    failures.push(format!(
                        "{}: tract differs from ONNX Runtime on rows {d:?}: tract {} ONNX Runtime {}",
                        case.name,
                        show(&t, d[0].min(rows - 1)),
                        show(&o, d[0].min(rows - 1))
                    ));
                }
                let alone_differs = !differing_rows(&a, &o, approx).is_empty();
                (
                    "reference".to_string(),
                    if d.is_empty() { "same" } else { "DIFFERENT" },
                    if alone_differs { "differs" } else { "same" },
                )
            }
            Rule::NumpyAlongRows => {
                let numpy = numpy_along_rows(case.name)?;
                let d = differing_rows(&t, &numpy, false);
                if !d.is_empty() {
                    failures.push(format!("{}: tract does not follow NumPy's NaN rule on rows {d:?}", case.name));
                }
                // ONNX Runtime follows it on rows without NaN and with the NaN first.
                let stable: Vec<usize> =
                    (0..rows).filter(|&r| X[r].iter().position(|v| v.is_nan()).is_none_or(|p| p == 0)).collect();
                let ort_off = differing_rows(&o, &numpy, false);
                if let Some(r) = ort_off.iter().find(|r| stable.contains(r)) {
                    failures.push(format!(
                        "{}: ONNX Runtime {} differs from tract {} on row {r}, where it follows NumPy",
                        case.name,
                        show(&o, *r),
                        show(&t, *r)
                    ));
                }
                let quirks: Vec<String> = ort_off.iter().map(|&r| format!("row {r}: {}", show(&o, r))).collect();
                println!("{}: ONNX Runtime CPU without a stable NaN rule: {}", case.name, quirks.join("; "));
                let alone_differs = !differing_rows(&a, &o, false).iter().all(|r| !stable.contains(r));
                (
                    format!("NaN only when first ({})", quirks.join("; ")),
                    if d.is_empty() { "same (NumPy)" } else { "DIFFERENT" },
                    if alone_differs { "differs" } else { "same" },
                )
            }
        };
        if (theirs == "differs") != fixed {
            failures.push(format!(
                "{}: tract alone {} ONNX Runtime, the table says it {}",
                case.name,
                if theirs == "differs" { "differs from" } else { "agrees with" },
                if fixed { "needs the rewrite" } else { "does not" }
            ));
        }
        if fixed {
            fixed_seen.push(case.name);
            if let Some(r) = differing_rows(&a, &o, approx).first().filter(|r| **r != usize::MAX) {
                println!("{}: tract alone row {r} {} vs ONNX Runtime {}", case.name, show(&a, *r), show(&o, *r));
            }
        }
        let _ = writeln!(table, "| {} | {theirs} | {ours} | {ort_says} |", case.name);
    }
    println!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(fixed_seen.len() >= 15, "the rewrite fixes {fixed_seen:?}");
    Ok(())
}

/// Without the rewrite, tract's `Relu` and `Clip` turn NaN into 0 and `Max` picks the other
/// operand: a direct look at what the rewrite corrects.
#[test]
fn tract_alone_turns_nan_into_numbers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let case = probes::nan_ops().into_iter().find(|c| c.name == "Clip(x, 0, 6)").ok_or("case")?;
    let inputs = case.inputs.clone();
    let model = model_file(dir.path(), &case)?;
    let capture = vec!["out".to_string()];
    let alone = output(&mut TractRunner::without_ieee_fixes(&model, &capture), &inputs)?;
    let mut fixed = TractRunner::new(&model, &capture)?;
    assert_eq!(fixed.ieee_fixes(), ["Clip_out"]);
    let fixed = output(&mut fixed, &inputs)?;
    // Row 1 holds a NaN at index 1.
    assert_eq!(alone.to_f64_vec()[8 + 1], 0.0, "tract's own Clip maps NaN to its lower bound");
    assert!(fixed.to_f64_vec()[8 + 1].is_nan(), "the rewritten Clip keeps the NaN");
    Ok(())
}

/// The `clip_nan_guard` sample: the NaN that FP16 overflow creates reaches a `Clip`. `cpu-fp16`
/// reports it (NaN at the Clip and in the output, verdict fail), as ONNX Runtime does on the
/// converted model; without the rewrite the emulation would report no overshoot and pass.
#[test]
fn a_nan_reaching_a_clip_is_reported_by_cpu_fp16() -> TestResult {
    use trtlens::precision::{Plan, Precision};
    use trtlens::runner::cpu_fp16::CpuFp16Runner;
    let path = common::sample("clip_nan_guard");
    let model = Model::load(&path)?;
    let capture = trtlens::run::capture_list(&model);
    let x: Vec<f32> = (0..16 * 64).map(|i| ((i * 37) % 100) as f32 / 100.0).collect();
    let inputs = vec![("features".to_string(), Tensor::from_f32(&[1, 16, 64], &x)?)];
    let value = |tensors: &Tensors, name: &str| -> Vec<f64> {
        trtlens::runner::find(tensors, name).map(Tensor::to_f64_vec).unwrap_or_default()
    };
    let opts = RunnerOptions { plan: Some(Plan::uniform(Precision::Fp16)), ..RunnerOptions::default() };

    let emu = CpuFp16Runner::new(&model, &capture, &opts)?.run(&inputs)?.tensors;
    let clip = value(&emu, "/guard/Clip_output_0");
    let nan_at = |v: &[f64]| v.iter().filter(|x| x.is_nan()).count();
    assert!(nan_at(&clip) > 0, "cpu-fp16 keeps the NaN at the Clip");
    assert_eq!(nan_at(&value(&emu, "limited")), nan_at(&clip), "and in the output");

    let blind = CpuFp16Runner::without_ieee_fixes(&model, &capture, &opts)?.run(&inputs)?.tensors;
    assert_eq!(nan_at(&value(&blind, "/guard/Clip_output_0")), 0, "tract's own Clip hides the NaN");
    let fp32: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
    let limited = value(&blind, "limited");
    assert!(
        limited.iter().zip(&fp32).all(|(a, b)| (a - b).abs() <= 1e-2 + 1e-2 * b.abs()),
        "without the rewrite the output passes at FP16 tolerances: a broken layer called healthy"
    );

    // ONNX Runtime running the same emulated graph (FP32 compute, FP16 storage) keeps the NaN too.
    // (Its CPU provider on the converted model itself computes the FP16 chain in FP32 and never
    // overflows: that is why cpu-fp16 emulates instead.)
    if ort_available() {
        let emulator = CpuFp16Runner::new(&model, &capture, &opts)?;
        let emulated = Model::load(&emulator.emulated_path)?;
        let names = vec!["/guard/Clip_output_0".to_string()];
        let mut ort = trtlens::runner::create(RunnerKind::Onnxruntime, &emulated, &names, &RunnerOptions::default())?;
        let out = ort.run(&inputs)?.tensors;
        let t = trtlens::runner::find(&out, "/guard/Clip_output_0").ok_or("clip")?;
        assert_eq!(t.dtype(), DType::Float16);
        let theirs: Vec<bool> = t.to_f64_vec().iter().map(|v| v.is_nan()).collect();
        let ours: Vec<bool> = clip.iter().map(|v| v.is_nan()).collect();
        assert_eq!(theirs, ours, "the same elements are NaN in ONNX Runtime");
    }
    Ok(())
}
