//! What a sweep leaves on disk and how it is judged: the results folder's layout (`layout`,
//! `folder`), the claims that let workers share it (`claim`), each finished trial's record
//! (`record`, `failure`, `damaged`), the ranking of trials (`rank`) and the judging of configs over
//! their pulls (`judge`), what a sweep may still spend (`budget`), the progress records a worker
//! sends its parent (`progress_event`), and the bytes of the two CSV files (`csv`, `columns`,
//! `config_columns`), what a sweep writes beside the trials (`exports`, `best`). What gacha owns in
//! the folder and how it replaces it (`owned`, `manifest`, `staging`), the one sweep a folder holds
//! (`binding`) and every wait on its locks (`lock_wait`): issue 29, `docs/results-folder.md`. The
//! driver (`sweep`) writes through these; `report` and the commands that read a results folder
//! (`status`, `leaderboard`, `report`, `slurm`) read them.

pub mod best;
pub mod binding;
pub mod budget;
pub mod claim;
pub mod columns;
pub mod config_columns;
pub mod csv;
pub mod damaged;
pub mod exports;
pub mod failure;
pub mod folder;
pub mod judge;
pub mod layout;
pub mod lock_wait;
pub mod manifest;
pub mod owned;
pub mod progress_event;
pub mod race;
pub mod rank;
pub mod record;
pub mod screen;
pub mod staging;

#[cfg(test)]
pub(crate) mod test_records;
