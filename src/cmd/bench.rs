//! `gacha bench --config NAME [--trainable attention|lora|both] …`: run the benchmark and print its
//! table, or one JSON object with `--json`.

use anyhow::Context;

use crate::bench::{self, BenchOptions};
use crate::cli::{BenchArgs, BenchTrainable, DtypeArg};
use crate::model::{LoraConfig, LoraTarget, PaliGemmaConfig, Trainable};
use crate::Outcome;

pub fn run(args: &BenchArgs) -> anyhow::Result<Outcome> {
    PaliGemmaConfig::named(&args.config).context("--config")?;
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
    let options = BenchOptions {
        config: args.config.clone(),
        trainables,
        steps: args.steps,
        warmup: args.warmup,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        seed: args.seed,
        device: args.device,
        dtype: DtypeArg::or_default(args.dtype, args.device),
    };
    let report = bench::run(&options)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", bench::render(&report));
    }
    Ok(Outcome::Success)
}
