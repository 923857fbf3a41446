//! The leaderboard's columns, in one place: their names (derived from `Split`, `Metric` and the
//! `[train]` field names) and how each cell is written.
//!
//! Order: `id, config, status, seed, reseeds, valid, repeat, fold, learning_rate, prompt, steps,
//! final_loss`, the other
//! `[train]` fields (alphabetical), `stage2, diverged_step, error`, the after-training scores
//! `{split}_{tp,tn,fp,fn,accuracy,precision,recall,f1}` for train, valid, all, the same before
//! training prefixed `base_`, then times: `training_s, trial_s, started_at, finished_at`.
//! Only the time columns (`_s`, `_at`) may differ when the same spec runs twice on a CPU.

use crate::eval::{Confusion, Metric, Split};
use crate::results::failure::failure_kind;
use crate::results::record::{AttemptRecord, FailureKind, TrialRecord};
use crate::train::TrainConfig;

/// Before the error of a failed trial that the next run retries (a failure of the environment).
pub const ENVIRONMENT_PREFIX: &str = "environment, retried on the next run: ";

/// A count of the confusion matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Tp,
    Tn,
    Fp,
    Fn,
}

impl Count {
    pub const ALL: [Count; 4] = [Count::Tp, Count::Tn, Count::Fp, Count::Fn];

    pub fn name(self) -> &'static str {
        match self {
            Count::Tp => "tp",
            Count::Tn => "tn",
            Count::Fp => "fp",
            Count::Fn => "fn",
        }
    }

    pub fn of(self, c: &Confusion) -> u64 {
        match self {
            Count::Tp => c.tp,
            Count::Tn => c.tn,
            Count::Fp => c.fp,
            Count::Fn => c.fn_,
        }
    }
}

/// A score cell: a count or a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Count(Count),
    Metric(Metric),
}

/// Scores of the model before or after training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Before,
    After,
}

/// Train fields with their own column up front.
const LEADING_TRAIN_FIELDS: [&str; 2] = ["learning_rate", "steps"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Id,
    Config,
    Status,
    Seed,
    Reseeds,
    Valid,
    Repeat,
    Fold,
    Prompt,
    /// A `[train]` field, by name.
    Train(String),
    FinalLoss,
    Stage2,
    DivergedStep,
    Error,
    Score(When, Split, Stat),
    TrainingSecs,
    TrialSecs,
    StartedAt,
    FinishedAt,
}

/// Every leaderboard column, in order.
pub fn columns() -> Vec<Column> {
    let mut cols = vec![
        Column::Id,
        Column::Config,
        Column::Status,
        Column::Seed,
        Column::Reseeds,
        Column::Valid,
        Column::Repeat,
        Column::Fold,
    ];
    cols.extend([Column::Train("learning_rate".into()), Column::Prompt, Column::Train("steps".into())]);
    cols.push(Column::FinalLoss);
    let mut others: Vec<String> =
        TrainConfig::keys().into_iter().filter(|f| !LEADING_TRAIN_FIELDS.contains(&f.as_str())).collect();
    others.sort();
    cols.extend(others.into_iter().map(Column::Train));
    cols.extend([Column::Stage2, Column::DivergedStep, Column::Error]);
    for when in [When::After, When::Before] {
        for split in Split::ALL {
            cols.extend(Count::ALL.map(|c| Column::Score(when, split, Stat::Count(c))));
            cols.extend(Metric::ALL.map(|m| Column::Score(when, split, Stat::Metric(m))));
        }
    }
    cols.extend([Column::TrainingSecs, Column::TrialSecs, Column::StartedAt, Column::FinishedAt]);
    cols
}

impl Column {
    pub fn name(&self) -> String {
        match self {
            Column::Id => "id".into(),
            Column::Config => "config".into(),
            Column::Status => "status".into(),
            Column::Seed => "seed".into(),
            Column::Reseeds => "reseeds".into(),
            Column::Valid => "valid".into(),
            Column::Repeat => "repeat".into(),
            Column::Fold => "fold".into(),
            Column::Prompt => "prompt".into(),
            Column::Train(field) => field.clone(),
            Column::FinalLoss => "final_loss".into(),
            Column::Stage2 => "stage2".into(),
            Column::DivergedStep => "diverged_step".into(),
            Column::Error => "error".into(),
            Column::Score(when, split, stat) => {
                let base = if *when == When::Before { "base_" } else { "" };
                let stat = match stat {
                    Stat::Count(c) => c.name(),
                    Stat::Metric(m) => m.name(),
                };
                format!("{base}{split}_{stat}")
            }
            Column::TrainingSecs => "training_s".into(),
            Column::TrialSecs => "trial_s".into(),
            Column::StartedAt => "started_at".into(),
            Column::FinishedAt => "finished_at".into(),
        }
    }

    /// The cell of `record` in this column; empty when undefined or not applicable.
    pub fn cell(&self, record: &TrialRecord) -> String {
        let (params, outcome) = (&record.params, &record.outcome);
        match self {
            Column::Id => outcome.id.to_string(),
            Column::Config => record.config.to_string(),
            Column::Status => outcome.status.to_string(),
            Column::Seed => params.seed.to_string(),
            Column::Reseeds => outcome.reseeds.to_string(),
            Column::Valid => params.valid.map(|v| v.to_string()).unwrap_or_default(),
            Column::Repeat => params.fold.map(|f| f.repeat.to_string()).unwrap_or_default(),
            Column::Fold => params.fold.map(|f| format!("{}/{}", f.fold, f.folds)).unwrap_or_default(),
            Column::Prompt => params.prompt.clone().unwrap_or_default(),
            Column::Train(field) => train_cell(record, field),
            Column::FinalLoss => outcome.final_loss.map(|l| l.to_string()).unwrap_or_default(),
            Column::Stage2 => match outcome.stage2 {
                crate::results::record::Stage2Ran::NotConfigured => String::new(),
                crate::results::record::Stage2Ran::Skipped => "skipped".into(),
                crate::results::record::Stage2Ran::Ran => "ran".into(),
            },
            Column::DivergedStep => match outcome.attempts.last() {
                Some(AttemptRecord::Diverged { step, .. }) => step.to_string(),
                _ => String::new(),
            },
            Column::Error => match (failure_kind(outcome), &outcome.error) {
                (Some(FailureKind::Environment), Some(error)) => {
                    format!("{ENVIRONMENT_PREFIX}{error}")
                }
                (_, error) => error.clone().unwrap_or_default(),
            },
            Column::Score(when, split, stat) => {
                let scores = if *when == When::Before { outcome.before } else { outcome.after };
                let Some(confusion) = scores.map(|s| s.get(*split)) else { return String::new() };
                match stat {
                    Stat::Count(c) => c.of(&confusion).to_string(),
                    Stat::Metric(m) => confusion.value(*m).map(|v| format!("{v:.4}")).unwrap_or_default(),
                }
            }
            Column::TrainingSecs => format!("{:.3}", outcome.training_secs),
            Column::TrialSecs => format!("{:.3}", outcome.trial_secs),
            Column::StartedAt => outcome.started_at.clone(),
            Column::FinishedAt => outcome.finished_at.clone(),
        }
    }
}

/// A `[train]` field as text: numbers and words as written, lists space-separated.
fn train_cell(record: &TrialRecord, field: &str) -> String {
    let train = serde_json::to_value(&record.params.train).expect("train parameters serialize to JSON");
    plain(&train[field])
}

pub fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(" "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
