//! Hand-computed races. Unless said otherwise a key has 4 images, `4k..4k+3` for key k: the
//! first two positive, the last two negative; a pull is written as 4 letters, `r` for a right
//! answer and `w` for a wrong one, image by image.

use super::*;

const IMAGES_PER_KEY: u32 = 4;

fn done(key: usize, pattern: &str) -> Pull {
    let answers = pattern.chars().enumerate().map(|(i, right)| {
        let positive = i < 2;
        let answered_positive = if right == 'r' { positive } else { !positive };
        ImageAnswer {
            image: key as u32 * IMAGES_PER_KEY + i as u32,
            answer: Answer { positive, answered_positive },
        }
    });
    Pull::Done(answers.collect())
}

/// A diverged pull at `key`: its four images answered wrong.
fn diverged(key: usize) -> Pull {
    let wrong =
        (0..4).map(|i| ImageAnswer { image: key as u32 * IMAGES_PER_KEY + i, answer: Answer::wrong(i < 2) });
    Pull::Diverged(wrong.collect())
}

/// A config that answers `pattern` at every key of `keys`.
fn every_key(keys: usize, pattern: &str) -> Vec<Pull> {
    (0..keys).map(|key| done(key, pattern)).collect()
}

fn input(first_round: usize, keys: usize, configs: Vec<Vec<Pull>>) -> RaceInput {
    RaceInput { metric: Metric::Precision, first_round, keys, configs }
}

fn mcnemar(alpha: f64, spending: Spending) -> RaceRule {
    RaceRule { test: DropTest::McNemar { alpha, spending } }
}

fn dropped_at(state: &RaceState, config: usize) -> Option<(usize, f64)> {
    match state.configs[config] {
        ConfigState::Dropped { look, p, .. } => Some((look, p)),
        _ => None,
    }
}

/// `config` was dropped at `look` with a mid-p of `p` (to rounding: it is summed in logs).
#[track_caller]
fn assert_dropped(state: &RaceState, config: usize, look: usize, p: f64) {
    let (at, got) = dropped_at(state, config).unwrap_or_else(|| panic!("{:?}", state.configs));
    assert_eq!(at, look);
    close(got, p);
}

#[track_caller]
fn close(got: f64, expected: f64) {
    assert!((got - expected).abs() < 1e-12, "got {got}, expected {expected}");
}

/// A is always right; B says yes to both negatives of every key. With precision the pairs are
/// the 2 positives (both yes, both right) and the 2 negatives (B said yes: A right, B wrong),
/// so after k keys b = 2k, c = 0 and the mid-p is 2·½·2^−2k = 2^−2k: look 1 (2 keys) 1/16,
/// look 2 (3 keys) 1/64, look 3 (4 keys) 1/256.
fn a_and_b() -> RaceInput {
    input(2, 4, vec![every_key(4, "rrrr"), every_key(4, "rrww")])
}

#[test]
fn drops_at_the_look_the_levels_allow() {
    // Constant 0.05: 1/16 ≥ 0.05 at look 1, 1/64 < 0.05 at look 2.
    let state = judge(&mcnemar(0.05, Spending::Constant), &a_and_b());
    assert_dropped(&state, 1, 2, 1.0 / 64.0);
    assert_eq!((state.end, state.configs[0]), (Some(End::OneLeft), ConfigState::Survivor));
    assert_eq!(state.looks.iter().map(|l| l.keys).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(state.looks[1].entries[1].versus, Some(Paired { pairs: 12, b: 6, c: 0 }));
    // Both configs ran 3 keys; the 4th key is not needed.
    assert_eq!((state.pulls_judged(), state.next.len()), (6, 0));
    // Harmonic: levels 0.05/2, 0.05/6, 0.05/12 = 0.00417: only 1/256 at look 3 is below.
    let state = judge(&mcnemar(0.05, Spending::Harmonic), &a_and_b());
    assert_dropped(&state, 1, 3, 1.0 / 256.0);
    close(state.looks[1].level.unwrap(), 0.05 / 6.0);
    // Bonferroni over the 3 looks 4 keys allow: 0.0167 > 1/64 at look 2.
    let state = judge(&mcnemar(0.05, Spending::Bonferroni), &a_and_b());
    assert_dropped(&state, 1, 2, 1.0 / 64.0);
    close(state.looks[0].level.unwrap(), 0.05 / 3.0);
    // O'Brien–Fleming-like: 2·P(Z > 1.96/√t); scipy gives 0.005575 at t = 2/4 and 0.023625
    // at t = 3/4, so B goes at look 2 (1/64 = 0.0156).
    let state = judge(&mcnemar(0.05, Spending::OBrienFleming), &a_and_b());
    assert_dropped(&state, 1, 2, 1.0 / 64.0);
    let levels: Vec<f64> = state.looks.iter().map(|l| l.level.unwrap()).collect();
    assert!((levels[0] - 0.005_574_6).abs() < 1e-6 && (levels[1] - 0.023_625_1).abs() < 1e-6, "{levels:?}");
    // SMAC-like: B's precision 1/2 is below A's 1 at the first look.
    let state = judge(&RaceRule { test: DropTest::LowerValue }, &a_and_b());
    assert_eq!(dropped_at(&state, 1).map(|(look, _)| look), Some(1));
    assert_eq!(state.looks[0].level, None);
}

#[test]
fn levels_match_hand_values() {
    let level = |spending: Spending, look, counted| spending.level(0.05, look, 11, (counted, 15));
    close(level(Spending::Constant, 7, 11), 0.05);
    close(level(Spending::Harmonic, 1, 5), 0.025);
    close(level(Spending::Harmonic, 4, 8), 0.05 / 20.0);
    close(level(Spending::Bonferroni, 4, 8), 0.05 / 11.0);
    // scipy: 2·norm.sf(norm.isf(0.025)/√t) is 0.05 at t = 1 and 8.8575e-5 at t = 1/4.
    assert!((level(Spending::OBrienFleming, 11, 15) - 0.05).abs() < 1e-6);
    assert!((Spending::OBrienFleming.level(0.05, 1, 4, (1, 4)) - 8.857_5e-5).abs() < 1e-8);
    // Harmonic levels sum to α however many looks there are.
    let sum: f64 = (1..=100_000).map(|n| Spending::Harmonic.level(0.05, n, 0, (0, 0))).sum();
    assert!((sum - 0.05 * (1.0 - 1.0 / 100_001.0)).abs() < 1e-12);
}

#[test]
fn a_tie_never_drops() {
    // A is wrong on image 2 (a no it said yes to), C on image 0 (a yes it missed). Precision
    // pairs: image 0 (A said yes: A right, C wrong), image 1 (both right), image 2 (A wrong,
    // C right); image 3 both said no. C (4/4, Wilson low 0.51) leads A (8/12, low 0.39);
    // from C's side b = 4 (image 2), c = 4 (image 0): p = 1, and a tie drops nobody even at a
    // level above every p-value.
    let configs = vec![every_key(4, "rrwr"), every_key(4, "wrrr")];
    let state = judge(&mcnemar(2.0, Spending::Constant), &input(4, 4, configs.clone()));
    assert_eq!(state.looks[0].leader, Some(1));
    assert_eq!(state.looks[0].entries[0].versus, Some(Paired { pairs: 12, b: 4, c: 4 }));
    assert_eq!(state.configs, [ConfigState::Survivor; 2]);
    assert_eq!(state.end, Some(End::KeysRanOut));
    // Two configs with the same answers: equal values, nothing dropped by either test.
    let twins = vec![every_key(4, "rrwr"), every_key(4, "rrwr")];
    for rule in [mcnemar(2.0, Spending::Constant), RaceRule { test: DropTest::LowerValue }] {
        let state = judge(&rule, &input(2, 4, twins.clone()));
        assert_eq!(state.configs, [ConfigState::Survivor; 2], "{rule:?}");
        assert_eq!((state.looks.len(), state.looks[0].leader), (3, Some(0)));
    }
}

#[test]
fn the_leader_is_never_dropped() {
    // One key of 30 images: 0..15 positive, 15..30 negative. P says yes to image 0 only
    // (precision 1/1, Wilson low 0.2065); Q says yes to all (15/30, Wilson low 0.3315), so Q
    // leads with the lower value. Precision pairs: all 30 (Q said yes). From Q's side b = 14
    // (images 1..15, P missed them), c = 15 (P right on the negatives): P is not worse, and Q,
    // the leader, is never tested, though a test from P's side would drop it at this level.
    let key = |yes: &dyn Fn(u32) -> bool| {
        let answers = (0..30).map(|image| {
            let answer = Answer { positive: image < 15, answered_positive: yes(image) };
            ImageAnswer { image, answer }
        });
        vec![Pull::Done(answers.collect())]
    };
    let configs = vec![key(&|image| image == 0), key(&|_| true)];
    for rule in [mcnemar(2.0, Spending::Constant), RaceRule { test: DropTest::LowerValue }] {
        let state = judge(&rule, &input(1, 1, configs.clone()));
        assert_eq!(state.looks[0].leader, Some(1), "{rule:?}");
        assert_eq!(state.looks[0].entries[0].versus, Some(Paired { pairs: 30, b: 14, c: 15 }));
        assert_eq!(state.configs, [ConfigState::Survivor; 2], "{rule:?}");
    }
}

#[test]
fn diverged_pulls_answer_their_images_wrong_and_failed_ones_nothing() {
    // A: always right. D: right at key 0, diverged at key 1 (its four images all wrong). F:
    // B's answers at key 0, failed at key 1.
    let configs =
        vec![every_key(2, "rrrr"), vec![done(0, "rrrr"), diverged(1)], vec![done(0, "rrww"), Pull::Failed]];
    let state = judge(&mcnemar(0.05, Spending::Constant), &input(2, 2, configs.clone()));
    let look = &state.looks[0];
    let conf = |tp, tn, fp, fn_| Confusion { tp, tn, fp, fn_ };
    assert_eq!(look.entries[1].pooled, conf(2, 2, 2, 2));
    assert_eq!(look.entries[2].pooled, conf(2, 0, 2, 0));
    // D vs A: key 0 gives 2 concordant pairs (the yes images); key 1's 4 images all seen (A
    // said yes to the positives, D to the negatives), A right each time: b = 4, c = 0, p =
    // 2^−4 = 0.0625. F: key 0 only, b = 2 (the negatives), p = 0.25.
    assert_eq!(look.entries[1].versus, Some(Paired { pairs: 6, b: 4, c: 0 }));
    assert_eq!(look.entries[2].versus, Some(Paired { pairs: 4, b: 2, c: 0 }));
    assert_eq!(state.configs, [ConfigState::Survivor; 3]);
    let state = judge(&mcnemar(0.1, Spending::Constant), &input(2, 2, configs));
    assert_dropped(&state, 1, 1, 0.0625);
    assert_eq!(state.configs[2], ConfigState::Survivor);
    // A key every config diverged on still counts its images wrong for each.
    let all_diverged = vec![vec![done(0, "rrrr"), diverged(1)], vec![done(0, "rrrw"), diverged(1)]];
    let state = judge(&mcnemar(0.05, Spending::Constant), &input(2, 2, all_diverged));
    assert_eq!(state.looks[0].entries[1].pooled, conf(2, 1, 3, 2));
    // A config that never finished a done pull cannot lead, even with the best value.
    let never_done = vec![vec![diverged(0), diverged(1)], every_key(2, "rwrr")];
    let state = judge(&mcnemar(0.05, Spending::Constant), &input(2, 2, never_done));
    assert_eq!(state.looks[0].leader, Some(1));
}

#[test]
fn next_pulls_go_key_by_key_and_a_look_waits_for_every_racing_config() {
    let pk = |config, key| PullKey { config, key };
    let rule = mcnemar(0.05, Spending::Constant);
    // Nothing run: every pull of the first round (keys 0 and 1), key by key; key 2 waits for
    // the first look.
    let state = judge(&rule, &input(2, 3, vec![vec![], vec![], vec![]]));
    let first_round: Vec<PullKey> =
        (0..2).flat_map(|key| (0..3).map(move |config| pk(config, key))).collect();
    assert_eq!((state.next, state.looks.len()), (first_round, 0));
    // Configs 0 and 1 finished key 0; config 0 ran ahead to key 2, its key 1 still running.
    let configs = vec![vec![done(0, "rrrr"), Pull::Pending, done(2, "rrrr")], vec![done(0, "rrrr")], vec![]];
    let state = judge(&rule, &input(2, 3, configs));
    assert_eq!(state.next, [pk(2, 0), pk(0, 1), pk(1, 1), pk(2, 1)]);
    assert!(state.looks.is_empty() && !state.is_decided());
    assert_eq!(state.pulls_judged(), 0);
}

#[test]
fn pulls_run_ahead_or_after_a_drop_change_nothing() {
    // a_and_b at constant 0.05 drops B at look 2 (3 keys). With one key fewer finished by A,
    // the second look waits and B's key 3 (run ahead) is not counted.
    let rule = mcnemar(0.05, Spending::Constant);
    let mut waiting = a_and_b();
    waiting.configs[0].truncate(2);
    let state = judge(&rule, &waiting);
    assert_eq!(state.looks.len(), 1);
    assert_eq!(state.configs, [ConfigState::Racing; 2]);
    // After look 1 (2 keys) only key 2 is next: key 3 waits for look 2.
    assert_eq!(state.next, [PullKey { config: 0, key: 2 }]);
    // Finished, and B's 4th pull turned out bad: decided as before, at the same look.
    let mut after = a_and_b();
    after.configs[1][3] = diverged(3);
    assert_eq!(judge(&rule, &after), judge(&rule, &a_and_b()));
    // Keys appended past the grid (a confirmation seed) leave the looks already made as they
    // were under a spending that does not depend on the number of keys.
    let harmonic = mcnemar(0.05, Spending::Harmonic);
    let twins = input(2, 4, vec![every_key(4, "rrwr"), every_key(4, "rrwr")]);
    let mut longer = twins.clone();
    longer.keys = 6;
    let (grid, extended) = (judge(&harmonic, &twins), judge(&harmonic, &longer));
    assert_eq!(grid.looks, extended.looks);
    assert_eq!((grid.end, extended.end), (Some(End::KeysRanOut), None));
    // Three looks made (after keys 2, 3 and 4 of 0-based 0..4): the next counts key 4 only.
    assert_eq!(extended.next, [PullKey { config: 0, key: 4 }, PullKey { config: 1, key: 4 }]);
}

#[test]
fn holdout_first_round_answers_as_many_images_as_the_pool_holds() {
    assert_eq!(holdout_first_round(80, 10), 8);
    assert_eq!(holdout_first_round(80, 16), 5);
    assert_eq!(holdout_first_round(81, 16), 6);
    assert_eq!(holdout_first_round(5, 10), 1);
}
