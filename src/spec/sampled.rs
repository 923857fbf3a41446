//! Sampled axes and a race's extra seeds, written out as lists before the grid is expanded, so
//! the rest of the spec code sees plain axes and trial ids hash plain values.
//!
//! A `[sweep]` axis may be a distribution instead of a list:
//!
//! ```toml
//! learning_rate = { log_uniform = [1e-4, 1e-1], count = 12 }  # 12 floats, log-uniform
//! warmup_steps = { int_uniform = [0, 20], count = 3 }          # 3 distinct integers, inclusive
//! lora_rank = { choice = [4, 8, 16, 32], count = 2 }            # 2 of the listed values
//! dropout = { uniform = [0.0, 0.3], count = 4 }                 # 4 floats, uniform
//! ```
//!
//! The values are drawn once from `[search] seed` and the axis's key (adding an axis does not
//! change another's draws), floats rounded to 3 significant digits, all distinct, and written in
//! place of the table (on the same lines, so messages keep their line numbers). Same spec, same
//! values, same trial ids. A race's extra seeds (`[search] extra_seeds`) are appended to `seeds`
//! the same way: the largest seed + 1, + 2, ….

use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{Locator, SpecError};
use super::search::SearchSpec;

/// Draws that may be thrown away for repeating a value before giving up.
const MAX_REDRAWS: usize = 10_000;

/// A spec's text with its sampled axes and extra seeds written out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drawn {
    /// The text to expand: the spec's own when nothing was drawn.
    pub text: String,
    /// Each sampled axis (its key) and the values drawn, as written into `text`.
    pub axes: Vec<(String, Vec<String>)>,
    /// The seeds appended for a race's survivors.
    pub extra_seeds: Vec<u64>,
}

/// The distributions an axis can be drawn from.
enum Distribution<'a> {
    LogUniform(f64, f64),
    Uniform(f64, f64),
    IntUniform(i64, i64),
    /// The listed values, as written.
    Choice(Vec<&'a str>),
}

/// Write out `text`'s sampled axes and extra seeds (`doc` is `text` parsed).
pub(super) fn draw(
    text: &str,
    doc: &DeTable<'_>,
    at: &Locator,
    search: &SearchSpec,
) -> Result<Drawn, SpecError> {
    let Some(DeValue::Table(sweep)) = doc.get("sweep").map(Spanned::get_ref) else {
        return Ok(Drawn { text: text.to_string(), ..Drawn::default() });
    };
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut drawn = Drawn::default();
    for (key, value) in sweep.iter() {
        let DeValue::Table(table) = value.get_ref() else { continue };
        let name = key.get_ref().to_string();
        let field = format!("sweep.{name}");
        if value.span().is_empty() || !text[value.span()].trim_start().starts_with('{') {
            return Err(at.at(
                key.span(),
                field,
                "write a sampled axis inline: key = { log_uniform = [a, b], count = n }",
            ));
        }
        let (distribution, count) = distribution(text, table, at, &field)?;
        let values = sample(&distribution, count, search.seed, &name)
            .map_err(|message| at.at(value.span(), field.clone(), message))?;
        edits.push((value.span(), list(&values, &text[value.span()])));
        drawn.axes.push((name, values));
    }
    let grid_seeds = seeds(sweep);
    let extra = search.extra_seeds(grid_seeds.as_ref().map_or(0, |(_, seeds)| seeds.len()));
    if let (Some((span, seeds)), true) = (grid_seeds, extra > 0) {
        let largest = seeds.iter().copied().max().unwrap_or(0);
        drawn.extra_seeds = (1..=extra as u64).map(|k| largest.saturating_add(k)).collect();
        let all: Vec<String> = seeds.iter().chain(&drawn.extra_seeds).map(u64::to_string).collect();
        edits.push((span.clone(), list(&all, &text[span])));
    }
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = text.to_string();
    for (span, replacement) in edits {
        out.replace_range(span, &replacement);
    }
    drawn.text = out;
    Ok(drawn)
}

/// `[a, b, …]`, with as many line breaks before `]` as `replaced` had, so lines keep their numbers.
fn list(values: &[String], replaced: &str) -> String {
    let breaks = "\n".repeat(replaced.matches('\n').count());
    format!("[{}{breaks}]", values.join(", "))
}

/// The `seeds` axis's span and values, when it is a list of whole numbers (anything else is
/// left for the expansion to report).
fn seeds(sweep: &DeTable<'_>) -> Option<(Range<usize>, Vec<u64>)> {
    let value = sweep.get("seeds")?;
    let DeValue::Array(items) = value.get_ref() else { return None };
    let seeds = items.iter().map(|item| match item.get_ref() {
        DeValue::Integer(i) => u64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok(),
        _ => None,
    });
    Some((value.span(), seeds.collect::<Option<Vec<u64>>>()?))
}

/// The distribution and count of a sampled axis's table.
fn distribution<'t>(
    text: &'t str,
    table: &DeTable<'_>,
    at: &Locator,
    field: &str,
) -> Result<(Distribution<'t>, usize), SpecError> {
    const KINDS: [&str; 4] = ["log_uniform", "uniform", "int_uniform", "choice"];
    let wrong = |span: Range<usize>, message: String| at.at(span, field.to_string(), message);
    let mut kind = None;
    let mut count = None;
    for (key, value) in table.iter() {
        match key.get_ref().as_ref() {
            "count" => match value.get_ref() {
                DeValue::Integer(i) => match i.as_str().replace('_', "").parse::<usize>() {
                    Ok(n) if n >= 1 && i.radix() == 10 => count = Some(n),
                    _ => return Err(wrong(value.span(), "count: expected a whole number from 1".into())),
                },
                _ => return Err(wrong(value.span(), "count: expected a whole number from 1".into())),
            },
            name if KINDS.contains(&name) => {
                if kind.is_some() {
                    return Err(wrong(key.span(), format!("give one of {} only", KINDS.join(", "))));
                }
                kind = Some((name.to_string(), value));
            }
            other => {
                return Err(wrong(
                    key.span(),
                    format!(
                        "unknown key {other:?} in a sampled axis: expected one of {} and count",
                        KINDS.join(", ")
                    ),
                ))
            }
        }
    }
    let (Some((name, value)), Some(count)) = (kind, count) else {
        return Err(wrong(
            at.span_of(&field.split('.').collect::<Vec<_>>()).unwrap_or(0..0),
            "a sampled axis needs a distribution and a count, e.g. { log_uniform = [1e-4, 1e-1], count = 12 }"
                .into(),
        ));
    };
    let DeValue::Array(items) = value.get_ref() else {
        return Err(wrong(value.span(), format!("{name}: expected a list")));
    };
    let numbers = |ints: bool| -> Result<Vec<f64>, SpecError> {
        items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::Integer(i) => Ok(i.as_str().replace('_', "").parse::<f64>().unwrap_or(f64::NAN)),
                DeValue::Float(f) if !ints => {
                    Ok(f.as_str().replace('_', "").parse::<f64>().unwrap_or(f64::NAN))
                }
                _ => Err(wrong(
                    item.span(),
                    format!("{name}: expected {}", if ints { "whole numbers" } else { "numbers" }),
                )),
            })
            .collect()
    };
    let bounds = |values: Vec<f64>| -> Result<(f64, f64), SpecError> {
        match values[..] {
            [low, high] if low.is_finite() && high.is_finite() && low < high => Ok((low, high)),
            _ => {
                Err(wrong(value.span(), format!("{name}: expected [low, high] with low < high, both finite")))
            }
        }
    };
    let distribution = match name.as_str() {
        "log_uniform" => {
            let (low, high) = bounds(numbers(false)?)?;
            if low <= 0.0 {
                return Err(wrong(value.span(), "log_uniform: both ends must be above 0".into()));
            }
            Distribution::LogUniform(low, high)
        }
        "uniform" => {
            let (low, high) = bounds(numbers(false)?)?;
            Distribution::Uniform(low, high)
        }
        "int_uniform" => {
            let (low, high) = bounds(numbers(true)?)?;
            Distribution::IntUniform(low as i64, high as i64)
        }
        _ => {
            if items.is_empty() {
                return Err(wrong(value.span(), "choice: give at least one value".into()));
            }
            Distribution::Choice(items.iter().map(|item| text[item.span()].trim()).collect())
        }
    };
    Ok((distribution, count))
}

/// `count` distinct values of `distribution`, as TOML text, drawn from `seed` and the axis `key`.
fn sample(distribution: &Distribution, count: usize, seed: u64, key: &str) -> Result<Vec<String>, String> {
    let key_hash = u64::from_le_bytes(Sha256::digest(key.as_bytes())[..8].try_into().expect("8 bytes"));
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ key_hash);
    if let Distribution::Choice(values) = distribution {
        if count > values.len() {
            return Err(format!(
                "count = {count} but choice lists {} values (each is drawn once)",
                values.len()
            ));
        }
        let mut pool: Vec<&str> = values.clone();
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let i = rng.random_range(0..pool.len());
            out.push(pool.remove(i).to_string());
        }
        return Ok(out);
    }
    if let Distribution::IntUniform(low, high) = distribution {
        let room = (high - low + 1) as usize;
        if count > room {
            return Err(format!("count = {count} but [{low}, {high}] holds {room} whole numbers"));
        }
    }
    let mut out: Vec<String> = Vec::with_capacity(count);
    for _ in 0..MAX_REDRAWS {
        if out.len() == count {
            break;
        }
        let value = match *distribution {
            Distribution::LogUniform(low, high) => {
                float(rng.random_range(low.ln()..high.ln()).exp().clamp(low, high))
            }
            Distribution::Uniform(low, high) => float(rng.random_range(low..high)),
            Distribution::IntUniform(low, high) => rng.random_range(low..=high).to_string(),
            Distribution::Choice(_) => unreachable!("returned above"),
        };
        if !out.contains(&value) {
            out.push(value);
        }
    }
    if out.len() < count {
        return Err(format!(
            "could not draw {count} distinct values (rounded to 3 significant digits); fewer?"
        ));
    }
    Ok(out)
}

/// A float rounded to 3 significant digits, written as a TOML float (`0.00312`, `1e-10`, `2.0`).
fn float(value: f64) -> String {
    let rounded: f64 = format!("{value:.2e}").parse().expect("a formatted float parses");
    format!("{rounded:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_keep_three_significant_digits_in_toml_syntax() {
        assert_eq!(float(0.003_124_9), "0.00312");
        assert_eq!(float(2.0), "2.0");
        assert_eq!(float(123_456.0), "123000.0");
        assert_eq!(float(1.234_5e-10), "1.23e-10");
    }

    #[test]
    fn draws_are_distinct_within_bounds_and_repeat_for_the_same_seed() {
        let log = Distribution::LogUniform(1e-4, 1e-1);
        let a = sample(&log, 12, 7, "learning_rate").unwrap();
        assert_eq!(a, sample(&log, 12, 7, "learning_rate").unwrap());
        assert_ne!(a, sample(&log, 12, 8, "learning_rate").unwrap());
        assert_ne!(a, sample(&log, 12, 7, "other").unwrap());
        let values: Vec<f64> = a.iter().map(|v| v.parse().unwrap()).collect();
        assert!(values.iter().all(|v| (1e-4..=1e-1).contains(v)), "{values:?}");
        let mut sorted = a.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 12);
        let ints = sample(&Distribution::IntUniform(3, 5), 3, 1, "k").unwrap();
        let mut ints: Vec<i64> = ints.iter().map(|v| v.parse().unwrap()).collect();
        ints.sort();
        assert_eq!(ints, [3, 4, 5]);
        assert!(sample(&Distribution::IntUniform(3, 5), 4, 1, "k").unwrap_err().contains("holds 3"));
        let picked = sample(&Distribution::Choice(vec!["4", "8", "16"]), 3, 1, "r").unwrap();
        let mut picked = picked.clone();
        picked.sort();
        assert_eq!(picked, ["16", "4", "8"]);
    }
}
