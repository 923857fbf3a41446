//! Issue 11, the guard: `gacha check` and the sweep refuse, before any trial, answers the
//! tokenizer cannot score, prompts longer than the model takes, and batches whose estimated peak
//! memory is above the memory available (here always injected with GACHA_MEMORY_LIMIT_BYTES, so
//! the tests do not depend on the machine). All on builtin:tiny.

use std::path::Path;
use std::process::Command;

use crate::util::{assert_exit, run, texts, TestDir};

/// The tiny model's prompt limit: Gemma's default of 8192 positions (`max_position_embeddings`),
/// less its (56 / 7)² = 64 image tokens, less `<bos>`, `"\n"` and the answer.
const TINY_MAX_PROMPT_TOKENS: usize = 8192 - 64 - 3;

const GIB: u64 = 1 << 30;

#[track_caller]
fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected to find\n{needle}\nin\n{text}");
}

/// Two demo images labelled with `answers`, one line each, each with `prefix`.
fn dataset(dir: &TestDir, answers: [&str; 2], prefix: &str) {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/demo/images");
    let mut lines = String::new();
    for (i, (image, answer)) in ["OK_001.jpg", "OK_002.jpg"].iter().zip(answers).enumerate() {
        dir.write(&format!("images/{image}"), std::fs::read(demo.join(image)).expect("demo image"));
        lines.push_str(&format!(
            "{{\"prefix\": {prefix:?}, \"suffix\": \"{answer}\", \"image\": \"images/{image}\", \"id\": {i}}}\n"
        ));
    }
    dir.write("data.jsonl", lines);
}

/// A one-trial spec on builtin:tiny; `data` and `train` are added to their tables, `sweep` to
/// `[sweep]`.
fn spec(data: &str, train: &str, sweep: &str) -> String {
    format!(
        "name = \"g\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"data.jsonl\"\n{data}\
         [train]\nsteps = 1\n{train}[sweep]\nseeds = [1]\nvalid = [1]\nlearning_rate = [0.01]\n{sweep}"
    )
}

/// `gacha ARGS` in `dir` with the memory limit set to `limit` bytes.
fn gacha(dir: &TestDir, limit: u64, args: &[&str]) -> Command {
    let mut cmd = dir.gacha();
    cmd.args(args).env("GACHA_MEMORY_LIMIT_BYTES", limit.to_string());
    cmd
}

/// Exit 2 with this error on stderr, and no results folder (nothing ran).
#[track_caller]
fn assert_refused(dir: &TestDir, args: &[&str], error: &str) {
    let out = run(&mut gacha(dir, 8 * GIB, args));
    assert_exit(&out, 2);
    assert_contains(&texts(&out).1, error);
    assert!(!dir.join("results").exists(), "a refused sweep created its results folder");
}

#[test]
fn answers_the_vocabulary_lacks_are_refused_at_their_line_by_check_and_sweep() {
    let dir = TestDir::new();
    dataset(&dir, ["はい", "いいえ"], "");
    // Line 6: the answers; the built-in word-level tokenizer has no Japanese word.
    dir.write("s.toml", spec("answers = [\"はい\", \"いいえ\"]\n", "", ""));
    let error = "s.toml: line 6: data.answers: the answer \"はい\" is not in the tokenizer's vocabulary \
                 (it becomes the unknown token <unk>, id 3)";
    assert_refused(&dir, &["check", "s.toml"], error);
    assert_refused(&dir, &["sweep", "s.toml"], error);
}

#[test]
fn a_multi_token_answer_is_refused_with_its_token_count() {
    let dir = TestDir::new();
    dataset(&dir, ["red badge", "no"], "");
    dir.write("s.toml", spec("answers = [\"red badge\", \"no\"]\n", "", ""));
    // The word-level tokenizer splits on the space: "red", "badge".
    assert_refused(
        &dir,
        &["check", "s.toml"],
        "s.toml: line 6: data.answers: the answer \"red badge\" must be exactly one token, but the \
         tokenizer encodes it to 2 tokens [\"red\", \"badge\"]",
    );
}

#[test]
fn a_prompt_longer_than_the_model_takes_is_refused_in_the_spec_and_in_the_dataset() {
    // "yes" is one token of the word-level vocabulary, so N of them are N tokens.
    let words = |n: usize| vec!["yes"; n].join(" ");
    let dir = TestDir::new();
    dataset(&dir, ["yes", "no"], "");
    let too_long = words(TINY_MAX_PROMPT_TOKENS + 1);
    // The long prompt is the axis's second value, on line 14.
    dir.write("s.toml", spec("", "", &format!("prompt = [\n  \"is it ok?\",\n  \"{too_long}\",\n]\n")));
    assert_refused(
        &dir,
        &["check", "s.toml"],
        &format!(
            "s.toml: line 14: sweep.prompt: {} tokens, more than the {TINY_MAX_PROMPT_TOKENS} this model takes",
            TINY_MAX_PROMPT_TOKENS + 1
        ),
    );
    // Without a prompt axis each line's prefix is the prompt: line 2's is too long.
    dir.write("s.toml", spec("", "", ""));
    dataset(&dir, ["yes", "no"], &words(3));
    let lines = std::fs::read_to_string(dir.join("data.jsonl")).unwrap();
    let (first, second) = lines.split_once('\n').unwrap();
    dir.write("data.jsonl", format!("{first}\n{}", second.replace(&words(3), &too_long)));
    assert_refused(
        &dir,
        &["sweep", "s.toml"],
        &format!(
            "data.jsonl:2: prefix: {} tokens, more than the {TINY_MAX_PROMPT_TOKENS}",
            TINY_MAX_PROMPT_TOKENS + 1
        ),
    );
    // At the limit it passes.
    dir.write(
        "data.jsonl",
        format!("{first}\n{}", second.replace(&words(3), &words(TINY_MAX_PROMPT_TOKENS))),
    );
    let out = run(&mut gacha(&dir, 1 << 50, &["check", "s.toml"]));
    assert_exit(&out, 0);
    assert_contains(
        &texts(&out).0,
        &format!("prompts: the longest is {TINY_MAX_PROMPT_TOKENS} tokens (prefix of dataset line 2)"),
    );
}

#[test]
fn a_batch_that_would_not_fit_is_refused_with_the_estimate_and_the_limit() {
    let dir = TestDir::new();
    dataset(&dir, ["yes", "no"], "is this ok");
    // 100,000 rows of 64 + 1 + 3 + 2 = 70 tokens: their f32 attention masks alone are
    // 100,000 × 70² × 4 bytes = 1.8 GiB, more than the 1 GiB allowed.
    dir.write("s.toml", spec("", "batch_size = 100000\n", ""));
    let out = run(&mut gacha(&dir, GIB, &["check", "s.toml"]));
    assert_exit(&out, 2);
    let stderr = texts(&out).1;
    assert_contains(&stderr, "s.toml: line 8: train.batch_size: trial ");
    assert_contains(&stderr, "with batch 100000 × 70 tokens (64 image, 3 of prompt, 3 more), but 1.0 GiB");
    assert_contains(&stderr, "(GACHA_MEMORY_LIMIT_BYTES) is available: lower batch_size");
    assert_contains(&stderr, "--no-memory-check");
    // The sweep refuses it before its first trial.
    let out = run(&mut gacha(&dir, GIB, &["sweep", "s.toml"]));
    assert_exit(&out, 2);
    assert_contains(&texts(&out).1, "s.toml: line 8: train.batch_size: trial ");
    assert!(!dir.join("results").exists());
    // As a sweep axis, the axis is named.
    dir.write("s.toml", spec("", "", "batch_size = [2, 100000]\n"));
    let out = run(&mut gacha(&dir, GIB, &["check", "s.toml"]));
    assert_exit(&out, 2);
    assert_contains(&texts(&out).1, "s.toml: line 12: sweep.batch_size: trial ");
    // --no-memory-check: shown, not refused.
    let out = run(&mut gacha(&dir, GIB, &["check", "s.toml", "--no-memory-check"]));
    assert_exit(&out, 0);
    assert_contains(&texts(&out).0, "(batch 100000 × 70 tokens)\n  not checked: --no-memory-check\n");
    // For a GPU sweep it is estimated, and said not to be checked (the CPU's memory is not the
    // GPU's).
    let out = run(&mut gacha(&dir, GIB, &["check", "s.toml", "--device", "cuda"]));
    assert_exit(&out, 0);
    assert_contains(&texts(&out).0, "(batch 100000 × 70 tokens)\n  not checked on GPU (cuda:0)");
}

#[test]
fn the_demo_spec_still_passes_and_shows_what_was_checked() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/demo.toml");
    let dir = TestDir::new();
    let out = run(&mut gacha(&dir, GIB, &["check", demo.to_str().unwrap()]));
    assert_exit(&out, 0);
    let stdout = texts(&out).0;
    assert_contains(&stdout, "answers: \"yes\" (token 6), \"no\" (token 7): one known token each\n");
    // The longer prompt: 15 tokens (the built-in tokenizer's own test), on line 62.
    assert_contains(
        &stdout,
        "prompts: the longest is 15 tokens (sweep.prompt, line 62); the model takes at most 8125\n",
    );
    assert_contains(&stdout, "(batch 8 × 82 tokens)\n  fits: 1.0 GiB (GACHA_MEMORY_LIMIT_BYTES) available\n");
}
