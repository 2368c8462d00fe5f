//! The ONNX Runtime runner on small models built here with the crate's own protobuf types.
//!
//! Needs `libonnxruntime.so` (found like the CLI finds it: `ORT_DYLIB_PATH`, the Python `onnxruntime`
//! package, library directories). Without it each test prints "skipped: onnxruntime not installed" and
//! returns, except under `CI`, where a missing library fails the test.
#![cfg(feature = "onnxruntime")]

use std::path::{Path, PathBuf};

use prost::Message;
use trtlens::model::Model;
use trtlens::model::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    ValueInfoProto, attribute_type, data_type,
};
use trtlens::model::tensor_proto::from_tensor;
use trtlens::runner::ort::OrtRunner;
use trtlens::runner::{Runner, RunnerOptions, Tensors, find};
use trtlens::samples::builder::value_info;
use trtlens::tensor::{DType, Tensor};
use trtlens::{Error, Result};

/// True when ONNX Runtime can be loaded; otherwise prints the skip line, or panics under `CI`.
fn ort_available() -> bool {
    match trtlens::runner::ort::load(None) {
        Ok(_) => true,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "onnxruntime is required in CI but cannot be loaded: {e}");
            println!("skipped: onnxruntime not installed ({e})");
            false
        }
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    trtlens::samples::builder::node_proto(&format!("{op}_{}", outputs.join("_")), op, inputs, outputs)
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INT),
        i: Some(v),
        ..AttributeProto::default()
    }
}

fn model_proto(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    init: Vec<TensorProto>,
) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        producer_name: Some("trtlens-tests".into()),
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: nodes,
            input: inputs,
            output: outputs,
            initializer: init,
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    }
}

/// Write the model into `dir` and load it back like the CLI does.
fn save_and_load(dir: &Path, file: &str, proto: &ModelProto) -> Result<Model> {
    let path = dir.join(file);
    std::fs::write(&path, proto.encode_to_vec()).map_err(|e| Error::model(&path, e.to_string()))?;
    Model::load(&path)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

fn tensor<'a>(t: &'a Tensors, name: &str) -> &'a Tensor {
    find(t, name).unwrap_or_else(|| panic!("tensor '{name}' was not captured"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}

fn t<E: std::fmt::Debug, T>(r: std::result::Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e:?}"))
}

/// x -> Neg -> Relu -> Mul(c) -> y, every intermediate captured, values checked by hand.
#[test]
fn captures_intermediates_with_exact_values() -> Result<()> {
    if !ort_available() {
        return Ok(());
    }
    let dir = tempdir();
    let scale = t(Tensor::from_f32(&[1], &[2.5]));
    let proto = model_proto(
        vec![node("Neg", &["x"], &["n"]), node("Relu", &["n"], &["r"]), node("Mul", &["r", "c"], &["y"])],
        vec![value_info("x", data_type::FLOAT, &[2, 3])],
        vec![value_info("y", data_type::FLOAT, &[2, 3])],
        vec![from_tensor("c", &scale)],
    );
    let model = save_and_load(dir.path(), "chain.onnx", &proto)?;
    let capture = names(&["n", "r", "y", "x", "c"]);
    let mut runner = OrtRunner::new(&model, &capture, &RunnerOptions::default())?;
    assert_eq!(runner.name(), "onnxruntime");
    let version = runner.version();
    assert!(version.split('.').count() >= 2 && version.starts_with(|c: char| c.is_ascii_digit()), "{version}");

    let x = [-1.5_f32, 0.0, 2.0, -4.0, 3.25, -0.125];
    let inputs: Tensors = vec![("x".into(), t(Tensor::from_f32(&[2, 3], &x)))];
    let out = runner.run(&inputs)?;
    assert!(out.not_captured.is_empty(), "{:?}", out.not_captured);
    let order: Vec<&str> = out.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(order, ["n", "r", "y", "x", "c"]);

    let neg: Vec<f32> = x.iter().map(|v| -v).collect();
    let relu: Vec<f32> = neg.iter().map(|v| v.max(0.0)).collect();
    let y: Vec<f32> = relu.iter().map(|v| v * 2.5).collect();
    assert_eq!(y, [3.75, 0.0, 0.0, 10.0, 0.0, 0.3125]);
    for (name, want) in [("n", &neg), ("r", &relu), ("y", &y)] {
        let got = tensor(&out.tensors, name);
        assert_eq!(got.dtype(), DType::Float32, "{name}");
        assert_eq!(got.shape(), [2, 3], "{name}");
        assert_eq!(&got.to_f32_vec(), want, "{name}");
    }
    assert_eq!(tensor(&out.tensors, "x"), &inputs[0].1);
    assert_eq!(tensor(&out.tensors, "c"), &scale);
    assert!(out.seconds >= 0.0);

    // A second iteration on the same session, and a second runner sharing the process-wide environment.
    let again = runner.run(&inputs)?;
    assert_eq!(again.tensors, out.tensors);
    let mut second = OrtRunner::new(&model, &names(&["r"]), &RunnerOptions::default())?;
    let r2 = second.run(&inputs)?;
    assert_eq!(tensor(&r2.tensors, "r").to_f32_vec(), relu);
    Ok(())
}

/// int64 arithmetic and bool comparisons come back with their own dtypes.
#[test]
fn captures_int64_and_bool() -> Result<()> {
    if !ort_available() {
        return Ok(());
    }
    let dir = tempdir();
    let one = t(Tensor::from_i64(&[], &[1]));
    let limit = t(Tensor::from_i64(&[], &[3]));
    let proto = model_proto(
        vec![
            node("Add", &["x", "one"], &["a"]),
            node("Greater", &["a", "limit"], &["gt"]),
            node("Not", &["gt"], &["le"]),
            node("Where", &["le", "a", "x"], &["y"]),
        ],
        vec![value_info("x", data_type::INT64, &[5])],
        vec![value_info("y", data_type::INT64, &[5])],
        vec![from_tensor("one", &one), from_tensor("limit", &limit)],
    );
    let model = save_and_load(dir.path(), "ints.onnx", &proto)?;
    let mut runner = OrtRunner::new(&model, &names(&["a", "gt", "le", "y"]), &RunnerOptions::default())?;
    let x = [-(1_i64 << 40), 0, 2, 3, 1 << 50];
    let out = runner.run(&vec![("x".into(), t(Tensor::from_i64(&[5], &x)))])?;
    assert!(out.not_captured.is_empty(), "{:?}", out.not_captured);

    let a = tensor(&out.tensors, "a");
    assert_eq!(a.dtype(), DType::Int64);
    assert_eq!((0..5).map(|i| a.get_i64(i)).collect::<Vec<_>>(), x.map(|v| v + 1));
    let gt = tensor(&out.tensors, "gt");
    assert_eq!((gt.dtype(), gt.shape()), (DType::Bool, &[5][..]));
    assert_eq!(gt.bytes(), [0, 0, 0, 1, 1]);
    assert_eq!(tensor(&out.tensors, "le").bytes(), [1, 1, 1, 0, 0]);
    let y = tensor(&out.tensors, "y");
    assert_eq!((0..5).map(|i| y.get_i64(i)).collect::<Vec<_>>(), [-(1_i64 << 40) + 1, 1, 3, 3, 1 << 50]);
    Ok(())
}

fn sample(dtype: DType) -> Tensor {
    // Small values every type can hold exactly, little-endian in the type's width.
    let values: [i8; 6] = [0, 1, -2, 3, 4, -5];
    let bytes: Vec<u8> = match dtype {
        DType::Float32 => values.iter().flat_map(|&v| f32::from(v).to_le_bytes()).collect(),
        DType::Float64 => values.iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect(),
        DType::Float16 => values.iter().flat_map(|&v| half::f16::from(v).to_le_bytes()).collect(),
        DType::Bfloat16 => values.iter().flat_map(|&v| half::bf16::from(v).to_le_bytes()).collect(),
        DType::Bool => values.iter().map(|&v| u8::from(v > 0)).collect(),
        DType::Int8 | DType::Uint8 => values.iter().map(|&v| v.unsigned_abs()).collect(),
        DType::Int16 | DType::Uint16 => {
            values.iter().flat_map(|&v| i16::from(v.unsigned_abs()).to_le_bytes()).collect()
        }
        DType::Int32 | DType::Uint32 => {
            values.iter().flat_map(|&v| i32::from(v.unsigned_abs()).to_le_bytes()).collect()
        }
        DType::Int64 | DType::Uint64 => {
            values.iter().flat_map(|&v| i64::from(v.unsigned_abs()).to_le_bytes()).collect()
        }
    };
    t(Tensor::from_bytes(dtype, vec![2, 3], bytes))
}

/// Every dtype we hold goes into ONNX Runtime and comes back bit for bit (Identity per dtype).
#[test]
fn every_dtype_round_trips() -> Result<()> {
    if !ort_available() {
        return Ok(());
    }
    let dir = tempdir();
    let dtypes = DType::ALL;
    let mut nodes = Vec::new();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut feed: Tensors = Vec::new();
    let mut capture = Vec::new();
    for d in dtypes {
        let (i, m, o) = (format!("in_{d}"), format!("mid_{d}"), format!("out_{d}"));
        nodes.push(node("Identity", &[&i], &[&m]));
        nodes.push(node("Identity", &[&m], &[&o]));
        inputs.push(value_info(&i, d.onnx(), &[2, 3]));
        outputs.push(value_info(&o, d.onnx(), &[2, 3]));
        feed.push((i, sample(d)));
        capture.push(m);
        capture.push(o);
    }
    let model = save_and_load(dir.path(), "dtypes.onnx", &model_proto(nodes, inputs, outputs, vec![]))?;
    let mut runner = OrtRunner::new(&model, &capture, &RunnerOptions::default())?;
    let out = runner.run(&feed)?;
    assert!(out.not_captured.is_empty(), "{:?}", out.not_captured);
    for d in dtypes {
        for name in [format!("mid_{d}"), format!("out_{d}")] {
            assert_eq!(tensor(&out.tensors, &name), &sample(d), "{name}");
        }
    }
    Ok(())
}

/// Empty tensors (a zero dimension) and scalars (no dimensions) survive both directions.
#[test]
fn empty_and_scalar_tensors() -> Result<()> {
    if !ort_available() {
        return Ok(());
    }
    let dir = tempdir();
    let proto = model_proto(
        vec![node("Neg", &["e"], &["ne"]), node("Neg", &["s"], &["ns"])],
        vec![value_info("e", data_type::FLOAT, &[0, 3]), value_info("s", data_type::INT64, &[])],
        vec![value_info("ne", data_type::FLOAT, &[0, 3]), value_info("ns", data_type::INT64, &[])],
        vec![],
    );
    let model = save_and_load(dir.path(), "edge.onnx", &proto)?;
    let mut runner = OrtRunner::new(&model, &names(&["ne", "ns"]), &RunnerOptions::default())?;
    let feed: Tensors =
        vec![("e".into(), t(Tensor::from_f32(&[0, 3], &[]))), ("s".into(), t(Tensor::from_i64(&[], &[7])))];
    let out = runner.run(&feed)?;
    let ne = tensor(&out.tensors, "ne");
    assert_eq!((ne.dtype(), ne.shape(), ne.len()), (DType::Float32, &[0, 3][..], 0));
    let ns = tensor(&out.tensors, "ns");
    assert_eq!((ns.dtype(), ns.shape(), ns.get_i64(0)), (DType::Int64, &[][..], -7));
    Ok(())
}

/// An initializer stored in `weights/w.bin` (at an offset) next to the model.
#[test]
fn external_data_model_runs() -> Result<()> {
    if !ort_available() {
        return Ok(());
    }
    let dir = tempdir();
    let w = [0.5_f32, -1.0, 2.0, 8.0];
    let mut file = vec![0xAB_u8; 16]; // unrelated bytes before the tensor
    file.extend(w.iter().flat_map(|v| v.to_le_bytes()));
    t(std::fs::create_dir_all(dir.path().join("weights")));
    t(std::fs::write(dir.path().join("weights/w.bin"), &file));
    let entry = |k: &str, v: &str| StringStringEntryProto { key: Some(k.into()), value: Some(v.into()) };
    let w_proto = TensorProto {
        name: Some("w".into()),
        dims: vec![4],
        data_type: Some(data_type::FLOAT),
        data_location: Some(trtlens::model::proto::DATA_LOCATION_EXTERNAL),
        external_data: vec![entry("location", "weights/w.bin"), entry("offset", "16"), entry("length", "16")],
        ..TensorProto::default()
    };
    let proto = model_proto(
        vec![node("Mul", &["x", "w"], &["p"]), node("Sigmoid", &["p"], &["y"])],
        vec![value_info("x", data_type::FLOAT, &[4])],
        vec![value_info("y", data_type::FLOAT, &[4])],
        vec![w_proto],
    );
    let model = save_and_load(dir.path(), "ext.onnx", &proto)?;
    assert_eq!(model.external_files()?, ["weights/w.bin"]);

    // The temp dir is not the working directory: the weights are resolved against the model's directory.
    let mut runner = OrtRunner::new(&model, &names(&["p", "y", "w"]), &RunnerOptions::default())?;
    let x = [1.0_f32, 2.0, -3.0, 0.25];
    let out = runner.run(&vec![("x".into(), t(Tensor::from_f32(&[4], &x)))])?;
    assert!(out.not_captured.is_empty(), "{:?}", out.not_captured);
    let p: Vec<f32> = x.iter().zip(&w).map(|(a, b)| a * b).collect();
    assert_eq!(tensor(&out.tensors, "p").to_f32_vec(), p);
    let y = tensor(&out.tensors, "y").to_f32_vec();
    for (got, pv) in y.iter().zip(&p) {
        let want = 1.0 / (1.0 + (-pv).exp());
        assert!((got - want).abs() < 1e-6, "sigmoid({pv}) = {got}, want {want}");
    }
    assert_eq!(tensor(&out.tensors, "w").to_f32_vec(), w);
    Ok(())
}

/// Non-tensor values (a sequence) and unsupported element types (string) are reported, not fatal.
#[test]
fn non_tensor_and_string_values_are_not_captured() -> Result<()> {
    if !ort_available() {
        return Ok(());
    }
    let dir = tempdir();
    let zero = t(Tensor::from_i64(&[], &[0]));
    let mut cast = node("Cast", &["x"], &["s"]);
    cast.attribute.push(int_attr("to", i64::from(data_type::STRING)));
    let proto = model_proto(
        vec![
            node("SequenceConstruct", &["x", "x"], &["seq"]),
            node("SequenceAt", &["seq", "zero"], &["first"]),
            cast,
            node("Neg", &["first"], &["y"]),
        ],
        vec![value_info("x", data_type::FLOAT, &[2])],
        vec![value_info("y", data_type::FLOAT, &[2])],
        vec![from_tensor("zero", &zero)],
    );
    let model = save_and_load(dir.path(), "seq.onnx", &proto)?;
    let capture = names(&["seq", "first", "s", "y", "nowhere"]);
    let mut runner = OrtRunner::new(&model, &capture, &RunnerOptions::default())?;
    let out = runner.run(&vec![("x".into(), t(Tensor::from_f32(&[2], &[1.0, -2.0])))])?;
    let got: Vec<&str> = out.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(got, ["first", "y"]);
    assert_eq!(tensor(&out.tensors, "y").to_f32_vec(), [-1.0, 2.0]);
    let reason = |n: &str| {
        out.not_captured.iter().find(|c| c.name == n).map_or_else(|| panic!("{n} was captured"), |c| c.reason.clone())
    };
    assert!(reason("seq").contains("sequence"), "{}", reason("seq"));
    assert!(reason("s").contains("string"), "{}", reason("s"));
    assert!(reason("nowhere").contains("not a tensor"), "{}", reason("nowhere"));
    Ok(())
}

fn runner_error(e: &Error) -> String {
    match e {
        Error::Runner { runner, msg, .. } => {
            assert_eq!(runner, "onnxruntime");
            assert!(!msg.contains('\n'), "multi-line message: {msg:?}");
            msg.clone()
        }
        other => panic!("expected a runner error, got {other:?}"),
    }
}

/// A missing or bogus library path gives an error naming the path, never a panic; this does not need
/// ONNX Runtime to be installed.
#[test]
fn bad_library_paths_are_clean_errors() -> Result<()> {
    let dir = tempdir();
    let model = save_and_load(
        dir.path(),
        "neg.onnx",
        &model_proto(
            vec![node("Neg", &["x"], &["y"])],
            vec![value_info("x", data_type::FLOAT, &[1])],
            vec![value_info("y", data_type::FLOAT, &[1])],
            vec![],
        ),
    )?;
    let missing = PathBuf::from("/nonexistent/dir/libonnxruntime.so.1.31.1");
    let opts = RunnerOptions { ort_lib: Some(missing.clone()), ..RunnerOptions::default() };
    let Err(e) = OrtRunner::new(&model, &names(&["y"]), &opts) else { panic!("a missing library was accepted") };
    let msg = runner_error(&e);
    assert!(msg.contains(&missing.display().to_string()), "{msg}");

    // A file that is not a shared library: refused by the loader or, when ONNX Runtime is already loaded
    // in this process, refused as a replacement. Either way an error that names it.
    let bogus = dir.path().join("libonnxruntime.so.9.9.9");
    t(std::fs::write(&bogus, b"not an ELF file"));
    let opts = RunnerOptions { ort_lib: Some(bogus.clone()), ..RunnerOptions::default() };
    let Err(e) = OrtRunner::new(&model, &names(&["y"]), &opts) else { panic!("a bogus library was accepted") };
    let msg = runner_error(&e);
    assert!(msg.contains(&bogus.display().to_string()), "{msg}");

    // A directory without the library.
    let opts = RunnerOptions { ort_lib: Some(dir.path().join("weights-only")), ..RunnerOptions::default() };
    t(std::fs::create_dir_all(dir.path().join("weights-only")));
    let Err(e) = OrtRunner::new(&model, &names(&["y"]), &opts) else { panic!("an empty directory was accepted") };
    assert!(runner_error(&e).contains("weights-only"));
    Ok(())
}

/// Unsupported operators and wrong inputs are one-line runner errors carrying ORT's message.
#[test]
fn model_and_input_errors_are_one_line_runner_errors() -> Result<()> {
    if !ort_available() {
        return Ok(());
    }
    let dir = tempdir();
    let bad = save_and_load(
        dir.path(),
        "bad.onnx",
        &model_proto(
            vec![node("NoSuchOperator", &["x"], &["y"])],
            vec![value_info("x", data_type::FLOAT, &[1])],
            vec![value_info("y", data_type::FLOAT, &[1])],
            vec![],
        ),
    )?;
    let Err(e) = OrtRunner::new(&bad, &names(&["y"]), &RunnerOptions::default()) else {
        panic!("an unknown operator was accepted")
    };
    let msg = runner_error(&e);
    assert!(msg.contains("NoSuchOperator"), "{msg}");

    let good = save_and_load(
        dir.path(),
        "neg.onnx",
        &model_proto(
            vec![node("Neg", &["x"], &["y"])],
            vec![value_info("x", data_type::FLOAT, &[2])],
            vec![value_info("y", data_type::FLOAT, &[2])],
            vec![],
        ),
    )?;
    let mut runner = OrtRunner::new(&good, &names(&["y"]), &RunnerOptions::default())?;
    let Err(e) = runner.run(&vec![("x".into(), t(Tensor::from_f64(&[2], &[1.0, 2.0])))]) else {
        panic!("a float64 value for a float32 input was accepted")
    };
    let msg = runner_error(&e);
    assert!(msg.contains("double") || msg.contains("type"), "{msg}");
    let Err(e) = runner.run(&vec![("x".into(), t(Tensor::from_f32(&[3], &[1.0, 2.0, 3.0])))]) else {
        panic!("a wrong shape was accepted")
    };
    runner_error(&e);
    let Err(e) = runner.run(&vec![]) else { panic!("a missing input was accepted") };
    assert!(runner_error(&e).contains("'x'"));
    // The runner still works after errors.
    let out = runner.run(&vec![("x".into(), t(Tensor::from_f32(&[2], &[1.0, -2.0])))])?;
    assert_eq!(tensor(&out.tensors, "y").to_f32_vec(), [-1.0, 2.0]);
    Ok(())
}
