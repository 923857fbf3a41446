//! Issue 11, the guard: `gacha check` and the sweep refuse, before any trial, answers the
//! tokenizer cannot score, prompts longer than the model takes, and batches whose estimated peak
//! memory is above the memory available (here always injected with GACHA_MEMORY_LIMIT_BYTES, or
//! on a GPU read from a fake nvidia-smi, so the tests do not depend on the machine). All on
//! builtin:tiny.

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
}

/// A fake `nvidia-smi` in `dir/bin` that prints `stdout` (kept in `dir/smi-out`) and exits with
/// `code`; it records its arguments in `dir/smi-args`. Shell builtins only: PATH holds just it.
fn fake_nvidia_smi(dir: &TestDir, stdout: &str, code: i32) {
    dir.write("smi-out", stdout);
    let (log, out) = (dir.join("smi-args"), dir.join("smi-out"));
    dir.write(
        "bin/nvidia-smi",
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nwhile IFS= read -r line; do echo \"$line\"; done < '{}'\nexit {code}\n",
            log.display(),
            out.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("bin/nvidia-smi"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `gacha check s.toml --device DEVICE` with only `dir/bin` on PATH, no CUDA variables but
/// `cuda_env`, and a host memory limit far too small (so that only the GPU's figure can pass).
fn check_on_gpu(dir: &TestDir, device: &str, cuda_env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = gacha(dir, 1, &["check", "s.toml", "--device", device]);
    cmd.env("PATH", dir.join("bin"));
    for name in ["CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "GACHA_GPU_MEMORY_LIMIT_BYTES"] {
        cmd.env_remove(name);
    }
    cmd.envs(cuda_env.iter().copied());
    run(&mut cmd)
}

#[test]
fn on_a_gpu_the_free_memory_nvidia_smi_reports_is_the_limit() {
    let dir = TestDir::new();
    dataset(&dir, ["yes", "no"], "is this ok");
    dir.write("s.toml", spec("", "batch_size = 10000\n", ""));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    // No nvidia-smi: estimated, and said not to be checked.
    let out = check_on_gpu(&dir, "cuda", &[]);
    assert_exit(&out, 0);
    assert_contains(
        &texts(&out).0,
        "(batch 10000 × 70 tokens)\n  not checked on GPU (cuda:0): nvidia-smi is not on PATH\n",
    );
    // Two H200s, 143,000 and 2,000 MiB free. The limit is the free memory less 1 GiB for the
    // CUDA context: 143,000 − 1,024 MiB = 138.6 GiB, in which the batch of 10,000 (about 18 GiB: a tenth of the
    // 100,000 above) fits.
    fake_nvidia_smi(&dir, "0, GPU-aaaa, NVIDIA H200, 143000\n1, GPU-bbbb, NVIDIA H200, 2000\n", 0);
    let out = check_on_gpu(&dir, "cuda", &[]);
    assert_exit(&out, 0);
    assert_contains(
        &texts(&out).0,
        "  fits: 138.6 GiB (GPU 0 (NVIDIA H200, GPU-aaaa): 139.6 GiB free per nvidia-smi, less 1.0 GiB for \
         the CUDA context) available\n",
    );
    let args = std::fs::read_to_string(dir.join("smi-args")).unwrap();
    assert_eq!(args, "--query-gpu=index,uuid,name,memory.free --format=csv,noheader,nounits\n");
    // cuda:1 is GPU 1, whose 2,000 − 1,024 = 976 MiB do not hold it: refused, naming the field
    // and the GPU.
    let out = check_on_gpu(&dir, "cuda:1", &[]);
    assert_exit(&out, 2);
    let stderr = texts(&out).1;
    assert_contains(&stderr, "s.toml: line 8: train.batch_size: trial ");
    assert_contains(&stderr, "but 976.0 MiB (GPU 1 (NVIDIA H200, GPU-bbbb): 2.0 GiB free per nvidia-smi");
    // CUDA_VISIBLE_DEVICES renumbers: cuda:0 is GPU 1, by index or by UUID.
    for visible in ["1", "GPU-bbbb"] {
        let out = check_on_gpu(&dir, "cuda", &[("CUDA_VISIBLE_DEVICES", visible)]);
        assert_exit(&out, 2);
        assert_contains(&texts(&out).1, "(GPU 1 (NVIDIA H200, GPU-bbbb)");
    }
    // GACHA_GPU_MEMORY_LIMIT_BYTES replaces nvidia-smi's figure.
    let out = check_on_gpu(&dir, "cuda", &[("GACHA_GPU_MEMORY_LIMIT_BYTES", "1073741824")]);
    assert_exit(&out, 2);
    assert_contains(&texts(&out).1, "but 1.0 GiB (GACHA_GPU_MEMORY_LIMIT_BYTES) is available");
    let out = check_on_gpu(&dir, "cuda", &[("GACHA_GPU_MEMORY_LIMIT_BYTES", "lots")]);
    assert_exit(&out, 2);
    assert_contains(
        &texts(&out).1,
        "GACHA_GPU_MEMORY_LIMIT_BYTES=\"lots\": expected a whole number of bytes",
    );
    // A GPU of another kind, without CUDA_DEVICE_ORDER=PCI_BUS_ID: CUDA's numbering is unknown.
    fake_nvidia_smi(&dir, "0, GPU-aaaa, NVIDIA H200, 143000\n1, GPU-cccc, NVIDIA A100-SXM4-80GB, 81000\n", 0);
    let out = check_on_gpu(&dir, "cuda", &[]);
    assert_exit(&out, 0);
    assert_contains(&texts(&out).0, "not checked on GPU (cuda:0): the GPUs are of different kinds");
    let out = check_on_gpu(&dir, "cuda:1", &[("CUDA_DEVICE_ORDER", "PCI_BUS_ID")]);
    assert_exit(&out, 0);
    assert_contains(&texts(&out).0, "(GPU 1 (NVIDIA A100-SXM4-80GB, GPU-cccc): 79.1 GiB free");
    // nvidia-smi failing (no driver) is said, and the run goes on.
    fake_nvidia_smi(
        &dir,
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
        9,
    );
    let out = check_on_gpu(&dir, "cuda", &[]);
    assert_exit(&out, 0);
    assert_contains(
        &texts(&out).0,
        "not checked on GPU (cuda:0): nvidia-smi failed (exit status: 9): NVIDIA-SMI has failed because",
    );
}

#[test]
fn the_demo_spec_still_passes_and_shows_what_was_checked() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/demo.toml");
    let dir = TestDir::new();
    let out = run(gacha(&dir, GIB, &["check", demo.to_str().unwrap()]).env_remove("RAYON_NUM_THREADS"));
    assert_exit(&out, 0);
    let stdout = texts(&out).0;
    assert_contains(&stdout, "answers: \"yes\" (token 6), \"no\" (token 7): one known token each\n");
    // The longer prompt: 15 tokens (the built-in tokenizer's own test), on line 62.
    assert_contains(
        &stdout,
        "prompts: the longest is 15 tokens (sweep.prompt, line 62); the model takes at most 8125\n",
    );
    assert_contains(&stdout, "(batch 8 × 82 tokens)\n  fits: 1.0 GiB (GACHA_MEMORY_LIMIT_BYTES) available\n");
    // 1 GiB holds 19 copies of the 53.5 MiB estimate; 80 MiB one, so one process with every core.
    let cores = std::thread::available_parallelism().unwrap().get();
    let workers = cores.min(19);
    assert_contains(
        &stdout,
        &format!(
            "workers: gacha sweep runs {workers} trial(s) at once, {} thread(s) each (auto: {cores} cores, \
             memory for 19, 36 trials to run; --workers N to choose)\n",
            cores / workers
        ),
    );
    let out = run(gacha(&dir, 80 << 20, &["check", demo.to_str().unwrap()]).env_remove("RAYON_NUM_THREADS"));
    assert_contains(
        &texts(&out).0,
        &format!("workers: gacha sweep runs 1 trial(s) at once, {cores} thread(s) each (auto: {cores} cores, memory for 1,"),
    );
}
