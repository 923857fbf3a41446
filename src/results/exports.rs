//! What a sweep writes beside its trial folders, built from their records: the leaderboard,
//! `configs.csv`, a race's `race.json`, `best/` and the weights budget (`sweep::ledger` says
//! when). The bytes come from `csv.rs` and `config_columns.rs`; `report.html` is the command's
//! (`report::write_report`).

use super::best::{self, Prune};
use super::config_columns::configs_csv;
use super::csv::leaderboard_csv;
use super::judge;
use super::layout::{ResultsDir, CONFIGS_FILE, LEADERBOARD_FILE, RACE_FILE};
use super::race::Standings;
use super::rank::{rank, winner};
use super::record::TrialRecord;
use super::staging::tidy;
use crate::fsutil::write_atomic;
use crate::spec::{FinalModel, SweepSpec};

/// Write the leaderboard, `configs.csv`, `best/` and the weights budget from `records`: every
/// finished trial of `spec`, in spec order (as `ResultsDir::read_records` reads them).
/// A race also writes `race.json`, and `configs.csv` says where each config stands.
pub fn write_exports(
    dir: &ResultsDir,
    spec: &SweepSpec,
    records: &[TrialRecord],
    prune: Prune,
    standings: &Standings,
) -> anyhow::Result<()> {
    dir.check_still_there()?;
    let ranked = rank(records, spec.select.metric);
    write_atomic(&dir.path(LEADERBOARD_FILE), &leaderboard_csv(&ranked))?;
    let (standings, race) = standings.judge(records)?;
    if let Some(race) = race {
        write_atomic(&dir.path(RACE_FILE), &serde_json::to_vec_pretty(&race)?)?;
    }
    let configs = judge::summarize_configs(records, spec, &standings);
    write_atomic(&dir.path(CONFIGS_FILE), &configs_csv(spec, &configs))?;
    follow_winner(dir, spec, winner(&ranked, spec.select.metric))?;
    best::prune_weights(dir, spec, &ranked, &configs, prune)
}

/// Make `best/` hold `winner`'s folder (none: no `best/`), unless it holds this spec's final
/// model: a soup or refit in `best/` is the final step's; until then `best/` follows the top
/// trial. A soup or refit of a config the spec no longer has (an edited spec) is not kept: the
/// final step of this spec may not be able to replace it (issue 29, case 6). Whatever a killed
/// swap of `best/` left is finished first, in either case.
pub fn follow_winner(dir: &ResultsDir, spec: &SweepSpec, winner: Option<&TrialRecord>) -> anyhow::Result<()> {
    dir.check_still_there()?;
    tidy(dir)?;
    let kind = spec.select.final_model;
    let final_made = kind != FinalModel::BestTrial
        && dir.read_final()?.is_some_and(|made| {
            made.final_model == kind && spec.trials.iter().any(|t| t.config == made.config)
        });
    if !final_made {
        best::update_best(dir, winner)?;
    }
    Ok(())
}
