#!/usr/bin/env python3
"""Simulated sweeps of the operating point (issue 30) through the real `gacha sweep` with the
scripted runner: the larger run of `tests/operating_point.rs`'s simulation test.

Each sweep: IMAGES images (half yes), 5 folds of one seed, one config whose pulls score from the
scripted binormal model with separation D (z = ±D + 1.5·a_i + e_pi, a fresh draw of image
latents per sweep), final model the soup of the 5 pulls. A soup's z on a fresh image is normal
with mean ±D and variance 1.5² + 1/5, which gives the true precision and recall at the shipped
threshold in closed form, and the oracle threshold (the loosest with true precision ≥ target).

    python3 tools/operating_point_sim.py [SWEEPS] [IMAGES] [D]   (default 200 240 3)

Prints how often a threshold is certified, among those how often the true precision at the
shipped threshold reaches 0.95 (target 0.95, confidence 0.9), and the true recall against the
oracle's. Standard library only.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

GACHA = os.environ.get("GACHA", "target/release/gacha")
SWEEPS, IMAGES, D = (int(sys.argv[1]) if len(sys.argv) > 1 else 200,
                     int(sys.argv[2]) if len(sys.argv) > 2 else 240,
                     float(sys.argv[3]) if len(sys.argv) > 3 else 3.0)
TARGET, CONFIDENCE = 0.95, 0.9
S = math.sqrt(1.5 ** 2 + 1 / 5)


def tail(x):
    return 0.5 * math.erfc(x / math.sqrt(2))


def truth(t):
    yes, no = tail((t - D) / S), tail((t + D) / S)
    return yes / (yes + no), yes


def oracle_recall():
    lo, hi = -20.0, 20.0  # precision rises with t: bisect for the loosest t reaching the target
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if truth(mid)[0] >= TARGET else (mid, hi)
    return truth(hi)[1]


def main():
    gacha = os.path.abspath(GACHA)
    certified = valid = 0
    recalls = []
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "data.jsonl"), "w") as f:
            for i in range(IMAGES):
                f.write(json.dumps({"prefix": "", "suffix": ["yes", "no"][i % 2], "image": f"img/{i}.png"}) + "\n")
        for draw in range(SWEEPS):
            spec = os.path.join(tmp, f"s{draw}.toml")
            with open(spec, "w") as f:
                f.write(f'name = "t"\n[model]\npath = "builtin:tiny"\n[data]\npath = "data.jsonl"\n'
                        f'[train]\nsteps = 2\nlog_every = 2\nlearning_rate = 0.01\n'
                        f'[validation]\nscheme = "kfold"\nfolds = 5\n'
                        f'[select]\nfinal = "soup"\nmin_precision = {TARGET}\nconfidence = {CONFIDENCE}\n'
                        f'[sweep]\nseeds = [1]\nprompt = ["binormal={D} draw={draw}"]\n')
            results = os.path.join(tmp, f"res{draw}")
            subprocess.run([gacha, "sweep", spec, "--results", results, "--debug-scripted-runner",
                            "--debug-step-ms", "0"], check=True, capture_output=True)
            with open(os.path.join(results, "best", "final.json")) as f:
                op = json.load(f)["operating_point"]
            if op["verdict"] == "certified":
                certified += 1
                precision, recall = truth(op["threshold_logit"])
                valid += precision >= TARGET
                recalls.append(recall)
    oracle = oracle_recall()
    print(f"{SWEEPS} sweeps of {IMAGES} images, binormal separation {D}, target {TARGET} at {CONFIDENCE}")
    print(f"certified: {certified}/{SWEEPS}; none certified {1 - certified / SWEEPS:.3f}")
    if certified:
        print(f"valid among certified: {valid}/{certified} = {valid / certified:.3f}")
        print(f"true recall at the shipped threshold {sum(recalls) / len(recalls):.3f}, oracle {oracle:.3f}")


if __name__ == "__main__":
    main()
