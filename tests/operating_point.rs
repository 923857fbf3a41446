//! Issue 30, the operating point, with the scripted runner on the 40-image dataset of `sweep.rs`
//! (20 yes): scores kept in the records, a precision target in the spec, the threshold and
//! temperature shipped in `best/final.json` and said on the sweep's last lines.

use crate::sweep::{sweep, write_dataset, write_spec};
use crate::util::{assert_exit, leaderboard, run, texts, TestDir};

/// k-fold over the 32 non-test images (16 yes), each answered once per repeat; 8 test images.
const KFOLD: &str = "[validation]\nscheme = \"repeated_kfold\"\nfolds = 4\nrepeats = 2\ntest = 8\n";

fn final_json(dir: &TestDir) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("res/best/final.json")).unwrap()).unwrap()
}

#[test]
fn a_certified_threshold_ships_with_the_soup() {
    let dir = TestDir::new();
    write_dataset(&dir);
    // Precision ≥ 0.8 at 90% needs 11 yes answers with no false one (0.8^11 = 0.086 ≤ 0.1); the
    // binormal separation 4 (yes ~ N(4, 1.8²) per pull) makes that all but certain on 16 yes images.
    let select = format!("{KFOLD}[select]\nfinal = \"soup\"\nmin_precision = 0.8\nconfidence = 0.9\n");
    write_spec(
        &dir,
        "s.toml",
        "seeds = [1]\nlearning_rate = [0.01]\nprompt = [\"binormal=4\", \"binormal=0.5\"]\n",
        &select,
    );
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);

    // Every validation answer keeps its logits.
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    let outcome: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(&format!("res/trials/{}/outcome.json", rows[0]["id"]))).unwrap(),
    )
    .unwrap();
    for answer in outcome["valid_answers"].as_array().unwrap() {
        let (p, yes, no) = (
            answer["logits"]["p_yes"].as_f64().unwrap(),
            answer["logits"]["logit_yes"].as_f64().unwrap(),
            answer["logits"]["logit_no"].as_f64().unwrap(),
        );
        assert!((p - 1.0 / (1.0 + (no - yes).exp())).abs() < 1e-12, "{answer}");
        assert_eq!(answer["answered_positive"].as_bool().unwrap(), p > 0.5, "{answer}");
    }

    // The well separated config certifies and ranks first.
    let configs = leaderboard(&dir.join("res/configs.csv"));
    assert_eq!(configs[0]["prompt"], "binormal=4");
    assert_eq!(configs[0]["certified"], "yes");
    let bound: f64 = configs[0]["precision_bound"].parse().unwrap();
    assert!(bound >= 0.8, "{configs:?}");

    let record = final_json(&dir);
    let op = &record["operating_point"];
    assert_eq!(op["verdict"], "certified");
    assert_eq!(op["target"]["min_precision"], 0.8);
    assert_eq!(op["target"]["confidence"], 0.9);
    let (t, logit, p) = (
        op["temperature"]["temperature"].as_f64().unwrap(),
        op["threshold_logit"].as_f64().unwrap(),
        op["threshold_p_yes"].as_f64().unwrap(),
    );
    assert!((p - 1.0 / (1.0 + (-logit / t).exp())).abs() < 1e-12, "{op}");
    // Each non-test image once: 32 images, of which 16 yes.
    let counts = &op["counts"];
    let total: u64 = ["tp", "tn", "fp", "fn"].iter().map(|k| counts[k].as_u64().unwrap()).sum();
    assert_eq!(total, 32, "{op}");
    let at_threshold = &record["test_at_threshold"];
    let total: u64 = ["tp", "tn", "fp", "fn"].iter().map(|k| at_threshold[k].as_u64().unwrap()).sum();
    assert_eq!(total, 8, "{record}");

    assert!(stdout.contains("operating point: P(yes) > "), "{stdout}");
    assert!(stdout.contains("certifies precision ≥ 0.8 at 90% confidence on 32 images"), "{stdout}");
    assert!(stdout.contains("on 8 test images at P(yes) > "), "{stdout}");
    assert!(stdout.contains("; at 0.5: precision "), "{stdout}");
}

#[test]
fn an_uncertifiable_target_says_so_and_ships_the_best_bound() {
    let dir = TestDir::new();
    write_dataset(&dir);
    // 0.95 at 90% needs 45 yes answers: the 16 yes images cannot certify it.
    let select = format!("{KFOLD}[select]\nfinal = \"soup\"\nmin_precision = 0.95\n");
    write_spec(&dir, "s.toml", "seeds = [1]\nlearning_rate = [0.01]\nprompt = [\"binormal=4\"]\n", &select);
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    assert!(
        stdout.contains(
            "no threshold certifies precision ≥ 0.95 at 90% confidence on 32 images: best lower bound"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("uncertified"), "{stdout}");
    let op = &final_json(&dir)["operating_point"];
    assert_eq!(op["verdict"], "uncertified");
    // At most 16 yes answers, none false: the bound is at most 0.1^(1/16) = 0.866.
    assert!(op["precision_lower_bound"].as_f64().unwrap() <= 0.1_f64.powf(1.0 / 16.0) + 1e-12, "{op}");
    assert_eq!(leaderboard(&dir.join("res/configs.csv"))[0]["certified"], "no");
}

#[test]
fn without_a_target_nothing_changes_in_configs_csv_or_final_json() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", "seeds = [1]\nlearning_rate = [0.01]\nprompt = [\"binormal=4\"]\n", KFOLD);
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let configs = leaderboard(&dir.join("res/configs.csv"));
    assert!(!configs[0].contains_key("certified"));
    let record = final_json(&dir);
    assert!(record.get("operating_point").is_none() && record.get("test_at_threshold").is_none());
}

/// The simulation of issue 30 on the scripted runner: 240 images (120 yes), 5 folds of one seed,
/// one config whose pulls score from the binormal model with separation 3 (z = ±3 + 1.5·a_i +
/// e_pi, `sweep::scripted`), a fresh draw of image latents per sweep. The shipped model is the
/// soup of the 5 pulls: on a fresh image its z is normal with mean ±3 and variance
/// 1.5² + 1/5 = 2.45, which gives the true precision at any threshold t in closed form:
/// Φ̄((t − 3)/s) / (Φ̄((t − 3)/s) + Φ̄((t + 3)/s)), s = √2.45 (half the images yes). At target
/// 0.95 and confidence 0.9, among the sweeps that certify, the true precision at the shipped
/// threshold must reach 0.95 in at least 90% of them. Larger runs: the ignored test in
/// `eval::operating_point::simulation` (docs/operating-point.md).
#[test]
fn certified_thresholds_hold_their_precision_in_simulated_sweeps() {
    const SWEEPS: usize = 20;
    let dir = TestDir::new();
    let lines: String = (0..240)
        .map(|i| {
            format!(
                "{{\"prefix\": \"\", \"suffix\": \"{}\", \"image\": \"img/{i}.png\"}}\n",
                ["yes", "no"][i % 2]
            )
        })
        .collect();
    dir.write("data.jsonl", lines);
    let s = 2.45_f64.sqrt();
    let true_precision = |t: f64| {
        let yes = upper_tail((t - 3.0) / s);
        yes / (yes + upper_tail((t + 3.0) / s))
    };
    let (mut certified, mut valid) = (0, 0);
    for draw in 0..SWEEPS {
        let name = format!("s{draw}.toml");
        dir.write(
            &name,
            format!(
                "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"data.jsonl\"\n\
                 [train]\nsteps = 2\nlog_every = 2\nlearning_rate = 0.01\n[validation]\nscheme = \"kfold\"\nfolds = 5\n\
                 [select]\nfinal = \"soup\"\nmin_precision = 0.95\nconfidence = 0.9\n\
                 [sweep]\nseeds = [1]\nprompt = [\"binormal=3 draw={draw}\"]\n"
            ),
        );
        let results = format!("res{draw}");
        assert_exit(&run(&mut sweep(&dir, &name, &results, 0)), 0);
        let record: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(&format!("{results}/best/final.json"))).unwrap(),
        )
        .unwrap();
        let op = &record["operating_point"];
        if op["verdict"] == "certified" {
            certified += 1;
            valid += usize::from(true_precision(op["threshold_logit"].as_f64().unwrap()) >= 0.95);
        }
    }
    assert!(certified >= SWEEPS / 2, "only {certified} of {SWEEPS} sweeps certified");
    assert!(valid * 10 >= certified * 9, "{valid} of {certified} certified thresholds hold 0.95");
}

/// Φ̄(x) = P(N(0, 1) > x) = erfc(x/√2)/2, with erfc from Numerical Recipes' erfcc (fractional
/// error below 1.2e-7 everywhere).
fn upper_tail(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z.abs());
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    0.5 * if z >= 0.0 { erfc } else { 2.0 - erfc }
}

#[test]
fn the_normal_tail_matches_tables() {
    // Φ̄(0) = 0.5, Φ̄(1.644854) = 0.05, Φ̄(−1) = 0.841345, Φ̄(3) = 0.0013499 (standard tables).
    for (x, want) in [(0.0, 0.5), (1.644_854, 0.05), (-1.0, 0.841_345), (3.0, 0.001_349_9)] {
        assert!((upper_tail(x) - want).abs() < 1e-6 * want.max(0.01), "Φ̄({x}) = {}", upper_tail(x));
    }
}
