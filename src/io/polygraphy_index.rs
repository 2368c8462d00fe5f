//! Polygraphy run results read one tensor at a time, without holding the file.
//!
//! A `--save-outputs` file holds every tensor as the base64 text of a `.npy` file inside JSON, so
//! it is about 4/3 the size of the activations. [`LazyResults::open`] maps the file and makes one
//! pass over it: the JSON structure (runners, iterations, output names, the small values) is
//! parsed as [`super::polygraphy::read_run_results`] parses it, with the same leniency and the same
//! messages, while each long string value (an array payload) stays in the file and is only noted
//! (where it starts, how long it is). The `.npy` header at the start of each payload is decoded
//! then, so dtypes and shapes are known at once. [`LazyResults::load`] decodes one tensor's data
//! straight from the mapped text into its own buffer, a chunk at a time, and gives the text's pages
//! back to the system: reading both sides of a comparison holds the pair being compared, not the
//! files. Payloads that need the general path (JSON escapes, latin-1 text from very old
//! Polygraphy versions, `.npz` archives, big-endian or Fortran-order arrays) are decoded at open.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::npy;
use super::polygraphy;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// String values at least this long stay in the file (array payloads are; names and markers are
/// far shorter).
const BLOB_MIN: usize = 512;
/// Base64 characters decoded per step (a multiple of 4).
const CHUNK_CHARS: usize = 1 << 20;
/// Base64 characters decoded to read a payload's `.npy` header.
const HEAD_CHARS: usize = 4096;
/// The pass over the file gives its pages back every this many bytes.
const RELEASE_EVERY: usize = 8 << 20;
/// What replaces a long string in the parsed structure: this prefix and the blob's number. (A
/// real payload never starts with a NUL character.)
const MARK: &str = "\u{0}trtlens-blob:";

/// One array of a run-results file.
#[derive(Debug, Clone)]
pub enum LazyArray {
    /// Decoded when the file was opened (small, or needing the general decoding path).
    Decoded(Tensor),
    /// A plain `.npy` payload left in the file.
    Npy {
        /// Which opened file.
        file: usize,
        /// Offset of the base64 text in the file.
        start: usize,
        /// Length of the base64 text.
        len: usize,
        /// The `.npy` header.
        layout: npy::Layout,
    },
}

impl LazyArray {
    /// Element type.
    #[must_use]
    pub fn dtype(&self) -> DType {
        match self {
            LazyArray::Decoded(t) => t.dtype(),
            LazyArray::Npy { layout, .. } => layout.dtype,
        }
    }

    /// Shape.
    #[must_use]
    pub fn shape(&self) -> &[usize] {
        match self {
            LazyArray::Decoded(t) => t.shape(),
            LazyArray::Npy { layout, .. } => &layout.shape,
        }
    }
}

/// One iteration of one runner: outputs in file order, found by name.
#[derive(Debug, Clone, Default)]
pub struct LazyIteration {
    /// Outputs in the runner's order.
    pub outputs: Vec<(String, LazyArray)>,
    index: HashMap<String, usize>,
}

impl LazyIteration {
    fn new(outputs: Vec<(String, LazyArray)>) -> LazyIteration {
        let index = outputs.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        LazyIteration { outputs, index }
    }

    /// An output by exact name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&LazyArray> {
        self.index.get(name).map(|&i| &self.outputs[i].1)
    }
}

/// One runner's iterations.
#[derive(Debug, Clone)]
pub struct LazyRunner {
    /// Runner name.
    pub name: String,
    /// Its iterations.
    pub iterations: Vec<LazyIteration>,
}

/// A mapped file.
struct Mapped {
    path: PathBuf,
    map: memmap2::Mmap,
}

/// A run-results file (or a directory of per-iteration files) opened for reading one tensor at a
/// time.
pub struct LazyResults {
    files: Vec<Mapped>,
    /// Runners in file order (runners of the same name in several files are concatenated, as
    /// Polygraphy's `RunResults` concatenation does).
    pub runners: Vec<LazyRunner>,
}

/// The data of one loaded array: borrowed when it was decoded at open, else its own buffer.
#[derive(Debug)]
pub enum Loaded<'a> {
    /// Decoded at open.
    Borrowed(&'a Tensor),
    /// Decoded now: the data is `buf[start..]`.
    Owned {
        /// The bytes (with up to two leading bytes of the `.npy` header before `start`).
        buf: Vec<u8>,
        /// Where the data starts in `buf`.
        start: usize,
    },
}

impl Loaded<'_> {
    /// The little-endian data bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        match self {
            Loaded::Borrowed(t) => t.bytes(),
            Loaded::Owned { buf, start } => &buf[*start..],
        }
    }
}

impl LazyResults {
    /// Open a run-results file, or a directory of them (its `*.json` files in name order).
    pub fn open(path: &Path) -> Result<LazyResults> {
        let files = if path.is_dir() { super::json_files(path)? } else { vec![path.to_path_buf()] };
        let mut out = LazyResults { files: Vec::new(), runners: Vec::new() };
        for file in files {
            let index = out.files.len();
            let f = std::fs::File::open(&file).map_err(|e| {
                let msg = match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file (check the path)".to_string(),
                    _ => format!("cannot read: {e}"),
                };
                Error::input(format!("{}: {msg}", file.display()))
            })?;
            let map =
                crate::sys::map_file(&f).map_err(|e| Error::input(format!("{}: cannot map: {e}", file.display())))?;
            let runners = read(&map, index).map_err(|e| Error::input(format!("{}: {e}", file.display())))?;
            out.files.push(Mapped { path: file, map });
            for (name, iterations) in runners {
                let iterations = iterations.into_iter().map(|(outputs, _)| LazyIteration::new(outputs));
                match out.runners.iter_mut().find(|r| r.name == name) {
                    Some(r) => r.iterations.extend(iterations),
                    None => out.runners.push(LazyRunner { name, iterations: iterations.collect() }),
                }
            }
        }
        Ok(out)
    }

    /// Decode one array's data (`name` is for messages). The payload's text is read once from the
    /// map, decoded in chunks into the array's own buffer, and its pages given back.
    pub fn load<'a>(&'a self, name: &str, array: &'a LazyArray) -> Result<Loaded<'a>> {
        let (file, start, len, layout) = match array {
            LazyArray::Decoded(t) => return Ok(Loaded::Borrowed(t)),
            LazyArray::Npy { file, start, len, layout } => (*file, *start, *len, layout),
        };
        let m = self.files.get(file).ok_or_else(|| Error::input("unknown file"))?;
        let bad = |e: &dyn std::fmt::Display| {
            Error::input(format!("{}: output '{name}': the array payload is not valid base64: {e}", m.path.display()))
        };
        let text = m.map.get(start..start + len).ok_or_else(|| bad(&"outside the file"))?;
        // Decode from the base64 quantum holding the first data byte.
        let skip = layout.data_start % 3;
        let text_from = layout.data_start / 3 * 4;
        let mut buf = vec![0u8; skip + layout.nbytes + 3];
        // Chunks of whole base64 quanta decode independently, each into its own part of the
        // buffer: both cores decode one large tensor.
        let text = &text[text_from..];
        let out_chunk = CHUNK_CHARS / 4 * 3;
        let written = {
            use rayon::prelude::*;
            let decoded: Vec<std::result::Result<usize, base64::DecodeSliceError>> = text
                .par_chunks(CHUNK_CHARS)
                .zip(buf.par_chunks_mut(out_chunk))
                .enumerate()
                .map(|(i, (chunk, out))| {
                    let r = BASE64.decode_slice(chunk, out);
                    crate::sys::release(&m.map, start + text_from + i * CHUNK_CHARS, chunk.len());
                    r
                })
                .collect();
            let mut written = 0;
            for d in decoded {
                written += d.map_err(|e| bad(&e))?;
            }
            written
        };
        if written != skip + layout.nbytes {
            return Err(bad(&format!("{} bytes of data, the header declares {}", written - skip, layout.nbytes)));
        }
        buf.truncate(written);
        if layout.dtype == DType::Bool {
            npy::normalize_bool(&mut buf[skip..]);
        }
        Ok(Loaded::Owned { buf, start: skip })
    }

    /// Give back the pages of one array's text (after [`LazyResults::load`] they are already).
    pub fn release(&self, array: &LazyArray) {
        if let LazyArray::Npy { file, start, len, .. } = array
            && let Some(m) = self.files.get(*file)
        {
            crate::sys::release(&m.map, *start, *len);
        }
    }
}

/// Parse a mapped run-results file: the structure, with long strings replaced by markers, then each
/// array resolved.
fn read(map: &memmap2::Mmap, file: usize) -> Result<Vec<polygraphy::Walked<LazyArray>>> {
    let (skeleton, blobs) = skeleton(map, &mut |upto| crate::sys::release(map, 0, upto));
    crate::sys::release(map, 0, map.len());
    let value = polygraphy::parse_json(&skeleton)?;
    drop(skeleton);
    let mut resolve = |v: &serde_json::Value| -> Result<LazyArray> {
        let payload = polygraphy::array_payload(v)?;
        let Some(ix) = payload.strip_prefix(MARK) else {
            return Ok(LazyArray::Decoded(polygraphy::decode_payload_text(payload)?));
        };
        let &(start, len, escaped) = ix
            .parse::<usize>()
            .ok()
            .and_then(|i| blobs.get(i))
            .ok_or_else(|| Error::input("corrupt payload marker"))?;
        blob(map, file, start, len, escaped)
    };
    let walked = polygraphy::walk_run_results(&value, &mut resolve);
    // Reading each payload's head and tail mapped those pages (and the kernel's fault-around
    // neighbours): give the whole file back once, so that only pairs being compared stay resident.
    crate::sys::release(map, 0, map.len());
    walked
}

/// One long string value: a plain `.npy` payload stays in the file, anything else is decoded now.
fn blob(map: &[u8], file: usize, start: usize, len: usize, escaped: bool) -> Result<LazyArray> {
    let raw = &map[start..start + len];
    let general = || -> Result<LazyArray> {
        let text: String = if escaped {
            let mut quoted = Vec::with_capacity(len + 2);
            quoted.push(b'"');
            quoted.extend_from_slice(raw);
            quoted.push(b'"');
            serde_json::from_slice(&quoted).map_err(|e| Error::input(format!("not valid JSON: {e}")))?
        } else {
            std::str::from_utf8(raw).map_err(|e| Error::input(format!("not valid JSON: {e}")))?.to_string()
        };
        Ok(LazyArray::Decoded(polygraphy::decode_payload_text(&text)?))
    };
    if escaped || !len.is_multiple_of(4) {
        return general();
    }
    let Ok(head) = BASE64.decode(&raw[..len.min(HEAD_CHARS) / 4 * 4]) else { return general() };
    if !head.starts_with(npy::MAGIC) {
        return general();
    }
    let Some(layout) = npy::layout(&head)? else { return general() };
    if !layout.plain {
        return general();
    }
    let pad = raw.iter().rev().take(2).take_while(|&&b| b == b'=').count();
    let decoded = len / 4 * 3 - pad;
    let expected = layout.data_start + layout.nbytes;
    if decoded < expected {
        return Err(Error::input(format!(
            "truncated .npy data: the header declares {} shape {:?} ({} bytes) but only {} bytes follow",
            layout.dtype,
            layout.shape,
            layout.nbytes,
            decoded.saturating_sub(layout.data_start)
        )));
    }
    if decoded > expected {
        return Err(Error::input(format!(
            "corrupt .npy: {} unexpected bytes after the {} bytes of {} shape {:?} data",
            decoded - expected,
            layout.nbytes,
            layout.dtype,
            layout.shape
        )));
    }
    Ok(LazyArray::Npy { file, start, len, layout })
}

/// The JSON text with every string value of at least [`BLOB_MIN`] bytes replaced by a marker, and
/// where each replaced string is (offset, length, whether it holds escapes). `release(upto)` is
/// called as the pass moves on (every [`RELEASE_EVERY`] bytes).
fn skeleton(bytes: &[u8], release: &mut dyn FnMut(usize)) -> (Vec<u8>, Vec<(usize, usize, bool)>) {
    let mut out = Vec::new();
    let mut blobs = Vec::new();
    let mut i = 0;
    let mut released = 0;
    while i < bytes.len() {
        let Some(q) = memchr::memchr(b'"', &bytes[i..]).map(|q| i + q) else {
            out.extend_from_slice(&bytes[i..]);
            break;
        };
        out.extend_from_slice(&bytes[i..q]);
        let mut j = q + 1;
        let mut escaped = false;
        let end = loop {
            match memchr::memchr2(b'"', b'\\', bytes.get(j..).unwrap_or_default()) {
                None => break None,
                Some(k) if bytes[j + k] == b'\\' => {
                    escaped = true;
                    j += k + 2;
                }
                Some(k) => break Some(j + k),
            }
        };
        let Some(end) = end else {
            // Unterminated: the JSON parser says so.
            out.extend_from_slice(&bytes[q..]);
            break;
        };
        let len = end - q - 1;
        let is_value = out.iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b':');
        if is_value && len >= BLOB_MIN {
            let _ = write!(out, "\"\\u0000trtlens-blob:{}\"", blobs.len());
            blobs.push((q + 1, len, escaped));
        } else {
            out.extend_from_slice(&bytes[q..=end]);
        }
        i = end + 1;
        if i - released >= RELEASE_EVERY {
            release(i);
            released = i;
        }
    }
    (out, blobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::polygraphy::{IterationResult, RunResults, RunnerResults, write_run_results};

    fn t(r: std::result::Result<Tensor, crate::tensor::TensorError>) -> Result<Tensor> {
        r.map_err(|e| Error::input(e.to_string()))
    }

    fn results() -> Result<RunResults> {
        let big: Vec<f32> = (0..3000).map(|i| i as f32 * 0.25 - 7.0).collect();
        let bools: Vec<u8> = (0..2000).map(|i| u8::from(i % 3 == 0)).collect();
        let outputs = vec![
            ("big/out:0".to_string(), t(Tensor::from_f32(&[3, 1000], &big))?),
            ("small".to_string(), t(Tensor::from_f32(&[2], &[1.5, f32::NAN]))?),
            ("mask".to_string(), t(Tensor::from_bytes(DType::Bool, vec![2000], bools))?),
            (
                "half".to_string(),
                t(Tensor::from_f16(&[1000], &(0..1000).map(|i| half::f16::from_f32(i as f32)).collect::<Vec<_>>()))?,
            ),
        ];
        Ok(RunResults {
            runners: vec![
                RunnerResults {
                    name: "onnxrt-runner-N0".into(),
                    iterations: vec![
                        IterationResult { outputs: outputs.clone(), runtime: Some(0.5) },
                        IterationResult { outputs: outputs[1..].to_vec(), runtime: None },
                    ],
                },
                RunnerResults {
                    name: "trt-runner-N0".into(),
                    iterations: vec![IterationResult { outputs, runtime: Some(0.1) }],
                },
            ],
        })
    }

    /// Every tensor read lazily equals the eager reader's, bit for bit, in the same order.
    fn same_as_eager(bytes: &[u8]) -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::input(e.to_string()))?;
        let path = dir.path().join("out.json");
        std::fs::write(&path, bytes).map_err(|e| Error::input(e.to_string()))?;
        let eager = polygraphy::read_run_results(bytes)?;
        let lazy = LazyResults::open(&path)?;
        assert_eq!(lazy.runners.len(), eager.runners.len());
        for (l, e) in lazy.runners.iter().zip(&eager.runners) {
            assert_eq!(l.name, e.name);
            assert_eq!(l.iterations.len(), e.iterations.len());
            for (li, ei) in l.iterations.iter().zip(&e.iterations) {
                let names: Vec<&str> = li.outputs.iter().map(|(n, _)| n.as_str()).collect();
                let expected: Vec<&str> = ei.outputs.iter().map(|(n, _)| n.as_str()).collect();
                assert_eq!(names, expected);
                for (name, want) in &ei.outputs {
                    let a = li.get(name).ok_or_else(|| Error::input("missing"))?;
                    assert_eq!((a.dtype(), a.shape()), (want.dtype(), want.shape()), "{name}");
                    assert_eq!(lazy.load(name, a)?.bytes(), want.bytes(), "{name}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn lazy_reading_equals_eager_reading() -> Result<()> {
        let rr = results()?;
        let bytes = write_run_results(&rr);
        same_as_eager(&bytes)?;
        let lazy_count = {
            let dir = tempfile::tempdir().map_err(|e| Error::input(e.to_string()))?;
            let path = dir.path().join("out.json");
            std::fs::write(&path, &bytes).map_err(|e| Error::input(e.to_string()))?;
            let l = LazyResults::open(&path)?;
            l.runners[0].iterations[0].outputs.iter().filter(|(_, a)| matches!(a, LazyArray::Npy { .. })).count()
        };
        assert_eq!(lazy_count, 3, "the three large arrays stay in the file");
        // Compact JSON, escaped slashes in a payload (the general path), and bare NaN literals.
        let compact = String::from_utf8_lossy(&bytes).replace('\n', "").replace("    ", "");
        same_as_eager(compact.as_bytes())?;
        let escaped = compact.replacen("AAAA", "A\\u0041AA", 1);
        assert_ne!(escaped, compact);
        same_as_eager(escaped.as_bytes())?;
        let nan = compact.replace("\"runtime\": 0.5", "\"runtime\": NaN");
        assert_ne!(nan, compact);
        same_as_eager(nan.as_bytes())
    }

    #[test]
    fn a_damaged_payload_is_an_error_naming_the_file() -> Result<()> {
        let bytes = String::from_utf8_lossy(&write_run_results(&results()?)).into_owned();
        let dir = tempfile::tempdir().map_err(|e| Error::input(e.to_string()))?;
        let path = dir.path().join("out.json");
        // A character that is not base64 in the middle of the first large payload: found on load.
        let at = bytes.find("\"array\": \"").map_or(0, |p| p + 5000);
        let mut damaged = bytes.clone();
        damaged.replace_range(at..=at, "*");
        std::fs::write(&path, &damaged).map_err(|e| Error::input(e.to_string()))?;
        let lazy = LazyResults::open(&path)?;
        let (name, a) = &lazy.runners[0].iterations[0].outputs[0];
        let e = lazy.load(name, a).map(|_| ()).expect_err("damaged");
        assert!(e.to_string().contains("not valid base64") && e.to_string().contains("out.json"), "{e}");
        // A truncated payload: found on open, with the eager reader's message.
        let start = bytes.find("\"array\": \"").map_or(0, |p| p + 10);
        let mut short = bytes.clone();
        short.replace_range(start + 600..start + 1000, "");
        std::fs::write(&path, &short).map_err(|e| Error::input(e.to_string()))?;
        let e = LazyResults::open(&path).map(|_| ()).expect_err("truncated");
        let eager = polygraphy::read_run_results(short.as_bytes()).map(|_| ()).expect_err("truncated");
        assert!(e.to_string().contains("truncated .npy data"), "{e}");
        assert!(eager.to_string().contains("truncated .npy data"), "{eager}");
        // Not JSON at all.
        std::fs::write(&path, b"{\"lst\": [").map_err(|e| Error::input(e.to_string()))?;
        assert!(LazyResults::open(&path).is_err());
        Ok(())
    }
}
