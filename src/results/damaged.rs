//! Damaged trial folders (an `outcome.json` that is truncated or edited into something else):
//! the sweep moves each aside to `trials/.damaged/<id>-<time>/`, never deleting it, says where,
//! and runs the trial again like any unfinished one.

use std::time::SystemTime;

use anyhow::Context;

use super::folder::ResultsFolder;
use super::layout::OutcomeFile;
use super::owned::free_name;
use super::record::utc_timestamp;
use crate::spec::SweepSpec;

/// Move the damaged folders of `spec`'s trials aside; how many there were.
pub fn set_aside_damaged(results: &ResultsFolder, spec: &SweepSpec) -> anyhow::Result<usize> {
    let mut moved = 0;
    for trial in &spec.trials {
        let paths = results.dir.trial(&trial.id);
        let OutcomeFile::Damaged(why) = paths.read_outcome_file()? else { continue };
        let target = free_name(
            &results.dir.damaged_dir(),
            &format!("{}-{}", trial.id, utc_timestamp(SystemTime::now())),
        );
        std::fs::create_dir_all(results.dir.damaged_dir())
            .with_context(|| format!("{}: cannot create", results.dir.damaged_dir().display()))?;
        std::fs::rename(&paths.dir, &target)
            .with_context(|| format!("cannot move {} to {}", paths.dir.display(), target.display()))?;
        crate::logging::warn!(
            "{}: {why}; moved the trial folder to {} and running trial {} again",
            paths.outcome().display(),
            target.display(),
            trial.id
        );
        moved += 1;
    }
    Ok(moved)
}
