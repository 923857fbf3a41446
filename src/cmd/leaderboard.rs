//! `gacha leaderboard DIR [DIR2] [--configs]`: a results folder's leaderboard (or its configs) as
//! a table; with two folders, what changed per trial id.

use std::path::Path;

use crate::cli::LeaderboardArgs;
use crate::cmd::Outcome;
use crate::report::configs::configs_table;
use crate::report::table::{leaderboard_diff, leaderboard_table};
use crate::results::judge::summarize_configs;
use crate::results::layout::ResultsDir;
use crate::results::race::read_standings;
use crate::results::rank::rank;
use crate::results::record::TrialRecord;
use crate::spec::SweepSpec;

pub fn run(args: &LeaderboardArgs) -> anyhow::Result<Outcome> {
    let (spec, records) = load(&args.dir)?;
    let ranked = rank(&records, spec.select.metric);
    let text = match &args.other {
        None if args.configs => {
            let standings = read_standings(&ResultsDir::new(&args.dir), &spec)?;
            configs_table(&spec, &summarize_configs(&records, &spec, &standings))
        }
        None => leaderboard_table(&ranked, spec.select.metric),
        Some(other) => {
            let (other_spec, other_records) = load(other)?;
            let other_ranked = rank(&other_records, other_spec.select.metric);
            leaderboard_diff(&ranked, &other_ranked, spec.select.metric)
        }
    };
    super::stdout::print(&text)?;
    Ok(Outcome::Success)
}

/// The spec copy and finished trials of a results folder.
fn load(dir: &Path) -> anyhow::Result<(SweepSpec, Vec<TrialRecord>)> {
    let results = ResultsDir::new(dir);
    let spec = results.read_spec()?;
    let records = results.read_records(&spec)?;
    Ok((spec, records))
}
