//! `--device cpu|cuda[:N]`: parse the flag, open the device, pick the dtype of frozen weights.
//!
//! Never falls back silently: asking for CUDA in a build without the `cuda` feature, or for a GPU
//! that cannot be opened, is an error.

use std::{fmt, str::FromStr};

use anyhow::Context;
use candle_core::{DType, Device};

/// Where the model runs, as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceSpec::Cuda(n)),
                _ => Err(format!("unknown device {s:?} (expected cpu, cuda or cuda:N)")),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Open the device.
    pub fn open(self) -> anyhow::Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => open_cuda(n),
        }
    }

    /// The dtype of frozen base weights: f32 on CPU (bf16 matmuls convert whole operands to f32
    /// there, docs/design.md §10.4), bf16 on a GPU. Trainable weights are always f32.
    pub fn frozen_dtype(self) -> DType {
        match self {
            DeviceSpec::Cpu => DType::F32,
            DeviceSpec::Cuda(_) => DType::BF16,
        }
    }
}

/// Make this thread, and every thread it starts afterwards (rayon's pool, the matmul threads),
/// treat subnormal floats as zero (x86-64 SSE FTZ and DAZ flags; elsewhere a no-op). Call it at
/// the start of `main`, before any thread exists.
///
/// Why: training makes attention probabilities and their gradients sink below `f32::MIN_POSITIVE`
/// at many positions, and an FMA with a subnormal operand takes a microcode slow path: a tiny-model
/// trial at learning rate 0.03 ran 3–4 times slower. Values that small (< 1.2e-38) are zero for
/// every purpose here; results are otherwise unchanged.
pub fn flush_subnormals_to_zero() {
    #[cfg(target_arch = "x86_64")]
    {
        /// MXCSR bits: flush-to-zero (15) and denormals-are-zero (6).
        const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr only read and write the SSE control register of this thread
        // (through a valid pointer to a local); setting FTZ/DAZ changes float results only where
        // a value is subnormal.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            csr |= FTZ_DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> anyhow::Result<Device> {
    Device::new_cuda(ordinal).with_context(|| format!("cannot open CUDA device {ordinal}"))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> anyhow::Result<Device> {
    Err(anyhow::anyhow!(
        "this gacha was built without CUDA support; rebuild with `cargo build --release --features cuda`"
    ))
    .with_context(|| format!("--device cuda:{ordinal}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_cuda_ordinals() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        assert_eq!(DeviceSpec::Cuda(3).to_string(), "cuda:3");
        for bad in ["gpu", "cuda:", "cuda:x", "CPU", "cuda:-1"] {
            let err = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(err.contains(bad) && err.contains("cuda:N"), "{err}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(1).open().unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("--device cuda:1") && text.contains("--features cuda"), "{text}");
    }
}
