//! Interop in both directions:
//! - inputs exported to Polygraphy JSON, `.npz`, `.safetensors` and raw files per input read back
//!   bit for bit (every dtype, NaN payloads, −0, subnormals), through the library and through
//!   `trtlens run --load-inputs`; numpy reads the `.npz` and raw files the same; Polygraphy runs a
//!   model on the exported JSON inputs;
//! - a run's tensors exported as Polygraphy `RunResults` are accepted by `polygraphy run
//!   --load-outputs`, which gives the same pass/fail as trtlens (per tensor and as a verdict), and
//!   trtlens compares the exported files like the run directories;
//! - plans exported as `AutoCast` arguments select exactly the nodes the plan keeps FP32 (checked
//!   with Python's own `re.match`), and as `trtexec` flags name every float node with its precision.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{in_ci, sample};
use trtlens::compare::report::{Report, Status};
use trtlens::io::export::{InputsFormat, export_inputs, load_any_inputs};
use trtlens::runner::Tensors;
use trtlens::tensor::{DType, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trtlens"))
}

fn unavailable(what: &str) -> TestResult {
    if in_ci() {
        return Err(format!("{what} (CI must install it: pip install -r .ci/requirements.txt)").into());
    }
    println!("skipped: {what}");
    Ok(())
}

fn value_of<'a>(words: &'a [String], flag: &str) -> Option<&'a str> {
    words.iter().position(|w| w == flag).and_then(|i| words.get(i + 1)).map(String::as_str)
}

fn run(cmd: &mut Command) -> Result<(i32, String, String), Box<dyn std::error::Error>> {
    let out = cmd.output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn python_has(module: &str) -> bool {
    Command::new("python3").args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success())
}

/// A tensor of `dtype` whose bytes walk through awkward bit patterns (NaN payloads, −0, infinities,
/// subnormals for floats; extremes for integers).
fn awkward(dtype: DType, shape: &[usize], seed: u8) -> Result<Tensor, Box<dyn std::error::Error>> {
    let n = trtlens::tensor::numel(shape);
    let size = dtype.size();
    let specials: Vec<Vec<u8>> = match dtype {
        DType::Float32 => [f32::NAN.to_bits() | 0x1234, (-0.0f32).to_bits(), f32::INFINITY.to_bits(), 1, 0x7f7f_ffff]
            .iter()
            .map(|b| b.to_le_bytes().to_vec())
            .collect(),
        DType::Float64 => {
            [f64::NAN.to_bits() | 0xbeef, (-0.0f64).to_bits(), 1].iter().map(|b| b.to_le_bytes().to_vec()).collect()
        }
        DType::Float16 | DType::Bfloat16 => {
            [0x7e01u16, 0x8000, 0x0001, 0x7c00].iter().map(|b| b.to_le_bytes().to_vec()).collect()
        }
        DType::Bool => vec![vec![0], vec![1]],
        _ => vec![vec![0xff; size], vec![0x80; size]],
    };
    let mut data = Vec::with_capacity(n * size);
    for i in 0..n {
        if dtype == DType::Bool {
            data.push(u8::from((i + usize::from(seed)) % 3 == 0));
        } else if i % 4 == 0 {
            data.extend_from_slice(&specials[(i / 4 + usize::from(seed)) % specials.len()]);
        } else {
            data.extend((0..size).map(|k| (i * 31 + k * 7 + usize::from(seed)) as u8));
        }
    }
    Ok(Tensor::from_bytes(dtype, shape.to_vec(), data)?)
}

fn all_dtypes(seed: u8) -> Result<Tensors, Box<dyn std::error::Error>> {
    let shapes: [&[usize]; 3] = [&[2, 3], &[5], &[]];
    DType::ALL
        .iter()
        .enumerate()
        .map(|(i, &d)| Ok((format!("in/{}:{i}", d.name()), awkward(d, shapes[i % 3], seed)?)))
        .collect()
}

#[test]
fn inputs_round_trip_bit_for_bit_through_every_format() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let iterations = vec![all_dtypes(0)?, all_dtypes(1)?];
    let source = Path::new("test inputs");
    for (format, file) in [
        (InputsFormat::Polygraphy, "in.json"),
        (InputsFormat::Npz, "in.npz"),
        (InputsFormat::Safetensors, "in.safetensors"),
        (InputsFormat::Raw, "in_raw"),
    ] {
        let out = tmp.path().join(file);
        let one_iteration = format != InputsFormat::Polygraphy;
        let pick = one_iteration.then_some(1);
        let done = export_inputs(&iterations, source, format, pick, &out)?;
        let mut back = load_any_inputs(&out)?;
        let mut want = if one_iteration { vec![iterations[1].clone()] } else { iterations.clone() };
        if format == InputsFormat::Safetensors {
            // safetensors keeps no order (inputs are fed by name): compare by name.
            for it in back.iter_mut().chain(want.iter_mut()) {
                it.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
        assert_eq!(back, want, "{}: bit-identical after the round trip", format.name());
        assert_eq!(done.tensors, iterations[0].len());
        if one_iteration {
            // Two iterations do not fit in one: the export asks which.
            let e = export_inputs(&iterations, source, format, None, &tmp.path().join("x")).expect_err("ambiguous");
            assert!(e.to_string().contains("--iteration N"), "{e}");
        }
    }
    // A raw directory: the trtexec argument names every file; an earlier export is replaced, any
    // other non-empty directory is refused.
    let raw = tmp.path().join("in_raw");
    let args = std::fs::read_to_string(raw.join(trtlens::io::raw::TRTEXEC_ARGS))?;
    let words = shell_words(&args);
    assert_eq!(words.len(), 1, "{args}");
    assert!(words[0].starts_with("--loadInputs='in/float32:0':"), "{args}");
    assert_eq!(words[0].matches(".bin").count(), iterations[0].len(), "{args}");
    export_inputs(&iterations, source, InputsFormat::Raw, Some(0), &raw)?;
    assert_eq!(load_any_inputs(&raw)?, vec![iterations[0].clone()]);
    std::fs::write(tmp.path().join("other.txt"), b"keep me")?;
    let e = export_inputs(&iterations, source, InputsFormat::Raw, Some(0), tmp.path()).expect_err("refused");
    assert!(e.to_string().contains("not empty"), "{e}");
    assert!(tmp.path().join("other.txt").is_file());
    // A short raw file is named, not misread.
    let manifest = trtlens::io::raw::read_manifest(&raw)?;
    let file = raw.join(&manifest.inputs[0].file);
    let bytes = std::fs::read(&file)?;
    std::fs::write(&file, &bytes[..bytes.len() - 1])?;
    let e = load_any_inputs(&raw).expect_err("short file");
    assert!(e.to_string().contains(&manifest.inputs[0].file) && e.to_string().contains("bytes"), "{e}");
    Ok(())
}

#[test]
fn exported_inputs_feed_runs_and_numpy_reads_them() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    // float32 and int64 inputs, two iterations.
    let model = sample("vad_if_branches");
    let (code, _, err) = run(bin()
        .arg("run")
        .arg(&model)
        .args(["--iterations", "2", "--val-range", "sr:16000,16000", "--quiet", "--save"])
        .arg(dir.join("run")))?;
    assert_eq!(code, 0, "{err}");
    let original = trtlens::store::RunDir::open(&dir.join("run"))?.load_inputs()?;
    for (format, out, iteration) in [
        ("polygraphy", "in.json", None),
        ("npz", "in.npz", Some(1)),
        ("safetensors", "in.st", Some(1)),
        ("raw", "raw", Some(1)),
    ] {
        let mut cmd = bin();
        cmd.args(["inputs", "export"]).arg(dir.join("run")).args(["--format", format, "-o"]).arg(dir.join(out));
        if let Some(i) = iteration {
            cmd.args(["--iteration", &i.to_string()]);
        }
        let (code, stdout, err) = run(&mut cmd)?;
        assert_eq!(code, 0, "{format}: {err}");
        assert!(err.contains(&format!("wrote {}", dir.join(out).display())), "{err}");
        if format == "raw" {
            assert!(stdout.contains("--loadInputs=") && stdout.contains("'input':"), "{stdout}");
        }
        let again = dir.join(format!("run-{format}"));
        let (code, _, err) = run(bin()
            .arg("run")
            .arg(&model)
            .arg("--load-inputs")
            .arg(dir.join(out))
            .arg("--quiet")
            .arg("--save")
            .arg(&again))?;
        assert_eq!(code, 0, "{format}: {err}");
        let loaded = trtlens::store::RunDir::open(&again)?.load_inputs()?;
        let want = match iteration {
            Some(i) => vec![original[i].clone()],
            None => original.clone(),
        };
        assert_eq!(loaded, want, "{format}: the run saw exactly the exported inputs");
    }
    // Usage errors: a one-iteration format without --iteration, an iteration that does not exist.
    let (code, _, err) = run(bin()
        .args(["inputs", "export"])
        .arg(dir.join("run"))
        .args(["--format", "npz", "-o"])
        .arg(dir.join("x.npz")))?;
    assert!(code == 2 && err.contains("holds 2 iterations"), "{err}");
    let (code, _, err) = run(bin()
        .args(["inputs", "export"])
        .arg(dir.join("run"))
        .args(["--format", "polygraphy", "--iteration", "5", "-o"])
        .arg(dir.join("x.json")))?;
    assert!(code == 2 && err.contains("--iteration 5"), "{err}");

    if !python_has("numpy") {
        return unavailable("numpy not installed");
    }
    let check = r#"
import json, sys, numpy as np
d = sys.argv[1]
npz = np.load(d + "/in.npz")
m = json.load(open(d + "/raw/raw_inputs.json"))
for e in m["inputs"]:
    raw = np.fromfile(d + "/raw/" + e["file"], dtype=np.dtype(e["dtype"])).reshape(e["shape"])
    assert raw.dtype == npz[e["name"]].dtype and raw.tobytes() == npz[e["name"]].tobytes(), e["name"]
print("ok", sorted(npz.files))
"#;
    let out = Command::new("python3").args(["-c", check]).arg(dir).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok ['input', 'sr']"));
    Ok(())
}

fn polygraphy() -> Option<std::path::PathBuf> {
    let out =
        Command::new("python3").args(["-c", "import shutil; print(shutil.which('polygraphy') or '')"]).output().ok()?;
    let p = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!p.is_empty()).then(|| std::path::PathBuf::from(p))
}

/// `polygraphy run --load-outputs CANDIDATE REFERENCE` (the reference second: Polygraphy's relative
/// error divides by the second file's values, as trtlens divides by the reference's): exit status
/// and per-output PASSED/FAILED.
fn polygraphy_compare(
    poly: &Path,
    candidate: &Path,
    reference: &Path,
    tol: &str,
) -> Result<(bool, BTreeMap<String, bool>), Box<dyn std::error::Error>> {
    let out = Command::new(poly)
        .args(["run", "--load-outputs"])
        .arg(candidate)
        .arg(reference)
        .args(["--atol", tol, "--rtol", tol, "--check-error-stat", "elemwise"])
        .output()?;
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut per = BTreeMap::new();
    for line in log.lines() {
        for (word, passed) in [("PASSED | Output: '", true), ("FAILED | Output: '", false)] {
            if let Some(rest) = line.split(word).nth(1)
                && let Some(name) = rest.split('\'').next()
            {
                per.insert(name.to_string(), passed);
            }
        }
    }
    if per.is_empty() {
        return Err(format!("polygraphy compared nothing:\n{log}").into());
    }
    Ok((out.status.success(), per))
}

#[test]
fn polygraphy_accepts_exported_run_results_and_agrees_with_trtlens() -> TestResult {
    let Some(poly) = polygraphy() else { return unavailable("polygraphy not installed") };
    let tmp = tempfile::tempdir()?;
    let tol = "1e-2";
    let mut verdicts = Vec::new();
    for name in ["cnn_bn_relu", "mlp_overflow", "layernorm_overflow"] {
        let dir = tmp.path().join(name);
        let report_path = dir.join("report.json");
        std::fs::create_dir_all(&dir)?;
        let (code, _, err) = run(bin()
            .arg("compare")
            .arg(sample(name))
            .args(["--reference", "tract", "--candidate", "cpu-fp16", "--rule", "polygraphy", "--atol", tol])
            .args(["--rtol", tol, "--quiet", "--save-runs"])
            .arg(dir.join("runs"))
            .arg("--report")
            .arg(&report_path))?;
        assert!(code <= 1, "{name}: {err}");
        let report: Report = serde_json::from_slice(&std::fs::read(&report_path)?)?;
        let export =
            |side: &str, file: &str, extra: &[&str]| -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
                let out = dir.join(file);
                let (code, _, err) = run(bin()
                    .args(["tensors", "export"])
                    .arg(dir.join("runs").join(side))
                    .args(["--format", "polygraphy", "-o"])
                    .arg(&out)
                    .args(extra))?;
                assert_eq!(code, 0, "{err}");
                Ok(out)
            };
        // Every tensor: the same status per tensor.
        let (r_all, c_all) = (export("reference", "ref.json", &[])?, export("candidate", "cand.json", &[])?);
        let (_, per) = polygraphy_compare(&poly, &c_all, &r_all, tol)?;
        let ours: BTreeMap<String, bool> =
            report.tensors.iter().map(|t| (t.name.clone(), t.status == Status::Pass)).collect();
        assert_eq!(per, ours, "{name}: Polygraphy and trtlens judge every tensor alike");
        // Graph outputs only: the same verdict.
        let r_out = export("reference", "ref_out.json", &["--outputs-only"])?;
        let c_out = export("candidate", "cand_out.json", &["--outputs-only"])?;
        let (passed, per) = polygraphy_compare(&poly, &c_out, &r_out, tol)?;
        assert_eq!(
            per.keys().cloned().collect::<Vec<_>>(),
            report.outputs.iter().map(|o| o.name.clone()).collect::<Vec<_>>()
        );
        assert_eq!(passed, report.passed(), "{name}: polygraphy's verdict is trtlens's");
        verdicts.push(passed);
        // trtlens reads its exports back: the same comparison as on the run directories.
        let (code, stdout, err) = run(bin()
            .arg("compare")
            .arg("--reference")
            .arg(format!("saved:{}", r_all.display()))
            .arg("--candidate")
            .arg(format!("saved:{}", c_all.display()))
            .args(["--rule", "polygraphy", "--atol", tol, "--rtol", tol, "--json"]))?;
        assert!(code <= 1, "{err}");
        let again: Report = serde_json::from_str(&stdout)?;
        let statuses = |r: &Report| r.tensors.iter().map(|t| (t.name.clone(), t.status)).collect::<Vec<_>>();
        assert_eq!(statuses(&again), statuses(&report), "{name}");
    }
    assert!(verdicts.contains(&true) && verdicts.contains(&false), "both verdicts covered: {verdicts:?}");
    Ok(())
}

#[test]
fn run_tensors_export_to_npz_reads_back() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let (code, _, err) = run(bin()
        .arg("run")
        .arg(sample("cnn_bn_relu"))
        .args(["--iterations", "2", "--quiet", "--save"])
        .arg(dir.join("run")))?;
    assert_eq!(code, 0, "{err}");
    let run_dir = trtlens::store::RunDir::open(&dir.join("run"))?;
    let (code, _, err) = run(bin()
        .args(["tensors", "export"])
        .arg(dir.join("run"))
        .args(["--format", "npz", "--iteration", "1", "-o"])
        .arg(dir.join("t.npz")))?;
    assert_eq!(code, 0, "{err}");
    let back = trtlens::io::npy::read_npz(&std::fs::read(dir.join("t.npz"))?)?;
    let mapped = run_dir.tensors(1)?;
    assert_eq!(back.len(), run_dir.manifest.tensors.len());
    for ((name, t), entry) in back.iter().zip(&run_dir.manifest.tensors) {
        assert_eq!(name, &entry.name, "topological order");
        assert_eq!(Some(t), mapped.get(name)?.as_ref(), "{name}");
    }
    let (code, _, err) = run(bin()
        .args(["tensors", "export"])
        .arg(dir.join("run"))
        .args(["--format", "npz", "-o"])
        .arg(dir.join("u.npz")))?;
    assert!(code == 2 && err.contains("has 2 iterations"), "{err}");
    let (code, _, err) = run(bin()
        .args(["tensors", "export"])
        .arg(dir.join("nope"))
        .args(["--format", "npz", "-o"])
        .arg(dir.join("u.npz")))?;
    assert!(code == 2 && err.contains("not a trtlens run directory"), "{err}");
    Ok(())
}

/// `trtexec`'s reading of a `--layerPrecisions` / `--layerOutputTypes` value (split on `,`, then a
/// quoted name or a split on the last `:`), as in its sampleOptions.
fn trtexec_spec(value: &str) -> BTreeMap<String, String> {
    value
        .split(',')
        .map(|s| {
            let parts: Vec<&str> = s.split('\'').collect();
            if parts.len() == 3 {
                (format!("{}{}", parts[0], parts[1]), parts[2][1..].to_string())
            } else {
                let (n, v) = s.rsplit_once(':').unwrap_or((s, ""));
                (n.to_string(), v.to_string())
            }
        })
        .collect()
}

/// Split a line into words as a POSIX shell does for quoting: `'...'` literal, `"..."` with
/// backslash escapes of `$`, `` ` ``, `"`, `\\`, and backslash escapes outside quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut single, mut double, mut in_word) = (false, false, false);
    let mut chars = line.trim_end().chars().peekable();
    while let Some(c) = chars.next() {
        if single {
            if c == '\'' {
                single = false;
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '\'' if !double => {
                single = true;
                in_word = true;
            }
            '"' => {
                double = !double;
                in_word = true;
            }
            '\\' => {
                if let Some(&n) = chars.peek()
                    && (!double || "$`\"\\".contains(n))
                {
                    cur.push(n);
                    chars.next();
                } else {
                    cur.push(c);
                }
                in_word = true;
            }
            ' ' if !double => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            _ => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[test]
fn plans_export_as_autocast_and_trtexec_arguments() -> TestResult {
    let tmp = tempfile::tempdir()?;
    for s in trtlens::samples::all().into_iter().filter(|s| !s.fix.is_empty()) {
        let model_path = sample(s.name);
        let model = trtlens::model::Model::load(&model_path)?;
        let mut keep: Vec<String> = s.fix.iter().map(|n| format!("--keep-fp32={n}")).collect();
        keep.extend(["--out-of-range".to_string(), "keep-fp32".into()]);
        let out = tmp.path().join(format!("{}.autocast.txt", s.name));
        let (code, _, err) =
            run(bin().arg("convert").arg(&model_path).args(&keep).args(["--format", "autocast", "-o"]).arg(&out))?;
        assert_eq!(code, 0, "{err}");
        assert!(err.contains(&format!("wrote {}", out.display())), "{err}");
        let words = shell_words(&std::fs::read_to_string(&out)?);
        assert_eq!(&words[..3], ["python", "-m", "modelopt.onnx.autocast"]);
        let value = |flag: &str| words.iter().position(|w| w == flag).map(|i| words[i + 1].clone());
        assert_eq!(value("--onnx_path").as_deref(), Some(model_path.to_string_lossy().as_ref()));
        assert_eq!(value("--init_max").as_deref(), Some("65504"), "keep-fp32 is AutoCast's init_max rule");
        assert_eq!(value("--data_max").as_deref(), Some("inf"));
        let patterns: Vec<String> = match words.iter().position(|w| w == "--nodes_to_exclude") {
            Some(i) => words[i + 1..].iter().take_while(|w| !w.starts_with("--")).cloned().collect(),
            None => Vec::new(),
        };
        // Python's re.match picks exactly the nodes the Cast rewrite keeps FP32 among those that
        // compute on float values (what an all-FP16 rewrite makes FP16).
        let all16 = trtlens::precision::Plan::from_cli(trtlens::precision::Precision::Fp16, &[], &[], &[])?;
        let floaty: Vec<String> = trtlens::precision::convert_to_bytes(&model, &all16)?.1.nodes_fp16;
        let mut plan = trtlens::precision::Plan::from_cli(
            trtlens::precision::Precision::Fp16,
            &s.fix.iter().map(|n| (*n).to_string()).collect::<Vec<_>>(),
            &[],
            &[],
        )?;
        plan.out_of_range = trtlens::precision::OutOfRangePolicy::KeepFp32;
        let fp16 = trtlens::precision::convert_to_bytes(&model, &plan)?.1.nodes_fp16;
        let fp32: Vec<String> = floaty.iter().filter(|n| !fp16.contains(n)).cloned().collect();
        assert!(s.fix.iter().all(|n| !floaty.contains(&(*n).to_string()) || fp32.contains(&(*n).to_string())));
        let names: Vec<String> = model.graph.nodes.iter().map(|n| n.name.clone()).collect();
        let script = "import re, sys, json\npats, names = json.loads(sys.argv[1]), json.loads(sys.argv[2])\nprint(json.dumps(sorted(n for n in names if any(re.match(p, n) for p in pats))))";
        let py = Command::new("python3")
            .args(["-c", script, &serde_json::to_string(&patterns)?, &serde_json::to_string(&names)?])
            .output()?;
        assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
        let selected: Vec<String> = serde_json::from_slice(&py.stdout)?;
        let mut want = fp32.clone();
        want.sort();
        assert_eq!(selected, want, "{}: AutoCast excludes exactly the plan's FP32 float nodes", s.name);

        // trtexec: every float node named once with the rewrite's precision.
        let out = tmp.path().join(format!("{}.trtexec.txt", s.name));
        let (code, _, err) =
            run(bin().arg("convert").arg(&model_path).args(&keep).args(["--format", "trtexec", "-o"]).arg(&out))?;
        assert_eq!(code, 0, "{err}");
        let words = shell_words(&std::fs::read_to_string(&out)?);
        assert_eq!(&words[..2], ["--fp16", "--precisionConstraints=obey"]);
        let layers = trtexec_spec(words.iter().find_map(|w| w.strip_prefix("--layerPrecisions=")).ok_or("flag")?);
        let mut expected = BTreeMap::new();
        for n in &floaty {
            expected.insert(n.clone(), if fp32.contains(n) { "fp32" } else { "fp16" }.to_string());
        }
        assert_eq!(layers, expected, "{}", s.name);
        let outputs = trtexec_spec(words.iter().find_map(|w| w.strip_prefix("--layerOutputTypes=")).ok_or("flag")?);
        for (node, word) in &expected {
            assert_eq!(outputs.get(node), Some(word), "{}: {node} outputs", s.name);
        }
    }
    // A whole op type kept FP32 is said as an op type.
    let out = tmp.path().join("op.txt");
    let (code, _, err) = run(bin()
        .arg("convert")
        .arg(sample("mlp_overflow"))
        .args(["--keep-fp32-op", "MatMul", "--format", "autocast", "-o"])
        .arg(&out))?;
    assert_eq!(code, 0, "{err}");
    let words = shell_words(&std::fs::read_to_string(&out)?);
    let i = words.iter().position(|w| w == "--op_types_to_exclude").ok_or("op types")?;
    assert_eq!(words[i + 1..], ["MatMul"]);
    assert!(!words.iter().any(|w| w == "--nodes_to_exclude"), "{words:?}");
    assert_eq!(value_of(&words, "--init_max"), Some("inf"), "saturate: AutoCast clamps as TensorRT does");
    // A plan naming no node of the model is the usual one-line error.
    let (code, _, err) = run(bin()
        .arg("convert")
        .arg(sample("mlp_overflow"))
        .args(["--keep-fp32", "nope", "--format", "trtexec", "-o"])
        .arg(tmp.path().join("x.txt")))?;
    assert!(code == 2 && err.contains("selects no node"), "{err}");
    assert!(!tmp.path().join("x.txt").exists());
    Ok(())
}
