//! Real-model scale (issue 14): trtlens against Polygraphy on a model with hundreds of MB of
//! activations, with wall time, CPU time, peak RSS, GB/s, the ratios to the targets, and the
//! machine's memory bandwidth as the ceiling. It prints one markdown table (kept in
//! `docs/benchmarks.md`); nothing is asserted.
//!
//! ```text
//! cargo bench --bench scale                        # the generated detector at 640x640
//! cargo bench --bench scale -- --size 320          # a smaller one
//! cargo bench --bench scale -- --model target/real-models/ch_PP-OCRv4_det_infer.onnx --shape x:1x3x640x640
//! TRTLENS_BENCH_DIR=/dev/shm/trtlens-bench cargo bench --bench scale   # runs and JSON files on tmpfs
//! ```
//!
//! Options: `--skip-polygraphy`, `--reps N` (trtlens commands run N times, the fastest counts;
//! default 3; Polygraphy's once), `--rows N` (the inspector session, default 50,000), `--keep`
//! (leave the files).
//!
//! The model (unless `--model`) is [`trtlens::samples::bench::detector`], shaped like PP-OCRv4's
//! text detector, written to the bench directory and never committed. Polygraphy and ONNX Runtime
//! come from `PyPI` (`pip install polygraphy onnxruntime`, run by the bench when they are missing).
//! Every command runs as a child process measured by Python's `resource` module (wall time, CPU
//! time of the child, its peak RSS, `ru_maxrss`).
//!
//! Steps: `trtlens run` with `tract`, `onnxruntime` and `cpu-fp16`; `trtlens compare` of two run
//! directories and of the same activations as Polygraphy JSON (`trtlens tensors export`); the end
//! to end `trtlens compare MODEL --reference onnxruntime --candidate cpu-fp16`, with and without
//! the introduced error; Polygraphy's sequence (the FP32 model and its FP16 version, written by
//! `trtlens convert`, run by ONNX Runtime marking every tensor, then `--load-outputs` compare) and
//! Polygraphy's compare of the same activations; opening and redrawing an inspector session of
//! `--rows` tensors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use trtlens::model::Model;
use trtlens::store::RunDir;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const MEASURE: &str = r#"
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss": ru.ru_maxrss * 1024,
                  "rc": p.returncode, "err": p.stderr.decode(errors="replace")[-3000:]}))
"#;

/// One measured command.
#[derive(Debug, Clone, Copy)]
struct Measure {
    wall: f64,
    cpu: f64,
    rss: f64,
}

struct Bench {
    exe: PathBuf,
    dir: PathBuf,
}

impl Bench {
    /// Run `args` (`trtlens` when the first is `@trtlens`) `reps` times; the fastest run counts, its
    /// peak RSS is the largest seen. Exit codes 0 and 1 (a failing verdict) are fine.
    fn measure(&self, label: &str, args: &[String], reps: usize) -> Res<Measure> {
        let mut best: Option<Measure> = None;
        for _ in 0..reps {
            let mut cmd = Command::new("python3");
            cmd.arg("-c").arg(MEASURE);
            match args.first().map(String::as_str) {
                Some("@trtlens") => {
                    cmd.arg(&self.exe).args(&args[1..]);
                }
                _ => {
                    cmd.args(args);
                }
            }
            cmd.env("TMPDIR", &self.dir);
            let out = cmd.output()?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("{label}: cannot measure ({e}): {}", String::from_utf8_lossy(&out.stderr)))?;
            let rc = v["rc"].as_i64().unwrap_or(-1);
            if rc != 0 && rc != 1 {
                return Err(format!("{label} failed (exit {rc}): {}", v["err"].as_str().unwrap_or("")).into());
            }
            let m = Measure {
                wall: v["wall"].as_f64().unwrap_or(f64::NAN),
                cpu: v["cpu"].as_f64().unwrap_or(f64::NAN),
                rss: v["rss"].as_f64().unwrap_or(f64::NAN),
            };
            eprintln!("  {label}: {:.2} s wall, {:.2} s CPU, {:.0} MB peak", m.wall, m.cpu, m.rss / 1e6);
            best = Some(match best {
                None => m,
                Some(b) => Measure {
                    wall: b.wall.min(m.wall),
                    cpu: if m.wall < b.wall { m.cpu } else { b.cpu },
                    rss: b.rss.max(m.rss),
                },
            });
        }
        best.ok_or_else(|| "no repetition".into())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

fn file_bytes(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .map_or(0, |d| d.filter_map(std::result::Result::ok).map(|e| file_bytes(&e.path())).sum())
    } else {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }
}

/// Bytes of every captured tensor of a run (iteration 0).
fn activation_bytes(run: &Path) -> Res<HashMap<String, u64>> {
    let r = RunDir::open(run)?;
    Ok(r.manifest
        .tensors
        .iter()
        .map(|t| (t.name.clone(), (t.shape.iter().product::<usize>() * t.dtype.size()) as u64))
        .collect())
}

/// The most activation memory a runtime that frees each tensor after its last reader needs, in the
/// model's node order: the "live activations" floor of a streamed run.
fn live_peak(model: &Model, sizes: &HashMap<String, u64>) -> u64 {
    let g = &model.graph;
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for input in &n.inputs {
            last.insert(input.as_str(), i);
        }
    }
    let outputs: std::collections::HashSet<&str> = g.outputs.iter().map(String::as_str).collect();
    let mut live: u64 = g.inputs.iter().filter_map(|i| sizes.get(i)).sum();
    let mut peak = live;
    for (i, n) in g.nodes.iter().enumerate() {
        live += n.outputs.iter().filter_map(|o| sizes.get(o)).sum::<u64>();
        peak = peak.max(live);
        for input in n.inputs.iter().chain(&n.outputs) {
            if last.get(input.as_str()).is_none_or(|&l| l == i) && !outputs.contains(input.as_str()) {
                live -= sizes.get(input).copied().unwrap_or(0).min(live);
            }
        }
    }
    peak
}

/// Memory bandwidth: `copy_from_slice` of 256 MiB and a read-only pass, best of five.
fn bandwidth() -> (f64, f64) {
    let n = 256 << 20;
    let src: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let mut dst = vec![1u8; n];
    let mut copy = f64::INFINITY;
    let mut read = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        dst.copy_from_slice(&src);
        std::hint::black_box(&dst);
        copy = copy.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let s: u64 =
            src.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).fold(0, u64::wrapping_add);
        std::hint::black_box(s);
        read = read.min(t.elapsed().as_secs_f64());
    }
    (n as f64 / copy / 1e9, n as f64 / read / 1e9)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()))
        .map_or_else(|| "?".into(), |kb| format!("{:.0} GiB", kb / 1_048_576.0));
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("{cpu}, {cores} cores, {mem} RAM")
}

fn polygraphy_ready(dir: &Path) -> Res<String> {
    let check = |dir: &Path| {
        Command::new("python3")
            .args([
                "-c",
                "import polygraphy, onnxruntime, numpy; print(polygraphy.__version__, onnxruntime.__version__)",
            ])
            .env("TMPDIR", dir)
            .output()
    };
    let out = check(dir)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    eprintln!("installing polygraphy and onnxruntime from PyPI");
    let pip = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "polygraphy", "onnxruntime", "numpy"])
        .status()?;
    if !pip.success() {
        return Err("pip install polygraphy onnxruntime failed".into());
    }
    let out = check(dir)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Open and redraw an inspector session of `rows` tensors: a real comparison of a chain model with
/// that many tensors (ONNX Runtime on both sides), saved as a session.
fn inspector(dir: &Path, exe: &Path, rows: usize) -> Res<(f64, f64, f64)> {
    use prost::Message;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use trtlens::tui::action::{Action, Command as Cmd};
    let model_path = dir.join(format!("chain_{rows}.onnx"));
    std::fs::write(&model_path, trtlens::samples::bench::chain(rows).encode_to_vec())?;
    let runs = dir.join("chain_runs");
    let report_path = dir.join("chain_report.json");
    let t = Instant::now();
    let status = Command::new(exe)
        .arg("compare")
        .arg(&model_path)
        .args(["--reference", "onnxruntime", "--candidate", "onnxruntime", "--no-introduced", "--save-runs"])
        .arg(&runs)
        .arg("--report")
        .arg(&report_path)
        .env("TMPDIR", dir)
        .stdout(std::process::Stdio::null())
        .status()?;
    let compare_s = t.elapsed().as_secs_f64();
    if !matches!(status.code(), Some(0 | 1)) {
        return Err(format!("compare of the {rows}-tensor chain failed").into());
    }
    let report: trtlens::compare::report::Report = serde_json::from_str(&std::fs::read_to_string(&report_path)?)?;
    let model = Model::load(&model_path)?;
    let request = trtlens::compare::CompareRequest::new(
        Some(model_path.clone()),
        trtlens::compare::source::SideSpec::Runner(trtlens::runner::RunnerKind::Onnxruntime),
        trtlens::compare::source::SideSpec::Runner(trtlens::runner::RunnerKind::Onnxruntime),
    );
    let sessions = dir.join("sessions");
    let session = trtlens::session::save(
        &sessions,
        &trtlens::session::SaveRequest {
            name: "chain",
            model: &model_path,
            model_sha256: &model.sha256,
            reference: "onnxruntime",
            candidate: "onnxruntime",
            request: &request,
            plan: None,
            report: &report,
            reference_run: &runs.join("reference"),
            candidate_run: &runs.join("candidate"),
            ui: serde_json::Value::Null,
        },
    )?;
    drop((report, model));
    let keymap = trtlens::tui::keys::KeyMap::default();
    let launch = trtlens::tui::Launch {
        target: session.clone(),
        request: request.clone(),
        plan: None,
        keep_fp32_predicted: None,
        session_name: None,
        sessions_dir: sessions.clone(),
        export_dir: dir.to_path_buf(),
        exe: Some(exe.to_path_buf()),
    };
    // Warm the page cache once; the fastest of three opens counts.
    let mut open = f64::INFINITY;
    let mut app = trtlens::tui::start(&launch, &keymap)?;
    for _ in 0..3 {
        let t = Instant::now();
        let opened = trtlens::tui::start(&launch, &keymap)?;
        open = open.min(t.elapsed().as_secs_f64());
        // The previous App is dropped outside the timed region (closing is not opening).
        app = opened;
    }
    let mut term = Terminal::new(TestBackend::new(200, 60))?;
    app.update(Action::Resize(200, 60));
    let frames = 50;
    let t = Instant::now();
    for _ in 0..frames {
        app.update(Action::Cmd(Cmd::PageDown));
        term.draw(|f| {
            trtlens::tui::views::draw(f, &app);
        })?;
    }
    let redraw = t.elapsed().as_secs_f64() / f64::from(frames);
    Ok((compare_s, open, redraw))
}

struct Row {
    step: String,
    m: Measure,
    /// Peak RSS of the same command on a two-node model.
    baseline: f64,
    bytes: f64,
    versus: Option<(String, Measure)>,
    /// Each target of the row and whether it is met.
    checks: Vec<(String, bool)>,
}

fn mb(x: f64) -> String {
    format!("{:.0} MB", x / 1e6)
}

#[allow(clippy::too_many_lines)]
fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let size: usize = opt("--size").and_then(|s| s.parse().ok()).unwrap_or(640);
    let reps: usize = opt("--reps").and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let rows: usize = opt("--rows").and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let shape = opt("--shape");
    let dir = std::env::var_os("TRTLENS_BENCH_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scale"), PathBuf::from);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let b = Bench { exe: PathBuf::from(env!("CARGO_BIN_EXE_trtlens")), dir: dir.clone() };
    if flag("--only-inspector") {
        let (chain_s, open, redraw) = inspector(&dir, &b.exe, rows)?;
        println!("{rows}-tensor session: compare {chain_s:.1} s, open {open:.3} s, redraw {redraw:.4} s");
        return Ok(());
    }
    let skip_poly = flag("--skip-polygraphy");
    let poly_version = if skip_poly { None } else { Some(polygraphy_ready(&dir)?) };

    let (model_path, label) = match opt("--model") {
        Some(m) => {
            (PathBuf::from(&m), Path::new(&m).file_name().map_or(m.clone(), |f| f.to_string_lossy().into_owned()))
        }
        None => {
            use prost::Message;
            let p = b.path(&format!("det_{size}.onnx"));
            std::fs::write(&p, trtlens::samples::bench::detector(1, size).encode_to_vec())?;
            (p, format!("generated detector (trtlens::samples::bench::detector) at 1x3x{size}x{size}"))
        }
    };
    let model_s = model_path.display().to_string();
    let shape_args: Vec<String> = shape.iter().flat_map(|s| ["--shape".to_string(), s.clone()]).collect();
    let poly_shape: Vec<String> = shape
        .iter()
        .flat_map(|s| {
            let (name, dims) = s.split_once(':').unwrap_or((s, ""));
            ["--input-shapes".to_string(), format!("{name}:[{}]", dims.replace('x', ","))]
        })
        .collect();
    let model = Model::load(&model_path)?;
    let model_bytes = file_bytes(&model_path) as f64;
    let (copy_bw, read_bw) = bandwidth();
    eprintln!("machine: {}; memcpy {copy_bw:.1} GB/s, read {read_bw:.1} GB/s", machine());

    // trtlens runs.
    let run = |runner: &str, save: &str, extra: &[String]| -> Res<Measure> {
        let mut a = strings(&["@trtlens", "run", &model_s, "--runner", runner, "--save", &b.p(save)]);
        a.extend(shape_args.iter().cloned());
        a.extend(extra.iter().cloned());
        b.measure(&format!("run {runner}"), &a, reps)
    };
    let tract = run("tract", "run_tract", &[])?;
    let ort = run("onnxruntime", "run_ort", &[])?;
    let fp16 = run("cpu-fp16", "run_fp16", &strings(&["--load-inputs", &b.p("run_ort")]))?;
    let sizes = activation_bytes(&b.path("run_tract"))?;
    let activations: f64 = sizes.values().sum::<u64>() as f64;
    let live = live_peak(&model, &sizes) as f64;
    let tensors = sizes.len();
    let fp16_bytes = file_bytes(&b.path("run_fp16")) as f64;
    let ort_bytes = file_bytes(&b.path("run_ort")) as f64;
    let largest_ref = activation_bytes(&b.path("run_ort"))?.values().copied().max().unwrap_or(0) as f64;
    let largest_cand = activation_bytes(&b.path("run_fp16"))?.values().copied().max().unwrap_or(0) as f64;

    // trtlens compares.
    let saved = b.measure(
        "compare run directories",
        &strings(&[
            "@trtlens",
            "compare",
            "--reference",
            &format!("saved:{}", b.p("run_ort")),
            "--candidate",
            &format!("saved:{}", b.p("run_fp16")),
            "--report",
            &b.p("saved.json"),
        ]),
        reps,
    )?;
    let mut export: Option<Measure> = None;
    for (run_dir, json) in [("run_ort", "ort.json"), ("run_fp16", "fp16.json")] {
        let m = b.measure(
            "tensors export",
            &strings(&["@trtlens", "tensors", "export", &b.p(run_dir), "--format", "polygraphy", "-o", &b.p(json)]),
            1,
        )?;
        export =
            Some(export.map_or(m, |e| Measure { wall: e.wall + m.wall, cpu: e.cpu + m.cpu, rss: e.rss.max(m.rss) }));
    }
    let json_bytes = (file_bytes(&b.path("ort.json")) + file_bytes(&b.path("fp16.json"))) as f64;
    let json = b.measure(
        "compare Polygraphy JSON",
        &strings(&[
            "@trtlens",
            "compare",
            "--reference",
            &format!("saved:{}", b.p("ort.json")),
            "--candidate",
            &format!("saved:{}", b.p("fp16.json")),
            "--report",
            &b.p("json.json"),
        ]),
        reps,
    )?;
    let e2e_args = |intro: bool| {
        let mut a = strings(&[
            "@trtlens",
            "compare",
            &model_s,
            "--reference",
            "onnxruntime",
            "--candidate",
            "cpu-fp16",
            "--report",
            &b.p("e2e.json"),
        ]);
        a.extend(shape_args.iter().cloned());
        if !intro {
            a.push("--no-introduced".into());
        }
        a
    };
    let e2e = b.measure("compare end to end", &e2e_args(true), reps)?;
    let e2e_fast = b.measure("compare end to end --no-introduced", &e2e_args(false), reps)?;

    // Polygraphy.
    let poly = if skip_poly {
        None
    } else {
        let m16 = b.p("model_fp16.onnx");
        b.measure(
            "convert (setup)",
            &strings(&["@trtlens", "convert", &model_s, "--precision", "fp16", "-o", &m16]),
            1,
        )?;
        let mut r = strings(&[
            "polygraphy",
            "run",
            &model_s,
            "--onnxrt",
            "--onnx-outputs",
            "mark",
            "all",
            "--save-inputs",
            &b.p("p_inputs.json"),
            "--save-outputs",
            &b.p("p_ref.json"),
            "--silent",
        ]);
        r.extend(poly_shape.iter().cloned());
        let p_ref = b.measure("polygraphy run (FP32)", &r, 1)?;
        let c = strings(&[
            "polygraphy",
            "run",
            &m16,
            "--onnxrt",
            "--onnx-outputs",
            "mark",
            "all",
            "--load-inputs",
            &b.p("p_inputs.json"),
            "--save-outputs",
            &b.p("p_cand.json"),
            "--silent",
        ]);
        let p_cand = b.measure("polygraphy run (FP16)", &c, 1)?;
        let p_cmp = b.measure(
            "polygraphy compare of its runs",
            &strings(&["polygraphy", "run", "--load-outputs", &b.p("p_ref.json"), &b.p("p_cand.json")]),
            1,
        )?;
        let p_same = b.measure(
            "polygraphy compare of trtlens' activations",
            &strings(&["polygraphy", "run", "--load-outputs", &b.p("ort.json"), &b.p("fp16.json")]),
            1,
        )?;
        Some((p_ref, p_cand, p_cmp, p_same))
    };

    // The inspector.
    let (chain_s, open, redraw) = inspector(&dir, &b.exe, rows)?;

    // Process baselines: the same commands on a two-node model (the executable, its libraries and
    // the runtime's setup, with no data to speak of).
    let tiny = b.p("tiny.onnx");
    {
        use prost::Message;
        std::fs::write(&tiny, trtlens::samples::bench::chain(2).encode_to_vec())?;
    }
    let mut base = HashMap::new();
    for runner in ["tract", "onnxruntime", "cpu-fp16"] {
        let m = b.measure(
            &format!("baseline: run {runner}"),
            &strings(&["@trtlens", "run", &tiny, "--runner", runner, "--save", &b.p(&format!("tiny_{runner}"))]),
            1,
        )?;
        base.insert(runner, m.rss);
    }
    let base_cmp = b
        .measure(
            "baseline: compare run directories",
            &strings(&[
                "@trtlens",
                "compare",
                "--reference",
                &format!("saved:{}", b.p("tiny_onnxruntime")),
                "--candidate",
                &format!("saved:{}", b.p("tiny_cpu-fp16")),
            ]),
            1,
        )?
        .rss;
    let base_e2e = b
        .measure(
            "baseline: compare end to end",
            &strings(&["@trtlens", "compare", &tiny, "--reference", "onnxruntime", "--candidate", "cpu-fp16"]),
            1,
        )?
        .rss;

    // The table: each row's targets, each judged on its own.
    let check = |text: String, ok: bool| (text, ok);
    let seq = poly.map(|(r, c, k, _)| Measure {
        wall: r.wall + c.wall + k.wall,
        cpu: r.cpu + c.cpu + k.cpu,
        rss: r.rss.max(c.rss).max(k.rss),
    });
    let poly_run_rss = poly.map(|(r, c, _, _)| r.rss.max(c.rss));
    let run_floor = (model_bytes + live) * 1.2;
    let run_checks = |m: Measure, baseline: f64| {
        let mut v = vec![check(
            format!("peak − baseline {} ≤ {} (model + live activations + 20%)", mb(m.rss - baseline), mb(run_floor)),
            m.rss - baseline <= run_floor,
        )];
        if let Some(p) = poly_run_rss {
            v.push(check(format!("peak ≤ {} (1/5 of Polygraphy's run)", mb(p / 5.0)), m.rss <= p / 5.0));
        }
        v
    };
    let mut rows_out: Vec<Row> = Vec::new();
    rows_out.push(Row {
        step: "`run --runner tract` (FP32)".into(),
        m: tract,
        baseline: base["tract"],
        bytes: activations,
        versus: poly.map(|p| ("`polygraphy run --onnxrt --onnx-outputs mark all`".into(), p.0)),
        checks: run_checks(tract, base["tract"]),
    });
    rows_out.push(Row {
        step: "`run --runner onnxruntime`".into(),
        m: ort,
        baseline: base["onnxruntime"],
        bytes: ort_bytes,
        versus: None,
        checks: run_checks(ort, base["onnxruntime"]),
    });
    let ratio = fp16.wall / tract.wall;
    let mut checks = vec![check(format!("≤ 2x the FP32 run: {ratio:.2}x"), ratio <= 2.0)];
    checks.extend(run_checks(fp16, base["cpu-fp16"]));
    rows_out.push(Row {
        step: "`run --runner cpu-fp16` (all FP16)".into(),
        m: fp16,
        baseline: base["cpu-fp16"],
        bytes: fp16_bytes,
        versus: poly.map(|p| ("Polygraphy, FP16 model".into(), p.1)),
        checks,
    });
    let cmp_floor = model_bytes + largest_ref + largest_cand;
    let cmp_checks = |m: Measure, x: f64, versus: Option<Measure>| {
        let mut v = Vec::new();
        if let Some(p) = versus {
            let speed = p.wall / m.wall;
            v.push(check(format!("≥ {x:.0}x Polygraphy: {speed:.1}x"), speed >= x));
        }
        v.push(check(
            format!("peak − baseline {} ≤ {} (model + two largest tensors)", mb(m.rss - base_cmp), mb(cmp_floor)),
            m.rss - base_cmp <= cmp_floor,
        ));
        if let Some(p) = versus {
            v.push(check(format!("peak ≤ {} (1/5 of Polygraphy's)", mb(p.rss / 5.0)), m.rss <= p.rss / 5.0));
        }
        v
    };
    let p_same = poly.map(|p| p.3);
    rows_out.push(Row {
        step: "`compare saved:A saved:B`, run directories".into(),
        m: saved,
        baseline: base_cmp,
        bytes: ort_bytes + fp16_bytes,
        versus: p_same.map(|p| ("`polygraphy run --load-outputs a.json b.json`".into(), p)),
        checks: cmp_checks(saved, 60.0, p_same),
    });
    rows_out.push(Row {
        step: "`compare saved:a.json saved:b.json`, Polygraphy JSON".into(),
        m: json,
        baseline: base_cmp,
        bytes: json_bytes,
        versus: p_same.map(|p| ("same".into(), p)),
        checks: cmp_checks(json, 20.0, p_same),
    });
    if let Some(m) = export {
        rows_out.push(Row {
            step: "`tensors export --format polygraphy` of both runs (the JSON above; no target)".into(),
            m,
            baseline: base_cmp,
            bytes: json_bytes,
            versus: None,
            checks: Vec::new(),
        });
    }
    let mut checks = Vec::new();
    if let Some(s) = seq {
        let r = s.wall / e2e.wall;
        checks.push(check(format!("≥ 10x Polygraphy: {r:.1}x"), r >= 10.0));
        checks.push(check(format!("peak ≤ {} (1/5 of Polygraphy's)", mb(s.rss / 5.0)), e2e.rss <= s.rss / 5.0));
    }
    rows_out.push(Row {
        step: "`compare MODEL --reference onnxruntime --candidate cpu-fp16` (end to end, with introduced error)".into(),
        m: e2e,
        baseline: base_e2e,
        bytes: ort_bytes + fp16_bytes,
        versus: seq.map(|s| ("Polygraphy: FP32 run + FP16 run + `--load-outputs` compare".into(), s)),
        checks,
    });
    let mut checks = Vec::new();
    if let Some(s) = seq {
        let r = s.wall / e2e_fast.wall;
        checks.push(check(format!("≥ 10x Polygraphy: {r:.1}x"), r >= 10.0));
    }
    rows_out.push(Row {
        step: "same, `--no-introduced`".into(),
        m: e2e_fast,
        baseline: base_e2e,
        bytes: ort_bytes + fp16_bytes,
        versus: None,
        checks,
    });

    println!();
    println!("### {label}");
    println!();
    println!(
        "{tensors} tensors, {} of FP32 activations (model {}, live activations at most {}); machine: {}; \
         memcpy {copy_bw:.1} GB/s, read {read_bw:.1} GB/s{}; trtlens: best of {reps}, Polygraphy: one run{}",
        mb(activations),
        mb(model_bytes),
        mb(live),
        machine(),
        if std::env::var_os("TRTLENS_BENCH_DIR").is_some() {
            format!(", files in {}", dir.display())
        } else {
            String::new()
        },
        poly_version.map_or(String::new(), |v| format!(" (polygraphy, onnxruntime {v})"))
    );
    println!();
    println!(
        "| step | wall s | CPU s | peak RSS | baseline | GB/s | Polygraphy (wall s, peak RSS) | targets (✓ met, ✗ missed) | met |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows_out {
        let vs = r.versus.as_ref().map_or(String::new(), |(what, p)| format!("{what}: {:.2} s, {}", p.wall, mb(p.rss)));
        let targets: Vec<String> =
            r.checks.iter().map(|(t, ok)| format!("{t} {}", if *ok { "✓" } else { "✗" })).collect();
        let met = r.checks.iter().filter(|(_, ok)| *ok).count();
        println!(
            "| {} | {:.2} | {:.2} | {} | {} | {:.2} | {} | {} | {} |",
            r.step,
            r.m.wall,
            r.m.cpu,
            mb(r.m.rss),
            mb(r.baseline),
            r.bytes / r.m.wall / 1e9,
            vs,
            targets.join("; "),
            match (met, r.checks.len()) {
                (_, 0) => "",
                (m, n) if m == n => "yes",
                (0, _) => "**no**",
                _ => "partly",
            }
        );
    }
    let one_pass = (ort_bytes + fp16_bytes) / (read_bw * 1e9);
    println!(
        "| one read of both run directories at the read bandwidth (floor) | {one_pass:.2} | | | | {read_bw:.1} | | | |"
    );
    println!(
        "| inspector: open a {rows}-tensor session (`tui::start`) | {:.3} | | | | | | < 0.300 s {} | {} |",
        open,
        if open < 0.3 { "✓" } else { "✗" },
        if open < 0.3 { "yes" } else { "**no**" }
    );
    println!(
        "| inspector: redraw a 200x60 frame while paging, {rows} rows | {:.4} | | | | | | < 0.016 s {} | {} |",
        redraw,
        if redraw < 0.016 { "✓" } else { "✗" },
        if redraw < 0.016 { "yes" } else { "**no**" }
    );
    println!();
    println!(
        "(the {rows}-tensor session came from a real `compare` of a {rows}-node chain, ONNX Runtime on both sides: {chain_s:.1} s; \
         tract's graph optimisation takes minutes on a 50,000-node graph)"
    );
    if !flag("--keep") {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
