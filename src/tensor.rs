//! Owned, dtype-tagged tensors: the currency between inputs, runners, the store and comparison.
//!
//! Data is kept as little-endian bytes in row-major (C) order, so a tensor can be written to a
//! safetensors file or a `.npy` array without conversion and read back bit for bit.

use half::{bf16, f16};
use serde::{Deserialize, Serialize};

use crate::model::proto::data_type;

/// Element types a tensor can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE single.
    Float32,
    /// IEEE half.
    Float16,
    /// bfloat16.
    Bfloat16,
    /// IEEE double.
    Float64,
    /// Signed 8-bit.
    Int8,
    /// Signed 16-bit.
    Int16,
    /// Signed 32-bit.
    Int32,
    /// Signed 64-bit.
    Int64,
    /// Unsigned 8-bit.
    Uint8,
    /// Unsigned 16-bit.
    Uint16,
    /// Unsigned 32-bit.
    Uint32,
    /// Unsigned 64-bit.
    Uint64,
    /// One byte per element, 0 or 1.
    Bool,
}

impl DType {
    /// Every dtype, for table-driven code and tests.
    pub const ALL: [DType; 13] = [
        DType::Float32,
        DType::Float16,
        DType::Bfloat16,
        DType::Float64,
        DType::Int8,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::Uint8,
        DType::Uint16,
        DType::Uint32,
        DType::Uint64,
        DType::Bool,
    ];

    /// Bytes per element.
    #[must_use]
    pub fn size(self) -> usize {
        match self {
            DType::Int8 | DType::Uint8 | DType::Bool => 1,
            DType::Float16 | DType::Bfloat16 | DType::Int16 | DType::Uint16 => 2,
            DType::Float32 | DType::Int32 | DType::Uint32 => 4,
            DType::Float64 | DType::Int64 | DType::Uint64 => 8,
        }
    }

    /// The name used in reports and manifests (numpy's spelling).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Float16 => "float16",
            DType::Bfloat16 => "bfloat16",
            DType::Float64 => "float64",
            DType::Int8 => "int8",
            DType::Int16 => "int16",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::Uint8 => "uint8",
            DType::Uint16 => "uint16",
            DType::Uint32 => "uint32",
            DType::Uint64 => "uint64",
            DType::Bool => "bool",
        }
    }

    /// Parse a name as written by [`DType::name`] (also accepts a few common aliases).
    #[must_use]
    pub fn from_name(s: &str) -> Option<DType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "float32" | "f32" | "float" | "fp32" => DType::Float32,
            "float16" | "f16" | "half" | "fp16" => DType::Float16,
            "bfloat16" | "bf16" => DType::Bfloat16,
            "float64" | "f64" | "double" => DType::Float64,
            "int8" | "i8" => DType::Int8,
            "int16" | "i16" => DType::Int16,
            "int32" | "i32" => DType::Int32,
            "int64" | "i64" => DType::Int64,
            "uint8" | "u8" => DType::Uint8,
            "uint16" | "u16" => DType::Uint16,
            "uint32" | "u32" => DType::Uint32,
            "uint64" | "u64" => DType::Uint64,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    /// True for floating-point types.
    #[must_use]
    pub fn is_float(self) -> bool {
        matches!(self, DType::Float32 | DType::Float16 | DType::Bfloat16 | DType::Float64)
    }

    /// The ONNX `TensorProto.DataType` number.
    #[must_use]
    pub fn onnx(self) -> i32 {
        match self {
            DType::Float32 => data_type::FLOAT,
            DType::Float16 => data_type::FLOAT16,
            DType::Bfloat16 => data_type::BFLOAT16,
            DType::Float64 => data_type::DOUBLE,
            DType::Int8 => data_type::INT8,
            DType::Int16 => data_type::INT16,
            DType::Int32 => data_type::INT32,
            DType::Int64 => data_type::INT64,
            DType::Uint8 => data_type::UINT8,
            DType::Uint16 => data_type::UINT16,
            DType::Uint32 => data_type::UINT32,
            DType::Uint64 => data_type::UINT64,
            DType::Bool => data_type::BOOL,
        }
    }

    /// From an ONNX `TensorProto.DataType` number; `None` for types this tool cannot hold
    /// (strings, complex, 8/4-bit floats and ints).
    #[must_use]
    pub fn from_onnx(t: i32) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.onnx() == t)
    }

    /// The numpy array-protocol descriptor (`<f4`, `|b1`, ...).
    #[must_use]
    pub fn npy_descr(self) -> &'static str {
        match self {
            DType::Float32 => "<f4",
            DType::Float16 => "<f2",
            DType::Bfloat16 => "<V2",
            DType::Float64 => "<f8",
            DType::Int8 => "|i1",
            DType::Int16 => "<i2",
            DType::Int32 => "<i4",
            DType::Int64 => "<i8",
            DType::Uint8 => "|u1",
            DType::Uint16 => "<u2",
            DType::Uint32 => "<u4",
            DType::Uint64 => "<u8",
            DType::Bool => "|b1",
        }
    }

    /// The safetensors dtype.
    #[must_use]
    pub fn safetensors(self) -> safetensors::Dtype {
        use safetensors::Dtype as S;
        match self {
            DType::Float32 => S::F32,
            DType::Float16 => S::F16,
            DType::Bfloat16 => S::BF16,
            DType::Float64 => S::F64,
            DType::Int8 => S::I8,
            DType::Int16 => S::I16,
            DType::Int32 => S::I32,
            DType::Int64 => S::I64,
            DType::Uint8 => S::U8,
            DType::Uint16 => S::U16,
            DType::Uint32 => S::U32,
            DType::Uint64 => S::U64,
            DType::Bool => S::BOOL,
        }
    }

    /// From a safetensors dtype.
    #[must_use]
    pub fn from_safetensors(d: safetensors::Dtype) -> Option<DType> {
        DType::ALL.into_iter().find(|x| x.safetensors() == d)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors building a tensor from parts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TensorError {
    /// The byte count does not match shape × element size.
    #[error("{dtype} tensor of shape {shape:?} needs {expected} bytes, got {got}")]
    Size {
        /// Element type.
        dtype: DType,
        /// Shape.
        shape: Vec<usize>,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
}

/// A dense, owned tensor.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({} {:?}, {} bytes)", self.dtype, self.shape, self.data.len())
    }
}

/// Number of elements of a shape (1 for a scalar).
#[must_use]
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// `1x3x224x224` (or `scalar`).
#[must_use]
pub fn shape_string(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "scalar".to_string();
    }
    shape.iter().map(ToString::to_string).collect::<Vec<_>>().join("x")
}

macro_rules! typed_ctor {
    ($fn:ident, $t:ty, $dt:expr) => {
        /// Build from typed values (row-major).
        pub fn $fn(shape: &[usize], values: &[$t]) -> Result<Tensor, TensorError> {
            let mut data = Vec::with_capacity(values.len() * std::mem::size_of::<$t>());
            for v in values {
                data.extend_from_slice(&v.to_le_bytes());
            }
            Tensor::from_bytes($dt, shape.to_vec(), data)
        }
    };
}

impl Tensor {
    /// Build from little-endian bytes; checks the size.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, data: Vec<u8>) -> Result<Tensor, TensorError> {
        let expected = numel(&shape) * dtype.size();
        if expected != data.len() {
            return Err(TensorError::Size { dtype, shape, expected, got: data.len() });
        }
        Ok(Tensor { dtype, shape, data })
    }

    /// A tensor of zeros.
    #[must_use]
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Tensor {
        let n = numel(&shape) * dtype.size();
        Tensor { dtype, shape, data: vec![0; n] }
    }

    typed_ctor!(from_f32, f32, DType::Float32);
    typed_ctor!(from_f64, f64, DType::Float64);
    typed_ctor!(from_i64, i64, DType::Int64);
    typed_ctor!(from_i32, i32, DType::Int32);
    typed_ctor!(from_f16, f16, DType::Float16);

    /// Build a bool tensor.
    pub fn from_bool(shape: &[usize], values: &[bool]) -> Result<Tensor, TensorError> {
        Tensor::from_bytes(DType::Bool, shape.to_vec(), values.iter().map(|&b| u8::from(b)).collect())
    }

    /// Element type.
    #[must_use]
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Shape (empty for a scalar).
    #[must_use]
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        numel(&self.shape)
    }

    /// True when the tensor has no elements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Raw little-endian bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Consume into raw bytes.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// Element `i` widened to f64 (ints and bools exactly up to 2^53; bool as 0/1).
    #[must_use]
    pub fn get_f64(&self, i: usize) -> f64 {
        element_f64(self.dtype, &self.data, i)
    }

    /// All elements widened to f64.
    #[must_use]
    pub fn to_f64_vec(&self) -> Vec<f64> {
        (0..self.len()).map(|i| self.get_f64(i)).collect()
    }

    /// All elements as f32 (for floats; ints are converted numerically).
    #[must_use]
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.dtype {
            DType::Float32 => self.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            _ => (0..self.len()).map(|i| self.get_f64(i) as f32).collect(),
        }
    }

    /// Element `i` as i64, for integer and bool tensors (floats are truncated).
    #[must_use]
    pub fn get_i64(&self, i: usize) -> i64 {
        let b = &self.data;
        match self.dtype {
            DType::Int8 => i64::from(b[i] as i8),
            DType::Uint8 | DType::Bool => i64::from(b[i]),
            DType::Int16 => i64::from(i16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
            DType::Uint16 => i64::from(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
            DType::Int32 => i64::from(i32::from_le_bytes(arr4(b, i))),
            DType::Uint32 => i64::from(u32::from_le_bytes(arr4(b, i))),
            DType::Int64 => i64::from_le_bytes(arr8(b, i)),
            DType::Uint64 => u64::from_le_bytes(arr8(b, i)) as i64,
            _ => self.get_f64(i) as i64,
        }
    }

    /// Count of NaN and infinite elements (0 for integer types).
    #[must_use]
    pub fn count_nonfinite(&self) -> (usize, usize) {
        if !self.dtype.is_float() {
            return (0, 0);
        }
        let mut nan = 0;
        let mut inf = 0;
        for i in 0..self.len() {
            let v = self.get_f64(i);
            if v.is_nan() {
                nan += 1;
            } else if v.is_infinite() {
                inf += 1;
            }
        }
        (nan, inf)
    }
}

fn arr4(b: &[u8], i: usize) -> [u8; 4] {
    [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]
}

fn arr8(b: &[u8], i: usize) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[8 * i..8 * i + 8]);
    a
}

/// Element `i` of little-endian data of type `dtype`, widened to f64.
#[must_use]
pub fn element_f64(dtype: DType, b: &[u8], i: usize) -> f64 {
    match dtype {
        DType::Float32 => f64::from(f32::from_le_bytes(arr4(b, i))),
        DType::Float16 => f64::from(f16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]]))),
        DType::Bfloat16 => f64::from(bf16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]]))),
        DType::Float64 => f64::from_le_bytes(arr8(b, i)),
        DType::Int8 => f64::from(b[i] as i8),
        DType::Uint8 | DType::Bool => f64::from(b[i]),
        DType::Int16 => f64::from(i16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
        DType::Uint16 => f64::from(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
        DType::Int32 => f64::from(i32::from_le_bytes(arr4(b, i))),
        DType::Uint32 => f64::from(u32::from_le_bytes(arr4(b, i))),
        DType::Int64 => i64::from_le_bytes(arr8(b, i)) as f64,
        DType::Uint64 => u64::from_le_bytes(arr8(b, i)) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_tables_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_onnx(d.onnx()), Some(d));
            assert_eq!(DType::from_name(d.name()), Some(d));
            assert_eq!(DType::from_safetensors(d.safetensors()), Some(d));
        }
        assert_eq!(DType::from_onnx(data_type::STRING), None);
    }

    #[test]
    fn size_is_checked() {
        let e = Tensor::from_bytes(DType::Float32, vec![2, 3], vec![0; 20]).expect_err("size mismatch");
        assert_eq!(e.to_string(), "float32 tensor of shape [2, 3] needs 24 bytes, got 20");
    }

    #[test]
    fn widening_is_exact() -> Result<(), TensorError> {
        let t = Tensor::from_f16(&[3], &[f16::from_f32(65504.0), f16::INFINITY, f16::from_f32(-0.5)])?;
        assert_eq!(t.to_f64_vec(), vec![65504.0, f64::INFINITY, -0.5]);
        assert_eq!(t.count_nonfinite(), (0, 1));
        let i = Tensor::from_i64(&[2], &[-3, 1 << 40])?;
        assert_eq!(i.get_i64(1), 1 << 40);
        assert_eq!(i.get_f64(0), -3.0);
        Ok(())
    }
}
