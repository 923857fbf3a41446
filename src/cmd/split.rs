//! `gacha split DATA --valid N|F --seed S [--stratify] --out DIR`: the users' shuffle script,
//! reproducibly. Writes DIR/train.jsonl and DIR/valid.jsonl (`data::split_files`).

use anyhow::Context;

use crate::cli::SplitArgs;
use crate::cmd::Outcome;
use crate::data::jsonl::load_dataset;
use crate::data::split::{split_indices, Stratify, ValidSize};
use crate::data::split_files::write_split;
use crate::data::Label;

pub fn run(args: &SplitArgs) -> anyhow::Result<Outcome> {
    let opts = super::data_options(&args.options)?;
    let valid: ValidSize = args.valid.parse().context("--valid")?;
    let dataset = load_dataset(&args.data, &opts)?;
    let labels: Vec<Label> = dataset.examples.iter().map(|e| e.label).collect();
    let stratify = if args.stratify { Stratify::ByLabel } else { Stratify::No };
    let split = split_indices(&labels, &valid, args.seed, stratify)
        .with_context(|| format!("{}: cannot split", args.data.display()))?;

    let escaping = write_split(&dataset, &split, &args.out)?;

    let count = |indices: &[usize], label: Label| indices.iter().filter(|&&i| labels[i] == label).count();
    let describe = |indices: &[usize]| {
        format!(
            "{} ({} {}, {} {})",
            indices.len(),
            opts.answers.positive,
            count(indices, Label::Positive),
            opts.answers.negative,
            count(indices, Label::Negative)
        )
    };
    super::stdout::print(&format!(
        "{}: train {}, valid {} (seed {}, {}) -> {}\n",
        args.data.display(),
        describe(&split.train),
        describe(&split.valid),
        args.seed,
        if args.stratify { "stratified" } else { "not stratified" },
        args.out.display()
    ))?;
    if escaping {
        crate::logging::warn!(
            "image paths in {} point outside its folder; read these files with --allow-outside-paths \
             (in a spec: allow_outside_paths = true under [data])",
            args.out.display()
        );
    }
    Ok(Outcome::Success)
}
