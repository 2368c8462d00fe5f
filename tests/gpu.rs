//! The GPU side, on a machine with an NVIDIA GPU and driver (opt-in: `TRTLENS_GPU_TESTS=1 cargo test
//! --test gpu -- --nocapture`; elsewhere it says `skipped`). Every dtype a TensorRT engine can output
//! makes the device round trip a TensorRT run's outputs make: copied to the GPU, copied back one
//! at a time through the streaming run-store writer, read back from the run directory bit for bit.
//! `trtlens doctor` lists the GPUs with their compute capability.
#![cfg(feature = "cuda")]

mod common;

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt as _;
use trtlens::runner::{TensorSink, TensorSpec, Tensors};
use trtlens::store::{RunDir, RunWriter};
use trtlens::tensor::{DType, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn enabled() -> bool {
    let on = std::env::var("TRTLENS_GPU_TESTS").is_ok_and(|v| v == "1");
    if !on {
        eprintln!("skipped: set TRTLENS_GPU_TESTS=1 on a machine with an NVIDIA GPU");
    }
    on
}

/// Writes streamed tensors into a run directory iteration (what `trtlens run` does for TensorRT).
struct Sink<'a> {
    writer: &'a RunWriter,
    inputs: &'a Tensors,
    open: Option<(trtlens::store::SafetensorsStream, trtlens::store::IterationEntry)>,
}

impl TensorSink for Sink<'_> {
    fn begin(&mut self, specs: &[TensorSpec]) -> trtlens::Result<()> {
        self.open = Some(self.writer.stream_iteration(0, self.inputs, specs, 0.0)?);
        Ok(())
    }
    fn put(&mut self, name: &str, data: &[u8]) -> trtlens::Result<()> {
        match self.open.as_mut() {
            Some((s, _)) => s.write(name, data),
            None => Err(trtlens::Error::store("sink", "not begun")),
        }
    }
}

#[test]
fn every_output_dtype_survives_the_device_round_trip_into_the_run_store() -> TestResult {
    if !enabled() {
        return Ok(());
    }
    let device = trtlens::trt::cuda::Device::open(0)?;
    let mut rng = trtlens::inputs::rng::Rng::for_stream(7, 0, "gpu");
    let mut tensors: Tensors = Vec::new();
    for (i, dtype) in [
        DType::Float32,
        DType::Float16,
        DType::Bfloat16,
        DType::Int64,
        DType::Int32,
        DType::Int8,
        DType::Bool,
        DType::Uint8,
    ]
    .into_iter()
    .enumerate()
    {
        // Odd sizes, a scalar, an empty tensor and a large one (several MB).
        let shape = match i {
            0 => vec![1024, 1031],
            1 => vec![3, 5, 7],
            2 => vec![],
            3 => vec![0, 4],
            _ => vec![17, 3],
        };
        tensors.push((
            format!("t_{}", dtype.name()),
            trtlens::inputs::random_tensor(&mut rng, dtype, &shape, Some((-1e4, 1e4))),
        ));
    }
    // Special values survive bit for bit.
    let special: Vec<half::f16> = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 65504.0, -0.0, 6e-8]
        .iter()
        .map(|v| half::f16::from_f32(*v))
        .collect();
    tensors.push(("special_f16".into(), Tensor::from_f16(&[6], &special)?));
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("run");
    let writer = RunWriter::create(&dir)?;
    let inputs: Tensors = vec![("x".into(), Tensor::from_f32(&[1], &[0.0])?)];
    let mut sink = Sink { writer: &writer, inputs: &inputs, open: None };
    trtlens::trt::cuda::round_trip(&device, &tensors, &mut sink)?;
    let (stream, entry) = sink.open.take().ok_or("nothing streamed")?;
    stream.finish()?;
    let manifest_dir = tmp.path().join("ref");
    // A manifest from a real (tract) run, pointed at the streamed iteration.
    let status = Command::cargo_bin("trtlens")?
        .args(["run", &common::sample("mlp_overflow").display().to_string(), "--runner", "tract", "--save"])
        .arg(&manifest_dir)
        .status()?;
    assert!(status.success());
    let mut manifest = RunDir::open(&manifest_dir)?.manifest;
    manifest.iterations = vec![entry];
    writer.finish(&manifest)?;
    let mapped = RunDir::open(&dir)?.tensors(0)?;
    for (name, t) in &tensors {
        let back = mapped.get(name)?.ok_or_else(|| format!("{name} missing"))?;
        assert_eq!(back.dtype(), t.dtype(), "{name}");
        assert_eq!(back.shape(), t.shape(), "{name}");
        assert_eq!(back.bytes(), t.bytes(), "{name} bit for bit");
    }
    eprintln!("round trip: {} tensors, every dtype bit-exact", tensors.len());
    Ok(())
}

#[test]
fn doctor_lists_the_gpus_and_what_runs_on_them() -> TestResult {
    if !enabled() {
        return Ok(());
    }
    let out = Command::cargo_bin("trtlens")?.arg("doctor").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success());
    assert!(text.contains("GPU 0: ") && text.contains("compute capability"), "{text}");
    assert!(!text.contains("CUDA driver: none"), "{text}");
    Ok(())
}
