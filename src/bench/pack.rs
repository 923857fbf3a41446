//! `gacha bench --pack 1,4,8`: what packing trials buys (`train::pack`). For each trainable set and
//! each pack size K, K trials (seeds `seed`, `seed + 1`, …) train together on the bench batch's
//! image features, computed once as `gacha sweep` does, with plain SGD; a step is timed from one
//! step's end to the next (forward, backward and every trial's update), medians over `steps` after
//! `warmup`. The table gives ms per pack step, ms per trial step and trials per hour against K = 1.

use std::time::Instant;

use anyhow::ensure;
use candle_core::Device;
use serde::Serialize;

use super::{answer_of, median, memory, random_batch, BenchOptions, PROMPT};
use crate::model::{load, ModelSource};
use crate::train::optim::OptimizerKind;
use crate::train::{train_pack, Control, PackMember, TrainConfig, TrainExample, TrainableKind};

/// One row: one trainable set at one pack size.
#[derive(Debug, Clone, Serialize)]
pub struct PackRow {
    pub config: String,
    pub device_name: String,
    pub trainable: String,
    pub batch: usize,
    pub pack: usize,
    /// Median ms of one step of the whole pack.
    pub ms_per_step: f64,
    pub ms_per_step_all: Vec<f64>,
    /// `ms_per_step / pack`.
    pub ms_per_trial_step: f64,
    /// Trials per hour against pack 1 of the same trainable set (`None` without a pack-1 row).
    pub speedup: Option<f64>,
    pub peak_mem_mib: Option<f64>,
}

/// The rows for every trainable set of `opts` and every size in `packs`.
pub fn run(opts: &BenchOptions, packs: &[usize], device: &Device) -> anyhow::Result<Vec<PackRow>> {
    ensure!(packs.iter().all(|&k| k >= 1), "--pack sizes must be at least 1");
    let mut rows = Vec::new();
    for &kind in &opts.trainables {
        let first = rows.len();
        for &pack in packs {
            rows.push(pack_row(opts, kind, pack, device)?);
        }
        let base = rows[first..].iter().find(|r| r.pack == 1).map(|r| r.ms_per_trial_step);
        for row in &mut rows[first..] {
            row.speedup = base.map(|b| b / row.ms_per_trial_step);
        }
    }
    Ok(rows)
}

fn pack_row(
    opts: &BenchOptions,
    kind: TrainableKind,
    pack: usize,
    device: &Device,
) -> anyhow::Result<PackRow> {
    memory::reset(device)?;
    let source = ModelSource::Builtin { name: opts.config.clone(), seed: opts.seed };
    let mut loaded = load(&source, device, opts.frozen_dtype)?;
    let (pixels, _) = random_batch(&loaded, opts.batch_size, opts.seed, device)?;
    let features = loaded.model.image_features(&pixels)?;
    let examples: Vec<TrainExample> = (0..opts.batch_size)
        .map(|i| {
            Ok(TrainExample { features: features.get(i)?, prompt: PROMPT.to_string(), answer: answer_of(i) })
        })
        .collect::<anyhow::Result<_>>()?;
    let cfgs: Vec<TrainConfig> = (0..pack as u64)
        .map(|k| TrainConfig {
            trainable: kind,
            lora_rank: opts.lora_rank,
            lora_alpha: opts.lora_alpha,
            optimizer: OptimizerKind::Sgd,
            steps: opts.warmup + opts.steps,
            batch_size: opts.batch_size,
            grad_accum: opts.grad_accum,
            seed: opts.seed + k,
            ..TrainConfig::new(super::LEARNING_RATE)
        })
        .collect();
    let params = cfgs
        .iter()
        .map(|cfg| loaded.model.fresh_trainable(&cfg.trainable_set(), cfg.seed))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let members: Vec<PackMember> = params
        .iter()
        .zip(&cfgs)
        .map(|(params, cfg)| PackMember { params, examples: &examples, cfg })
        .collect();
    let mut ends = vec![0.0];
    let started = Instant::now();
    train_pack(&mut loaded, &members, &mut |member, _| {
        if member == 0 {
            ends.push(started.elapsed().as_secs_f64() * 1e3);
        }
        Control::Continue
    })?;
    device.synchronize()?;
    let step_ms: Vec<f64> = ends.windows(2).map(|w| w[1] - w[0]).collect();
    let timed = step_ms[opts.warmup.min(step_ms.len())..].to_vec();
    ensure!(!timed.is_empty(), "--steps must be at least 1");
    let ms_per_step = median(&timed);
    Ok(PackRow {
        config: opts.config.clone(),
        device_name: opts.device_name.clone(),
        trainable: format!("{kind:?}").to_lowercase(),
        batch: opts.batch_size,
        pack,
        ms_per_step,
        ms_per_step_all: timed,
        ms_per_trial_step: ms_per_step / pack as f64,
        speedup: None,
        peak_mem_mib: memory::peak(device)?.bytes.map(|b| b as f64 / (1u64 << 20) as f64),
    })
}

/// The rows as a table.
pub fn table(rows: &[PackRow]) -> String {
    let mut out = format!(
        "{:>12} {:>7} {:>10} {:>5} {:>4} {:>9} {:>13} {:>12} {:>9}\n",
        "config",
        "device",
        "trainable",
        "batch",
        "pack",
        "ms/step",
        "ms/trial-step",
        "trials/h ×",
        "peak MiB"
    );
    for r in rows {
        out += &format!(
            "{:>12} {:>7} {:>10} {:>5} {:>4} {:>9.1} {:>13.2} {:>12} {:>9}\n",
            r.config,
            r.device_name,
            r.trainable,
            r.batch,
            r.pack,
            r.ms_per_step,
            r.ms_per_trial_step,
            r.speedup.map_or("-".to_string(), |s| format!("{s:.2}")),
            r.peak_mem_mib.map_or("-".to_string(), |m| format!("{m:.0}")),
        );
    }
    out + "ms/step: one step of the whole pack (forward, backward, every trial's SGD update), median; \
           trials/h ×: against pack 1\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_pack_rows_divide_the_step_among_the_trials() {
        let opts = BenchOptions {
            config: "tiny".into(),
            trainables: vec![TrainableKind::Lora],
            lora_rank: 2,
            lora_alpha: 4.0,
            seed: 0,
            steps: 3,
            warmup: 1,
            batch_size: 2,
            grad_accum: 1,
            device_name: "cpu".into(),
            frozen_dtype: candle_core::DType::F32,
        };
        let rows = run(&opts, &[1, 3], &Device::Cpu).unwrap();
        assert_eq!(rows.iter().map(|r| r.pack).collect::<Vec<_>>(), [1, 3]);
        for r in &rows {
            assert_eq!(r.ms_per_step_all.len(), 3);
            assert!((r.ms_per_trial_step * r.pack as f64 - r.ms_per_step).abs() < 1e-9);
        }
        assert_eq!(rows[0].speedup, Some(1.0));
        assert!(table(&rows).contains("trials/h"));
    }
}
