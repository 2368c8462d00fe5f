//! How long `trtlens check` takes (the "keep check fast").
//!
//! `cargo bench --bench check` times, for every committed baseline of the bundled samples
//! (`tests/baselines/`), reading the baseline and judging a report against it (the part `check`
//! adds to a comparison); the same for a 20,000-tensor report (a large model); and the whole
//! `trtlens check` of the repository's `trtlens.toml` (12 comparisons in worker processes) with
//! `-j 1` and `-j 2`. It prints a table; nothing is asserted.

use std::path::PathBuf;
use std::time::Instant;

use trtlens::check::{Labels, evaluate, policy::Policy, read_baseline};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn ms<T>(reps: usize, mut f: impl FnMut() -> Res<T>) -> Res<f64> {
    let t0 = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f()?);
    }
    Ok(t0.elapsed().as_secs_f64() * 1e3 / reps as f64)
}

fn main() -> Res<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let policy = Policy::default();
    let labels = Labels::default();
    println!("{:<40} {:>10} {:>12} {:>12}", "baseline", "tensors", "read ms", "judge ms");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(root.join("tests/baselines"))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for f in &files {
        let doc = read_baseline(f)?;
        let read = ms(20, || Ok(read_baseline(f)?))?;
        let judge = ms(200, || Ok(evaluate(Some(&doc), &doc, &policy, false, &labels)?))?;
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        println!("{name:<40} {:>10} {read:>12.3} {judge:>12.3}", doc.report.tensors.len());
    }
    // A large model: one baseline's tensors replicated to 20,000.
    let mut big = read_baseline(&root.join("tests/baselines/attention_mask_f32min.json"))?;
    let base = big.report.tensors.clone();
    while big.report.tensors.len() < 20_000 {
        for t in &base {
            let mut t = t.clone();
            t.name = format!("{}#{}", t.name, big.report.tensors.len());
            t.topo_index = Some(big.report.tensors.len());
            big.report.tensors.push(t);
        }
    }
    let judge = ms(5, || Ok(evaluate(Some(&big), &big, &policy, false, &labels)?))?;
    println!("{:<40} {:>10} {:>12} {judge:>12.3}", "(replicated)", big.report.tensors.len(), "-");

    let exe = env!("CARGO_BIN_EXE_trtlens");
    for jobs in ["1", "2"] {
        let t0 = Instant::now();
        let out = std::process::Command::new(exe)
            .args(["check", "-q", "-j", jobs, "--config"])
            .arg(root.join("trtlens.toml"))
            .output()?;
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "trtlens check (trtlens.toml, {} checks, -j {jobs}): {secs:.2} s, exit {:?}",
            files.len(),
            out.status.code()
        );
    }
    Ok(())
}
