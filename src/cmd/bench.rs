//! `gacha bench --config NAME [--trainable attention|lora|both] …`: run the benchmark and print its
//! table, or one JSON object with `--json`.

use anyhow::Context;
use candle_core::DType;

use crate::bench::{self, BenchOptions};
use crate::cli::{BenchArgs, BenchDtype, BenchTrainable};
use crate::device::DeviceSpec;
use crate::model::{LoraConfig, LoraTarget, PaliGemmaConfig, Trainable};
use crate::Outcome;

pub fn run(args: &BenchArgs) -> anyhow::Result<Outcome> {
    PaliGemmaConfig::named(&args.config).context("--config")?;
    let device: DeviceSpec = args.device.parse().map_err(anyhow::Error::msg).context("--device")?;
    let lora = Trainable::Lora(LoraConfig {
        rank: args.lora_rank,
        alpha: args.lora_alpha,
        targets: LoraTarget::ATTENTION.to_vec(),
    });
    let trainables = match args.trainable {
        BenchTrainable::Attention => vec![Trainable::Attention],
        BenchTrainable::Lora => vec![lora],
        BenchTrainable::Both => vec![lora, Trainable::Attention],
    };
    let dtype = match args.dtype {
        None => device.frozen_dtype(),
        Some(BenchDtype::F32) => DType::F32,
        Some(BenchDtype::Bf16) => DType::BF16,
    };
    let options = BenchOptions {
        config: args.config.clone(),
        trainables,
        steps: args.steps,
        warmup: args.warmup,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        seed: args.seed,
        device,
        dtype,
    };
    let report = bench::run(&options)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", bench::render(&report));
    }
    Ok(Outcome::Success)
}
