//! `--out-of-range saturate|keep-fp32|ieee`: what the FP16 conversion does with initializer and
//! `Constant` values FP16 cannot hold, end to end. The float32-min attention mask of
//! `samples/attention_mask_f32min.onnx` (a Hugging Face BERT export's `(1 - mask) * finfo.min`)
//! converted with the default `saturate` runs in ONNX Runtime and in `cpu-fp16` and matches FP32;
//! with `ieee` every output is NaN and the report says why; `keep-fp32` keeps the readers FP32. The
//! policy travels in plans (TOML), run manifests, compare reports and inspector jobs.
//!
//! ONNX Runtime: skipped with a message when `libonnxruntime.so` cannot be loaded, a failure under `CI`.

mod common;
use common::{in_ci, sample};
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;
use trtlens::compare::report::Report;
use trtlens::inputs::{self, InputOptions};
use trtlens::model::Model;
use trtlens::precision::{OutOfRangePolicy, Plan, Precision, RangeAction};
use trtlens::runner::{self, RunnerKind, RunnerOptions};
use trtlens::tensor::Tensor;
use trtlens::tui::action::{Action, Command as Cmd};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const F32MIN: &str = "attention_mask_f32min";
/// The `Constant` holding `torch.finfo(float32).min`, the `Mul` reading it, and the graph output.
const FMIN_CONSTANT: &str = "/bert/Constant_3_output_0";
const MASK_MUL: &str = "/bert/Mul";
const OUTPUT: &str = "attention_output";

fn trtlens() -> Command {
    Command::cargo_bin("trtlens").expect("binary")
}

fn validator() -> Result<jsonschema::Validator, Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report-schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    Ok(jsonschema::validator_for(&schema)?)
}

/// `compare MODEL --reference tract --candidate cpu-fp16` at FP16 tolerances: exit code checked, the
/// report validated against the published schema.
fn compare(model: &Path, extra: &[&str], code: i32) -> Result<Report, Box<dyn std::error::Error>> {
    let out = trtlens()
        .arg("compare")
        .arg(model)
        .args(["--reference", "tract", "--candidate", "cpu-fp16", "--atol", "1e-2", "--rtol", "1e-2", "--json", "-q"])
        .args(extra)
        .output()?;
    assert_eq!(out.status.code(), Some(code), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout)?;
    let errors: Vec<String> =
        validator()?.iter_errors(&json).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "report does not match docs/report-schema.json: {errors:#?}");
    Ok(serde_json::from_value(json)?)
}

/// `convert MODEL -o OUT --json EXTRA...`: the conversion report.
fn convert(model: &Path, out: &Path, extra: &[&str]) -> Result<Value, Box<dyn std::error::Error>> {
    let o = trtlens().arg("convert").arg(model).arg("-o").arg(out).arg("--json").args(extra).output()?;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    Ok(serde_json::from_slice(&o.stdout)?)
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[cfg(feature = "onnxruntime")]
fn ort_loads() -> Result<(), String> {
    runner::ort::load(None).map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(not(feature = "onnxruntime"))]
fn ort_loads() -> Result<(), String> {
    Err("built without the onnxruntime feature".into())
}

/// True when ONNX Runtime is there; prints `skipped` locally, fails under CI.
fn have_ort() -> bool {
    match ort_loads() {
        Ok(()) => true,
        Err(e) => {
            assert!(!in_ci(), "onnxruntime is required in CI but cannot be loaded: {e}");
            println!("skipped onnxruntime: not installed ({e})");
            false
        }
    }
}

/// The graph output of `model` run by ONNX Runtime on the default random inputs of `like`.
fn ort_output(model: &Path, like: &Model) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let m = Model::load(model)?;
    let opts = InputOptions { seed: inputs::DEFAULT_SEED, iterations: 1, ..InputOptions::default() };
    let feed = inputs::prepare(like, &opts)?.iterations.swap_remove(0);
    let mut r = runner::create(RunnerKind::Onnxruntime, &m, &[OUTPUT.to_string()], &RunnerOptions::default())?;
    let out = r.run(&feed)?;
    let t: &Tensor = runner::find(&out.tensors, OUTPUT).ok_or("no output")?;
    Ok(t.to_f64_vec())
}

#[test]
fn f32min_mask_saturates_and_the_fp16_model_matches_fp32() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = sample(F32MIN);
    let fp16 = tmp.path().join("fp16.onnx");
    let report = convert(&path, &fp16, &[])?;
    assert_eq!(report["out_of_range_policy"], "saturate", "the default");
    let ranges = report["out_of_range"].as_array().ok_or("out_of_range")?;
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let r = &ranges[0];
    assert_eq!(
        (r["name"].as_str(), r["kind"].as_str(), r["action"].as_str()),
        (Some(FMIN_CONSTANT), Some("constant"), Some("saturated"))
    );
    assert_eq!((r["changed"].as_u64(), r["max_abs"].as_f64()), (Some(1), Some(f64::from(f32::MAX))));
    assert_eq!(r["became"], serde_json::json!(["-65504"]));

    // ONNX Runtime runs the converted model (FP16 kernels or its own casts), and it matches FP32.
    if have_ort() {
        let model = Model::load(&path)?;
        let (want, got) = (ort_output(&path, &model)?, ort_output(&fp16, &model)?);
        assert!(got.iter().all(|v| v.is_finite()), "{got:?}");
        let c = cosine(&want, &got);
        assert!(c > 0.999, "onnxruntime FP16 vs FP32: cosine {c}");
    }

    // cpu-fp16 (FP16 storage) agrees too, and the report carries the conversion.
    let report = compare(&path, &[], 0)?;
    let out = report.tensor(OUTPUT).ok_or("output")?;
    let cos = out.metrics.as_ref().ok_or("metrics")?.cosine;
    assert!(cos > 0.999, "cpu-fp16: cosine {cos}");
    assert_eq!(report.first_nonfinite, None);
    let conv = report.candidate.conversion.as_ref().ok_or("conversion section")?;
    assert_eq!(conv.out_of_range, OutOfRangePolicy::Saturate);
    assert_eq!(
        conv.values.iter().map(|v| (v.name.as_str(), v.action)).collect::<Vec<_>>(),
        [(FMIN_CONSTANT, RangeAction::Saturated)]
    );
    assert!(report.notes.iter().any(|n| n.contains("saturate") && n.contains(FMIN_CONSTANT)), "{:?}", report.notes);
    assert!(report.reference.conversion.is_none(), "the reference converts nothing");
    Ok(())
}

#[test]
fn with_ieee_every_output_is_nan_and_the_report_says_why() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = sample(F32MIN);
    let fp16 = tmp.path().join("ieee.onnx");
    let report = convert(&path, &fp16, &["--out-of-range", "ieee"])?;
    assert_eq!(report["out_of_range_policy"], "ieee");
    assert_eq!(report["out_of_range"][0]["became"], serde_json::json!(["-inf"]));
    if have_ort() {
        let got = ort_output(&fp16, &Model::load(&path)?)?;
        assert!(got.iter().all(|v| v.is_nan()), "0 * -inf is NaN in ONNX Runtime too: {got:?}");
    }

    let report = compare(&path, &["--out-of-range", "ieee"], 1)?;
    assert_eq!(report.first_nonfinite.as_deref(), Some("/bert/Mul_output_0"), "the Mul reading the -inf constant");
    let first = report.tensor("/bert/Mul_output_0").ok_or("entry")?;
    assert!(first.flags.iter().any(|f| f == "NaN") && first.node.as_deref() == Some(MASK_MUL), "{first:?}");
    let out = report.tensor(OUTPUT).ok_or("output")?;
    assert_eq!(out.metrics.as_ref().map(|m| m.nan_candidate), Some(128), "every output value is NaN");
    let conv = report.candidate.conversion.as_ref().ok_or("conversion section")?;
    assert_eq!(conv.out_of_range, OutOfRangePolicy::Ieee);
    let v = conv.values.first().ok_or("no value")?;
    assert_eq!(
        (v.name.as_str(), v.action, v.to_inf, v.became.as_slice()),
        (FMIN_CONSTANT, RangeAction::Ieee, 1, &["-inf".to_string()][..])
    );
    assert!(
        report.notes.iter().any(|n| n.contains("ieee") && n.contains(FMIN_CONSTANT) && n.contains("-inf")),
        "{:?}",
        report.notes
    );
    assert!(report.candidate.precision_plan.as_deref().is_some_and(|p| p.contains("out-of-range ieee")));

    // The table says it too.
    let out = trtlens()
        .arg("compare")
        .arg(&path)
        .args(["--reference", "tract", "--candidate", "cpu-fp16", "--out-of-range", "ieee", "-q"])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("first non-finite: /bert/Mul_output_0"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("note: candidate: --out-of-range ieee") && l.contains(FMIN_CONSTANT)),
        "{text}"
    );
    Ok(())
}

#[test]
fn keep_fp32_keeps_every_reader_fp32() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = sample(F32MIN);
    let report = convert(&path, &tmp.path().join("keep.onnx"), &["--out-of-range", "keep-fp32"])?;
    let kept = report["nodes_fp32"].as_array().ok_or("nodes_fp32")?;
    let mul = kept.iter().find(|k| k["node"] == MASK_MUL).ok_or("the Mul is not kept")?;
    assert_eq!(mul["reason"], "out_of_range_constant");
    assert!(mul["detail"].as_str().is_some_and(|d| d.contains(FMIN_CONSTANT)), "{mul}");
    let r = &report["out_of_range"][0];
    assert_eq!((r["action"].as_str(), r["changed"].as_u64()), (Some("kept_fp32"), Some(0)));
    assert_eq!(r["readers_kept_fp32"], serde_json::json!([MASK_MUL]));
    assert!(
        !report["initializers"].as_array().ok_or("initializers")?.iter().any(|i| i["name"] == FMIN_CONSTANT),
        "the constant stays FP32"
    );
    // The Mul computes 0 / -3.4e38 in FP32; its FP16 reader gets -inf, which the softmax turns into 0.
    let report = compare(&path, &["--out-of-range", "keep-fp32"], 0)?;
    assert_eq!(report.tensor("/bert/Mul_output_0").map(|t| t.dtype_candidate.as_str()), Some("float32"));
    let conv = report.candidate.conversion.as_ref().ok_or("conversion section")?;
    assert_eq!(conv.values.first().map(|v| v.readers_kept_fp32.clone()), Some(vec![MASK_MUL.to_string()]));
    assert!(report.notes.iter().any(|n| n.contains("keep-fp32 kept 1 node")), "{:?}", report.notes);
    // AutoCast's rule fixes the regression head too: its 1.25e5 bias keeps the Gemm FP32.
    let report = compare(&sample("regression_overflow"), &["--out-of-range", "keep-fp32"], 0)?;
    assert_eq!(report.verdict, "pass");
    Ok(())
}

/// What `samples/README.md` says about the samples whose documented failure needs `ieee`, under
/// the default `saturate`.
#[test]
fn the_default_saturation_changes_the_constant_driven_failures() -> TestResult {
    for s in trtlens::samples::all() {
        let shapes = s.shape_args();
        let extra: Vec<&str> = shapes.iter().map(String::as_str).collect();
        let report = compare(
            &sample(s.name),
            &extra,
            i32::from(s.culprit.is_some() && s.name != "mask_fill_nan" && s.name != F32MIN),
        )?;
        let conv = report.candidate.conversion.as_ref().ok_or("conversion section")?;
        assert_eq!(conv.out_of_range, OutOfRangePolicy::Saturate);
        match s.name {
            // Masks of -1e9 and float32 min: saturated to -65504, the NaN is gone.
            "mask_fill_nan" | "attention_mask_f32min" | "attention_mask" => {
                assert_eq!(report.verdict, "pass", "{}", s.name);
                assert_eq!(report.first_nonfinite, None, "{}", s.name);
                assert!(conv.values.iter().any(|v| v.became == ["-65504"]), "{}: {:?}", s.name, conv.values);
            }
            // eps = 1e-12 becomes 5.96e-8: no inf/NaN any more, but the output is still wrong.
            "layernorm_eps_underflow" => {
                assert_eq!(report.first_nonfinite, None);
                assert!(conv.values.iter().any(|v| v.name == "ln.eps" && v.became == ["5.9604645e-8"]));
            }
            // The 1.25e5 bias is saturated to 65504: the targets are still far off (or inf).
            "regression_overflow" => {
                assert!(conv.values.iter().any(|v| v.name == "head.fc2.bias" && v.above_max == 2));
            }
            _ => {
                assert_eq!(s.policy, OutOfRangePolicy::Saturate, "{}", s.name);
                assert!(conv.values.iter().all(|v| v.above_max == 0), "{}: {:?}", s.name, conv.values);
            }
        }
    }
    Ok(())
}

#[test]
fn plans_carry_the_policy() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = sample(F32MIN);
    let t = |n: &str| tmp.path().join(n);
    let o = trtlens()
        .arg("convert")
        .arg(&path)
        .args(["--out-of-range", "ieee", "-q", "-o"])
        .arg(t("a.onnx"))
        .arg("--write-plan")
        .arg(t("plan.toml"))
        .output()?;
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8(o.stderr)?.contains("plan: fp16; out-of-range ieee"), "the label names the policy");
    let text = std::fs::read_to_string(t("plan.toml"))?;
    assert!(text.contains("out_of_range = \"ieee\""), "{text}");
    let plan_convert = |plan: &Path, out: &str, extra: &[&str]| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        trtlens()
            .arg("convert")
            .arg(&path)
            .arg("--plan")
            .arg(plan)
            .args(extra)
            .arg("-q")
            .arg("-o")
            .arg(t(out))
            .assert()
            .success();
        Ok(std::fs::read(t(out))?)
    };
    let a = std::fs::read(t("a.onnx"))?;
    assert_eq!(plan_convert(&t("plan.toml"), "b.onnx", &[])?, a, "the written plan reproduces the model");
    // A plan written before the policy existed loads with the default; the flag overrides a file.
    std::fs::write(t("old.toml"), "default = \"fp16\"\n")?;
    let old = plan_convert(&t("old.toml"), "c.onnx", &[])?;
    convert(&path, &t("d.onnx"), &[])?;
    assert_eq!(old, std::fs::read(t("d.onnx"))?, "an old plan converts with saturate");
    assert_ne!(old, a);
    assert_eq!(plan_convert(&t("old.toml"), "e.onnx", &["--out-of-range", "ieee"])?, a);
    // Library: the same plan, from TOML or built in code.
    let p = Plan::from_toml(&text)?;
    assert_eq!(p, Plan { out_of_range: OutOfRangePolicy::Ieee, ..Plan::uniform(Precision::Fp16) });
    let bad = trtlens().arg("convert").arg(&path).args(["--out-of-range", "clamp", "-o"]).arg(t("x.onnx")).output()?;
    assert_eq!(bad.status.code(), Some(2));
    Ok(())
}

#[test]
fn run_manifests_name_the_policy_and_every_changed_value() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let save = tmp.path().join("r");
    trtlens()
        .arg("run")
        .arg(sample("mask_fill_nan"))
        .args(["--runner", "cpu-fp16", "--out-of-range", "ieee", "-q", "--save"])
        .arg(&save)
        .assert()
        .success();
    let run = trtlens::store::RunDir::open(&save)?;
    assert_eq!(run.manifest.runner.plan.as_deref(), Some("fp16; out-of-range ieee"));
    let conv = run.manifest.runner.conversion.as_ref().ok_or("no conversion in the manifest")?;
    assert_eq!(conv.out_of_range, OutOfRangePolicy::Ieee);
    let v = conv.values.first().ok_or("no value")?;
    assert_eq!(
        (v.name.as_str(), v.changed, v.max_abs, v.became.as_slice()),
        ("attn.mask_fill", 1, 1e9, &["-inf".to_string()][..])
    );
    // Without a flag the manifest still names the (default) policy.
    let save2 = tmp.path().join("r2");
    trtlens()
        .arg("run")
        .arg(sample("mask_fill_nan"))
        .args(["--runner", "cpu-fp16", "-q", "--save"])
        .arg(&save2)
        .assert()
        .success();
    let run = trtlens::store::RunDir::open(&save2)?;
    assert_eq!(run.manifest.runner.conversion.map(|c| c.out_of_range), Some(OutOfRangePolicy::Saturate));
    // Runners that convert nothing record nothing, and refuse the flag.
    let out = trtlens()
        .arg("run")
        .arg(sample("mask_fill_nan"))
        .args(["--runner", "tract", "--out-of-range", "ieee", "--save"])
        .arg(tmp.path().join("x"))
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)?.contains("cpu-fp16"));
    Ok(())
}

#[test]
fn every_command_with_a_plan_takes_the_flag() -> TestResult {
    for cmd in ["run", "compare", "convert", "inspect", "check"] {
        let out = trtlens().args([cmd, "--help"]).output()?;
        let help = String::from_utf8(out.stdout)?;
        assert!(help.contains("--out-of-range") && help.contains("keep-fp32"), "{cmd} --help:\n{help}");
    }
    Ok(())
}

#[test]
fn inspector_jobs_use_the_policy() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut launch = common::inspect_launch(&sample(F32MIN), tmp.path());
    launch.plan = Some(Plan { out_of_range: OutOfRangePolicy::Ieee, ..Plan::uniform(Precision::Fp16) });
    let keys = trtlens::tui::keys::KeyMap::default();
    let mut app = trtlens::tui::start(&launch, &keys)?;
    common::wait_job(&mut app)?;
    let report = app.report.as_ref().ok_or("report")?;
    assert_eq!(report.verdict, "fail");
    assert_eq!(report.candidate.conversion.as_ref().map(|c| c.out_of_range), Some(OutOfRangePolicy::Ieee));
    // Keeping the Mul FP32 fixes it; the rebuild keeps the policy.
    app.update(Action::Cmd(Cmd::FirstDivergence));
    assert_eq!(app.selected_row().map(|r| r.name.as_str()), Some("/bert/Mul_output_0"));
    app.update(Action::Cmd(Cmd::TogglePrecision));
    app.update(Action::Cmd(Cmd::Rebuild));
    common::wait_job(&mut app)?;
    let report = app.report.as_ref().ok_or("report")?;
    assert_eq!(report.verdict, "pass", "{:?}", app.status);
    assert_eq!(report.candidate.conversion.as_ref().map(|c| c.out_of_range), Some(OutOfRangePolicy::Ieee));
    Ok(())
}
