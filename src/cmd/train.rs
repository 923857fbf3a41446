//! `gacha train`: compute every frame's image features once, train, save what was trained to
//! `--out`, then print the training set's `Result:` block. Ctrl-C stops after the current step,
//! still saves, and exits with the interrupted status.

use anyhow::bail;

use super::setup::Session;
use crate::adapter::{self, Provenance};
use crate::cli::TrainArgs;
use crate::cmd::Outcome;
use crate::data::jsonl::load_dataset;
use crate::data::{Dataset, ImageOptions};
use crate::eval::result::{confusion, result_block, DEFAULT_THRESHOLD};
use crate::eval::score::{score_dataset, ScoreOptions};
use crate::features::frames::for_each_frame_batch;
use crate::model::{Trainable, TrainableParams};
use crate::train::{train, Control, TrainConfig, TrainExample, TrainOutcome, TrainableKind};

pub fn run(args: &TrainArgs) -> anyhow::Result<Outcome> {
    let mut cfg = args.train.clone();
    if let Err(invalid) = cfg.validate() {
        bail!("--{}: {}", invalid.field.replace('_', "-"), invalid.message);
    }
    let options = super::data_options(&args.data_options)?;
    let dataset = load_dataset(&args.data, &options)?;
    let mut session = super::setup::open(&args.model, &options.answers)?;
    let (trainable, params) = trainable_set(&mut session, &mut cfg)?;
    crate::logging::info!("config: {}", serde_json::to_string(&cfg)?);
    crate::logging::info!(
        "device: {}   frozen dtype: {:?}   seed: {}   trainable parameters: {} in {} tensors",
        args.model.runtime.device,
        args.model.runtime.frozen_dtype(),
        cfg.seed,
        params.num_params(),
        params.named.len()
    );
    let examples = train_examples(&session, &dataset, options.images, args, cfg.batch_size)?;

    let stop = super::stop_signals::stop_flag()?;
    let outcome = train(&session.loaded, &params, &examples, &cfg, &mut |log| {
        match cfg.is_log_step(log.step) {
            true => crate::logging::info!("{log}"),
            false => crate::logging::debug!("{log}"),
        }
        match stop.is_requested() {
            true => Control::Stop,
            false => Control::Continue,
        }
    })?;
    drop(examples);

    if let TrainOutcome::Diverged(log) = outcome {
        crate::logging::warn!("diverged: {log} (limit {}); nothing saved", cfg.guard.loss_above);
        return Ok(Outcome::FinishedWithFailures);
    }
    let base_model = args.model.model.to_string();
    let preprocessing = session.loaded.preprocessing.own.with_resize(options.images.resize);
    let provenance = Provenance::new(&base_model, args.prompt.as_deref(), &cfg, preprocessing);
    adapter::save(&args.out, &trainable, &params, &provenance)?;
    crate::logging::info!("saved the adapter to {}", args.out.display());
    if let TrainOutcome::Stopped { step } = outcome {
        crate::logging::warn!(
            "stopped (Ctrl-C or SIGTERM) after step {step} of {}; the adapter holds those steps",
            cfg.steps
        );
        return Ok(Outcome::Interrupted);
    }

    let opts =
        ScoreOptions { prompt: args.prompt.clone(), images: options.images, batch_size: cfg.batch_size };
    let rows = score_dataset(&session.loaded, &session.device, &dataset, &opts)?;
    super::stdout::print(&result_block(
        &args.data.display().to_string(),
        &confusion(&rows, DEFAULT_THRESHOLD),
    ))?;
    Ok(Outcome::Success)
}

/// The trainable set: the `--adapter`'s (to continue training it; a LoRA adapter's own rank,
/// alpha and targets replace those in `cfg`) or a fresh one of `cfg`'s kind.
fn trainable_set(
    session: &mut Session,
    cfg: &mut TrainConfig,
) -> anyhow::Result<(Trainable, TrainableParams)> {
    let Some((trainable, params)) = session.adapter.take() else {
        let trainable = cfg.trainable_set();
        let params = session.loaded.model.set_trainable(&trainable, cfg.seed)?;
        return Ok((trainable, params));
    };
    match (&trainable, cfg.trainable) {
        (Trainable::Lora(lora), TrainableKind::Lora) => {
            (cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets) = (lora.rank, lora.alpha, lora.targets.clone());
        }
        (Trainable::Attention, TrainableKind::Attention) => {}
        _ => bail!("--trainable {:?} does not match the adapter given with --adapter", cfg.trainable),
    }
    Ok((trainable, params))
}

/// One example per frame, with its image features computed once (the vision side is frozen).
fn train_examples(
    session: &Session,
    dataset: &Dataset,
    images: ImageOptions,
    args: &TrainArgs,
    batch_size: usize,
) -> anyhow::Result<Vec<TrainExample>> {
    let mut examples = Vec::new();
    for_each_frame_batch(&session.loaded, &session.device, dataset, images, batch_size, |frames| {
        for (row, &i) in frames.example_of_row.iter().enumerate() {
            let example = &dataset.examples[i];
            examples.push(TrainExample {
                features: frames.features.get(row)?,
                prompt: args.prompt.clone().unwrap_or_else(|| example.prefix.clone()),
                answer: example.label,
            });
        }
        Ok(())
    })?;
    crate::logging::info!(
        "{} training frames from {} images of {}",
        examples.len(),
        dataset.examples.len(),
        args.data.display()
    );
    Ok(examples)
}
