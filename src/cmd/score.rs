//! `gacha score`: one CSV row per image of a dataset (image,label,p_yes,logit_yes,logit_no,loss).

use crate::cli::ScoreArgs;
use crate::data::jsonl::load_dataset;
use crate::eval::score::{csv_bytes, score_dataset, ScoreOptions};
use crate::fsutil::write_atomic;

pub fn run(args: &ScoreArgs) -> anyhow::Result<crate::cmd::Outcome> {
    let options = super::data_options(&args.data_options)?;
    let dataset = load_dataset(&args.data, &options)?;
    let session = super::setup::open(&args.model, &options.answers)?;
    let opts =
        ScoreOptions { prompt: args.prompt.clone(), images: options.images, batch_size: args.batch_size };
    let rows = score_dataset(&session.loaded, &session.device, &dataset, &opts)?;
    write_atomic(&args.out, &csv_bytes(&rows, &options.answers)?)?;
    crate::logging::info!("scored {} images of {} → {}", rows.len(), args.data.display(), args.out.display());
    Ok(crate::cmd::Outcome::Success)
}
