//! The runners on real exports:
//! - symbolic dimensions (`batch x 3 x height x width` with shape arithmetic, `yolo_symbolic`): tract
//!   runs them from concrete inputs, at several shapes in one run, and agrees with ONNX Runtime on
//!   every tensor; when tract still cannot run a model, the error names the node, its op, the shapes
//!   and what to try;
//! - tensor names: every runner captures each tensor by its exact name, whatever it collides with
//!   (`X:0` next to a node `X`, names the FP16 rewrite generates), and `cpu-fp16` captures every FP16
//!   tensor as float16, bit for bit what the emulated graph stores (the samples and the ONNX backend
//!   node tests tract runs).
//!
//! ONNX Runtime parts: skipped with a message when `libonnxruntime.so` cannot be loaded, a failure
//! under `CI`; likewise the node tests (`pip install -r .ci/requirements.txt`).

mod common;
use common::{in_ci, node_test_dir, sample};
use std::collections::BTreeSet;
use std::path::Path;

use assert_cmd::Command;
use prost::Message;
use trtlens::model::Model;
use trtlens::model::proto::{ModelProto, data_type};
use trtlens::run::capture_list;
use trtlens::runner::cpu_fp16::CpuFp16Runner;
use trtlens::runner::tract::TractRunner;
use trtlens::runner::{self, Runner, RunnerKind, RunnerOptions, Tensors};
use trtlens::samples::builder::{Dim, GraphBuilder};
use trtlens::tensor::{DType, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn trtlens() -> Command {
    Command::cargo_bin("trtlens").expect("binary")
}

fn ort_loads() -> bool {
    match runner::ort::load(None) {
        Ok(_) => true,
        Err(e) => {
            assert!(!in_ci(), "onnxruntime is required in CI but cannot be loaded: {e}");
            println!("skipped onnxruntime: not installed ({e})");
            false
        }
    }
}

/// Seeded uniform `[0, 1)` images of shape `dims`.
fn images(dims: &[usize], seed: u64) -> Result<Tensor, trtlens::tensor::TensorError> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Tensor::from_f32(dims, &v)
}

/// Same dtype and shape; finite values within `rtol * max|a| + atol`, non-finite ones equal.
fn close(what: &str, a: &Tensor, b: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if a.dtype() != b.dtype() || a.shape() != b.shape() {
        return Err(format!("{what}: {} {:?} vs {} {:?}", a.dtype(), a.shape(), b.dtype(), b.shape()));
    }
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    let mag = x.iter().filter(|v| v.is_finite()).fold(0f64, |m, v| m.max(v.abs()));
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        let same_nonfinite = (p.is_nan() && q.is_nan()) || (!p.is_finite() && p == q);
        let within = (p - q).abs() <= rtol * mag + atol;
        if !same_nonfinite && !within {
            return Err(format!("{what}[{i}]: {p} vs {q}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Symbolic dimensions
// ---------------------------------------------------------------------------------------------

/// The case: `run --runner tract --load-inputs` on a model whose input is
/// `batch x 3 x height x width` and whose graph computes sizes from shapes. Three iterations in two
/// shapes (one plan per shape), every tensor equal to ONNX Runtime's.
#[test]
fn symbolic_sample_runs_from_loaded_inputs_at_several_shapes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = sample("yolo_symbolic");
    let shapes: [&[usize]; 3] = [&[1, 3, 320, 320], &[2, 3, 96, 128], &[1, 3, 320, 320]];
    let iterations: Vec<Tensors> = shapes
        .iter()
        .zip(1..)
        .map(|(s, seed)| Ok(vec![("images".to_string(), images(s, seed)?)]))
        .collect::<Result<_, trtlens::tensor::TensorError>>()?;
    let json = tmp.path().join("in.json");
    std::fs::write(&json, trtlens::io::polygraphy::write_inputs_json(&iterations))?;
    let mut kinds = vec!["tract"];
    if ort_loads() {
        kinds.push("onnxruntime");
    }
    let mut runs = Vec::new();
    for kind in &kinds {
        let save = tmp.path().join(kind);
        let out = trtlens()
            .arg("run")
            .arg(&model)
            .args(["--runner", kind, "--load-inputs"])
            .arg(&json)
            .arg("--save")
            .arg(&save)
            .output()?;
        assert!(out.status.success(), "{kind}: {}", String::from_utf8_lossy(&out.stderr));
        let run = trtlens::store::RunDir::open(&save)?;
        assert!(run.manifest.not_captured.is_empty(), "{kind}: {:?}", run.manifest.not_captured);
        assert_eq!(run.manifest.tensors.len(), capture_list(&Model::load(&model)?).len());
        assert_eq!(run.iterations(), 3);
        // The head's view(batch, 6, -1): 160 x 160 anchors, then 2 x 48 x 64.
        assert_eq!(run.tensors(0)?.get("output0")?.ok_or("output0")?.shape(), [1, 6, 25600]);
        assert_eq!(run.tensors(1)?.get("output0")?.ok_or("output0")?.shape(), [2, 6, 3072]);
        runs.push(run);
    }
    if let [tract, ort] = runs.as_slice() {
        for it in 0..3 {
            let (t, o) = (tract.tensors(it)?, ort.tensors(it)?);
            assert_eq!(t.names(), o.names());
            for name in o.names() {
                let (a, b) = (o.get(name)?.ok_or("ort")?, t.get(name)?.ok_or("tract")?);
                close(&format!("iteration {it} {name}"), &a, &b, 1e-4, 1e-6)?;
            }
        }
    }
    Ok(())
}

/// One runner object, iterations of different shapes: a plan per shape, and the same shape again
/// gives the same values as the first time.
#[test]
fn one_runner_prepares_per_shape() -> TestResult {
    let model = Model::load(&sample("yolo_symbolic"))?;
    let capture = capture_list(&model);
    let mut tract = TractRunner::new(&model, &capture)?;
    let mut ort = if ort_loads() {
        Some(runner::create(RunnerKind::Onnxruntime, &model, &capture, &RunnerOptions::default())?)
    } else {
        None
    };
    let mut first = None;
    for (seed, dims) in [(1, [1, 3, 64, 64]), (2, [3, 3, 32, 96]), (1, [1, 3, 64, 64]), (3, [1, 3, 100, 60])] {
        let feed = vec![("images".to_string(), images(&dims, seed)?)];
        let out = tract.run(&feed)?;
        assert!(out.not_captured.is_empty(), "{:?}", out.not_captured);
        assert_eq!(out.tensors.len(), capture.len());
        let y = runner::find(&out.tensors, "output0").ok_or("output0")?.clone();
        assert_eq!(y.shape()[..2], [dims[0], 6]);
        match &first {
            None => first = Some(y.clone()),
            Some(f) if dims == [1, 3, 64, 64] => assert_eq!(f, &y, "same shape, same inputs, same values"),
            Some(_) => {}
        }
        if let Some(ort) = ort.as_mut() {
            let reference = ort.run(&feed)?;
            for (name, want) in &reference.tensors {
                let got = runner::find(&out.tensors, name).ok_or_else(|| format!("{name} missing"))?;
                close(&format!("{dims:?} {name}"), want, got, 1e-4, 1e-6)?;
            }
        }
    }
    Ok(())
}

/// `x[batch,3] → Reshape(x, target_shape) → Relu`, the target shape a graph input: tract needs it
/// as a constant and cannot run the model.
fn reshape_from_input() -> ModelProto {
    let mut b = GraphBuilder::new("g", 1);
    b.input_dims("x", data_type::FLOAT, &[Dim::Param("batch"), Dim::Fixed(3)]);
    b.input("target_shape", data_type::INT64, &[2]);
    let r = [Dim::Param("rows"), Dim::Param("cols")];
    b.node_dims("Reshape", "head/reshape", &["x", "target_shape"], &[("head/reshaped", data_type::FLOAT, &r)], &[]);
    b.node_dims("Relu", "head/relu", &["head/reshaped"], &[("y", data_type::FLOAT, &r)], &[]);
    b.output("y");
    b.build("reshape to a fed shape")
}

#[test]
fn tract_errors_name_the_node_its_op_the_shapes_and_what_to_try() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let m = tmp.path().join("m.onnx");
    std::fs::write(&m, reshape_from_input().encode_to_vec())?;
    let feed = vec![
        ("x".to_string(), Tensor::from_f32(&[2, 3], &[1.0, -2.0, 3.0, -4.0, 5.0, -6.0])?),
        ("target_shape".to_string(), Tensor::from_i64(&[2], &[3, 2])?),
    ];
    let inputs = tmp.path().join("in.safetensors");
    trtlens::store::write_safetensors(&inputs, &feed)?;
    let save = tmp.path().join("run");
    let run = |verbose: bool| -> Result<(Option<i32>, String), Box<dyn std::error::Error>> {
        let mut cmd = trtlens();
        cmd.arg("run").arg(&m).arg("--load-inputs").arg(&inputs).arg("--save").arg(&save);
        if verbose {
            cmd.arg("-v");
        }
        let out = cmd.output()?;
        Ok((out.status.code(), String::from_utf8(out.stderr)?))
    };
    let (code, stderr) = run(false)?;
    assert_eq!(code, Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for needle in [
        "runner tract",
        "node 'head/reshape' (Reshape)",
        "2x3 float32",
        "2 int64",
        "--shape x:",
        "--runner onnxruntime",
    ] {
        assert!(errors[0].contains(needle), "{needle:?} missing from {:?}", errors[0]);
    }
    assert!(stderr.contains("(run with -v for details)"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!save.exists(), "no partial run directory");
    // -v: tract's whole chain and what was fed, indented under the same one error line.
    let (code, verbose) = run(true)?;
    assert_eq!(code, Some(2));
    assert_eq!(verbose.lines().filter(|l| l.starts_with("error:")).count(), 1, "{verbose}");
    for needle in
        ["  tract's error chain:", "  node 'head/reshape' (Reshape), inputs as tract inferred them:", "  fed:"]
    {
        assert!(verbose.contains(needle), "{needle:?} missing from:\n{verbose}");
    }
    // ONNX Runtime runs the same model and inputs.
    if ort_loads() {
        let out = trtlens()
            .arg("run")
            .arg(&m)
            .args(["--runner", "onnxruntime", "--load-inputs"])
            .arg(&inputs)
            .arg("--save")
            .arg(&save)
            .output()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tensor names
// ---------------------------------------------------------------------------------------------

/// The tf2onnx sample: the first non-finite tensor of an all-FP16 run is the planted `ReduceSum`'s
/// `...Sum:0`, stored as float16 (not the float32 value before FP16 storage, and not one node late).
#[test]
fn tf2onnx_first_nonfinite_is_the_planted_reduce_sum_as_float16() -> TestResult {
    let out = trtlens()
        .arg("compare")
        .arg(sample("tf2onnx_names"))
        .args(["--reference", "tract", "--candidate", "cpu-fp16", "--atol", "1e-2", "--rtol", "1e-2", "--json", "-q"])
        .output()?;
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: trtlens::compare::report::Report = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report.first_nonfinite.as_deref(), Some("model/tf.math.reduce_sum/Sum:0"));
    assert_eq!(report.first_divergence.as_deref(), Some("model/tf.math.reduce_sum/Sum:0"));
    for t in &report.tensors {
        // Every node of the sample runs in FP16, and each tensor is stored as such.
        assert_eq!(t.dtype_candidate, "float16", "{}", t.name);
    }
    let sum = report.tensor("model/tf.math.reduce_sum/Sum:0").ok_or("entry")?;
    assert!(sum.flags.iter().any(|f| f == "OVF") && sum.flags.iter().any(|f| f == "INF"), "{:?}", sum.flags);
    Ok(())
}

/// Relu, Neg, Exp, Sigmoid, Abs, Mul, Add over tensors whose names collide with node names, with a
/// runtime's `node:index` spelling and with the names the FP16 rewrite generates; one node unnamed.
fn colliding_names() -> ModelProto {
    let mut b = GraphBuilder::new("collide", 1);
    let s: &[i64] = &[2, 3];
    b.input("x", data_type::FLOAT, s);
    b.node("Relu", "a", &["x"], &[("b:0", s)], &[]); // `b:0` is not output 0 of node `b`
    b.node("Neg", "b", &["x"], &[("a:0", s)], &[]);
    b.node("Exp", "e", &["b:0"], &[("f", s)], &[]); // node `e` writes `f`...
    b.node("Sigmoid", "g", &["a:0"], &[("e", s)], &[]); // ...and tensor `e` comes from node `g`
    b.node("Abs", "e__acc32/x", &["a:0"], &[("e__acc32", s)], &[]); // what emulation would name e's FP32 value
    b.node("Mul", "unnamed", &["e", "f"], &[("e__emu32", s)], &[]); // and e's widened copy
    b.node("Add", "y", &["e__acc32", "e__emu32"], &[("y__fp16", s)], &[]); // and y's FP16 home
    b.node("Add", "y:0", &["y__fp16", "b:0"], &[("y", s)], &[]);
    b.output("y");
    let mut m = b.build("names that collide");
    if let Some(n) = m.graph.as_mut().and_then(|g| g.node.iter_mut().find(|n| n.name.as_deref() == Some("unnamed"))) {
        n.name = None;
    }
    m
}

/// What every tensor of [`colliding_names`] holds for input `x`.
fn expected_collisions(x: &[f32]) -> Vec<(&'static str, Vec<f32>)> {
    let map = |f: &dyn Fn(usize) -> f32| (0..x.len()).map(f).collect::<Vec<f32>>();
    let b0 = map(&|i| x[i].max(0.0));
    let a0 = map(&|i| -x[i]);
    let f = map(&|i| b0[i].exp());
    let e = map(&|i| 1.0 / (1.0 + (-a0[i]).exp()));
    let acc = map(&|i| a0[i].abs());
    let emu = map(&|i| e[i] * f[i]);
    let y16 = map(&|i| acc[i] + emu[i]);
    let y = map(&|i| y16[i] + b0[i]);
    vec![("b:0", b0), ("a:0", a0), ("f", f), ("e", e), ("e__acc32", acc), ("e__emu32", emu), ("y__fp16", y16), ("y", y)]
}

#[test]
fn captures_resolve_exact_names_whatever_they_collide_with() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("collide.onnx");
    std::fs::write(&path, colliding_names().encode_to_vec())?;
    let model = Model::load(&path)?;
    let capture = capture_list(&model);
    let x = [-1.0f32, 0.5, 2.0, -0.25, 1.5, -3.0];
    let feed = vec![("x".to_string(), Tensor::from_f32(&[2, 3], &x)?)];
    let expected = expected_collisions(&x);
    let mut kinds = vec![RunnerKind::Tract, RunnerKind::CpuFp16];
    if ort_loads() {
        kinds.push(RunnerKind::Onnxruntime);
    }
    for kind in kinds {
        let mut r = runner::create(kind, &model, &capture, &RunnerOptions::default())?;
        let out = r.run(&feed)?;
        assert!(out.not_captured.is_empty(), "{}: {:?}", kind.name(), out.not_captured);
        let names: Vec<&str> = out.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, capture.iter().map(String::as_str).collect::<Vec<_>>(), "{}", kind.name());
        let fp16 = kind == RunnerKind::CpuFp16;
        for (name, want) in &expected {
            let got = runner::find(&out.tensors, name).ok_or_else(|| format!("{}: {name} missing", kind.name()))?;
            assert_eq!(got.dtype(), if fp16 { DType::Float16 } else { DType::Float32 }, "{}: {name}", kind.name());
            let want = Tensor::from_f32(&[2, 3], want)?;
            let (rtol, atol) = if fp16 { (2e-2, 1e-3) } else { (1e-6, 1e-7) };
            let got = Tensor::from_f32(got.shape(), &got.to_f32_vec())?;
            close(&format!("{}: {name}", kind.name()), &want, &got, rtol, atol)?;
        }
    }
    // And the FP16 values are exactly what the emulated graph stores.
    let checked = fp16_captures_are_stored_values(&model, &feed)?;
    assert_eq!(checked, capture.len());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// cpu-fp16 captures = the emulated graph's stored FP16 values
// ---------------------------------------------------------------------------------------------

/// Checks that `cpu-fp16` (all FP16) captures every tensor the plan makes FP16 as float16, equal bit
/// for bit to the value the emulated graph stores (its `Cast` to FP16 of the FP32 result, computed
/// here from that FP32 result) and to what its readers see (the widened `__emu32` copy). NaNs match
/// as NaNs. Returns how many FP16 tensors were checked.
fn fp16_captures_are_stored_values(model: &Model, feed: &Tensors) -> Result<usize, String> {
    let s = |e: trtlens::Error| e.to_string();
    let capture = capture_list(model);
    let mut r = CpuFp16Runner::new(model, &capture, &RunnerOptions::default()).map_err(s)?;
    let out = r.run(feed).map_err(s)?;
    let emulated = Model::load(&r.emulated_path).map_err(s)?;
    let eg = &emulated.graph;
    let proto_nodes = &emulated.graph_proto().node;
    // (original name, home, the FP32 value the storing Cast rounds, widened copies readers see)
    let mut checks: Vec<(String, String, String, Vec<String>)> = Vec::new();
    for name in &capture {
        let Some(home) = r.report.tensors.get(name).filter(|h| h.is_fp16()) else { continue };
        let node =
            eg.producer(&home.name).ok_or_else(|| format!("{}: no producer in the emulated graph", home.name))?;
        let to = proto_nodes[node.proto_index].attr("to").and_then(|a| a.i);
        if node.op_type != "Cast" || to != Some(i64::from(data_type::FLOAT16)) {
            return Err(format!("{name}: stored by {} ({}), not a Cast to FP16", node.display_name(), node.op_type));
        }
        let readers: Vec<String> = eg
            .tensor(&home.name)
            .map(|t| t.consumers.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|c| &eg.nodes[c])
            .filter(|n| n.op_type == "Cast" && n.outputs.iter().any(|o| o.contains("__emu32")))
            .filter_map(|n| n.outputs.first().cloned())
            .collect();
        checks.push((name.clone(), home.name.clone(), node.inputs[0].clone(), readers));
    }
    let sources: BTreeSet<String> =
        checks.iter().flat_map(|c| std::iter::once(c.2.clone()).chain(c.3.clone())).collect();
    let sources: Vec<String> = sources.into_iter().collect();
    let mut t = TractRunner::new(&emulated, &sources).map_err(s)?;
    let e = t.run(feed).map_err(s)?;
    for (name, home, source, readers) in &checks {
        let got = runner::find(&out.tensors, name).ok_or_else(|| format!("{name} not captured"))?;
        if got.dtype() != DType::Float16 {
            return Err(format!("{name} (stored as {home}) captured as {}, not float16", got.dtype()));
        }
        let bits: Vec<u16> = got.bytes().chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
        let src = runner::find(&e.tensors, source).ok_or_else(|| format!("{source} not captured"))?;
        if src.shape() != got.shape() {
            return Err(format!("{name}: shape {:?}, stored from {source} {:?}", got.shape(), src.shape()));
        }
        let stored: Vec<half::f16> = match src.dtype() {
            DType::Float16 => src.bytes().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]])).collect(),
            DType::Float32 => src.to_f32_vec().into_iter().map(half::f16::from_f32).collect(),
            _ => src.to_f64_vec().into_iter().map(half::f16::from_f64).collect(),
        };
        for (i, (g, w)) in bits.iter().zip(&stored).enumerate() {
            let g = half::f16::from_bits(*g);
            if !(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan())) {
                return Err(format!(
                    "{name}[{i}]: captured {g} ({:#06x}), stored {w} ({:#06x})",
                    g.to_bits(),
                    w.to_bits()
                ));
            }
        }
        for w in readers {
            let seen = runner::find(&e.tensors, w).ok_or_else(|| format!("{w} not captured"))?.to_f32_vec();
            for (i, (g, r)) in bits.iter().zip(&seen).enumerate() {
                let g = half::f16::from_bits(*g).to_f32();
                if !(g.to_bits() == r.to_bits() || (g.is_nan() && r.is_nan())) {
                    return Err(format!("{name}[{i}]: captured {g}, its reader sees {r} ({w})"));
                }
            }
        }
    }
    Ok(checks.len())
}

#[test]
fn cpu_fp16_captures_every_fp16_tensor_of_every_sample_as_stored() -> TestResult {
    for s in trtlens::samples::all() {
        let original = Model::load(&sample(s.name))?;
        let mut set = trtlens::inputs::prepare(&original, &s.input_options(1))?;
        // The model as a run executes it (control flow specialized for these inputs).
        let exe =
            trtlens::run::executable(&original, &set.iterations, true, &trtlens::runner::RunnerOptions::default())?;
        let feed = set.iterations.swap_remove(0);
        let checked = fp16_captures_are_stored_values(&exe.model, &feed).map_err(|e| format!("{}: {e}", s.name))?;
        assert!(checked > 0, "{}: no FP16 tensor", s.name);
        println!("{}: {checked} FP16 tensors captured as stored", s.name);
    }
    Ok(())
}

/// How one node test went.
enum NodeCase {
    /// Not a candidate: inputs that are not all float32, a test tract fails in FP32, nothing FP16.
    Skipped,
    /// tract cannot run the emulated model (reported, not a failure of the property).
    NotRun(String),
    /// Checked this many FP16 tensors.
    Checked(usize),
    /// The property does not hold.
    Wrong(String),
}

fn node_case(dir: &Path, tract_fails: &BTreeSet<String>) -> NodeCase {
    let name = dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    if tract_fails.contains(&name) {
        return NodeCase::Skipped;
    }
    let Ok(model) = Model::load(&dir.join("model.onnx")) else { return NodeCase::Skipped };
    let Some(feed) = common::node_test_data(dir, &model, "input_", &model.graph.inputs) else {
        return NodeCase::Skipped;
    };
    if feed.iter().any(|(_, t)| t.dtype() != DType::Float32) {
        return NodeCase::Skipped;
    }
    let plan = trtlens::precision::Plan::uniform(trtlens::precision::Precision::Fp16);
    match trtlens::precision::convert(&model, &plan) {
        Ok(c) if !c.report.nodes_fp16.is_empty() => {}
        _ => return NodeCase::Skipped,
    }
    // tract failing on the emulated model is a runner gap, not a wrong capture.
    let capture = capture_list(&model);
    let runs = CpuFp16Runner::new(&model, &capture, &RunnerOptions::default()).and_then(|mut r| r.run(&feed));
    if let Err(e) = runs {
        return NodeCase::NotRun(e.to_string());
    }
    match fp16_captures_are_stored_values(&model, &feed) {
        Ok(n) => NodeCase::Checked(n),
        Err(e) => NodeCase::Wrong(e),
    }
}

#[test]
fn cpu_fp16_captures_every_fp16_tensor_of_the_node_tests_as_stored() -> TestResult {
    let root = match node_test_dir() {
        Ok(d) => d,
        Err(why) => {
            assert!(!in_ci(), "ONNX node tests not found ({why}); `pip install onnx==1.17.0`");
            println!("skipped: ONNX node tests not found ({why})");
            return Ok(());
        }
    };
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&root)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    let tract_fails = common::conformance_allow_list(RunnerKind::Tract);
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let cases: Vec<(String, NodeCase)> = {
        use rayon::prelude::*;
        dirs.par_iter()
            .map(|d| {
                let name = d.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                let case = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| node_case(d, &tract_fails)))
                    .unwrap_or_else(|_| NodeCase::Wrong("panic".into()));
                (name, case)
            })
            .collect()
    };
    std::panic::set_hook(previous_hook);
    let (mut models, mut tensors, mut skipped) = (0, 0, 0);
    let mut not_run = Vec::new();
    let mut wrong = Vec::new();
    for (name, case) in cases {
        match case {
            NodeCase::Skipped => skipped += 1,
            NodeCase::NotRun(e) => not_run.push(format!("{name}: {}", e.chars().take(160).collect::<String>())),
            NodeCase::Checked(n) => {
                models += 1;
                tensors += n;
            }
            NodeCase::Wrong(e) => wrong.push(format!("{name}: {e}")),
        }
    }
    println!(
        "node tests: {models} checked ({tensors} FP16 tensors), {} not run by tract as FP16 emulation, {skipped} skipped",
        not_run.len()
    );
    for n in &not_run {
        println!("  not run: {n}");
    }
    assert!(wrong.is_empty(), "{} node tests capture FP16 tensors wrongly:\n{}", wrong.len(), wrong.join("\n"));
    assert!(models >= 300, "only {models} node tests checked: the property test lost its coverage");
    Ok(())
}

/// The same property on real trained models (`scripts/real-models` sets `TRTLENS_REAL_MODELS`):
/// the `PaddleOCR` models, whose inputs are `? x 3 x ? x ?`, at the shapes the cross-check uses.
#[test]
fn real_models_cpu_fp16_captures_as_stored() -> TestResult {
    let Some(dir) = std::env::var_os("TRTLENS_REAL_MODELS").filter(|d| !d.is_empty()) else {
        println!("skipped: TRTLENS_REAL_MODELS is not set (scripts/real-models sets it)");
        return Ok(());
    };
    for (file, shape) in [
        ("ch_ppocr_mobile_v2.0_cls_infer.onnx", "x:1x3x48x192"),
        ("ch_PP-OCRv4_det_infer.onnx", "x:1x3x160x160"),
        ("ch_PP-OCRv4_rec_infer.onnx", "x:1x3x48x160"),
    ] {
        let model = Model::load(&Path::new(&dir).join(file))?;
        let (name, dims) = trtlens::inputs::parse_shape(shape)?;
        let opts = trtlens::inputs::InputOptions {
            seed: 1,
            iterations: 1,
            shapes: [(name, dims)].into_iter().collect(),
            ..Default::default()
        };
        let feed = trtlens::inputs::prepare(&model, &opts)?.iterations.swap_remove(0);
        let checked = fp16_captures_are_stored_values(&model, &feed).map_err(|e| format!("{file}: {e}"))?;
        println!("{file}: {checked} FP16 tensors captured as stored");
        assert!(checked > 100, "{file}");
    }
    Ok(())
}
