//! The one place where `unsafe` is allowed: memory maps today, foreign libraries later.
#![allow(unsafe_code)]

use std::fs::File;

/// Map a file read-only.
pub fn map_file(f: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: trtlens maps files it wrote once and renamed into place (run stores) or files the user
    // hands it to read; they are not modified while mapped. A concurrent truncation by another
    // program is a misuse memmap cannot guard against.
    unsafe { memmap2::Mmap::map(f) }
}

/// Drop `len` bytes from `offset` of a read-only file map from this process's memory: the pages
/// stay in the page cache, and reading them again maps them again. Readers that go through a large
/// file once call this behind them, so their resident memory stays at what they are working on.
/// Failures are ignored (the pages then simply stay mapped).
pub fn release(map: &memmap2::Mmap, offset: usize, len: usize) {
    let (offset, len) = (offset.min(map.len()), len.min(map.len().saturating_sub(offset)));
    if len == 0 {
        return;
    }
    // SAFETY: `map` is a shared, read-only mapping of a file (`map_file`): MADV_DONTNEED only drops
    // the page table entries, and a later access faults the same file contents back in, so every
    // slice borrowed from the map keeps its value.
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
}

/// True when the CPU executes AVX2 instructions (detected once).
#[cfg(target_arch = "x86_64")]
#[must_use]
pub fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Run `fast` when the CPU has AVX2, `portable` otherwise. `fast` must be a safe function whose only
/// requirement is AVX2 (`#[target_feature(enable = "avx2")]`, coerced to an `unsafe fn` pointer):
/// the same code as `portable` compiled for wider registers.
#[cfg(target_arch = "x86_64")]
pub(crate) fn dispatch_avx2<A, R>(fast: unsafe fn(A) -> R, portable: fn(A) -> R, args: A) -> R {
    if has_avx2() {
        // SAFETY: `fast` is a `#[target_feature(enable = "avx2")]` function without other
        // preconditions (the contract above), and the CPU has AVX2.
        unsafe { fast(args) }
    } else {
        portable(args)
    }
}

/// Shared libraries loaded by trtlens, kept loaded for the life of the process: TensorRT and its
/// parser are never unloaded (their static destructors are not meant to run mid-process, and the
/// bindings hold function pointers into them).
static LIBRARIES: std::sync::Mutex<Vec<(std::path::PathBuf, &'static libloading::Library)>> =
    std::sync::Mutex::new(Vec::new());

/// Load a shared library once per path (later calls return the same handle).
pub fn load_library(path: &std::path::Path) -> Result<&'static libloading::Library, String> {
    let mut libs = LIBRARIES.lock().map_err(|_| "library table poisoned".to_string())?;
    if let Some((_, lib)) = libs.iter().find(|(p, _)| p == path) {
        return Ok(lib);
    }
    // SAFETY: loading runs the library's initialisers. The libraries loaded here are the TensorRT
    // and ONNX parser libraries the user pointed at or that discovery found by name; their
    // initialisers have no preconditions on the caller.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));
    libs.push((path.to_path_buf(), lib));
    Ok(lib)
}

/// Call an exported `int32_t f(void)` of a loaded library, if it has one.
#[must_use]
pub fn call_i32_getter(lib: &libloading::Library, symbol: &str) -> Option<i32> {
    // SAFETY: the symbols read through this function (`getInferLibVersion`, `getInferLibMajorVersion`,
    // `getNvOnnxParserVersion`, ...) are `extern "C" int32_t f() noexcept` in every TensorRT release.
    unsafe {
        let f: libloading::Symbol<'_, unsafe extern "C" fn() -> i32> = lib.get(symbol.as_bytes()).ok()?;
        Some(f())
    }
}
