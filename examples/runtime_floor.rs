//! The embedded runner's own peak memory on a model, capturing only the graph outputs (no tensor
//! marked, so tract fuses and frees as it likes), or every tensor with `--all`: the floor a
//! streamed capture run is measured against in `docs/benchmarks.md`.
//!
//! ```text
//! cargo run --release --example runtime_floor -- MODEL.onnx [NAME:1x3x640x640 ...] [--all]
//! ```
//!
//! Peak RSS comes from the caller (`/usr/bin/time -v`, or Python's `resource` as the scale
//! benchmark does); this prints how many tensors came back.

use std::collections::BTreeMap;

use trtlens::runner::Runner as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_path = args.first().ok_or("usage: runtime_floor MODEL.onnx [NAME:DIMS ...] [--all]")?;
    let all = args.iter().any(|a| a == "--all");
    let mut shapes = BTreeMap::new();
    for s in args.iter().skip(1).filter(|a| *a != "--all") {
        let (name, dims) = trtlens::inputs::parse_shape(s)?;
        shapes.insert(name, dims);
    }
    let model = trtlens::model::Model::load(std::path::Path::new(model_path))?;
    let mut rng = trtlens::inputs::rng::Rng::new(1);
    let inputs: Vec<(String, trtlens::tensor::Tensor)> = trtlens::inputs::input_specs(&model, &shapes)?
        .into_iter()
        .map(|(name, dtype, shape)| {
            let t = trtlens::inputs::random_tensor(&mut rng, dtype, &shape, None);
            (name, t)
        })
        .collect();
    let capture = if all { trtlens::run::capture_list(&model) } else { model.graph.outputs.clone() };
    let mut runner = trtlens::runner::tract::TractRunner::new(&model, &capture)?;
    let out = runner.run(&inputs)?;
    println!("{} tensors captured", out.tensors.len());
    Ok(())
}
