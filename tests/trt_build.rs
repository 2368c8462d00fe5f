//! The TensorRT build path for real, with the TensorRT-RTX builder (`pip install
//! tensorrt-rtx-cu13-libs`), which works on a machine without a GPU: every sample parses, every
//! tensor is marked and mapped, FP16/FP32 layers match the plan (and a planted mismatch is
//! reported), rebuilds hit the engine cache, and a build process that aborts or is killed gives a
//! clear error while the caller (a test, the inspector) goes on. Run with `cargo test --features
//! tensorrt-rtx --test trt_build`; without the wheel it says `skipped` locally and fails under CI.
#![cfg(all(feature = "tensorrt-rtx", not(feature = "tensorrt")))]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt as _;
use trtlens::error::Error;
use trtlens::model::Model;
use trtlens::precision::{Override, Plan, Precision, Reason, Selector};
use trtlens::trt::build::{BuildOutput, BuildRequest, build_job};
use trtlens::trt::child::{BuildChild, build_command};
use trtlens::trt::{Flavour, Observe, TrtOptions};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// True when the TensorRT-RTX libraries are found; otherwise says `skipped` (and fails under CI).
fn have_rtx() -> bool {
    match trtlens::trt::discover::find(Flavour::TensorrtRtx, None) {
        Ok(_) => true,
        Err(e) => {
            assert!(!common::in_ci(), "CI must have the TensorRT-RTX wheel (pip install tensorrt-rtx-cu13-libs): {e}");
            eprintln!("skipped: {e}");
            false
        }
    }
}

fn request(model: &Path, plan: Option<Plan>, cache: &Path) -> BuildRequest {
    // Samples with symbolic dims (yolo_symbolic) are built for the shape their runs use.
    let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let shapes: BTreeMap<String, trtlens::trt::cache::ShapeRange> = trtlens::samples::find(&stem)
        .map(|s| {
            s.shapes
                .iter()
                .filter_map(|v| trtlens::inputs::parse_shape(v).ok())
                .map(|(n, d)| (n, trtlens::trt::cache::ShapeRange::fixed(&d)))
                .collect()
        })
        .unwrap_or_default();
    BuildRequest {
        model: model.to_path_buf(),
        flavour: Flavour::TensorrtRtx,
        plan,
        plan_label: None,
        options: TrtOptions { cache_dir: Some(cache.to_path_buf()), ..TrtOptions::default() },
        shapes,
        save: None,
        cancel: None,
    }
}

fn build(req: &BuildRequest) -> Result<BuildOutput, Error> {
    build_job(req, &mut |_| {})
}

fn keep_fp32(nodes: &[&str]) -> Plan {
    let mut p = Plan::uniform(Precision::Fp16);
    for n in nodes {
        p.overrides.push(Override {
            selector: Selector::Node((*n).to_string()),
            precision: Precision::Fp32,
            reason: Reason::User,
            note: None,
        });
    }
    p
}

/// Every tensor of the tensor map is mapped or has a reason; every captured tensor is mapped with
/// the dtype the plan gives it; no precision mismatch.
fn check_map(model: &Model, plan: &Plan, out: &BuildOutput) -> TestResult {
    let map = &out.tensor_map;
    let name = model.path.display();
    let report = trtlens::precision::convert(model, plan)?.report;
    let captured = model.graph.captured();
    assert_eq!(map.tensors.len(), captured.len() + trtlens::run::excluded_list(model, &[], true).len(), "{name}");
    for t in &map.tensors {
        assert!(t.engine.is_some() != t.reason.is_some(), "{name}: {t:?}");
    }
    for c in &captured {
        let t = map.tensor(c).ok_or_else(|| format!("{name}: {c} missing from the tensor map"))?;
        if t.engine.is_none() {
            // Shape arithmetic (Shape → Gather → Concat) and folded constants are not engine outputs:
            // listed with the reason, never silently dropped.
            let r = t.reason.as_deref().unwrap_or_default();
            assert!(r.starts_with("shape tensor") || r.starts_with("constant"), "{name}: {c} unmapped: {r}");
            continue;
        }
        let home = &report.tensors[*c];
        assert_eq!(t.engine.as_deref(), Some(home.name.as_str()), "{name}: {c} is read from its home");
        let want = home.dtype().map(|d| d.name().to_string());
        assert_eq!(t.dtype, want, "{name}: {c} has the plan's type in the engine");
    }
    assert!(map.precision_mismatches.is_empty(), "{name}: {:?}", map.precision_mismatches);
    assert!(!map.layers.is_empty(), "{name}: the build log lists the engine's layers");
    assert!(map.layers.iter().any(|l| !l.onnx_nodes.is_empty()), "{name}: layers name the ONNX nodes they cover");
    for o in &model.graph.outputs {
        assert!(map.layer_of(o, None).is_some(), "{name}: graph output {o} has a producing layer");
    }
    Ok(())
}

#[test]
fn every_sample_builds_with_every_tensor_observable_and_the_plans_types() -> TestResult {
    if !have_rtx() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    for s in trtlens::samples::all() {
        let path = common::sample(s.name);
        let model = Model::load(&path)?;
        let all16 = build(&request(&path, None, tmp.path()))?;
        check_map(&model, &Plan::uniform(Precision::Fp16), &all16)?;
        assert_eq!(all16.tensor_map.observe, Observe::All);
        if s.shapes.is_empty() {
            assert_eq!(all16.tensor_map.mapped(), model.graph.captured().len(), "{}: every tensor is marked", s.name);
        } else {
            // yolo_symbolic computes sizes with Shape/Gather/Concat: those shape tensors stay on the host.
            let captured = model.graph.captured();
            let float_tensors = captured.iter().filter(|c| {
                model.graph.tensor(c).and_then(|t| t.ty.elem_type) == Some(trtlens::model::proto::data_type::FLOAT)
            });
            for c in float_tensors {
                assert!(all16.tensor_map.tensor(c).is_some_and(|t| t.engine.is_some()), "{}: {c} is marked", s.name);
            }
        }
        // The documented fix: those nodes compute FP32 in the engine, the rest FP16.
        let fix = keep_fp32(s.fix);
        let fixed = build(&request(&path, Some(fix.clone()), tmp.path()))?;
        check_map(&model, &fix, &fixed)?;
        for node in s.fix {
            let n = model.graph.nodes.iter().find(|n| n.display_name() == *node).ok_or("fix node")?;
            for o in &n.outputs {
                let t = fixed.tensor_map.tensor(o).ok_or("fix output")?;
                assert_eq!(t.dtype.as_deref(), Some("float32"), "{}: {node} runs FP32", s.name);
            }
        }
    }
    Ok(())
}

#[test]
fn a_planted_mismatch_is_reported_in_the_table_and_the_json() -> TestResult {
    if !have_rtx() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("build");
    // Debug builds only: the engine gets ln/square/Pow in FP32 while the plan says FP16.
    let out = Command::cargo_bin("trtlens")?
        .args(["build", &common::sample("layernorm_overflow").display().to_string(), "--candidate", "tensorrt-rtx"])
        .arg("--save")
        .arg(&dir)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .env("TRTLENS_TEST_PLANT_MISMATCH", "ln/square/Pow")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("precision mismatches (plan vs engine):"), "{stdout}");
    assert!(stdout.contains("ln/square/Pow: plan fp16, engine fp32"), "{stdout}");
    assert!(stdout.trim_end().ends_with("mapped 11/11 tensors"), "{stdout}");
    let map: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("tensor_map.json"))?)?;
    assert_eq!(map["schema"], "trtlens.tensor_map/1");
    assert_eq!(map["trt"]["flavour"], "tensorrt-rtx");
    assert_eq!(
        map["precision_mismatches"],
        serde_json::json!([{"onnx_node": "ln/square/Pow", "plan": "fp16", "engine": "fp32"}])
    );
    for f in ["engine.plan", "build.log", "tensor_map.json", "build.json"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    // Without the hook the same plan has no mismatch.
    let clean = build(&request(&common::sample("layernorm_overflow"), None, &tmp.path().join("cache")))?;
    assert!(clean.tensor_map.precision_mismatches.is_empty());
    Ok(())
}

#[test]
fn rebuilding_the_same_plan_is_a_cache_hit() -> TestResult {
    if !have_rtx() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let path = common::sample("mlp_overflow");
    let first = build(&request(&path, None, tmp.path()))?;
    assert!(!first.cache_hit);
    let again = build(&request(&path, None, tmp.path()))?;
    assert!(again.cache_hit, "same model, plan, flavour, observe mode, shapes and GPU");
    assert_eq!(again.meta.key, first.meta.key);
    assert_eq!(std::fs::read(again.engine_file())?, std::fs::read(first.engine_file())?);
    assert_eq!(again.tensor_map, first.tensor_map);
    // Toggling one node is a new engine; toggling it back finds the first one again.
    let toggled = build(&request(&path, Some(keep_fp32(&["mlp/fc1/MatMul"])), tmp.path()))?;
    assert!(!toggled.cache_hit);
    assert_ne!(toggled.meta.key, first.meta.key);
    assert!(build(&request(&path, Some(keep_fp32(&["mlp/fc1/MatMul"])), tmp.path()))?.cache_hit);
    assert!(build(&request(&path, None, tmp.path()))?.cache_hit);
    // Another observation mode is another engine.
    let mut outputs = request(&path, None, tmp.path());
    outputs.options.observe = Observe::Outputs;
    assert!(!build(&outputs)?.cache_hit);
    // --no-cache builds and stores nothing.
    let entries = || std::fs::read_dir(tmp.path().join("engines")).map(Iterator::count);
    let before = entries()?;
    let mut nocache = request(&path, None, tmp.path());
    nocache.options.no_cache = true;
    assert!(!build(&nocache)?.cache_hit);
    assert_eq!(entries()?, before);
    // The timing cache is kept per flavour, version and target.
    let timing: Vec<_> = std::fs::read_dir(tmp.path().join("timing"))?.collect();
    assert_eq!(timing.len(), 1, "one timing cache file");
    Ok(())
}

#[test]
fn observe_outputs_keeps_the_production_fusion_and_debug_builds() -> TestResult {
    if !have_rtx() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let path = common::sample("layernorm_overflow");
    let model = Model::load(&path)?;
    let mut req = request(&path, None, tmp.path());
    req.options.observe = Observe::Outputs;
    let out = build(&req)?;
    assert_eq!(out.tensor_map.mapped(), model.graph.outputs.len(), "graph outputs only");
    let all = build(&request(&path, None, tmp.path()))?;
    assert!(
        out.tensor_map.layers.len() <= all.tensor_map.layers.len(),
        "marking every tensor never fuses more: {} vs {} layers",
        out.tensor_map.layers.len(),
        all.tensor_map.layers.len()
    );
    assert!(out.tensor_map.precision_mismatches.is_empty(), "{:?}", out.tensor_map.precision_mismatches);
    for t in out.tensor_map.tensors.iter().filter(|t| t.engine.is_none()) {
        assert!(t.reason.as_deref().is_some_and(|r| r.contains("--observe outputs")), "{t:?}");
    }
    req.options.observe = Observe::Debug;
    let debug = build(&req)?;
    assert!(debug.tensor_map.mapped() >= model.graph.outputs.len());
    assert!(debug.tensor_map.precision_mismatches.is_empty(), "{:?}", debug.tensor_map.precision_mismatches);
    for t in &debug.tensor_map.tensors {
        assert!(t.engine.is_some() != t.reason.is_some(), "{t:?}");
    }
    Ok(())
}

#[test]
fn an_aborting_build_process_is_a_clear_error_and_the_caller_goes_on() -> TestResult {
    if !have_rtx() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_trtlens"));
    let args = |dir: &str| -> Vec<std::ffi::OsString> {
        vec![
            common::sample("cnn_bn_relu").into(),
            "--candidate".into(),
            "tensorrt-rtx".into(),
            "--no-cache".into(),
            "--save".into(),
            tmp.path().join(dir).into(),
        ]
    };
    // Aborts inside TensorRT's build (debug builds only).
    let mut cmd = build_command(&exe, &args("aborted"));
    cmd.env("TRTLENS_TEST_ABORT_IN_BUILD", "1");
    let mut lines = Vec::new();
    let err = BuildChild::spawn(cmd)?
        .wait(None, &mut |l| lines.push(l.to_string()))
        .err()
        .ok_or("the abort was not reported")?;
    assert_eq!(err.kind(), trtlens::error::ErrorKind::WorkerDied);
    let msg = err.to_string();
    assert!(msg.contains("SIGABRT (aborted)"), "{msg}");
    assert!(msg.contains("aborting inside the TensorRT build"), "the last log lines are in the message: {msg}");
    assert!(err.details().is_some_and(|d| d.contains("building engine")), "the log tail is kept");
    assert!(lines.iter().any(|l| l.starts_with("building engine")), "progress streamed while it ran");
    assert!(!tmp.path().join("aborted").exists(), "nothing half-written is left at --save");

    // Killed from outside (as the out-of-memory killer would).
    let mut cmd = build_command(&exe, &args("killed"));
    cmd.env("TRTLENS_TEST_SLOW_BUILD_MS", "200");
    let child = BuildChild::spawn(cmd)?;
    let pid = child.id().to_string();
    let mut killed = false;
    let err = child
        .wait(None, &mut |l| {
            if !killed && l.starts_with("building engine: step") {
                killed = Command::new("kill").args(["-9", &pid]).status().is_ok_and(|s| s.success());
            }
        })
        .err()
        .ok_or("the kill was not reported")?;
    assert!(killed);
    assert!(err.to_string().contains("SIGKILL"), "{err}");

    // Cancelled by the caller.
    let mut cmd = build_command(&exe, &args("cancelled"));
    cmd.env("TRTLENS_TEST_SLOW_BUILD_MS", "200");
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let err = BuildChild::spawn(cmd)?
        .wait(Some(&cancel), &mut |l| {
            if l.starts_with("building engine") {
                cancel.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        })
        .err()
        .ok_or("the cancel was not reported")?;
    assert_eq!(err.kind(), trtlens::error::ErrorKind::Cancelled);

    // The caller goes on: the next build works.
    BuildChild::spawn(build_command(&exe, &args("fine")))?.wait(None, &mut |_| {})?;
    assert!(tmp.path().join("fine").join("tensor_map.json").is_file());
    Ok(())
}

#[test]
fn a_cancel_flag_stops_an_in_process_build() -> TestResult {
    if !have_rtx() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let mut req = request(&common::sample("cnn_bn_relu"), None, tmp.path());
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    req.cancel = Some(std::sync::Arc::clone(&cancel));
    let err = build(&req).err().ok_or("a cancelled build finished")?;
    assert_eq!(err.kind(), trtlens::error::ErrorKind::Cancelled, "{err}");
    assert!(!tmp.path().join("engines").exists() || std::fs::read_dir(tmp.path().join("engines"))?.count() == 0);
    Ok(())
}

#[test]
fn compare_and_run_say_why_the_engine_cannot_run_here() -> TestResult {
    if !have_rtx() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let out = Command::cargo_bin("trtlens")?
        .args(["-v", "compare", &common::sample("mlp_overflow").display().to_string()])
        .args(["--reference", "tract", "--candidate", "tensorrt-rtx", "--keep-fp32", "mlp/fc1/MatMul"])
        .arg("--cache-dir")
        .arg(tmp.path())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error:")).count(), 1, "{stderr}");
    assert!(stderr.contains("error: runner tensorrt-rtx: the engine was built but cannot run here"), "{stderr}");
    assert!(stderr.contains("tensor_map.json"), "-v names the build directory: {stderr}");
    assert!(stderr.contains("candidate: building engine"), "build progress is shown: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}

#[test]
fn doctor_finds_the_wheel_and_says_what_runs_where() -> TestResult {
    if !have_rtx() {
        return Ok(());
    }
    let out = Command::cargo_bin("trtlens")?.arg("doctor").output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("TensorRT-RTX (--candidate tensorrt-rtx): compiled in (1.7."), "{stdout}");
    assert!(stdout.contains("libtensorrt_rtx.so"), "{stdout}");
    assert!(stdout.contains("build: yes"), "{stdout}");
    assert!(stdout.contains("TensorRT (--candidate tensorrt): not compiled in"), "{stdout}");
    let json = Command::cargo_bin("trtlens")?.args(["doctor", "--json"]).output()?;
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    let rtx = v["flavours"].as_array().and_then(|f| f.iter().find(|f| f["flavour"] == "tensorrt-rtx")).ok_or("rtx")?;
    assert_eq!(rtx["compiled_in"], true);
    assert_eq!(rtx["build"]["ok"], true);
    assert!(rtx["libraries"][0]["version"].as_str().is_some_and(|v| v.starts_with("1.")), "{rtx}");
    Ok(())
}

#[test]
fn bad_library_paths_and_modes_are_one_line_errors() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let sample = common::sample("mlp_overflow").display().to_string();
    let run = |extra: &[&str]| -> Result<(Option<i32>, String), Box<dyn std::error::Error>> {
        let out = Command::cargo_bin("trtlens")?
            .args(["build", &sample, "--candidate", "tensorrt-rtx", "--save"])
            .arg(tmp.path().join("b"))
            .args(extra)
            .output()?;
        Ok((out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned()))
    };
    let (code, err) = run(&["--trt-lib", "/nonexistent/trt"])?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--trt-lib /nonexistent/trt: no such directory"), "{err}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty)?;
    let (code, err) = run(&["--trt-lib", &empty.display().to_string()])?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("has no libtensorrt_rtx.so*") && err.contains("pip install tensorrt-rtx-cu13-libs"), "{err}");
    let (code, err) = run(&["--precision-mode", "constraints"])?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("TensorRT 10"), "{err}");
    let out = Command::cargo_bin("trtlens")?
        .args(["run", &sample, "--runner", "tract", "--observe", "outputs", "--save"])
        .arg(tmp.path().join("r"))
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("apply to a TensorRT runner"));
    Ok(())
}

#[test]
fn the_inspector_survives_an_aborting_build_job() -> TestResult {
    use std::os::unix::fs::PermissionsExt as _;
    use trtlens::tui::action::{Action, Command as Cmd};

    if !have_rtx() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    // The jobs run through a wrapper that makes the build abort while a flag file exists.
    let flag = tmp.path().join("abort");
    std::fs::write(&flag, "")?;
    let wrapper = tmp.path().join("trtlens-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ -f '{}' ]; then export TRTLENS_TEST_ABORT_IN_BUILD=1; fi\nexec '{}' \"$@\"\n",
            flag.display(),
            env!("CARGO_BIN_EXE_trtlens")
        ),
    )?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    let mut launch = common::inspect_launch(&common::sample("regression_overflow"), tmp.path());
    launch.request.candidate = trtlens::compare::source::SideSpec::Runner(trtlens::runner::RunnerKind::TensorrtRtx);
    launch.request.runner_options.trt.cache_dir = Some(tmp.path().join("cache"));
    launch.exe = Some(wrapper);
    let keys = trtlens::tui::keys::KeyMap::default();
    let mut app = trtlens::tui::start(&launch, &keys)?;
    assert!(app.ctx.candidate_takes_plan, "TensorRT candidates take a plan: space toggles, r rebuilds");
    let err = common::wait_job(&mut app).err().ok_or("an aborted build reported success")?;
    assert!(err.contains("SIGABRT"), "{err}");
    assert!(err.contains("aborting inside the TensorRT build"), "the TensorRT log tail is shown: {err}");
    assert!(!app.busy());
    // The session goes on: the next job runs, and (no GPU here) fails with the reason, cleanly.
    std::fs::remove_file(&flag)?;
    app.update(Action::Cmd(Cmd::Rebuild));
    assert!(app.busy(), "{:?}", app.status);
    let err = common::wait_job(&mut app).err().ok_or("the engine cannot run without a GPU")?;
    assert!(err.contains("cannot run here"), "{err}");
    assert!(!app.busy());
    Ok(())
}
