//! Writes every sample model of `trtlens::samples` as an ONNX file.
//!
//! ```text
//! cargo run --example make_samples [-- OUT_DIR]     # default: samples/
//! ```
//!
//! The output is deterministic: running it again gives the same bytes, and `tests/samples.rs`
//! checks that the committed files match.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    const USAGE: &str = "usage: cargo run --example make_samples [-- OUT_DIR]   (default OUT_DIR: samples/)";
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
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
