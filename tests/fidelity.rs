//! `scripts/fidelity`, the measurement behind `docs/fidelity.md`, without a GPU: its sample table
//! matches the library's samples, and the whole pipeline runs with `cpu-fp16` standing in for the
//! GPU (a hidden `--gpu-runner` option), where every verdict and every first non-finite tensor must
//! agree and every finite FP16 tensor is bit-exact. Needs `python3` and ONNX Runtime (the FP32
//! reference): skipped locally without them, failing in CI.

mod common;

use std::path::Path;
use std::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join("fidelity")
}

/// The script's `SAMPLES` table names every sample with its policy and `--shape` values.
#[test]
fn the_script_knows_every_sample_policy_and_shape() -> TestResult {
    let text = std::fs::read_to_string(script())?;
    let start = text.find("SAMPLES = {").ok_or("no SAMPLES table")?;
    let end = start + text[start..].find("\n}").ok_or("unterminated SAMPLES table")?;
    let table = &text[start..end];
    let mut listed = 0;
    for s in trtlens::samples::all() {
        let shapes: Vec<String> = s.shapes.iter().map(|v| format!("\"{v}\"")).collect();
        let row = format!("\"{}\": (\"{}\", [{}]),", s.name, s.policy.name(), shapes.join(", "));
        assert!(table.contains(&row), "scripts/fidelity SAMPLES lacks `{row}`");
        listed += 1;
    }
    assert_eq!(table.matches("\": (\"").count(), listed, "the script lists a sample the library does not have");
    Ok(())
}

#[test]
fn the_pipeline_runs_end_to_end_with_a_stand_in_gpu() -> TestResult {
    let python = Command::new("python3").arg("--version").output();
    if python.is_err() || trtlens::runner::ort::load(None).is_err() {
        assert!(!common::in_ci(), "python3 and onnxruntime are required in CI");
        println!("skipped: python3 or onnxruntime missing");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let probes = tmp.path().join("probes");
    std::fs::create_dir_all(&probes)?;
    for p in trtlens::samples::probes::all()
        .into_iter()
        .filter(|p| ["Clip(x, 0, 6)", "ArgMax", "tf32_mlp"].contains(&p.name))
    {
        std::fs::write(probes.join(format!("{}.onnx", p.file_stem())), trtlens::samples::encode(&p.model))?;
        std::fs::write(probes.join(format!("{}.npz", p.file_stem())), trtlens::io::npy::write_npz(&p.inputs)?)?;
    }
    let out = tmp.path().join("out");
    let run = Command::new("python3")
        .arg(script())
        .arg("--trtlens")
        .arg(env!("CARGO_BIN_EXE_trtlens"))
        .args(["--gpu-runner", "cpu-fp16", "--only", "clip_nan_guard", "--only", "yolo_symbolic"])
        .args(["--only", "nan_Clip_x__0__6_", "--only", "nan_ArgMax", "--only", "tf32_mlp", "--models"])
        .arg(&probes)
        .arg("--out")
        .arg(&out)
        .output()?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let md = std::fs::read_to_string(out.join("fidelity.md"))?;
    assert!(md.contains("Verdicts agree in 12 of 12 cases; the first non-finite tensor in 12 of 12"), "{md}");
    assert!(md.contains("| clip_nan_guard | fp16 | on | fail | fail | yes | /frontend/Pow_output_0 |"), "{md}");
    assert!(md.contains("| nan_Clip_x__0__6_ | same | same |"), "{md}");
    assert!(md.contains("| nan_ArgMax | 1 of 6 differ"), "ONNX Runtime CPU's ArgMax NaN quirk shows: {md}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("fidelity.json"))?)?;
    let models = json["models"].as_array().ok_or("models")?;
    assert_eq!(models.len(), 3);
    for m in models {
        for (key, p) in m["plans"].as_object().ok_or("plans")? {
            assert_eq!(p["finite_tensors"], p["bit_exact"], "{} {key}: the stand-in GPU is the emulation", m["model"]);
        }
        // TF32 moves FP32 outputs the same way on both stand-in sides.
        assert_eq!(m["tf32"]["gpu-on"], m["tf32"]["emu-on"]);
    }
    let mlp = models.iter().find(|m| m["model"] == "tf32_mlp").ok_or("tf32_mlp")?;
    let moved = mlp["tf32"]["emu-on"].as_f64().ok_or("a number")?;
    assert!(moved > 1e-5 && moved < 1e-2, "{moved}");
    Ok(())
}
