//! `gacha bench` on the tiny config: the table and the JSON object have what they promise, and bad
//! options fail with exit code 2 and a message naming the option. No timing is asserted.

use serde_json::Value;

use crate::util::{assert_exit, run, texts, TestDir};

#[test]
fn json_has_one_row_per_trainable_set_with_sane_numbers() {
    let dir = TestDir::new();
    let out = run(dir.gacha().args(["bench", "--config", "tiny", "--steps", "2", "--warmup", "0", "--json"]));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON object on stdout");
    // tiny: 16 image tokens + <bos> + 14 prompt tokens + "\n" + answer.
    assert_eq!(report["seq_len"], 33);
    assert_eq!(report["batch"], 4);
    let rows = report["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["trainable"].as_str().unwrap()).collect();
    assert_eq!(names, ["lora", "attention"]);
    // tiny decoder: 2 layers of q/k/v/o, 64 → 96, 64 → 24, 64 → 24, 96 → 64.
    assert_eq!(rows[1]["trainable_params"], 2 * (64 * 96 + 64 * 24 * 2 + 96 * 64));
    // LoRA r 8: 8·(in + out) per matrix, 2 layers.
    assert_eq!(rows[0]["trainable_params"], 2 * 8 * ((64 + 96) * 2 + (64 + 24) * 2));
    for row in rows {
        assert_eq!(row["ms_per_step_all"].as_array().unwrap().len(), 2);
        assert!(row["ms_per_step"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["peak_mem_mib"].as_f64().unwrap() > 1.0, "{row}");
        let (first, last) = (row["loss_first"].as_f64().unwrap(), row["loss_last"].as_f64().unwrap());
        // Full-vocabulary cross-entropy of a random model: near ln(384) ≈ 5.95.
        assert!((4.0..8.0).contains(&first) && (4.0..8.0).contains(&last), "{row}");
    }
}

#[test]
fn table_has_a_header_and_one_line_per_row() {
    let dir = TestDir::new();
    let out =
        run(dir.gacha().args(["bench", "--config", "tiny", "--trainable", "attention", "--steps", "1"]));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("ms/step") && lines[0].contains("peak MiB"), "{stdout}");
    assert!(lines[1].split_whitespace().any(|c| c == "attention"), "{stdout}");
    assert!(!stdout.contains("lora"), "{stdout}");
}

#[test]
fn bad_options_are_named() {
    let dir = TestDir::new();
    for (args, needle) in [
        (&["bench", "--config", "huge"][..], "unknown named config \"huge\""),
        (&["bench", "--config", "tiny", "--device", "gpu"][..], "--device"),
        (&["bench", "--config", "tiny", "--steps", "0"][..], "--steps"),
    ] {
        let out = run(dir.gacha().args(args));
        assert_exit(&out, 2);
        let (_, stderr) = texts(&out);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
