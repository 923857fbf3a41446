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
//! target) and the test counts at that threshold beside those at 0.5. The model is staged whole
//! (`results::staging`: the top trial's copy, or the soup with its config) and swapped in; when
//! `best/final.json` already describes the same model (same kind, config and members), nothing
//! is redone. The members' weights are checked against their `weights.sha256` before they are
//! averaged. When no model can be made (the winning config's weights were removed by `keep`),
//! `best/` is made to hold the top trial, as the sweep says.

use std::path::PathBuf;

use anyhow::Context;

use super::runner::TrialRunner;
use super::trial::{run_trial, TrialContext, TrialEnd};
use crate::eval::answer_logits::AnswerLogits;
use crate::eval::Confusion;
use crate::fsutil::write_atomic;
use crate::results::best::update_best;
use crate::results::judge::ConfigSummary;
use crate::results::layout::{ResultsDir, TrialPaths, FINAL_FILE, WEIGHTS_MANIFEST};
use crate::results::manifest::{files_under, Manifest};
use crate::results::record::{FinalRecord, Status, TrialRecord};
use crate::results::staging::{Staged, BEST_NEW, FINAL_NEW};
use crate::spec::{FinalModel, Trial};

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
            .filter(TrialPaths::has_weights)
            .collect(),
        FinalModel::Refit => match refits(ctx, trial, runner)? {
            Some(members) => members,
            None => return Ok(FinalEnd::Stopped),
        },
    };
    if members.is_empty() {
        update_best(dir, Some(top))?;
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

    let mut staged = stage_model(dir, kind, trial, &members, runner)?;
    let test = ctx.partition.test();
    let record = if test.is_empty() {
        record
    } else {
        let weights = TrialPaths { dir: staged.dir.clone() }.weights();
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
    write_atomic(&staged.dir.join(FINAL_FILE), &serde_json::to_vec_pretty(&record)?)?;
    staged.add(FINAL_FILE)?;
    staged.install(dir)?;
    Ok(FinalEnd::Made(record))
}

/// The final model staged whole, not yet installed: a copy of the top trial, or the members'
/// weights (checked against their manifests) averaged, with its manifest and config.
fn stage_model(
    dir: &ResultsDir,
    kind: FinalModel,
    trial: &Trial,
    members: &[TrialPaths],
    runner: &mut dyn TrialRunner,
) -> anyhow::Result<Staged> {
    Ok(match kind {
        FinalModel::BestTrial => {
            let mut staged = Staged::new(dir, BEST_NEW)?;
            staged.copy_trial(&members[0])?;
            staged
        }
        FinalModel::Soup | FinalModel::Refit => {
            for member in members {
                member.verify_weights().with_context(|| format!("{kind}: checking the members' weights"))?;
            }
            let mut staged = Staged::new(dir, FINAL_NEW)?;
            let built = TrialPaths { dir: staged.dir.clone() };
            let from: Vec<PathBuf> = members.iter().map(TrialPaths::weights).collect();
            runner
                .soup(&from, &built.weights())
                .with_context(|| format!("{kind}: averaging {} models", from.len()))?;
            let listed = Manifest::of(&built.dir, files_under(&built.dir, &built.weights())?)?;
            listed.write(&built.weights_manifest())?;
            staged.add_all("weights")?;
            staged.add(WEIGHTS_MANIFEST)?;
            let config_toml = toml::to_string(&trial.params.config_params())?;
            write_atomic(&built.config(), config_toml.as_bytes())?;
            staged.add("config.toml")?;
            staged
        }
    })
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
