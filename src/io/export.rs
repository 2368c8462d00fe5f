//! Exports in the formats other tools read: a run's inputs as Polygraphy JSON (`--load-inputs`),
//! `.npz`, `.safetensors` or raw binary per input (`trtexec --loadInputs`), and a run's captured
//! tensors as `.npz` or Polygraphy `RunResults` JSON (`polygraphy run --load-outputs`). Every
//! export is written atomically (a temporary sibling renamed into place) and every reader here reads
//! what it writes back bit for bit.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::runner::Tensors;
use crate::store::RunDir;

/// Formats of `trtlens inputs export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputsFormat {
    /// Polygraphy input data (`polygraphy run --load-inputs`): every iteration.
    Polygraphy,
    /// numpy `.npz` (`numpy.load`): one iteration.
    Npz,
    /// safetensors: one iteration.
    Safetensors,
    /// A directory of raw `.bin` files, one per input, with the `trtexec --loadInputs` argument: one iteration.
    Raw,
}

impl InputsFormat {
    /// Name for messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            InputsFormat::Polygraphy => "Polygraphy JSON",
            InputsFormat::Npz => ".npz",
            InputsFormat::Safetensors => ".safetensors",
            InputsFormat::Raw => "raw binary",
        }
    }
}

/// Formats of `trtlens tensors export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TensorsFormat {
    /// Polygraphy `RunResults` JSON (`polygraphy run --load-outputs`): every iteration.
    Polygraphy,
    /// numpy `.npz`: one iteration.
    Npz,
}

/// Inputs from any source trtlens reads: a run directory, a raw-inputs directory, a directory of
/// Polygraphy iteration files, or an input file (`.npz`, `.npy`, `.safetensors`, Polygraphy JSON).
pub fn load_any_inputs(source: &Path) -> Result<Vec<Tensors>> {
    if source.is_dir() && source.join(crate::store::MANIFEST).is_file() {
        RunDir::open(source)?.load_inputs()
    } else if super::raw::is_raw_dir(source) {
        Ok(vec![super::raw::read_raw_dir(source)?])
    } else if source.is_dir() {
        super::load_polygraphy_inputs_dir(source)
    } else {
        super::load_inputs_file(source)
    }
}

/// One iteration of `iterations` for a one-iteration format: `which` when given, else the only one.
fn one_iteration<'a>(
    iterations: &'a [Tensors],
    which: Option<usize>,
    format: &str,
    source: &Path,
) -> Result<&'a Tensors> {
    match which {
        Some(i) => iterations.get(i).ok_or_else(|| {
            Error::usage(format!(
                "--iteration {i}: {} holds {} iteration(s) (numbered from 0)",
                source.display(),
                iterations.len()
            ))
        }),
        None if iterations.len() == 1 => Ok(&iterations[0]),
        None => Err(Error::usage(format!(
            "{} holds {} iterations and {format} holds one: pick it with --iteration N (or export --format polygraphy, which keeps them all)",
            source.display(),
            iterations.len()
        ))),
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// The file (or directory, for raw inputs) written.
    pub path: PathBuf,
    /// Iterations it holds.
    pub iterations: usize,
    /// Tensors per iteration.
    pub tensors: usize,
    /// For raw inputs: the `trtexec --loadInputs` argument.
    pub trtexec_arg: Option<String>,
    /// Things worth saying (inputs the `--loadInputs` syntax cannot name, ...).
    pub warnings: Vec<String>,
}

/// Write `iterations` (or the one `iteration` picks) in `format` to `out`: a file, or a directory
/// for [`InputsFormat::Raw`] (replaced when it is an earlier raw export or empty; any other
/// non-empty directory is refused).
pub fn export_inputs(
    iterations: &[Tensors],
    source: &Path,
    format: InputsFormat,
    iteration: Option<usize>,
    out: &Path,
) -> Result<Exported> {
    if iterations.is_empty() {
        return Err(Error::input(format!("{}: holds no iterations", source.display())));
    }
    let mut exported =
        Exported { path: out.to_path_buf(), iterations: 1, tensors: 0, trtexec_arg: None, warnings: Vec::new() };
    match format {
        InputsFormat::Polygraphy => {
            let chosen: Vec<Tensors> = match iteration {
                Some(_) => vec![one_iteration(iterations, iteration, format.name(), source)?.clone()],
                None => iterations.to_vec(),
            };
            check_file_destination(out)?;
            crate::store::write_atomic(out, &super::polygraphy::write_inputs_json(&chosen))?;
            exported.iterations = chosen.len();
            exported.tensors = chosen[0].len();
        }
        InputsFormat::Npz | InputsFormat::Safetensors => {
            let one = one_iteration(iterations, iteration, format.name(), source)?;
            let bytes = if format == InputsFormat::Npz {
                super::npy::write_npz(one)?
            } else {
                super::safetensors_file::write_safetensors(one)?
            };
            check_file_destination(out)?;
            crate::store::write_atomic(out, &bytes)?;
            exported.tensors = one.len();
        }
        InputsFormat::Raw => {
            let one = one_iteration(iterations, iteration, format.name(), source)?;
            let (files, unsayable) = super::raw::raw_files(out, one)?;
            write_dir_atomic(out, &files, super::raw::MANIFEST)?;
            let entries: Vec<super::raw::RawEntry> = super::raw::read_manifest(out)?.inputs;
            exported.trtexec_arg = Some(super::raw::load_inputs_arg(out, &entries).0);
            for name in unsayable {
                exported.warnings.push(format!(
                    "input '{name}': trtexec --loadInputs cannot name it (its syntax splits on ',' and strips '); its file is written all the same"
                ));
            }
            exported.tensors = one.len();
        }
    }
    Ok(exported)
}

/// Refuse to write a file over a directory.
fn check_file_destination(out: &Path) -> Result<()> {
    if out.is_dir() {
        return Err(Error::usage(format!("-o {}: is a directory; give a file name", out.display())));
    }
    Ok(())
}

/// Write `files` into directory `dir` atomically: into a hidden sibling, renamed into place. An
/// existing `dir` is replaced only when it is empty or holds `marker` (an earlier export of the same
/// kind); anything else is refused, so an export never deletes unrelated files.
pub fn write_dir_atomic(dir: &Path, files: &[(String, Vec<u8>)], marker: &str) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(Error::usage(format!("-o {}: is a file; give a directory", dir.display())));
        }
        let empty = std::fs::read_dir(dir).map_err(|e| Error::store_io(dir, "cannot list", e))?.next().is_none();
        if !empty && !dir.join(marker).is_file() {
            return Err(Error::usage(format!(
                "-o {}: the directory is not empty and is not an earlier export ({marker} missing); give a new or empty directory",
                dir.display()
            )));
        }
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir.file_name().map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    std::fs::create_dir_all(&parent).map_err(|e| Error::store_io(&parent, "cannot create the directory", e))?;
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| {
        std::fs::create_dir(&tmp).map_err(|e| Error::store_io(&tmp, "cannot create the directory", e))?;
        for (file, bytes) in files {
            std::fs::write(tmp.join(file), bytes).map_err(|e| Error::store_io(tmp.join(file), "cannot write", e))?;
        }
        if dir.exists() {
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(dir, &old).map_err(|e| Error::store_io(dir, "cannot replace the earlier export", e))?;
            std::fs::rename(&tmp, dir).map_err(|e| Error::store_io(dir, "cannot write", e))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&tmp, dir).map_err(|e| Error::store_io(dir, "cannot write", e))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Options of [`export_run_tensors`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TensorsExport {
    /// Only this iteration (required by `.npz` when the run has several).
    pub iteration: Option<usize>,
    /// Only the graph outputs (default: every captured tensor).
    pub outputs_only: bool,
    /// Runner name in the Polygraphy file (default `trtlens-RUNNER-DIRNAME`).
    pub runner_name: Option<String>,
}

/// The default Polygraphy runner name of a run: `trtlens-RUNNER-DIRNAME`.
#[must_use]
pub fn default_runner_name(run: &RunDir) -> String {
    let dir = run.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    format!("trtlens-{}-{dir}", run.manifest.runner.name)
}

/// Export the captured tensors of a run directory (topological order).
pub fn export_run_tensors(run: &RunDir, format: TensorsFormat, opts: &TensorsExport, out: &Path) -> Result<Exported> {
    let names: Vec<&str> =
        run.manifest.tensors.iter().filter(|t| !opts.outputs_only || t.is_output).map(|t| t.name.as_str()).collect();
    if names.is_empty() {
        return Err(Error::usage(format!("{}: the run captured no tensor to export", run.path.display())));
    }
    let load = |it: usize| -> Result<Tensors> {
        let mapped = run.tensors(it)?;
        names
            .iter()
            .map(|n| {
                mapped
                    .get(n)?
                    .map(|t| ((*n).to_string(), t))
                    .ok_or_else(|| Error::store(&run.path, format!("iteration {it} lacks tensor '{n}'")))
            })
            .collect()
    };
    let its: Vec<usize> = match opts.iteration {
        Some(i) if i < run.iterations() => vec![i],
        Some(i) => {
            return Err(Error::usage(format!(
                "--iteration {i}: {} has {} iteration(s) (numbered from 0)",
                run.path.display(),
                run.iterations()
            )));
        }
        None => (0..run.iterations()).collect(),
    };
    check_file_destination(out)?;
    let bytes = match format {
        TensorsFormat::Npz => {
            if its.len() != 1 {
                return Err(Error::usage(format!(
                    "{} has {} iterations and .npz holds one: pick it with --iteration N (or --format polygraphy)",
                    run.path.display(),
                    its.len()
                )));
            }
            super::npy::write_npz(&load(its[0])?)?
        }
        TensorsFormat::Polygraphy => {
            // Streamed: one tensor at a time from the mapped run, base64-encoded on the way out.
            let name = opts.runner_name.clone().unwrap_or_else(|| default_runner_name(run));
            let mut listed = Vec::with_capacity(its.len());
            for &it in &its {
                let mapped = run.tensors(it)?;
                let arrays = names
                    .iter()
                    .map(|n| {
                        mapped
                            .view(n)
                            .map(|v| ((*n).to_string(), v.dtype, v.shape.to_vec()))
                            .ok_or_else(|| Error::store(&run.path, format!("iteration {it} lacks tensor '{n}'")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                listed.push((arrays, run.manifest.iterations.get(it).map(|e| e.seconds)));
            }
            let mut open: Option<(usize, crate::store::MappedTensors)> = None;
            let mut data = |i: usize, tensor: &str, sink: &mut dyn std::io::Write| -> Result<()> {
                let it = its[i];
                if open.as_ref().is_none_or(|(o, _)| *o != it) {
                    open = Some((it, run.tensors(it)?));
                }
                let Some((_, mapped)) = &open else { return Err(Error::store(&run.path, "iteration not open")) };
                let v = mapped
                    .view(tensor)
                    .ok_or_else(|| Error::store(&run.path, format!("iteration {it} lacks tensor '{tensor}'")))?;
                sink.write_all(v.data).map_err(|e| Error::store(out, format!("cannot write: {e}")))?;
                mapped.release(tensor);
                Ok(())
            };
            crate::store::write_atomic_with(out, &mut |w| {
                super::polygraphy::write_run_results_streamed(w, &name, &listed, &mut data)
            })?;
            return Ok(Exported {
                path: out.to_path_buf(),
                iterations: its.len(),
                tensors: names.len(),
                trtexec_arg: None,
                warnings: Vec::new(),
            });
        }
    };
    crate::store::write_atomic(out, &bytes)?;
    Ok(Exported {
        path: out.to_path_buf(),
        iterations: its.len(),
        tensors: names.len(),
        trtexec_arg: None,
        warnings: Vec::new(),
    })
}
