//! `gacha split`: placeholder until the data module lands.

use crate::cli::SplitArgs;

pub fn run(_args: &SplitArgs) -> anyhow::Result<crate::Outcome> {
    anyhow::bail!("not implemented yet")
}
