//! The binary's behaviour on good and bad input: exit codes, one-line errors that name the problem,
//! and no partial run directory left behind.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use prost::Message;
use trtlens::model::proto::{
    GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto, TypeProto, ValueInfoProto,
    data_type, tensor_shape_proto, type_proto,
};
use trtlens::tensor::Tensor;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn vi(name: &str, elem: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                None => tensor_shape_proto::dimension::Value::DimParam("batch".into()),
            }),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

use trtlens::samples::builder::node_proto as node;

/// x[2,3] -> Mul(w) -> Relu -> y, with w an initializer (optionally external).
fn model(op: &str, batch_dynamic: bool, external: Option<&str>) -> ModelProto {
    let w = Tensor::from_f32(&[2, 3], &[1.0, -2.0, 3.0, -4.0, 5.0, -6.0]).expect("size");
    let mut w = trtlens::model::tensor_proto::from_tensor("w", &w);
    if let Some(file) = external {
        w.raw_data = None;
        w.data_location = Some(trtlens::model::proto::DATA_LOCATION_EXTERNAL);
        w.external_data = vec![
            StringStringEntryProto { key: Some("location".into()), value: Some(file.into()) },
            StringStringEntryProto { key: Some("length".into()), value: Some("24".into()) },
        ];
    }
    let first = if batch_dynamic { None } else { Some(2) };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: vec![node("mul", "Mul", &["x", "w"], &["m"]), node("act", op, &["m"], &["y"])],
            initializer: vec![w],
            input: vec![vi("x", data_type::FLOAT, &[first, Some(3)])],
            output: vec![vi("y", data_type::FLOAT, &[first, Some(3)])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn write_model(dir: &Path, name: &str, m: &ModelProto) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, m.encode_to_vec()).expect("write model");
    p
}

fn trtlens() -> Command {
    Command::cargo_bin("trtlens").expect("binary")
}

/// Runs the command, expects exit code 2 and a one-line error containing every `needles`.
fn expect_error(cmd: &mut Command, needles: &[&str]) -> TestResult {
    let out = cmd.output()?;
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line expected, got: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(errors[0].contains(n), "error line {:?} should mention {n:?}", errors[0]);
    }
    Ok(())
}

#[test]
fn runs_and_saves_every_tensor() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let m = write_model(tmp.path(), "m.onnx", &model("Relu", false, None));
    let save = tmp.path().join("run");
    trtlens().args(["run"]).arg(&m).arg("--save").arg(&save).assert().success();
    let run = trtlens::store::RunDir::open(&save)?;
    let names: Vec<_> = run.manifest.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["m", "y"]);
    let x = run.inputs(0)?.get("x")?.expect("input saved");
    let y = run.tensors(0)?.get("y")?.expect("output saved");
    let w = [1.0, -2.0, 3.0, -4.0, 5.0, -6.0];
    let want: Vec<f64> =
        x.to_f64_vec().iter().zip(w).map(|(x, w)| (f64::from((*x as f32) * (w as f32))).max(0.0)).collect();
    assert_eq!(y.to_f64_vec(), want);
    // The same inputs again from the run directory give the same tensors.
    let again = tmp.path().join("again");
    trtlens().args(["run"]).arg(&m).arg("--save").arg(&again).arg("--load-inputs").arg(&save).assert().success();
    assert_eq!(trtlens::store::RunDir::open(&again)?.tensors(0)?.get("y")?, Some(y));
    Ok(())
}

#[test]
fn info_summarises() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let m = write_model(tmp.path(), "m.onnx", &model("Relu", true, None));
    let out = trtlens().arg("info").arg(&m).output()?;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout)?;
    for needle in ["opsets: ai.onnx 17", "batchx3", "Mul", "Relu", "parameters 6 (24 B)"] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&trtlens().arg("info").arg(&m).arg("--json").output()?.stdout)?;
    assert_eq!(json["node_count"], 2);
    Ok(())
}

#[test]
fn missing_and_non_onnx_files() -> TestResult {
    let tmp = tempfile::tempdir()?;
    expect_error(trtlens().arg("info").arg(tmp.path().join("nope.onnx")), &["nope.onnx", "cannot read model"])?;
    let text = tmp.path().join("notes.onnx");
    std::fs::write(&text, "this is not a model\n")?;
    expect_error(trtlens().arg("info").arg(&text), &["notes.onnx", "not an ONNX model"])?;
    let good = model("Relu", false, None).encode_to_vec();
    let trunc = tmp.path().join("trunc.onnx");
    std::fs::write(&trunc, &good[..good.len() / 2])?;
    expect_error(trtlens().arg("info").arg(&trunc), &["trunc.onnx"])?;
    let empty = tmp.path().join("empty.onnx");
    std::fs::write(&empty, b"")?;
    expect_error(trtlens().arg("info").arg(&empty), &["empty.onnx", "empty"])?;
    Ok(())
}

#[test]
fn external_data_is_loaded_or_reported() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let m = write_model(tmp.path(), "ext.onnx", &model("Relu", false, Some("ext.weights")));
    expect_error(trtlens().arg("info").arg(&m), &["ext.weights", "'w'", "missing"])?;
    let w: Vec<u8> = [1.0f32, -2.0, 3.0, -4.0, 5.0, -6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(tmp.path().join("ext.weights"), &w[..12])?;
    expect_error(trtlens().arg("info").arg(&m), &["ext.weights", "needs 24 bytes"])?;
    std::fs::write(tmp.path().join("ext.weights"), &w)?;
    trtlens().arg("run").arg(&m).arg("--save").arg(tmp.path().join("r")).assert().success();
    Ok(())
}

#[test]
fn unknown_op_fails_cleanly_without_a_partial_run() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let m = write_model(tmp.path(), "m.onnx", &model("NoSuchOpAnywhere", false, None));
    let save = tmp.path().join("run");
    expect_error(trtlens().arg("run").arg(&m).arg("--save").arg(&save), &["NoSuchOpAnywhere"])?;
    let left: Vec<_> = std::fs::read_dir(tmp.path())?.filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("m.onnx")], "nothing but the model may remain");
    Ok(())
}

#[test]
fn dynamic_dims_need_a_shape() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let m = write_model(tmp.path(), "m.onnx", &model("Relu", true, None));
    let save = tmp.path().join("run");
    expect_error(trtlens().arg("run").arg(&m).arg("--save").arg(&save), &["'x'", "'batch'", "--shape x:"])?;
    expect_error(trtlens().arg("run").arg(&m).arg("--save").arg(&save).args(["--shape", "x:4x5"]), &["axis 1"])?;
    expect_error(trtlens().arg("run").arg(&m).arg("--save").arg(&save).args(["--shape", "q:4x3"]), &["'q'"])?;
    trtlens().arg("run").arg(&m).arg("--save").arg(&save).args(["--shape", "x:2x3"]).assert().success();
    let run = trtlens::store::RunDir::open(&save)?;
    assert_eq!(run.manifest.tensors[1].shape, vec![2, 3]);
    assert_eq!(run.manifest.inputs.shapes["x"], vec![2, 3]);
    Ok(())
}

type Case = (Vec<(String, Tensor)>, Vec<&'static str>);

#[test]
fn loaded_inputs_are_checked() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let m = write_model(tmp.path(), "m.onnx", &model("Relu", false, None));
    let save = tmp.path().join("run");
    let file = tmp.path().join("in.safetensors");
    let cases: Vec<Case> = vec![
        (vec![("z".into(), Tensor::from_f32(&[2, 3], &[0.0; 6])?)], vec!["'z'", "not an input"]),
        (vec![("x".into(), Tensor::from_f32(&[2, 4], &[0.0; 8])?)], vec!["'x'", "axis 1"]),
        (vec![("x".into(), Tensor::from_i64(&[2, 3], &[0; 6])?)], vec!["'x'", "int64", "float32"]),
        (vec![], vec!["no value for model input 'x'"]),
    ];
    for (tensors, needles) in cases {
        trtlens::store::write_safetensors(&file, &tensors)?;
        expect_error(trtlens().arg("run").arg(&m).arg("--save").arg(&save).arg("--load-inputs").arg(&file), &needles)?;
        assert!(!save.exists());
    }
    // NaN and Inf are allowed but flagged.
    let x = Tensor::from_f32(&[2, 3], &[f32::NAN, 1.0, f32::INFINITY, 0.0, 0.0, 0.0])?;
    trtlens::store::write_safetensors(&file, &[("x".into(), x)])?;
    let out = trtlens().arg("run").arg(&m).arg("--save").arg(&save).arg("--load-inputs").arg(&file).output()?;
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stderr)?.contains("warning: input 'x' (iteration 0) contains 1 NaN and 1 Inf values")
    );
    Ok(())
}

#[test]
fn destinations_are_protected() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let m = write_model(tmp.path(), "m.onnx", &model("Relu", false, None));
    let precious = tmp.path().join("precious");
    std::fs::create_dir(&precious)?;
    std::fs::write(precious.join("notes.txt"), "keep me")?;
    expect_error(
        trtlens().arg("run").arg(&m).arg("--save").arg(&precious),
        &["precious", "not a trtlens run directory"],
    )?;
    assert!(precious.join("notes.txt").exists());
    let under_file = tmp.path().join("m.onnx").join("run");
    expect_error(trtlens().arg("run").arg(&m).arg("--save").arg(&under_file), &["run"])?;
    Ok(())
}

#[test]
fn usage_errors_exit_2() -> TestResult {
    let out = trtlens().args(["run", "x.onnx"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    let tmp = tempfile::tempdir()?;
    let m = write_model(tmp.path(), "m.onnx", &model("Relu", false, None));
    expect_error(trtlens().arg("run").arg(&m).args(["--save", "r", "--val-range", "x:3"]), &["--val-range"])?;
    expect_error(trtlens().arg("run").arg(&m).args(["--save", "r", "--iterations", "0"]), &["--iterations"])?;
    Ok(())
}
