//! CUDA through cudarc, loaded at run time (`libcuda.so`): the driver and its GPUs for `doctor` and
//! for choosing what to build for, and device buffers for running engines. The binary runs where
//! there is no CUDA at all: every entry point first checks that the driver library can be loaded
//! (cudarc panics otherwise).
#![allow(unsafe_code)]

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr};

use super::doctor::Gpu;

/// The CUDA driver library can be loaded.
fn present() -> Result<(), String> {
    // SAFETY: only tries to dlopen the driver library by its usual names.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err("no CUDA driver (libcuda.so) on this machine".into())
    }
}

/// The driver's CUDA version (`13.0`).
pub fn driver_version() -> Result<String, String> {
    present()?;
    cudarc::driver::result::init().map_err(|e| format!("CUDA driver: {e}"))?;
    let mut v: std::ffi::c_int = 0;
    // SAFETY: `v` is a valid out-pointer; the driver is initialised.
    let r = unsafe { cudarc::driver::sys::cuDriverGetVersion(&raw mut v) };
    r.result().map_err(|e| format!("CUDA driver version: {e}"))?;
    Ok(format!("{}.{}", v / 1000, (v % 1000) / 10))
}

/// The driver version and every GPU with its name, compute capability and memory.
pub fn devices() -> Result<(String, Vec<Gpu>), String> {
    let version = driver_version()?;
    let n = CudaContext::device_count().map_err(|e| format!("CUDA device count: {e}"))?;
    let mut gpus = Vec::new();
    for i in 0..usize::try_from(n).unwrap_or(0) {
        let ctx = CudaContext::new(i).map_err(|e| format!("GPU {i}: {e}"))?;
        let name = ctx.name().map_err(|e| format!("GPU {i}: {e}"))?;
        let (major, minor) = ctx.compute_capability().map_err(|e| format!("GPU {i}: {e}"))?;
        let memory = ctx.total_mem().map_err(|e| format!("GPU {i}: {e}"))?;
        gpus.push(Gpu {
            index: i,
            name,
            cc: (u32::try_from(major).unwrap_or(0), u32::try_from(minor).unwrap_or(0)),
            memory_bytes: memory as u64,
        });
    }
    Ok((version, gpus))
}

/// A GPU with a stream: device memory and copies for one engine run.
pub struct Device {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
}

/// Bytes on the device.
pub struct Buffer {
    slice: CudaSlice<u8>,
    /// Bytes the tensor occupies (the allocation is at least one byte).
    pub len: usize,
}

impl Device {
    /// Open GPU `ordinal` (its primary context, which TensorRT's runtime also uses) with a stream.
    pub fn open(ordinal: usize) -> Result<Device, String> {
        present()?;
        let ctx = CudaContext::new(ordinal).map_err(|e| format!("GPU {ordinal}: {e}"))?;
        let stream = ctx.new_stream().map_err(|e| format!("GPU {ordinal}: cannot create a stream: {e}"))?;
        Ok(Device { ctx, stream })
    }

    /// Make this GPU's context current on the calling thread (TensorRT calls need it).
    pub fn bind(&self) -> Result<(), String> {
        self.ctx.bind_to_thread().map_err(|e| e.to_string())
    }

    /// Copy host bytes to a new device buffer.
    pub fn upload(&self, data: &[u8]) -> Result<Buffer, String> {
        let mut b = self.alloc(data.len())?;
        if !data.is_empty() {
            self.stream.memcpy_htod(data, &mut b.slice).map_err(|e| format!("copy to the GPU: {e}"))?;
        }
        Ok(b)
    }

    /// A zeroed device buffer of `len` bytes.
    pub fn alloc(&self, len: usize) -> Result<Buffer, String> {
        let slice = self
            .stream
            .alloc_zeros::<u8>(len.max(1))
            .map_err(|e| format!("cannot allocate {len} bytes on the GPU: {e}"))?;
        Ok(Buffer { slice, len })
    }

    /// Copy a device buffer back into `host` (resized to the buffer's length) and wait for it.
    pub fn download(&self, b: &Buffer, host: &mut Vec<u8>) -> Result<(), String> {
        host.resize(b.slice.len(), 0);
        self.stream.memcpy_dtoh(&b.slice, host.as_mut_slice()).map_err(|e| format!("copy from the GPU: {e}"))?;
        self.sync()?;
        host.truncate(b.len);
        Ok(())
    }

    /// Copy `len` bytes at a raw device address (owned by someone else, e.g. a TensorRT debug
    /// tensor) into `host`, on `stream`, and wait for it.
    ///
    /// # Safety
    /// `addr..addr+len` must be readable device memory of this context until the call returns, and
    /// `stream` a live stream of this context (or null for the legacy default stream).
    pub unsafe fn download_raw(
        &self,
        addr: u64,
        len: usize,
        stream: *mut std::ffi::c_void,
        host: &mut Vec<u8>,
    ) -> Result<(), String> {
        host.resize(len, 0);
        if len == 0 {
            return Ok(());
        }
        let stream: cudarc::driver::sys::CUstream = stream.cast();
        // SAFETY: guaranteed by the caller; `host` holds `len` bytes.
        unsafe {
            cudarc::driver::result::memcpy_dtoh_async(host.as_mut_slice(), addr, stream)
                .and_then(|()| cudarc::driver::result::stream::synchronize(stream))
                .map_err(|e| format!("copy from the GPU: {e}"))
        }
    }

    /// The device address of a buffer (for binding to an engine).
    #[must_use]
    pub fn address(&self, b: &Buffer) -> u64 {
        let (ptr, _sync) = b.slice.device_ptr(&self.stream);
        ptr
    }

    /// The raw CUDA stream (for `enqueueV3`).
    #[must_use]
    pub fn raw_stream(&self) -> *mut std::ffi::c_void {
        self.stream.cu_stream().cast()
    }

    /// Wait for the stream.
    pub fn sync(&self) -> Result<(), String> {
        self.stream.synchronize().map_err(|e| format!("CUDA stream: {e}"))
    }
}

/// Copy every tensor to the GPU and back, one at a time, through `sink` (the path a TensorRT run's
/// outputs take to the run store). Used by the GPU test to check every dtype survives the trip.
pub fn round_trip(
    device: &Device,
    tensors: &crate::runner::Tensors,
    sink: &mut dyn crate::runner::TensorSink,
) -> crate::error::Result<()> {
    let err = |m: String| crate::error::Error::runner("cuda", m);
    let specs: Vec<crate::runner::TensorSpec> =
        tensors.iter().map(|(n, t)| (n.clone(), t.dtype(), t.shape().to_vec())).collect();
    let buffers: Vec<Buffer> =
        tensors.iter().map(|(_, t)| device.upload(t.bytes())).collect::<Result<_, _>>().map_err(err)?;
    sink.begin(&specs)?;
    let mut host = Vec::new();
    for ((name, _), b) in tensors.iter().zip(&buffers) {
        device.download(b, &mut host).map_err(err)?;
        sink.put(name, &host)?;
    }
    Ok(())
}
