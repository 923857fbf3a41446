//! The GPU memory a run on `--device cuda:N` may use, for the memory guard: the free memory that
//! `nvidia-smi` reports for the GPU that CUDA calls device N, less [`CUDA_CONTEXT_BYTES`] for the
//! CUDA context (and cuBLAS workspace) this process will create there.
//!
//! Which GPU is CUDA's device N: the N-th of `CUDA_VISIBLE_DEVICES` (indexes or `GPU-` UUIDs,
//! in the order written; every GPU where unset). nvidia-smi numbers every GPU by PCI bus, and so
//! does CUDA with `CUDA_DEVICE_ORDER=PCI_BUS_ID`; CUDA's default puts the fastest GPU first, which
//! is the PCI order only when the GPUs are all of one kind. So where the GPUs differ and the order
//! is not `PCI_BUS_ID`, or CUDA's device N is a MIG instance (nvidia-smi's free memory is the
//! whole GPU's), or nvidia-smi is missing or fails, the guard says why it did not check
//! ([`GpuMemory::Unknown`]) and the run goes on.
//!
//! [`GPU_MEMORY_LIMIT_ENV`] replaces all of it with a number (a share of a GPU enforced elsewhere;
//! tests).

use std::io::ErrorKind;
use std::process::Command;

use super::{limit_from_env, Bytes, MemoryLimit};

/// Bytes a run on a GPU may use there, overriding what nvidia-smi reports.
pub const GPU_MEMORY_LIMIT_ENV: &str = "GACHA_GPU_MEMORY_LIMIT_BYTES";

/// What the CUDA context, cuBLAS's workspace and the memory pool's slack take besides the tensors
/// the estimate counts. An allowance, not a measurement of ours: a CUDA context is a few hundred
/// MiB on current GPUs; `tools/gpu-check.sh` measures what the process held beyond its tensors.
pub const CUDA_CONTEXT_BYTES: u64 = 1 << 30;

/// The GPU memory a run may use, or why it is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuMemory {
    Free(MemoryLimit),
    Unknown(String),
}

/// One line of `nvidia-smi --query-gpu=index,uuid,name,memory.free --format=csv,noheader,nounits`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gpu {
    index: usize,
    uuid: String,
    name: String,
    /// MiB; `None` where nvidia-smi says `[N/A]` (as on a GPU split into MIG instances).
    free_mib: Option<u64>,
}

const QUERY: [&str; 2] = ["--query-gpu=index,uuid,name,memory.free", "--format=csv,noheader,nounits"];

/// The memory CUDA's device `ordinal` has free for this run: [`GPU_MEMORY_LIMIT_ENV`] if set, else
/// nvidia-smi's figure less [`CUDA_CONTEXT_BYTES`]. An error only for a malformed
/// [`GPU_MEMORY_LIMIT_ENV`].
pub fn available_gpu_memory(ordinal: usize) -> Result<GpuMemory, String> {
    if let Some(limit) = limit_from_env(GPU_MEMORY_LIMIT_ENV)? {
        return Ok(GpuMemory::Free(limit));
    }
    let output = match Command::new("nvidia-smi").args(QUERY).output() {
        Ok(output) => output,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Ok(GpuMemory::Unknown("nvidia-smi is not on PATH".into()))
        }
        Err(err) => return Ok(GpuMemory::Unknown(format!("nvidia-smi could not be run: {err}"))),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let said = stderr.lines().chain(stdout.lines()).find(|l| !l.trim().is_empty()).unwrap_or("");
        return Ok(GpuMemory::Unknown(format!("nvidia-smi failed ({}): {}", output.status, said.trim())));
    }
    let gpus = match parse_gpus(&String::from_utf8_lossy(&output.stdout)) {
        Ok(gpus) => gpus,
        Err(why) => return Ok(GpuMemory::Unknown(format!("nvidia-smi's answer not understood: {why}"))),
    };
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let order = std::env::var("CUDA_DEVICE_ORDER").ok();
    Ok(match cuda_device(&gpus, visible.as_deref(), order.as_deref(), ordinal) {
        Err(why) => GpuMemory::Unknown(why),
        Ok(Gpu { free_mib: None, index, name, .. }) => {
            GpuMemory::Unknown(format!("nvidia-smi gives no free memory for GPU {index} ({name}; MIG mode?)"))
        }
        Ok(Gpu { free_mib: Some(mib), index, uuid, name }) => GpuMemory::Free(MemoryLimit {
            bytes: (mib << 20).saturating_sub(CUDA_CONTEXT_BYTES),
            source: format!(
                "GPU {index} ({name}, {uuid}): {} free per nvidia-smi, less {} for the CUDA context",
                Bytes(mib << 20),
                Bytes(CUDA_CONTEXT_BYTES)
            ),
        }),
    })
}

/// nvidia-smi's lines `0, GPU-1c2…, NVIDIA H200, 143156` (the name may hold commas).
fn parse_gpus(text: &str) -> Result<Vec<Gpu>, String> {
    let mut gpus = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |what: &str| format!("line {} {line:?}: {what}", n + 1);
        let (rest, free) = line.rsplit_once(',').ok_or_else(|| bad("expected 4 fields"))?;
        let mut fields = rest.splitn(3, ',').map(str::trim);
        let (Some(index), Some(uuid), Some(name)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad("expected 4 fields"));
        };
        let free = free.trim();
        gpus.push(Gpu {
            index: index.parse().map_err(|_| bad("the index is not a number"))?,
            uuid: uuid.to_string(),
            name: name.to_string(),
            free_mib: match free {
                "[N/A]" | "N/A" => None,
                _ => Some(free.parse().map_err(|_| bad("the free memory is not a number of MiB"))?),
            },
        });
    }
    if gpus.is_empty() {
        return Err("no GPU listed".into());
    }
    Ok(gpus)
}

/// The GPU that CUDA numbers `ordinal`, given `CUDA_VISIBLE_DEVICES` and `CUDA_DEVICE_ORDER`, or
/// why it cannot be told.
fn cuda_device<'g>(
    gpus: &'g [Gpu],
    visible: Option<&str>,
    order: Option<&str>,
    ordinal: usize,
) -> Result<&'g Gpu, String> {
    let by_index = |index: usize| gpus.iter().find(|g| g.index == index);
    // Indexes, in CUDA_VISIBLE_DEVICES or implied, count in CUDA's order, nvidia-smi's only where
    // the two agree.
    let same_order = order == Some("PCI_BUS_ID") || gpus.iter().all(|g| g.name == gpus[0].name);
    let order_unknown = || {
        let mut names: Vec<&str> = gpus.iter().map(|g| g.name.as_str()).collect();
        names.dedup();
        format!(
            "the GPUs are of different kinds ({}) and CUDA_DEVICE_ORDER is not PCI_BUS_ID, so CUDA's \
             numbering may not be nvidia-smi's (set CUDA_DEVICE_ORDER=PCI_BUS_ID)",
            names.join(", ")
        )
    };
    let Some(visible) = visible else {
        if !same_order {
            return Err(order_unknown());
        }
        return gpus
            .get(ordinal)
            .ok_or_else(|| format!("cuda:{ordinal}: nvidia-smi lists {} GPU(s)", gpus.len()));
    };
    if visible.trim().is_empty() {
        return Err("CUDA_VISIBLE_DEVICES is empty, so CUDA sees no GPU".into());
    }
    // CUDA takes the entries up to the first it cannot match.
    let entries: Vec<&str> = visible.split(',').map(str::trim).collect();
    let Some(&entry) = entries.get(ordinal) else {
        return Err(format!(
            "cuda:{ordinal}: CUDA_VISIBLE_DEVICES={visible:?} names {} GPU(s)",
            entries.len()
        ));
    };
    for &earlier in &entries[..ordinal] {
        let known = match earlier.parse::<usize>() {
            Ok(index) => by_index(index).is_some(),
            Err(_) => earlier.starts_with("GPU-") || earlier.starts_with("MIG-"),
        };
        if !known {
            return Err(format!(
                "CUDA_VISIBLE_DEVICES={visible:?}: {earlier:?} is no GPU, so CUDA sees none after it"
            ));
        }
    }
    if entry.starts_with("MIG-") {
        return Err(format!(
            "cuda:{ordinal} is the MIG instance {entry}; nvidia-smi gives the whole GPU's memory"
        ));
    }
    if entry.starts_with("GPU-") {
        let matching: Vec<&Gpu> = gpus.iter().filter(|g| g.uuid.starts_with(entry)).collect();
        return match matching[..] {
            [gpu] => Ok(gpu),
            [] => Err(format!("CUDA_VISIBLE_DEVICES: no GPU has the UUID {entry}")),
            _ => Err(format!("CUDA_VISIBLE_DEVICES: {entry} is the start of {} GPUs' UUIDs", matching.len())),
        };
    }
    let index = entry
        .parse::<usize>()
        .map_err(|_| format!("CUDA_VISIBLE_DEVICES={visible:?}: {entry:?} is no GPU index or UUID"))?;
    if !same_order {
        return Err(order_unknown());
    }
    by_index(index).ok_or_else(|| format!("CUDA_VISIBLE_DEVICES: nvidia-smi lists no GPU {index}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two H200s and an A100, as `nvidia-smi --query-gpu=index,uuid,name,memory.free
    /// --format=csv,noheader,nounits` prints them (one GPU a line, `, ` between fields, MiB).
    const MIXED: &str = "0, GPU-aaaa1111, NVIDIA H200, 143000\n\
                         1, GPU-bbbb2222, NVIDIA H200, 100000\n\
                         2, GPU-cccc3333, NVIDIA A100-SXM4-80GB, 81000\n";

    fn gpus(text: &str) -> Vec<Gpu> {
        parse_gpus(text).unwrap()
    }

    #[test]
    fn reads_nvidia_smi_lines_including_names_with_commas_and_missing_figures() {
        let gpus = gpus("0, GPU-1, NVIDIA H200, 143156\n1, GPU-2, Tesla, V100, [N/A]\n\n");
        assert_eq!(
            gpus[0],
            Gpu { index: 0, uuid: "GPU-1".into(), name: "NVIDIA H200".into(), free_mib: Some(143156) }
        );
        assert_eq!(gpus[1].name, "Tesla, V100");
        assert_eq!(gpus[1].free_mib, None);
        assert!(parse_gpus("").unwrap_err().contains("no GPU"));
        assert!(parse_gpus("0, GPU-1, X, lots\n").unwrap_err().contains("line 1"));
        assert!(parse_gpus("No devices were found\n").unwrap_err().contains("4 fields"));
    }

    #[test]
    fn cuda_numbers_the_visible_gpus_in_the_order_written() {
        let one_kind = gpus(&MIXED.lines().take(2).collect::<Vec<_>>().join("\n"));
        assert_eq!(cuda_device(&one_kind, None, None, 1).unwrap().index, 1);
        assert_eq!(cuda_device(&one_kind, Some("1,0"), None, 0).unwrap().index, 1);
        assert_eq!(cuda_device(&one_kind, Some("1, 0"), None, 1).unwrap().index, 0);
        assert_eq!(cuda_device(&one_kind, Some("GPU-bbbb"), None, 0).unwrap().index, 1);
        assert!(cuda_device(&one_kind, None, None, 2).unwrap_err().contains("lists 2 GPU(s)"));
        assert!(cuda_device(&one_kind, Some("1"), None, 1).unwrap_err().contains("names 1 GPU(s)"));
        assert!(cuda_device(&one_kind, Some(""), None, 0).unwrap_err().contains("sees no GPU"));
        assert!(cuda_device(&one_kind, Some("a"), None, 0).unwrap_err().contains("is no GPU index"));
        assert!(cuda_device(&one_kind, Some("7,0"), None, 1).unwrap_err().contains("\"7\" is no GPU"));
        assert!(cuda_device(&one_kind, Some("GPU-"), None, 0).unwrap_err().contains("start of 2"));
        assert!(cuda_device(&one_kind, Some("MIG-x"), None, 0).unwrap_err().contains("MIG instance"));
    }

    #[test]
    fn mixed_gpus_are_matched_by_uuid_or_pci_order_only() {
        let mixed = gpus(MIXED);
        assert!(cuda_device(&mixed, None, None, 0).unwrap_err().contains("CUDA_DEVICE_ORDER=PCI_BUS_ID"));
        assert!(cuda_device(&mixed, Some("2"), Some("FASTEST_FIRST"), 0).is_err());
        assert_eq!(cuda_device(&mixed, None, Some("PCI_BUS_ID"), 2).unwrap().index, 2);
        assert_eq!(cuda_device(&mixed, Some("2,0"), Some("PCI_BUS_ID"), 0).unwrap().index, 2);
        assert_eq!(cuda_device(&mixed, Some("GPU-cccc3333"), None, 0).unwrap().index, 2);
    }
}
