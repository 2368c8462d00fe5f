//! File formats for tensors: `.npy`/`.npz`, safetensors input files, Polygraphy's JSON files and raw
//! binary per input (`trtexec --loadInputs`), plus [`load_inputs_file`], which reads input data in
//! any of them, [`load_run_results`], and the exports of runs into these formats ([`export`]).

pub mod export;
pub mod npy;
pub mod polygraphy;
pub mod polygraphy_index;
pub mod raw;
pub mod safetensors_file;

use std::path::Path;

pub use safetensors_file::read_safetensors_file;

use crate::error::{Error, Result};
use crate::runner::Tensors;

/// The input-file formats, for messages.
pub const ACCEPTED_INPUT_FORMATS: &str = ".npz (numpy.savez), .npy (one array, for a single-input model), \
     .safetensors, Polygraphy JSON (polygraphy run --save-inputs), or a raw-inputs directory (trtlens inputs export --format raw)";

/// The formats [`load_inputs_file`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// A numpy `.npz` archive: one iteration.
    Npz,
    /// A single `.npy` array: one iteration with one unnamed tensor.
    Npy,
    /// A safetensors file: one iteration.
    Safetensors,
    /// Polygraphy input data: any number of iterations.
    PolygraphyJson,
}

impl InputFormat {
    /// Name for messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Npz => ".npz",
            InputFormat::Npy => ".npy",
            InputFormat::Safetensors => "safetensors",
            InputFormat::PolygraphyJson => "Polygraphy JSON",
        }
    }

    /// Recognize a format by its content (extensions are not trusted).
    #[must_use]
    pub fn detect(bytes: &[u8]) -> Option<InputFormat> {
        if bytes.starts_with(npy::MAGIC) {
            return Some(InputFormat::Npy);
        }
        // A zip local-file header, or the end record of an empty archive.
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            return Some(InputFormat::Npz);
        }
        // safetensors: an 8-byte little-endian header length, then a JSON object.
        if let Some(len) = bytes.get(..8) {
            let n = u64::from_le_bytes([len[0], len[1], len[2], len[3], len[4], len[5], len[6], len[7]]);
            if bytes.get(8) == Some(&b'{') && n <= (bytes.len() - 8) as u64 {
                return Some(InputFormat::Safetensors);
            }
        }
        let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        match text.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[' | b'{') => Some(InputFormat::PolygraphyJson),
            _ => None,
        }
    }
}

/// Load input data from a file, recognized by its content:
///
/// - `.npz`: one iteration, tensors in archive order;
/// - `.safetensors`: one iteration, tensors in file order (see [`safetensors_file`]);
/// - Polygraphy JSON (`polygraphy run --save-inputs`): one entry per iteration;
/// - `.npy`: one iteration holding one tensor named `""` (the empty name). A bare array has no
///   name, so it can only feed a single-input model; the caller gives it that input's name.
///
/// Errors name the file; an unrecognized file lists the accepted formats.
pub fn load_inputs_file(path: &Path) -> Result<Vec<Tensors>> {
    let bytes = read_file(path)?;
    let Some(format) = InputFormat::detect(&bytes) else {
        return Err(Error::input(format!(
            "{}: not a recognized input file (expected {ACCEPTED_INPUT_FORMATS})",
            path.display()
        )));
    };
    let loaded = match format {
        InputFormat::Npz => npy::read_npz(&bytes).map(|t| vec![t]),
        InputFormat::Npy => npy::read_npy(&bytes).map(|t| vec![vec![(String::new(), t)]]),
        InputFormat::Safetensors => safetensors_file::read_safetensors(&bytes).map(|t| vec![t]),
        InputFormat::PolygraphyJson => polygraphy::read_inputs_json(&bytes),
    };
    loaded.map_err(|e| Error::input(format!("{}: {e}", path.display())))
}

/// Load Polygraphy input data saved as a directory of per-iteration files (what `polygraphy run
/// --save-inputs DIR` writes when `DIR` has no extension): the `*.json` files in name order, each
/// holding one iteration (or a list of them).
pub fn load_polygraphy_inputs_dir(dir: &Path) -> Result<Vec<Tensors>> {
    let mut out = Vec::new();
    for file in json_files(dir)? {
        let bytes = read_file(&file)?;
        out.extend(polygraphy::read_inputs_json(&bytes).map_err(|e| Error::input(format!("{}: {e}", file.display())))?);
    }
    Ok(out)
}

/// Load Polygraphy run results (`polygraphy run --save-outputs`) from a file, or from a directory
/// of per-iteration files (what an extensionless `--save-outputs DIR` writes: `*.json` files in
/// name order, each a single-iteration `RunResults`, joined with runners matched by name).
pub fn load_run_results(path: &Path) -> Result<polygraphy::RunResults> {
    let files = if path.is_dir() { json_files(path)? } else { vec![path.to_path_buf()] };
    let mut results = polygraphy::RunResults::default();
    for file in files {
        let bytes = read_file(&file)?;
        let more =
            polygraphy::read_run_results(&bytes).map_err(|e| Error::input(format!("{}: {e}", file.display())))?;
        polygraphy::concat_run_results(&mut results, more);
    }
    Ok(results)
}

/// The `*.json` files of a directory in name order (Polygraphy zero-pads the iteration index).
pub(crate) fn json_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let list_error = |e: std::io::Error| Error::input(format!("{}: cannot list the directory: {e}", dir.display()));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let path = entry.map_err(list_error)?.path();
        if path.extension().is_some_and(|x| x == "json") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(Error::input(format!("{}: the directory holds no Polygraphy *.json files", dir.display())));
    }
    files.sort();
    Ok(files)
}

/// Read a whole file; errors name it and say whether it is missing.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        let msg = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file (check the path)".to_string(),
            std::io::ErrorKind::IsADirectory => "is a directory, not a file".to_string(),
            _ => format!("cannot read: {e}"),
        };
        Error::input(format!("{}: {msg}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{DType, Tensor};

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/io").join(name)
    }

    fn err_text(r: Result<Vec<Tensors>>) -> String {
        match r {
            Ok(v) => format!("unexpectedly loaded {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<std::path::PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| Error::input(e.to_string()))?;
        Ok(path)
    }

    #[test]
    fn loads_every_format() -> Result<()> {
        let npz = load_inputs_file(&fixture("numpy_dtypes.npz"))?;
        assert_eq!((npz.len(), npz[0].len()), (1, 16));
        let json = load_inputs_file(&fixture("polygraphy_inputs.json"))?;
        assert_eq!((json.len(), json[1][0].0.as_str()), (2, "input_ids"));
        let st = load_inputs_file(&fixture("inputs.safetensors"))?;
        assert_eq!((st.len(), st[0].len()), (1, 5));
        let npy = load_inputs_file(&fixture("version3.npy"))?;
        assert_eq!((npy.len(), npy[0].len(), npy[0][0].0.as_str()), (1, 1, ""));
        assert_eq!(npy[0][0].1.dtype(), DType::Float64);
        Ok(())
    }

    #[test]
    fn content_decides_not_the_extension() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::input(e.to_string()))?;
        let t = Tensor::zeros(DType::Int32, vec![2]);
        let path = write(dir.path(), "really_npz.json", &npy::write_npz(&[("x".into(), t.clone())])?)?;
        assert_eq!(load_inputs_file(&path)?, vec![vec![("x".to_string(), t)]]);
        Ok(())
    }

    #[test]
    fn errors_name_the_file() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::input(e.to_string()))?;
        let missing = dir.path().join("nope.npz");
        let e = err_text(load_inputs_file(&missing));
        assert!(e.contains("nope.npz: no such file"), "{e}");
        let e = err_text(load_inputs_file(dir.path()));
        assert!(e.contains("is a directory") || e.contains("cannot read"), "{e}");
        let text = write(dir.path(), "inputs.txt", b"1,2,3\n")?;
        let e = err_text(load_inputs_file(&text));
        assert!(e.contains("inputs.txt: not a recognized input file") && e.contains("Polygraphy JSON"), "{e}");
        let outputs = load_inputs_file(&fixture("polygraphy_outputs.json"));
        let e = err_text(outputs);
        assert!(e.contains("polygraphy_outputs.json: this is a Polygraphy run-results file"), "{e}");
        let broken = write(dir.path(), "broken.npy", &npy::write_npy(&Tensor::zeros(DType::Float32, vec![8]))[..130])?;
        let e = err_text(load_inputs_file(&broken));
        assert!(e.contains("broken.npy: truncated .npy data"), "{e}");
        Ok(())
    }

    #[test]
    fn loads_a_polygraphy_iteration_directory() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::input(e.to_string()))?;
        let it = |v: f32| -> Result<Tensors> {
            Ok(vec![("x".into(), Tensor::from_f32(&[1], &[v]).map_err(|e| Error::input(e.to_string()))?)])
        };
        // Polygraphy writes each iteration as a single object (written here as a one-item list for
        // the second file, which is also accepted).
        let first = polygraphy::write_inputs_json(&[it(1.0)?]);
        let single: serde_json::Value = serde_json::from_slice(&first).map_err(|e| Error::input(e.to_string()))?;
        write(dir.path(), "0000000000.json", single[0].to_string().as_bytes())?;
        write(dir.path(), "0000000001.json", &polygraphy::write_inputs_json(&[it(2.0)?]))?;
        write(dir.path(), "notes.txt", b"ignored")?;
        assert_eq!(load_polygraphy_inputs_dir(dir.path())?, vec![it(1.0)?, it(2.0)?]);
        let empty = tempfile::tempdir().map_err(|e| Error::input(e.to_string()))?;
        assert!(err_text(load_polygraphy_inputs_dir(empty.path())).contains("holds no Polygraphy"));
        Ok(())
    }

    #[test]
    fn loads_run_results_from_a_file_or_an_iteration_directory() -> Result<()> {
        let whole = load_run_results(&fixture("polygraphy_outputs.json"))?;
        assert_eq!(whole.runners.len(), 2);
        // Split it the way Polygraphy's per-iteration writer does: one RunResults per iteration.
        let dir = tempfile::tempdir().map_err(|e| Error::input(e.to_string()))?;
        for it in 0..2 {
            let single = polygraphy::RunResults {
                runners: whole
                    .runners
                    .iter()
                    .map(|r| polygraphy::RunnerResults {
                        name: r.name.clone(),
                        iterations: vec![r.iterations[it].clone()],
                    })
                    .collect(),
            };
            write(dir.path(), &format!("{it:010}.json"), &polygraphy::write_run_results(&single))?;
        }
        assert_eq!(load_run_results(dir.path())?, whole);
        let e = match load_run_results(&fixture("polygraphy_inputs.json")) {
            Ok(r) => format!("{r:?}"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("polygraphy_inputs.json: this looks like Polygraphy input data"), "{e}");
        Ok(())
    }
}
