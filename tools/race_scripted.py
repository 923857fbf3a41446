#!/usr/bin/env python3
"""The race through the whole driver (issue 28): `gacha sweep --debug-scripted-runner` on the
realistic spread of docs/race.md, raced and as a full grid, over several sweeps with fresh seeds.

The in-process simulation (`cargo bench --bench race`) runs the rule on simulated answers; this
runs the same kind of sweep through specs, claims, records and race.json, so the two can be
compared. The scripted runner answers each image right with the probability its prompt names
(`accuracy=0.92`), independently per pull and image: the "independent" answer model. Its
learning-rate divergence cannot be given per config in a grid, so the spread here has no
diverging configs: 3 at the top (0.92, 0.91, 0.90) and 45 mediocre evenly from 0.70 to 0.88.

Usage: python3 tools/race_scripted.py [--sweeps 20] [--seeds 3] [--gacha target/release/gacha]
Prints pulls used against the grid, how often the truly best config was dropped, and the true
precision of the race's and the grid's chosen configs, with 95% intervals.
"""
import argparse
import csv
import json
import math
import os
import subprocess
import tempfile

IMAGES, POSITIVES, TEST = 96, 54, 16
TOP = [0.92, 0.91, 0.90]


def accuracies():
    mediocre = [0.70 + (0.88 - 0.70) * i / 44 for i in range(45)]
    return TOP + mediocre


def true_precision(a):
    pi = POSITIVES / IMAGES
    return pi * a / (pi * a + (1 - pi) * (1 - a))


def spec(strategy, seeds):
    prompts = ",\n  ".join(f'"c{i:02d} accuracy={a:.4f}"' for i, a in enumerate(accuracies()))
    return (
        'name = "sim"\n[model]\npath = "builtin:tiny"\n[data]\npath = "data.jsonl"\n'
        "[train]\nsteps = 2\nlog_every = 2\n"
        f'[validation]\nscheme = "kfold"\nfolds = 5\ntest = {TEST}\n'
        f'[search]\nstrategy = "{strategy}"\n'
        f"[sweep]\nseeds = {seeds}\nlearning_rate = [0.01]\nprompt = [\n  {prompts},\n]\n"
    )


def run(gacha, folder, strategy, seeds):
    with open(os.path.join(folder, f"{strategy}.toml"), "w") as f:
        f.write(spec(strategy, seeds))
    results = os.path.join(folder, strategy)
    subprocess.run(
        [gacha, "sweep", f"{strategy}.toml", "--results", results, "--debug-scripted-runner",
         "--debug-step-ms", "0", "--workers", "1", "-q"],
        cwd=folder, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(results, "configs.csv")) as f:
        configs = list(csv.DictReader(f))
    accuracy = lambda row: float(row["prompt"].split("accuracy=")[1])
    pulls = sum(int(row["pulls"]) for row in configs)
    chosen = true_precision(accuracy(configs[0]))
    best_dropped = any(row.get("standing", "").startswith("dropped") and accuracy(row) == TOP[0]
                       for row in configs)
    return pulls, chosen, best_dropped


def mean_interval(xs):
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    h = 1.96 * sd / math.sqrt(len(xs))
    return m, m - h, m + h


def wilson(k, n, z=1.959964):
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return c - h, c + h


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweeps", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--gacha", default="target/release/gacha")
    args = parser.parse_args()
    gacha = os.path.abspath(args.gacha)
    shares, diffs, dropped = [], [], 0
    for s in range(args.sweeps):
        seeds = list(range(1000 + s * args.seeds, 1000 + (s + 1) * args.seeds))
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "data.jsonl"), "w") as f:
                for i in range(IMAGES):
                    label = "yes" if i < POSITIVES else "no"
                    f.write(json.dumps({"prefix": "", "suffix": label, "image": f"img/{i}.png"}) + "\n")
            race_pulls, race_chosen, best_dropped = run(gacha, folder, "race", seeds)
            grid_pulls, grid_chosen, _ = run(gacha, folder, "grid", seeds)
        shares.append(100 * race_pulls / grid_pulls)
        diffs.append(race_chosen - grid_chosen)
        dropped += best_dropped
        print(f"sweep {s + 1}: race {race_pulls} of {grid_pulls} pulls, chosen true precision "
              f"{race_chosen:.4f} (grid {grid_chosen:.4f}), best dropped: {best_dropped}", flush=True)
    m, lo, hi = mean_interval(shares)
    print(f"pulls % of grid: {m:.1f} [{lo:.1f}, {hi:.1f}]")
    lo, hi = wilson(dropped, args.sweeps)
    print(f"best dropped: {dropped}/{args.sweeps} [{100 * lo:.1f}%, {100 * hi:.1f}%]")
    m, lo, hi = mean_interval(diffs)
    print(f"race - grid true precision: {m:+.4f} [{lo:+.4f}, {hi:+.4f}]")


if __name__ == "__main__":
    main()
