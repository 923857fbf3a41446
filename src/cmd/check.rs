//! `gacha check`: placeholder until the data module lands.

use crate::cli::CheckArgs;

pub fn run(_args: &CheckArgs) -> anyhow::Result<crate::Outcome> {
    anyhow::bail!("not implemented yet")
}
