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
