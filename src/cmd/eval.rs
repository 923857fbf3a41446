//! `gacha eval`: the users' `Result:` block (tp/tn/fp/fn, accuracy, precision, recall,
//! F-measure) for each dataset given. Every dataset is read and checked before any is scored.

use crate::cli::EvalArgs;
use crate::data::jsonl::load_dataset;
use crate::eval::result::{confusion, result_block};
use crate::eval::score::{score_dataset, ScoreOptions};

pub fn run(args: &EvalArgs) -> anyhow::Result<crate::cmd::Outcome> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.threshold),
        "--threshold must be between 0 and 1, got {}",
        args.threshold
    );
    let options = super::data_options(&args.data_options)?;
    let datasets = args.files.iter().map(|f| load_dataset(f, &options)).collect::<Result<Vec<_>, _>>()?;
    let session = super::setup::open(&args.model, &options.answers)?;
    let opts =
        ScoreOptions { prompt: args.prompt.clone(), images: options.images, batch_size: args.batch_size };
    for (i, (file, dataset)) in args.files.iter().zip(&datasets).enumerate() {
        let rows = score_dataset(&session.loaded, &session.device, dataset, &opts)?;
        let separator = if i == 0 { "" } else { "\n" };
        let block = result_block(&file.display().to_string(), &confusion(&rows, args.threshold));
        super::stdout::print(&format!("{separator}{block}"))?;
    }
    Ok(crate::cmd::Outcome::Success)
}
