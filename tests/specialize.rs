//! Control-flow specialization end to end (`trtlens run`/`compare`/`info`): an `If` whose condition
//! the run's inputs fix is replaced by the branch it takes, on every runner, and its inner tensors
//! are captured, compared and toggleable; `--no-specialize` keeps the old behaviour; conditions
//! that differ between iterations keep their `If` and say why.
//!
//! ONNX Runtime parts need `pip install onnxruntime`: skipped locally without it, a failure under
//! `CI`.

mod common;
use common::{in_ci, sample};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use trtlens::model::proto::{ModelProto, data_type};
use trtlens::model::specialize::{ELSE_BRANCH, Specialized, THEN_BRANCH};
use trtlens::samples::builder::{Attr, GraphBuilder};
use trtlens::store::RunDir;
use trtlens::tensor::Tensor;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn trtlens() -> Command {
    Command::cargo_bin("trtlens").expect("binary")
}

#[cfg(feature = "onnxruntime")]
fn ort_available() -> bool {
    match trtlens::runner::ort::load(None) {
        Ok(_) => true,
        Err(e) => {
            assert!(!in_ci(), "onnxruntime is required in CI but cannot be loaded: {e}");
            println!("skipped onnxruntime parts: {e}");
            false
        }
    }
}

#[cfg(not(feature = "onnxruntime"))]
fn ort_available() -> bool {
    assert!(!in_ci(), "CI builds the onnxruntime feature");
    false
}

/// `trtlens run MODEL --runner R --save DIR EXTRA...`, expecting success; the run directory.
fn run(model: &Path, runner: &str, save: &Path, extra: &[&str]) -> Result<RunDir, Box<dyn std::error::Error>> {
    let out = trtlens().arg("run").arg(model).args(["--runner", runner, "--save"]).arg(save).args(extra).output()?;
    assert!(out.status.success(), "{runner}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(RunDir::open(save)?)
}

fn names(run: &RunDir) -> Vec<String> {
    run.manifest.tensors.iter().map(|t| t.name.clone()).collect()
}

/// `compare --json`, validated against the published schema.
fn compare_json(args: &[&str], code: i32) -> Result<Value, Box<dyn std::error::Error>> {
    let out = trtlens().arg("compare").args(args).args(["--json", "-q"]).output()?;
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let schema: Value = serde_json::from_slice(&std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("report-schema.json"),
    )?)?;
    let v = jsonschema::validator_for(&schema)?;
    let errors: Vec<String> = v.iter_errors(&report).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "report does not match docs/report-schema.json: {errors:#?}");
    Ok(report)
}

fn spec(node: &str, condition: &str, value: bool, inputs: &[&str]) -> Specialized {
    Specialized {
        node: node.into(),
        condition: condition.into(),
        value,
        branch: if value { THEN_BRANCH } else { ELSE_BRANCH }.into(),
        inputs: inputs.iter().map(ToString::to_string).collect(),
    }
}

/// What the vad sample specializes to for any sample rate but 8000: the 16 kHz branch, and inside it
/// the decoder's squeeze of the batch axis (1).
fn vad_decisions() -> Vec<Specialized> {
    vec![
        spec("/If", "/Equal_output_0", false, &["sr"]),
        spec("/_model/decoder/If", "/_model/decoder/Equal_output_0", true, &["input"]),
    ]
}

const VAD_INNER: [&str; 4] = [
    "/_model/stft/Conv_output_0",
    "/_model/encoder/0/activation/Relu_output_0",
    "/_model/decoder/If_output_0",
    "/_model/decoder/ReduceMean_output_0",
];

#[test]
fn the_vad_sample_runs_on_tract_and_onnxruntime_with_its_inner_tensors() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = sample("vad_if_branches");
    let original = trtlens::model::Model::load(&model)?;
    let tract = run(&model, "tract", &tmp.path().join("tract"), &["-q"])?;
    let m = &tract.manifest;
    assert_eq!(m.specialized, vad_decisions());
    assert_eq!(m.model.sha256, original.sha256, "runs keep the user's model identity");
    assert_eq!(m.model.node_count, original.graph.nodes.len());
    assert!(m.not_captured.is_empty() && m.not_specialized.is_empty() && m.subgraph_tensors.is_empty());
    let captured = names(&tract);
    for inner in VAD_INNER {
        assert!(captured.iter().any(|n| n == inner), "{inner} is captured: {captured:?}");
    }
    let e = tract.entry("/_model/decoder/If_output_0").ok_or("entry")?;
    assert_eq!(
        (e.op_type.as_deref(), e.shape.as_slice()),
        (Some("Squeeze"), &[8, 15][..]),
        "the If output keeps its name"
    );
    // sr = 16000 takes the same branch as the default random 0/1.
    let sr16k = run(&model, "tract", &tmp.path().join("sr16k"), &["-q", "--val-range", "sr:16000,16000"])?;
    assert_eq!(sr16k.manifest.specialized, vad_decisions());

    if !ort_available() {
        return Ok(());
    }
    let ort = run(&model, "onnxruntime", &tmp.path().join("ort"), &["-q"])?;
    assert_eq!(ort.manifest.specialized, vad_decisions());
    assert_eq!(names(&ort), captured, "both runners capture the same tensors in the same order");
    let (r, c) = (
        format!("saved:{}", tmp.path().join("ort").display()),
        format!("saved:{}", tmp.path().join("tract").display()),
    );
    let report =
        compare_json(&[model.to_str().ok_or("path")?, "--reference", &r, "--candidate", &c, "--atol", "1e-5"], 0)?;
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["specialized"], serde_json::to_value(vad_decisions())?);
    assert_eq!(report["unmatched"]["reference"].as_array().map(Vec::len), Some(0));
    let conv =
        report["tensors"].as_array().ok_or("tensors")?.iter().find(|t| t["name"] == VAD_INNER[0]).ok_or("conv")?;
    assert_eq!(conv["node"], "/_model/stft/Conv", "metadata comes from the specialized graph");
    assert_eq!(conv["status"], "pass");
    Ok(())
}

#[test]
fn inner_nodes_take_a_precision_plan() -> TestResult {
    // cpu-fp16 converts the specialized graph: a node of the inlined branch can be kept FP32.
    let model = sample("vad_if_branches");
    let report = compare_json(
        &[
            model.to_str().ok_or("path")?,
            "--reference",
            "tract",
            "--candidate",
            "cpu-fp16",
            "--keep-fp32",
            "/_model/stft/Conv",
            "--atol",
            "1e-2",
            "--rtol",
            "1e-2",
        ],
        0,
    )?;
    let dtype = |name: &str| {
        report["tensors"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["name"] == name))
            .map(|t| t["dtype_candidate"].clone())
    };
    assert_eq!(dtype("/_model/stft/Conv_output_0"), Some("float32".into()));
    assert_eq!(dtype("/_model/encoder/0/activation/Relu_output_0"), Some("float16".into()));
    assert_eq!(report["specialized"], serde_json::to_value(vad_decisions())?);
    Ok(())
}

#[test]
fn no_specialize_keeps_the_graph_as_is() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = sample("vad_if_branches");
    // tract analyses the 8 kHz branch with the 16 kHz frame and fails, with one clear error line.
    let out = trtlens()
        .arg("run")
        .arg(&model)
        .args(["--runner", "tract", "--no-specialize", "--save"])
        .arg(tmp.path().join("t"))
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr)?;
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("runner tract") && errors[0].contains("/_model_8k/"), "{stderr}");
    assert!(!tmp.path().join("t").exists(), "no partial run directory");
    if !ort_available() {
        return Ok(());
    }
    let ort = run(&model, "onnxruntime", &tmp.path().join("o"), &["-q", "--no-specialize"])?;
    assert_eq!(names(&ort), ["/Equal_output_0", "/If_output_0", "output"], "top-level tensors only");
    assert!(ort.manifest.specialized.is_empty());
    let inner = ort.manifest.excluded.iter().find(|e| e.name == VAD_INNER[0]).ok_or("inner tensor listed")?;
    assert!(inner.reason.contains("--no-specialize"), "{}", inner.reason);
    let report = compare_json(
        &[model.to_str().ok_or("path")?, "--reference", "onnxruntime", "--candidate", "onnxruntime", "--no-specialize"],
        0,
    )?;
    assert!(report.get("specialized").is_none(), "no specialization, no key");
    assert_eq!(report["tensors"].as_array().map(Vec::len), Some(3));
    Ok(())
}

/// `x[1,4]`, `mode` int64: `y = If(mode == 1) { Relu(x) } else { Neg(x) }`; both branches fit.
fn mode_if() -> ModelProto {
    let mut b = GraphBuilder::new("mode_if", 7);
    b.input("x", data_type::FLOAT, &[1, 4]);
    b.input("mode", data_type::INT64, &[]);
    b.constant_i64("one", &[], &[1]);
    b.node_typed("Equal", "sel/Equal", &["mode", "one"], &[("sel/is_one", data_type::BOOL, &[])], &[]);
    let mut then = b.body("relu_branch");
    then.node("Relu", "relu/Relu", &["x"], &[("relu/out", &[1, 4])], &[]);
    then.output("relu/out");
    let mut els = b.body("neg_branch");
    els.node("Neg", "neg/Neg", &["x"], &[("neg/out", &[1, 4])], &[]);
    els.output("neg/out");
    b.if_node("sel/If", "sel/is_one", then, els, &[("y", &[1, 4])]);
    b.output("y");
    b.build("mode-selected If")
}

/// `x[1,4]`: `y = If(Constant true) { Relu(x) } else { Neg(x) }`.
fn constant_if() -> ModelProto {
    let mut b = GraphBuilder::new("constant_if", 7);
    b.input("x", data_type::FLOAT, &[1, 4]);
    let t = Tensor::from_bool(&[], &[true]).expect("bool");
    b.node_typed(
        "Constant",
        "cfg/Constant",
        &[],
        &[("cfg/use_relu", data_type::BOOL, &[])],
        &[("value", Attr::Tensor(Box::new(trtlens::model::tensor_proto::from_tensor("", &t))))],
    );
    let mut then = b.body("relu_branch");
    then.node("Relu", "relu/Relu", &["x"], &[("relu/out", &[1, 4])], &[]);
    then.output("relu/out");
    let mut els = b.body("neg_branch");
    els.node("Neg", "neg/Neg", &["x"], &[("neg/out", &[1, 4])], &[]);
    els.output("neg/out");
    b.if_node("cfg/If", "cfg/use_relu", then, els, &[("y", &[1, 4])]);
    b.output("y");
    b.build("constant If")
}

fn write(dir: &Path, name: &str, m: &ModelProto) -> Result<PathBuf, std::io::Error> {
    let p = dir.join(name);
    std::fs::write(&p, trtlens::samples::encode(m))?;
    Ok(p)
}

#[test]
fn iterations_that_disagree_keep_the_if_and_say_why() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = write(tmp.path(), "mode_if.onnx", &mode_if())?;
    let r = run(&model, "tract", &tmp.path().join("mixed"), &["-q", "--iterations", "8"])?;
    let modes: Vec<i64> = r
        .load_inputs()?
        .iter()
        .map(|it| it.iter().find(|(n, _)| n == "mode").map_or(-1, |(_, t)| t.get_i64(0)))
        .collect();
    assert!(modes.contains(&0) && modes.contains(&1), "seed 1 draws both modes: {modes:?}");
    let m = &r.manifest;
    assert!(m.specialized.is_empty());
    assert_eq!(m.not_specialized.len(), 1);
    let why = &m.not_specialized[0].reason;
    assert!(why.contains("differs between iterations") && why.contains("sel/is_one"), "{why}");
    assert!(m.warnings.iter().any(|w| w.contains("sel/If") && w.contains("differs")), "{:?}", m.warnings);
    let inner = m.excluded.iter().find(|e| e.name == "relu/out").ok_or("branch tensor listed")?;
    assert!(inner.reason.contains("differs between iterations"), "{}", inner.reason);
    // The comparison tells it too.
    let saved = format!("saved:{}", tmp.path().join("mixed").display());
    let report = compare_json(&[model.to_str().ok_or("path")?, "--reference", &saved, "--candidate", "tract"], 0)?;
    let notes = report["notes"].as_array().ok_or("notes")?;
    assert!(notes.iter().any(|n| n.as_str().is_some_and(|n| n.contains("not specialized"))), "{notes:?}");
    assert!(report.get("specialized").is_none());

    // Fixing the mode for the run specializes it.
    let one = run(&model, "tract", &tmp.path().join("one"), &["-q", "--iterations", "3", "--val-range", "mode:1,1"])?;
    assert_eq!(one.manifest.specialized, [spec("sel/If", "sel/is_one", true, &["mode"])]);
    assert_eq!(names(&one), ["sel/is_one", "y"]);
    Ok(())
}

#[test]
fn a_constant_condition_is_inlined_and_info_says_so() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = write(tmp.path(), "constant_if.onnx", &constant_if())?;
    let out = trtlens().arg("info").arg(&model).output()?;
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("cfg/If") && text.contains("constant condition (true)"), "{text}");
    let json: Value = serde_json::from_slice(&trtlens().arg("info").arg(&model).arg("--json").output()?.stdout)?;
    assert_eq!(json["control_flow"][0]["constant"], true);
    let r = run(&model, "tract", &tmp.path().join("r"), &["-q"])?;
    assert_eq!(r.manifest.specialized, [spec("cfg/If", "cfg/use_relu", true, &[])]);
    let y = r.tensors(0)?.get("y")?.ok_or("y")?;
    let x = r.inputs(0)?.get("x")?.ok_or("x")?;
    let relu: Vec<f64> = x.to_f64_vec().iter().map(|v| v.max(0.0)).collect();
    assert_eq!(y.to_f64_vec(), relu);
    // info on the sample: the If is selected by an input.
    let text = String::from_utf8(trtlens().arg("info").arg(sample("vad_if_branches")).output()?.stdout)?;
    assert!(text.contains("/If") && text.contains("input-selected by sr"), "{text}");
    Ok(())
}

#[test]
fn convert_writes_the_graph_a_run_specialized() -> TestResult {
    // For a TensorRT build that marks the same tensors the reference run captured.
    let tmp = tempfile::tempdir()?;
    let model = sample("vad_if_branches");
    run(&model, "tract", &tmp.path().join("r"), &["-q"])?;
    let out = tmp.path().join("mixed.onnx");
    trtlens()
        .arg("convert")
        .arg(&model)
        .arg("--specialize-from")
        .arg(tmp.path().join("r"))
        .arg("-o")
        .arg(&out)
        .arg("-q")
        .assert()
        .success();
    let mixed = trtlens::model::Model::load(&out)?;
    assert!(!mixed.graph.nodes.iter().any(|n| n.op_type == "If"));
    assert!(mixed.graph.nodes.iter().any(|n| n.name == "/_model/stft/Conv"));
    // A run of another model is refused.
    run(&sample("mlp_overflow"), "tract", &tmp.path().join("other"), &["-q"])?;
    let o = trtlens()
        .arg("convert")
        .arg(&model)
        .arg("--specialize-from")
        .arg(tmp.path().join("other"))
        .arg("-o")
        .arg(tmp.path().join("x.onnx"))
        .output()?;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8(o.stderr)?.contains("another model"));
    Ok(())
}

/// `x[1,4]`: `y = Loop(3 times) { v + 1 }` (a `Loop` node, whose body is never inlined).
fn loop_model() -> ModelProto {
    use trtlens::model::proto::{GraphProto, NodeProto};
    use trtlens::samples::builder::{node_proto, value_info};
    let body = GraphProto {
        name: Some("step".into()),
        node: vec![
            node_proto("step/cond", "Identity", &["cond_in"], &["cond_out"]),
            node_proto("step/Add", "Add", &["v_in", "one"], &["step/added"]),
        ],
        input: vec![
            value_info("i", data_type::INT64, &[]),
            value_info("cond_in", data_type::BOOL, &[]),
            value_info("v_in", data_type::FLOAT, &[1, 4]),
        ],
        output: vec![value_info("cond_out", data_type::BOOL, &[]), value_info("step/added", data_type::FLOAT, &[1, 4])],
        ..GraphProto::default()
    };
    let mut b = GraphBuilder::new("loop", 1);
    b.input("x", data_type::FLOAT, &[1, 4]);
    b.constant_i64("trips", &[], &[3]);
    b.initializer("go", &Tensor::from_bool(&[], &[true]).expect("bool"));
    b.constant("one", &[], &[1.0]);
    b.node("Loop", "repeat/Loop", &["trips", "go", "x"], &[("y", &[1, 4])], &[]);
    b.output("y");
    let mut m = b.build("a Loop");
    if let Some(n) = m.graph.as_mut().and_then(|g| g.node.iter_mut().find(|n: &&mut NodeProto| n.op() == "Loop")) {
        n.attribute.push(Attr::Graph(Box::new(body)).to_proto("body"));
    }
    m
}

#[test]
fn loop_bodies_stay_uncaptured_and_are_listed() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = write(tmp.path(), "loop.onnx", &loop_model())?;
    let m = trtlens::model::Model::load(&model)?;
    let excluded = trtlens::run::excluded_list(&m, &[], true);
    let added = excluded.iter().find(|e| e.name == "step/added").ok_or("body tensor listed")?;
    assert_eq!(added.reason, trtlens::run::LOOP_BODY_REASON);
    assert_eq!(added.reason, "inside a Loop/Scan body (not captured)");
    if ort_available() {
        let r = run(&model, "onnxruntime", &tmp.path().join("r"), &["-q"])?;
        assert_eq!(names(&r), ["y"]);
        assert!(
            r.manifest.excluded.iter().any(|e| e.name == "step/added" && e.reason == trtlens::run::LOOP_BODY_REASON)
        );
        let y = r.tensors(0)?.get("y")?.ok_or("y")?.to_f64_vec();
        let x = r.inputs(0)?.get("x")?.ok_or("x")?.to_f64_vec();
        let want: Vec<f64> = x.iter().map(|v| v + 3.0).collect();
        assert!(y.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6), "{y:?} vs {want:?}");
    }
    Ok(())
}
