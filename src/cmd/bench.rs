//! `gacha bench`: the table (or JSON lines) of `bench::run` for the chosen named config, or with
//! `--pack` of `bench::pack::run`.

use crate::bench::{run as bench, table, BenchOptions};
use crate::cli::BenchArgs;

pub fn run(args: &BenchArgs) -> anyhow::Result<crate::cmd::Outcome> {
    if let Some(threads) = args.threads {
        anyhow::ensure!(threads > 0, "--threads must be at least 1");
        // Before any thread pool exists: candle and rayon read it when they first start threads.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let device = args.runtime.device.open()?;
    let opts = BenchOptions {
        config: args.config.clone(),
        trainables: args.trainable.clone(),
        lora_rank: args.lora_rank,
        lora_alpha: args.lora_alpha,
        seed: args.seed,
        steps: args.steps,
        warmup: args.warmup,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        device_name: args.runtime.device.to_string(),
        frozen_dtype: args.runtime.frozen_dtype(),
    };
    if !args.pack.is_empty() {
        let rows = crate::bench::pack::run(&opts, &args.pack, &device)?;
        match args.json {
            true => {
                rows.iter().try_for_each(|row| serde_json::to_string(row).map(|line| println!("{line}")))?
            }
            false => print!("{}", crate::bench::pack::table(&rows)),
        }
        return Ok(crate::cmd::Outcome::Success);
    }
    let rows = bench(&opts, &device)?;
    if args.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
    } else {
        print!("{}", table(&rows));
    }
    Ok(crate::cmd::Outcome::Success)
}
