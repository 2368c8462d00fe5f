//! The prost ONNX types lose nothing: decoding and re-encoding a model written by the reference
//! protobuf implementation gives back the same bytes (fields in tag order, proto2 presence kept,
//! packing as declared in onnx.proto). Checked on every ONNX backend node test model (written by
//! the `onnx` Python package) and every bundled sample.

mod common;
use std::path::Path;

use prost::Message;
use trtlens::model::proto::ModelProto;

fn roundtrips(path: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let m = ModelProto::decode(bytes.as_slice())?;
    Ok(m.encode_to_vec() == bytes)
}

#[test]
fn node_test_models_round_trip_byte_for_byte() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(dir) = common::node_test_dir() else {
        assert!(!common::in_ci(), "CI must install onnx==1.17.0 (pip install -r .ci/requirements.txt)");
        println!("skipped: onnx backend node tests not found");
        return Ok(());
    };
    let mut total = 0;
    let mut differ = Vec::new();
    for e in std::fs::read_dir(&dir)? {
        let model = e?.path().join("model.onnx");
        if model.is_file() {
            total += 1;
            if !roundtrips(&model)? {
                differ.push(model.display().to_string());
            }
        }
    }
    println!("round trip: {} of {total} node test models byte-identical", total - differ.len());
    assert!(total > 1000, "expected the full node test corpus, found {total}");
    assert!(differ.is_empty(), "re-encoding changed these models: {differ:#?}");
    Ok(())
}

#[test]
fn samples_round_trip() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "onnx") {
            assert!(roundtrips(&p)?, "{}", p.display());
        }
    }
    Ok(())
}

/// Real exported models (`PyTorch`, `PaddlePaddle`, spox) when `TRTLENS_REAL_MODELS` names a folder of
/// them (see `scripts/real-models`).
#[test]
fn real_models_round_trip() -> Result<(), Box<dyn std::error::Error>> {
    let Some(dir) = std::env::var_os("TRTLENS_REAL_MODELS") else {
        println!("skipped: TRTLENS_REAL_MODELS not set");
        return Ok(());
    };
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "onnx") {
            assert!(roundtrips(&p)?, "re-encoding changed {}", p.display());
            n += 1;
        }
    }
    println!("round trip: {n} real models byte-identical");
    Ok(())
}
