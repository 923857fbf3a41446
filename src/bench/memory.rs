//! Peak memory of a benchmark phase: reset the high-water mark, run, read it back.
//!
//! - CPU: the process's peak resident set (`VmHWM` in `/proc/self/status`), reset by writing `5` to
//!   `/proc/self/clear_refs` (Linux ≥ 4.0). It includes the model's weights and everything else
//!   the process holds, like PyTorch's `ru_maxrss`.
//! - CUDA: candle keeps no allocation statistics, but its allocations come from the device's
//!   stream-ordered memory pool (`cuMemAllocAsync`), whose high-water mark of bytes in use
//!   (`CU_MEMPOOL_ATTR_USED_MEM_HIGH`) is the analogue of `torch.cuda.max_memory_allocated`: live
//!   tensors only, without the CUDA context, cuBLAS workspaces or pool slack.

use candle_core::Device;

/// A peak in bytes and how it was measured; `bytes` is `None` where no measure is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peak {
    pub bytes: Option<u64>,
    pub how: &'static str,
}

const CPU_HOW: &str = "process peak RSS (VmHWM)";
const CUDA_HOW: &str = "CUDA memory-pool high-water (USED_MEM_HIGH)";

/// Start a new high-water mark on `device` (best effort: where it cannot be reset, the peak so far
/// carries over and is still an upper bound).
pub fn reset(device: &Device) -> anyhow::Result<()> {
    match device {
        Device::Cpu => {
            // Fails without /proc (not Linux) or on kernels before 4.0; the mark then carries over.
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            Ok(())
        }
        Device::Cuda(_) => cuda::reset(device),
        Device::Metal(_) => Ok(()),
    }
}

/// The high-water mark since the last [`reset`].
pub fn peak(device: &Device) -> anyhow::Result<Peak> {
    match device {
        Device::Cpu => {
            let status = std::fs::read_to_string("/proc/self/status").ok();
            Ok(Peak { bytes: status.as_deref().and_then(vm_hwm_bytes), how: CPU_HOW })
        }
        Device::Cuda(_) => Ok(Peak { bytes: cuda::used_high(device)?, how: CUDA_HOW }),
        Device::Metal(_) => Ok(Peak { bytes: None, how: "not measured on Metal" }),
    }
}

/// `VmHWM:   123456 kB` → bytes.
fn vm_hwm_bytes(status: &str) -> Option<u64> {
    crate::machine::proc_kilobytes(status, "VmHWM")
}

#[cfg(feature = "cuda")]
mod cuda {
    use anyhow::Context;
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    use candle_core::Device;

    /// The memory pool candle's allocations come from, with the device's context bound.
    fn pool(device: &Device) -> anyhow::Result<sys::CUmemoryPool> {
        let Device::Cuda(cuda) = device else {
            anyhow::bail!("not a CUDA device: {device:?}");
        };
        let stream = cuda.cuda_stream();
        let context = stream.context();
        context.bind_to_thread().context("binding the CUDA context")?;
        // SAFETY: the device handle comes from a live context.
        unsafe { result::device::get_mem_pool(context.cu_device()) }.context("cuDeviceGetMemPool")
    }

    pub fn reset(device: &Device) -> anyhow::Result<()> {
        device.synchronize()?;
        let pool = pool(device)?;
        let mut zero: u64 = 0;
        // SAFETY: USED_MEM_HIGH is a cuuint64_t; setting it to 0 resets it to the current use.
        unsafe {
            result::mem_pool::set_attribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                (&mut zero as *mut u64).cast(),
            )
        }
        .context("resetting CU_MEMPOOL_ATTR_USED_MEM_HIGH")
    }

    /// `None` when the pool saw no allocation at all (candle then allocates outside the pool, with
    /// plain `cuMemAlloc`, on devices without memory-pool support).
    pub fn used_high(device: &Device) -> anyhow::Result<Option<u64>> {
        device.synchronize()?;
        let pool = pool(device)?;
        let mut high: u64 = 0;
        // SAFETY: USED_MEM_HIGH is a cuuint64_t.
        unsafe {
            result::mem_pool::get_attribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                (&mut high as *mut u64).cast(),
            )
        }
        .context("reading CU_MEMPOOL_ATTR_USED_MEM_HIGH")?;
        Ok((high > 0).then_some(high))
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use candle_core::Device;

    pub fn reset(_: &Device) -> anyhow::Result<()> {
        Ok(())
    }

    pub fn used_high(_: &Device) -> anyhow::Result<Option<u64>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_hwm_in_kilobytes() {
        let status = "Name:\tgacha\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(vm_hwm_bytes(status), Some(12345 * 1024));
        assert_eq!(vm_hwm_bytes("Name:\tgacha\n"), None);
        assert_eq!(vm_hwm_bytes("VmHWM:\t12 MB\n"), None);
    }

    #[test]
    fn cpu_peak_grows_after_touching_memory() {
        reset(&Device::Cpu).unwrap();
        let before = peak(&Device::Cpu).unwrap().bytes.expect("Linux has VmHWM");
        let big = vec![1u8; 128 << 20];
        let after = peak(&Device::Cpu).unwrap().bytes.unwrap();
        assert!(big.iter().all(|&b| b == 1));
        // Tests in other threads may free memory meanwhile: half the allocation is the margin.
        assert!(after >= before + (64 << 20), "{before} → {after}");
    }
}
