//! TensorRT commands in a build without the TensorRT features (the default): `doctor` runs and says
//! what is missing, `build` and TensorRT candidates name the cargo feature and the libraries they
//! need, with exit code 2 and one `error:` line.
#![cfg(not(any(feature = "tensorrt", feature = "tensorrt-rtx")))]

mod common;

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt as _;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn trtlens(args: &[&str]) -> Result<(Option<i32>, String, String), Box<dyn std::error::Error>> {
    let out = Command::cargo_bin("trtlens")?.args(args).output()?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn doctor_runs_without_tensorrt_or_a_gpu() -> TestResult {
    let (code, out, err) = trtlens(&["doctor"])?;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("TensorRT (--candidate tensorrt): not compiled in"), "{out}");
    assert!(out.contains("TensorRT-RTX (--candidate tensorrt-rtx): not compiled in"), "{out}");
    assert!(out.contains("--features tensorrt-rtx"), "says how to get it: {out}");
    assert!(out.contains("CUDA driver:"), "{out}");
    assert!(out.contains("ONNX Runtime:"), "{out}");
    let (code, json, _) = trtlens(&["doctor", "--json"])?;
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(v["flavours"].as_array().map(Vec::len), Some(2));
    assert!(v["features"].as_array().is_some_and(|f| f.iter().any(|x| x == "cuda")), "{v}");
    Ok(())
}

#[test]
fn tensorrt_candidates_name_the_feature_they_need() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let sample = common::sample("mlp_overflow").display().to_string();
    let save = tmp.path().join("b").display().to_string();
    for (flavour, feature) in [("tensorrt", "--features tensorrt"), ("tensorrt-rtx", "--features tensorrt-rtx")] {
        let (code, _, err) = trtlens(&["build", &sample, "--candidate", flavour, "--save", &save])?;
        assert_eq!(code, Some(2), "{err}");
        assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1, "{err}");
        assert!(err.contains(feature), "{err}");
        let (code, _, err) = trtlens(&["compare", &sample, "--reference", "tract", "--candidate", flavour])?;
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(feature) && !err.contains("panicked"), "{err}");
        let (code, _, err) = trtlens(&["run", &sample, "--runner", flavour, "--save", &save])?;
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(feature), "{err}");
    }
    assert!(!tmp.path().join("b").exists(), "nothing written");
    // TensorRT flags belong to TensorRT runners.
    let (code, _, err) =
        trtlens(&["compare", &sample, "--reference", "tract", "--candidate", "cpu-fp16", "--observe", "outputs"])?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("apply to a TensorRT runner"), "{err}");
    let (code, _, err) = trtlens(&["build", &sample, "--candidate", "tensorrt-9", "--save", &save])?;
    assert_eq!(code, Some(2), "{err}");
    Ok(())
}
