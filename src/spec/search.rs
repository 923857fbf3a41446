//! The `[search]` table: how a sweep spends its budget.
//!
//! - `strategy = "grid"` (the default) runs every trial of the grid.
//! - `strategy = "race"` runs every config on the same pull keys in one order and stops pulling a
//!   config once a paired test finds it worse than the leader (`eval::race`; docs/race.md); the
//!   survivors then get `extra_seeds` more seeds while budget is left.
//! - `max_pulls` caps the pulls (finished trials, earlier runs' included); the command line adds
//!   a deadline (`--until`, `--for`).
//! - `screen_prompts = K` scores every prompt of the `prompt` axis on the untrained model and
//!   runs (or races) only the configs of the best K.
//! - `seed` seeds the draws of sampled axes (`sampled.rs`).
//!
//! None of it is part of a trial id: a race's pulls are the grid's trials.

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{Locator, SpecError};

/// How the trials are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Every trial of the grid.
    #[default]
    Grid,
    /// Configs raced over shared pull keys (`eval::race`).
    Race,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Grid => "grid",
            Strategy::Race => "race",
        }
    }
}

/// The `[search]` table as written.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    #[serde(default)]
    pub strategy: Strategy,
    /// At most this many pulls: finished trials of this spec in its results folder, whatever
    /// their status, earlier runs' included.
    #[serde(default)]
    pub max_pulls: Option<usize>,
    /// Race: seeds after the spec's, for the survivors once the race is decided and budget is
    /// left. Default: as many as the spec has (the survivors may double their evidence).
    #[serde(default)]
    pub extra_seeds: Option<usize>,
    /// Run (or race) only the configs of the best K prompts of the `prompt` axis, by the select
    /// metric of the untrained model over the non-test images.
    #[serde(default)]
    pub screen_prompts: Option<usize>,
    /// Seeds the draws of sampled axes (`{ log_uniform = [a, b], count = n }`).
    #[serde(default)]
    pub seed: u64,
}

impl SearchSpec {
    /// Whether which trials run depends on results (a race, or prompts screened first): configs
    /// then have a standing (`racing`, `dropped at look N`, `screened out`), and Slurm runs worker
    /// tasks that take the next pulls instead of one task per trial.
    pub fn is_adaptive(&self) -> bool {
        self.strategy == Strategy::Race || self.screen_prompts.is_some()
    }

    /// How many seeds past the spec's the survivors of a race may get.
    pub fn extra_seeds(&self, grid_seeds: usize) -> usize {
        match self.strategy {
            Strategy::Grid => 0,
            Strategy::Race => self.extra_seeds.unwrap_or(grid_seeds),
        }
    }
}

/// Read `[search]` from the parsed document (default when absent) and check it.
pub(super) fn read_search(doc: &DeTable<'_>, at: &Locator) -> Result<SearchSpec, SpecError> {
    let Some(value) = doc.get("search") else { return Ok(SearchSpec::default()) };
    let DeValue::Table(table) = value.get_ref() else {
        return Err(at.at(value.span(), "search", "expected a [search] table"));
    };
    let search =
        SearchSpec::deserialize(toml::de::Deserializer::from(Spanned::new(value.span(), table.clone())))
            .map_err(|err| at.toml(&err))?;
    let error = |key: &str, message: String| {
        let span = at.span_of(&["search", key]).unwrap_or_else(|| value.span());
        at.at(span, format!("search.{key}"), message)
    };
    if search.strategy == Strategy::Grid && search.extra_seeds.is_some() {
        return Err(error("extra_seeds", "is for strategy = \"race\" (a grid runs every trial)".into()));
    }
    if search.max_pulls == Some(0) {
        return Err(error("max_pulls", "must be at least 1".into()));
    }
    if search.screen_prompts == Some(0) {
        return Err(error("screen_prompts", "must be at least 1 (the number of prompts that race)".into()));
    }
    Ok(search)
}
