//! One trial, or a pack of trials trained together, from start to finish: a fresh folder, its
//! split, attempts until one finishes (a diverged attempt is retried with a derived seed, up to
//! `abort.max_reseeds` times), then the loss log and, last and atomically, `outcome.json`.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use serde::Serialize;

use super::progress::{Progress, TrialObserver};
use super::runner::{reseed, StepObserver, TrialJob, TrialRun, TrialRunner};
use super::stop::StopFlag;
use crate::data::split::SplitIndices;
use crate::data::{Dataset, Preprocessing};
use crate::eval::{Confusion, SplitConfusions};
use crate::fsutil::write_atomic;
use crate::model::ModelSource;
use crate::results::claim::Claim;
use crate::results::failure::classify;
use crate::results::folder::ResultsFolder;
use crate::results::layout::{remove_dir_if_present, TrialPaths};
use crate::results::manifest::{files_under, Manifest};
use crate::results::record::{
    utc_timestamp, AttemptRecord, FailureKind, LossLine, Status, TrialOutcome, ValidAnswer,
};
use crate::spec::partition::Partition;
use crate::spec::{ContentDigests, DataSpec, SweepSpec, Trial, TrialId, TrialParams};
use crate::train::TrainOutcome;

/// How `run_trial` returned.
#[derive(Debug)]
pub enum TrialEnd {
    /// The trial finished (done, diverged or failed) and its outcome is on disk.
    Recorded(Box<TrialOutcome>),
    /// Stopped on request; its folder is unfinished and will be redone.
    Stopped,
    /// Another worker took the trial's claim over (this one was frozen past the stale period):
    /// nothing was recorded; the new holder runs the trial.
    ClaimLost,
}

/// What a trial reads: the spec, the dataset, where to write.
pub struct TrialContext<'a> {
    pub spec: &'a SweepSpec,
    pub dataset: &'a Dataset,
    /// The test images and folds, drawn once for the sweep.
    pub partition: &'a Partition,
    pub results: &'a ResultsFolder,
    pub progress: &'a Progress,
    pub stop: &'a StopFlag,
}

/// `config.toml`: the resolved parameters and inputs of a trial.
#[derive(Serialize)]
struct TrialConfig<'a> {
    id: &'a TrialId,
    model: String,
    /// A hub id's snapshot folder and its commit (absent for other models).
    #[serde(skip_serializing_if = "Option::is_none")]
    model_snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_sha: Option<&'a str>,
    /// The SHA-256 of the dataset and model files, as in the trial's id.
    #[serde(flatten)]
    digests: &'a ContentDigests,
    #[serde(flatten)]
    params: &'a TrialParams,
    data: DataSpec,
    /// What the model is fed (its own preprocessing with `[data] resize` applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    preprocessing: Option<Preprocessing>,
}

/// `split.json`: the images (as written in the dataset) on each side.
#[derive(Serialize)]
struct SplitFile<'a> {
    train: Vec<&'a str>,
    valid: Vec<&'a str>,
}

/// Attempts so far.
#[derive(Default)]
struct Attempts {
    records: Vec<AttemptRecord>,
    losses: Vec<LossLine>,
    training_secs: f64,
    before: Option<SplitConfusions>,
    last: Option<TrialRun>,
    error: Option<String>,
    failure: Option<FailureKind>,
}

/// One trial of a pack, as the driver hands it over: the folder to run it in (emptied first;
/// `ResultsDir::trial` or `::refit`) and its claim (a refit holds none: the final model is made
/// under the export lock).
pub struct PackedTrial<'a> {
    pub trial: &'a Trial,
    pub paths: TrialPaths,
    pub claim: Option<&'a Claim>,
}

/// A trial of a pack while it runs.
struct Running<'a> {
    trial: &'a Trial,
    paths: TrialPaths,
    claim: Option<&'a Claim>,
    split: SplitIndices,
    attempts: Attempts,
    started: (Instant, SystemTime),
    standing: Standing,
}

/// Where a trial of a pack stands between rounds of attempts.
enum Standing {
    /// It gets another attempt, if it has one left.
    Attempting,
    /// Done with attempts (finished, failed, or out of reseeds): its outcome is to be recorded.
    ToRecord,
    /// Ended without an outcome (stopped, or its claim lost).
    Ended(TrialEnd),
}

impl Running<'_> {
    fn lost(&self) -> bool {
        self.claim.is_some_and(Claim::is_lost)
    }
}

/// Run `trial` in `paths` holding `claim`: [`run_trials`] for a pack of one.
pub fn run_trial(
    ctx: &TrialContext,
    trial: &Trial,
    paths: TrialPaths,
    runner: &mut dyn TrialRunner,
    claim: Option<&Claim>,
) -> anyhow::Result<TrialEnd> {
    let mut ends = run_trials(ctx, vec![PackedTrial { trial, paths, claim }], runner)?;
    Ok(ends.remove(0))
}

/// Run the trials of a pack (of one [`super::runner::pack_key`]): each its fresh folder, its
/// split, attempts until one finishes (a round of attempts trains every trial still unfinished as
/// one pack), then its loss log and outcome. One end per trial, in order.
pub fn run_trials(
    ctx: &TrialContext,
    pack: Vec<PackedTrial>,
    runner: &mut dyn TrialRunner,
) -> anyhow::Result<Vec<TrialEnd>> {
    let mut running = Vec::with_capacity(pack.len());
    for PackedTrial { trial, paths, claim } in pack {
        let started = (Instant::now(), SystemTime::now());
        let paths = ctx.results.fresh(paths)?;
        let split = ctx.partition.split(&trial.params)?;
        write_inputs(ctx, trial, &paths, &split)?;
        running.push(Running {
            trial,
            paths,
            claim,
            split,
            attempts: Attempts::default(),
            started,
            standing: Standing::Attempting,
        });
    }
    for attempt in 0.. {
        let round: Vec<usize> = (0..running.len())
            .filter(|&i| {
                matches!(running[i].standing, Standing::Attempting)
                    && attempt <= running[i].trial.params.abort.max_reseeds
            })
            .collect();
        if round.is_empty() {
            break;
        }
        run_round(ctx, &mut running, &round, attempt, runner)?;
    }
    running.into_iter().map(|r| finish(ctx, r)).collect()
}

/// One round of attempts: attempt `attempt` of the trials `round` of `running`, trained as one
/// pack; each trial's standing is updated from its result.
fn run_round(
    ctx: &TrialContext,
    running: &mut [Running],
    round: &[usize],
    attempt: u32,
    runner: &mut dyn TrialRunner,
) -> anyhow::Result<()> {
    let packed = running.len() > 1;
    let mut weights = Vec::with_capacity(round.len());
    for &i in round {
        let r = &running[i];
        remove_dir_if_present(&r.paths.weights())?;
        // Not `create_dir_all`: a results folder removed meanwhile is not made again.
        std::fs::create_dir(r.paths.weights())
            .with_context(|| format!("{}: cannot create", r.paths.weights().display()))?;
        ctx.progress.attempt_started(r.trial, attempt, reseed(r.trial.params.seed, attempt), packed);
        weights.push(r.paths.weights());
    }
    let jobs: Vec<TrialJob> = round
        .iter()
        .zip(&weights)
        .map(|(&i, weights_dir)| {
            let r = &running[i];
            TrialJob {
                id: &r.trial.id,
                params: &r.trial.params,
                train: r.trial.params.train_config(reseed(r.trial.params.seed, attempt)),
                attempt,
                split: &r.split,
                weights_dir,
            }
        })
        .collect();
    let mut observers: Vec<TrialObserver> = round
        .iter()
        .map(|&i| TrialObserver {
            trial: running[i].trial,
            packed,
            progress: ctx.progress,
            stop: ctx.stop,
            lost: running[i].claim.map(Claim::lost_flag),
        })
        .collect();
    let mut watching: Vec<&mut dyn StepObserver> =
        observers.iter_mut().map(|o| o as &mut dyn StepObserver).collect();
    let attempt_started = Instant::now();
    let results: Vec<anyhow::Result<TrialRun>> = match runner.run_pack(&jobs, &mut watching) {
        Ok(results) => results,
        // One error for the whole pack: each trial fails with it, of its kind.
        Err(err) => {
            let kind = classify(&err);
            round.iter().map(|_| Err(anyhow::Error::new(PackError(format!("{err:#}"), kind)))).collect()
        }
    };
    drop(jobs);
    for (&i, result) in round.iter().zip(results) {
        let elapsed = attempt_started.elapsed().as_secs_f64();
        take_attempt(ctx, &mut running[i], attempt, result, elapsed, packed);
        if matches!(running[i].attempts.records.last(), Some(AttemptRecord::Finished { .. })) {
            list_weights(&running[i].paths)?;
        }
    }
    Ok(())
}

/// `weights.sha256`: the files the runner saved in `weights/`, each with its SHA-256, written as
/// soon as they are saved (so a sweep killed before the trial is recorded knows them as gacha's)
/// and checked before a soup or `best/` uses them.
fn list_weights(paths: &TrialPaths) -> anyhow::Result<()> {
    let saved = files_under(&paths.dir, &paths.weights())?;
    Manifest::of(&paths.dir, saved)?.write(&paths.weights_manifest())
}

/// Count attempt `attempt` of `r` (its runner's `result`; `elapsed` seconds since the round
/// started) and decide where `r` stands.
fn take_attempt(
    ctx: &TrialContext,
    r: &mut Running,
    attempt: u32,
    result: anyhow::Result<TrialRun>,
    elapsed: f64,
    packed: bool,
) {
    let seed = reseed(r.trial.params.seed, attempt);
    let run = match result.and_then(|run| checked(run, &r.split, ctx.dataset)) {
        Ok(run) => run,
        // An error while a stop was asked for (an interrupted call, say) is the stop's.
        Err(_) if ctx.stop.is_requested() => {
            r.standing = Standing::Ended(TrialEnd::Stopped);
            return;
        }
        Err(_) if r.lost() => {
            r.standing = Standing::Ended(TrialEnd::ClaimLost);
            return;
        }
        Err(err) => {
            r.attempts.records.push(AttemptRecord::Failed { seed });
            r.attempts.error = Some(format!("{err:#}"));
            r.attempts.failure =
                Some(err.downcast_ref::<PackError>().map_or_else(|| classify(&err), |e| e.1));
            // The runner's own count is lost with its error: its time up to the error.
            r.attempts.training_secs += elapsed;
            r.standing = Standing::ToRecord;
            return;
        }
    };
    r.attempts.training_secs += run.training_secs;
    r.attempts.before = r.attempts.before.or(Some(run.before));
    r.attempts.losses.extend(&run.losses);
    match run.end {
        TrainOutcome::Stopped { .. } if r.lost() && !ctx.stop.is_requested() => {
            r.standing = Standing::Ended(TrialEnd::ClaimLost);
            return;
        }
        TrainOutcome::Stopped { .. } => {
            r.standing = Standing::Ended(TrialEnd::Stopped);
            return;
        }
        TrainOutcome::Finished { .. } => r.attempts.records.push(AttemptRecord::Finished { seed }),
        TrainOutcome::Diverged(log) => {
            let (stage, step, loss) = (run.stage, log.step, log.loss);
            r.attempts.records.push(AttemptRecord::Diverged { seed, stage, step, loss });
            let will_reseed = attempt < r.trial.params.abort.max_reseeds;
            ctx.progress.attempt_diverged(r.trial, packed, stage, step, loss, will_reseed);
        }
    }
    if run.end.is_finished() {
        r.standing = Standing::ToRecord;
    }
    r.attempts.last = Some(run);
}

/// A pack's error, as each of its trials records it: the message and its kind.
#[derive(Debug)]
struct PackError(String, FailureKind);

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PackError {}

/// Write a trial's loss log and, last and atomically, its outcome, unless it was stopped or
/// lost.
fn finish(ctx: &TrialContext, r: Running) -> anyhow::Result<TrialEnd> {
    if let Standing::Ended(end) = r.standing {
        return Ok(end);
    }
    let (attempts, paths, split) = (&r.attempts, &r.paths, &r.split);
    let mut outcome = outcome(&r.trial.id, attempts_summary(attempts), attempts, r.started);
    if let (Status::Done, Some(run)) = (outcome.status, &attempts.last) {
        outcome.valid_answers = split
            .valid
            .iter()
            .zip(&run.valid_answers)
            .map(|(&i, &logits)| {
                let example = &ctx.dataset.examples[i];
                ValidAnswer::scored(&example.image, example.label, logits)
            })
            .collect();
    }
    if !outcome.has_weights() {
        remove_dir_if_present(&paths.weights())?;
    }
    let lines: Vec<u8> = attempts.losses.iter().flat_map(json_line).collect();
    write_atomic(&paths.metrics(), &lines)?;
    if r.lost() {
        return Ok(TrialEnd::ClaimLost);
    }
    write_atomic(&paths.outcome(), &serde_json::to_vec_pretty(&outcome)?)?;
    Ok(TrialEnd::Recorded(Box::new(outcome)))
}

fn write_inputs(
    ctx: &TrialContext,
    trial: &Trial,
    paths: &TrialPaths,
    split: &SplitIndices,
) -> anyhow::Result<()> {
    let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path).display().to_string();
    let (model, model_snapshot, model_sha) = match &ctx.spec.model_source {
        ModelSource::Builtin { .. } => (ctx.spec.model.path.clone(), None, None),
        ModelSource::Hub(snapshot) => {
            (ctx.spec.model.path.clone(), Some(absolute(snapshot.dir.clone())), Some(snapshot.sha.as_str()))
        }
        ModelSource::Checkpoint(path) | ModelSource::BigVision { npz: path, .. } => {
            (absolute(path.clone()), None, None)
        }
    };
    let data = DataSpec { path: absolute(ctx.spec.data_path()), ..ctx.spec.data.clone() };
    let config = TrialConfig {
        id: &trial.id,
        model,
        model_snapshot,
        model_sha,
        digests: &ctx.spec.digests,
        params: &trial.params,
        data,
        preprocessing: ctx.spec.preprocessing(),
    };
    write_atomic(&paths.config(), toml::to_string(&config)?.as_bytes())?;
    let images =
        |indices: &[usize]| indices.iter().map(|&i| ctx.dataset.examples[i].image.as_str()).collect();
    let split_file = SplitFile { train: images(&split.train), valid: images(&split.valid) };
    write_atomic(&paths.split(), &serde_json::to_vec_pretty(&split_file)?)
}

/// A runner's report must be consistent with the split it was given, and its valid counts with
/// its valid answers.
fn checked(run: TrialRun, split: &SplitIndices, dataset: &Dataset) -> anyhow::Result<TrialRun> {
    let sizes = (split.train.len() as u64, split.valid.len() as u64);
    let scored = |s: &SplitConfusions| (s.train.total(), s.valid.total());
    for (when, scores) in [("before", Some(&run.before)), ("after", run.after.as_ref())] {
        if let Some(scores) = scores {
            anyhow::ensure!(
                scored(scores) == sizes,
                "runner scored {:?} train/valid images {when} training, the split has {:?}",
                scored(scores),
                sizes
            );
        }
    }
    anyhow::ensure!(
        run.after.is_some() == run.end.is_finished(),
        "runner returned scores after training exactly when it did not finish ({:?})",
        run.end
    );
    if let Some(after) = &run.after {
        anyhow::ensure!(
            run.valid_answers.len() == split.valid.len(),
            "runner answered {} validation images, the split has {}",
            run.valid_answers.len(),
            split.valid.len()
        );
        let counted = Confusion::from_pairs(
            split
                .valid
                .iter()
                .zip(&run.valid_answers)
                .map(|(&i, logits)| (dataset.examples[i].label, logits.answer())),
        );
        anyhow::ensure!(
            counted == after.valid,
            "runner's valid answers count {counted:?}, its valid scores say {:?}",
            after.valid
        );
    }
    Ok(run)
}

fn attempts_summary(attempts: &Attempts) -> Status {
    match (&attempts.error, attempts.records.last()) {
        (Some(_), _) => Status::Failed,
        (None, Some(AttemptRecord::Finished { .. })) => Status::Done,
        _ => Status::Diverged,
    }
}

fn outcome(
    id: &TrialId,
    status: Status,
    attempts: &Attempts,
    started: (Instant, SystemTime),
) -> TrialOutcome {
    let last_attempt = attempts.records.len().saturating_sub(1) as u32;
    TrialOutcome {
        id: id.clone(),
        status,
        reseeds: last_attempt,
        attempts: attempts.records.clone(),
        before: attempts.before,
        after: if status == Status::Done { attempts.last.as_ref().and_then(|r| r.after) } else { None },
        final_loss: attempts.losses.last().filter(|l| l.attempt == last_attempt).map(|l| l.log.loss),
        stage2: attempts.last.as_ref().map(|r| r.stage2).unwrap_or_default(),
        error: attempts.error.clone(),
        failure: attempts.failure,
        valid_answers: Vec::new(),
        training_secs: attempts.training_secs,
        trial_secs: started.0.elapsed().as_secs_f64(),
        started_at: utc_timestamp(started.1),
        finished_at: utc_timestamp(SystemTime::now()),
    }
}

fn json_line(line: &LossLine) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(line).expect("a loss line is numbers");
    bytes.push(b'\n');
    bytes
}
