//! One file per subcommand: turn parsed arguments into typed options, call the library, print.

pub mod bench;
pub mod check;
pub mod demo_data;
pub mod eval;
pub mod export;
pub mod leaderboard;
pub mod report;
mod save_inputs;
pub mod score;
pub mod setup;
pub mod slurm;
pub mod split;
pub mod status;
pub mod sweep;
pub mod train;
pub mod trial;
pub mod workers;

use crate::cli::{DataArgs, ExifOrientationArg, FramePolicyArg, ResizeArg};
use crate::data::{Answers, DataOptions, ExifOrientation, FramePolicy, ImageOptions, PathPolicy, Resize};
use crate::device::DeviceSpec;
use crate::machine::gpu::GpuMemory;
use crate::spec::MemoryCheck;

/// The typed dataset options from `--answers`, `--frames`, `--exif-orientation`, `--resize` and
/// `--allow-outside-paths`.
pub fn data_options(args: &DataArgs) -> anyhow::Result<DataOptions> {
    let [positive, negative] = args.answers.as_slice() else {
        anyhow::bail!("--answers takes two words, positive first (e.g. --answers yes,no)");
    };
    if positive == negative {
        anyhow::bail!("--answers: the two answer words must differ (got {positive:?} twice)");
    }
    Ok(DataOptions {
        answers: Answers { positive: positive.clone(), negative: negative.clone() },
        images: ImageOptions {
            frames: match args.frames {
                FramePolicyArg::First => FramePolicy::First,
                FramePolicyArg::Last => FramePolicy::Last,
                FramePolicyArg::Middle => FramePolicy::Middle,
                FramePolicyArg::All => FramePolicy::All,
            },
            orientation: match args.exif_orientation {
                ExifOrientationArg::Apply => ExifOrientation::Apply,
                ExifOrientationArg::Ignore => ExifOrientation::Ignore,
            },
            resize: args.resize.map(|resize| match resize {
                ResizeArg::Bilinear => Resize::Bilinear,
                ResizeArg::Bicubic => Resize::Bicubic,
            }),
            ..Default::default()
        },
        paths: if args.allow_outside_paths {
            PathPolicy::AllowOutside
        } else {
            PathPolicy::InsideDatasetOnly
        },
    })
}

/// What a spec's estimated peak memory is checked against on `device` (`--no-memory-check`: nothing).
pub fn memory_check(no_memory_check: bool, device: DeviceSpec) -> anyhow::Result<MemoryCheck> {
    if no_memory_check {
        return Ok(MemoryCheck::Skipped("not checked: --no-memory-check".into()));
    }
    if let DeviceSpec::Cuda(ordinal) = device {
        return Ok(match crate::machine::gpu::available_gpu_memory(ordinal).map_err(anyhow::Error::msg)? {
            GpuMemory::Free(limit) => MemoryCheck::Against(limit),
            GpuMemory::Unknown(why) => MemoryCheck::Skipped(format!("not checked on GPU ({device}): {why}")),
        });
    }
    Ok(match crate::machine::available_memory().map_err(anyhow::Error::msg)? {
        Some(limit) => MemoryCheck::Against(limit),
        None => {
            MemoryCheck::Skipped("not checked: the available memory cannot be read on this system".into())
        }
    })
}
