//! gacha: fine-tune PaliGemma into a yes/no image classifier and sweep it.
//!
//! The modules, one concept each, lowest layer first (a module imports only from the layers
//! below it; `tests/layers.rs` checks it):
//!
//! - `fsutil` (atomic writes), `clock` (local wall-clock times), `logging` (stderr verbosity and its macros), `device` (cpu or
//!   cuda, dtypes), `machine` (cores, memory, GPUs, CPU workers);
//! - `data` (JSONL datasets, images, splits), `demo` (the demo dataset's generator);
//! - `model` (SigLIP + projector + Gemma, LoRA, checkpoints and their formats);
//! - `features` (the frozen vision stage: image features, once per image);
//! - `train` (the training loop, packs, optimizers), `eval` (scoring, metrics, paired tests),
//!   `adapter` (PEFT adapters, soups);
//! - `spec` (sweep TOML → trials);
//! - `results` (what a sweep leaves on disk and how configs are judged);
//! - `sweep` (the driver: trials, runners, the final model), `bench` (timing steps and scoring);
//! - `report` (tables, summaries, report.html);
//! - `cli` (the clap command line), `cmd` (one file per subcommand, `run`, exit codes).

pub mod adapter;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod data;
pub mod demo;
pub mod device;
pub mod eval;
pub mod features;
pub mod fsutil;
pub mod logging;
pub mod machine;
pub mod model;
pub mod report;
pub mod results;
pub mod spec;
pub mod sweep;
pub mod train;
