//! The `cpu-fp16` candidate and the `convert` command end to end: FP16 storage shows the planted
//! overflows where they happen, FP16 tensors keep their dtype in the store and the report, the report
//! names the plan, each sample's documented FP32 fix (the culprit alone, or the smallest island) and
//! the predicted island fix the outputs, and plans round-trip byte for byte. Each sample is run under
//! the out-of-range policy its failure is documented for (`Sample::policy`: `ieee` where the failure
//! needs a constant FP16 cannot hold to become ±inf or 0; `tests/out_of_range.rs` covers the default).

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;
use trtlens::compare::report::Report;
use trtlens::model::Model;
use trtlens::precision::predict::{Predict, nodes_to_keep};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// FP16-appropriate tolerances: FP16 has ~3.3 decimal digits.
const FP16_TOL: [&str; 4] = ["--atol", "1e-2", "--rtol", "1e-2"];

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples").join(format!("{name}.onnx"))
}

fn trtlens() -> Command {
    Command::cargo_bin("trtlens").expect("binary")
}

fn compare(model: &PathBuf, extra: &[&str], code: i32) -> Result<Report, Box<dyn std::error::Error>> {
    // Samples with symbolic dims run at their documented shape.
    let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let shapes = trtlens::samples::find(&stem).map(|s| s.shape_args()).unwrap_or_default();
    let out = trtlens()
        .arg("compare")
        .arg(model)
        .args(["--reference", "tract", "--candidate", "cpu-fp16", "--json", "-q"])
        .args(FP16_TOL)
        .args(&shapes)
        .args(extra)
        .output()?;
    assert_eq!(out.status.code(), Some(code), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// `--out-of-range POLICY` of a sample's documented failure.
fn policy_args(s: &trtlens::samples::Sample) -> [&'static str; 2] {
    ["--out-of-range", s.policy.name()]
}

#[test]
fn all_fp16_fails_exactly_at_the_planted_layer() -> TestResult {
    for s in trtlens::samples::all() {
        let path = sample(s.name);
        let model = Model::load(&path)?;
        // Healthy samples pass in FP16 (the attention mask's -1e9 is -65504 in FP16, and the
        // softmax turns it into exact zeros).
        let report = compare(&path, &policy_args(&s), i32::from(s.culprit.is_some()))?;
        assert_eq!(report.candidate.conversion.as_ref().map(|c| c.out_of_range), Some(s.policy), "{}", s.name);
        assert_eq!(report.candidate.runner, "cpu-fp16");
        assert!(report.candidate.precision_plan.is_some(), "the report names the plan");
        let Some(want) = s.first_nonfinite else {
            assert_eq!(report.verdict, "pass", "{}", s.name);
            continue;
        };
        let first = report.first_nonfinite.as_deref().ok_or("a failing sample goes non-finite")?;
        let producer = model.graph.producer(first).map(trtlens::model::graph::Node::display_name);
        assert_eq!(producer.as_deref(), Some(want), "{}: first non-finite tensor {first}", s.name);
        let t = report.tensor(first).ok_or("entry")?;
        assert_eq!(t.dtype_candidate, "float16");
        assert_eq!(report.verdict, "fail");
        if Some(want) == s.culprit {
            // Overflows: the failure is the first divergence, and the reference predicted it.
            assert_eq!(report.first_divergence.as_deref(), Some(first), "{}", s.name);
            assert!(t.flags.iter().any(|f| f == "OVF"), "{}: the reference predicted it", s.name);
        } else {
            // Underflow: the culprit's output flushes to zero (flagged UNF), the inf/NaN comes later.
            let culprit = model.graph.nodes.iter().find(|n| Some(n.display_name().as_str()) == s.culprit);
            let out = culprit.and_then(|n| n.outputs.first()).ok_or("culprit output")?;
            let t = report.tensor(out).ok_or("culprit entry")?;
            assert!(t.flags.iter().any(|f| f == "UNF"), "{}: {:?}", s.name, t.flags);
        }
    }
    Ok(())
}

fn keep_args(nodes: &[&str]) -> Vec<String> {
    nodes.iter().flat_map(|n| ["--keep-fp32".to_string(), (*n).to_string()]).collect()
}

/// The done-when of the precision issue: keeping the culprit FP32 makes the outputs pass. Where the
/// out-of-range value stays inside the culprit (a graph output, an out-of-range constant) that is
/// the culprit alone; where it flows into FP16 consumers, strong typing casts it back to FP16 there
/// (inf again), so the fix is the smallest FP32 island, and the test proves both halves: the island
/// passes, the culprit alone does not, and no node of the island can be dropped.
#[test]
fn keeping_the_documented_fix_fp32_makes_the_outputs_pass() -> TestResult {
    let mut single = 0;
    for s in trtlens::samples::all().into_iter().filter(|s| s.culprit.is_some()) {
        let path = sample(s.name);
        let model = Model::load(&path)?;
        let culprit = s.culprit.ok_or("culprit")?;
        assert!(s.fix.contains(&culprit), "{}: the fix keeps the culprit", s.name);
        let mut args = keep_args(s.fix);
        args.extend(policy_args(&s).map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let fixed = compare(&path, &args, 0)?;
        assert_eq!(fixed.verdict, "pass", "{}: keeping {:?} FP32", s.name, s.fix);
        // No NaN anywhere and finite outputs (a -inf mask entry in FP16 is the benign saturation
        // the attention samples document).
        for t in &fixed.tensors {
            assert!(!t.flags.iter().any(|f| f == "NaN"), "{}: {} {:?}", s.name, t.name, t.flags);
            assert!(!t.is_output || !t.flags.iter().any(|f| f == "INF"), "{}: {}", s.name, t.name);
        }
        assert!(fixed.candidate.precision_plan.as_deref().is_some_and(|p| p.contains("keep fp32")));
        // The kept nodes really ran in FP32: their outputs are float32 in the store; the other float
        // tensors are FP16 (integer tensors and Cast outputs keep their type).
        for t in &fixed.tensors {
            let producer = model.graph.producer(&t.name).map(trtlens::model::graph::Node::display_name);
            let kept = producer.as_deref().is_some_and(|p| s.fix.contains(&p));
            let as_written = t.dtype_reference != "float32" || t.op_type.as_deref() == Some("Cast");
            let want = if kept {
                "float32"
            } else if as_written {
                t.dtype_reference.as_str()
            } else {
                "float16"
            };
            assert_eq!(t.dtype_candidate, want, "{}", t.name);
        }
        if s.fix == [culprit] {
            single += 1;
            continue;
        }
        for drop in s.fix {
            let rest: Vec<&str> = s.fix.iter().copied().filter(|n| n != drop).collect();
            let mut args = keep_args(&rest);
            args.extend(policy_args(&s).map(String::from));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let report = compare(&path, &args, 1)?;
            assert_eq!(report.verdict, "fail", "{}: the island needs {drop}", s.name);
        }
    }
    assert_eq!(single, 3, "regression_overflow and the two masks are fixed by their culprit alone");
    Ok(())
}

#[test]
fn the_predicted_island_covers_the_documented_fix() -> TestResult {
    for s in trtlens::samples::all().into_iter().filter(|s| s.culprit.is_some()) {
        let path = sample(s.name);
        let model = Model::load(&path)?;
        let all16 = compare(&path, &policy_args(&s), 1)?;
        let what = if s.first_nonfinite == s.culprit { Predict::Overflow } else { Predict::OverflowAndUnderflow };
        let keep = nodes_to_keep(&model.graph, &all16, what);
        for n in s.fix {
            assert!(keep.iter().any(|k| k == n), "{}: prediction {keep:?} misses {n}", s.name);
        }
    }
    Ok(())
}

#[test]
fn run_keeps_fp16_dtypes_and_names_the_plan() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let save = tmp.path().join("r");
    trtlens()
        .arg("run")
        .arg(sample("cnn_bn_relu"))
        .args(["--runner", "cpu-fp16", "--precision", "fp16", "--keep-fp32-op", "Gemm", "-q", "--save"])
        .arg(&save)
        .assert()
        .success();
    let run = trtlens::store::RunDir::open(&save)?;
    assert_eq!(run.manifest.runner.name, "cpu-fp16");
    assert_eq!(run.manifest.runner.plan.as_deref(), Some("fp16; keep fp32: op Gemm"));
    for e in &run.manifest.tensors {
        let want = if e.op_type.as_deref() == Some("Gemm") { "float32" } else { "float16" };
        assert_eq!(e.dtype.name(), want, "{}", e.name);
    }
    // A plan on a runner that cannot apply one is a usage error.
    let out = trtlens()
        .arg("run")
        .arg(sample("cnn_bn_relu"))
        .args(["--runner", "tract", "--precision", "fp16", "--save"])
        .arg(tmp.path().join("x"))
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)?.contains("cpu-fp16"));
    Ok(())
}

#[test]
fn convert_round_trips_through_a_written_plan() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (a, b, plan) = (tmp.path().join("a.onnx"), tmp.path().join("b.onnx"), tmp.path().join("plan.toml"));
    trtlens()
        .arg("convert")
        .arg(sample("layernorm_overflow"))
        .args(["--precision", "fp16", "--keep-fp32", "ln/square/Pow", "--keep-fp32-op", "ReduceMean", "-q", "-o"])
        .arg(&a)
        .arg("--write-plan")
        .arg(&plan)
        .assert()
        .success();
    trtlens()
        .arg("convert")
        .arg(sample("layernorm_overflow"))
        .arg("--plan")
        .arg(&plan)
        .args(["-q", "-o"])
        .arg(&b)
        .assert()
        .success();
    assert_eq!(std::fs::read(&a)?, std::fs::read(&b)?, "the same plan gives the same bytes");
    let text = std::fs::read_to_string(&plan)?;
    assert!(text.contains("ln/square/Pow") && text.contains("ReduceMean"), "{text}");
    // The converted model is a valid model for the tool itself.
    let m = Model::load(&a)?;
    assert!(m.graph.nodes.iter().any(|n| n.op_type == "Cast"));
    let json: Value = serde_json::from_slice(
        &trtlens()
            .arg("convert")
            .arg(sample("layernorm_overflow"))
            .args(["--json", "-o"])
            .arg(tmp.path().join("c.onnx"))
            .output()?
            .stdout,
    )?;
    assert!(json["nodes_fp16"].as_array().is_some_and(|v| !v.is_empty()));
    Ok(())
}

#[test]
fn keep_fp32_predicted_fixes_every_planted_failure_in_one_command() -> TestResult {
    for (name, what) in [
        ("mlp_overflow", "overflow"),
        ("softmax_naive", "overflow"),
        ("layernorm_overflow", "overflow"),
        ("layernorm_eps_underflow", "all"),
        ("regression_overflow", "overflow"),
        ("mask_fill_nan", "overflow"),
        ("tf2onnx_names", "overflow"),
        ("attention_mask_f32min", "overflow"),
    ] {
        let s = trtlens::samples::find(name).ok_or("sample")?;
        let report = compare(&sample(name), &["--keep-fp32-predicted", what, "--out-of-range", s.policy.name()], 0)?;
        assert_eq!(report.verdict, "pass", "{name}");
        let plan = report.candidate.precision_plan.unwrap_or_default();
        assert!(plan.contains("keep fp32 predicted"), "{name}: {plan}");
    }
    // Underflow is not an overflow: predicting overflow alone leaves the eps sample failing.
    let report = compare(&sample("layernorm_eps_underflow"), &["--keep-fp32-predicted", "--out-of-range", "ieee"], 1)?;
    assert_eq!(report.verdict, "fail");
    Ok(())
}
