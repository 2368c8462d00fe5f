//! Writes every sample model of `trtlens::samples` as an ONNX file.
//!
//! ```text
//! cargo run --example make_samples [-- OUT_DIR]     # default: samples/
//! cargo run --example make_samples -- --probes DIR  # the probe models the tests build, with inputs
//! ```
//!
//! `--probes` writes `trtlens::samples::probes` (the NaN/inf op table, the TF32 MLP) as `NAME.onnx`
//! plus `NAME.npz` (its inputs), for `scripts/fidelity --models DIR`; they are not committed.
//!
//! The output is deterministic: running it again gives the same bytes, and `tests/samples.rs`
//! checks that the committed files match.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    const USAGE: &str = "usage: cargo run --example make_samples [-- OUT_DIR]   (default OUT_DIR: samples/)\n       \
                         cargo run --example make_samples -- --probes OUT_DIR";
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    if first.as_deref().and_then(|a| a.to_str()) == Some("--probes") {
        let (Some(dir), None) = (args.next(), args.next()) else {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        return write_probes(&PathBuf::from(dir));
    }
    if let Some(a) = &first
        && a.to_string_lossy().starts_with('-')
    {
        // `--help` and any other flag: never taken for a directory name.
        let help = matches!(a.to_str(), Some("-h" | "--help"));
        if help {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        eprintln!("error: unknown flag {}\n{USAGE}", a.to_string_lossy());
        return ExitCode::from(2);
    }
    let out_dir = first.map_or_else(|| PathBuf::from("samples"), PathBuf::from);
    if args.next().is_some() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("error: cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    for s in trtlens::samples::all() {
        let bytes = trtlens::samples::encode(&(s.build)());
        let path = out_dir.join(s.file);
        if let Err(e) = std::fs::write(&path, &bytes) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        let culprit = s.culprit.unwrap_or("none (FP16 is fine)");
        println!("{:<48} {:>7} bytes   culprit: {culprit}", path.display(), bytes.len());
    }
    ExitCode::SUCCESS
}

/// `--probes DIR`: every probe model and its inputs.
fn write_probes(dir: &std::path::Path) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for p in trtlens::samples::probes::all() {
        let stem = p.file_stem();
        let model = dir.join(format!("{stem}.onnx"));
        let inputs = dir.join(format!("{stem}.npz"));
        let npz = match trtlens::io::npy::write_npz(&p.inputs) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {}: {e}", p.name);
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) =
            std::fs::write(&model, trtlens::samples::encode(&p.model)).and_then(|()| std::fs::write(&inputs, npz))
        {
            eprintln!("error: cannot write {}: {e}", model.display());
            return ExitCode::FAILURE;
        }
        println!("{:<56} {}", model.display(), p.name);
    }
    ExitCode::SUCCESS
}
