//! Spec parsing, expansion, ids and error messages.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::params::Stage2When;
use super::*;
use crate::eval::{Metric, Split};
use crate::train::optim::OptimizerKind;
use crate::train::TrainableKind;

const HEAD: &str = "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"data.jsonl\"\n";

fn parse(body: &str) -> Result<SweepSpec, SpecError> {
    parse_spec(&format!("{HEAD}{body}"), Path::new("sweeps/a.toml"))
}

fn error(body: &str) -> String {
    parse(body).expect_err("spec should be rejected").to_string()
}

#[test]
fn a_third_answer_word_is_refused_at_its_line() {
    let text = HEAD.replace(
        "path = \"data.jsonl\"\n",
        "path = \"data.jsonl\"\nanswers = [\"yes\", \"no\", \"maybe\"]\n",
    ) + "[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [10]\n";
    let err = parse_spec(&text, Path::new("x.toml")).unwrap_err().to_string();
    assert!(
        err.starts_with("x.toml: line 6: data.answers: takes exactly two answer words, positive first"),
        "{err}"
    );
    assert!(err.ends_with("got 3: [\"yes\", \"no\", \"maybe\"]"), "{err}");
}

#[test]
fn expands_the_cartesian_product_with_seeds_slowest() {
    let spec = parse(
        "[train]\nsteps = 4\n[sweep]\nlearning_rate = [0.1, 0.01]\nseeds = [1, 2]\nvalid = [10, 0.2]\n",
    )
    .unwrap();
    assert_eq!(spec.trials.len(), 8);
    let labels: Vec<&str> = spec.trials.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(labels[0], "seed=1 valid=10 learning_rate=0.1");
    assert_eq!(labels[1], "seed=1 valid=10 learning_rate=0.01");
    assert_eq!(labels[2], "seed=1 valid=0.2 learning_rate=0.1");
    assert_eq!(labels[4], "seed=2 valid=10 learning_rate=0.1");
    let t = &spec.trials[3].params;
    assert_eq!((t.seed, t.valid, t.train.learning_rate), (1, Some(ValidSize::Fraction(0.2)), 0.01));
    assert_eq!(t.train.steps, 4);
    let keys: Vec<&str> = spec.axes.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys, ["seeds", "valid", "learning_rate"]);
    assert_eq!(spec.axes[2].field, "train.learning_rate");
    assert_eq!(spec.axes[2].line, 9);
}

use crate::data::split::ValidSize;

#[test]
fn fills_documented_defaults() {
    let spec = parse("[train]\nlearning_rate = 0.03\n[sweep]\nseeds = [1]\nvalid = [10]\n").unwrap();
    let p = &spec.trials[0].params;
    assert_eq!(p.train.trainable, TrainableKind::Lora);
    assert_eq!((p.train.lora_rank, p.train.lora_alpha, p.train.steps), (8, 16.0, 256));
    assert_eq!((p.train.batch_size, p.train.grad_accum, p.train.log_every), (2, 1, 8));
    assert_eq!(p.train.optimizer, OptimizerKind::Sgd);
    assert_eq!(p.prompt, None);
    assert_eq!((p.abort.loss_above, p.abort.max_reseeds), (None, 2));
    assert_eq!(spec.select.metric, SelectMetric { split: Split::Valid, metric: Metric::Precision });
    assert_eq!(spec.select.keep, None);
    assert_eq!(spec.data.answers, ["yes".to_string(), "no".to_string()]);
}

#[test]
fn any_train_field_can_be_an_axis_and_stage2_is_read() {
    let spec = parse(
        "[train]\nlearning_rate = 0.03\n[stage2]\nwhen = \"train_not_perfect\"\nsteps = 5\n\
         [sweep]\nseeds = [1]\nvalid = [10]\noptimizer = [\"sgd\", \"adamw\"]\nlora_targets = [[\"q\"], [\"q\", \"v\"]]\n",
    )
    .unwrap();
    assert_eq!(spec.trials.len(), 4);
    assert_eq!(spec.trials[3].params.train.optimizer, OptimizerKind::AdamW);
    assert_eq!(spec.trials[3].label, "seed=1 valid=10 lora_targets=[\"q\",\"v\"] optimizer=\"adamw\"");
    let stage2 = spec.trials[0].params.stage2.as_ref().unwrap();
    assert_eq!((stage2.when, stage2.lr_factor, stage2.steps), (Stage2When::TrainNotPerfect, 0.1, Some(5)));
}

#[test]
fn trial_id_is_a_hash_of_the_canonical_parameters() {
    let spec =
        parse("[train]\nlearning_rate = 0.5\nsteps = 3\n[sweep]\nseeds = [7]\nvalid = [10]\n").unwrap();
    // Written out by hand from the documented field order and defaults.
    let canonical = concat!(
        r#"{"inputs":{"model":{"path":"builtin:tiny"},"data":{"path":"data.jsonl","gif_frames":"all","#,
        r#""answers":["yes","no"],"stratify":false}},"params":{"seed":7,"valid":10,"train":{"#,
        r#""learning_rate":0.5,"trainable":"lora","lora_rank":8,"lora_alpha":16.0,"#,
        r#""lora_targets":["q","k","v","o"],"steps":3,"batch_size":2,"grad_accum":1,"#,
        r#""optimizer":"sgd","schedule":"cosine","warmup_steps":0,"log_every":8},"#,
        r#""abort":{"max_reseeds":2}}}"#
    );
    let hex: String = Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(spec.trials[0].id.as_str(), &hex[..12]);
}

#[test]
fn ids_survive_edits_to_other_trials() {
    let before = parse("[train]\nlearning_rate = 0.03\n[sweep]\nseeds = [1, 2]\nvalid = [10]\n").unwrap();
    let after = parse(
        "# a comment moves every line\n[train]\nlearning_rate = 0.03\n[sweep]\nvalid = [10]\nseeds = [3, 2, 1]\n",
    )
    .unwrap();
    for trial in &before.trials {
        let same = after.trials.iter().find(|t| t.params == trial.params).unwrap();
        assert_eq!(same.id, trial.id);
    }
    let changed =
        parse("[train]\nlearning_rate = 0.03\nsteps = 10\n[sweep]\nseeds = [1]\nvalid = [10]\n").unwrap();
    assert_ne!(changed.trials[0].id, before.trials[0].id);
    let other_data = parse_spec(
        &format!(
            "{}[train]\nlearning_rate = 0.03\n[sweep]\nseeds = [1]\nvalid = [10]\n",
            HEAD.replace("data.jsonl", "b.jsonl")
        ),
        Path::new("a.toml"),
    )
    .unwrap();
    assert_ne!(other_data.trials[0].id, before.trials[0].id);
}

#[test]
fn rejects_unknown_keys_with_line_and_field() {
    assert_eq!(
        error("[train]\nlearning_rate = 0.03\nlr = 1\n[sweep]\nseeds = [1]\nvalid = [10]\n"),
        "sweeps/a.toml: line 8: train.lr: unknown field `lr`, expected one of `learning_rate`, `trainable`, \
         `lora_rank`, `lora_alpha`, `lora_targets`, `steps`, `batch_size`, `grad_accum`, `optimizer`, \
         `schedule`, `warmup_steps`, `log_every`"
    );
    let e = error("[train]\nlearning_rate = 0.03\n[sweep]\nseeds = [1]\nvalid = [10]\nbatch = [1, 2]\n");
    assert!(e.starts_with("sweeps/a.toml: line 11: sweep.batch: unknown field `batch`"), "{e}");
    let e = error("[trian]\nlearning_rate = 0.03\n[sweep]\nseeds = [1]\nvalid = [10]\n");
    assert!(e.starts_with("sweeps/a.toml: line 6: trian: unknown field `trian`"), "{e}");
    let e = error("[train]\nlearning_rate = 0.03\n[sweep]\nseed = [1]\nseeds = [1]\nvalid = [10]\n");
    assert_eq!(e, "sweeps/a.toml: line 9: sweep.seed: unknown axis; the seeds axis is called `seeds`");
}

#[test]
fn rejects_wrong_types_in_tables_and_axis_values() {
    assert_eq!(
        error("[train]\nlearning_rate = \"fast\"\n[sweep]\nseeds = [1]\nvalid = [10]\n"),
        "sweeps/a.toml: line 7: train.learning_rate: expected a number (such as 0.03), found string \"fast\""
    );
    assert_eq!(
        error("[train]\nsteps = 3\n[sweep]\nseeds = [1]\nvalid = [10]\nlearning_rate = [0.1,\n  \"x\"]\n"),
        "sweeps/a.toml: line 12: sweep.learning_rate: expected a number (such as 0.03), found string \"x\""
    );
    let e = error("[train]\nlearning_rate = 0.1\noptimizer = \"adam\"\n[sweep]\nseeds = [1]\nvalid = [10]\n");
    assert!(e.starts_with("sweeps/a.toml: line 8: train.optimizer: unknown variant `adam`"), "{e}");
    let e = error("[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [10]\n[select]\nmetric = \"valid.auc\"\n");
    assert!(e.starts_with("sweeps/a.toml: line 12: select.metric: unknown metric \"valid.auc\""), "{e}");
    let e = error("[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [-1]\nvalid = [10]\n");
    assert!(e.starts_with("sweeps/a.toml: line 9: sweep.seeds: invalid value: integer `-1`"), "{e}");
}

#[test]
fn rejects_empty_missing_and_repeated_axes() {
    assert_eq!(
        error("[train]\nlearning_rate = 0.1\n[sweep]\nseeds = []\nvalid = [10]\n"),
        "sweeps/a.toml: line 9: sweep.seeds: empty axis: give at least one value"
    );
    assert_eq!(
        error("[train]\nlearning_rate = 0.1\n[sweep]\nseeds = 1\nvalid = [10]\n"),
        "sweeps/a.toml: line 9: sweep.seeds: expected a list of values (an axis), e.g. seeds = [...]"
    );
    assert_eq!(
        error("[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\n"),
        "sweeps/a.toml: line 8: sweep: missing axis `valid` (for example valid = [30]), or choose k-fold \
         under [validation] (scheme = \"kfold\")"
    );
    assert_eq!(
        error("[train]\nlearning_rate = 0.1\n"),
        "sweeps/a.toml: line 1: sweep: missing [sweep] table (it needs at least seeds = [...], and valid = \
         [...] for holdout)"
    );
    assert_eq!(
        error("[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1, 2, 1]\nvalid = [10]\n"),
        "sweeps/a.toml: line 8: sweep: trials {seed=1 valid=10} and {seed=1 valid=10} are the same trial; \
         remove the repeated axis value"
    );
}

#[test]
fn rejects_misplaced_and_nonsensical_values() {
    assert_eq!(
        error("[train]\nsteps = 3\n[sweep]\nseeds = [1]\nvalid = [10]\n"),
        "sweeps/a.toml: line 6: train.learning_rate: missing: give it in [train] or as a [sweep] axis"
    );
    assert_eq!(
        error("[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [10]\nlearning_rate = [0.2]\n"),
        "sweeps/a.toml: line 11: sweep.learning_rate: also set in [train]; give it in one place (a fixed value or an axis)"
    );
    assert_eq!(
        error("[train]\nlearning_rate = 0.1\nsteps = 4\n[sweep]\nseeds = [1]\nvalid = [10]\nwarmup_steps = [2, 5]\n"),
        "sweeps/a.toml: line 12: sweep.warmup_steps: 5 is more than steps (4) (seed=1 valid=10 warmup_steps=5)"
    );
    assert_eq!(
        error("[train]\nlearning_rate = 0.1\nbatch_size = 0\n[sweep]\nseeds = [1]\nvalid = [10]\n"),
        "sweeps/a.toml: line 8: train.batch_size: must be greater than 0"
    );
    // Issue 11, case 10: TOML's inf is named as such, not as JSON's null.
    assert_eq!(
        error("[train]\nlearning_rate = inf\n[sweep]\nseeds = [1]\nvalid = [10]\n"),
        "sweeps/a.toml: line 7: train.learning_rate: must be a finite number greater than 0, not inf"
    );
    // As an axis value too, and the trial's label shows it as written, not as JSON's null.
    assert_eq!(
        error("[sweep]\nseeds = [1]\nvalid = [10]\nlearning_rate = [0.1, inf]\n"),
        "sweeps/a.toml: line 9: sweep.learning_rate: must be a finite number greater than 0, not inf \
         (seed=1 valid=10 learning_rate=inf)"
    );
    let bad_name = HEAD.replace("\"t\"", "\"a/b\"")
        + "[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [1]\n";
    assert_eq!(
        parse_spec(&bad_name, Path::new("x.toml")).unwrap_err().to_string(),
        "x.toml: line 1: name: \"a/b\" is not a folder name (no slashes, not empty)"
    );
    // Line 8 is `keep = 0`; keep = 0 is fine for the best trial, which best/ always holds.
    let keep = |final_model: &str| {
        format!("[select]\nfinal = \"{final_model}\"\nkeep = 0\n[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [1]\n")
    };
    assert!(error(&keep("soup")).starts_with("sweeps/a.toml: line 8: select.keep: keep = 0 would delete"));
    assert!(parse(&keep("best_trial")).is_ok());
    assert_eq!(
        parse_spec("name = \"a\"\n", Path::new("x.toml")).unwrap_err().to_string(),
        "x.toml: line 1: missing field `model`"
    );
}

#[test]
fn answers_must_be_two_different_words() {
    let text = HEAD.replace("data.jsonl\"\n", "data.jsonl\"\nanswers = [\"yes\", \"yes\"]\n")
        + "[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [1]\n";
    assert_eq!(
        parse_spec(&text, Path::new("a.toml")).unwrap_err().to_string(),
        "a.toml: line 6: data.answers: needs two different words, positive first (e.g. [\"yes\", \"no\"])"
    );
    let text = text.replace("[\"yes\", \"yes\"]", "[\"ok\"]");
    let e = parse_spec(&text, Path::new("a.toml")).unwrap_err().to_string();
    assert!(e.starts_with("a.toml: line 6: data.answers: takes exactly two answer words"), "{e}");
}

#[test]
fn syntax_errors_give_the_line() {
    let e = error("[train]\nlearning_rate = = 0.1\n");
    assert!(e.starts_with("sweeps/a.toml: line 7: "), "{e}");
}

#[test]
fn load_checks_that_inputs_exist() {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("s.toml");
    let text = format!("{HEAD}[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [10]\n");
    std::fs::write(&spec_path, &text).unwrap();
    let e = load_spec(&spec_path).unwrap_err().to_string();
    let expected_path = dir.path().join("data.jsonl");
    assert_eq!(
        e,
        format!(
            "{}: line 5: data.path: dataset file {} does not exist (paths are relative to the spec's folder)",
            spec_path.display(),
            expected_path.display()
        )
    );
    std::fs::create_dir(&expected_path).unwrap();
    let e = load_spec(&spec_path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: line 5: data.path: dataset file {} is a folder; give the JSONL file in it",
            spec_path.display(),
            expected_path.display()
        )
    );
    std::fs::remove_dir(&expected_path).unwrap();
    std::fs::write(&expected_path, "").unwrap();
    let spec = load_spec(&spec_path).unwrap();
    assert_eq!(spec.data_path(), expected_path);
    assert_eq!(spec.model_source, ModelSource::Builtin { name: "tiny".into(), seed: 0 });
}

#[test]
fn the_documented_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/example.toml");
    let spec = parse_spec(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    assert_eq!(spec.trials.len(), 24);
    assert_eq!(spec.select.keep, Some(3));
    assert!(spec.trials.iter().all(|t| t.params.stage2.is_some() && t.params.abort.loss_above == Some(5.0)));
}

#[test]
fn kfold_runs_every_config_on_every_fold_seeds_slowest() {
    let spec = parse(
        "[validation]\nscheme = \"repeated_kfold\"\nfolds = 3\nrepeats = 2\ntest = 6\n\
         [train]\nsteps = 4\n[sweep]\nseeds = [1, 2]\nlearning_rate = [0.1, 0.01]\n",
    )
    .unwrap();
    // 2 seeds × 2 repeats × 3 folds × 2 rates.
    assert_eq!(spec.trials.len(), 24);
    let labels: Vec<&str> = spec.trials.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(labels[0], "seed=1 fold=1/3 learning_rate=0.1");
    assert_eq!(labels[1], "seed=1 fold=1/3 learning_rate=0.01");
    assert_eq!(labels[2], "seed=1 fold=2/3 learning_rate=0.1");
    assert_eq!(labels[6], "seed=1 repeat=2 fold=1/3 learning_rate=0.1");
    assert_eq!(labels[12], "seed=2 fold=1/3 learning_rate=0.1");
    // Two configs, each with 12 pulls; the config label leaves out seed and fold.
    let of_first: Vec<_> = spec.trials.iter().filter(|t| t.config == spec.trials[0].config).collect();
    assert_eq!(of_first.len(), 12);
    assert!(of_first.iter().all(|t| t.config_label == "learning_rate=0.1"));
    assert_ne!(spec.trials[0].config, spec.trials[1].config);
    assert_eq!(spec.trials[0].params.valid, None);
}

#[test]
fn kfold_refuses_the_valid_axis_and_holdout_refuses_fold_keys() {
    assert_eq!(
        error("[validation]\nscheme = \"kfold\"\n[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [10]\n"),
        "sweeps/a.toml: line 12: sweep.valid: with validation.scheme = \"kfold\" every image is validated once \
         per repeat; remove the valid axis (it sets the holdout size)"
    );
    let message =
        error("[validation]\nfolds = 4\n[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [10]\n");
    assert!(
        message.starts_with("sweeps/a.toml: line 7: validation.folds: only applies to scheme"),
        "{message}"
    );
    let message = error("[validation]\nscheme = \"fivefold\"\n");
    assert!(message.contains("line 7") && message.contains("fivefold"), "{message}");
}

#[test]
fn holdout_ids_do_not_depend_on_the_validation_table_unless_it_changes_the_split() {
    let body = "[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [10]\n";
    let plain = parse(body).unwrap();
    let explicit = parse(&format!("[validation]\nscheme = \"holdout\"\n{body}")).unwrap();
    assert_eq!(plain.trials[0].id, explicit.trials[0].id);
    let with_test = parse(&format!("[validation]\ntest = 10\n{body}")).unwrap();
    assert_ne!(plain.trials[0].id, with_test.trials[0].id);
}

#[test]
fn trial_ids_hold_the_preprocessing_only_when_not_big_vision() {
    let text = format!("{HEAD}[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [10]\n");
    let ids = |text: &str, own: Option<Preprocessing>| {
        let spec =
            parse_spec_with(text, Path::new("s.toml"), own, ContentDigests::default(), HubAccess::Download)
                .unwrap();
        spec.trials.iter().map(|t| t.id.clone()).collect::<Vec<_>>()
    };
    let before = ids(&text, None);
    assert_eq!(ids(&text, Some(Preprocessing::big_vision(224))), before);
    let bicubic = Preprocessing { resize: Resize::Bicubic, ..Preprocessing::big_vision(224) };
    assert_ne!(ids(&text, Some(bicubic)), before);
    // `resize = "bilinear"` on a bicubic model gives big_vision's pixels, so the old ids.
    let bilinear = text.replace("[data]\n", "[data]\nresize = \"bilinear\"\n");
    assert_eq!(ids(&bilinear, Some(bicubic)), before);
    let asked = text.replace("[data]\n", "[data]\nresize = \"bicubic\"\n");
    assert_eq!(ids(&asked, None), ids(&text, Some(bicubic)));
    let spec = parse_spec_with(
        &asked,
        Path::new("s.toml"),
        Some(Preprocessing::big_vision(224)),
        ContentDigests::default(),
        HubAccess::Download,
    )
    .unwrap();
    assert_eq!(spec.preprocessing(), Some(bicubic));
}

#[test]
fn a_precision_target_is_checked_at_its_line() {
    // Line 6 is [select], lines 7 and 8 its keys.
    let select = |keys: &str| {
        format!("[select]\n{keys}[train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [1]\n")
    };
    let spec = parse(&select("min_precision = 0.95\nconfidence = 0.8\n")).unwrap();
    assert_eq!(spec.select.target(), Some(crate::eval::operating_point::Target::new(0.95, 0.8).unwrap()));
    // The confidence defaults to 0.9; no target by default.
    let spec = parse(&select("min_precision = 0.95\n")).unwrap();
    assert_eq!(spec.select.target().map(|t| t.confidence()), Some(0.9));
    assert_eq!(parse(&select("")).unwrap().select.target(), None);
    assert_eq!(
        error(&select("min_precision = 1.0\n")),
        "sweeps/a.toml: line 7: select.min_precision: min_precision must lie strictly between 0 and 1, got 1"
    );
    assert_eq!(
        error(&select("min_precision = 0.9\nconfidence = 0\n")),
        "sweeps/a.toml: line 8: select.confidence: confidence must lie strictly between 0 and 1, got 0"
    );
    assert_eq!(
        error(&select("confidence = 0.9\n")),
        "sweeps/a.toml: line 7: select.confidence: a confidence needs a target: add min_precision (e.g. \
         min_precision = 0.95)"
    );
    assert!(error(&select("min_precision = \"high\"\n")).starts_with("sweeps/a.toml: line 7: "));
}
