//! The run store: one directory per run, holding the inputs, every captured tensor and a manifest.
//!
//! Layout of a run directory:
//! ```text
//! OUT/
//!   manifest.json              runner, model sha256, input source, tensor list (topological), timings
//!   inputs_0000.safetensors    the inputs of iteration 0
//!   tensors_0000.safetensors   every captured tensor of iteration 0
//!   ...                        one pair per iteration
//! ```
//! Tensors are safetensors so a reader memory-maps a file and copies out only the tensors it needs.
//! A run directory is written into a temporary sibling and renamed into place only when complete,
//! so a crash or an error never leaves a directory that looks like a finished run.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inputs::InputSource;
use crate::runner::{NotCaptured, Tensors};
use crate::tensor::{DType, Tensor};

/// Schema tag of manifests written by this version.
pub const MANIFEST_SCHEMA: &str = "trtlens.run/1";
/// File name of the manifest.
pub const MANIFEST: &str = "manifest.json";

/// The runner that produced a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerInfo {
    /// Runner name.
    pub name: String,
    /// Backend version.
    pub version: String,
    /// The precision plan the runner applied, if any.
    #[serde(default)]
    pub plan: Option<String>,
    /// Runners that convert the model (`cpu-fp16`): the out-of-range policy and every
    /// initializer/`Constant` value FP16 cannot hold, with what the policy did to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<crate::precision::RangeConversion>,
    /// Backend settings that change the numbers (TF32, graph optimization, provider, device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<crate::runner::RunnerSettings>,
}

/// The model a run belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Path as given.
    pub path: String,
    /// sha256 of the model file.
    pub sha256: String,
    /// Default-domain opset.
    pub opset: Option<i64>,
    /// Nodes in the main graph.
    pub node_count: usize,
}

/// One captured tensor, as listed in the manifest (topological order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// ONNX tensor name.
    pub name: String,
    /// Producing node (display name), if the tensor is produced by a node.
    pub node: Option<String>,
    /// Producing node's op type.
    pub op_type: Option<String>,
    /// Position in the model's topological order of captured tensors.
    pub topo_index: usize,
    /// Element type (first iteration).
    pub dtype: DType,
    /// Shape (first iteration).
    pub shape: Vec<usize>,
    /// True for graph outputs.
    pub is_output: bool,
}

/// Files and timing of one iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationEntry {
    /// Iteration number.
    pub index: usize,
    /// Inputs file (relative to the run directory).
    pub inputs_file: String,
    /// Captured tensors file.
    pub tensors_file: String,
    /// Inference wall time, seconds.
    pub seconds: f64,
}

/// Timings of the whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Loading and analysing the model.
    pub load_s: f64,
    /// Creating the runner (library load, session/plan creation happens lazily on first run for tract).
    pub prepare_s: f64,
    /// Sum of inference wall times.
    pub run_s: f64,
    /// Writing the store.
    pub write_s: f64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_SCHEMA`].
    pub schema: String,
    /// Tool name and version.
    pub tool: ToolInfo,
    /// Who ran it.
    pub runner: RunnerInfo,
    /// Which model.
    pub model: ModelInfo,
    /// Where the inputs came from.
    pub inputs: InputSource,
    /// Input names in feed order.
    pub input_names: Vec<String>,
    /// Captured tensors in topological order.
    pub tensors: Vec<TensorEntry>,
    /// Tensors that were asked for but not captured, with reasons.
    pub not_captured: Vec<NotCaptured>,
    /// Node outputs deliberately not captured (Constant nodes), with the reason.
    #[serde(default)]
    pub excluded: Vec<NotCaptured>,
    /// Tensors inside If/Loop/Scan bodies: not observable, listed so nothing is silently missing.
    pub subgraph_tensors: Vec<String>,
    /// `If` nodes replaced by the branch the inputs select, in the order they were applied (the
    /// run's graph is the model with these applied: [`crate::model::specialize::apply`]).
    #[serde(default)]
    pub specialized: Vec<crate::model::specialize::Specialized>,
    /// `If` nodes left as they are, and why.
    #[serde(default)]
    pub not_specialized: Vec<crate::model::specialize::NotSpecialized>,
    /// Iterations.
    pub iterations: Vec<IterationEntry>,
    /// Warnings raised during the run.
    pub warnings: Vec<String>,
    /// Timings.
    pub timings: Timings,
    /// Seconds since the Unix epoch when the run finished.
    pub created_unix: u64,
    /// TensorRT runs: the engine, its tensor map and the production engine's outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trt: Option<crate::trt::RunInfo>,
}

/// Tool identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// "trtlens".
    pub name: String,
    /// Crate version.
    pub version: String,
}

impl ToolInfo {
    /// This build.
    #[must_use]
    pub fn current() -> ToolInfo {
        ToolInfo { name: env!("CARGO_PKG_NAME").into(), version: env!("CARGO_PKG_VERSION").into() }
    }
}

/// Write a file atomically: a temporary sibling renamed into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(|e| Error::store(path, format!("cannot write: {e}")))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::store(path, format!("cannot write: {e}"))
    })
}

/// Write a file atomically (a hidden sibling, then renamed) through `write`, which streams into it
/// (buffered); on any error the partial file is removed and `path` is left as it was.
pub fn write_atomic_with(path: &Path, write: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<()>) -> Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let result = (|| {
        let f = fs::File::create(&tmp).map_err(|e| Error::store(path, format!("cannot write: {e}")))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        write(&mut w)?;
        w.flush().map_err(|e| Error::store(path, format!("cannot write: {e}")))?;
        fs::rename(&tmp, path).map_err(|e| Error::store(path, format!("cannot write: {e}")))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Write a safetensors file from named tensors (order of `tensors` kept in the manifest, not here).
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, t)| {
            safetensors::tensor::TensorView::new(t.dtype().safetensors(), t.shape().to_vec(), t.bytes())
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::store(path, format!("tensor '{n}': {e}")))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| Error::store(path, format!("cannot write: {e}")))
}

/// A safetensors file written tensor by tensor: the header (names, dtypes, shapes, offsets) first,
/// then each tensor's bytes, in any order, each written where its offset says, so a runner that
/// hands tensors over as it computes them (or copies them off a device one at a time) never holds
/// more than one in host memory. The file reads back like any other (offsets are contiguous in the
/// announced order, the header padded to 8 bytes as the safetensors crate writes it).
pub struct SafetensorsStream {
    path: PathBuf,
    file: fs::File,
    /// Start of the data section in the file.
    base: u64,
    /// Where the file position is (after the last write).
    position: u64,
    /// Name → (offset in the data section, size, written).
    entries: HashMap<String, (u64, usize, bool)>,
    /// Names in the announced order (for the error naming a tensor never written).
    order: Vec<String>,
    written: usize,
}

impl SafetensorsStream {
    /// Create `path` and write the header for `specs` (name, dtype, shape), in file order.
    pub fn create(path: &Path, specs: &[(String, DType, Vec<usize>)]) -> Result<SafetensorsStream> {
        use std::io::Write as _;
        let mut infos = Vec::with_capacity(specs.len());
        let mut entries = HashMap::with_capacity(specs.len());
        let mut offset = 0usize;
        for (name, dtype, shape) in specs {
            let n = crate::tensor::numel(shape) * dtype.size();
            infos.push((
                name.clone(),
                safetensors::tensor::TensorInfo {
                    dtype: dtype.safetensors(),
                    shape: shape.clone(),
                    data_offsets: (offset, offset + n),
                },
            ));
            if entries.insert(name.clone(), (offset as u64, n, false)).is_some() {
                return Err(Error::store(path, format!("tensor '{name}' is announced twice")));
            }
            offset += n;
        }
        let meta = safetensors::tensor::Metadata::new(None, infos)
            .map_err(|e| Error::store(path, format!("cannot describe the tensors: {e}")))?;
        let mut header = serde_json::to_vec(&meta).map_err(|e| Error::store(path, e.to_string()))?;
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut file = fs::File::create(path).map_err(|e| Error::store_io(path, "cannot create", e))?;
        let mut head = Vec::with_capacity(8 + header.len());
        head.extend_from_slice(&(header.len() as u64).to_le_bytes());
        head.extend_from_slice(&header);
        file.write_all(&head).map_err(|e| Error::store_io(path, "cannot write", e))?;
        // The data section at its final size: tensors land at their offsets in any order.
        let base = head.len() as u64;
        file.set_len(base + offset as u64).map_err(|e| Error::store_io(path, "cannot write", e))?;
        Ok(SafetensorsStream {
            path: path.to_path_buf(),
            file,
            base,
            position: base,
            entries,
            order: specs.iter().map(|(n, _, _)| n.clone()).collect(),
            written: 0,
        })
    }

    /// Write one announced tensor's bytes (its exact size, once).
    pub fn write(&mut self, name: &str, data: &[u8]) -> Result<()> {
        use std::io::{Seek as _, Write as _};
        let Some((offset, size, done)) = self.entries.get_mut(name) else {
            return Err(Error::store(&self.path, format!("tensor '{name}' was not announced")));
        };
        if *size != data.len() {
            return Err(Error::store(
                &self.path,
                format!("tensor '{name}' was announced with {size} bytes, got {} bytes", data.len()),
            ));
        }
        if *done {
            return Err(Error::store(&self.path, format!("tensor '{name}' was written twice")));
        }
        let at = self.base + *offset;
        if at != self.position {
            self.file.seek(std::io::SeekFrom::Start(at)).map_err(|e| Error::store_io(&self.path, "cannot write", e))?;
        }
        self.file.write_all(data).map_err(|e| Error::store_io(&self.path, "cannot write", e))?;
        self.position = at + data.len() as u64;
        *done = true;
        self.written += 1;
        Ok(())
    }

    /// Check every tensor was written and flush.
    pub fn finish(mut self) -> Result<()> {
        use std::io::Write as _;
        if self.written < self.order.len()
            && let Some(missing) = self.order.iter().find(|n| self.entries.get(*n).is_some_and(|e| !e.2))
        {
            return Err(Error::store(&self.path, format!("tensor '{missing}' was never written")));
        }
        self.file.flush().map_err(|e| Error::store_io(&self.path, "cannot write", e))
    }
}

/// Where one tensor sits in a mapped safetensors file.
#[derive(Debug, Clone)]
struct Slot {
    dtype: DType,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A borrowed tensor inside a mapped file: no copy is made.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: &'a [usize],
    /// Little-endian row-major bytes.
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// Copy into an owned tensor.
    pub fn to_tensor(&self) -> Result<Tensor> {
        Tensor::from_bytes(self.dtype, self.shape.to_vec(), self.data.to_vec()).map_err(|e| Error::input(e.to_string()))
    }
}

/// A memory-mapped safetensors file, its header parsed once.
pub struct MappedTensors {
    path: PathBuf,
    map: memmap2::Mmap,
    slots: HashMap<String, Slot>,
    order: Vec<String>,
}

impl std::fmt::Debug for MappedTensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedTensors")
            .field("path", &self.path)
            .field("tensors", &self.order.len())
            .finish_non_exhaustive()
    }
}

impl MappedTensors {
    /// Map a file and index its header.
    pub fn open(path: &Path) -> Result<MappedTensors> {
        let f = fs::File::open(path).map_err(|e| Error::store(path, format!("cannot open: {e}")))?;
        let map = crate::sys::map_file(&f).map_err(|e| Error::store(path, format!("cannot map: {e}")))?;
        let corrupt = |e: &dyn std::fmt::Display| Error::store(path, format!("corrupt tensor file: {e}"));
        let (header_len, meta) = safetensors::SafeTensors::read_metadata(&map).map_err(|e| corrupt(&e))?;
        let base = 8 + header_len;
        let mut slots = HashMap::new();
        let mut order: Vec<(usize, String)> = Vec::new();
        for (name, info) in meta.tensors() {
            let dtype = DType::from_safetensors(info.dtype)
                .ok_or_else(|| Error::store(path, format!("tensor '{name}' has unsupported dtype {:?}", info.dtype)))?;
            let (start, end) = (base + info.data_offsets.0, base + info.data_offsets.1);
            if end > map.len() || end - start != crate::tensor::numel(&info.shape) * dtype.size() {
                return Err(corrupt(&format!("tensor '{name}' lies outside the file or has the wrong size")));
            }
            order.push((start, name.clone()));
            slots.insert(name, Slot { dtype, shape: info.shape.clone(), start, end });
        }
        order.sort();
        Ok(MappedTensors { path: path.to_path_buf(), map, slots, order: order.into_iter().map(|(_, n)| n).collect() })
    }

    /// Names in the file, in the order of their data.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.order
    }

    /// Borrow one tensor, or `None` if absent.
    #[must_use]
    pub fn view(&self, name: &str) -> Option<TensorView<'_>> {
        self.slots.get(name).map(|s| TensorView { dtype: s.dtype, shape: &s.shape, data: &self.map[s.start..s.end] })
    }

    /// Give one tensor's pages back to the system after reading it (see [`crate::sys::release`]):
    /// a reader going through every tensor of a large file keeps only the ones it is working on.
    pub fn release(&self, name: &str) {
        if let Some(s) = self.slots.get(name) {
            crate::sys::release(&self.map, s.start, s.end - s.start);
        }
    }

    /// Copy one tensor out, or `None` if absent.
    pub fn get(&self, name: &str) -> Result<Option<Tensor>> {
        self.view(name)
            .map(|v| v.to_tensor().map_err(|e| Error::store(&self.path, format!("tensor '{name}': {e}"))))
            .transpose()
    }
}

/// Everything needed to write a run.
pub struct RunWriter {
    final_dir: PathBuf,
    tmp_dir: PathBuf,
    done: bool,
}

impl RunWriter {
    /// Start writing a run to `dir`. Refuses to replace anything that is not a run directory.
    pub fn create(dir: &Path) -> Result<RunWriter> {
        if dir.exists() {
            let is_run = dir.join(MANIFEST).is_file();
            let empty = dir.is_dir() && fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
            if !is_run && !empty {
                return Err(Error::store(
                    dir,
                    "exists and is not a trtlens run directory; choose another --save path (trtlens only replaces its own runs)",
                ));
            }
        }
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent)
            .map_err(|e| Error::store(dir, format!("cannot create its parent directory {}: {e}", parent.display())))?;
        let base = dir.file_name().map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
        let tmp_dir = parent.join(format!(".{base}.partial-{}", std::process::id()));
        if tmp_dir.exists() {
            let _ = fs::remove_dir_all(&tmp_dir);
        }
        fs::create_dir(&tmp_dir).map_err(|e| Error::store(dir, format!("cannot write here: {e}")))?;
        Ok(RunWriter { final_dir: dir.to_path_buf(), tmp_dir, done: false })
    }

    /// Write iteration `index`'s inputs and tensors; returns the entry for the manifest.
    pub fn write_iteration(
        &self,
        index: usize,
        inputs: &Tensors,
        tensors: &Tensors,
        seconds: f64,
    ) -> Result<IterationEntry> {
        let inputs_file = format!("inputs_{index:04}.safetensors");
        let tensors_file = format!("tensors_{index:04}.safetensors");
        write_safetensors(&self.tmp_dir.join(&inputs_file), inputs)?;
        write_safetensors(&self.tmp_dir.join(&tensors_file), tensors)?;
        Ok(IterationEntry { index, inputs_file, tensors_file, seconds })
    }

    /// Start iteration `index` for a runner that streams its tensors: writes the inputs, and returns
    /// the tensors file opened for `specs` (see [`SafetensorsStream`]) with the manifest entry.
    pub fn stream_iteration(
        &self,
        index: usize,
        inputs: &Tensors,
        specs: &[(String, DType, Vec<usize>)],
        seconds: f64,
    ) -> Result<(SafetensorsStream, IterationEntry)> {
        let inputs_file = format!("inputs_{index:04}.safetensors");
        let tensors_file = format!("tensors_{index:04}.safetensors");
        write_safetensors(&self.tmp_dir.join(&inputs_file), inputs)?;
        let stream = SafetensorsStream::create(&self.tmp_dir.join(&tensors_file), specs)?;
        Ok((stream, IterationEntry { index, inputs_file, tensors_file, seconds }))
    }

    /// Write an extra tensors file `name` into the run (e.g. a production engine's graph outputs);
    /// returns the file name to record in the manifest.
    pub fn write_extra(&self, name: &str, tensors: &Tensors) -> Result<String> {
        write_safetensors(&self.tmp_dir.join(name), tensors)?;
        Ok(name.to_string())
    }

    /// Write the manifest and move the run into place.
    pub fn finish(mut self, manifest: &Manifest) -> Result<PathBuf> {
        let json = serde_json::to_vec_pretty(manifest).map_err(|e| Error::store(&self.tmp_dir, e.to_string()))?;
        fs::write(self.tmp_dir.join(MANIFEST), json).map_err(|e| Error::store(&self.tmp_dir, e.to_string()))?;
        let old = if self.final_dir.exists() {
            let mut old = self.tmp_dir.clone();
            old.set_extension("old");
            fs::rename(&self.final_dir, &old)
                .map_err(|e| Error::store(&self.final_dir, format!("cannot replace: {e}")))?;
            Some(old)
        } else {
            None
        };
        fs::rename(&self.tmp_dir, &self.final_dir)
            .map_err(|e| Error::store(&self.final_dir, format!("cannot finish: {e}")))?;
        if let Some(old) = old {
            let _ = fs::remove_dir_all(old);
        }
        self.done = true;
        Ok(self.final_dir.clone())
    }
}

impl Drop for RunWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp_dir);
        }
    }
}

/// A run directory opened for reading (no runner needed).
pub struct RunDir {
    /// The directory.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    index: HashMap<String, usize>,
}

impl RunDir {
    /// Open a run directory.
    pub fn open(path: &Path) -> Result<RunDir> {
        let mpath = path.join(MANIFEST);
        let bytes = fs::read(&mpath).map_err(|e| {
            Error::store(path, format!("not a trtlens run directory (cannot read {MANIFEST}: {e}); create one with `trtlens run MODEL --save DIR`"))
        })?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::store(&mpath, format!("corrupt manifest: {e}")))?;
        if manifest.schema != MANIFEST_SCHEMA {
            return Err(Error::store(
                &mpath,
                format!("unsupported manifest schema '{}' (this trtlens reads {MANIFEST_SCHEMA})", manifest.schema),
            ));
        }
        let index = manifest.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(RunDir { path: path.to_path_buf(), manifest, index })
    }

    /// Number of iterations.
    #[must_use]
    pub fn iterations(&self) -> usize {
        self.manifest.iterations.len()
    }

    /// The manifest entry of a tensor.
    #[must_use]
    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.index.get(name).map(|&i| &self.manifest.tensors[i])
    }

    fn iteration_entry(&self, it: usize) -> Result<&IterationEntry> {
        self.manifest.iterations.get(it).ok_or_else(|| {
            Error::store(&self.path, format!("iteration {it} does not exist (the run has {})", self.iterations()))
        })
    }

    /// Map iteration `it`'s captured tensors.
    pub fn tensors(&self, it: usize) -> Result<MappedTensors> {
        MappedTensors::open(&self.path.join(&self.iteration_entry(it)?.tensors_file))
    }

    /// Map iteration `it`'s inputs.
    pub fn inputs(&self, it: usize) -> Result<MappedTensors> {
        MappedTensors::open(&self.path.join(&self.iteration_entry(it)?.inputs_file))
    }

    /// Load every iteration's inputs, in feed order.
    pub fn load_inputs(&self) -> Result<Vec<Tensors>> {
        let mut out = Vec::new();
        for it in 0..self.iterations() {
            let m = self.inputs(it)?;
            let mut ts = Vec::new();
            for name in &self.manifest.input_names {
                let t = m
                    .get(name)?
                    .ok_or_else(|| Error::store(&self.path, format!("iteration {it} lacks input '{name}'")))?;
                ts.push((name.clone(), t));
            }
            out.push(ts);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(entries: Vec<IterationEntry>) -> Manifest {
        Manifest {
            schema: MANIFEST_SCHEMA.into(),
            tool: ToolInfo::current(),
            runner: RunnerInfo {
                name: "test".into(),
                version: "0".into(),
                plan: None,
                conversion: None,
                settings: None,
            },
            model: ModelInfo { path: "m.onnx".into(), sha256: "00".into(), opset: Some(17), node_count: 1 },
            inputs: InputSource {
                kind: "random".into(),
                path: None,
                seed: Some(1),
                val_ranges: vec![],
                shapes: std::collections::BTreeMap::new(),
                iterations: entries.len(),
            },
            input_names: vec!["x".into()],
            tensors: vec![TensorEntry {
                name: "y".into(),
                node: Some("n".into()),
                op_type: Some("Relu".into()),
                topo_index: 0,
                dtype: DType::Float16,
                shape: vec![2],
                is_output: true,
            }],
            not_captured: vec![],
            excluded: vec![],
            subgraph_tensors: vec![],
            specialized: vec![],
            not_specialized: vec![],
            iterations: entries,
            warnings: vec![],
            timings: Timings::default(),
            created_unix: 0,
            trt: None,
        }
    }

    #[test]
    fn write_then_read_back() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::store("tmp", e.to_string()))?;
        let dir = tmp.path().join("run");
        let x = Tensor::from_f32(&[2], &[1.0, -2.0]).map_err(|e| Error::input(e.to_string()))?;
        let y = Tensor::from_f16(&[2], &[half::f16::from_f32(1.0), half::f16::INFINITY])
            .map_err(|e| Error::input(e.to_string()))?;
        let w = RunWriter::create(&dir)?;
        let e = w.write_iteration(0, &vec![("x".into(), x.clone())], &vec![("y".into(), y.clone())], 0.5)?;
        w.finish(&manifest(vec![e]))?;
        let r = RunDir::open(&dir)?;
        assert_eq!(r.tensors(0)?.get("y")?, Some(y));
        assert_eq!(r.tensors(0)?.get("nope")?, None);
        assert_eq!(r.load_inputs()?, vec![vec![("x".to_string(), x)]]);
        // Replacing a run works, and nothing partial is left next to it.
        let w = RunWriter::create(&dir)?;
        drop(w);
        let leftovers: Vec<_> = fs::read_dir(tmp.path()).map_err(|e| Error::store("tmp", e.to_string()))?.collect();
        assert_eq!(leftovers.len(), 1);
        Ok(())
    }

    #[test]
    fn streamed_iterations_read_back() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::store("tmp", e.to_string()))?;
        let dir = tmp.path().join("run");
        let x = Tensor::from_f32(&[2], &[1.0, -2.0]).map_err(|e| Error::input(e.to_string()))?;
        let y = Tensor::from_f16(&[3], &[half::f16::from_f32(1.0), half::f16::INFINITY, half::f16::NAN])
            .map_err(|e| Error::input(e.to_string()))?;
        let b = Tensor::from_bytes(DType::Bool, vec![3], vec![1, 0, 1]).map_err(|e| Error::input(e.to_string()))?;
        let w = RunWriter::create(&dir)?;
        let specs = vec![("y".to_string(), DType::Float16, vec![3]), ("b".to_string(), DType::Bool, vec![3])];
        let (mut s, e) = w.stream_iteration(0, &vec![("x".into(), x)], &specs, 0.1)?;
        assert!(s.write("b", &[1]).is_err(), "wrong size");
        assert!(s.write("z", &[1]).is_err(), "not announced");
        // Any order: a runner hands tensors over as it computes them.
        s.write("b", b.bytes())?;
        assert!(s.write("b", b.bytes()).is_err(), "written twice");
        s.write("y", y.bytes())?;
        s.finish()?;
        let mut m = manifest(vec![e]);
        m.tensors[0].dtype = DType::Float16;
        w.finish(&m)?;
        let r = RunDir::open(&dir)?;
        let t = r.tensors(0)?;
        assert_eq!(t.get("y")?.map(|t| t.bytes().to_vec()), Some(y.bytes().to_vec()));
        assert_eq!(t.get("b")?, Some(b));
        Ok(())
    }

    #[test]
    fn refuses_to_replace_foreign_directories() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::store("tmp", e.to_string()))?;
        fs::write(tmp.path().join("precious.txt"), "x").map_err(|e| Error::store("tmp", e.to_string()))?;
        assert!(RunWriter::create(tmp.path()).is_err());
        assert!(RunDir::open(tmp.path()).is_err_and(|e| e.to_string().contains("not a trtlens run directory")));
        Ok(())
    }
}
