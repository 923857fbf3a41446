//! What `gacha sweep` prints on stdout after the leaderboard: how many trials are finished and
//! what this run did, what a rerun would retry, the best trial, the final model with its
//! estimate, and where the files are.

use std::path::Path;

use crate::eval::metrics::format_metric;
use crate::eval::{Confusion, Metric};
use crate::results::judge::ConfigSummary;
use crate::results::layout::{BEST_DIR, LEADERBOARD_FILE, REPORT_FILE, TRIALS_DIR};
use crate::results::race::{RaceFile, Standing};
use crate::results::rank::metric_after;
use crate::results::record::FinalRecord;
use crate::spec::{FinalModel, SweepSpec};
use crate::sweep::{SweepEnd, SweepSummary};

/// What this run did, as the summary counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThisRun {
    /// Its own trials: those of the summary.
    Alone,
    /// Worker processes ran them; this many trials were finished before they started.
    WorkersAfter(usize),
}

/// The summary lines of a sweep run of `spec` into `results`.
pub fn sweep_summary(summary: &SweepSummary, spec: &SweepSpec, results: &Path, this_run: ThisRun) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    let finished = summary.finished.done + summary.finished.diverged + summary.finished.failed;
    let (ran, skipped) = match this_run {
        ThisRun::WorkersAfter(earlier) => (finished.saturating_sub(earlier), earlier.min(finished)),
        ThisRun::Alone => (summary.ran.done + summary.ran.diverged + summary.ran.failed, summary.skipped),
    };
    let counts = format!(
        "({} done, {} diverged, {} failed)",
        summary.finished.done, summary.finished.diverged, summary.finished.failed
    );
    line(match &summary.race {
        // A race runs only some of its trials: its line below says how many of the grid's.
        Some(_) => format!("{finished} pulls finished {counts}; this run: {ran} pulls, {skipped} skipped"),
        None => format!(
            "{finished} of {} trials finished {counts}; this run: {ran} trials, {skipped} skipped",
            summary.trials
        ),
    });
    if summary.to_retry > 0 {
        line(format!(
            "{} failed trial(s) failed for lack of space, memory or I/O: the same command retries them",
            summary.to_retry
        ));
    }
    if summary.finished.failed > summary.to_retry {
        line(format!(
            "{} failed trial(s) would fail again as they are (see their error); --retry-failed reruns them",
            summary.finished.failed - summary.to_retry
        ));
    }
    if let Some(race) = &summary.race {
        line(race_line(race, finished));
    }
    if let SweepEnd::Spent(spent) = &summary.end {
        line(format!(
            "stopped on its budget: {spent}; the final model is made of the pulls finished, and the same \
             command with a later --until or a larger max_pulls goes on"
        ));
    }
    let select = spec.select.metric;
    if let Some(best) = &summary.best {
        let value = format_metric(metric_after(best, select.split, select.metric));
        match &summary.final_model {
            Some(record) if record.final_model != FinalModel::BestTrial => line(format!(
                "best trial: {} ({select} {value}) in {}",
                best.id(),
                results.join(TRIALS_DIR).join(best.id().as_str()).display()
            )),
            _ => {
                line(format!("best: {} ({select} {value}) → {}", best.id(), results.join(BEST_DIR).display()))
            }
        }
    }
    if let Some(record) = &summary.final_model {
        let best = results.join(BEST_DIR);
        describe_final(record, select.metric, &best, summary.winning_config.as_ref())
            .into_iter()
            .for_each(&mut line);
    }
    line(format!("leaderboard: {}", results.join(LEADERBOARD_FILE).display()));
    line(format!("report: {}", results.join(REPORT_FILE).display()));
    if summary.end == SweepEnd::LeftToOthers {
        line(format!(
            "the trials left are running in other workers; `gacha status {}` shows them",
            results.display()
        ));
    }
    out
}

/// `race: 12 configs over 15 keys, decided at look 4 (one config left): 1 survivor, 11 dropped;
/// 74 pulls of the grid's 180 (41%)`.
pub fn race_line(race: &RaceFile, pulls: usize) -> String {
    let count = |f: &dyn Fn(&Standing) -> bool| race.configs.iter().filter(|c| f(&c.standing)).count();
    let survivors = count(&|s| *s == Standing::Survivor);
    let dropped = count(&|s| matches!(s, Standing::Dropped { .. }));
    let racing = count(&|s| *s == Standing::Racing);
    let state = match &race.end {
        Some(why) => format!(
            "decided at look {} ({why}): {survivors} survivor(s), {dropped} dropped",
            race.looks.len()
        ),
        None => format!("not decided after {} look(s): {racing} racing, {dropped} dropped", race.looks.len()),
    };
    let grid = race.configs.len() * race.grid_keys;
    let keys = match race.keys - race.grid_keys {
        0 => format!("{} keys", race.grid_keys),
        extra => format!("{} keys and {extra} more to confirm the survivors", race.grid_keys),
    };
    let share =
        if grid > 0 { format!(" ({:.0}%)", 100.0 * pulls as f64 / grid as f64) } else { String::new() };
    format!(
        "race: {} configs over {keys}, {state}; {pulls} pulls of the grid's {grid}{share}",
        race.configs.len()
    )
}

/// What the sweep's last lines say about the final model: what it is, and its estimate. With
/// test images: `expected precision 0.9500 [0.8600, 0.9900] on 20 test images`. Without: the
/// winning config's pooled validation value, marked optimistic (it is the value it was chosen
/// for).
fn describe_final(
    record: &FinalRecord,
    metric: Metric,
    best: &Path,
    winning: Option<&ConfigSummary>,
) -> Vec<String> {
    let what = match record.final_model {
        FinalModel::BestTrial => format!("the best trial, {}", record.members[0]),
        kind => format!("{kind} of {} models", record.members.len()),
    };
    let mut lines = vec![format!(
        "final model: {what}, config {} ({}) → {}",
        record.config,
        record.config_label,
        best.display()
    )];
    let estimate = |counts: &Confusion| {
        let value = format_metric(counts.value(metric));
        let interval =
            counts.wilson_95(metric).map_or_else(String::new, |(lo, hi)| format!(" [{lo:.4}, {hi:.4}]"));
        format!("{metric} {value}{interval}")
    };
    match (&record.test, winning) {
        (Some(test), _) => lines.push(format!(
            "expected {} on {} test images (95% Wilson interval; never trained on, never used to choose)",
            estimate(test),
            test.total()
        )),
        (None, Some(config)) if config.id != record.config => lines.push(format!(
            "note: the best trial is a pull of config {}, not of the winning config {} ({}); its \
             one hold-out is no estimate, and final = \"soup\" or \"refit\" builds on the winner",
            record.config, config.id, config.label
        )),
        (None, Some(config)) => {
            let n = config.pooled.proportion(metric).map_or(config.pooled.total(), |(_, n)| n);
            lines.push(format!(
                "estimate: {} over {n} pooled validation answers of config {}'s {} pulls; optimistic, since \
                 the config was chosen on them (add [validation] test = N for an honest one)",
                estimate(&config.pooled),
                config.id,
                config.pulls()
            ))
        }
        (None, None) => {}
    }
    lines.extend(operating_point_lines(record));
    lines
}

/// The shipped operating point (with a precision target): whether it is certified, the
/// temperature, and with test images precision and recall at it beside those at 0.5.
fn operating_point_lines(record: &FinalRecord) -> Vec<String> {
    let Some(op) = &record.operating_point else { return Vec::new() };
    let t = &op.temperature;
    let mut lines = vec![
        format!("operating point: {op}"),
        format!(
            "shipped in final.json: answer yes when logit(yes) − logit(no) > {:.4}; temperature {:.3}{} \
             (fitted on {} out-of-fold answers), so P(yes) = σ((logit(yes) − logit(no)) / {:.3})",
            op.threshold_logit,
            t.temperature,
            if t.at_limit { ", at its limit" } else { "" },
            t.pairs,
            t.temperature
        ),
    ];
    if let (Some(at_half), Some(at_threshold)) = (&record.test, &record.test_at_threshold) {
        let both = |counts: &Confusion| {
            [Metric::Precision, Metric::Recall]
                .map(|metric| {
                    let interval = counts
                        .wilson_95(metric)
                        .map_or_else(String::new, |(lo, hi)| format!(" [{lo:.4}, {hi:.4}]"));
                    format!("{metric} {}{interval}", format_metric(counts.value(metric)))
                })
                .join(", ")
        };
        lines.push(format!(
            "on {} test images at P(yes) > {:.3}: {}; at 0.5: {} (95% Wilson intervals)",
            at_threshold.total(),
            op.threshold_p_yes,
            both(at_threshold),
            both(at_half)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::budget::Spent;
    use crate::results::race::{RaceConfig, RaceLook};
    use crate::results::record::Status;
    use crate::results::test_records::{record, two_configs};
    use crate::sweep::progress::Counts;

    fn summary(final_model: Option<FinalRecord>, winning: Option<ConfigSummary>) -> SweepSummary {
        // The best trial: valid tp 3 tn 4 fp 1 fn 2 → precision 3/4.
        let best = record("0123456789ab", Status::Done, [3, 4, 1, 2], Some(0.125));
        SweepSummary {
            end: SweepEnd::Complete,
            trials: 6,
            skipped: 1,
            to_retry: 1,
            ran: Counts { done: 3, diverged: 1, failed: 1 },
            finished: Counts { done: 3, diverged: 1, failed: 2 },
            best: Some(best),
            final_model,
            winning_config: winning,
            race: None,
        }
    }

    #[test]
    fn the_best_trial_with_its_pooled_estimate() {
        let (spec, configs) = two_configs();
        let winning = configs[0].clone();
        let record = FinalRecord {
            final_model: FinalModel::BestTrial,
            config: winning.id.clone(),
            config_label: winning.label.clone(),
            members: vec!["trials/0123456789ab".into()],
            test: None,
            budget: None,
            operating_point: None,
            test_at_threshold: None,
        };
        let got = sweep_summary(
            &summary(Some(record), Some(winning.clone())),
            &spec,
            Path::new("r"),
            ThisRun::Alone,
        );
        // The winner pooled tp 3, fp 1 over its 2 pulls: 3/4 with the Wilson interval
        // [0.3006, 0.9544] computed by hand in results/config_columns.rs's test.
        let expected = format!(
            "6 of 6 trials finished (3 done, 1 diverged, 2 failed); this run: 5 trials, 1 skipped\n\
             1 failed trial(s) failed for lack of space, memory or I/O: the same command retries them\n\
             1 failed trial(s) would fail again as they are (see their error); --retry-failed reruns them\n\
             best: 0123456789ab (valid.precision 0.7500) → r/best\n\
             final model: the best trial, trials/0123456789ab, config {id} ({label}) → r/best\n\
             estimate: precision 0.7500 [0.3006, 0.9544] over 4 pooled validation answers of config {id}'s 2 \
             pulls; optimistic, since the config was chosen on them (add [validation] test = N for an honest one)\n\
             leaderboard: r/leaderboard.csv\n\
             report: r/report.html\n",
            id = winning.id,
            label = winning.label
        );
        assert_eq!(got, expected, "\n--- got\n{got}\n--- expected\n{expected}");
    }

    #[test]
    fn a_soup_with_its_test_estimate_and_workers_counted_as_this_run() {
        let (spec, configs) = two_configs();
        let record = FinalRecord {
            final_model: FinalModel::Soup,
            config: configs[0].id.clone(),
            config_label: configs[0].label.clone(),
            members: vec!["trials/a".into(), "trials/b".into()],
            test: Some(Confusion { tp: 15, tn: 3, fp: 1, fn_: 1 }),
            budget: None,
            operating_point: None,
            test_at_threshold: None,
        };
        let mut summary = summary(Some(record), Some(configs[0].clone()));
        summary.end = SweepEnd::LeftToOthers;
        let got = sweep_summary(&summary, &spec, Path::new("r"), ThisRun::WorkersAfter(2));
        // Test precision 15/16 = 0.9375; Wilson 95% by hand (z = 1.959964): centre
        // (0.9375 + 0.120032)/1.240100 = 0.852736, half 1.580488·√(0.0036621 + 0.0037509)
        // = 0.136064 → [0.7167, 0.9889].
        let expected = format!(
            "6 of 6 trials finished (3 done, 1 diverged, 2 failed); this run: 4 trials, 2 skipped\n\
             1 failed trial(s) failed for lack of space, memory or I/O: the same command retries them\n\
             1 failed trial(s) would fail again as they are (see their error); --retry-failed reruns them\n\
             best trial: 0123456789ab (valid.precision 0.7500) in r/trials/0123456789ab\n\
             final model: soup of 2 models, config {} ({}) → r/best\n\
             expected precision 0.9375 [0.7167, 0.9889] on 20 test images (95% Wilson interval; never \
             trained on, never used to choose)\n\
             leaderboard: r/leaderboard.csv\n\
             report: r/report.html\n\
             the trials left are running in other workers; `gacha status r` shows them\n",
            configs[0].id, configs[0].label
        );
        assert_eq!(got, expected, "\n--- got\n{got}\n--- expected\n{expected}");
    }

    #[test]
    fn a_race_stopped_on_its_budget_counts_pulls_against_the_grid() {
        let (spec, configs) = two_configs();
        let standing =
            |config: &ConfigSummary, standing| RaceConfig { config: config.id.clone(), standing, vs: None };
        let race = RaceFile {
            keys: 5,
            grid_keys: 5,
            first_round: 3,
            end: None,
            configs: vec![
                standing(&configs[0], Standing::Racing),
                standing(&configs[1], Standing::Dropped { look: 1, p: 0.001 }),
            ],
            screened_out: Vec::new(),
            looks: vec![RaceLook { keys: 3, level: Some(0.01), leader: None, entries: Vec::new() }],
        };
        let mut summary = summary(None, None);
        summary.best = None;
        summary.race = Some(race);
        summary.end = SweepEnd::Spent(Spent::Pulls(6));
        let got = sweep_summary(&summary, &spec, Path::new("r"), ThisRun::Alone);
        // 3 + 1 + 2 = 6 pulls finished of the grid's 2 configs × 5 keys = 10: 60%.
        let expected = "6 pulls finished (3 done, 1 diverged, 2 failed); this run: 5 pulls, 1 skipped\n\
             1 failed trial(s) failed for lack of space, memory or I/O: the same command retries them\n\
             1 failed trial(s) would fail again as they are (see their error); --retry-failed reruns them\n\
             race: 2 configs over 5 keys, not decided after 1 look(s): 1 racing, 1 dropped; 6 pulls of the \
             grid's 10 (60%)\n\
             stopped on its budget: max_pulls = 6 reached; the final model is made of the pulls finished, and \
             the same command with a later --until or a larger max_pulls goes on\n\
             leaderboard: r/leaderboard.csv\n\
             report: r/report.html\n";
        assert_eq!(got, expected, "\n--- got\n{got}\n--- expected\n{expected}");
    }

    #[test]
    fn the_operating_point_says_whether_it_is_certified_and_compares_with_one_half() {
        use crate::eval::operating_point::{OperatingPoint, Target, Temperature, Verdict};
        let op = OperatingPoint {
            target: Target::new(0.95, 0.9).unwrap(),
            temperature: Temperature { temperature: 1.5, log_loss: 0.3, pairs: 160, at_limit: false },
            threshold_logit: 2.0,
            threshold_p_yes: 0.87,
            verdict: Verdict::Uncertified,
            counts: Confusion { tp: 32, fp: 2, fn_: 18, tn: 28 },
            precision_lower_bound: 0.9109,
        };
        let record = FinalRecord {
            final_model: FinalModel::Soup,
            config: two_configs().1[0].id.clone(),
            config_label: String::new(),
            members: vec![],
            test: Some(Confusion { tp: 15, tn: 3, fp: 1, fn_: 1 }),
            budget: None,
            operating_point: Some(Box::new(op)),
            test_at_threshold: Some(Confusion { tp: 15, tn: 3, fp: 1, fn_: 15 }),
        };
        // Wilson 95% by hand (as above): 15/16 → [0.7167, 0.9889]; 15/30: centre 0.5, half
        // 1.737482·√(0.0083333 + 0.0010671) = 0.168460 → [0.3315, 0.6685].
        assert_eq!(
            operating_point_lines(&record),
            [
                "operating point: no threshold certifies precision ≥ 0.95 at 90% confidence on 80 images: \
                 best lower bound 0.910, at recall 0.64; shipping P(yes) > 0.870 uncertified",
                "shipped in final.json: answer yes when logit(yes) − logit(no) > 2.0000; temperature 1.500 \
                 (fitted on 160 out-of-fold answers), so P(yes) = σ((logit(yes) − logit(no)) / 1.500)",
                "on 34 test images at P(yes) > 0.870: precision 0.9375 [0.7167, 0.9889], recall 0.5000 \
                 [0.3315, 0.6685]; at 0.5: precision 0.9375 [0.7167, 0.9889], recall 0.9375 [0.7167, 0.9889] \
                 (95% Wilson intervals)",
            ]
        );
        assert!(operating_point_lines(&FinalRecord { operating_point: None, ..record }).is_empty());
    }
}
