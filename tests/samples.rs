//! The committed sample models in `samples/` are exactly what `trtlens::samples` generates, load
//! with the model layer, and stay small.

use std::path::{Path, PathBuf};

use trtlens::model::Model;
use trtlens::samples;

const REGENERATE: &str = "run `cargo run --example make_samples` and commit the files in samples/";
const MAX_BYTES: usize = 1 << 20;

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn committed(file: &str) -> Vec<u8> {
    let path = samples_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}; {REGENERATE}", path.display()))
}

#[test]
fn committed_files_match_the_generator() {
    for s in samples::all() {
        let fresh = samples::encode(&(s.build)());
        let on_disk = committed(s.file);
        assert!(
            on_disk == fresh,
            "samples/{} is stale ({} bytes on disk, {} generated); {REGENERATE}",
            s.file,
            on_disk.len(),
            fresh.len()
        );
    }
}

#[test]
fn generation_is_deterministic() {
    for s in samples::all() {
        assert_eq!(samples::encode(&(s.build)()), samples::encode(&(s.build)()), "{} is not deterministic", s.name);
    }
}

#[test]
fn committed_files_load_and_name_their_culprit() {
    for s in samples::all() {
        let path = samples_dir().join(s.file);
        let model = Model::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let proto_nodes = model.graph_proto().node.len();
        assert!(proto_nodes > 0, "{} has no nodes", s.file);
        assert_eq!(model.graph.nodes.len(), proto_nodes, "{}", s.file);
        assert_eq!(model.opset(), Some(17), "{}", s.file);
        assert_eq!(model.proto.ir_version, Some(8), "{}", s.file);
        assert_eq!(model.proto.producer_name.as_deref(), Some("trtlens-samples"), "{}", s.file);
        let first = model.graph.inputs.first().and_then(|i| model.graph.tensor(i)).and_then(|t| t.ty.elem_type);
        assert_eq!(first, Some(trtlens::model::proto::data_type::FLOAT), "{}: a float32 data input first", s.file);
        assert!(!model.graph.outputs.is_empty(), "{}", s.file);
        for n in &model.graph.nodes {
            assert!(!n.name.is_empty(), "{}: a {} node has no name", s.file, n.op_type);
            for o in &n.outputs {
                let t = model.graph.tensor(o).unwrap_or_else(|| panic!("{}: tensor {o} missing", s.file));
                assert!(t.ty.elem_type.is_some() && t.ty.shape.is_some(), "{}: {o} has no declared type", s.file);
            }
        }
        if let Some(c) = s.culprit {
            assert!(model.graph.nodes.iter().any(|n| n.name == c), "{}: culprit node {c} not in the graph", s.file);
        }

        let from_memory = Model::from_bytes(&path, &samples::encode(&(s.build)()))
            .unwrap_or_else(|e| panic!("{} (generated): {e}", s.file));
        assert_eq!(from_memory.graph.nodes.len(), proto_nodes, "{}", s.file);
    }
}

#[test]
fn committed_files_are_small() {
    for s in samples::all() {
        let len = committed(s.file).len();
        assert!(len < MAX_BYTES, "samples/{} is {len} bytes, over 1 MB", s.file);
    }
}

#[test]
fn samples_dir_holds_exactly_the_samples_and_the_readme_lists_them() {
    let mut on_disk: Vec<String> = std::fs::read_dir(samples_dir())
        .unwrap_or_else(|e| panic!("cannot list samples/: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| Path::new(n).extension().is_some_and(|x| x == "onnx"))
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = samples::all().iter().map(|s| s.file.to_string()).collect();
    expected.sort();
    assert_eq!(on_disk, expected, "samples/*.onnx differs from trtlens::samples::all(); {REGENERATE}");

    let readme = std::fs::read_to_string(samples_dir().join("README.md")).unwrap_or_default();
    for s in samples::all() {
        assert!(readme.contains(s.file), "samples/README.md does not mention {}", s.file);
    }
}

/// The top of the repository has the fixed layout (a stray directory such as `--help/`, written by a
/// tool that took a flag for a path, fails here).
#[test]
fn repository_root_has_the_fixed_layout() {
    const ALLOWED: &[&str] = &[
        ".ci",
        ".git",
        ".gitignore",
        "Cargo.lock",
        "Cargo.toml",
        "README.md",
        "benches",
        "build.rs",
        "clippy.toml",
        "docs",
        "examples",
        "plugins",
        "runs",
        "rustfmt.toml",
        "samples",
        "scripts",
        "sessions",
        "src",
        "target",
        "tests",
        "trtlens.toml",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stray: Vec<String> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("cannot list the repository root: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !ALLOWED.contains(&n.as_str()))
        .collect();
    assert!(stray.is_empty(), "unexpected entries at the repository root: {stray:?}");
}

#[test]
fn run_samples_script_gives_symbolic_samples_their_shape() {
    let script = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join("run-samples"))
        .unwrap_or_else(|e| panic!("cannot read scripts/run-samples: {e}"));
    for s in samples::all().iter().filter(|s| !s.shapes.is_empty()) {
        let args = s.shape_args().join(" ");
        let line = format!("{}) shape=({args})", s.name);
        assert!(script.contains(&line), "scripts/run-samples must run {} with `{args}` ({line})", s.name);
    }
}
