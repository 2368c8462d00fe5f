//! Conversion between our [`Tensor`] (dtype-tagged little-endian bytes) and ONNX Runtime values.

use std::fmt::Debug;

use ::ort::value::{DynValue, PrimitiveTensorElementType, Tensor as OrtTensor, TensorElementType, ValueType};

use crate::model::proto::data_type;
use crate::runner::one_line;
use crate::tensor::{DType, Tensor};

/// The ONNX `TensorProto.DataType` number of an ORT element type (the C enum uses the same numbers).
fn onnx_number(ty: TensorElementType) -> i32 {
    ::ort::sys::ONNXTensorElementDataType::from(ty) as i32
}

/// A readable name for an ORT element type, in ONNX spelling where we know it.
fn type_name(ty: TensorElementType) -> String {
    match data_type::name(onnx_number(ty)) {
        "unknown" => ty.to_string(),
        n => n.to_string(),
    }
}

fn typed<T>(t: &Tensor) -> ::ort::Result<DynValue>
where
    T: bytemuck::Pod + PrimitiveTensorElementType + Debug,
{
    let v: Vec<T> = bytemuck::pod_collect_to_vec(t.bytes());
    Ok(OrtTensor::from_array((shape_i64(t), v))?.into_dyn())
}

fn shape_i64(t: &Tensor) -> Vec<i64> {
    t.shape().iter().map(|&d| d as i64).collect()
}

/// Copy our tensor into an ORT-owned CPU tensor of the same element type and shape.
pub fn to_ort(t: &Tensor) -> ::ort::Result<DynValue> {
    match t.dtype() {
        DType::Float32 => typed::<f32>(t),
        DType::Float16 => typed::<half::f16>(t),
        DType::Bfloat16 => typed::<half::bf16>(t),
        DType::Float64 => typed::<f64>(t),
        DType::Int8 => typed::<i8>(t),
        DType::Int16 => typed::<i16>(t),
        DType::Int32 => typed::<i32>(t),
        DType::Int64 => typed::<i64>(t),
        DType::Uint8 => typed::<u8>(t),
        DType::Uint16 => typed::<u16>(t),
        DType::Uint32 => typed::<u32>(t),
        DType::Uint64 => typed::<u64>(t),
        DType::Bool => {
            let v: Vec<bool> = t.bytes().iter().map(|&b| b != 0).collect();
            Ok(OrtTensor::from_array((shape_i64(t), v))?.into_dyn())
        }
    }
}

fn dims(shape: &[i64]) -> Result<Vec<usize>, String> {
    shape.iter().map(|&d| usize::try_from(d).map_err(|_| format!("ONNX Runtime returned dimension {d}"))).collect()
}

fn raw<T>(v: &DynValue) -> Result<(Vec<usize>, &[u8]), String>
where
    T: bytemuck::Pod + PrimitiveTensorElementType,
{
    let (shape, data) = v.try_extract_tensor::<T>().map_err(|e| one_line(&e))?;
    Ok((dims(shape)?, bytemuck::cast_slice(data)))
}

/// An ORT output's dtype, shape and little-endian bytes.
pub type OrtView<'a> = (DType, Vec<usize>, std::borrow::Cow<'a, [u8]>);

/// The dtype, shape and little-endian bytes of an ORT output, borrowed from ONNX Runtime's buffer
/// (only bool is converted, to one 0/1 byte per element). Values that are not tensors (sequence,
/// map, optional) or whose element type we cannot hold (string, complex, 8/4-bit types) give the
/// reason instead.
pub fn view_ort(v: &DynValue) -> Result<OrtView<'_>, String> {
    use std::borrow::Cow;
    let ty = match v.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        ValueType::Sequence(_) => return Err("ONNX Runtime returned a sequence, not a tensor".into()),
        ValueType::Map { .. } => return Err("ONNX Runtime returned a map, not a tensor".into()),
        ValueType::Optional(_) => return Err("ONNX Runtime returned an optional, not a tensor".into()),
    };
    let Some(dtype) = DType::from_onnx(onnx_number(ty)) else {
        return Err(format!("element type {} cannot be stored", type_name(ty)));
    };
    let (shape, bytes) = match dtype {
        DType::Float32 => raw::<f32>(v)?,
        DType::Float16 => raw::<half::f16>(v)?,
        DType::Bfloat16 => raw::<half::bf16>(v)?,
        DType::Float64 => raw::<f64>(v)?,
        DType::Int8 => raw::<i8>(v)?,
        DType::Int16 => raw::<i16>(v)?,
        DType::Int32 => raw::<i32>(v)?,
        DType::Int64 => raw::<i64>(v)?,
        DType::Uint8 => raw::<u8>(v)?,
        DType::Uint16 => raw::<u16>(v)?,
        DType::Uint32 => raw::<u32>(v)?,
        DType::Uint64 => raw::<u64>(v)?,
        DType::Bool => {
            let (shape, data) = v.try_extract_tensor::<bool>().map_err(|e| one_line(&e))?;
            return Ok((dtype, dims(shape)?, Cow::Owned(data.iter().map(|&b| u8::from(b)).collect())));
        }
    };
    if bytes.len() != crate::tensor::numel(&shape) * dtype.size() {
        return Err(format!("ONNX Runtime returned {} bytes for a {dtype} tensor of shape {shape:?}", bytes.len()));
    }
    Ok((dtype, shape, Cow::Borrowed(bytes)))
}
