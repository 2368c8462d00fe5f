//! `trtlens compare` end to end: verdicts and exit codes, reports valid against the published JSON
//! Schema, a perturbed copy flags exactly the perturbed tensors, metrics on Polygraphy `RunResults`
//! agree with numpy, and bad input gives clear errors or clearly marked entries.

mod common;
use common::in_ci;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;
use serde_json::Value;
use trtlens::store::{RunDir, write_safetensors};
use trtlens::tensor::Tensor;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample(name: &str) -> PathBuf {
    root().join("samples").join(format!("{name}.onnx"))
}

fn trtlens() -> Command {
    Command::cargo_bin("trtlens").expect("binary")
}

fn validator() -> Result<jsonschema::Validator, Box<dyn std::error::Error>> {
    let schema: Value = serde_json::from_slice(&std::fs::read(root().join("docs/report-schema.json"))?)?;
    Ok(jsonschema::validator_for(&schema)?)
}

/// Run `compare --json`, check the exit code, validate the report against the schema.
fn compare_json(args: &[&str], expect_code: i32) -> Result<Value, Box<dyn std::error::Error>> {
    let out = trtlens().arg("compare").args(args).args(["--json", "-q"]).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(expect_code), "args {args:?}\nstderr: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let v = validator()?;
    let errors: Vec<String> = v.iter_errors(&report).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "report does not match docs/report-schema.json: {errors:#?}");
    Ok(report)
}

fn run(model: &Path, runner: &str, save: &Path, extra: &[&str]) {
    trtlens()
        .arg("run")
        .arg(model)
        .args(["--runner", runner, "--save"])
        .arg(save)
        .args(extra)
        .arg("-q")
        .assert()
        .success();
}

/// Copy a run directory (to perturb the copy).
fn copy_run(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    Ok(())
}

fn status<'a>(report: &'a Value, tensor: &str) -> &'a str {
    report["tensors"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == tensor))
        .and_then(|t| t["status"].as_str())
        .unwrap_or("absent")
}

#[test]
fn onnxruntime_and_tract_agree_on_every_sample() -> TestResult {
    let ort_ok = trtlens::runner::create(
        trtlens::runner::RunnerKind::Onnxruntime,
        &trtlens::model::Model::load(&sample("mlp_overflow"))?,
        &[],
        &trtlens::runner::RunnerOptions::default(),
    )
    .is_ok();
    if !ort_ok {
        assert!(!in_ci(), "CI must have onnxruntime (pip install -r .ci/requirements.txt)");
        println!("skipped: onnxruntime not installed");
        return Ok(());
    }
    for s in trtlens::samples::all() {
        let path = root().join("samples").join(s.file);
        let path_s = path.to_string_lossy().to_string();
        let mut args =
            vec![path_s.clone(), "--reference".into(), "onnxruntime".into(), "--candidate".into(), "tract".into()];
        args.extend(s.shape_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let report = compare_json(&args, 0)?;
        assert_eq!(report["verdict"], "pass", "{}", s.file);
        assert_eq!(report["unmatched"]["reference"].as_array().map(Vec::len), Some(0));
        assert_eq!(report["reference"]["runner"], "onnxruntime");
        assert_eq!(report["candidate"]["runner"], "tract");
        assert!(report["tensors"].as_array().is_some_and(|t| !t.is_empty()));
    }
    Ok(())
}

#[test]
fn a_perturbed_copy_flags_exactly_the_perturbed_tensors() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = sample("cnn_bn_relu");
    let a = tmp.path().join("a");
    run(&model, "tract", &a, &["--iterations", "2"]);
    // b = a with two intermediate tensors of iteration 1 nudged.
    let b = tmp.path().join("b");
    copy_run(&a, &b)?;
    let perturbed = ["features/block1/bn_out", "pool/avg"];
    let run_a = RunDir::open(&a)?;
    let m = run_a.tensors(1)?;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for name in m.names() {
        let mut t = m.get(name)?.ok_or("listed")?;
        if perturbed.contains(&name.as_str()) {
            let mut v = t.to_f32_vec();
            v[3] += 0.01 + v[3].abs() * 0.01;
            t = Tensor::from_f32(t.shape(), &v)?;
        }
        tensors.push((name.clone(), t));
    }
    write_safetensors(&b.join("tensors_0001.safetensors"), &tensors)?;

    let (a_s, b_s) = (format!("saved:{}", a.display()), format!("saved:{}", b.display()));
    let report = compare_json(&["--reference", &a_s, "--candidate", &b_s], 0)?;
    let failing: Vec<&str> = report["tensors"]
        .as_array()
        .ok_or("tensors")?
        .iter()
        .filter(|t| t["status"] != "pass")
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(failing, perturbed, "exactly the perturbed tensors fail");
    assert_eq!(report["first_divergence"], perturbed[0]);
    assert_eq!(report["verdict"], "pass", "the graph output was not touched");
    let t = report["tensors"].as_array().and_then(|ts| ts.iter().find(|t| t["name"] == perturbed[0])).ok_or("entry")?;
    assert_eq!(t["worst_iteration"], 1);
    assert_eq!(t["metrics"]["mismatches"], 1);
    assert_eq!(t["metrics"]["worst"]["flat"], 3);
    assert_eq!(t["iterations"].as_array().map(Vec::len), Some(2));
    assert_eq!(t["iterations"][0]["status"], "pass");

    // Perturbing the graph output fails the verdict: exit code 1, and the table says so.
    let out = trtlens()
        .arg("compare")
        .args(["--reference", &a_s, "--candidate", &b_s, "--atol", "0", "--rtol", "0"])
        .output()?;
    assert_eq!(out.status.code(), Some(0));
    let mut out_tensors = tensors.clone();
    if let Some((_, t)) = out_tensors.iter_mut().find(|(n, _)| n == "logits") {
        let mut v = t.to_f32_vec();
        v[0] += 1.0;
        *t = Tensor::from_f32(t.shape(), &v)?;
    }
    write_safetensors(&b.join("tensors_0001.safetensors"), &out_tensors)?;
    let out =
        trtlens().arg("compare").args(["--reference", &a_s, "--candidate", &b_s]).env("NO_COLOR", "1").output()?;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("verdict: FAIL"), "{text}");
    assert!(text.contains("first divergence: features/block1/bn_out"), "{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "line wider than 100 columns: {line:?}");
    }
    assert!(!text.contains('\x1b'), "NO_COLOR and a pipe mean no escape codes");
    Ok(())
}

#[test]
fn per_tensor_tolerances_and_rules() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = sample("mlp_overflow");
    let a = tmp.path().join("a");
    run(&model, "tract", &a, &[]);
    let b = tmp.path().join("b");
    copy_run(&a, &b)?;
    let m = RunDir::open(&a)?.tensors(0)?;
    let mut tensors = Vec::new();
    for name in m.names() {
        let mut t = m.get(name)?.ok_or("listed")?;
        if name == "logits" {
            let v: Vec<f32> = t.to_f32_vec().iter().map(|x| x + 0.003).collect();
            t = Tensor::from_f32(t.shape(), &v)?;
        }
        tensors.push((name.clone(), t));
    }
    write_safetensors(&b.join("tensors_0000.safetensors"), &tensors)?;
    let (a_s, b_s) = (format!("saved:{}", a.display()), format!("saved:{}", b.display()));
    let strict = compare_json(&["--reference", &a_s, "--candidate", &b_s], 1)?;
    assert_eq!(status(&strict, "logits"), "fail");
    let loose = compare_json(&["--reference", &a_s, "--candidate", &b_s, "--atol", "logits:0.01"], 0)?;
    assert_eq!(status(&loose, "logits"), "pass");
    assert_eq!(loose["tolerance"]["overrides"][0]["tensor"], "logits");
    let t = loose["tensors"].as_array().and_then(|ts| ts.iter().find(|t| t["name"] == "logits")).ok_or("logits")?;
    assert_eq!(t["atol"], 0.01);
    // Polygraphy's rule is stricter than allclose: atol 0.002 + rtol 0.001 * |r| passes under
    // allclose for |r| > 1, but polygraphy fails an element whose error exceeds both.
    let a1 = compare_json(&["--reference", &a_s, "--candidate", &b_s, "--atol", "0.002", "--rtol", "0.5"], 0)?;
    assert_eq!(a1["tolerance"]["rule"], "allclose");
    let p1 = compare_json(
        &["--reference", &a_s, "--candidate", &b_s, "--atol", "0.002", "--rtol", "1e-9", "--rule", "polygraphy"],
        1,
    )?;
    assert_eq!(p1["tolerance"]["rule"], "polygraphy");
    Ok(())
}

#[test]
fn bad_input_is_clear() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let a = tmp.path().join("a");
    run(&sample("mlp_overflow"), "tract", &a, &[]);
    let a_s = format!("saved:{}", a.display());
    // A run of another model.
    let out = trtlens()
        .arg("compare")
        .arg(sample("softmax_naive"))
        .args(["--reference", "tract", "--candidate", &a_s])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)?.contains("was made from another model"));
    // Corrupt and missing saved files.
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"lst\": [[\"r\", [{\"outputs\": ")?;
    let out = trtlens()
        .arg("compare")
        .args(["--reference", &a_s, "--candidate", &format!("saved:{}", bad.display())])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("bad.json") && !err.contains("panicked"), "{err}");
    let out = trtlens().arg("compare").args(["--reference", &a_s, "--candidate", "saved:/no/such/run"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    // A runner side without a model.
    let out = trtlens().arg("compare").args(["--reference", "tract", "--candidate", &a_s]).output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)?.contains("needs the model"));

    // Missing tensors are unmatched; a shape mismatch is skipped with a reason; the verdict fails
    // because the output cannot be judged.
    let b = tmp.path().join("b");
    copy_run(&a, &b)?;
    let m = RunDir::open(&a)?.tensors(0)?;
    let mut tensors = Vec::new();
    for name in m.names() {
        let t = m.get(name)?.ok_or("listed")?;
        match name.as_str() {
            "mlp/hidden" => {}
            "logits" => tensors.push((name.clone(), Tensor::from_f32(&[10], &t.to_f32_vec())?)),
            _ => tensors.push((name.clone(), t)),
        }
    }
    write_safetensors(&b.join("tensors_0000.safetensors"), &tensors)?;
    let report = compare_json(&["--reference", &a_s, "--candidate", &format!("saved:{}", b.display())], 1)?;
    // Listed in the run's manifest but absent from its tensor file: skipped, saying so.
    assert_eq!(status(&report, "mlp/hidden"), "skipped");
    let t = report["tensors"].as_array().and_then(|ts| ts.iter().find(|t| t["name"] == "mlp/hidden")).ok_or("entry")?;
    assert!(t["reason"].as_str().is_some_and(|r| r.contains("missing")), "{t}");
    assert_eq!(status(&report, "logits"), "skipped");
    let t = report["tensors"].as_array().and_then(|ts| ts.iter().find(|t| t["name"] == "logits")).ok_or("logits")?;
    assert!(t["reason"].as_str().is_some_and(|r| r.contains("shape")), "{t}");
    assert_eq!(report["verdict"], "fail");
    Ok(())
}

/// Metrics on two Polygraphy `RunResults` files agree with numpy.
#[test]
fn metrics_on_polygraphy_files_agree_with_numpy() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let script = root().join("tests/data/compare/polygraphy_pair.py");
    let out = Process::new("python3").arg(&script).arg(tmp.path()).output();
    let ok = out.as_ref().is_ok_and(|o| o.status.success());
    if !ok {
        let why = out.map_or_else(|e| e.to_string(), |o| String::from_utf8_lossy(&o.stderr).into_owned());
        assert!(!in_ci(), "python3 with numpy and polygraphy is required in CI: {why}");
        println!("skipped: {why}");
        return Ok(());
    }
    let expected: Value = serde_json::from_slice(&std::fs::read(tmp.path().join("expected.json"))?)?;
    for rule in ["allclose", "polygraphy"] {
        let a = format!("saved:{}", tmp.path().join("a.json").display());
        let b = format!("saved:{}", tmp.path().join("b.json").display());
        let report = compare_json(
            &["--reference", &a, "--candidate", &b, "--atol", "1e-3", "--rtol", "1e-2", "--rule", rule],
            1,
        )?;
        for (name, exp) in expected.as_object().ok_or("expected object")? {
            let t =
                report["tensors"].as_array().and_then(|ts| ts.iter().find(|t| &t["name"] == name)).ok_or("tensor")?;
            let m = &t["metrics"];
            for key in ["max_abs", "mean_abs", "max_rel", "mean_rel", "cosine"] {
                let (got, want) = (m[key].as_f64().ok_or(key)?, exp[key].as_f64().ok_or(key)?);
                assert!((got - want).abs() <= 1e-9 * want.abs().max(1e-300), "{name} {key}: {got} vs numpy {want}");
            }
            assert_eq!(m["mismatches"], exp[format!("mismatches_{rule}")], "{name} mismatches ({rule})");
            assert_eq!(m["total"], exp["total"]);
        }
    }
    Ok(())
}

/// One model load and one reference run serve several candidates (what a precision search does):
/// the reference runs once, each candidate runs on exactly its inputs.
#[test]
fn one_reference_many_candidates() -> TestResult {
    use trtlens::compare::Comparison;
    use trtlens::compare::source::SideSpec;
    use trtlens::precision::{Plan, Precision};
    use trtlens::runner::{RunnerKind, RunnerOptions};
    let tmp = tempfile::tempdir()?;
    let mut req = common::compare_request(&sample("regression_overflow"));
    req.save_runs = Some(tmp.path().join("runs"));
    let mut loads: Vec<String> = Vec::new();
    let mut progress = |side: &str, p: trtlens::run::Progress| {
        if matches!(p, trtlens::run::Progress::Loaded { .. }) {
            loads.push(side.to_string());
        }
    };
    let mut c = Comparison::new(&req, &mut progress)?;
    let fp16 = RunnerOptions { plan: Some(Plan::uniform(Precision::Fp16)), ..RunnerOptions::default() };
    let fixed = RunnerOptions {
        plan: Some(Plan::from_cli(Precision::Fp16, &["head/fc2/Gemm".to_string()], &[], &[])?),
        ..RunnerOptions::default()
    };
    let cand = SideSpec::Runner(RunnerKind::CpuFp16);
    let a = c.candidate(&cand, &fp16, None, &mut progress)?;
    let b = c.candidate(&cand, &fixed, None, &mut progress)?;
    let again = c.candidate(&cand, &fp16, None, &mut progress)?;
    assert_eq!(a.verdict, "fail");
    assert_eq!(b.verdict, "pass", "keeping the culprit FP32 passes");
    assert_eq!(again.verdict, "fail");
    assert_eq!(loads.iter().filter(|s| *s == "reference").count(), 1, "the reference ran once: {loads:?}");
    assert_eq!(loads.iter().filter(|s| *s == "candidate").count(), 3);
    assert_eq!(a.inputs, b.inputs, "every candidate ran on the reference's inputs");
    let runs = tmp.path().join("runs");
    for d in ["reference", "candidate", "candidate-2", "candidate-3"] {
        assert!(runs.join(d).join("manifest.json").is_file(), "{d}");
    }
    // Tensors of each candidate compare against the same reference values.
    let first = |r: &trtlens::compare::report::Report| r.tensors.first().map(|t| t.name.clone());
    assert_eq!(first(&a), first(&b));
    Ok(())
}

/// A TensorRT candidate run (as `trtlens run --runner tensorrt-rtx` writes it on a GPU: a manifest
/// with a `trt` section and the production engine's outputs) gives a report with the engine layer
/// per tensor, the precision mismatches and the production verdict, valid against the schema. The
/// run is made here from a tract run (no GPU needed); the report path is the real one.
#[test]
fn tensorrt_runs_report_engine_layers_mismatches_and_the_production_verdict() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (r, c) = (tmp.path().join("ref"), tmp.path().join("cand"));
    let model = sample("mlp_overflow");
    run(&model, "tract", &r, &[]);
    copy_run(&r, &c)?;
    let m = trtlens::model::Model::load(&model)?;
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(c.join("manifest.json"))?)?;
    manifest["runner"]["name"] = "tensorrt-rtx".into();
    let nodes: Vec<String> = m.graph.nodes.iter().map(trtlens::model::graph::Node::display_name).collect();
    let tensors: Vec<Value> = m
        .graph
        .captured()
        .iter()
        .map(|t| serde_json::json!({"onnx": t, "engine": t, "dtype": "float32", "reason": null}))
        .collect();
    let outputs: Vec<Value> =
        m.graph.captured().iter().map(|t| serde_json::json!({"name": t, "dtype": "float32"})).collect();
    manifest["trt"] = serde_json::json!({
        "build_dir": "/cache/engines/k",
        "engine_key": "k",
        "cache_hit": false,
        "tensor_map": {
            "schema": "trtlens.tensor_map/1",
            "trt": {"flavour": "tensorrt-rtx", "version": "1.7.1.116"},
            "observe": "all",
            "precision_mode": "strict",
            "plan": null,
            "tensors": tensors,
            "layers": [{"name": "__myl_fused_0", "type": "kgen", "onnx_nodes": nodes, "inputs": [], "outputs": outputs}],
            "precision_mismatches": [{"onnx_node": "mlp/fc1/MatMul", "plan": "fp16", "engine": "fp32"}]
        },
        "production": {"engine_key": "p", "files": ["production_0000.safetensors"]}
    });
    std::fs::write(c.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
    // The production engine's graph output is off by one: its verdict fails where the marked one passes.
    let logits = RunDir::open(&r)?.tensors(0)?.get("logits")?.ok_or("logits")?;
    let shifted: Vec<f32> = logits.to_f32_vec().iter().map(|v| v + 1.0).collect();
    write_safetensors(
        &c.join("production_0000.safetensors"),
        &[("logits".into(), Tensor::from_f32(logits.shape(), &shifted)?)],
    )?;

    let rs = format!("saved:{}", r.display());
    let cs = format!("saved:{}", c.display());
    let report = compare_json(&["--reference", &rs, "--candidate", &cs], 0)?;
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["trt"]["flavour"], "tensorrt-rtx");
    assert_eq!(report["trt"]["mapped"], m.graph.captured().len());
    assert_eq!(report["trt"]["precision_mismatches"][0]["onnx_node"], "mlp/fc1/MatMul");
    assert_eq!(report["trt"]["production"]["verdict"], "fail");
    assert_eq!(report["trt"]["production"]["differs"], true);
    let notes = report["notes"].as_array().ok_or("notes")?;
    assert!(
        notes.iter().any(|n| n.as_str().is_some_and(|n| n.contains("marking every tensor changed the outputs"))),
        "{notes:?}"
    );
    let t =
        report["tensors"].as_array().and_then(|ts| ts.iter().find(|t| t["name"] == "mlp/hidden")).ok_or("tensor")?;
    assert_eq!(t["engine"]["layer"], "__myl_fused_0");
    assert_eq!(t["engine"]["onnx_nodes"].as_array().map(Vec::len), Some(nodes.len()));
    let table = trtlens().args(["compare", "--reference", &rs, "--candidate", &cs]).env("NO_COLOR", "1").output()?;
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("engine: tensorrt-rtx 1.7.1.116 --observe all: 5/5 tensors exposed"), "{table}");
    assert!(table.contains("precision mismatch: mlp/fc1/MatMul (plan fp16, engine fp32)"), "{table}");
    // Reports of other candidates carry neither key.
    let plain = compare_json(&["--reference", &rs, "--candidate", &rs], 0)?;
    assert!(plain.get("trt").is_none() && plain["tensors"][0].get("engine").is_none());
    Ok(())
}
