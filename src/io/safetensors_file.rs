//! safetensors files as input data (one iteration, one tensor per input).
//!
//! Tensors are returned in **file order**: the order of their data in the file (increasing data
//! offsets), not the order of the JSON header, which safetensors readers treat as unordered.
//! Files written by the safetensors libraries lay data out by dtype alignment and then by name,
//! so this order is deterministic but not the model's input order: match tensors by name.
//!
//! The file is read into memory rather than memory-mapped: every tensor is copied into an owned
//! [`Tensor`] anyway, and mapping a file needs `unsafe`, which this crate denies.

use std::path::Path;

use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

use crate::error::{Error, Result};
use crate::runner::Tensors;
use crate::tensor::{DType, Tensor};

/// Read the tensors of a safetensors file held in memory, in file order.
pub fn read_safetensors(bytes: &[u8]) -> Result<Tensors> {
    let (header_len, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| Error::input(format!("not a valid safetensors file: {e}")))?;
    let data = &bytes[8 + header_len..];
    let mut out = Vec::new();
    for name in metadata.offset_keys() {
        let info = metadata
            .info(&name)
            .ok_or_else(|| Error::input(format!("safetensors header lists '{name}' without its data")))?;
        let Some(dtype) = DType::from_safetensors(info.dtype) else {
            return Err(Error::input(format!(
                "safetensors tensor '{name}' has dtype {:?}, which trtlens does not handle \
                 (it reads F16/BF16/F32/F64, I8-I64, U8-U64 and BOOL)",
                info.dtype
            )));
        };
        let (start, end) = info.data_offsets;
        let mut bytes = data[start..end].to_vec();
        if dtype == DType::Bool {
            for b in &mut bytes {
                *b = u8::from(*b != 0);
            }
        }
        let tensor = Tensor::from_bytes(dtype, info.shape.clone(), bytes)
            .map_err(|e| Error::input(format!("safetensors tensor '{name}': {e}")))?;
        out.push((name, tensor));
    }
    Ok(out)
}

/// Read a safetensors file, in file order. Errors name the file.
pub fn read_safetensors_file(path: &Path) -> Result<Tensors> {
    let bytes = super::read_file(path)?;
    read_safetensors(&bytes).map_err(|e| Error::input(format!("{}: {e}", path.display())))
}

/// Serialize tensors as a safetensors file (the safetensors crate decides the data layout).
pub fn write_safetensors(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, t)| {
            TensorView::new(t.dtype().safetensors(), t.shape().to_vec(), t.bytes())
                .map(|v| (name.as_str(), v))
                .map_err(|e| Error::input(format!("cannot write safetensors tensor '{name}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| Error::input(format!("cannot write safetensors: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_handmade_fixture_in_file_order() -> Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/io/inputs.safetensors");
        let tensors = read_safetensors_file(&path)?;
        let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["input_ids", "pixels", "mask", "scale", "bf"]);
        let get = |i: usize| &tensors[i].1;
        assert_eq!((get(0).dtype(), get(0).shape()), (DType::Int64, &[2][..]));
        assert_eq!([get(0).get_i64(0), get(0).get_i64(1)], [7, -(1i64 << 50)]);
        assert_eq!((get(1).dtype(), get(1).shape()), (DType::Float32, &[2, 2][..]));
        assert_eq!(get(1).to_f64_vec(), [0.0, 0.5, -1.0, 3.25]);
        assert_eq!((get(2).dtype(), get(2).bytes()), (DType::Bool, &[1, 0, 1][..]));
        assert_eq!((get(3).dtype(), get(3).shape(), get(3).to_f64_vec()), (DType::Float16, &[][..], vec![0.5]));
        assert_eq!((get(4).dtype(), get(4).to_f64_vec()), (DType::Bfloat16, vec![1.5, -2.0]));
        Ok(())
    }

    #[test]
    fn round_trips_every_dtype() -> Result<()> {
        let tensors: Tensors = DType::ALL
            .iter()
            .enumerate()
            .map(|(i, &d)| (format!("t{i:02}"), Tensor::zeros(d, vec![i % 4, 3])))
            .collect();
        let mut back = read_safetensors(&write_safetensors(&tensors)?)?;
        back.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(back, tensors);
        Ok(())
    }

    #[test]
    fn clear_errors() -> Result<()> {
        let bytes = write_safetensors(&[("x".into(), Tensor::zeros(DType::Float32, vec![4]))])?;
        let e = read_safetensors(&bytes[..bytes.len() - 1]).map(|_| ()).map_err(|e| e.to_string());
        assert!(e.as_ref().is_err_and(|e| e.starts_with("not a valid safetensors file")), "{e:?}");
        let header = br#"{"q":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#;
        let mut fp8 = (header.len() as u64).to_le_bytes().to_vec();
        fp8.extend_from_slice(header);
        fp8.extend_from_slice(&[0, 0]);
        let e = read_safetensors(&fp8).map(|_| ()).map_err(|e| e.to_string());
        assert!(e.as_ref().is_err_and(|e| e.contains("'q' has dtype F8_E4M3")), "{e:?}");
        Ok(())
    }
}
