//! What score, eval and train do first: open the device, load the model with the answer words,
//! and load the adapter if one is given.

use candle_core::Device;

use crate::cli::ModelArgs;
use crate::data::Answers;
use crate::model::{LoadedModel, ModelSource, Trainable, TrainableParams};

/// A loaded model on its device, with its adapter's trainable set when one was loaded.
pub struct Session {
    pub device: Device,
    pub loaded: LoadedModel,
    pub adapter: Option<(Trainable, TrainableParams)>,
}

/// Open `args.device`, load `args.model` with frozen weights in `--dtype` (else the device's
/// default), then `args.adapter`.
pub fn open(args: &ModelArgs, answers: &Answers) -> anyhow::Result<Session> {
    let device = args.runtime.device.open()?;
    let mut loaded = crate::model::load(&model_source(args)?, &device, args.runtime.frozen_dtype())?;
    loaded.tokenizer = loaded.tokenizer.with_answers(answers)?;
    let adapter = match &args.adapter {
        Some(dir) => Some(crate::adapter::load(dir, &mut loaded)?),
        None => None,
    };
    Ok(Session { device, loaded, adapter })
}

/// `--model`, with `--tokenizer` when given.
pub fn model_source(args: &ModelArgs) -> anyhow::Result<ModelSource> {
    match &args.tokenizer {
        None => Ok(args.model.clone()),
        Some(tokenizer) => args
            .model
            .clone()
            .with_tokenizer(tokenizer.clone())
            .map_err(|e| anyhow::anyhow!("--tokenizer: {e}")),
    }
}
