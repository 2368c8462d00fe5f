//! Helpers shared by the integration tests: CI detection and locating the ONNX backend node tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// True under CI (`.ci/run` sets `CI`): missing prerequisites fail there instead of skipping.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The ONNX backend node test directory (`TRTLENS_ONNX_NODE_TESTS`, else the one shipped by the
/// `onnx` Python package), or why it was not found.
pub fn node_test_dir() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("TRTLENS_ONNX_NODE_TESTS").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_dir() {
            Ok(p)
        } else {
            Err(format!("TRTLENS_ONNX_NODE_TESTS={} is not a directory", p.display()))
        };
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import onnx, os; print(os.path.dirname(onnx.__file__))"])
        .output()
        .map_err(|e| format!("cannot run python3 to find the onnx package ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 cannot import onnx: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").trim()
        ));
    }
    let pkg = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = Path::new(&pkg).join("backend").join("test").join("data").join("node");
    if dir.is_dir() { Ok(dir) } else { Err(format!("{} does not exist", dir.display())) }
}

/// A bundled sample model.
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(format!("{name}.onnx"))
}

/// An inspector launch on `target` (model or session) with a tract reference, the cpu-fp16
/// candidate, FP16 tolerances, sessions and exports under `dir`, and jobs run by this build's binary.
pub fn inspect_launch(target: &Path, dir: &Path) -> trtlens::tui::Launch {
    trtlens::tui::Launch {
        target: target.to_path_buf(),
        request: compare_request(target),
        plan: None,
        keep_fp32_predicted: None,
        session_name: None,
        sessions_dir: dir.join("sessions"),
        export_dir: dir.to_path_buf(),
        exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_trtlens"))),
    }
}

/// tract reference vs cpu-fp16 candidate on `model` at atol = rtol = 1e-2 (cpu-fp16's defaults),
/// default random inputs.
pub fn compare_request(model: &Path) -> trtlens::compare::CompareRequest {
    use trtlens::compare::source::SideSpec;
    use trtlens::runner::RunnerKind;
    trtlens::compare::CompareRequest::new(
        Some(model.to_path_buf()),
        SideSpec::Runner(RunnerKind::Tract),
        SideSpec::Runner(RunnerKind::CpuFp16),
    )
}

/// Tick the app until no histogram is being computed (the first one of a report opens the runs on
/// a worker thread); at most a minute.
pub fn settle_histograms(app: &mut trtlens::tui::app::App) {
    let t0 = std::time::Instant::now();
    while !app.histograms_pending.is_empty() && t0.elapsed() < std::time::Duration::from_mins(1) {
        std::thread::sleep(std::time::Duration::from_millis(5));
        app.tick();
    }
}

/// Tick the app until its background job ends (an error after a minute, or when the job failed), and
/// until the selected row's histogram, read from the runs on a worker thread, has arrived.
pub fn wait_job(app: &mut trtlens::tui::app::App) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    while app.busy() {
        if t0.elapsed() > std::time::Duration::from_mins(1) {
            return Err("job did not finish in 60 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        app.tick();
    }
    settle_histograms(app);
    match &app.build {
        trtlens::tui::app::BuildState::Failed(e) => Err(format!("job failed: {e}")),
        _ => Ok(()),
    }
}

/// The `input_*` or `output_*` tensors (`prefix`) of an ONNX backend node test's `test_data_set_0`,
/// paired with `names` by position, when every one is a tensor trtlens can hold with the element
/// type the model declares.
pub fn node_test_data(
    dir: &Path,
    model: &trtlens::model::Model,
    prefix: &str,
    names: &[String],
) -> Option<trtlens::runner::Tensors> {
    use prost::Message;
    let set = dir.join("test_data_set_0");
    let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(&set)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let i = name.strip_prefix(prefix)?.strip_suffix(".pb")?.parse().ok()?;
            Some((i, e.path()))
        })
        .collect();
    files.sort();
    if files.len() != names.len() {
        return None;
    }
    let mut out = Vec::new();
    for ((_, f), name) in files.iter().zip(names) {
        let tp = trtlens::model::proto::TensorProto::decode(std::fs::read(f).ok()?.as_slice()).ok()?;
        trtlens::tensor::DType::from_onnx(tp.data_type?)?;
        if model.graph.tensor(name)?.ty.elem_type != tp.data_type {
            return None;
        }
        out.push((name.clone(), trtlens::model::tensor_proto::to_tensor(&tp, Some(&set)).ok()?));
    }
    Some(out)
}

/// The node tests a runner is known to fail (`tests/conformance/<runner>.txt`; `# comments` and
/// blank lines ignored; a missing file is empty).
pub fn conformance_allow_list(kind: trtlens::runner::RunnerKind) -> std::collections::BTreeSet<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("conformance").join(format!("{}.txt", kind.name()));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
