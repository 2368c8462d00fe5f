//! Raw binary inputs, one file per input, for `trtexec --loadInputs` (and back).
//!
//! A raw-inputs directory holds `NAME.bin` per input (the tensor's little-endian element bytes, row
//! major, nothing else: what `trtexec` reads into the input buffer), [`MANIFEST`] naming each file
//! with its tensor name, dtype and shape (a bare `.bin` has neither, so this is what lets trtlens
//! read the directory back with `--load-inputs DIR`), and [`TRTEXEC_ARGS`] with the
//! `--loadInputs=...` argument for those files. File names come from [`crate::text::file_stem`].
//!
//! `trtexec` reads the bytes into a buffer of the engine's input type, so the engine must declare
//! the same type as the model (an int64 input needs a `TensorRT` that keeps int64 inputs).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runner::Tensors;
use crate::tensor::{DType, Tensor};

/// The manifest of a raw-inputs directory.
pub const MANIFEST: &str = "raw_inputs.json";
/// The `trtexec` argument file of a raw-inputs directory.
pub const TRTEXEC_ARGS: &str = "trtexec_args.txt";
/// Schema tag of the manifest.
pub const SCHEMA: &str = "trtlens.raw-inputs/1";

/// A file name and its contents.
pub type NamedBytes = (String, Vec<u8>);

/// One input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEntry {
    /// Exact input name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// File name inside the directory.
    pub file: String,
}

/// `raw_inputs.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawManifest {
    /// [`SCHEMA`].
    pub schema: String,
    /// Inputs in feed order.
    pub inputs: Vec<RawEntry>,
}

/// True when `dir` is a raw-inputs directory (it has a [`MANIFEST`]).
#[must_use]
pub fn is_raw_dir(dir: &Path) -> bool {
    dir.is_dir() && dir.join(MANIFEST).is_file()
}

/// The `--loadInputs` argument for files in `dir`: `--loadInputs='NAME':DIR/FILE,...` (names in
/// single quotes, which `trtexec` strips, so names holding `:` work). Names holding `,` or `'` cannot
/// be written in that syntax; they are returned apart.
#[must_use]
pub fn load_inputs_arg(dir: &Path, entries: &[RawEntry]) -> (String, Vec<String>) {
    let mut specs = Vec::new();
    let mut unsayable = Vec::new();
    for e in entries {
        let path = dir.join(&e.file).display().to_string();
        if e.name.contains([',', '\'']) || path.contains([',', '\'']) {
            unsayable.push(e.name.clone());
        } else {
            specs.push(format!("'{}':{path}", e.name));
        }
    }
    (format!("--loadInputs={}", specs.join(",")), unsayable)
}

/// The files of a raw-inputs directory for one iteration: `(file name, bytes)` including the
/// manifest and the `trtexec` argument file (whose paths start with `dir` as given).
pub fn raw_files(dir: &Path, tensors: &Tensors) -> Result<(Vec<NamedBytes>, Vec<String>)> {
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for (name, t) in tensors {
        let mut file = format!("{}.bin", crate::text::file_stem(name));
        if entries.iter().any(|e: &RawEntry| e.file == file) {
            file = format!("{}-{}.bin", crate::text::file_stem(name), entries.len());
        }
        entries.push(RawEntry { name: name.clone(), dtype: t.dtype(), shape: t.shape().to_vec(), file: file.clone() });
        files.push((file, t.bytes().to_vec()));
    }
    let (arg, unsayable) = load_inputs_arg(dir, &entries);
    let manifest = RawManifest { schema: SCHEMA.into(), inputs: entries };
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::store(dir, format!("cannot serialize the raw-inputs manifest: {e}")))?;
    files.push((MANIFEST.into(), format!("{json}\n").into_bytes()));
    files.push((TRTEXEC_ARGS.into(), format!("{}\n", crate::precision::export::sh_quote(&arg)).into_bytes()));
    Ok((files, unsayable))
}

/// Read the [`MANIFEST`] of a raw-inputs directory.
pub fn read_manifest(dir: &Path) -> Result<RawManifest> {
    let mpath = dir.join(MANIFEST);
    let bytes = super::read_file(&mpath)?;
    let manifest: RawManifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::input(format!("{}: not a raw-inputs manifest: {e}", mpath.display())))?;
    if manifest.schema != SCHEMA {
        return Err(Error::input(format!(
            "{}: unsupported schema '{}' (this trtlens reads {SCHEMA})",
            mpath.display(),
            manifest.schema
        )));
    }
    Ok(manifest)
}

/// Read a raw-inputs directory back (one iteration, in manifest order). Every file must hold
/// exactly the bytes its dtype and shape need.
pub fn read_raw_dir(dir: &Path) -> Result<Tensors> {
    let mpath = dir.join(MANIFEST);
    let manifest = read_manifest(dir)?;
    let mut out = Vec::with_capacity(manifest.inputs.len());
    for e in manifest.inputs {
        if e.file.contains(['/', '\\']) || e.file.starts_with('.') {
            return Err(Error::input(format!("{}: file name '{}' leaves the directory", mpath.display(), e.file)));
        }
        let path: PathBuf = dir.join(&e.file);
        let data = super::read_file(&path)?;
        let want = crate::tensor::numel(&e.shape) * e.dtype.size();
        if data.len() != want {
            return Err(Error::input(format!(
                "{}: input '{}' is {} of shape {} ({want} bytes) but the file holds {} bytes",
                path.display(),
                e.name,
                e.dtype,
                crate::tensor::shape_string(&e.shape),
                data.len()
            )));
        }
        let t = Tensor::from_bytes(e.dtype, e.shape, data)
            .map_err(|err| Error::input(format!("{}: {err}", path.display())))?;
        out.push((e.name, t));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trtexec_spec_quotes_names_and_sets_apart_what_it_cannot_say() {
        let e = |name: &str, file: &str| RawEntry {
            name: name.into(),
            dtype: DType::Float32,
            shape: vec![1],
            file: file.into(),
        };
        let (arg, bad) = load_inputs_arg(Path::new("in"), &[e("x:0", "x_0.bin"), e("a,b", "a_b.bin"), e("y", "y.bin")]);
        assert_eq!(arg, "--loadInputs='x:0':in/x_0.bin,'y':in/y.bin");
        assert_eq!(bad, vec!["a,b".to_string()]);
    }
}
