//! CLI-level tests: one binary, topic modules below, a small harness in `util`.

mod util;

// `gacha demo-data`: the committed demo dataset and its generator.
mod demo;
// `gacha check` on datasets, `gacha split`.
mod data;

// `gacha sweep`, `leaderboard`, `report` with the scripted runner.
mod sweep;
// Issue 11, nothing lost: stop signals, full disks, foreign folders, the lock, damaged files.
mod reliable;
// Issue 11: a closed stdout (`gacha status DIR | head -1`) ends gacha by SIGPIPE, no panic.
#[cfg(unix)]
mod pipe;
// Issue 11, the guard: answers, prompts and peak memory checked before anything runs.
mod guard;
// Issue 12: workers sharing a results folder, --devices, gacha trial, gacha status.
mod cluster;
// Issue 12: a real single-node Slurm running a job array through `gacha slurm --submit`.
mod slurm;
// Issue 28: races, budgets, deadlines, screened prompts, sampled axes (scripted runner).
mod race;
// Validation schemes, test images and final models (soup, refit) with the scripted runner.
mod validation;
// Issue 30: the operating point, certified for a precision target and shipped in best/.
mod operating_point;
// The config rule against the naive single-pull pick over many simulated sweeps.
mod simulation;
// `gacha sweep` with the real runner on the built-in tiny model and demo images.
mod sweep_real;
// PaliGemma: scoring, masks, gradients, checkpoint loading on tiny random models.
mod model;
// big_vision .npz checkpoints: loading, export, tokenizer and key errors.
mod npz;
// Hub ids resolved offline in a fake Hugging Face cache.
mod hub;
// Issue 31: hub ids downloaded from a local server that plays the hub.
mod download;
// `gacha export --format hf`: merged checkpoint folders.
mod export;
// Parity with transformers on the committed tiny-paligemma fixture.
mod parity;
// A checkpoint folder's own preprocessing (bicubic) against transformers' processor.
mod preprocessing;
// `gacha score`, `gacha eval`, `gacha train` and adapters on the tiny fixture.
mod train;
// The direction of the arrows between our modules (docs/contributing.md): no layer imports a higher one.
mod layers;
