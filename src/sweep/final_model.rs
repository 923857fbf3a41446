//! The final model in `best/`, made once every trial has finished (`[select] final`):
//!
//! - `best_trial`: the leaderboard's first trial, as trained (`best/` already holds its copy);
//! - `soup`: the average of the trained weights of the winning config's done pulls;
//! - `refit`: the winning config trained again on every non-test image, one run per refit seed
//!   (`refit/<id>/`, resumable like trials), then souped.
//!
//! With `[validation] test`, the final model answers the test images and `best/final.json`
//! keeps its counts: the only estimate of its quality that no choice has seen. With a precision
//! target, `final.json` carries the winning config's operating point (threshold, temperature,
//! target) and the test counts at that threshold beside those at 0.5. The model is
//! built in `.final.tmp/` and swapped in whole; when `best/final.json` already describes the
//! same model (same kind, config and members), nothing is redone.

use std::path::PathBuf;

use anyhow::Context;

use super::best::install_best;
use super::runner::TrialRunner;
use super::trial::{run_trial, TrialContext, TrialEnd};
use crate::eval::answer_logits::AnswerLogits;
use crate::eval::Confusion;
use crate::fsutil::write_atomic;
use crate::results::judge::ConfigSummary;
use crate::results::layout::{remove_dir_if_present, TrialPaths, BEST_DIR, FINAL_FILE};
use crate::results::record::{FinalRecord, Status, TrialRecord};
use crate::spec::{FinalModel, Trial};

/// Where the final model is built before it replaces `best/`.
const FINAL_TMP: &str = ".final.tmp";

/// How making the final model ended.
#[derive(Debug)]
pub enum FinalEnd {
    Made(FinalRecord),
    /// No model could be made (say why); `best/` is left as it is.
    None(String),
    /// Stopped on request during a refit run; the same command resumes.
    Stopped,
}

/// Make `best/` hold the final model of the spec's kind. `top` is the leaderboard's first trial,
/// `winning` the winning config; `budget` why the sweep stopped before it was complete, if it did.
pub fn make_final(
    ctx: &TrialContext,
    records: &[TrialRecord],
    top: &TrialRecord,
    winning: &ConfigSummary,
    runner: &mut dyn TrialRunner,
    budget: Option<String>,
) -> anyhow::Result<FinalEnd> {
    let dir = &ctx.results.dir;
    let kind = ctx.spec.select.final_model;
    let config = if kind == FinalModel::BestTrial { &top.config } else { &winning.id };
    // The threshold was chosen for the winning config: a best trial of another ships none.
    let operating_point = winning.operating_point.filter(|_| config == &winning.id);
    let Some(trial) = ctx.spec.trials.iter().find(|t| &t.config == config) else {
        anyhow::bail!("config {config} is not in the spec");
    };
    let members: Vec<TrialPaths> = match kind {
        FinalModel::BestTrial => vec![dir.trial(top.id())],
        FinalModel::Soup => records
            .iter()
            .filter(|r| &r.config == config && r.outcome.status == Status::Done)
            .map(|r| dir.trial(r.id()))
            .filter(|paths| paths.weights().exists())
            .collect(),
        FinalModel::Refit => match refits(ctx, trial, runner)? {
            Some(members) => members,
            None => return Ok(FinalEnd::Stopped),
        },
    };
    if members.is_empty() {
        return Ok(FinalEnd::None(format!(
            "{kind}: config {config} has no trained weights to make a model of{}",
            if kind == FinalModel::Soup { " (were they removed by keep?)" } else { "" }
        )));
    }
    let record = FinalRecord {
        final_model: kind,
        config: config.clone(),
        config_label: trial.config_label.clone(),
        members: members.iter().map(|m| dir.relative(&m.dir)).collect(),
        test: None,
        budget,
        operating_point: operating_point.map(Box::new),
        test_at_threshold: None,
    };
    if let Some(existing) = dir.read_final()? {
        if (FinalRecord { test: None, test_at_threshold: None, ..existing.clone() }) == record {
            return Ok(FinalEnd::Made(existing));
        }
    }

    let tmp = dir.path(FINAL_TMP);
    remove_dir_if_present(&tmp)?;
    let built = match kind {
        FinalModel::BestTrial => dir.path(BEST_DIR),
        FinalModel::Soup | FinalModel::Refit => {
            let weights = TrialPaths { dir: tmp.clone() }.weights();
            let from: Vec<PathBuf> = members.iter().map(TrialPaths::weights).collect();
            runner
                .soup(&from, &weights)
                .with_context(|| format!("{kind}: averaging {} models", from.len()))?;
            let config_toml = toml::to_string(&trial.params.config_params())?;
            write_atomic(&TrialPaths { dir: tmp.clone() }.config(), config_toml.as_bytes())?;
            tmp.clone()
        }
    };
    let test = ctx.partition.test();
    let record = if test.is_empty() {
        record
    } else {
        let weights = TrialPaths { dir: built.clone() }.weights();
        let answers = runner
            .answers(&weights, &trial.params.prompt, test)
            .with_context(|| format!("scoring the final model on {} test images", test.len()))?;
        let labels = || test.iter().map(|&i| ctx.dataset.examples[i].label);
        let at_half = answers.iter().map(AnswerLogits::answer);
        let at_threshold = operating_point
            .map(|op| Confusion::from_pairs(labels().zip(answers.iter().map(|a| op.answer(a.logit_diff())))));
        FinalRecord {
            test: Some(Confusion::from_pairs(labels().zip(at_half))),
            test_at_threshold: at_threshold,
            ..record
        }
    };
    write_atomic(&built.join(FINAL_FILE), &serde_json::to_vec_pretty(&record)?)?;
    if built == tmp {
        install_best(dir, &tmp)?;
    }
    Ok(FinalEnd::Made(record))
}

/// Run the refits of `trial`'s config that have not finished; their done folders, or `None`
/// when stopped on request.
fn refits(
    ctx: &TrialContext,
    trial: &Trial,
    runner: &mut dyn TrialRunner,
) -> anyhow::Result<Option<Vec<TrialPaths>>> {
    let mut done = Vec::new();
    for refit in ctx.spec.refit_trials(trial) {
        let paths = ctx.results.dir.refit(&refit.id);
        let outcome = match paths.read_outcome()? {
            Some(outcome) => outcome,
            None => {
                ctx.progress.say(&format!("refit: {}", refit.label));
                match run_trial(ctx, &refit, paths.clone(), runner, None)? {
                    TrialEnd::Recorded(outcome) => *outcome,
                    TrialEnd::Stopped | TrialEnd::ClaimLost => return Ok(None),
                }
            }
        };
        match outcome.status {
            Status::Done => done.push(paths),
            status => {
                crate::logging::warn!(
                    "refit {} ({}) {status}; the final model leaves it out",
                    refit.id,
                    refit.label
                );
            }
        }
    }
    Ok(Some(done))
}
