//! The `onnxruntime-cuda` runner where there is no GPU: option handling, library discovery and
//! error messages (a missing provider library or missing CUDA libraries are one `error:` line and
//! exit 2, never a silent CPU run), and the manifest/report keys it writes.
//!
//! With `TRTLENS_ORT_GPU_LIB` pointing at the `onnxruntime-gpu` library (`libonnxruntime.so.X.Y.Z`
//! or its folder; the wheel's `onnxruntime/capi`), the runner also loads it: on a machine without
//! the CUDA libraries or a GPU that is a one-line error naming what is missing; on a GPU machine
//! the sample runs on the GPU. That variable is optional everywhere (CI has no GPU and the
//! `onnxruntime-gpu` package would replace its CPU `onnxruntime`).
#![cfg(feature = "onnxruntime")]

mod common;

use std::path::PathBuf;
use std::process::Command;

use trtlens::runner::ort::cuda;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn trtlens() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trtlens"));
    c.env("NO_COLOR", "1").env_remove("ORT_DYLIB_PATH");
    c
}

/// Exit code 2 and exactly one `error:` line, which is returned.
fn fails_cleanly(out: &std::process::Output) -> Result<String, Box<dyn std::error::Error>> {
    let err = String::from_utf8(out.stderr.clone())?;
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    Ok(lines[0].to_string())
}

/// A folder with a CPU-only ONNX Runtime: a `libonnxruntime.so.X.Y.Z` and no CUDA provider.
fn cpu_only_dir() -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("libonnxruntime.so.1.31.1"), b"")?;
    std::fs::write(dir.path().join(cuda::PROVIDERS_SHARED), b"")?;
    Ok(dir)
}

#[test]
fn a_library_without_the_cuda_provider_is_a_clear_exit_2() -> TestResult {
    let lib = cpu_only_dir()?;
    let tmp = tempfile::tempdir()?;
    let model = common::sample("cnn_bn_relu");
    for args in [
        vec!["run", "MODEL", "--runner", "onnxruntime-cuda", "--save", "SAVE"],
        vec!["compare", "MODEL", "--reference", "tract", "--candidate", "onnxruntime-cuda", "--precision", "fp16"],
        vec!["compare", "MODEL", "--reference", "onnxruntime-cuda", "--candidate", "tract"],
    ] {
        let mut c = trtlens();
        for a in &args {
            match *a {
                "MODEL" => c.arg(&model),
                "SAVE" => c.arg(tmp.path().join("run")),
                a => c.arg(a),
            };
        }
        let out = c.arg("--ort-lib").arg(lib.path()).output()?;
        let line = fails_cleanly(&out)?;
        assert!(line.contains("runner onnxruntime-cuda") && line.contains(cuda::PROVIDER), "{line}");
        assert!(line.contains("onnxruntime-gpu"), "says what to install: {line}");
        assert!(!tmp.path().join("run").exists(), "no run directory");
    }
    // The same through ORT_DYLIB_PATH.
    let out = trtlens()
        .arg("run")
        .arg(&model)
        .args(["--runner", "onnxruntime-cuda", "--save"])
        .arg(tmp.path().join("run"))
        .env("ORT_DYLIB_PATH", lib.path().join("libonnxruntime.so.1.31.1"))
        .output()?;
    let line = fails_cleanly(&out)?;
    assert!(line.contains("ORT_DYLIB_PATH") || line.contains(cuda::PROVIDER), "{line}");
    // A path that does not exist.
    let out = trtlens()
        .arg("run")
        .arg(&model)
        .args(["--runner", "onnxruntime-cuda", "--ort-lib", "/nonexistent/libonnxruntime.so.1.31.1", "--save"])
        .arg(tmp.path().join("run"))
        .output()?;
    assert!(fails_cleanly(&out)?.contains("no such file"));
    Ok(())
}

/// A library with a provider next to it that is not loadable: the worker reports it, the caller
/// exits 2 with one line (the worker is where the library is loaded).
#[test]
fn a_broken_gpu_library_fails_in_the_worker_with_one_line() -> TestResult {
    let lib = cpu_only_dir()?;
    std::fs::write(lib.path().join(cuda::PROVIDER), b"")?;
    let tmp = tempfile::tempdir()?;
    let out = trtlens()
        .arg("run")
        .arg(common::sample("cnn_bn_relu"))
        .args(["--runner", "onnxruntime-cuda", "--save"])
        .arg(tmp.path().join("run"))
        .arg("--ort-lib")
        .arg(lib.path())
        .output()?;
    let line = fails_cleanly(&out)?;
    assert!(line.contains("libonnxruntime.so.1.31.1"), "{line}");
    assert!(!tmp.path().join("run").exists());
    Ok(())
}

#[test]
fn runner_flags_are_refused_where_no_runner_honours_them() -> TestResult {
    let model = common::sample("cnn_bn_relu");
    let tmp = tempfile::tempdir()?;
    let cases: [(&[&str], &str); 6] = [
        (&["run", "--runner", "tract", "--device", "1"], "--device applies to onnxruntime-cuda"),
        (&["run", "--runner", "onnxruntime", "--ort-opt", "all"], "--ort-opt applies to onnxruntime-cuda"),
        (&["run", "--runner", "tract", "--tf32"], "--tf32 applies to cpu-fp16, onnxruntime-cuda"),
        (&["compare", "--reference", "onnxruntime", "--candidate", "tract", "--tf32", "off"], "--tf32 applies"),
        (&["compare", "--reference", "tract", "--candidate", "cpu-fp16", "--device", "0"], "--device applies"),
        (&["run", "--runner", "onnxruntime-cuda", "--tf32", "maybe"], "invalid value 'maybe'"),
    ];
    for (args, want) in cases {
        let mut c = trtlens();
        c.arg(args[0]).arg(&model).args(&args[1..]);
        if args[0] == "run" {
            c.arg("--save").arg(tmp.path().join("run"));
        }
        let out = c.output()?;
        let err = String::from_utf8(out.stderr)?;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    Ok(())
}

/// `cpu-fp16 --tf32`: the manifest and the report record it; the FP32 outputs of a plan that
/// keeps everything FP32 move by about TF32's precision and no more.
#[test]
fn cpu_fp16_tf32_is_recorded_and_moves_fp32_matmuls() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = common::sample("attention_mask");
    let report = |extra: &[&str], name: &str| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let path = tmp.path().join(name);
        let out = trtlens()
            .arg("compare")
            .arg(&model)
            .args(["--reference", "tract", "--candidate", "cpu-fp16", "--precision", "fp32", "--report"])
            .arg(&path)
            .args(extra)
            .output()?;
        assert!(out.status.code().is_some_and(|c| c < 2), "{}", String::from_utf8_lossy(&out.stderr));
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    };
    let off = report(&[], "off.json")?;
    let on = report(&["--tf32"], "on.json")?;
    assert_eq!(off["candidate"]["settings"]["tf32"], "off");
    assert_eq!(off["candidate"]["settings"]["tf32_source"], "default");
    assert_eq!(on["candidate"]["settings"]["tf32"], "on");
    assert_eq!(on["candidate"]["settings"]["tf32_source"], "--tf32");
    assert!(on["candidate"]["version"].as_str().is_some_and(|v| v.contains("TF32")));
    let out_err = |r: &serde_json::Value| -> f64 { r["outputs"][0]["max_abs"].as_f64().unwrap_or(f64::NAN) };
    let (e_off, e_on) = (out_err(&off), out_err(&on));
    assert!(e_off < 1e-5, "all-FP32 cpu-fp16 equals FP32: {e_off}");
    assert!(e_on > 1e-5 && e_on < 1e-2, "TF32 moves the outputs by about 1e-4..1e-3: {e_on}");
    Ok(())
}

/// With the real `onnxruntime-gpu` library (`TRTLENS_ORT_GPU_LIB`): its provider's CUDA needs are
/// read from its ELF header; without the CUDA libraries or a GPU the run is one error line naming
/// them, with them it runs on the GPU and records its settings.
#[test]
fn the_real_gpu_library_when_given() -> TestResult {
    let Some(lib) = std::env::var_os("TRTLENS_ORT_GPU_LIB").filter(|v| !v.is_empty()).map(PathBuf::from) else {
        println!("skipped: TRTLENS_ORT_GPU_LIB not set (the onnxruntime-gpu library: onnxruntime/capi)");
        return Ok(());
    };
    let p = cuda::probe(Some(&lib));
    let provider = p.provider.clone().ok_or_else(|| format!("no provider: {p}"))?;
    let needs = cuda::needed(&provider).ok_or("the provider is an ELF library")?;
    assert!(needs.iter().any(|n| n.starts_with("libcublasLt.so")), "{needs:?}");
    assert!(needs.iter().any(|n| n == "libcuda.so.1"), "{needs:?}");
    let tmp = tempfile::tempdir()?;
    let out = trtlens()
        .arg("compare")
        .arg(common::sample("cnn_bn_relu"))
        .args(["--reference", "onnxruntime", "--candidate", "onnxruntime-cuda", "--tf32", "off", "--report"])
        .arg(tmp.path().join("r.json"))
        .arg("--ort-lib")
        .arg(&lib)
        .output()?;
    if p.missing().is_empty() && out.status.code() != Some(2) {
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("r.json"))?)?;
        assert_eq!(r["candidate"]["settings"]["execution_provider"], "CUDAExecutionProvider");
        assert_eq!(r["candidate"]["settings"]["tf32"], "off");
        assert_eq!(r["candidate"]["settings"]["graph_optimization"], "disable");
        assert_eq!(r["verdict"], "pass", "FP32 on the GPU agrees with the CPU at FP16 tolerances");
    } else {
        let line = fails_cleanly(&out)?;
        assert!(line.contains("runner onnxruntime-cuda"), "{line}");
        for m in p.missing() {
            if m != cuda::CUDNN {
                assert!(line.contains(m), "names {m}: {line}");
            }
        }
    }
    Ok(())
}
