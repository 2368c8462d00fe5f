//! Comparison throughput: trtlens against Polygraphy's comparator on the same stored activations.
//!
//! `cargo bench --bench compare [-- TENSORS ELEMENTS]` (default 16 tensors of 1M float32 each, i.e.
//! 64 MiB per side) writes the same reference/candidate activations as trtlens run directories and
//! as Polygraphy `RunResults` JSON, then times:
//! - `trtlens compare saved:A saved:B` on run directories (memory-mapped safetensors),
//! - `trtlens compare` on the Polygraphy JSON files (base64 decode included),
//! - `polygraphy run --load-outputs a.json b.json` (when polygraphy is installed).
//!
//! It prints a table with GB/s (bytes of both sides / wall time) and the ratio to Polygraphy.
//! Timings are printed, never asserted.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use trtlens::compare::metrics::Tolerance;
use trtlens::compare::{CompareRequest, compare, source::SideSpec};
use trtlens::inputs::{InputOptions, InputSource, rng::Rng};
use trtlens::io::polygraphy::{IterationResult, RunResults, RunnerResults, write_run_results};
use trtlens::runner::RunnerOptions;
use trtlens::store::{self, Manifest, ModelInfo, RunWriter, RunnerInfo, TensorEntry, Timings, ToolInfo};
use trtlens::tensor::{DType, Tensor};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn activations(n_tensors: usize, elems: usize, perturb: bool) -> Res<Vec<(String, Tensor)>> {
    let mut out = Vec::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let mut rng = Rng::for_stream(42, 0, &format!("t{i}"));
        let mut noise = Rng::for_stream(43, 0, &format!("t{i}"));
        let v: Vec<f32> = (0..elems)
            .map(|_| {
                let x = (rng.next_f64() * 2.0 - 1.0) as f32 * 10.0;
                if perturb { x + (noise.next_f64() as f32 - 0.5) * 1e-4 } else { x }
            })
            .collect();
        out.push((format!("layer_{i:03}/output"), Tensor::from_f32(&[elems], &v)?));
    }
    Ok(out)
}

fn write_run(dir: &Path, tensors: &[(String, Tensor)]) -> Res<()> {
    let w = RunWriter::create(dir)?;
    let it = w.write_iteration(0, &vec![], &tensors.to_vec(), 0.0)?;
    let entries = tensors
        .iter()
        .enumerate()
        .map(|(i, (n, t))| TensorEntry {
            name: n.clone(),
            node: None,
            op_type: Some("Synthetic".into()),
            topo_index: i,
            dtype: DType::Float32,
            shape: t.shape().to_vec(),
            is_output: i + 1 == tensors.len(),
        })
        .collect();
    w.finish(&Manifest {
        schema: store::MANIFEST_SCHEMA.into(),
        tool: ToolInfo::current(),
        runner: RunnerInfo { name: "bench".into(), version: "0".into(), plan: None, conversion: None, settings: None },
        model: ModelInfo { path: "synthetic".into(), sha256: "0".repeat(64), opset: None, node_count: tensors.len() },
        inputs: InputSource {
            kind: "random".into(),
            path: None,
            seed: Some(0),
            val_ranges: vec![],
            shapes: BTreeMap::new(),
            iterations: 1,
        },
        input_names: vec![],
        tensors: entries,
        not_captured: vec![],
        excluded: vec![],
        subgraph_tensors: vec![],
        specialized: vec![],
        not_specialized: vec![],
        iterations: vec![it],
        warnings: vec![],
        timings: Timings::default(),
        created_unix: 0,
        trt: None,
    })?;
    Ok(())
}

fn time_compare(a: &Path, b: &Path) -> Res<f64> {
    let req = CompareRequest {
        model: None,
        reference: SideSpec::Saved { path: a.to_path_buf(), runner: None },
        candidate: SideSpec::Saved { path: b.to_path_buf(), runner: None },
        inputs: InputOptions::default(),
        runner_options: RunnerOptions::default(),
        tolerance: Tolerance::default(),
        overrides: vec![],
        top_k: 5,
        save_runs: None,
        keep_fp32_predicted: None,
        specialize: true,
        introduced: true,
    };
    let t = Instant::now();
    let report = compare(&req, &mut |_, _| {})?;
    let s = t.elapsed().as_secs_f64();
    assert_eq!(report.tensors.len(), report.summary.compared);
    Ok(s)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let n_tensors: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(16);
    let elems: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1 << 20);
    let tmp = tempfile::tempdir()?;
    let (ra, rb) = (tmp.path().join("run_a"), tmp.path().join("run_b"));
    let (ja, jb) = (tmp.path().join("a.json"), tmp.path().join("b.json"));
    let reference = activations(n_tensors, elems, false)?;
    let candidate = activations(n_tensors, elems, true)?;
    write_run(&ra, &reference)?;
    write_run(&rb, &candidate)?;
    for (path, tensors, name) in [(&ja, &reference, "a"), (&jb, &candidate, "b")] {
        let rr = RunResults {
            runners: vec![RunnerResults {
                name: name.into(),
                iterations: vec![IterationResult { outputs: tensors.clone(), runtime: Some(0.0) }],
            }],
        };
        std::fs::write(path, write_run_results(&rr))?;
    }
    drop((reference, candidate));
    let bytes = 2.0 * (n_tensors * elems * 4) as f64;
    println!(
        "comparing {n_tensors} float32 tensors x {elems} elements per side ({:.0} MiB per side)",
        bytes / 2.0 / 1_048_576.0
    );

    // Warm the page cache once, then take the best of 3.
    time_compare(&ra, &rb)?;
    let best = |f: &dyn Fn() -> Res<f64>| -> Res<f64> {
        Ok((0..3).map(|_| f()).collect::<Res<Vec<f64>>>()?.into_iter().fold(f64::INFINITY, f64::min))
    };
    let runs = best(&|| time_compare(&ra, &rb))?;
    let json = best(&|| time_compare(&ja, &jb))?;
    let poly = {
        let t = Instant::now();
        let out =
            Command::new("polygraphy").args(["run", "--load-outputs"]).arg(&ja).arg(&jb).args(["--silent"]).output();
        match out {
            Ok(o) if o.status.success() || o.status.code() == Some(1) => Some(t.elapsed().as_secs_f64()),
            Ok(o) => {
                eprintln!("polygraphy failed: {}", String::from_utf8_lossy(&o.stderr));
                None
            }
            Err(e) => {
                eprintln!("polygraphy not available ({e}); install it with pip install polygraphy");
                None
            }
        }
    };
    println!("{:<52} {:>9} {:>9} {:>12}", "method", "seconds", "GB/s", "vs polygraphy");
    let line = |name: &str, s: f64| {
        let ratio = poly.map_or_else(|| "-".to_string(), |p| format!("{:.1}x", p / s));
        println!("{name:<52} {s:>9.3} {:>9.2} {ratio:>12}", bytes / s / 1e9);
    };
    line("trtlens compare, run directories (mmap)", runs);
    line("trtlens compare, Polygraphy JSON (decode included)", json);
    if let Some(p) = poly {
        line("polygraphy run --load-outputs a.json b.json", p);
    }
    println!("threads: {}", rayon::current_num_threads());
    Ok(())
}
