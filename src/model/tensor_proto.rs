//! Conversion between ONNX `TensorProto` and [`Tensor`], including external data.

use std::path::Path;

use half::f16;

use super::proto::{StringStringEntryProto, TensorProto, data_type};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor, numel};

/// Where a tensor's external data lives (`location`, `offset`, `length` entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRef {
    /// File path relative to the model's directory.
    pub location: String,
    /// Byte offset into the file.
    pub offset: u64,
    /// Byte count, if given.
    pub length: Option<u64>,
}

/// The external-data reference of a tensor, if its data lives outside the model file.
pub fn external_ref(t: &TensorProto) -> Result<Option<ExternalRef>> {
    if t.data_location != Some(super::proto::DATA_LOCATION_EXTERNAL) {
        return Ok(None);
    }
    let get = |k: &str| {
        t.external_data
            .iter()
            .find(|e: &&StringStringEntryProto| e.key.as_deref() == Some(k))
            .and_then(|e| e.value.clone())
    };
    let bad = |m: String| Error::input(format!("initializer '{}': {m}", t.tensor_name()));
    let location = get("location").ok_or_else(|| bad("external data without a 'location' entry".into()))?;
    let parse = |k: &str| -> Result<Option<u64>> {
        get(k)
            .map(|v| v.parse::<u64>().map_err(|_| bad(format!("external data '{k}' is not a number: {v}"))))
            .transpose()
    };
    Ok(Some(ExternalRef { location, offset: parse("offset")?.unwrap_or(0), length: parse("length")? }))
}

/// Read the bytes of an external-data reference, relative to `base_dir`.
pub fn read_external(base_dir: &Path, name: &str, r: &ExternalRef) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let rel = Path::new(&r.location);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(Error::model(
            base_dir.join(rel),
            format!("initializer '{name}': external data location must stay inside the model directory"),
        ));
    }
    let path = base_dir.join(rel);
    let mut f = std::fs::File::open(&path).map_err(|e| {
        Error::model(
            &path,
            format!(
                "external data for initializer '{name}' cannot be opened ({e}); keep the weight file next to the model"
            ),
        )
    })?;
    let file_len = f.metadata().map_or(0, |m| m.len());
    let length = r.length.unwrap_or(file_len.saturating_sub(r.offset));
    if r.offset.checked_add(length).is_none_or(|end| end > file_len) {
        return Err(Error::model(
            &path,
            format!(
                "external data for initializer '{name}' wants bytes {}..{} but the file has {file_len}: truncated weight file?",
                r.offset,
                r.offset.saturating_add(length)
            ),
        ));
    }
    f.seek(SeekFrom::Start(r.offset)).map_err(|e| Error::model(&path, e.to_string()))?;
    let mut buf = vec![0; usize::try_from(length).map_err(|_| Error::model(&path, "external data too large"))?];
    f.read_exact(&mut buf).map_err(|e| Error::model(&path, e.to_string()))?;
    Ok(buf)
}

/// Decode a `TensorProto` into a [`Tensor`]. `base_dir` resolves external data.
pub fn to_tensor(t: &TensorProto, base_dir: Option<&Path>) -> Result<Tensor> {
    let name = t.tensor_name();
    let dt_num = t.data_type.unwrap_or(data_type::UNDEFINED);
    let dtype = DType::from_onnx(dt_num).ok_or_else(|| {
        Error::input(format!("tensor '{name}': element type {} is not supported", data_type::name(dt_num)))
    })?;
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        shape.push(usize::try_from(d).map_err(|_| Error::input(format!("tensor '{name}': negative dimension {d}")))?);
    }
    let n = numel(&shape);
    let bytes: Vec<u8> = if let Some(r) = external_ref(t)? {
        let dir = base_dir
            .ok_or_else(|| Error::input(format!("tensor '{name}' has external data but no model directory")))?;
        read_external(dir, name, &r)?
    } else if let Some(raw) = &t.raw_data {
        raw.clone()
    } else {
        typed_fields_to_bytes(t, dtype, n)?
    };
    Tensor::from_bytes(dtype, shape, bytes).map_err(|e| Error::input(format!("tensor '{name}': {e}")))
}

fn typed_fields_to_bytes(t: &TensorProto, dtype: DType, n: usize) -> Result<Vec<u8>> {
    let name = t.tensor_name();
    let mut out = Vec::with_capacity(n * dtype.size());
    let count = match dtype {
        DType::Float32 => {
            t.float_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            t.float_data.len()
        }
        DType::Float64 => {
            t.double_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            t.double_data.len()
        }
        DType::Int64 => {
            t.int64_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            t.int64_data.len()
        }
        DType::Uint32 | DType::Uint64 => {
            for v in &t.uint64_data {
                if dtype == DType::Uint32 {
                    out.extend_from_slice(&(*v as u32).to_le_bytes());
                } else {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            t.uint64_data.len()
        }
        // int32_data carries every type of 32 bits or fewer; half types as their bit patterns.
        DType::Int32
        | DType::Int16
        | DType::Int8
        | DType::Uint16
        | DType::Uint8
        | DType::Bool
        | DType::Float16
        | DType::Bfloat16 => {
            for &v in &t.int32_data {
                match dtype.size() {
                    4 => out.extend_from_slice(&v.to_le_bytes()),
                    2 => out.extend_from_slice(&(v as u16).to_le_bytes()),
                    _ => out.push(v as u8),
                }
            }
            t.int32_data.len()
        }
    };
    if count != n {
        return Err(Error::input(format!("tensor '{name}': shape needs {n} values, the proto holds {count}")));
    }
    Ok(out)
}

/// Encode a [`Tensor`] as a `TensorProto` with `raw_data`.
#[must_use]
pub fn from_tensor(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(t.dtype().onnx()),
        name: Some(name.to_string()),
        raw_data: Some(t.bytes().to_vec()),
        ..TensorProto::default()
    }
}

/// Convert f32 values to f16 storage (round to nearest even), for FP16 initializers.
#[must_use]
pub fn f32_to_f16_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_typed_fields_agree() -> Result<()> {
        let typed = TensorProto {
            dims: vec![2],
            data_type: Some(data_type::FLOAT),
            float_data: vec![1.5, -2.0],
            ..Default::default()
        };
        let a = to_tensor(&typed, None)?;
        let raw = from_tensor("x", &a);
        assert_eq!(to_tensor(&raw, None)?, a);
        Ok(())
    }

    #[test]
    fn half_in_int32_data() -> Result<()> {
        let t = TensorProto {
            dims: vec![1],
            data_type: Some(data_type::FLOAT16),
            int32_data: vec![i32::from(f16::from_f32(2.5).to_bits())],
            ..Default::default()
        };
        assert_eq!(to_tensor(&t, None)?.to_f64_vec(), vec![2.5]);
        Ok(())
    }

    #[test]
    fn count_mismatch_is_an_error() {
        let t =
            TensorProto { dims: vec![3], data_type: Some(data_type::INT64), int64_data: vec![1], ..Default::default() };
        assert!(to_tensor(&t, None).is_err());
    }
}
