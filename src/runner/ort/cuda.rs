//! What ONNX Runtime's CUDA provider needs on this machine, and whether a run used it.
//!
//! * **Library.** The `onnxruntime-gpu` Python package (a CUDA 13 build since 1.31) ships
//!   `onnxruntime/capi/libonnxruntime.so.X.Y.Z` with `libonnxruntime_providers_shared.so` and
//!   `libonnxruntime_providers_cuda.so` next to it; ONNX Runtime loads the provider from the
//!   directory of the library it runs from. [`probe`] takes the library from `--ort-lib` /
//!   `ORT_DYLIB_PATH` (a file or a directory) or from discovery ([`super::discover`]), and requires
//!   the provider next to it: the CPU-only `onnxruntime` package has none, which is a clear error
//!   rather than a silent CPU run.
//! * **CUDA and cuDNN.** The provider's `DT_NEEDED` entries (read from its ELF header: cuBLAS,
//!   cuBLASLt, cuRAND, the CUDA runtime, the driver's `libcuda.so.1`) and cuDNN (`libcudnn.so.9`,
//!   loaded at run time) are looked up in `LD_LIBRARY_PATH`, the `lib` folders of the Python
//!   `nvidia` packages (`nvidia/cu13/lib`, `nvidia/cudnn/lib`, ...), the library's own folder,
//!   `/usr/local/cuda`, the loader cache (`ldconfig -p`) and the system folders. The dynamic loader
//!   reads `LD_LIBRARY_PATH` once, when a process starts, so the runner executes in a `trtlens
//!   worker` child process started with those folders in front of `LD_LIBRARY_PATH`
//!   ([`worker_setup`]).
//! * **No silent CPU run.** ONNX Runtime places a node on its CPU provider when the CUDA provider
//!   has no kernel for it (and puts shape arithmetic there on purpose). The runner profiles its
//!   first iteration and reads the provider of every node from the profile ([`placement`]): a node
//!   computing floating-point values on the CPU fails the run; integer and boolean nodes there are
//!   listed in the run's settings.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::error::{Error, Result};

/// The runner's name in messages.
pub const NAME: &str = "onnxruntime-cuda";
/// The CUDA provider library ONNX Runtime loads from its own directory.
pub const PROVIDER: &str = "libonnxruntime_providers_cuda.so";
/// The shared-provider bridge next to it.
pub const PROVIDERS_SHARED: &str = "libonnxruntime_providers_shared.so";
/// cuDNN, which the provider loads at run time (not a `DT_NEEDED` entry).
pub const CUDNN: &str = "libcudnn.so.9";
/// ONNX Runtime's default for the CUDA provider's `use_tf32` option (on since it exists).
pub const TF32_DEFAULT: bool = true;
/// What the provider of `onnxruntime-gpu` 1.31 needs (from its ELF header), used when the header
/// cannot be read.
const KNOWN_NEEDS: &[&str] =
    &["libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcudart.so.13", "libcuda.so.1"];
/// Libraries every Linux system has; not worth reporting.
const SYSTEM_LIBS: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];
/// Where CUDA toolkits and distributions put libraries.
const CUDA_DIRS: &[&str] = &["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"];
const SYSTEM_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/usr/lib",
    "/lib",
    "/usr/lib/wsl/lib",
];

/// Prints the folders of the Python `nvidia` namespace package (CUDA/cuDNN wheels), one per line,
/// without importing anything heavy.
const PYTHON_NVIDIA: &str = "import importlib.util\n\
                             s = importlib.util.find_spec('nvidia')\n\
                             print('\\n'.join(s.submodule_search_locations) if s is not None and s.submodule_search_locations else '')";

/// One library the CUDA provider needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Need {
    /// Its soname (`libcublasLt.so.13`).
    pub soname: String,
    /// Where it was found, when it was.
    pub found: Option<PathBuf>,
    /// Loaded at run time rather than at load time (cuDNN).
    pub at_run_time: bool,
}

/// What [`probe`] found: the library, its CUDA provider, and the CUDA/cuDNN libraries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// The ONNX Runtime library with a CUDA provider next to it.
    pub library: Option<PathBuf>,
    /// Where it came from (`--ort-lib`, `ORT_DYLIB_PATH`, `python onnxruntime (...)`, a folder).
    pub source: Option<String>,
    /// The CUDA provider library.
    pub provider: Option<PathBuf>,
    /// Why no usable library was found.
    pub error: Option<String>,
    /// Libraries the provider needs and where they are.
    pub needs: Vec<Need>,
    /// Folders the worker process gets in front of `LD_LIBRARY_PATH`.
    pub lib_dirs: Vec<PathBuf>,
}

impl Probe {
    /// The libraries not found.
    #[must_use]
    pub fn missing(&self) -> Vec<&str> {
        self.needs.iter().filter(|n| n.found.is_none()).map(|n| n.soname.as_str()).collect()
    }

    /// One line on what is missing and how to get it (empty when nothing is).
    #[must_use]
    pub fn missing_hint(&self) -> String {
        let missing = self.missing();
        if missing.is_empty() {
            return String::new();
        }
        let driver = missing.contains(&"libcuda.so.1");
        let mut hint = format!(
            "not found: {} (looked in LD_LIBRARY_PATH, the Python nvidia packages, /usr/local/cuda and the system \
             folders); the CUDA 13 and cuDNN 9 libraries come with `pip install nvidia-cublas nvidia-cuda-runtime \
             nvidia-curand nvidia-cudnn-cu13` or a CUDA toolkit, or set LD_LIBRARY_PATH",
            missing.join(", ")
        );
        if driver {
            hint.push_str("; libcuda.so.1 is the NVIDIA driver: this machine has no usable GPU driver");
        }
        hint
    }
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        match (&self.library, &self.error) {
            (Some(l), _) => {
                let _ = writeln!(s, "onnxruntime-cuda: {} ({})", l.display(), self.source.as_deref().unwrap_or("?"));
            }
            (None, Some(e)) => {
                let _ = writeln!(s, "onnxruntime-cuda: not available: {e}");
            }
            (None, None) => {
                let _ = writeln!(s, "onnxruntime-cuda: not available");
            }
        }
        if let Some(p) = &self.provider {
            let _ = writeln!(s, "  CUDA provider: {}", p.display());
        }
        for n in &self.needs {
            let when = if n.at_run_time { " (loaded at run time)" } else { "" };
            match &n.found {
                Some(p) => {
                    let _ = writeln!(s, "  {}{when}: {}", n.soname, p.display());
                }
                None => {
                    let _ = writeln!(s, "  {}{when}: MISSING", n.soname);
                }
            }
        }
        let hint = self.missing_hint();
        if !hint.is_empty() {
            let _ = writeln!(s, "  {hint}");
        }
        f.write_str(s.trim_end())
    }
}

fn err(msg: impl Into<String>) -> Error {
    Error::runner(NAME, msg)
}

/// Find the ONNX Runtime library with a CUDA provider (explicit path first, see the module docs)
/// and the CUDA/cuDNN libraries its provider needs. Never fails: what is missing is in the result.
#[must_use]
pub fn probe(explicit: Option<&Path>) -> Probe {
    let mut p = Probe::default();
    match find_library(explicit) {
        Ok((lib, source, provider)) => {
            p.library = Some(lib);
            p.source = Some(source);
            p.provider = Some(provider);
        }
        Err(e) => {
            p.error = Some(e);
            return p;
        }
    }
    let provider = p.provider.clone().unwrap_or_default();
    let mut sonames: Vec<String> = match needed(&provider) {
        Some(n) => n.into_iter().filter(|s| !SYSTEM_LIBS.contains(&s.as_str())).collect(),
        None => KNOWN_NEEDS.iter().map(|s| (*s).to_string()).collect(),
    };
    sonames.dedup();
    let lib_dir = p.library.as_ref().and_then(|l| l.parent()).map(Path::to_path_buf);
    let env_dirs = ld_library_path();
    let nvidia = nvidia_lib_dirs();
    let mut dirs: Vec<PathBuf> = env_dirs.clone();
    dirs.extend(nvidia.iter().cloned());
    dirs.extend(lib_dir);
    dirs.extend(CUDA_DIRS.iter().map(PathBuf::from));
    dirs.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
    p.needs = resolve(&sonames, &dirs, &ldconfig_cache());
    // The worker's extra folders: every Python nvidia lib folder, and any other non-system folder
    // a needed library was found in (in the order searched).
    let mut extra: Vec<PathBuf> = nvidia;
    for n in &p.needs {
        if let Some(dir) = n.found.as_ref().and_then(|f| f.parent()) {
            let system = SYSTEM_DIRS.iter().any(|s| Path::new(s) == dir);
            if !system && !extra.iter().any(|e| e == dir) && !env_dirs.iter().any(|e| e == dir) {
                extra.push(dir.to_path_buf());
            }
        }
    }
    p.lib_dirs = extra;
    p
}

/// Where each library is: the first of `dirs` holding it, else the loader cache; cuDNN is added
/// (loaded at run time).
fn resolve(sonames: &[String], dirs: &[PathBuf], cache: &[(String, PathBuf)]) -> Vec<Need> {
    let find = |soname: &str| -> Option<PathBuf> {
        dirs.iter()
            .map(|d| d.join(soname))
            .find(|f| f.exists())
            .or_else(|| cache.iter().find(|(n, _)| n == soname).map(|(_, p)| p.clone()))
    };
    let mut needs: Vec<Need> =
        sonames.iter().map(|s| Need { soname: s.clone(), found: find(s), at_run_time: false }).collect();
    needs.push(Need { soname: CUDNN.to_string(), found: find(CUDNN), at_run_time: true });
    needs
}

/// The library to load for the CUDA provider, its source and the provider file, or why none.
fn find_library(explicit: Option<&Path>) -> std::result::Result<(PathBuf, String, PathBuf), String> {
    let candidates = super::discover::candidates(explicit).map_err(|e| {
        let msg = match &e {
            Error::Runner { msg, .. } => msg.clone(),
            other => other.to_string(),
        };
        if explicit.is_some() || std::env::var_os("ORT_DYLIB_PATH").is_some_and(|v| !v.is_empty()) {
            msg
        } else {
            format!(
                "no ONNX Runtime library found; install the GPU build with `pip install onnxruntime-gpu` (CUDA 13) \
                 or point --ort-lib / ORT_DYLIB_PATH at its libonnxruntime.so.X.Y.Z ({msg})"
            )
        }
    })?;
    let mut without = Vec::new();
    for c in candidates {
        let dir = c.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let provider = dir.join(PROVIDER);
        if provider.is_file() {
            return Ok((c.path, c.source, provider));
        }
        without.push(format!("{} (from {})", c.path.display(), c.source));
    }
    Err(format!(
        "{PROVIDER} not found next to {}: that is a CPU-only ONNX Runtime (the `onnxruntime` package); install \
         `onnxruntime-gpu` (CUDA 13 build) or point --ort-lib / ORT_DYLIB_PATH at the library of one",
        without.join(", ")
    ))
}

/// The library for the CUDA runner, or a runner error saying what is missing.
pub fn library(explicit: Option<&Path>) -> Result<Probe> {
    let p = probe(explicit);
    match (&p.library, &p.error) {
        (Some(_), _) => Ok(p),
        (None, e) => Err(err(e.clone().unwrap_or_else(|| "no ONNX Runtime with a CUDA provider found".into()))),
    }
}

/// What the worker process of a CUDA run needs: the resolved library (so the worker loads exactly
/// it) and `LD_LIBRARY_PATH` with the CUDA/cuDNN folders first. Fails (before any process starts)
/// when there is no library with a CUDA provider.
pub fn worker_setup(opts: &crate::runner::RunnerOptions) -> Result<crate::runner::registry::WorkerSetup> {
    let p = library(opts.ort_lib.as_deref())?;
    let mut options = opts.clone();
    options.ort_lib.clone_from(&p.library);
    Ok(crate::runner::registry::WorkerSetup { options, env: worker_env(&p) })
}

fn ld_library_path() -> Vec<PathBuf> {
    std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default()
}

/// The `lib` folders of the Python `nvidia` packages (`nvidia/cu13/lib`, `nvidia/cudnn/lib`, ...).
fn nvidia_lib_dirs() -> Vec<PathBuf> {
    let Ok(out) =
        Command::new("python3").args(["-c", PYTHON_NVIDIA]).stdin(Stdio::null()).stderr(Stdio::null()).output()
    else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    let mut dirs = Vec::new();
    for root in String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Ok(entries) = std::fs::read_dir(root) else { continue };
        let mut found: Vec<PathBuf> =
            entries.filter_map(std::result::Result::ok).map(|e| e.path().join("lib")).filter(|p| p.is_dir()).collect();
        found.sort();
        dirs.extend(found);
    }
    dirs
}

/// `(soname, path)` of the loader cache (`ldconfig -p`), empty when it cannot be read.
fn ldconfig_cache() -> Vec<(String, PathBuf)> {
    for exe in ["ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"] {
        let Ok(out) = Command::new(exe).arg("-p").stdin(Stdio::null()).stderr(Stdio::null()).output() else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        return String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (left, path) = l.split_once("=>")?;
                let name = left.split_whitespace().next()?;
                Some((name.to_string(), PathBuf::from(path.trim())))
            })
            .collect();
    }
    Vec::new()
}

/// The `DT_NEEDED` entries of a 64-bit little-endian ELF shared library (reads only the headers
/// and the dynamic section, not the whole file); `None` when it is not one.
#[must_use]
pub fn needed(path: &Path) -> Option<Vec<String>> {
    let f = std::fs::File::open(path).ok()?;
    let read = |off: u64, len: usize| -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, off).ok()?;
        Some(buf)
    };
    let u16_at =
        |b: &[u8], o: usize| -> Option<u64> { Some(u64::from(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))) };
    let u32_at =
        |b: &[u8], o: usize| -> Option<u64> { Some(u64::from(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))) };
    let u64_at = |b: &[u8], o: usize| -> Option<u64> { Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?)) };
    let head = read(0, 64)?;
    // Magic, ELFCLASS64, little endian.
    if head.get(0..4)? != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let (phoff, phentsize, phnum) = (u64_at(&head, 0x20)?, u16_at(&head, 0x36)?, u16_at(&head, 0x38)?);
    if phentsize < 56 || phnum == 0 || phnum > 4096 {
        return None;
    }
    let table = read(phoff, usize::try_from(phentsize * phnum).ok()?)?;
    let mut loads = Vec::new();
    let mut dynamic = None;
    for i in 0..usize::try_from(phnum).ok()? {
        let e = &table[i * phentsize as usize..];
        let (kind, offset, vaddr, filesz) = (u32_at(e, 0)?, u64_at(e, 8)?, u64_at(e, 16)?, u64_at(e, 32)?);
        match kind {
            1 => loads.push((offset, vaddr, filesz)),
            2 => dynamic = Some((offset, filesz)),
            _ => {}
        }
    }
    let (dyn_off, dyn_size) = dynamic?;
    let entries = read(dyn_off, usize::try_from(dyn_size.min(1 << 20)).ok()?)?;
    let mut needed_offsets = Vec::new();
    let mut strtab = None;
    for chunk in entries.chunks_exact(16) {
        let (tag, val) = (u64_at(chunk, 0)?, u64_at(chunk, 8)?);
        match tag {
            0 => break,
            1 => needed_offsets.push(val),
            5 => strtab = Some(val),
            _ => {}
        }
    }
    let strtab = strtab?;
    let (seg_off, seg_vaddr, _) = loads.iter().find(|(_, v, s)| strtab >= *v && strtab < v + s)?;
    let file_strtab = strtab - seg_vaddr + seg_off;
    let mut out = Vec::new();
    for o in needed_offsets {
        let bytes = read(file_strtab + o, 256).or_else(|| read(file_strtab + o, 64))?;
        let end = bytes.iter().position(|&b| b == 0)?;
        out.push(String::from_utf8_lossy(&bytes[..end]).into_owned());
    }
    Some(out)
}

/// Where ONNX Runtime ran the nodes of a profiled iteration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Nodes on `provider`.
    pub on_provider: usize,
    /// Nodes elsewhere that compute floating-point values: `name (op): types`.
    pub float_elsewhere: Vec<String>,
    /// Nodes elsewhere that compute only integers or booleans: `name (op)`.
    pub other_elsewhere: Vec<String>,
}

/// Read an ONNX Runtime profile (the JSON `end_profiling` writes): the provider of every node
/// event (`cat: "Node"`, `name: NODE_kernel_time`), split into nodes on `provider` and the others.
pub fn placement(profile_json: &str, provider: &str) -> std::result::Result<Placement, String> {
    let v: serde_json::Value =
        serde_json::from_str(profile_json).map_err(|e| format!("the ONNX Runtime profile is not JSON: {e}"))?;
    let events = v.as_array().ok_or("the ONNX Runtime profile is not a list of events")?;
    let mut p = Placement::default();
    let mut seen = std::collections::HashSet::new();
    for e in events {
        if e.get("cat").and_then(serde_json::Value::as_str) != Some("Node") {
            continue;
        }
        let Some(name) = e.get("name").and_then(serde_json::Value::as_str).and_then(|n| n.strip_suffix("_kernel_time"))
        else {
            continue;
        };
        if !seen.insert(name.to_string()) {
            continue;
        }
        let args = e.get("args");
        let at = args.and_then(|a| a.get("provider")).and_then(serde_json::Value::as_str).unwrap_or("?");
        let op = args.and_then(|a| a.get("op_name")).and_then(serde_json::Value::as_str).unwrap_or("?");
        if at == provider {
            p.on_provider += 1;
            continue;
        }
        let types: Vec<String> = args
            .and_then(|a| a.get("output_type_shape"))
            .and_then(serde_json::Value::as_array)
            .map(|outs| outs.iter().filter_map(|o| o.as_object()).flat_map(|o| o.keys().cloned()).collect())
            .unwrap_or_default();
        let float = types.iter().any(|t| t.starts_with("float") || t.starts_with("bfloat") || t == "double");
        if float {
            p.float_elsewhere.push(format!("{name} ({op}, {at}): {}", types.join(", ")));
        } else {
            p.other_elsewhere.push(format!("{name} ({op})"));
        }
    }
    if p.on_provider + p.float_elsewhere.len() + p.other_elsewhere.len() == 0 {
        return Err("the ONNX Runtime profile lists no node".into());
    }
    Ok(p)
}

/// The environment of a worker of the CUDA runner: `LD_LIBRARY_PATH` as it is, then the folders
/// [`probe`] found the CUDA and cuDNN libraries in (nothing when there is nothing to add).
#[must_use]
pub fn worker_env(p: &Probe) -> Vec<(String, OsString)> {
    let mut dirs = ld_library_path();
    let before = dirs.len();
    for d in &p.lib_dirs {
        if !dirs.contains(d) {
            dirs.push(d.clone());
        }
    }
    if dirs.len() == before {
        return Vec::new();
    }
    std::env::join_paths(&dirs).map(|j| vec![("LD_LIBRARY_PATH".to_string(), j)]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_reads_the_dynamic_section_of_a_real_library() {
        // The test binary itself is an ELF executable with DT_NEEDED entries (libc at least).
        let exe = std::env::current_exe().expect("test binary");
        let libs = needed(&exe).expect("an ELF file");
        assert!(libs.iter().any(|l| l.starts_with("libc.so")), "{libs:?}");
        assert!(needed(Path::new("/nonexistent")).is_none());
        let text = std::env::temp_dir().join(format!("trtlens-not-elf-{}", std::process::id()));
        std::fs::write(&text, b"not an ELF file at all, just text that is long enough to read a header from ....")
            .expect("write");
        assert!(needed(&text).is_none());
        let _ = std::fs::remove_file(text);
    }

    #[test]
    fn libraries_resolve_in_folder_order_then_from_the_cache() {
        let (a, b) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
        std::fs::write(a.path().join("libcublas.so.13"), b"").expect("write");
        std::fs::write(b.path().join("libcublas.so.13"), b"").expect("write");
        std::fs::write(b.path().join("libcudnn.so.9"), b"").expect("write");
        let cache = vec![("libcuda.so.1".to_string(), PathBuf::from("/usr/lib/x86_64-linux-gnu/libcuda.so.1"))];
        let sonames = vec!["libcublas.so.13".to_string(), "libcuda.so.1".to_string(), "libcurand.so.10".to_string()];
        let needs = resolve(&sonames, &[a.path().to_path_buf(), b.path().to_path_buf()], &cache);
        let found: Vec<Option<PathBuf>> = needs.iter().map(|n| n.found.clone()).collect();
        assert_eq!(
            found,
            [
                Some(a.path().join("libcublas.so.13")),
                Some(PathBuf::from("/usr/lib/x86_64-linux-gnu/libcuda.so.1")),
                None,
                Some(b.path().join("libcudnn.so.9")),
            ]
        );
        let p = Probe { needs, ..Probe::default() };
        assert_eq!(p.missing(), ["libcurand.so.10"]);
        assert!(p.missing_hint().contains("nvidia-curand") && !p.missing_hint().contains("driver"));
    }

    #[test]
    fn placement_splits_float_nodes_from_shape_arithmetic() {
        let profile = r#"[
          {"cat":"Session","name":"model_run","args":{}},
          {"cat":"Node","name":"conv_kernel_time","args":{"op_name":"Conv","provider":"CUDAExecutionProvider","output_type_shape":[{"float16":[1,8]}]}},
          {"cat":"Node","name":"conv_fence_before","args":{"op_name":"Conv"}},
          {"cat":"Node","name":"shape_kernel_time","args":{"op_name":"Shape","provider":"CPUExecutionProvider","output_type_shape":[{"int64":[4]}]}},
          {"cat":"Node","name":"sin_kernel_time","args":{"op_name":"Sin","provider":"CPUExecutionProvider","output_type_shape":[{"float":[3]}]}}
        ]"#;
        let p = placement(profile, "CUDAExecutionProvider").expect("parses");
        assert_eq!(p.on_provider, 1);
        assert_eq!(p.other_elsewhere, ["shape (Shape)"]);
        assert_eq!(p.float_elsewhere, ["sin (Sin, CPUExecutionProvider): float"]);
        assert!(placement("[]", "CUDAExecutionProvider").is_err());
        assert!(placement("{", "CUDAExecutionProvider").is_err());
    }

    #[test]
    fn a_cpu_only_library_is_refused_with_what_to_install() {
        let dir = tempfile::tempdir().expect("tmp");
        let lib = dir.path().join("libonnxruntime.so.1.31.1");
        std::fs::write(&lib, b"").expect("write");
        let p = probe(Some(&lib));
        let e = p.error.expect("an error");
        assert!(e.contains(PROVIDER) && e.contains("onnxruntime-gpu"), "{e}");
        // With the provider next to it, the library is accepted (whatever the CUDA libraries).
        std::fs::write(dir.path().join(PROVIDER), b"").expect("write");
        let p = probe(Some(dir.path()));
        assert_eq!(p.library.as_deref(), Some(lib.as_path()));
        assert!(p.needs.iter().any(|n| n.soname == CUDNN && n.at_run_time));
        assert!(
            p.needs.iter().any(|n| n.soname == "libcublasLt.so.13"),
            "the known needs when the header is unreadable"
        );
    }
}
