//! `[sweep] pack`: how many trials are trained together in one pass over the frozen model
//! (`train::pack`). It is not part of any trial id: packing does not change a trial's results.

use std::fmt;

use toml::de::{DeTable, DeValue};

use super::error::{Locator, SpecError};

/// The most trials one pack may hold.
pub const MAX_PACK: usize = 64;

/// The most trials `pack = "auto"` puts in one pack, memory allowing.
pub const AUTO_PACK: usize = 8;

/// `pack = K` or `pack = "auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackSetting {
    /// K trials per pack; 1 (the default) trains one trial at a time.
    Trials(usize),
    /// As many as fit the memory check, up to [`AUTO_PACK`]; one where memory is not checked.
    Auto,
}

impl Default for PackSetting {
    fn default() -> Self {
        PackSetting::Trials(1)
    }
}

impl fmt::Display for PackSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackSetting::Trials(k) => write!(f, "{k}"),
            PackSetting::Auto => f.write_str("\"auto\""),
        }
    }
}

/// Take `pack` out of the `[sweep]` table (every other key there is an axis).
pub(super) fn take_pack(tables: &mut DeTable<'_>, at: &Locator) -> Result<PackSetting, SpecError> {
    let Some(sweep) = tables.get_mut("sweep") else { return Ok(PackSetting::default()) };
    let DeValue::Table(sweep) = sweep.get_mut() else { return Ok(PackSetting::default()) };
    let Some((_, value)) = sweep.remove_entry("pack") else { return Ok(PackSetting::default()) };
    let wrong = || {
        at.at(
            value.span(),
            "sweep.pack",
            format!("expected a number of trials from 1 to {MAX_PACK}, or \"auto\" (pack is not an axis)"),
        )
    };
    match value.get_ref() {
        DeValue::String(s) if s == "auto" => Ok(PackSetting::Auto),
        DeValue::Integer(i) => match usize::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
            Ok(k) if (1..=MAX_PACK).contains(&k) => Ok(PackSetting::Trials(k)),
            _ => Err(wrong()),
        },
        _ => Err(wrong()),
    }
}
