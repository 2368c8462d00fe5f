//! Throughput of the comparison kernel alone (`trtlens::compare::metrics::compare`), no files.
//!
//! `cargo bench --bench kernel [-- ELEMENTS]` (default 16 Mi float32 pairs, 128 MiB) prints, best of
//! five: one thread and all threads, float32 and float16 candidates, and a read-only floor (summing
//! both buffers) as the memory-bandwidth ceiling. Timings are printed, never asserted.

use std::time::Instant;

use trtlens::compare::metrics::{TensorRef, Tolerance, compare};
use trtlens::inputs::rng::Rng;
use trtlens::tensor::DType;

fn best_of(f: &dyn Fn()) -> f64 {
    f(); // warm up
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1 << 24);
    let mut rng = Rng::for_stream(7, 0, "kernel");
    let r: Vec<f32> = (0..n).map(|_| (rng.next_f64() * 20.0 - 10.0) as f32).collect();
    let c: Vec<f32> = r.iter().map(|&x| x + (rng.next_f64() as f32 - 0.5) * 1e-3).collect();
    let rb: Vec<u8> = bytemuck::cast_slice(&r).to_vec();
    let cb: Vec<u8> = bytemuck::cast_slice(&c).to_vec();
    let hb: Vec<u8> = c.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
    drop((r, c));
    let shape = [n];
    let tol = Tolerance::default();
    let rt = TensorRef::new(DType::Float32, &shape, &rb);
    let ct = TensorRef::new(DType::Float32, &shape, &cb);
    let ht = TensorRef::new(DType::Float16, &shape, &hb);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let all = rayon::current_num_threads();

    let floor = best_of(&|| {
        let s: f64 = rb
            .chunks_exact(4)
            .zip(cb.chunks_exact(4))
            .map(|(a, b)| {
                f64::from(f32::from_le_bytes([a[0], a[1], a[2], a[3]]))
                    + f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            })
            .sum();
        std::hint::black_box(s);
    });
    let f32_one = best_of(&|| {
        one.install(|| std::hint::black_box(compare(rt, ct, &tol, 5)));
    });
    let f32_all = best_of(&|| {
        std::hint::black_box(compare(rt, ct, &tol, 5));
    });
    let f16_one = best_of(&|| {
        one.install(|| std::hint::black_box(compare(rt, ht, &tol, 5)));
    });
    let f16_all = best_of(&|| {
        std::hint::black_box(compare(rt, ht, &tol, 5));
    });
    let f32_bytes = (rb.len() + cb.len()) as f64;
    let f16_bytes = (rb.len() + hb.len()) as f64;
    println!("{n} element pairs; {all} rayon threads");
    println!("{:<48} {:>9} {:>9}", "what", "seconds", "GB/s");
    let line = |what: &str, s: f64, bytes: f64| println!("{what:<48} {s:>9.4} {:>9.2}", bytes / s / 1e9);
    line("read + widen both sides only, 1 thread (floor)", floor, f32_bytes);
    line("compare f32/f32, 1 thread", f32_one, f32_bytes);
    line(&format!("compare f32/f32, {all} threads"), f32_all, f32_bytes);
    line("compare f32/f16, 1 thread", f16_one, f16_bytes);
    line(&format!("compare f32/f16, {all} threads"), f16_all, f16_bytes);
    Ok(())
}
