//! Conformance of the reference runners against the ONNX backend node tests.
//!
//! Every `test_*` directory of the node tests shipped in the `onnx` Python wheel (or pointed at by
//! `TRTLENS_ONNX_NODE_TESTS`) is loaded through trtlens (`Model::load`, `to_tensor`), run on each
//! runner through the `Runner` trait with the graph outputs captured, and the outputs are compared
//! with the reference `output_*.pb` (numpy-like `allclose`).
//!
//! Each (runner, test) pair ends as `pass`, `fail` (wrong values, shape or dtype), `error` (load or
//! run error, panic, timeout) or `unsupported-io` (sequences, optionals, maps, strings and other
//! element types trtlens cannot hold, or a model our loader rejects). Known failures are listed in
//! `tests/conformance/<runner>.txt`; any other failure or error is a regression and fails the test.
//!
//! Environment:
//! - `TRTLENS_ONNX_NODE_TESTS`: node test directory (default: asks `python3` for the onnx package).
//! - `CI`: when set, a missing test directory or a missing ONNX Runtime library fails the test.
//! - `TRTLENS_CONFORMANCE_FILTER`: only run tests whose name contains this text.
//! - `TRTLENS_CONFORMANCE_RUNNERS`: comma-separated runners (default: every runner compiled in).
//! - `TRTLENS_CONFORMANCE_JOBS`: parallel tests (default: available cores).
//! - `TRTLENS_CONFORMANCE_TIMEOUT`: seconds after which a test is abandoned as an error (default 120).
//! - `TRTLENS_CONFORMANCE_VERBOSE`: print every non-passing outcome.
//! - `TRTLENS_CONFORMANCE_BLESS`: rewrite the allow-lists from this run instead of checking them.
//!
//! Run with `cargo test --test conformance -- --nocapture` to see the report.

mod common;
use common::{conformance_allow_list as read_allow_list, in_ci, node_test_dir};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use prost::Message;
use trtlens::model::Model;
use trtlens::model::proto::{MapProto, OptionalProto, SequenceProto, TensorProto, data_type};
use trtlens::model::tensor_proto::to_tensor;
use trtlens::runner::{self, RunnerKind, RunnerOptions, Tensors};
use trtlens::tensor::{DType, Tensor, shape_string};

/// A test that runs longer than this is reported as slow.
const SLOW: Duration = Duration::from_secs(20);
/// Default time after which a test is given up (its thread is left running, not killed).
const DEFAULT_TIMEOUT_SECS: u64 = 120;
/// Examples printed per failure category.
const EXAMPLES_PER_CATEGORY: usize = 4;

/// How one (runner, test) pair ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Pass,
    /// Ran, but an output has the wrong dtype, shape or values.
    Fail(String),
    /// The model could not be prepared or run (including panics and timeouts).
    Error(String),
    /// trtlens cannot express the test's inputs or outputs.
    Unsupported(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::Error(_) => "error",
            Outcome::Unsupported(_) => "unsupported-io",
        }
    }

    fn message(&self) -> &str {
        match self {
            Outcome::Pass => "",
            Outcome::Fail(m) | Outcome::Error(m) | Outcome::Unsupported(m) => m,
        }
    }

    /// Fail or error: what the allow-list is about.
    fn is_failure(&self) -> bool {
        matches!(self, Outcome::Fail(_) | Outcome::Error(_))
    }
}

/// One finished job.
#[derive(Debug, Clone)]
struct JobResult {
    outcome: Outcome,
    seconds: f64,
}

fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

// ---------------------------------------------------------------------------------------------
// Locating the node tests
// ---------------------------------------------------------------------------------------------

/// Sorted `test_*` directories holding a `model.onnx`.
fn list_tests(root: &Path, filter: Option<&str>) -> Result<Vec<(String, PathBuf)>, String> {
    let rd = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut tests = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| format!("{}: {e}", root.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !name.starts_with("test_") || !path.join("model.onnx").is_file() {
            continue;
        }
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        tests.push((name, path));
    }
    tests.sort();
    Ok(tests)
}

/// `prefix_<i>.pb` files of a data set, sorted by index.
fn numbered_files(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(idx) = name.strip_prefix(prefix).and_then(|s| s.strip_suffix(".pb")) else { continue };
        if let Ok(i) = idx.parse::<usize>() {
            files.push((i, entry.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Sorted `test_data_set_*` directories.
fn data_sets(test_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(test_dir).map_err(|e| format!("{}: {e}", test_dir.display()))?;
    let mut sets: Vec<PathBuf> = rd
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("test_data_set_") && e.path().is_dir())
        .map(|e| e.path())
        .collect();
    sets.sort();
    Ok(sets)
}

// ---------------------------------------------------------------------------------------------
// Decoding the reference tensors
// ---------------------------------------------------------------------------------------------

/// Why a `.pb` file that does not decode as a tensor trtlens can hold is not a tensor.
fn non_tensor_kind(bytes: &[u8], tp: Option<&TensorProto>) -> String {
    if let Some(t) = tp {
        let dt = t.data_type.unwrap_or(data_type::UNDEFINED);
        return format!("element type {}", data_type::name(dt));
    }
    if SequenceProto::decode(bytes).is_ok() {
        "a sequence".into()
    } else if OptionalProto::decode(bytes).is_ok() {
        "an optional".into()
    } else if MapProto::decode(bytes).is_ok() {
        "a map".into()
    } else {
        "not a protobuf trtlens knows".into()
    }
}

/// Decode one reference `.pb`: a tensor, or an [`Outcome`] explaining why not.
fn read_tensor_pb(path: &Path) -> Result<(Option<String>, Tensor), Outcome> {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let bytes = std::fs::read(path).map_err(|e| Outcome::Error(format!("{}: {e}", path.display())))?;
    let Ok(tp) = TensorProto::decode(bytes.as_slice()) else {
        return Err(Outcome::Unsupported(format!("{file} is {}", non_tensor_kind(&bytes, None))));
    };
    let dt = tp.data_type.unwrap_or(data_type::UNDEFINED);
    if DType::from_onnx(dt).is_none() {
        return Err(Outcome::Unsupported(format!("{file} has {}", non_tensor_kind(&bytes, Some(&tp)))));
    }
    let name = tp.name.clone().filter(|n| !n.is_empty());
    let t = to_tensor(&tp, path.parent()).map_err(|e| Outcome::Error(format!("trtlens cannot decode {file}: {e}")))?;
    Ok((name, t))
}

/// Pair `files` with the graph tensors `names`: by position when the counts agree, else by the
/// `TensorProto` name.
fn pair(model: &Model, names: &[String], files: &[PathBuf], what: &str) -> Result<Tensors, Outcome> {
    let decoded: Vec<(Option<String>, Tensor)> = files.iter().map(|f| read_tensor_pb(f)).collect::<Result<_, _>>()?;
    let mut out: Tensors = Vec::new();
    if decoded.len() == names.len() {
        out = names.iter().cloned().zip(decoded.into_iter().map(|(_, t)| t)).collect();
    } else {
        for (pb_name, t) in decoded {
            match pb_name {
                Some(n) if names.contains(&n) => out.push((n, t)),
                Some(n) => {
                    return Err(Outcome::Error(format!(
                        "{what} file names tensor '{n}', which the graph does not have"
                    )));
                }
                None => {
                    return Err(Outcome::Error(format!(
                        "{} {what} files for {} graph {what}s and the files carry no names",
                        files.len(),
                        names.len()
                    )));
                }
            }
        }
        if what == "input"
            && let Some(missing) = names.iter().find(|n| runner::find(&out, n).is_none())
        {
            return Err(Outcome::Unsupported(format!("no data for input '{missing}' (omitted optional input?)")));
        }
    }
    for (name, t) in &mut out {
        *t = bf16_quirk(model, name, std::mem::replace(t, Tensor::zeros(DType::Uint8, vec![0])));
    }
    Ok(out)
}

/// The node tests store bfloat16 data as `UINT16` tensors (numpy has no bfloat16): reinterpret
/// the bits when the graph declares the tensor bfloat16.
fn bf16_quirk(model: &Model, name: &str, t: Tensor) -> Tensor {
    let declared = model.graph.tensor(name).and_then(|i| i.ty.elem_type);
    if declared != Some(data_type::BFLOAT16) || t.dtype() != DType::Uint16 {
        return t;
    }
    // Same element size, so this cannot fail; keep the original tensor if it somehow does.
    Tensor::from_bytes(DType::Bfloat16, t.shape().to_vec(), t.bytes().to_vec()).unwrap_or(t)
}

/// Declared graph inputs/outputs that trtlens cannot carry.
fn unsupported_io(model: &Model) -> Option<String> {
    let g = &model.graph;
    for (what, names) in [("input", &g.inputs), ("output", &g.outputs)] {
        for n in names {
            let Some(t) = g.tensor(n) else { continue };
            if !matches!(t.ty.kind, "tensor" | "") {
                return Some(format!("{} {what} '{n}'", t.ty.kind));
            }
            if let Some(e) = t.ty.elem_type.filter(|&e| DType::from_onnx(e).is_none()) {
                return Some(format!("{what} '{n}' has element type {}", data_type::name(e)));
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

/// (rtol, atol) for a float dtype.
fn tolerance(d: DType) -> (f64, f64) {
    match d {
        DType::Float16 => (1e-2, 1e-3),
        DType::Bfloat16 => (2e-2, 1e-2),
        _ => (1e-3, 1e-5),
    }
}

fn close(got: f64, want: f64, rtol: f64, atol: f64) -> bool {
    if got.is_nan() || want.is_nan() {
        return got.is_nan() && want.is_nan();
    }
    if got.is_infinite() || want.is_infinite() {
        // Equal only when both are infinite with the same sign.
        return got.is_infinite() && want.is_infinite() && got.is_sign_positive() == want.is_sign_positive();
    }
    (got - want).abs() <= atol + rtol * want.abs()
}

/// `None` when `got` matches `want`, else what differs.
fn compare(got: &Tensor, want: &Tensor) -> Option<String> {
    if got.dtype() != want.dtype() {
        return Some(format!("dtype {} but expected {}", got.dtype(), want.dtype()));
    }
    if got.shape() != want.shape() {
        return Some(format!("shape {} but expected {}", shape_string(got.shape()), shape_string(want.shape())));
    }
    let n = want.len();
    let mut bad = 0usize;
    let mut first: Option<usize> = None;
    if want.dtype().is_float() {
        let (rtol, atol) = tolerance(want.dtype());
        let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
        let mut max_abs = 0f64;
        for i in 0..n {
            if !close(g[i], w[i], rtol, atol) {
                bad += 1;
                first.get_or_insert(i);
                let d = (g[i] - w[i]).abs();
                if d.is_finite() {
                    max_abs = max_abs.max(d);
                }
            }
        }
        let i = first?;
        Some(format!(
            "{bad}/{n} values differ (rtol {rtol:e}, atol {atol:e}), first at flat index {i}: got {} expected {}, max abs diff {max_abs:e}",
            g[i], w[i]
        ))
    } else {
        for i in 0..n {
            if got.get_i64(i) != want.get_i64(i) {
                bad += 1;
                first.get_or_insert(i);
            }
        }
        let i = first?;
        Some(format!(
            "{bad}/{n} values differ (exact), first at flat index {i}: got {} expected {}",
            got.get_i64(i),
            want.get_i64(i)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Running one (runner, test) pair
// ---------------------------------------------------------------------------------------------

fn run_test(kind: RunnerKind, dir: &Path) -> Outcome {
    let model = match Model::load(&dir.join("model.onnx")) {
        Ok(m) => m,
        Err(e) => return Outcome::Unsupported(format!("rejected by the trtlens model loader: {e}")),
    };
    if let Some(why) = unsupported_io(&model) {
        return Outcome::Unsupported(why);
    }
    let sets = match data_sets(dir) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => return Outcome::Error("no test_data_set_* directory".into()),
        Err(e) => return Outcome::Error(e),
    };
    // Decode every data set before running, so IO problems are reported as such.
    let mut cases = Vec::new();
    for set in &sets {
        let files = |prefix: &str| numbered_files(set, prefix).map_err(Outcome::Error);
        let inputs = match files("input_").and_then(|f| pair(&model, &model.graph.inputs, &f, "input")) {
            Ok(t) => t,
            Err(o) => return o,
        };
        let expected = match files("output_").and_then(|f| pair(&model, &model.graph.outputs, &f, "output")) {
            Ok(t) => t,
            Err(o) => return o,
        };
        cases.push((inputs, expected));
    }
    let capture = model.graph.outputs.clone();
    let mut r = match runner::create(kind, &model, &capture, &RunnerOptions::default()) {
        Ok(r) => r,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let mut fails = Vec::new();
    for (set, (inputs, expected)) in sets.iter().zip(&cases) {
        let out = match r.run(inputs) {
            Ok(o) => o,
            Err(e) => return Outcome::Error(e.to_string()),
        };
        let prefix = if sets.len() > 1 {
            format!("{}: ", set.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default())
        } else {
            String::new()
        };
        for (name, want) in expected {
            let Some(got) = runner::find(&out.tensors, name) else {
                let why = out
                    .not_captured
                    .iter()
                    .find(|n| &n.name == name)
                    .map_or_else(|| "the runner did not return it".to_string(), |n| n.reason.clone());
                return Outcome::Error(format!("{prefix}output '{name}' not captured: {why}"));
            };
            if let Some(d) = compare(got, want) {
                fails.push(format!("{prefix}output '{name}': {d}"));
            }
        }
    }
    if fails.is_empty() { Outcome::Pass } else { Outcome::Fail(fails.join("; ")) }
}

thread_local! {
    /// Where the last panic on this thread happened (set by the quiet panic hook).
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string payload)".into())
}

/// [`run_test`] with panics turned into errors.
fn run_guarded(kind: RunnerKind, dir: &Path) -> Outcome {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_test(kind, dir))) {
        Ok(o) => o,
        Err(p) => {
            let at = PANIC_AT.with(|a| a.borrow_mut().take()).map(|l| format!(" (at {l})")).unwrap_or_default();
            let msg = panic_message(p.as_ref());
            Outcome::Error(format!("panic: {}{at}", msg.lines().next().unwrap_or("")))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scheduling
// ---------------------------------------------------------------------------------------------

struct Job {
    kind: RunnerKind,
    test: String,
    dir: PathBuf,
}

/// Run all jobs, `parallel` at a time, each on its own thread. A job running longer than [`SLOW`]
/// is reported; one running longer than `timeout` is recorded as an error and left running.
fn run_jobs(jobs: &[Job], parallel: usize, timeout: Duration) -> Vec<JobResult> {
    let mut results: Vec<Option<JobResult>> = vec![None; jobs.len()];
    let (tx, rx) = mpsc::channel::<(usize, Outcome, f64)>();
    let mut in_flight: HashMap<usize, (Instant, bool)> = HashMap::new();
    let mut next = 0usize;
    let mut done = 0usize;
    let started = Instant::now();
    let mut last_progress = Instant::now();
    while done < jobs.len() {
        while in_flight.len() < parallel && next < jobs.len() {
            let i = next;
            next += 1;
            let (kind, dir, tx) = (jobs[i].kind, jobs[i].dir.clone(), tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("{}:{}", kind.name(), jobs[i].test))
                .stack_size(16 << 20)
                .spawn(move || {
                    let t0 = Instant::now();
                    let outcome = run_guarded(kind, &dir);
                    // The receiver may be gone after a timeout; nothing to do then.
                    let _ = tx.send((i, outcome, t0.elapsed().as_secs_f64()));
                });
            match spawned {
                Ok(_) => {
                    in_flight.insert(i, (Instant::now(), false));
                }
                Err(e) => {
                    results[i] =
                        Some(JobResult { outcome: Outcome::Error(format!("cannot spawn thread: {e}")), seconds: 0.0 });
                    done += 1;
                }
            }
        }
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok((i, outcome, seconds)) => {
                if in_flight.remove(&i).is_some() {
                    results[i] = Some(JobResult { outcome, seconds });
                    done += 1;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
        }
        let mut abandoned = Vec::new();
        for (&i, (t0, warned)) in &mut in_flight {
            let el = t0.elapsed();
            if el > SLOW && !*warned {
                *warned = true;
                println!("  slow: {} {} still running after {}s", jobs[i].kind.name(), jobs[i].test, el.as_secs());
            }
            if el > timeout {
                abandoned.push((i, el));
            }
        }
        for (i, el) in abandoned {
            in_flight.remove(&i);
            println!(
                "  timeout: {} {} abandoned after {}s (thread left running)",
                jobs[i].kind.name(),
                jobs[i].test,
                el.as_secs()
            );
            results[i] = Some(JobResult {
                outcome: Outcome::Error(format!("timeout: no result after {}s", el.as_secs())),
                seconds: el.as_secs_f64(),
            });
            done += 1;
        }
        if last_progress.elapsed() > Duration::from_secs(30) {
            last_progress = Instant::now();
            println!("  ... {done}/{} done after {:.0}s", jobs.len(), started.elapsed().as_secs_f64());
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(JobResult { outcome: Outcome::Error("no result".into()), seconds: 0.0 }))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Allow-lists and categories
// ---------------------------------------------------------------------------------------------

fn allow_list_path(kind: RunnerKind) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("conformance").join(format!("{}.txt", kind.name()))
}

/// A short, stable category for a non-passing outcome, used to group the report and allow-lists.
fn category(o: &Outcome) -> String {
    let m = short_reason(o.message());
    let kind = o.label();
    let c = if m.starts_with("panic") {
        "panic".to_string()
    } else if m.starts_with("timeout") {
        "timeout".to_string()
    } else if let Some(op) = unsupported_op(&m) {
        format!("unsupported operator {op}")
    } else if matches!(o, Outcome::Fail(_)) {
        if m.contains("values differ") {
            "wrong values".to_string()
        } else if m.contains(": dtype ") {
            "wrong output dtype".to_string()
        } else {
            "wrong output shape".to_string()
        }
    } else if matches!(o, Outcome::Unsupported(_)) {
        unsupported_category(&m)
    } else if needs_constant(&m) {
        "needs a constant where the test feeds a graph input".to_string()
    } else {
        let generic = regex(r"\b\d+\b").replace_all(&m, "N");
        let cut = generic.find(['[', '{']).unwrap_or(generic.len());
        generic[..cut].chars().take(70).collect::<String>().trim_end_matches([' ', ':', ',']).to_string()
    };
    format!("{kind}: {c}")
}

/// A compiled regex (patterns are literals of this file).
fn regex(pattern: &str) -> regex::Regex {
    match regex::Regex::new(pattern) {
        Ok(r) => r,
        Err(e) => panic!("bad regex {pattern}: {e}"),
    }
}

/// The message without the parts that differ from test to test (runner prefix, node ids and
/// names, model paths).
fn short_reason(m: &str) -> String {
    let rules: [(&str, &str); 10] = [
        (r"^runner \w+: ", ""),
        // tract: `cannot run node 'NAME' (Op): reason; inputs: shapes; try ...` → `Op: reason`.
        (r"^cannot run node '[^']*' \((\w+)\): ", "$1: "),
        (r"^cannot prepare the model: ", ""),
        (r"; inputs: .*$", ""),
        (r"; try .*$", ""),
        (r#"#\d+ "[^"]*" "#, ""),
        (r"cannot load model \S+ into ONNX Runtime: ", "cannot load model: "),
        (r"in output_facts invocation for [^:]*: ", ""),
        (r"ToTypedTranslator: ", ""),
        (r"/onnxruntime_src/\S+ ", ""),
    ];
    let mut s = m.replace('\n', " ");
    for (pat, rep) in rules {
        s = regex(pat).replace_all(&s, rep).into_owned();
    }
    s
}

/// tract wants a constant (axes, shape, pads, scales...) that the node test feeds as an input.
fn needs_constant(m: &str) -> bool {
    let l = m.to_ascii_lowercase();
    ["must be a const", "to be a const", "as a constant", "is variable", "not const", "be constant", "a const"]
        .iter()
        .any(|k| l.contains(k))
        || l.contains("expect constant")
        || l.contains("known scalar")
        || l.contains("expects a constant")
        || l.contains("expected dim and value to be determined")
        || l.contains("non constant")
        || l.contains("typable only if")
        || l.contains("neither sizes nor scales")
}

/// The operator named by an "unsupported operator" error, if the message is one.
fn unsupported_op(m: &str) -> Option<String> {
    // tract: `Foo: not implemented in tract` (or its own `Unimplemented(Foo)`).
    if let Some(c) = regex(r"(\w+): not implemented in tract").captures(m) {
        return Some(c[1].to_string());
    }
    if let Some(rest) = m.split("Unimplemented(").nth(1) {
        return rest.split(')').next().map(str::to_string);
    }
    // ONNX Runtime: `Could not find an implementation for Foo(11) node` / `Foo(-1) is not a registered function/op`.
    if let Some(c) = regex(r"Could not find an implementation for (\w+)\(").captures(m) {
        return Some(format!("{} (for these types)", &c[1]));
    }
    if let Some(c) = regex(r"(\w+)\(-?\d+\) is not a registered function/op").captures(m) {
        return Some(c[1].to_string());
    }
    None
}

fn unsupported_category(m: &str) -> String {
    if m.starts_with("rejected by the trtlens model loader") {
        return "rejected by the trtlens model loader".into();
    }
    for k in ["sequence", "optional", "map", "sparse_tensor"] {
        if m.starts_with(k) || m.contains(&format!("is a{} {k}", if k == "optional" { "n" } else { "" })) {
            return format!("{k} values");
        }
    }
    if let Some(rest) = m.split("element type ").nth(1) {
        return format!("element type {}", rest.split_whitespace().next().unwrap_or(""));
    }
    m.chars().take(60).collect()
}

/// Rewrite an allow-list from this run's failures, grouped by category.
fn bless(kind: RunnerKind, rows: &[(&str, &JobResult)]) -> std::io::Result<()> {
    let mut groups: BTreeMap<String, Vec<(&str, &Outcome)>> = BTreeMap::new();
    for (test, r) in rows {
        if r.outcome.is_failure() {
            groups.entry(category(&r.outcome)).or_default().push((test, &r.outcome));
        }
    }
    let mut s = String::new();
    let _ = writeln!(s, "# Known {} failures of the ONNX backend node tests (onnx 1.17.0).", kind.name());
    s.push_str("# One test per line; `#` starts a comment. A failing test that is not listed is a regression.\n");
    s.push_str("# Regenerate: TRTLENS_CONFORMANCE_BLESS=1 cargo test --test conformance -- --nocapture\n");
    for (cat, tests) in &groups {
        let _ = writeln!(s, "\n# --- {cat} ({})", tests.len());
        for (t, o) in tests {
            // Keep comments stable across machines: no numeric details of a mismatch.
            let full = short_reason(o.message());
            let reason: String = full.split(" (rtol").next().unwrap_or(&full).chars().take(120).collect();
            let _ = writeln!(s, "{t}  # {reason}");
        }
    }
    let path = allow_list_path(kind);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, s)
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

/// Whether a runner can be created at all (the ONNX Runtime library may be missing).
fn probe_runner(kind: RunnerKind, tests: &[(String, PathBuf)]) -> Result<(), String> {
    // Any test whose model loads and whose outputs are tensors will do; prefer a trivial one.
    let candidates = tests.iter().filter(|(n, _)| n == "test_abs").chain(tests.iter());
    for (_, dir) in candidates.take(20) {
        let Ok(model) = Model::load(&dir.join("model.onnx")) else { continue };
        if unsupported_io(&model).is_some() {
            continue;
        }
        let probe = std::panic::catch_unwind(|| {
            runner::create(kind, &model, &model.graph.outputs, &RunnerOptions::default()).map(|_| ())
        });
        return match probe {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(p) => Err(format!("panic: {}", panic_message(p.as_ref()))),
        };
    }
    Ok(())
}

fn parse_runners() -> Result<Vec<RunnerKind>, String> {
    // By default, every runner this build has (the cargo features also apply to this test).
    let default: Vec<&str> = [(cfg!(feature = "tract"), "tract"), (cfg!(feature = "onnxruntime"), "onnxruntime")]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
    let spec = std::env::var("TRTLENS_CONFORMANCE_RUNNERS").unwrap_or_else(|_| default.join(","));
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "tract" => Ok(RunnerKind::Tract),
            "onnxruntime" | "ort" => Ok(RunnerKind::Onnxruntime),
            other => Err(format!("TRTLENS_CONFORMANCE_RUNNERS: unknown runner '{other}'")),
        })
        .collect()
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn onnx_backend_node_tests() {
    let root = match node_test_dir() {
        Ok(d) => d,
        Err(why) => {
            assert!(
                !in_ci(),
                "ONNX node tests not found ({why}); install them with `pip install onnx==1.17.0` \
                 or set TRTLENS_ONNX_NODE_TESTS"
            );
            println!("skipped: ONNX node tests not found ({why}); `pip install onnx==1.17.0` to run them");
            return;
        }
    };
    let filter = std::env::var("TRTLENS_CONFORMANCE_FILTER").ok().filter(|f| !f.is_empty());
    let tests = match list_tests(&root, filter.as_deref()) {
        Ok(t) => t,
        Err(e) => panic!("cannot list the node tests: {e}"),
    };
    let runners = match parse_runners() {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let blessing = env_flag("TRTLENS_CONFORMANCE_BLESS");
    let verbose = env_flag("TRTLENS_CONFORMANCE_VERBOSE");
    let parallel = env_number("TRTLENS_CONFORMANCE_JOBS")
        .map_or_else(|| std::thread::available_parallelism().map_or(2, std::num::NonZero::get), |n| n.max(1) as usize);
    let timeout = Duration::from_secs(env_number("TRTLENS_CONFORMANCE_TIMEOUT").unwrap_or(DEFAULT_TIMEOUT_SECS));
    println!(
        "conformance: {} node tests from {}{}, {parallel} at a time",
        tests.len(),
        root.display(),
        filter.as_deref().map(|f| format!(" (filter '{f}')")).unwrap_or_default()
    );

    let mut problems: Vec<String> = Vec::new();
    let mut active = Vec::new();
    for kind in runners {
        match probe_runner(kind, &tests) {
            Ok(()) => active.push(kind),
            Err(why) => {
                let msg = format!("runner {} unavailable: {why}", kind.name());
                if in_ci() {
                    problems.push(msg);
                } else {
                    println!("skipped: {msg}");
                }
            }
        }
    }

    // Quiet panic hook: runners may panic on odd models; the location is kept for the report.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        PANIC_AT.with(|a| *a.borrow_mut() = at);
    }));
    let jobs: Vec<Job> = active
        .iter()
        .flat_map(|&kind| tests.iter().map(move |(t, d)| Job { kind, test: t.clone(), dir: d.clone() }))
        .collect();
    let started = Instant::now();
    let results = run_jobs(&jobs, parallel, timeout);
    let elapsed = started.elapsed().as_secs_f64();
    std::panic::set_hook(previous_hook);

    let mut summaries = Vec::new();
    for &kind in &active {
        let rows: Vec<(&str, &JobResult)> =
            jobs.iter().zip(&results).filter(|(j, _)| j.kind == kind).map(|(j, r)| (j.test.as_str(), r)).collect();
        let allow = read_allow_list(kind);
        let name = kind.name();
        println!("\n==== {name} ====");

        // Categories of everything that did not pass.
        let mut cats: BTreeMap<String, Vec<(&str, &Outcome)>> = BTreeMap::new();
        for (t, r) in &rows {
            if r.outcome != Outcome::Pass {
                cats.entry(category(&r.outcome)).or_default().push((t, &r.outcome));
            }
        }
        let mut ordered: Vec<_> = cats.iter().collect();
        ordered.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        println!("non-passing tests by category:");
        for (cat, list) in ordered {
            println!("  {:4}  {cat}", list.len());
            let shown = if verbose { list.len() } else { EXAMPLES_PER_CATEGORY };
            for (t, o) in list.iter().take(shown) {
                let msg: String = o.message().chars().take(if verbose { 400 } else { 160 }).collect();
                println!("          {t}: {msg}");
            }
            if list.len() > shown {
                println!("          ... and {} more", list.len() - shown);
            }
        }

        let mut slowest: Vec<&(&str, &JobResult)> = rows.iter().collect();
        slowest.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds));
        println!("slowest tests:");
        for (t, r) in slowest.iter().take(10) {
            println!("  {:7.2}s  {t} ({})", r.seconds, r.outcome.label());
        }

        let slow: Vec<String> = rows
            .iter()
            .filter(|(_, r)| r.seconds > SLOW.as_secs_f64())
            .map(|(t, r)| format!("{t} ({:.0}s)", r.seconds))
            .collect();
        if !slow.is_empty() {
            println!("tests slower than {}s: {}", SLOW.as_secs(), slow.join(", "));
        }

        let passed = rows.iter().filter(|(_, r)| r.outcome == Outcome::Pass).count();
        let unsupported = rows.iter().filter(|(_, r)| matches!(r.outcome, Outcome::Unsupported(_))).count();
        let allowed = rows.iter().filter(|(t, r)| r.outcome.is_failure() && allow.contains(*t)).count();
        let regressions: Vec<&(&str, &JobResult)> =
            rows.iter().filter(|(t, r)| r.outcome.is_failure() && !allow.contains(*t)).collect();
        let now_passing: Vec<&str> =
            rows.iter().filter(|(t, r)| r.outcome == Outcome::Pass && allow.contains(*t)).map(|(t, _)| *t).collect();
        let allowed_unsupported: Vec<&str> = rows
            .iter()
            .filter(|(t, r)| matches!(r.outcome, Outcome::Unsupported(_)) && allow.contains(*t))
            .map(|(t, _)| *t)
            .collect();

        if blessing {
            match bless(kind, &rows) {
                Ok(()) => println!("blessed: wrote {}", allow_list_path(kind).display()),
                Err(e) => problems.push(format!("cannot write {}: {e}", allow_list_path(kind).display())),
            }
        } else {
            for t in &now_passing {
                println!("now passing, remove from allow-list {name}.txt: {t}");
            }
            for t in &allowed_unsupported {
                println!("unsupported-io, remove from allow-list {name}.txt: {t}");
            }
            if filter.is_none() {
                let known: BTreeSet<&str> = rows.iter().map(|(t, _)| *t).collect();
                for t in allow.iter().filter(|t| !known.contains(t.as_str())) {
                    println!("unknown test in allow-list {name}.txt: {t}");
                }
            }
            if !regressions.is_empty() {
                let mut msg = format!("{name}: {} test(s) not in the allow-list did not pass:", regressions.len());
                for (t, r) in &regressions {
                    let m: String = r.outcome.message().chars().take(300).collect();
                    let _ = write!(msg, "\n    {t} [{}] {m}", r.outcome.label());
                }
                println!("{msg}");
                problems.push(msg);
            }
        }
        summaries.push(format!(
            "conformance {name}: {passed} passed, {allowed} allowed failures, {unsupported} unsupported-io, {} total{}",
            rows.len(),
            if regressions.is_empty() || blessing {
                String::new()
            } else {
                format!(", {} REGRESSIONS", regressions.len())
            }
        ));
    }
    println!();
    for s in &summaries {
        println!("{s}");
    }
    println!("conformance: {} jobs in {elapsed:.1}s", jobs.len());
    assert!(problems.is_empty(), "conformance problems:\n{}", problems.join("\n"));
}

#[test]
fn allclose_rules() -> Result<(), trtlens::tensor::TensorError> {
    let f = |v: &[f32]| Tensor::from_f32(&[v.len()], v);
    assert!(compare(&f(&[1.0, f32::NAN, f32::INFINITY])?, &f(&[1.000_5, f32::NAN, f32::INFINITY])?).is_none());
    assert!(compare(&f(&[f32::NAN])?, &f(&[0.0])?).is_some());
    assert!(compare(&f(&[f32::INFINITY])?, &f(&[f32::NEG_INFINITY])?).is_some());
    assert!(compare(&f(&[1e30])?, &f(&[f32::INFINITY])?).is_some());
    assert!(compare(&f(&[1.01])?, &f(&[1.0])?).is_some());
    assert!(compare(&f(&[1.0, 2.0])?, &Tensor::from_f32(&[1, 2], &[1.0, 2.0])?).is_some());
    assert!(compare(&f(&[1.0])?, &Tensor::from_f64(&[1], &[1.0])?).is_some());
    let i = |v: &[i64]| Tensor::from_i64(&[v.len()], v);
    assert!(compare(&i(&[i64::MAX, -3])?, &i(&[i64::MAX, -3])?).is_none());
    assert!(compare(&i(&[i64::MAX])?, &i(&[i64::MAX - 1])?).is_some());
    Ok(())
}

#[test]
fn categories_group_by_cause() {
    let e = |m: &str| category(&Outcome::Error(m.to_string()));
    assert_eq!(
        e(
            r#"runner tract: Translating node #2 "y" Unimplemented(LpPool) ToTypedTranslator: Operator can not be made a TypedOp."#
        ),
        "error: unsupported operator LpPool"
    );
    assert_eq!(
        e(r#"runner tract: Translating node #2 "r" Reduce13 ToTypedTranslator: expected axes as a constant"#),
        "error: needs a constant where the test feeds a graph input"
    );
    assert_eq!(
        e(
            "runner onnxruntime: cannot load model /x/model.onnx into ONNX Runtime: Could not find an implementation for Max(13) node with name ''"
        ),
        "error: unsupported operator Max (for these types)"
    );
    assert_eq!(category(&Outcome::Fail("output 'y': 1/6 values differ (exact)".into())), "fail: wrong values");
}
