//! `gacha export`: the model with its adapter applied, written as a checkpoint. `--format hf`
//! (the default) writes a Hugging Face checkpoint folder from the `--model` folder or hub
//! snapshot (transformers loads it without PEFT); `--format npz` a big_vision `.npz` shaped like
//! the `--model` one (the JAX scripts load it as they load the Kaggle file). Either way the model
//! is loaded and merged in f32; `--dtype` is the dtype written.

use anyhow::bail;

use crate::cli::{DTypeArg, ExportArgs, ExportFormat};
use crate::data::Answers;
use crate::model::hf_export::{check_out, export_hf, HfExport};
use crate::model::hub::Snapshot;
use crate::model::{big_vision, ModelSource};

pub fn run(args: &ExportArgs) -> anyhow::Result<crate::cmd::Outcome> {
    let source = super::setup::model_source(&args.model)?;
    let written_dtype = args.model.runtime.dtype;
    let mut load = args.model.clone();
    load.runtime.dtype = Some(DTypeArg::F32);
    match args.format {
        ExportFormat::Hf => {
            let (ModelSource::Checkpoint(base) | ModelSource::Hub(Snapshot { dir: base, .. })) = &source
            else {
                bail!(
                    "--format hf: --model must be a Hugging Face checkpoint folder or hub id (its files \
                     are copied beside the merged weights), got {source}; a big_vision .npz exports \
                     with --format npz"
                );
            };
            check_out(&args.out)?;
            let session = super::setup::open(&load, &Answers::default())?;
            let dtype = written_dtype.map(|d| DTypeArg::or_default(Some(d), args.model.runtime.device));
            let opts = HfExport { dtype, max_shard_bytes: args.max_shard_size };
            export_hf(&session.loaded.model, base, &args.out, opts)?;
        }
        ExportFormat::Npz => {
            let ModelSource::BigVision { npz, .. } = &source else {
                bail!(
                    "--format npz: --model must be a big_vision .npz (its keys, shapes and dtypes are \
                     what is written), got {source}"
                );
            };
            if written_dtype.is_some() {
                bail!("--format npz writes each array in the dtype of the --model .npz; leave out --dtype");
            }
            let session = super::setup::open(&load, &Answers::default())?;
            big_vision::export_npz(&session.loaded.model, npz, &args.out)?;
        }
    }
    crate::logging::info!("wrote {}", args.out.display());
    Ok(crate::cmd::Outcome::Success)
}
