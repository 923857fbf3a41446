//! `gacha train`: compute every frame's image features once, train, save what was trained to
//! `--out`, then print the training set's `Result:` block. Ctrl-C stops after the current step
//! and still saves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::adapter::{self, Provenance};
use crate::cli::TrainArgs;
use crate::data::jsonl::load_dataset;
use crate::eval::frames::for_each_frame_batch;
use crate::eval::result::{confusion, result_block, DEFAULT_THRESHOLD};
use crate::eval::score::{score_dataset, ScoreOptions};
use crate::model::Trainable;
use crate::train::{train, Control, TrainConfig, TrainExample, TrainOutcome, TrainableKind};

pub fn run(args: &TrainArgs) -> anyhow::Result<crate::Outcome> {
    let mut cfg = config(args);
    cfg.check()?;
    let options = super::data_options(&args.data_options)?;
    let dataset = load_dataset(&args.data, &options)?;
    let mut session = super::setup::open(&args.model, &options.answers)?;

    // The trainable set: the adapter's (to continue training) or a fresh one.
    let (trainable, params) = match session.adapter.take() {
        Some((trainable, params)) => {
            match (&trainable, cfg.trainable) {
                (Trainable::Lora(lora), TrainableKind::Lora) => {
                    (cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets) =
                        (lora.rank, lora.alpha, lora.targets.clone());
                }
                (Trainable::Attention, TrainableKind::Attention) => {}
                _ => bail!("--trainable {:?} does not match the adapter given with --adapter", cfg.trainable),
            }
            (trainable, params)
        }
        None => {
            let trainable = cfg.trainable();
            let params = session.loaded.model.set_trainable(&trainable, cfg.seed)?;
            (trainable, params)
        }
    };
    cfg.warmup_steps = Some(cfg.warmup_steps());
    crate::info!("config: {}", serde_json::to_string(&cfg)?);
    crate::info!(
        "device: {}   frozen dtype: {:?}   trainable parameters: {} in {} tensors",
        args.model.runtime.device,
        args.model.runtime.frozen_dtype(),
        params.num_params(),
        params.named.len()
    );

    // Image features, once per frame: the vision side is frozen.
    let mut examples = Vec::new();
    for_each_frame_batch(
        &session.loaded,
        &session.device,
        &dataset,
        options.images,
        cfg.batch_size,
        |frames| {
            for (row, &i) in frames.example_of_row.iter().enumerate() {
                let example = &dataset.examples[i];
                examples.push(TrainExample {
                    features: frames.features.get(row)?,
                    prompt: args.prompt.clone().unwrap_or_else(|| example.prefix.clone()),
                    answer: example.label,
                });
            }
            Ok(())
        },
    )?;
    crate::info!(
        "{} training frames from {} images of {}",
        examples.len(),
        dataset.examples.len(),
        args.data.display()
    );

    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    let outcome = train(&session.loaded, &params, &examples, &cfg, &mut |log| {
        if cfg.is_log_step(log.step) {
            crate::info!("{}", log.line());
        }
        crate::debug!("step {}: grad norm {:.4}, {:.0} ms", log.step, log.grad_norm, log.ms);
        match interrupted.load(Ordering::SeqCst) {
            true => Control::Stop,
            false => Control::Continue,
        }
    })?;
    drop(examples);

    if let TrainOutcome::Diverged { step, loss } = outcome {
        crate::warn!("diverged at step {step} (loss {loss}, limit {}); nothing saved", cfg.loss_above);
        return Ok(crate::Outcome::FinishedWithFailures);
    }
    let base_model = args.model.model.to_string();
    let provenance = Provenance {
        gacha_version: env!("CARGO_PKG_VERSION"),
        base_model: &base_model,
        prompt: args.prompt.as_deref(),
        train: &cfg,
    };
    adapter::save(&args.out, &trainable, &params, &provenance)?;
    crate::info!("saved the adapter to {}", args.out.display());
    if let TrainOutcome::Stopped { step } = outcome {
        crate::warn!("stopped by Ctrl-C after step {step} of {}", cfg.steps);
        return Ok(crate::Outcome::FinishedWithFailures);
    }

    let opts =
        ScoreOptions { prompt: args.prompt.clone(), images: options.images, batch_size: cfg.batch_size };
    let rows = score_dataset(&session.loaded, &session.device, &dataset, &opts)?;
    print!("{}", result_block(&args.data.display().to_string(), &confusion(&rows, DEFAULT_THRESHOLD)));
    Ok(crate::Outcome::Success)
}

/// The training settings from the flags.
fn config(args: &TrainArgs) -> TrainConfig {
    TrainConfig {
        trainable: args.trainable,
        lora_rank: args.lora_rank,
        lora_alpha: args.lora_alpha,
        lora_targets: args.lora_targets.clone(),
        optimizer: args.optimizer.optimizer(),
        learning_rate: args.lr,
        schedule: args.schedule,
        warmup_steps: args.warmup_steps,
        steps: args.steps,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        seed: args.seed,
        log_every: args.log_every,
        loss_above: args.loss_above,
    }
}
