use super::*;

fn kfold(seeds: u64) -> SimGrid {
    SimGrid {
        images: USERS_IMAGES,
        positives: USERS_POSITIVES,
        test: 16,
        seeds,
        validation: SimValidation::Kfold { folds: 5 },
    }
}

fn setup(accuracies: &[f64], grid: SimGrid) -> SimSetup {
    let configs =
        accuracies.iter().map(|&accuracy| SimConfig { accuracy, divergence: Divergence::Never }).collect();
    SimSetup { configs, grid, answers: AnswerModel::Independent, confirm: false }
}

#[test]
fn true_precision_matches_hand_values() {
    let pi = 54.0 / 96.0;
    // 0.5625·0.9 / (0.5625·0.9 + 0.4375·0.1) = 0.50625 / 0.55.
    let plain = SimConfig { accuracy: 0.9, divergence: Divergence::Never };
    assert!((plain.true_precision(pi) - 0.50625 / 0.55).abs() < 1e-12);
    // Half the seeds diverge: tp 0.5625·0.9·0.5 = 0.253125, fp 0.4375·(0.1·0.5 + 0.5) = 0.240625.
    let diverging = SimConfig { divergence: Divergence::OddSeeds, ..plain };
    assert!((diverging.true_precision(pi) - 0.253_125 / 0.49375).abs() < 1e-12);
}

#[test]
fn the_realistic_spread_has_three_near_the_top_and_one_in_eight_diverging() {
    let configs = Spread::REALISTIC.configs(48);
    let accuracy =
        |range: std::ops::Range<usize>| configs[range].iter().map(|c| c.accuracy).collect::<Vec<_>>();
    assert_eq!(accuracy(0..3), [0.92, 0.91, 0.90]);
    assert!(configs[3..9].iter().all(|c| c.divergence == Divergence::OddSeeds));
    assert_eq!((configs[3].accuracy, configs[8].accuracy), (0.80, 0.92));
    assert!(configs[9..].iter().all(|c| c.divergence == Divergence::Never));
    assert_eq!((configs.len(), configs[9].accuracy, configs[47].accuracy), (48, 0.70, 0.88));
    // Small sweeps keep the top first.
    assert_eq!(Spread::REALISTIC.configs(2).iter().map(|c| c.accuracy).collect::<Vec<_>>(), [0.92, 0.91]);
}

#[test]
fn a_config_always_wrong_goes_at_the_first_look() {
    // A is always right, B always wrong: at the first look (5 folds of 16 = 80 images) every
    // image is a precision pair (A said yes to the positives, B to the negatives) that A got
    // right: b = 80, c = 0, p = 2^−80. Both ran 5 of the 10 keys: half the grid, every time.
    let report = simulate(&setup(&[1.0, 0.0], kfold(2)), &RaceRule::DEFAULT, 50, 7);
    assert_eq!(
        (report.grid_pulls, report.pulls.mean, report.pulls.low, report.pulls.high),
        (20, 0.5, 0.5, 0.5)
    );
    assert_eq!((report.best_dropped.mean, report.best_dropped.low), (0.0, 0.0));
    // Wilson's upper end for 0 of 50: z²/(n + z²).
    let z2 = 1.959_963_984_540_054f64.powi(2);
    assert!((report.best_dropped.high - z2 / (50.0 + z2)).abs() < 1e-12);
    assert_eq!(
        (report.race_precision.mean, report.grid_precision.mean, report.difference.mean),
        (1.0, 1.0, 0.0)
    );
    // Holdout of 10 from the 80: a first round of 8 keys, then B goes: 16 of 20 pulls.
    let holdout = SimGrid { seeds: 10, validation: SimValidation::Holdout { valid: 10 }, ..kfold(0) };
    let report = simulate(&setup(&[1.0, 0.0], holdout), &RaceRule::DEFAULT, 20, 7);
    assert!((report.pulls.mean - 0.8).abs() < 1e-12, "{:?}", report.pulls);
}

#[test]
fn configs_that_never_differ_run_the_whole_grid_and_confirm_nothing() {
    // Three perfect configs: no discordant pair, nobody dropped; the keys run out with the
    // grid's pulls spent, so confirmation has no room.
    let mut twins = setup(&[1.0, 1.0, 1.0], kfold(3));
    twins.confirm = true;
    let report = simulate(&twins, &RaceRule::DEFAULT, 20, 1);
    assert_eq!(report.pulls.mean, 1.0);
    let (difference, pulls) = report.confirmed.unwrap();
    assert_eq!((difference.mean, pulls.mean), (0.0, 1.0));
}

#[test]
fn reports_repeat_for_a_seed() {
    let setup = SimSetup {
        configs: Spread::REALISTIC.configs(8),
        grid: kfold(2),
        answers: AnswerModel::CORRELATED,
        confirm: true,
    };
    let a = simulate(&setup, &RaceRule::DEFAULT, 30, 3);
    assert_eq!(a, simulate(&setup, &RaceRule::DEFAULT, 30, 3));
    assert_ne!(a, simulate(&setup, &RaceRule::DEFAULT, 30, 4));
}

#[test]
fn correlated_answers_are_right_at_the_configs_accuracy_on_average() {
    // By symmetry μ = 0 for a mean of ½ whatever the spread; with no spread μ = logit(a).
    assert!(logit_mean(0.5, 1.5).abs() < 1e-9);
    assert!((logit_mean(0.9, 0.0) - 9f64.ln()).abs() < 1e-9);
    // Over 400 sweeps of 96 images (μ and the draws as the simulation makes them): images draw
    // their u and v independently, so each answer is on its own right with chance 0.85, and
    // the share of 38,400 answers is within 4 standard errors, 4·√(0.85·0.15/38400) = 0.0073.
    let setup = SimSetup { answers: AnswerModel::CORRELATED, ..setup(&[0.85], kfold(1)) };
    let means = logit_means(&setup);
    let (mut right, mut answers) = (0usize, 0usize);
    for sweep in 0..400 {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        rng.set_stream(sweep);
        let mut world = World::new(&setup, &means, rng);
        let pull = world.pull(0, 2, &(0..96).collect::<Vec<u32>>());
        let Pull::Done(pull) = pull else { panic!("seed 2 does not diverge") };
        right += pull.iter().filter(|a| a.answer.is_right()).count();
        answers += pull.len();
    }
    let share = right as f64 / answers as f64;
    assert!((share - 0.85).abs() < 0.0073, "{share}");
}
