//! Hand-made trial records for unit tests of ranking and exporters.

use super::record::Stage2Ran;
use super::record::{AttemptRecord, Status, TrialOutcome, TrialRecord, ValidAnswer};
use crate::data::Label;
use crate::eval::answer_logits::AnswerLogits;
use crate::eval::{Confusion, SplitConfusions};
use std::path::Path;

use super::judge::{summarize_configs, ConfigSummary};
use super::layout::{ResultsDir, TrialPaths};
use super::manifest::Manifest;
use crate::spec::{parse_spec, ConfigId, SweepSpec, Trial, TrialId, TrialParams};

fn counts([tp, tn, fp, fn_]: [u64; 4]) -> Confusion {
    Confusion { tp, tn, fp, fn_ }
}

/// A trial: seed 1, valid 10, lr 0.03, 4 steps, prompt `Is it "ok"?`; base model says "no" to all.
/// `valid` is the trained model's [tp, tn, fp, fn] on valid; train after is [4, 4, 0, 0].
pub fn record(id: &str, status: Status, valid: [u64; 4], final_loss: Option<f64>) -> TrialRecord {
    let params: TrialParams = toml::from_str(
        "seed = 1\nvalid = 10\nprompt = 'Is it \"ok\"?'\n[train]\nlearning_rate = 0.03\nsteps = 4\n",
    )
    .expect("valid test parameters");
    let done = status == Status::Done;
    let outcome = TrialOutcome {
        id: TrialId::parse(id).expect("a 12-digit hex id"),
        status,
        reseeds: 0,
        attempts: vec![AttemptRecord::Finished { seed: 1 }],
        before: Some(SplitConfusions { train: counts([0, 4, 0, 4]), valid: counts([0, 5, 0, 5]) }),
        after: done.then_some(SplitConfusions { train: counts([4, 4, 0, 0]), valid: counts(valid) }),
        final_loss,
        stage2: Stage2Ran::NotConfigured,
        error: (status == Status::Failed).then(|| "out of memory, at step 2".to_string()),
        failure: None,
        training_secs: 1.5,
        trial_secs: 2.25,
        started_at: "2026-01-02T03:04:05Z".into(),
        finished_at: "2026-01-02T03:04:07Z".into(),
        valid_answers: Vec::new(),
    };
    TrialRecord { params, config: ConfigId::for_tests("c0c0c0c0c0c0"), outcome }
}

/// A pull of `trial` (its id, parameters and config) that ended with `status`. `answers` are its
/// validation images `img/0.png`, `img/1.png`, … as label then answer: `"yy"` (a yes answered
/// yes), `"yn"`, `"ny"` or `"nn"`. Before training it answered no to each (`before.valid` holds
/// the labels); when done, `after.valid` counts `answers` and they are its `valid_answers`.
pub fn pull(trial: &Trial, status: Status, answers: &[&str], final_loss: Option<f64>) -> TrialRecord {
    let answers: Vec<ValidAnswer> = answers
        .iter()
        .enumerate()
        .map(|(i, pair)| {
            let word = |at: usize| match pair.as_bytes().get(at) {
                Some(b'y') => Label::Positive,
                Some(b'n') => Label::Negative,
                _ => panic!("{pair:?}: expected yy, yn, ny or nn"),
            };
            ValidAnswer::new(&format!("img/{i}.png"), word(0), word(1))
        })
        .collect();
    let label = |yes: bool| if yes { Label::Positive } else { Label::Negative };
    let after =
        Confusion::from_pairs(answers.iter().map(|a| (label(a.positive), label(a.answered_positive))));
    let before = Confusion::from_pairs(answers.iter().map(|a| (label(a.positive), Label::Negative)));
    let mut r = record(trial.id.as_str(), status, [after.tp, after.tn, after.fp, after.fn_], final_loss);
    r.params = trial.params.clone();
    r.config = trial.config.clone();
    r.outcome.before = Some(SplitConfusions { train: counts([0, 4, 0, 4]), valid: before });
    if status == Status::Done {
        r.outcome.valid_answers = answers;
    }
    r
}

/// A done pull of `trial` whose validation images `img/0.png`, … are labelled `labels[i]` (yes
/// when true) and scored z = `logit_diffs[i]` (logits ±z/2); it answered yes where z > 0.
pub fn scored_pull(trial: &Trial, labels: &[bool], logit_diffs: &[f64]) -> TrialRecord {
    let pairs: Vec<&str> = labels
        .iter()
        .zip(logit_diffs)
        .map(|(&yes, &z)| match (yes, z > 0.0) {
            (true, true) => "yy",
            (true, false) => "yn",
            (false, true) => "ny",
            (false, false) => "nn",
        })
        .collect();
    let mut r = pull(trial, Status::Done, &pairs, Some(0.1));
    for (answer, &z) in r.outcome.valid_answers.iter_mut().zip(logit_diffs) {
        answer.logits = Some(AnswerLogits::from_logits(z / 2.0, -z / 2.0));
    }
    r
}

/// Two configs (a prompt with a comma and quotes, and one with a long question), two seeds.
pub fn two_configs() -> (SweepSpec, Vec<ConfigSummary>) {
    let text = "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"d.jsonl\"\n\
                [train]\nlearning_rate = 0.03\n[sweep]\nseeds = [1, 2]\nvalid = [4]\n\
                prompt = ['Is it \"ok\", then?', 'Does this advertisement break any of the rules?']\n";
    let spec = parse_spec(text, Path::new("s.toml")).unwrap();
    let t = |seed: u64, prompt: usize| {
        let want = if prompt == 0 { "Is it" } else { "Does" };
        let found = spec.trials.iter().find(|t| {
            t.params.seed == seed && t.params.prompt.as_deref().is_some_and(|p| p.starts_with(want))
        });
        found.expect("a trial")
    };
    let records = vec![
        // "ok" prompt: tp 2 tn 1 fp 1, then tp 1 tn 2 fn 1.
        pull(t(1, 0), Status::Done, &["yy", "yy", "nn", "ny"], Some(0.25)),
        pull(t(2, 0), Status::Done, &["yy", "yn", "nn", "nn"], Some(0.5)),
        // Long prompt: tp 1 tn 2 fn 1, then diverged on 2 yes, 2 no.
        pull(t(1, 1), Status::Done, &["yy", "yn", "nn", "nn"], Some(0.125)),
        pull(t(2, 1), Status::Diverged, &["yn", "yn", "nn", "nn"], None),
    ];
    let configs = summarize_configs(&records, &spec, &Default::default());
    (spec, configs)
}

/// `record`'s trial folder in `dir` as a worker leaves it: `split.json` with as many images as
/// its counts, `outcome.json`, and for a done trial `weights/w.bin` (holding its id) listed in
/// `weights.sha256`.
pub fn write_trial_folder(dir: &ResultsDir, record: &TrialRecord) -> TrialPaths {
    let paths = dir.trial(record.id());
    std::fs::create_dir_all(&paths.dir).unwrap();
    let before = record.outcome.before.expect("test records have scores before training");
    let images = |n: u64, side: &str| (0..n).map(|i| format!("{side}/{i}.png")).collect::<Vec<_>>();
    let split = serde_json::json!({
        "train": images(before.train.total(), "train"),
        "valid": images(before.valid.total(), "valid"),
    });
    std::fs::write(paths.split(), serde_json::to_vec(&split).unwrap()).unwrap();
    if record.outcome.has_weights() {
        std::fs::create_dir_all(paths.weights()).unwrap();
        std::fs::write(paths.weights().join("w.bin"), record.id().as_str()).unwrap();
        let listed = Manifest::of(&paths.dir, ["weights/w.bin".to_string()]).unwrap();
        listed.write(&paths.weights_manifest()).unwrap();
    }
    std::fs::write(paths.outcome(), serde_json::to_vec(&record.outcome).unwrap()).unwrap();
    paths
}
