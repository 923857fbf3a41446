//! `gacha export`: the model with its adapter applied, written as a checkpoint. `--format npz`
//! writes a big_vision `.npz` shaped like the `--model` one (the JAX scripts load it as they load
//! the Kaggle file).

use anyhow::bail;

use crate::cli::{ExportArgs, ExportFormat};
use crate::data::Answers;
use crate::model::{big_vision, ModelSource};

pub fn run(args: &ExportArgs) -> anyhow::Result<crate::Outcome> {
    match args.format {
        ExportFormat::Npz => {
            let source = super::setup::model_source(&args.model)?;
            let ModelSource::BigVision { npz, .. } = &source else {
                bail!(
                    "--format npz: --model must be a big_vision .npz (its keys, shapes and dtypes are \
                     what is written), got {source}"
                );
            };
            let session = super::setup::open(&args.model, &Answers::default())?;
            big_vision::export_npz(&session.loaded.model, npz, &args.out)?;
        }
    }
    crate::info!("wrote {}", args.out.display());
    Ok(crate::Outcome::Success)
}
