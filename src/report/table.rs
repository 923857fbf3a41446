//! The leaderboard for people: the few columns that tell trials apart (the `[train]` fields that
//! vary, the select metric, valid F1, all accuracy), as an aligned text table, and the changes
//! between two results folders.

use std::collections::BTreeMap;

use crate::eval::{Metric, Split};
use crate::results::columns::{columns, Column, Stat, When};
use crate::results::record::TrialRecord;
use crate::spec::SelectMetric;

/// Longest prompt shown in a table cell.
const PROMPT_CHARS: usize = 32;

/// The summary columns: identity, the params that vary between `records`, outcome, scores.
pub fn summary_columns(records: &[&TrialRecord], select: SelectMetric) -> Vec<Column> {
    let varies = |col: &Column| {
        let first = records.first().map(|r| col.cell(r));
        records.iter().any(|r| Some(col.cell(r)) != first)
    };
    let mut cols = vec![Column::Id, Column::Status, Column::Seed, Column::Reseeds, Column::Valid];
    cols.extend(columns().into_iter().filter(|c| matches!(c, Column::Train(_)) && varies(c)));
    if varies(&Column::Prompt) {
        cols.push(Column::Prompt);
    }
    cols.push(Column::FinalLoss);
    let score = |split, metric| Column::Score(When::After, split, Stat::Metric(metric));
    for (split, metric) in
        [(select.split, select.metric), (Split::Valid, Metric::F1), (Split::All, Metric::Accuracy)]
    {
        if !cols.contains(&score(split, metric)) {
            cols.push(score(split, metric));
        }
    }
    cols
}

/// A cell as shown to people: losses to 4 decimals, prompts shortened.
pub fn display_cell(col: &Column, record: &TrialRecord) -> String {
    let cell = col.cell(record);
    match col {
        Column::FinalLoss => cell.parse::<f64>().map(|l| format!("{l:.4}")).unwrap_or(cell),
        Column::Prompt => shorten(cell),
        _ => cell,
    }
}

/// A prompt-length cell with its control characters escaped (`\u{1b}`: raw, a terminal would
/// act on them; issue 29, case 19), cut to `PROMPT_CHARS`, ending in `…` when cut.
pub(super) fn shorten(cell: String) -> String {
    let cell: String = if cell.chars().any(char::is_control) {
        cell.chars()
            .map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() })
            .collect()
    } else {
        cell
    };
    if cell.chars().count() > PROMPT_CHARS {
        cell.chars().take(PROMPT_CHARS - 1).chain(['…']).collect()
    } else {
        cell
    }
}

/// The ranked trials as an aligned text table, rank first; `-` for empty cells.
pub fn leaderboard_table(ranked: &[&TrialRecord], select: SelectMetric) -> String {
    let cols = summary_columns(ranked, select);
    let mut rows = vec![std::iter::once("#".to_string()).chain(cols.iter().map(Column::name)).collect()];
    for (i, record) in ranked.iter().enumerate() {
        let cells = cols.iter().map(|c| display_cell(c, record));
        rows.push(std::iter::once((i + 1).to_string()).chain(cells).collect());
    }
    aligned(&rows)
}

/// What changed from results folder A to B, per trial id: rank, status, select metric, valid
/// F1 and final loss; trials in only one folder are listed as added or removed. The summary
/// counts a trial as changed only when one of its results differs: one whose rank alone moved
/// (because others changed) is listed, and counted as moved.
pub fn leaderboard_diff(a: &[&TrialRecord], b: &[&TrialRecord], select: SelectMetric) -> String {
    let watched = [
        Column::Status,
        Column::Score(When::After, select.split, Stat::Metric(select.metric)),
        Column::Score(When::After, Split::Valid, Stat::Metric(Metric::F1)),
        Column::FinalLoss,
    ];
    let index = |ranked: &[&TrialRecord]| -> BTreeMap<String, usize> {
        ranked.iter().enumerate().map(|(i, r)| (r.id().to_string(), i)).collect()
    };
    let (in_a, in_b) = (index(a), index(b));
    let mut ids: Vec<&String> =
        b.iter().map(|r| in_b.get_key_value(r.id().as_str()).expect("indexed").0).collect();
    ids.extend(in_a.keys().filter(|id| !in_b.contains_key(*id)));

    let mut header = vec!["id".to_string(), "rank".to_string()];
    header.extend(watched.iter().map(Column::name));
    let mut rows = vec![header];
    let (mut changed, mut moved, mut added, mut removed, mut unchanged) = (0, 0, 0, 0, 0);
    for id in ids {
        let (ra, rb) = (in_a.get(id).map(|&i| a[i]), in_b.get(id).map(|&i| b[i]));
        let change = |before: String, after: String| {
            if before == after {
                before
            } else {
                format!("{before} → {after}")
            }
        };
        let side = |r: Option<&TrialRecord>, col: &Column| match r.map(|r| display_cell(col, r)) {
            None => "(none)".to_string(),
            Some(cell) if cell.is_empty() => "-".to_string(),
            Some(cell) => cell,
        };
        let rank = |i: Option<&usize>| i.map_or("(none)".to_string(), |i| (i + 1).to_string());
        let mut row = vec![id.clone(), change(rank(in_a.get(id)), rank(in_b.get(id)))];
        row.extend(watched.iter().map(|col| change(side(ra, col), side(rb, col))));
        let results_differ = row[2..].iter().any(|cell| cell.contains('→'));
        match (ra, rb) {
            (None, _) => added += 1,
            (_, None) => removed += 1,
            _ if results_differ => changed += 1,
            _ if row[1].contains('→') => moved += 1,
            _ => {
                unchanged += 1;
                continue;
            }
        }
        rows.push(row);
    }
    let mut text = if rows.len() > 1 { aligned(&rows) } else { String::new() };
    text.push_str(&format!(
        "{changed} trial(s) changed, {added} added, {removed} removed, {moved} moved in rank only, \
         {unchanged} unchanged\n"
    ));
    text
}

/// Left-aligned columns two spaces apart; empty cells shown as `-`.
pub(super) fn aligned(rows: &[Vec<String>]) -> String {
    let show = |cell: &str| if cell.is_empty() { "-".to_string() } else { cell.to_string() };
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| show(&r[c]).chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, &w)| format!("{:w$}", show(cell))).collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::record::Status;
    use crate::results::test_records::record;

    #[test]
    fn table_shows_rank_and_distinguishing_columns() {
        let a = record("0123456789ab", Status::Done, [3, 4, 1, 2], Some(0.125));
        let mut b = record("ba9876543210", Status::Diverged, [0, 0, 0, 0], Some(f64::NAN));
        b.params.train.learning_rate = 2.0;
        let text = leaderboard_table(&[&a, &b], SelectMetric::default());
        let expected = "\
#  id            status    seed  reseeds  valid  learning_rate  final_loss  valid_precision  valid_f1  all_accuracy
1  0123456789ab  done      1     0        10     0.03           0.1250      0.7500           0.6667    0.8333
2  ba9876543210  diverged  1     0        10     2.0            NaN         -                -         -
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn diff_lists_changed_added_and_removed_trials() {
        let same = record("000000000000", Status::Done, [3, 4, 1, 2], Some(0.125));
        let old = record("111111111111", Status::Failed, [0, 0, 0, 0], None);
        let new = record("111111111111", Status::Done, [4, 4, 0, 2], Some(0.25));
        let added = record("222222222222", Status::Done, [1, 4, 1, 2], Some(0.5));
        let text = leaderboard_diff(&[&same, &old], &[&new, &same, &added], SelectMetric::default());
        let expected = "\
id            rank        status         valid_precision  valid_f1         final_loss
111111111111  2 → 1       failed → done  - → 1.0000       - → 0.8000       - → 0.2500
000000000000  1 → 2       done           0.7500           0.6667           0.1250
222222222222  (none) → 3  (none) → done  (none) → 0.5000  (none) → 0.4000  (none) → 0.5000
1 trial(s) changed, 1 added, 0 removed, 1 moved in rank only, 0 unchanged
";
        assert_eq!(text, expected, "\n{text}");
        let same_again = leaderboard_diff(&[&same, &old], &[&same, &old], SelectMetric::default());
        assert_eq!(same_again, "0 trial(s) changed, 0 added, 0 removed, 0 moved in rank only, 2 unchanged\n");
        let gone = leaderboard_diff(&[&same, &old], &[&same], SelectMetric::default());
        assert!(
            gone.ends_with("0 trial(s) changed, 0 added, 1 removed, 0 moved in rank only, 1 unchanged\n"),
            "{gone}"
        );
    }
}
